//! A coordinator never limps on from a suspect state: when the ledger
//! invariant breaks (here: a balance changed behind its back), the closer
//! stops, `/healthz` says why, and the server stops with an error so a
//! supervisor can see it and an operator can look.

mod common;

use depin_rewards::RewardPolicy;
use depin_server::now_ms;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_invariant_violation_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let policy = RewardPolicy {
        genesis_unix_ms: now_ms(),
        heartbeat_interval_seconds: 1,
        close_grace_seconds: 1,
        min_uptime_bps: 1,
        ..RewardPolicy::devnet(2)
    };
    let server = common::start(dir.path(), policy).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let op = depin_protocol::device_keypair_from_seed([31; 32]);
    let dev = depin_protocol::device_keypair_from_seed([32; 32]);
    let r = http
        .post(format!("{base}/v1/devices"))
        .body(common::cert(&op, &dev, "rtx-3060", "1.0.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Money appears from nowhere: the balances no longer sum to zero.
    let store = depin_store::Store::open_in_dir(dir.path()).await.unwrap();
    sqlx::query("INSERT INTO balances (account, balance) VALUES ('protocol', 5)")
        .execute(store.pool())
        .await
        .unwrap();
    // The next close checks the ledger and must stop the server.
    let started = Instant::now();
    loop {
        match http.get(format!("{base}/healthz")).send().await {
            // Between the violation and the stop, /healthz says why.
            Ok(r) if r.status() == 503 => {
                let v: serde_json::Value = r.json().await.unwrap();
                assert_eq!(v["error"], "unhealthy");
                assert!(v["message"].as_str().unwrap().contains("invariant"), "{v}");
            }
            Ok(_) => {}
            Err(_) => break, // stopped listening
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server kept running on a broken ledger"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .expect("the server stops")
        .unwrap_err();
    assert!(err.to_string().contains("invariant"), "{err:#}");
    store.close().await;
}
