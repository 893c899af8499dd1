//! What the CLI tests that talk to a live coordinator share: running the
//! real `depin` binary and a `depin serve` child on a free loopback port.

#![allow(dead_code)] // each test file uses a part

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DEPIN: &str = env!("CARGO_BIN_EXE_depin");

/// Runs `depin` in `dir` with no passphrase in the environment and no stdin.
pub fn depin(args: &[&str], dir: &Path) -> Output {
    Command::new(DEPIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DEPIN_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .expect("run depin")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A `depin serve` child, killed when dropped.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `depin serve` on a free loopback port with its store in `dir/coord` and
/// epochs of `epoch_seconds`; returns once it accepts connections (or
/// panics after `bound`), with its base URL.
pub fn serve(dir: &Path, epoch_seconds: &str, bound: Duration) -> (Server, String) {
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
            epoch_seconds,
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
        assert!(start.elapsed() < bound, "depin serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, format!("http://{listen}"))
}

/// The coordinator's API over a blocking runtime, for checking what the CLI
/// printed against what the server says.
pub struct Api {
    pub rt: tokio::runtime::Runtime,
    pub c: depin_client::Client,
}

impl Api {
    pub fn new(url: &str) -> Api {
        Api {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            c: depin_client::Client::new(url).unwrap(),
        }
    }

    /// The closed epochs, oldest first.
    pub fn epochs(&self) -> Vec<serde_json::Value> {
        let e = self.rt.block_on(self.c.epochs()).unwrap();
        e.as_array().unwrap().clone()
    }

    /// The newest closed epoch, if any.
    pub fn last_closed(&self) -> Option<u64> {
        self.epochs().last().map(|e| e["epoch"].as_u64().unwrap())
    }
}
