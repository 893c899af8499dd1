//! The agent's sending rules against a scripted coordinator (a small axum
//! stub with the real replay rule), for the failures a real server rarely
//! produces on demand: 5xx, lost answers, per-report refusals, a batch refused
//! as a whole.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use depin_agent::backoff::Backoff;
use depin_agent::node::{DEVICE_KEY_FILE, NODE_FILE, NodeConfig, store_device_key};
use depin_agent::{RunOptions, run};
use depin_core::Sector;
use depin_protocol::{decode_batch, decode_signed, device_keypair_from_seed, public_key_of};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Script {
    /// Answer this many requests with 503 without looking at them.
    fail_next: u32,
    /// Store this many batches, then answer 500 (the answer is "lost").
    lose_answers: u32,
    /// Refuse this many requests as a whole with 400 `malformed` when the batch
    /// contains the sequence number in `poison`.
    poison: Option<u64>,
    /// Refuse these sequence numbers individually.
    refuse: BTreeSet<u64>,
    last_seq: Option<u64>,
    stored: Vec<u64>,
    requests: u32,
}

type Shared = Arc<Mutex<Script>>;

fn error(status: StatusCode, code: &str) -> (StatusCode, String) {
    (
        status,
        json!({"error": code, "message": format!("scripted {code}")}).to_string(),
    )
}

async fn reports(State(s): State<Shared>, body: Bytes) -> (StatusCode, String) {
    let mut s = s.lock().unwrap();
    s.requests += 1;
    if s.fail_next > 0 {
        s.fail_next -= 1;
        return error(StatusCode::SERVICE_UNAVAILABLE, "internal");
    }
    let raws = match decode_batch(&body, 10_000) {
        Ok(r) => r,
        Err(_) => return error(StatusCode::BAD_REQUEST, "malformed"),
    };
    let seqs: Vec<u64> = raws
        .iter()
        .map(|r| decode_signed(r).unwrap().envelope.seq)
        .collect();
    if let Some(p) = s.poison
        && seqs.contains(&p)
    {
        return error(StatusCode::BAD_REQUEST, "malformed");
    }
    let mut accepted = 0;
    let mut rejected = Vec::new();
    for (i, seq) in seqs.iter().enumerate() {
        if s.last_seq.is_some_and(|l| *seq <= l) {
            rejected.push(json!({"index": i, "reason": "replayed_sequence"}));
        } else if s.refuse.contains(seq) {
            rejected.push(json!({"index": i, "reason": "bad_payload"}));
        } else {
            s.last_seq = Some(*seq);
            s.stored.push(*seq);
            accepted += 1;
        }
    }
    if s.lose_answers > 0 {
        s.lose_answers -= 1;
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    }
    (
        StatusCode::OK,
        json!({"accepted": accepted, "rejected": rejected}).to_string(),
    )
}

async fn stub(script: Script) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(script));
    let app = Router::new()
        .route(
            "/v1/policy",
            get(|| async {
                json!({"policy_id": "v1-test", "epoch_seconds": 60, "heartbeat_interval_seconds": 5, "genesis_unix_ms": 0})
                    .to_string()
            }),
        )
        .route("/v1/devices/{d}", get(|| async { error(StatusCode::NOT_FOUND, "not_found") }))
        .route("/v1/reports", post(reports))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), shared)
}

fn node_dir(dir: &Path, coordinator: &str) -> PathBuf {
    let key = device_keypair_from_seed([5; 32]);
    store_device_key(&dir.join(DEVICE_KEY_FILE), &key).unwrap();
    let config = NodeConfig {
        version: 1,
        device: public_key_of(&key),
        operator: public_key_of(&device_keypair_from_seed([6; 32])),
        device_key_file: DEVICE_KEY_FILE.into(),
        coordinator: coordinator.into(),
        sector: Sector::Sensor,
        hardware_class: "stub".into(),
        firmware_version: "1.0.0".into(),
        declared_watts: 3.0,
        lat: None,
        lon: None,
        registered_ms: 0,
    };
    std::fs::write(dir.join(NODE_FILE), serde_json::to_string(&config).unwrap()).unwrap();
    dir.to_path_buf()
}

fn options(dir: PathBuf, heartbeats: u64) -> RunOptions {
    let mut o = RunOptions::new(dir);
    o.max_heartbeats = Some(heartbeats);
    o.interval = Some(Duration::from_millis(50));
    o.backoff = Backoff {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(80),
    };
    o.request_timeout = Duration::from_secs(2);
    o.drain_timeout = Duration::from_secs(5);
    o
}

#[tokio::test]
async fn retries_5xx_and_lost_answers_without_loss_or_duplicates() {
    let (url, script) = stub(Script {
        fail_next: 3,
        lose_answers: 2,
        ..Script::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = node_dir(tmp.path(), &url);
    let summary = run(options(dir.clone(), 8), std::future::pending())
        .await
        .unwrap();
    let s = script.lock().unwrap();
    assert_eq!(
        s.stored,
        (1..=8).collect::<Vec<_>>(),
        "every heartbeat stored once, in order"
    );
    assert_eq!(summary.pending, 0);
    assert_eq!(summary.dropped, 0);
    assert!(
        summary.already_had >= 1,
        "a lost answer is resolved by replayed_sequence: {summary:?}"
    );
    assert_eq!(summary.accepted + summary.already_had, 8);
    let status = depin_agent::status::Status::load(&dir);
    assert_eq!(status.pending, 0);
    assert_eq!(status.state, "stopped");
}

#[tokio::test]
async fn refused_reports_are_dropped_and_counted() {
    let (url, script) = stub(Script {
        refuse: [2, 4].into_iter().collect(),
        poison: Some(6),
        ..Script::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = node_dir(tmp.path(), &url);
    let summary = run(options(dir.clone(), 7), std::future::pending())
        .await
        .unwrap();
    let s = script.lock().unwrap();
    assert_eq!(s.stored, vec![1, 3, 5, 7]);
    assert_eq!(summary.pending, 0);
    assert_eq!(summary.dropped, 3);
    let status = depin_agent::status::Status::load(&dir);
    assert_eq!(status.dropped_by_reason.get("bad_payload"), Some(&2));
    assert_eq!(
        status.dropped_by_reason.get("malformed"),
        Some(&1),
        "{status:?}"
    );
}

#[tokio::test]
async fn nothing_is_lost_across_an_agent_restart_while_the_coordinator_is_down() {
    let (url, script) = stub(Script {
        fail_next: u32::MAX,
        ..Script::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = node_dir(tmp.path(), &url);
    let mut o = options(dir.clone(), 4);
    o.drain_timeout = Duration::from_millis(100);
    let first = run(o, std::future::pending()).await.unwrap();
    assert_eq!(first.pending, 4);
    script.lock().unwrap().fail_next = 0;
    let second = run(options(dir.clone(), 3), std::future::pending())
        .await
        .unwrap();
    assert_eq!(second.first_seq, Some(5), "numbering continues");
    assert_eq!(second.pending, 0);
    assert_eq!(script.lock().unwrap().stored, (1..=7).collect::<Vec<_>>());
    let status = depin_agent::status::Status::load(&dir);
    assert_eq!(
        status.heartbeats_created, 7,
        "totals are cumulative across runs"
    );
    assert_eq!(status.accepted_total, 7);
}
