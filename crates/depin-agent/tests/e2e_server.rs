//! The real agent against a real coordinator (`depin_server::start`) over
//! loopback: register, heartbeat, lose the coordinator, buffer, get it back on
//! the same data directory and port, resend, earn after an epoch close, and
//! lose no report on the way.

use depin_agent::{InitParams, RunOptions, backoff::Backoff, init, now_ms};
use depin_client::Client;
use depin_core::Sector;
use depin_protocol::{device_keypair_from_seed, generate_signing_key, public_key_of};
use depin_rewards::RewardPolicy;
use depin_server::{RunningServer, ServerConfig, start};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Four-second epochs with a 1 s heartbeat. The close grace is longer than the
/// outage the test causes, as a real network's 30 minutes is longer than a
/// coordinator restart: reports buffered during the outage are resent before
/// their epoch may close.
fn policy() -> RewardPolicy {
    RewardPolicy {
        close_grace_seconds: 6,
        ..RewardPolicy::devnet(4)
    }
}

async fn serve(addr: SocketAddr, db: &Path) -> RunningServer {
    let mut config = ServerConfig::new(addr, depin_store::sqlite_url(db), policy());
    config.close_tick = Duration::from_millis(200);
    start(config).await.expect("server starts")
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop(server: RunningServer) {
    tokio::time::timeout(Duration::from_secs(15), server.stop())
        .await
        .expect("the server stops within 15 s")
        .expect("the server stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_survives_a_coordinator_restart_and_earns() {
    tokio::time::timeout(Duration::from_secs(60), scenario())
        .await
        .expect("the scenario finishes within 60 s");
}

async fn scenario() {
    let test_start = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("coordinator").join("depin.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let node_dir = tmp.path().join("node");

    eprintln!("[e2e] start");
    let server = serve("127.0.0.1:0".parse().unwrap(), &db).await;
    let addr = server.addr;
    let url = format!("http://{addr}");
    let client = Client::new(&url).unwrap();

    // Onboard: the operator key certifies a new device key.
    let operator = generate_signing_key(&mut rand::rngs::OsRng);
    let params = InitParams {
        data_dir: node_dir.clone(),
        coordinator: url.clone(),
        sector: Sector::Compute,
        hardware_class: "test-rig".into(),
        firmware_version: "9.9.9".into(),
        declared_watts: 42.0,
        lat: None,
        lon: None,
    };
    let done = init(
        &params,
        &operator,
        || device_keypair_from_seed([77; 32]),
        now_ms(),
    )
    .await
    .unwrap();
    let device = done.config.device;
    assert_eq!(done.device.operator, public_key_of(&operator));
    let again = init(&params, &operator, || unreachable!(), now_ms())
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already initialised"), "{again}");

    eprintln!("[e2e] initialised");
    // Run the agent with a fast cadence and short backoff.
    let mut opts = RunOptions::new(node_dir.clone());
    opts.interval = Some(Duration::from_millis(500));
    opts.backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(400),
    };
    opts.request_timeout = Duration::from_secs(2);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(depin_agent::run(opts, async move {
        let _ = stop_rx.await;
    }));

    wait_for(
        "first accepted heartbeats",
        Duration::from_secs(10),
        || async {
            client
                .device(&device)
                .await
                .ok()
                .and_then(|d| d.last_seq)
                .is_some_and(|s| s >= 3)
        },
    )
    .await;

    eprintln!("[e2e] heartbeats accepted");
    // Outage: the coordinator goes away; the agent keeps heartbeating into its spool.
    stop(server).await;
    eprintln!("[e2e] server stopped");
    let seq_at_stop = depin_agent::status::Status::load(&node_dir)
        .last_seq_created
        .unwrap();
    wait_for(
        "heartbeats buffered during the outage",
        Duration::from_secs(10),
        || async {
            let s = depin_agent::status::Status::load(&node_dir);
            s.pending >= 3 && s.consecutive_failures >= 1
        },
    )
    .await;
    let buffered = depin_agent::status::Status::load(&node_dir);
    assert!(buffered.last_seq_created.unwrap() >= seq_at_stop + 3);

    // The coordinator comes back on the same data and port; the agent resends.
    let server = serve(addr, &db).await;
    eprintln!("[e2e] server restarted");
    let outage_last = buffered.last_seq_created.unwrap();
    wait_for(
        "buffered heartbeats resent",
        Duration::from_secs(10),
        || async {
            client
                .device(&device)
                .await
                .ok()
                .and_then(|d| d.last_seq)
                .is_some_and(|s| s >= outage_last)
        },
    )
    .await;

    eprintln!("[e2e] resent");
    // An epoch with the device's heartbeats closes and pays its operator.
    let op_hex = public_key_of(&operator).to_hex();
    wait_for(
        "a reward for the operator",
        Duration::from_secs(30),
        || async { client.balance(&op_hex).await.is_ok_and(|b| b.balance > 0) },
    )
    .await;

    eprintln!("[e2e] rewarded");
    stop_tx.send(()).unwrap();
    let summary = agent.await.unwrap().unwrap();
    assert_eq!(summary.pending, 0, "{summary:?}");
    assert_eq!(summary.dropped, 0, "{summary:?}");
    let status = depin_agent::status::Status::load(&node_dir);
    assert!(status.dropped_by_reason.is_empty(), "{status:?}");
    let view = client.device(&device).await.unwrap();
    assert_eq!(view.last_seq, summary.last_seq);
    let t = view.telemetry.expect("telemetry stored");
    assert_eq!(t.firmware_version, "9.9.9");
    assert_eq!(t.power_w, 42.0);
    stop(server).await;

    // Every sequence number the agent created is in the coordinator's report log.
    let store = depin_store::Store::open(&depin_store::sqlite_url(&db))
        .await
        .unwrap();
    let p = policy();
    let first_epoch = p.epoch_of(done.device.registered_ms).unwrap();
    let last_epoch = p.epoch_of(now_ms()).unwrap();
    let mut stored = BTreeSet::new();
    for e in first_epoch..=last_epoch {
        for r in store.device_reports(&device, e).await.unwrap() {
            assert!(stored.insert(r.seq), "seq {} stored twice", r.seq);
        }
    }
    let created: BTreeSet<u64> = (summary.first_seq.unwrap()..=summary.last_seq.unwrap()).collect();
    let missing: Vec<u64> = created.difference(&stored).copied().collect();
    assert!(missing.is_empty(), "created but not stored: {missing:?}");
    assert_eq!(summary.heartbeats_created as usize, created.len());
    store.close().await;
    assert!(
        test_start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        test_start.elapsed()
    );
}
