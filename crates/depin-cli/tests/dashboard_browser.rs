//! The dashboard in a real browser: the real `depin serve` with short epochs,
//! two real agents (`depin node init`, `depin node run`) paid over a few
//! epochs, then `tools/browser/dashboard_check.py` drives headless Chromium
//! through the pages (Playwright for Python, the distribution's Chromium) and
//! checks what they show against the API. Screenshots land in
//! `target/screenshots/` for people to look at.
//!
//! Without Chromium or the Python `playwright` package the test says
//! "skipped: …" and passes, unless `DEPIN_REQUIRE_BROWSER=1` (set by
//! `.ci/run`), which makes it fail instead.

mod common;

use common::depin;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every wait in this test is bounded by this.
const BOUND: Duration = Duration::from_secs(90);
const EPOCH_SECONDS: &str = "3";
const CHROMIUM: &str = "/usr/bin/chromium";

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    common::stdout(&o)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why the browser check cannot run here, if it cannot.
fn browser_missing() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "{CHROMIUM} not found; install the chromium package"
        ));
    }
    match Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(_) => {
            Some("the Python package playwright is not installed (pip install playwright)".into())
        }
        Err(e) => Some(format!("python3 is not runnable ({e})")),
    }
}

fn get(url: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.json::<Value>().await.unwrap()
    })
}

#[test]
fn dashboard_in_headless_chromium() {
    if let Some(why) = browser_missing() {
        depin_testkit::skip("DEPIN_REQUIRE_BROWSER", &why);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("pass.txt"), "correct horse\n").unwrap();
    let op = ok(depin(
        &[
            "keygen",
            "--out",
            "op.key",
            "--passphrase-file",
            "pass.txt",
            "--insecure-fast-kdf",
        ],
        dir,
    ))
    .trim()
    .to_string();
    let (_server, url) = common::serve(dir, EPOCH_SECONDS, BOUND);

    // Two devices: a catalogue profile (costs, payback, projection) and a
    // class the catalogue does not know (its alert and note).
    for (data_dir, class, sector) in [
        ("n1", "weather-station", "sensor"),
        ("n2", "homebrew-nas", "storage"),
    ] {
        ok(depin(
            &[
                "node",
                "init",
                "--sector",
                sector,
                "--operator-key",
                "op.key",
                "--coordinator",
                &url,
                "--data-dir",
                data_dir,
                "--hardware-class",
                class,
                "--watts",
                "6",
                "--passphrase-file",
                "pass.txt",
            ],
            dir,
        ));
    }
    ok(depin(
        &[
            "operator",
            "settings",
            "set",
            "--operator-key",
            "op.key",
            "--coordinator",
            &url,
            "--passphrase-file",
            "pass.txt",
            "--kwh-price",
            "0.3",
            "--token-price",
            "0.5",
        ],
        dir,
    ));
    // Both agents heartbeat at once through a few epochs.
    let agents: Vec<_> = ["n1", "n2"]
        .iter()
        .map(|d| {
            Command::new(common::DEPIN)
                .args([
                    "node",
                    "run",
                    "--data-dir",
                    d,
                    "--for-seconds",
                    "8",
                    "--interval-seconds",
                    "0.25",
                ])
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start depin node run")
        })
        .collect();
    for a in agents {
        ok(a.wait_with_output().unwrap());
    }

    // Wait until the epoch of the last heartbeat has closed, so the
    // operator's earnings no longer change while the browser looks.
    let policy = get(&format!("{url}/v1/policy"));
    let epoch_ms = policy["epoch_seconds"].as_i64().unwrap() * 1000;
    let genesis = policy["genesis_unix_ms"].as_i64().unwrap();
    let devices = get(&format!("{url}/v1/operators/{op}/devices"));
    let last_hb = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["telemetry"]["timestamp_ms"].as_i64().unwrap())
        .max()
        .unwrap();
    let last_hb_epoch = ((last_hb - genesis) / epoch_ms) as u64;
    let start = Instant::now();
    loop {
        let epochs = get(&format!("{url}/v1/epochs"));
        let last = epochs
            .as_array()
            .unwrap()
            .last()
            .map(|e| e["epoch"].as_u64().unwrap());
        if last >= Some(last_hb_epoch) {
            break;
        }
        assert!(
            start.elapsed() < BOUND,
            "epoch {last_hb_epoch} never closed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let balance = get(&format!("{url}/v1/balances/{op}"));
    assert!(balance["balance"].as_i64().unwrap() > 0, "{balance}");

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    let script = repo_root().join("tools/browser/dashboard_check.py");
    let run = Command::new("python3")
        .arg(&script)
        .args(["--url", &url, "--operator", &op, "--chromium", CHROMIUM])
        .arg("--out")
        .arg(&shots)
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    let out = common::stdout(&run);
    let err = common::stderr(&run);
    // The script's own lines ("ok …" / "FAIL …") are the test's log.
    println!("{out}");
    assert!(
        run.status.success(),
        "the browser checks failed:\n{out}\n{err}"
    );
    for page in ["home", "operator", "network"] {
        let shot = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            shot.display()
        );
    }
}
