//! A full disk under a running coordinator, on a real small file system
//! (tmpfs): reports flow over loopback HTTP while the disk fills and frees.
//! The rule under test: a report is acknowledged only once its transaction
//! is durably committed. While the disk is full the server answers
//! `503 storage_unavailable` and acknowledges nothing; once space is free it
//! recovers by itself; and after shutdown every acknowledged report is in
//! the store. (Before the fix, half the requests still got 200 after the
//! first "database or disk is full", and all of it vanished at shutdown.)

mod common;

use depin_protocol::{
    Envelope, Heartbeat, SigningKey, device_keypair_from_seed, encode_batch, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_server::now_ms;
use depin_store::Store;
use depin_store::testing::TestTmpfs;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;

fn hb(dev: &SigningKey, seq: u64) -> depin_protocol::Signed {
    let h = Heartbeat {
        uptime_s: seq,
        temperature_centi_c: 4_000,
        // Long enough that reports take real room on the small disk.
        firmware_version: format!("1.0.0-{}", "x".repeat(50)),
        power_mw: 5_000,
    };
    sign(&Envelope::new(public_key_of(dev), seq, now_ms(), &h), dev)
}

/// Fills the file system with one file until it refuses more.
fn fill(path: &std::path::Path) -> std::fs::File {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // Smaller pieces use up what is left.
    while f.write_all(&[0u8; 512]).is_ok() {}
    let _ = f.sync_all();
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_no_acknowledged_report() {
    let Some(fs) = TestTmpfs::mount(24 << 20) else {
        return;
    };
    let policy = RewardPolicy {
        genesis_unix_ms: now_ms() - 1_000,
        max_reports_per_device_per_epoch: 1_000_000,
        ..RewardPolicy::devnet(3_600)
    };
    let server = common::start(fs.path(), policy.clone()).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let op = device_keypair_from_seed([1; 32]);
    let devs: Vec<SigningKey> = (10..20)
        .map(|i| device_keypair_from_seed([i; 32]))
        .collect();
    for d in &devs {
        let r = http
            .post(format!("{base}/v1/devices"))
            .body(common::cert(&op, d, "rtx-3060", "1.0.0"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    let mut acked: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut pending: Vec<(usize, u64)> = Vec::new();
    let mut next_seq = 1u64;
    let mut unavailable = 0u32;
    let mut filler: Option<std::fs::File> = None;
    let filler_path = fs.path().join("filler");
    // Phases by round: flowing, full (filled at round 20), freed (round 60).
    let mut recovered_at = None;
    for round in 0..200u32 {
        if round == 20 {
            filler = Some(fill(&filler_path));
        }
        if round == 60 {
            drop(filler.take());
            std::fs::remove_file(&filler_path).unwrap();
        }
        // Resend what was not acknowledged, plus fresh reports, as an agent does.
        if pending.is_empty() {
            for i in 0..devs.len() {
                for k in 0..20 {
                    pending.push((i, next_seq + k));
                }
            }
            next_seq += 20;
        }
        let batch: Vec<_> = pending.iter().map(|&(i, s)| hb(&devs[i], s)).collect();
        let resp = http
            .post(format!("{base}/v1/reports"))
            .body(encode_batch(&batch))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap();
        match status {
            200 => {
                let refused: BTreeSet<u64> = v["rejected"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        // A resend of something stored but not acknowledged
                        // (an ambiguous commit) comes back as a replay.
                        assert_eq!(r["reason"], "replayed_sequence", "{v}");
                        r["index"].as_u64().unwrap()
                    })
                    .collect();
                for (k, p) in pending.iter().enumerate() {
                    if !refused.contains(&(k as u64)) {
                        acked.insert(*p);
                    }
                }
                pending.clear();
                if round > 60 && recovered_at.is_none() {
                    recovered_at = Some(round);
                }
                if round > 60 && recovered_at.is_some_and(|r| round >= r + 5) {
                    break;
                }
            }
            503 => {
                assert_eq!(v["error"], "storage_unavailable", "{v}");
                assert!(
                    v["message"].as_str().unwrap().contains("nothing was kept"),
                    "{v}"
                );
                unavailable += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(
        unavailable > 0,
        "the disk never filled: the test proves nothing"
    );
    assert!(
        recovered_at.is_some(),
        "the server did not recover once space was free"
    );
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // Operators see it in the metrics: the storage errors were counted.
    let scrape = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors: f64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("depin_store_errors_total{during=\"request\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no request store errors in\n{scrape}"));
    assert!(
        errors >= unavailable as f64,
        "{errors} store errors for {unavailable} 503s"
    );
    server.stop().await.unwrap();

    // Every acknowledged report is in the store, reopened from disk.
    let store = Store::open_in_dir(fs.path()).await.unwrap();
    let epoch = policy.epoch_of(now_ms()).unwrap();
    let mut stored: BTreeSet<(usize, u64)> = BTreeSet::new();
    for (i, d) in devs.iter().enumerate() {
        for e in epoch.saturating_sub(1)..=epoch {
            for r in store.device_reports(&public_key_of(d), e).await.unwrap() {
                stored.insert((i, r.seq));
            }
        }
    }
    let lost: Vec<_> = acked.difference(&stored).take(5).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged reports lost, e.g. {lost:?}",
        acked.difference(&stored).count()
    );
    assert!(
        acked.len() > 1_000,
        "only {} reports acknowledged",
        acked.len()
    );
    store.close().await;
}
