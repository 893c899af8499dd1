//! Rough edges a newcomer hit, each shown with the real binary over loopback:
//! a revoked agent stops and says what to do; readable times and counts;
//! no colour codes in a log file; `depin serve` refuses a busy address
//! before creating anything, and a second coordinator on one data directory.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DEPIN: &str = env!("CARGO_BIN_EXE_depin");
/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(30);

fn depin(args: &[&str], dir: &Path) -> Output {
    Command::new(DEPIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DEPIN_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .expect("run depin")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    out
}

/// A child process, killed when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Kill {
    /// Waits for the child to exit, at most [`BOUND`].
    fn wait_bounded(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < BOUND, "the process did not exit in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, as a supervisor stops it, then wait.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let s = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(s.success());
        self.wait_bounded()
    }
}

fn free_addr() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

fn wait_listening(addr: &str, child: &mut Kill) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if let Some(s) = child.0.try_wait().unwrap() {
            panic!("depin serve exited early: {s}");
        }
        assert!(start.elapsed() < BOUND, "depin serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `depin serve` on `addr` with its store in `dir/data`; `extra` flags
/// replace the default `--epoch-seconds 60`.
fn serve(dir: &Path, addr: &str, data: &str, stderr: Stdio, extra: &[&str]) -> Kill {
    let mut args = vec!["serve", "--listen", addr, "--data-dir", data];
    if extra.is_empty() {
        args.extend(["--epoch-seconds", "60"]);
    }
    args.extend_from_slice(extra);
    let child = Command::new(DEPIN)
        .args(&args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start depin serve");
    Kill(child)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A node whose key is revoked while its agent runs: the agent stops on its
/// own with a non-zero exit, names the key and says what to do. Along the
/// way: `revoke` prints a readable UTC time and counts take their plural.
#[test]
fn a_revoked_agent_stops_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("pass.txt"), "correct horse\n").unwrap();
    let addr = free_addr();
    let mut server = serve(dir, &addr, "coord", Stdio::null(), &[]);
    wait_listening(&addr, &mut server);
    let url = format!("http://{addr}");
    let pass = ["--passphrase-file", "pass.txt"];
    let mut args = vec!["keygen", "--out", "op.key", "--insecure-fast-kdf"];
    args.extend(pass);
    ok(depin(&args, dir));
    let mut args = vec![
        "node",
        "init",
        "--sector",
        "storage",
        "--operator-key",
        "op.key",
        "--coordinator",
        &url,
        "--data-dir",
        "n",
    ];
    args.extend(pass);
    ok(depin(&args, dir));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("n/node.json")).unwrap()).unwrap();
    let device = cfg["device"].as_str().unwrap().to_string();

    // One heartbeat: "1 heartbeat", not "1 heartbeats".
    let out = ok(depin(
        &[
            "node",
            "run",
            "--data-dir",
            "n",
            "--max-heartbeats",
            "1",
            "--interval-seconds",
            "0.2",
        ],
        dir,
    ));
    assert!(
        out.contains("stopped: 1 heartbeat created, 1 accepted"),
        "{out}"
    );

    // Run until stopped from outside, then revoke the key under it.
    let mut agent = Kill(
        Command::new(DEPIN)
            .args([
                "node",
                "run",
                "--data-dir",
                "n",
                "--interval-seconds",
                "0.2",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status_file = dir.join("n/status.json");
    let start = Instant::now();
    loop {
        let accepted = std::fs::read(&status_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["accepted_total"].as_u64())
            .unwrap_or(0);
        if accepted >= 3 {
            break;
        }
        assert!(start.elapsed() < BOUND, "the agent sent nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = now_ms();
    let mut args = vec![
        "node",
        "revoke",
        "--device",
        &device,
        "--operator-key",
        "op.key",
        "--coordinator",
        &url,
    ];
    args.extend(pass);
    let out = ok(depin(&args, dir));
    assert!(!out.contains("Some("), "no Rust debug text: {out}");
    // "revoked at 2026-12-02 06:50:12 UTC": the date is today's (UTC).
    let at = out
        .split("revoked at ")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"));
    let stamp = &at[..23];
    assert!(stamp.ends_with(" UTC"), "{out}");
    let b = stamp.as_bytes();
    for (i, c) in b[..19].iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*c, b'-', "{stamp}"),
            10 => assert_eq!(*c, b' ', "{stamp}"),
            13 | 16 => assert_eq!(*c, b':', "{stamp}"),
            _ => assert!(c.is_ascii_digit(), "{stamp}"),
        }
    }
    let year: i64 = stamp[..4].parse().unwrap();
    // 31,556,952,000 ms: a mean Gregorian year.
    let this_year = 1970 + before / 31_556_952_000;
    assert!(
        (year - this_year).abs() <= 1,
        "{stamp} vs year ~{this_year}"
    );

    let exit = agent.wait_bounded();
    let mut err = String::new();
    std::io::Read::read_to_string(agent.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!exit.success(), "a revoked agent exits non-zero: {err}");
    assert!(err.contains("REVOKED") && err.contains(&device), "{err}");
    assert!(err.contains("depin node init"), "{err}");
    assert!(err.contains("depin node rotate"), "{err}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&status_file).unwrap()).unwrap();
    assert_eq!(status["state"], "revoked");

    // Started again on the revoked key, it stops at once with the same words.
    let o = depin(
        &[
            "node",
            "run",
            "--data-dir",
            "n",
            "--interval-seconds",
            "0.2",
        ],
        dir,
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("REVOKED") && err.contains("depin node init"),
        "{err}"
    );
}

/// With stderr a file, `depin serve` logs without ANSI colour codes.
#[test]
fn serve_logs_no_colour_codes_into_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = dir.join("serve.log");
    let addr = free_addr();
    let mut server = serve(
        dir,
        &addr,
        "coord",
        Stdio::from(std::fs::File::create(&log).unwrap()),
        &[],
    );
    wait_listening(&addr, &mut server);
    // The startup line is a tracing event at info level, coloured on a terminal.
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("depin coordinator listening")
    {
        assert!(
            start.elapsed() < BOUND,
            "no log line: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.terminate().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("shutting down"), "{text}");
    assert!(!text.contains("\x1b["), "colour codes in the log: {text:?}");
}

/// A busy address: a clear error, and nothing created in a fresh data dir.
#[test]
fn serve_on_a_busy_address_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let o = depin(&["serve", "--listen", &addr, "--data-dir", "fresh"], dir);
    let (_, err) = text(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
    assert!(err.contains("--listen"), "says what to change: {err}");
    assert!(!dir.join("fresh").exists(), "no data directory left behind");
}

/// Two coordinators on one SQLite data directory: the second is refused at
/// once, names the first; after the first stops, the directory is free.
#[test]
fn a_second_serve_on_one_data_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first_addr = free_addr();
    let mut first = serve(dir, &first_addr, "coord", Stdio::null(), &[]);
    wait_listening(&first_addr, &mut first);
    assert!(dir.join("coord/depin.lock").exists());

    let second_addr = free_addr();
    let started = Instant::now();
    let o = depin(
        &["serve", "--listen", &second_addr, "--data-dir", "coord"],
        dir,
    );
    let (_, err) = text(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
    let pid = first.0.id().to_string();
    assert!(
        err.contains("another depin serve") && err.contains(&pid),
        "{err}"
    );
    assert!(err.contains("depin.lock"), "{err}");
    assert!(
        std::net::TcpStream::connect(&first_addr).is_ok(),
        "the first one still serves"
    );

    assert!(first.terminate().success());
    assert!(
        !dir.join("coord/depin.lock").exists(),
        "a clean stop frees the lock"
    );
    // A lock left by a process that no longer runs (a crash) is taken over.
    std::fs::write(dir.join("coord/depin.lock"), "4194304999\n").unwrap();
    let mut again = serve(dir, &second_addr, "coord", Stdio::null(), &[]);
    wait_listening(&second_addr, &mut again);
    assert!(again.terminate().success());
}
