//! What an operator of the network touches, with the real binary: `serve
//! --config`, JSON logs, the agent's `--metrics-listen`, the example systemd
//! units and config under `deploy/`.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DEPIN: &str = env!("CARGO_BIN_EXE_depin");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn depin(args: &[&str], dir: &Path) -> Output {
    Command::new(DEPIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run depin")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Kills the process and returns what it wrote on stderr.
    fn stop(mut self) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut s = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            e.read_to_string(&mut s).unwrap();
        }
        s
    }
}

fn wait_for_port(addr: &str, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not start on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap();
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.text().await.unwrap()
    })
}

fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        depin_testkit::skip(
            "DEPIN_REQUIRE_PROMTOOL",
            "promtool is not on PATH (apt-get install prometheus): the promtool checks did not run",
        );
    }
    found
}

/// Starts `depin serve ARGS` in `dir` with stderr captured.
fn serve(dir: &Path, args: &[&str]) -> Running {
    Running(
        Command::new(DEPIN)
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env_remove("DEPIN_DATABASE_URL")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start depin serve"),
    )
}

#[test]
fn serve_takes_a_config_file_and_flags_win_over_it() {
    let tmp = tempfile::tempdir().unwrap();
    let etc = tmp.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let port = free_port();
    std::fs::write(
        etc.join("depin.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\n\
             data-dir = \"state\"\n\
             epoch-seconds = 5\n\
             max-connections = 64\n\
             log-format = \"json\"\n"
        ),
    )
    .unwrap();
    // Started elsewhere: the file's relative data-dir is relative to the file.
    let server = serve(
        tmp.path(),
        &["--config", "etc/depin.toml", "--epoch-seconds", "7"],
    );
    let addr = format!("127.0.0.1:{port}");
    wait_for_port(&addr, "depin serve");
    let policy: serde_json::Value =
        serde_json::from_str(&get(&format!("http://{addr}/v1/policy"))).unwrap();
    assert_eq!(
        policy["epoch_seconds"], 7,
        "the flag wins over the file: {policy}"
    );
    assert!(
        etc.join("state/depin.sqlite").exists(),
        "data-dir from the file"
    );
    let log = server.stop();
    // log-format = "json" from the file: every line on stderr is an object.
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "nothing logged");
    let mut started = false;
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
        assert!(!l.contains('\u{1b}'), "ANSI codes in a JSON log: {l:?}");
        if v["message"] == "depin coordinator started" {
            assert_eq!(v["url"], format!("http://{addr}"), "{l}");
            started = true;
        }
    }
    assert!(started, "no start event in {log}");

    // The same settings without the file's log-format: text, no colour (not a terminal).
    let port2 = free_port();
    let server = serve(
        tmp.path(),
        &[
            "--config",
            "etc/depin.toml",
            "--listen",
            &format!("127.0.0.1:{port2}"),
            "--data-dir",
            "other",
            "--log-format",
            "text",
        ],
    );
    wait_for_port(&format!("127.0.0.1:{port2}"), "depin serve");
    let policy: serde_json::Value =
        serde_json::from_str(&get(&format!("http://127.0.0.1:{port2}/v1/policy"))).unwrap();
    assert_eq!(
        policy["epoch_seconds"], 5,
        "the file's epoch-seconds: {policy}"
    );
    let log = server.stop();
    assert!(log.contains("depin coordinator on http://"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes without a terminal: {log:?}"
    );
    assert!(tmp.path().join("other/depin.sqlite").exists());
}

#[test]
fn an_unknown_config_key_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bad.toml"), "lisen = \"127.0.0.1:1\"\n").unwrap();
    let o = depin(&["serve", "--config", "bad.toml"], tmp.path());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("unknown field `lisen`"),
        "{err}"
    );
    assert!(
        !tmp.path().join("depin-data").exists(),
        "nothing is created on a bad config"
    );

    let o = depin(&["serve", "--config", "missing.toml"], tmp.path());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.toml"));
}

/// The example config under deploy/ is accepted as it is (only the listen
/// address and the data directory are moved for the test).
#[test]
fn the_example_config_starts_a_server() {
    let tmp = tempfile::tempdir().unwrap();
    let example = repo_root().join("deploy/depin.toml");
    let port = free_port();
    let server = serve(
        tmp.path(),
        &[
            "--config",
            example.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            "data",
        ],
    );
    wait_for_port(&format!("127.0.0.1:{port}"), "depin serve");
    assert_eq!(get(&format!("http://127.0.0.1:{port}/healthz")), "ok");
    drop(server);
}

#[test]
fn the_agent_exports_its_counters() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("pass.txt"), "correct horse\n").unwrap();
    let o = depin(
        &[
            "keygen",
            "--out",
            "op.key",
            "--passphrase-file",
            "pass.txt",
            "--insecure-fast-kdf",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let port = free_port();
    let coord = format!("127.0.0.1:{port}");
    let _server = serve(
        dir,
        &[
            "--listen",
            &coord,
            "--data-dir",
            "coord",
            "--epoch-seconds",
            "60",
        ],
    );
    wait_for_port(&coord, "depin serve");
    let o = depin(
        &[
            "node",
            "init",
            "--sector",
            "compute",
            "--operator-key",
            "op.key",
            "--coordinator",
            &format!("http://{coord}"),
            "--data-dir",
            "node",
            "--passphrase-file",
            "pass.txt",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let agent = Running(
        Command::new(DEPIN)
            .args([
                "node",
                "run",
                "--data-dir",
                "node",
                "--interval-seconds",
                "0.2",
                "--for-seconds",
                "60",
                "--metrics-listen",
                &maddr,
                "--log-format",
                "json",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for_port(&maddr, "the agent's metrics endpoint");
    let deadline = Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        let s = get(&format!("http://{maddr}/metrics"));
        let accepted = s
            .lines()
            .find_map(|l| l.strip_prefix("depin_agent_reports_accepted_total "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if accepted >= 2.0 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no accepted heartbeat shown:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for name in [
        "depin_agent_heartbeats_created_total",
        "depin_agent_reports_dropped_total",
        "depin_agent_spool_reports",
        "depin_agent_last_accepted_timestamp_seconds",
    ] {
        assert!(
            scrape.contains(&format!("# HELP {name} ")),
            "{name} missing:\n{scrape}"
        );
    }
    let last = scrape
        .lines()
        .find_map(|l| l.strip_prefix("depin_agent_last_accepted_timestamp_seconds "))
        .unwrap()
        .parse::<f64>()
        .unwrap();
    assert!(last > 1.7e9, "last accepted timestamp {last}");
    let log = agent.stop();
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("agent log line is not JSON ({e}): {l:?}"));
    }
    if let Some(promtool) = promtool() {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), scrape.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.trim().is_empty(),
            "promtool: {text}\n{scrape}"
        );
    }
}

/// `systemd-analyze verify` on the example units, with ExecStart pointed at
/// the binary under test (verify checks that the program exists). Warnings
/// (an unknown key, a misspelt section) fail the test too.
#[test]
fn the_systemd_units_verify() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        depin_testkit::skip(
            "DEPIN_REQUIRE_SYSTEMD",
            "systemd-analyze not found: the example units were not verified (apt-get install systemd)",
        );
        return;
    };
    assert!(version.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for name in ["depin-coordinator.service", "depin-agent.service"] {
        let text = std::fs::read_to_string(repo_root().join("deploy/systemd").join(name)).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/depin "), "{name}");
        for needed in [
            "DynamicUser=yes",
            "StateDirectory=",
            "ProtectSystem=strict",
            "Restart=on-failure",
        ] {
            assert!(text.contains(needed), "{name} lacks {needed}");
        }
        let path = tmp.path().join(name);
        std::fs::write(&path, text.replace("/usr/local/bin/depin", DEPIN)).unwrap();
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}
