//! A GET never writes: the operator view integrates energy from the report
//! log without storing anything; the closing loop advances the stored
//! energy cursors in the background.

mod common;

use common::{cert, start_with};
use depin_protocol::{
    Envelope, Heartbeat, device_keypair_from_seed, encode_batch, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_server::now_ms;
use serde_json::Value;
use std::time::Duration;

async fn energy_rows(url: &str, dev: &depin_core::PublicKey) -> bool {
    let store = depin_store::Store::open_read_only(url).await.unwrap();
    store.device_energy(dev).await.unwrap().is_some()
}

async fn scenario(close_tick: Duration, expect_cursor: bool) {
    let dir = tempfile::tempdir().unwrap();
    let policy = RewardPolicy {
        genesis_unix_ms: now_ms() - 1_000,
        ..RewardPolicy::devnet(3_600)
    };
    let server = start_with(dir.path(), policy, |c| c.close_tick = close_tick).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let op = device_keypair_from_seed([51; 32]);
    let dev = device_keypair_from_seed([52; 32]);
    let r = http
        .post(format!("{base}/v1/devices"))
        .body(cert(&op, &dev, "rtx-3060", "1.0.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    for seq in 1..=3u64 {
        let t = now_ms();
        let h = Heartbeat {
            uptime_s: seq,
            temperature_centi_c: 5_000,
            firmware_version: "1.0.0".into(),
            power_mw: 200_000,
        };
        let batch = encode_batch(&[sign(&Envelope::new(public_key_of(&dev), seq, t, &h), &dev)]);
        let v: Value = http
            .post(format!("{base}/v1/reports"))
            .body(batch)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["accepted"], 1, "{v}");
    }
    let url = depin_store::sqlite_url(&dir.path().join("depin.sqlite"));
    let hex = public_key_of(&op).to_hex();
    let v: Value = http
        .get(format!("{base}/v1/operators/{hex}/economics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["total"]["energy_kwh"].as_f64().unwrap() > 0.0, "{v}");
    if expect_cursor {
        // The closing loop (every 50 ms here) stores the cursor soon.
        let mut waited = 0;
        while !energy_rows(&url, &public_key_of(&dev)).await {
            assert!(waited < 200, "the background pass never stored the cursor");
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += 1;
        }
    } else {
        // The closing loop ran once, before the heartbeats, and sleeps for
        // an hour: only the GET could have written, and it must not have.
        assert!(!energy_rows(&url, &public_key_of(&dev)).await);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_view_reads_only() {
    scenario(Duration::from_secs(3_600), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closing_loop_advances_energy_cursors() {
    scenario(Duration::from_millis(50), true).await;
}
