//! `depin keygen`, `depin escrow deposit` and `depin consumer lock|show` as
//! a consumer and a coordinator operator run them: the real binary against a
//! real `depin serve` over loopback.

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
fn a_consumer_deposits_locks_and_looks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_server, url) = serve(d);
    std::fs::write(d.join("pass"), "correct horse\n").unwrap();
    let k = depin(
        &[
            "keygen",
            "--out",
            "consumer.key",
            "--passphrase-file",
            "pass",
            "--insecure-fast-kdf",
        ],
        d,
    );
    assert!(k.status.success(), "{}", stderr(&k));
    let key = stdout(&k).trim().to_string();
    assert_eq!(key.len(), 64);
    let db = "sqlite://coord/depin.sqlite";
    let deposit = |amount: &str| {
        depin(
            &[
                "escrow",
                "deposit",
                "--database-url",
                db,
                "--consumer",
                &key,
                "--amount",
                amount,
                "--external-ref",
                "invoice-17",
            ],
            d,
        )
    };
    let o = deposit("5000000");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("credited 5.000000 tokens"),
        "{}",
        stdout(&o)
    );
    let o = deposit("5000000");
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("already credited; nothing changed"),
        "{}",
        stdout(&o)
    );
    let o = deposit("4000000");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already credited to another consumer or with another amount"),
        "{}",
        stderr(&o)
    );

    let lock = |order: &str, amount: &str| {
        depin(
            &[
                "consumer",
                "lock",
                "--key",
                "consumer.key",
                "--passphrase-file",
                "pass",
                "--coordinator",
                &url,
                "--order",
                order,
                "--sector",
                "storage",
                "--amount",
                amount,
                "--epochs",
                "24",
                "--json",
            ],
            d,
        )
    };
    let o = lock("1", "2000000");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["order"].as_u64(), v["new"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(
        v["last_epoch"].as_u64().unwrap() - v["first_epoch"].as_u64().unwrap(),
        23
    );
    let o = lock("2", "3000001");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("402 insufficient_escrow"),
        "{}",
        stderr(&o)
    );
    let o = lock("1", "1");
    assert!(stderr(&o).contains("409 order_conflict"), "{}", stderr(&o));

    let o = depin(
        &[
            "consumer",
            "show",
            "--consumer",
            &key,
            "--coordinator",
            &url,
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("free escrow: 3.000000 tokens"), "{out}");
    assert!(
        out.contains("storage") && out.contains("2.000000") && out.contains("open"),
        "{out}"
    );
    let o = depin(
        &[
            "consumer",
            "show",
            "--consumer",
            &key,
            "--coordinator",
            &url,
            "--json",
        ],
        d,
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["escrow"], 3_000_000);
    let o = depin(
        &[
            "consumer",
            "show",
            "--consumer",
            "zz",
            "--coordinator",
            &url,
        ],
        d,
    );
    assert!(stderr(&o).contains("--consumer"), "{}", stderr(&o));
}
