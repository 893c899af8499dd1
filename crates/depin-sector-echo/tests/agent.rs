//! The example sector's driver in the real node agent, against a real
//! coordinator over loopback: two compute devices heartbeat; one agent
//! carries the echo driver, pulls each challenge with a signed
//! `GET /v1/work`, answers it through its spool and is scored in full; the
//! other has no driver and misses every challenge (`challenge_missed`). The
//! driver's agent is stopped and started again between challenges, and no
//! answer is sent twice (the coordinator would refuse a second one, which
//! the agent would count as dropped).

use depin_agent::{Drivers, InitParams, RunOptions, backoff::Backoff, init, now_ms};
use depin_core::Sector;
use depin_protocol::{device_keypair_from_seed, public_key_of};
use depin_rewards::RewardPolicy;
use depin_sector_echo::{EchoDriver, EchoPlugin};
use depin_server::{RunningServer, SectorHandle, ServerConfig, start};
use depin_store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Four-second epochs: a challenge ordered at a close is due at the end of
/// the next epoch, so an agent polling every 300 ms has about 3 s.
fn policy() -> RewardPolicy {
    RewardPolicy::devnet(4)
}

async fn serve(db: &Path) -> RunningServer {
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        depin_store::sqlite_url(db),
        policy(),
    );
    config.close_tick = Duration::from_millis(200);
    config.sectors = vec![SectorHandle::new(Arc::new(EchoPlugin))];
    start(config).await.expect("server starts")
}

fn options(dir: &Path, with_driver: bool) -> RunOptions {
    let mut opts = RunOptions::new(dir.to_path_buf());
    opts.interval = Some(Duration::from_millis(400));
    opts.work_poll = Some(Duration::from_millis(300));
    opts.backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(400),
    };
    opts.request_timeout = Duration::from_secs(2);
    if with_driver {
        opts.drivers = Drivers::new(vec![Arc::new(EchoDriver)]).unwrap();
    }
    opts
}

type AgentTask = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<depin_agent::RunSummary, depin_agent::AgentError>>,
);

fn spawn_agent(opts: RunOptions) -> AgentTask {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(depin_agent::run(opts, async move {
        let _ = rx.await;
    }));
    (tx, handle)
}

async fn stop_agent((tx, handle): AgentTask) -> depin_agent::RunSummary {
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(15), handle)
        .await
        .expect("the agent stops")
        .unwrap()
        .expect("the agent ran cleanly")
}

async fn init_node(url: &str, dir: PathBuf, seed: u8, op: &depin_protocol::SigningKey) {
    let params = InitParams {
        data_dir: dir,
        coordinator: url.to_string(),
        sector: Sector::Compute,
        hardware_class: "rtx-3060".into(),
        firmware_version: "1.0.0".into(),
        declared_watts: 170.0,
        lat: None,
        lon: None,
    };
    init(
        &params,
        op,
        || device_keypair_from_seed([seed; 32]),
        now_ms(),
    )
    .await
    .unwrap();
}

/// Waits, polling the store, until `check` holds.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_echo_driver_answers_every_challenge_and_the_driverless_one_misses_them() {
    tokio::time::timeout(Duration::from_secs(90), scenario())
        .await
        .expect("the scenario finishes within 90 s");
}

async fn scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("depin.sqlite");
    let server = serve(&db).await;
    let url = format!("http://{}", server.addr);
    let op = device_keypair_from_seed([1; 32]);
    let (with_dir, without_dir) = (tmp.path().join("echo"), tmp.path().join("plain"));
    init_node(&url, with_dir.clone(), 2, &op).await;
    init_node(&url, without_dir.clone(), 3, &op).await;
    let (with_key, without_key) = (
        public_key_of(&device_keypair_from_seed([2; 32])),
        public_key_of(&device_keypair_from_seed([3; 32])),
    );
    let store = Store::open(&depin_store::sqlite_url(&db)).await.unwrap();
    let p = policy();
    let start_epoch = p.epoch_of(now_ms()).unwrap();

    let plain = spawn_agent(options(&without_dir, false));
    let echo = spawn_agent(options(&with_dir, true));

    // The first answer is spooled and sent; then the agent stops and starts
    // again on the same directory, between or during challenges.
    wait_for("the first answer", Duration::from_secs(30), || async {
        depin_agent::status::Status::load(&with_dir).answers_created >= 1
    })
    .await;
    let first = stop_agent(echo).await;
    assert!(first.answers_created >= 1, "{first:?}");
    let echo = spawn_agent(options(&with_dir, true));

    // Wait for two closed epochs whose challenges were ordered while both
    // agents ran: each close scores the challenges of the one before.
    let scored = |e: u64| {
        let store = store.clone();
        async move {
            store
                .reward_lines(e)
                .await
                .map(|l| l.len() == 2)
                .unwrap_or(false)
        }
    };
    let from = start_epoch + 2;
    wait_for("two scored epochs", Duration::from_secs(45), || {
        let s = scored(from + 1);
        async move { s.await }
    })
    .await;

    let second = stop_agent(echo).await;
    let plain = stop_agent(plain).await;
    // No answer was refused (a second answer to one order would be).
    assert_eq!(first.dropped + second.dropped, 0, "{first:?} {second:?}");
    assert!(second.answers_created >= 1, "{second:?}");
    assert_eq!(plain.answers_created, 0);
    let status = depin_agent::status::Status::load(&with_dir);
    assert_eq!(status.driver.as_deref(), Some("echo"));
    assert!(status.dropped_by_reason.is_empty(), "{status:?}");
    assert_eq!(depin_agent::status::Status::load(&without_dir).driver, None);

    for e in from..=from + 1 {
        let lines = store.reward_lines(e).await.unwrap();
        let line = |k| lines.iter().find(|l| l.device == k).unwrap();
        let (w, wo) = (line(with_key), line(without_key));
        assert!(
            !w.reasons.contains("challenge_missed") && w.score_ppm > 0,
            "epoch {e}: the driver's device {w:?}"
        );
        assert!(
            wo.reasons.contains("challenge_missed") && wo.score_ppm == 0,
            "epoch {e}: the driverless device {wo:?}"
        );
    }
    // Every answer the coordinator stored is one the driver's agent made,
    // once per order.
    let work = store.work_issued(from).await.unwrap();
    let mine: Vec<_> = work.iter().filter(|w| w.device == with_key).collect();
    assert!(!mine.is_empty());
    assert!(
        mine.iter().all(|w| w.answer_seq.is_some()),
        "every challenge of epoch {from} answered: {mine:?}"
    );
    tokio::time::timeout(Duration::from_secs(15), server.stop())
        .await
        .unwrap()
        .unwrap();
}
