//! `depin audit-epoch` and `depin claims` as an operator runs them: on an
//! untouched devnet store the audit passes; after one reward is altered it
//! fails with a non-zero exit and names the device.

use std::process::{Command, Output};

fn depin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_depin"))
        .args(args)
        .output()
        .expect("run depin")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn audit_passes_untouched_and_fails_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let o = depin(&[
        "devnet",
        "--nodes",
        "20",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let db = out.join("depin.sqlite");
    let url = format!("sqlite://{}", db.display());

    for epoch in ["0", "1"] {
        let o = depin(&["audit-epoch", "--database-url", &url, "--epoch", epoch]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("OK"), "{}", text(&o));
    }

    // claims: the file is the tree the devnet published.
    let claims = dir.path().join("c.json");
    let o = depin(&[
        "claims",
        "--database-url",
        &url,
        "--epoch",
        "1",
        "--out",
        claims.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(&claims).unwrap(),
        std::fs::read(out.join("epochs/1/claims.json")).unwrap()
    );

    // Alter a single reward.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let device = rt.block_on(async {
        let store = depin_store::Store::open(&url).await.unwrap();
        let lines = store.reward_lines(1).await.unwrap();
        let line = lines.iter().find(|l| l.reward > 0).expect("someone earned");
        sqlx::query("UPDATE reward_lines SET reward = reward + 1 WHERE epoch = 1 AND device = $1")
            .bind(line.device.0.to_vec())
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
        line.device
    });
    let o = depin(&["audit-epoch", "--database-url", &url, "--epoch", "1"]);
    assert!(
        !o.status.success(),
        "tampered store must fail the audit: {}",
        text(&o)
    );
    assert!(
        text(&o).contains("MISMATCH") && text(&o).contains(&device.to_hex()),
        "{}",
        text(&o)
    );
    // The untouched epoch still passes.
    assert!(
        depin(&["audit-epoch", "--database-url", &url, "--epoch", "0"])
            .status
            .success()
    );

    // Clear errors for a wrong epoch and a missing store.
    let o = depin(&["audit-epoch", "--database-url", &url, "--epoch", "99"]);
    assert!(
        !o.status.success() && text(&o).contains("epoch 99 is not closed"),
        "{}",
        text(&o)
    );
    let o = depin(&[
        "audit-epoch",
        "--database-url",
        "sqlite:///nonexistent/x.sqlite",
        "--epoch",
        "0",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("no store at"),
        "{}",
        text(&o)
    );
}

/// The devnet's claim files load in the JavaScript OpenZeppelin library
/// itself and give the root the devnet published (DESIGN invariant 6).
#[test]
fn devnet_claims_load_in_the_javascript_library() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tools = root.join("tools/oz-merkle");
    if !tools
        .join("node_modules/@openzeppelin/merkle-tree")
        .is_dir()
    {
        depin_testkit::skip(
            "DEPIN_REQUIRE_NODE",
            "tools/oz-merkle/node_modules is missing: run `npm ci --prefix tools/oz-merkle` to check claims against the JavaScript library",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let o = depin(&[
        "devnet",
        "--nodes",
        "30",
        "--epochs",
        "3",
        "--seed",
        "11",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let epochs = summary["epochs"].as_array().expect("summary.epochs");
    assert_eq!(epochs.len(), 3);
    for e in epochs {
        let n = e["epoch"].as_u64().unwrap();
        let file = out.join(format!("epochs/{n}/claims.json"));
        let o = Command::new("node")
            .arg(tools.join("verify.mjs"))
            .arg(&file)
            .output()
            .expect("run node");
        assert!(o.status.success(), "epoch {n}: {}", text(&o));
        let js: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            js["root"], e["merkle_root"],
            "epoch {n}: JS root differs from the devnet's"
        );
        assert!(js["leaves"].as_u64().unwrap() > 0);
    }
}

/// An auditor with a read-only copy of a store can audit it and export
/// claims; `serve` on a read-only directory fails at once and says why
/// (it used to fail only after 30 s with "pool timed out").
#[test]
fn audit_works_on_a_read_only_copy_and_serve_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let o = depin(&[
        "devnet",
        "--nodes",
        "12",
        "--epochs",
        "2",
        "--seed",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let Some(fs) = depin_store::testing::TestTmpfs::mount(64 << 20) else {
        return;
    };
    std::fs::copy(out.join("depin.sqlite"), fs.path().join("depin.sqlite")).unwrap();
    fs.remount_read_only();
    let url = format!("sqlite://{}", fs.path().join("depin.sqlite").display());
    for epoch in ["0", "1"] {
        let o = depin(&["audit-epoch", "--database-url", &url, "--epoch", epoch]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("OK"), "{}", text(&o));
    }
    let claims = dir.path().join("c.json");
    let o = depin(&[
        "claims",
        "--database-url",
        &url,
        "--epoch",
        "1",
        "--out",
        claims.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_depin"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(fs.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded wait: it must have given up long before the old 30 s time-out.
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("serve on a read-only directory is still running after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let o = child.wait_with_output().unwrap();
    assert!(!status.success());
    let msg = text(&o);
    assert!(
        msg.contains("read-only") || msg.contains("readonly"),
        "{msg}"
    );
    assert!(!msg.contains("pool timed out"), "{msg}");
}
