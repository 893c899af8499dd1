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
