//! A seeded load and fault test against the real `depin serve` binary:
//! devices send signed heartbeats over loopback the way agents do (resending
//! whatever was not acknowledged), while the coordinator is killed with
//! SIGKILL and restarted at random points, the disk fills and frees (SQLite
//! on a small tmpfs), and a second replica joins and is killed too
//! (PostgreSQL). Bounded in time (about 20 s of load per backend).
//!
//! At the end: every acknowledged report is in the store, no epoch was closed
//! twice (the minted total equals the sum of the closed epochs' mints), the
//! ledger invariant holds and `depin audit-epoch` passes for every epoch.
//! The seed is printed; `DEPIN_CHAOS_SEED=N` replays a run's fault schedule.

use depin_coordinator::Coordinator;
use depin_core::Sector;
use depin_protocol::{
    DeviceCertificate, Envelope, Heartbeat, Signed, SigningKey, device_keypair_from_seed,
    encode_batch, public_key_of, sign,
};
use depin_store::Store;
use depin_store::testing::{TestPostgres, TestTmpfs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEPIN: &str = env!("CARGO_BIN_EXE_depin");
const EPOCH_SECONDS: u64 = 3;
const DEVICES: u8 = 40;
const LOAD: Duration = Duration::from_secs(18);

fn now_ms() -> i64 {
    depin_server::now_ms()
}

fn seed() -> u64 {
    std::env::var("DEPIN_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261202)
}

fn free_addr() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// One `depin serve` process that can be killed and started again on the
/// same address and store.
struct Replica {
    addr: String,
    store_args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
    restarts: u32,
}

impl Replica {
    fn new(store_args: Vec<String>, log: PathBuf) -> Replica {
        Replica {
            addr: free_addr(),
            store_args,
            child: None,
            log,
            restarts: 0,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(DEPIN)
            .args(["serve", "--listen", &self.addr, "--epoch-seconds"])
            .arg(EPOCH_SECONDS.to_string())
            .args(&self.store_args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start depin serve");
        self.child = Some(child);
    }

    /// Starts the process again if it exited by itself (for example at start
    /// on a full disk), as a supervisor such as systemd would.
    fn ensure_running(&mut self) {
        let exited = match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_some(),
            None => false,
        };
        if exited {
            self.child = None;
            self.restarts += 1;
            self.start();
        }
    }

    /// SIGKILL: no shutdown, no checkpoint, mid-whatever.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.restarts += 1;
        }
    }

    /// SIGTERM and wait: the graceful stop.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let started = Instant::now();
            while c.try_wait().unwrap().is_none() {
                if started.elapsed() > Duration::from_secs(15) {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn cert(op: &SigningKey, dev: &SigningKey) -> Vec<u8> {
    let c = DeviceCertificate {
        device_key: public_key_of(dev),
        operator_key: public_key_of(op),
        sector: Sector::Compute,
        hardware_class: "rtx-3060".into(),
        firmware_version: "1.0.0".into(),
        location: None,
        issued_at_ms: now_ms(),
        device_signature: None,
    }
    .signed_by_device(dev);
    sign(&Envelope::new(public_key_of(op), 0, now_ms(), &c), op).encode()
}

fn heartbeat(dev: &SigningKey, seq: u64) -> Signed {
    let h = Heartbeat {
        uptime_s: seq,
        temperature_centi_c: 4_000,
        firmware_version: "1.0.0".into(),
        power_mw: 150_000,
    };
    sign(&Envelope::new(public_key_of(dev), seq, now_ms(), &h), dev)
}

/// What the devices know: what was acknowledged, and what waits for a resend.
#[derive(Default)]
struct Ledger {
    /// (device index, seq) the coordinator acknowledged (accepted, or
    /// "replayed" on a resend: stored by an earlier attempt whose answer was lost).
    acked: BTreeSet<(u8, u64)>,
    pending: BTreeMap<u8, Vec<Signed>>,
    next_seq: BTreeMap<u8, u64>,
    statuses: BTreeMap<String, u64>,
}

async fn wait_healthy(http: &reqwest::Client, url: &str) {
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{url} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One round: every device adds a heartbeat; its pending reports (oldest
/// first) go to `url` in one batch.
async fn send_round(http: &reqwest::Client, url: &str, devs: &[SigningKey], book: &Mutex<Ledger>) {
    let batch: Vec<(u8, Signed)> = {
        let mut b = book.lock().unwrap();
        let mut out = Vec::new();
        for (i, d) in devs.iter().enumerate() {
            let i = i as u8;
            let seq = {
                let n = b.next_seq.entry(i).or_insert(1);
                let s = *n;
                *n += 1;
                s
            };
            let p = b.pending.entry(i).or_default();
            p.push(heartbeat(d, seq));
            for s in p.iter() {
                out.push((i, s.clone()));
            }
        }
        out
    };
    let body = encode_batch(&batch.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>());
    let resp = http
        .post(format!("{url}/v1/reports"))
        .body(body)
        .send()
        .await;
    // Read the whole answer before taking the lock: no guard across an await.
    let (status, answer) = match resp {
        Ok(r) => {
            let status = r.status().as_u16();
            (Some(status), r.json::<Value>().await.ok())
        }
        Err(_) => (None, None),
    };
    let mut b = book.lock().unwrap();
    let Some(status) = status else {
        *b.statuses.entry("connection".into()).or_default() += 1;
        return;
    };
    *b.statuses.entry(status.to_string()).or_default() += 1;
    if status != 200 {
        // 503 (storage), 429 or a dying server: nothing was acknowledged.
        return;
    }
    let Some(v) = answer else {
        return;
    };
    let rejected: BTreeMap<u64, String> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (k, (i, s)) in batch.iter().enumerate() {
        let key = (*i, s.envelope.seq);
        match rejected.get(&(k as u64)).map(String::as_str) {
            None | Some("replayed_sequence") => {
                b.acked.insert(key);
            }
            // Too old to be admitted any more: an agent counts it as lost.
            Some("late_report") | Some("stale_timestamp") | Some("rate_limited") => {}
            Some(other) => panic!("report {key:?} refused: {other}"),
        }
        *b.statuses
            .entry(format!(
                "report:{}",
                rejected.get(&(k as u64)).map_or("accepted", |r| r.as_str())
            ))
            .or_default() += 1;
    }
    // Everything in this batch got its verdict.
    b.pending.clear();
}

/// Fills the file system with one file until it refuses more.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0u8; 512]).is_ok() {}
    let _ = f.sync_all();
}

/// The checks at the end, on the stopped coordinator's store.
async fn verify(store: &Store, devs: &[SigningKey], book: &Ledger, store_url: &str) {
    let mut stored: BTreeSet<(u8, u64)> = BTreeSet::new();
    // Closing starts at the epoch of the first registration, before any report.
    let closed = store.epochs().await.unwrap();
    let first = closed.first().map_or(0, |e| e.epoch);
    let last = store.last_closed_epoch().await.unwrap().unwrap_or(0) + 2;
    for (i, d) in devs.iter().enumerate() {
        for e in first..=last {
            for r in store.device_reports(&public_key_of(d), e).await.unwrap() {
                stored.insert((i as u8, r.seq));
            }
        }
    }
    let lost: Vec<_> = book.acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged reports lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        book.acked.len() > 500,
        "too little load to prove anything: {:?}",
        book.statuses
    );

    // No epoch closed twice: the mint account paid out exactly what the
    // closed epochs say they minted, and every epoch audits clean.
    let epochs = store.epochs().await.unwrap();
    assert!(epochs.len() >= 3, "only {} epochs closed", epochs.len());
    let minted: i64 = epochs.iter().map(|e| e.minted as i64).sum();
    assert_eq!(store.balance("mint").await.unwrap(), -minted);
    let policy = depin_rewards::RewardPolicy::devnet(EPOCH_SECONDS);
    Coordinator::open(store.clone(), policy)
        .await
        .unwrap()
        .check_ledger()
        .await
        .unwrap();
    for e in &epochs {
        let o = Command::new(DEPIN)
            .args(["audit-epoch", "--database-url", store_url, "--epoch"])
            .arg(e.epoch.to_string())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "epoch {} does not audit: {}{}",
            e.epoch,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Waits until the coordinator closed every epoch that holds an
/// acknowledged report.
async fn wait_closed(http: &reqwest::Client, url: &str, up_to: u64) {
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{url}/v1/epochs")).send().await
            && let Ok(v) = r.json::<Value>().await
            && v.as_array()
                .and_then(|a| a.last())
                .and_then(|e| e["epoch"].as_u64())
                >= Some(up_to)
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "epoch {up_to} never closed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn current_epoch() -> u64 {
    depin_rewards::RewardPolicy::devnet(EPOCH_SECONDS)
        .epoch_of(now_ms())
        .unwrap()
}

async fn register(http: &reqwest::Client, url: &str, devs: &[SigningKey]) {
    let op = device_keypair_from_seed([200; 32]);
    for d in devs {
        let r = http
            .post(format!("{url}/v1/devices"))
            .body(cert(&op, d))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_kills_and_a_full_disk() {
    let Some(fs) = TestTmpfs::mount(48 << 20) else {
        return;
    };
    let seed = seed();
    eprintln!("load_and_faults seed {seed} (DEPIN_CHAOS_SEED to replay)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = fs.path().join("coord");
    let logs = tempfile::tempdir().unwrap();
    let mut server = Replica::new(
        vec!["--data-dir".into(), data.display().to_string()],
        logs.path().join("serve.log"),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    server.start();
    wait_healthy(&http, &server.url()).await;
    let devs: Vec<SigningKey> = (1..=DEVICES)
        .map(|i| device_keypair_from_seed([i; 32]))
        .collect();
    register(&http, &server.url(), &devs).await;

    let book = Arc::new(Mutex::new(Ledger::default()));
    let filler = fs.path().join("filler");
    let started = Instant::now();
    let mut next_fault = Duration::from_millis(rng.gen_range(1_000..2_500));
    let mut disk_full_until: Option<Duration> = None;
    let (mut kills, mut fills) = (0, 0);
    while started.elapsed() < LOAD {
        server.ensure_running();
        send_round(&http, &server.url(), &devs, &book).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = started.elapsed();
        if let Some(until) = disk_full_until
            && t >= until
        {
            std::fs::remove_file(&filler).unwrap();
            disk_full_until = None;
        }
        if t >= next_fault {
            if disk_full_until.is_none() && rng.gen_bool(0.4) {
                fill(&filler);
                fills += 1;
                disk_full_until = Some(t + Duration::from_millis(rng.gen_range(500..2_000)));
            } else {
                server.kill();
                kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..700))).await;
                server.start();
            }
            next_fault = t + Duration::from_millis(rng.gen_range(800..2_500));
        }
    }
    if disk_full_until.is_some() {
        std::fs::remove_file(&filler).unwrap();
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        server.ensure_running();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_healthy(&http, &server.url()).await;
    let last_acked_epoch = current_epoch();
    wait_closed(&http, &server.url(), last_acked_epoch).await;
    server.stop();
    let book = std::mem::take(&mut *book.lock().unwrap());
    eprintln!(
        "{kills} kills, {fills} disk fills, statuses {:?}",
        book.statuses
    );
    assert!(
        kills >= 2,
        "the schedule killed the coordinator only {kills} times"
    );
    let url = depin_store::sqlite_url(&data.join("depin.sqlite"));
    let store = Store::open(&url).await.unwrap();
    verify(&store, &devs, &book, &url).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_survive_kills() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let seed = seed();
    eprintln!("load_and_faults seed {seed} (DEPIN_CHAOS_SEED to replay)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let url = pg.url("chaos");
    let logs = tempfile::tempdir().unwrap();
    let args = vec!["--database-url".to_string(), url.clone()];
    let mut a = Replica::new(args.clone(), logs.path().join("a.log"));
    let mut b = Replica::new(args, logs.path().join("b.log"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    a.start();
    wait_healthy(&http, &a.url()).await;
    let devs: Vec<SigningKey> = (1..=DEVICES)
        .map(|i| device_keypair_from_seed([i; 32]))
        .collect();
    register(&http, &a.url(), &devs).await;

    let book = Arc::new(Mutex::new(Ledger::default()));
    let started = Instant::now();
    let mut next_fault = Duration::from_millis(rng.gen_range(1_000..2_500));
    let mut kills = 0;
    let mut round = 0u64;
    while started.elapsed() < LOAD {
        let t = started.elapsed();
        if b.child.is_none() && b.restarts == 0 && t >= Duration::from_secs(4) {
            b.start(); // the second replica joins
        }
        a.ensure_running();
        b.ensure_running();
        // Devices talk to either replica, as behind a load balancer.
        let target = if b.child.is_some() && round % 2 == 1 {
            b.url()
        } else {
            a.url()
        };
        send_round(&http, &target, &devs, &book).await;
        round += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if t >= next_fault && b.child.is_some() {
            let victim = if rng.gen_bool(0.5) { &mut a } else { &mut b };
            victim.kill();
            kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..700))).await;
            victim.start();
            next_fault = t + Duration::from_millis(rng.gen_range(800..2_500));
        }
    }
    wait_healthy(&http, &a.url()).await;
    wait_closed(&http, &a.url(), current_epoch()).await;
    a.stop();
    b.stop();
    let book = std::mem::take(&mut *book.lock().unwrap());
    eprintln!("{kills} kills, statuses {:?}", book.statuses);
    assert!(
        kills >= 2,
        "the schedule killed a replica only {kills} times"
    );
    let store = Store::open(&url).await.unwrap();
    verify(&store, &devs, &book, &url).await;
}
