//! `depin keygen` and `depin node init|run` as a user runs them: the real
//! binary against a real `depin serve` over loopback.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DEPIN: &str = env!("CARGO_BIN_EXE_depin");

fn depin(args: &[&str], dir: &Path) -> Output {
    Command::new(DEPIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DEPIN_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .expect("run depin")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A `depin serve` child, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> (Server, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(DEPIN)
        .args([
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            "coord",
            "--epoch-seconds",
            "60",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start depin serve");
    let server = Server(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "depin serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, format!("http://{listen}"))
}

#[test]
fn keygen_init_and_run_as_a_user() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("pass.txt"), "correct horse\n").unwrap();
    std::fs::write(dir.join("wrong.txt"), "wrong horse\n").unwrap();

    // keygen: no terminal and no passphrase source is a clear error.
    let o = depin(&["keygen", "--out", "op.key", "--insecure-fast-kdf"], dir);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--passphrase-file"), "{}", stderr(&o));
    assert!(!dir.join("op.key").exists());

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
    assert!(o.status.success(), "{}", stderr(&o));
    let operator = stdout(&o).trim().to_string();
    assert_eq!(operator.len(), 64, "prints the public key: {operator:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("op.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(dir.join("op.key")).unwrap();
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
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.join("op.key")).unwrap(),
        before,
        "an existing key is never overwritten"
    );

    let (_server, url) = serve(dir);
    let init = |extra: &[&str], data: &str, pass: &str| {
        let mut args = vec![
            "node",
            "init",
            "--operator-key",
            "op.key",
            "--data-dir",
            data,
            "--passphrase-file",
            pass,
        ];
        args.extend_from_slice(extra);
        depin(&args, dir)
    };

    let o = init(
        &["--sector", "hotspot", "--coordinator", &url],
        "n1",
        "pass.txt",
    );
    assert!(stderr(&o).contains("unknown sector"), "{}", stderr(&o));
    let o = init(
        &["--sector", "compute", "--coordinator", &url],
        "n1",
        "wrong.txt",
    );
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
    let o = init(
        &["--sector", "compute", "--coordinator", "http://127.0.0.1:1"],
        "n1",
        "pass.txt",
    );
    assert!(
        stderr(&o).contains("cannot reach the coordinator"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("n1/node.json").exists());

    // Retrying after the failed attempt reuses its device key.
    let o = init(
        &[
            "--sector",
            "compute",
            "--coordinator",
            &url,
            "--watts",
            "120",
            "--hardware-class",
            "rtx-4090",
        ],
        "n1",
        "pass.txt",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&operator), "{}", stdout(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("n1/device.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let o = init(
        &["--sector", "compute", "--coordinator", &url],
        "n1",
        "pass.txt",
    );
    assert!(stderr(&o).contains("already initialised"), "{}", stderr(&o));

    let o = depin(
        &[
            "node",
            "run",
            "--data-dir",
            "n1",
            "--max-heartbeats",
            "3",
            "--interval-seconds",
            "0.2",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("sent 1, pending 0"), "{}", stdout(&o));
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("n1/status.json")).unwrap())
            .unwrap();
    assert_eq!(status["heartbeats_created"], 3);
    assert_eq!(status["accepted_total"], 3);
    assert_eq!(status["pending"], 0);
    assert_eq!(status["state"], "stopped");

    let node: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("n1/node.json")).unwrap()).unwrap();
    let device: depin_core::PublicKey = node["device"].as_str().unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let view = rt
        .block_on(depin_client::Client::new(&url).unwrap().device(&device))
        .unwrap();
    assert_eq!(view.last_seq, Some(3));
    assert_eq!(view.hardware_class, "rtx-4090");
    assert_eq!(view.telemetry.unwrap().power_w, 120.0);
}
