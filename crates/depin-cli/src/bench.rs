//! `depin bench NAME`: measured, not asserted. Each prints one JSON object
//! with the figures and a ratio against a bound measured in the same run, so
//! results compare across machines.

use anyhow::Context;
use depin_core::Sector;
use depin_protocol::{
    Envelope, Heartbeat, Signed, device_keypair_from_seed, encode_batch, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_store::{DeviceRow, Store, SyntheticEpoch};
use serde_json::json;
use std::time::Instant;

mod storage;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// `ingest` (signed reports over loopback HTTP into SQLite), `epoch` (closing a large epoch)
    /// or `storage` (the storage sector's encryption, erasure coding and audit checks, one core).
    name: String,
    /// ingest: devices sending; epoch: devices in the registry.
    #[arg(long)]
    devices: Option<u64>,
    /// Reports in total.
    #[arg(long)]
    reports: Option<u64>,
    /// ingest: reports per HTTP request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// ingest: concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Keep the generated store in this directory instead of a temporary one.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        crate::serve::init_tracing();
    }
    let out = match a.name.as_str() {
        "ingest" => ingest(&a).await?,
        "epoch" => epoch(&a).await?,
        "storage" => storage::storage()?,
        other => {
            anyhow::bail!("unknown benchmark {other:?}: expected `ingest`, `epoch` or `storage`")
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn work_dir(a: &BenchArgs) -> anyhow::Result<(std::path::PathBuf, Option<tempfile::TempDir>)> {
    match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            let f = d.join("depin.sqlite");
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", f.display()));
            }
            Ok((d.clone(), None))
        }
        None => {
            let t = tempfile::tempdir()?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

/// Signed-report ingest over loopback HTTP into the default SQLite store,
/// against raw single-threaded ed25519 verification of the same envelopes.
async fn ingest(a: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    let devices = a.devices.unwrap_or(2_000);
    let total = a.reports.unwrap_or(100_000);
    let per_device = total.div_ceil(devices);
    let (dir, _guard) = work_dir(a)?;
    let now = depin_server::now_ms();
    let policy = RewardPolicy {
        max_reports_per_device_per_epoch: u32::try_from(per_device + 10).unwrap_or(u32::MAX),
        ..RewardPolicy::default_v1()
    };
    let url = depin_store::sqlite_url(&dir.join("depin.sqlite"));
    // Set-up (not timed): register the devices directly and sign every report.
    let store = Store::open(&url).await?;
    let keys: Vec<_> = (0..devices)
        .map(|i| device_keypair_from_seed(seed(i, 1)))
        .collect();
    let op = public_key_of(&device_keypair_from_seed([9; 32]));
    for k in &keys {
        store
            .insert_device(&device_row(public_key_of(k), op, now - 1_000))
            .await?;
    }
    store.close().await;
    eprintln!(
        "signing {} reports from {devices} devices…",
        per_device * devices
    );
    let mut envelopes: Vec<Signed> = Vec::with_capacity((per_device * devices) as usize);
    for s in 1..=per_device {
        for k in &keys {
            let hb = Heartbeat {
                uptime_s: s,
                temperature_centi_c: 4_500,
                firmware_version: "1.0.0".into(),
                power_mw: 8_000,
            };
            envelopes.push(sign(&Envelope::new(public_key_of(k), s, now, &hb), k));
        }
    }
    let n = envelopes.len();

    // The bound: one core verifying each signature on its own.
    let t = Instant::now();
    for e in &envelopes {
        e.verify_signature()
            .map_err(|r| anyhow::anyhow!("set-up produced a bad signature: {r}"))?;
    }
    let raw_per_sec = n as f64 / t.elapsed().as_secs_f64();

    let mut cfg = depin_server::ServerConfig::new("127.0.0.1:0".parse()?, url, policy);
    cfg.close_tick = std::time::Duration::from_secs(3600);
    let server = depin_server::start(cfg).await?;
    let endpoint = format!("http://{}/v1/reports", server.addr);
    // Batches keep each device's reports in sequence order: batch i holds
    // reports from one sequence "round" only.
    let bodies: Vec<Vec<u8>> = envelopes.chunks(a.batch).map(encode_batch).collect();
    let http = reqwest::Client::new();
    eprintln!(
        "ingesting {n} reports in {} requests with {} clients…",
        bodies.len(),
        a.clients
    );
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(bodies.into_iter().enumerate()));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.clients {
        let (queue, http, endpoint) = (queue.clone(), http.clone(), endpoint.clone());
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            loop {
                let Some((_, body)) = queue.lock().await.next() else {
                    break;
                };
                let r = http.post(&endpoint).body(body).send().await?;
                anyhow::ensure!(r.status().is_success(), "ingest answered {}", r.status());
                let v: serde_json::Value = r.json().await?;
                accepted += v["accepted"].as_u64().unwrap_or(0);
            }
            Ok::<_, anyhow::Error>(accepted)
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    server.stop().await?;
    let ingest_per_sec = n as f64 / secs;
    Ok(json!({
        "bench": "ingest",
        "cores": cores(),
        "reports": n,
        "accepted": accepted,
        "devices": devices,
        "batch": a.batch,
        "clients": a.clients,
        "seconds": round3(secs),
        "ingest_per_sec": ingest_per_sec.round(),
        "raw_verify_per_sec": raw_per_sec.round(),
        "ratio": round3(ingest_per_sec / raw_per_sec),
        "target_ratio": 0.5,
    }))
}

/// Closing one epoch for many devices and reports held in SQLite.
async fn epoch(a: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    let devices = a.devices.unwrap_or(1_000_000);
    let reports = a.reports.unwrap_or(10_000_000);
    let (dir, _guard) = work_dir(a)?;
    let url = depin_store::sqlite_url(&dir.join("depin.sqlite"));
    let policy = RewardPolicy::default_v1();
    let epoch = 100;
    let start = policy.epoch_start_ms(epoch);
    let store = Store::open(&url).await?;

    // Set-up (not timed): the database generates the rows itself.
    let t = Instant::now();
    eprintln!("generating {devices} devices and {reports} reports…");
    store
        .load_synthetic_epoch(&SyntheticEpoch {
            devices,
            reports,
            epoch,
            start_ms: start,
        })
        .await
        .context("generating devices and reports")?;
    store.analyze().await?;
    // Move the generated rows from the WAL into the database file now, so the
    // timed close does not pay for checkpointing the set-up.
    store.checkpoint().await?;
    let setup = t.elapsed().as_secs_f64();

    // The bound: the bare aggregate read every close must do.
    let t = Instant::now();
    let counts = store
        .report_counts(epoch, 2, policy.max_heartbeat_delay_ms())
        .await?;
    let scan = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        counts.len() as u64 == devices.min(reports),
        "set-up produced {} reporting devices",
        counts.len()
    );
    drop(counts);

    let coordinator = depin_coordinator::Coordinator::open(store.clone(), policy.clone()).await?;
    eprintln!("closing epoch {epoch}…");
    let t = Instant::now();
    let outcome = coordinator
        .close_epoch(epoch, policy.closable_at_ms(epoch))
        .await?;
    let secs = t.elapsed().as_secs_f64();
    let depin_coordinator::CloseOutcome::Closed(summary) = outcome else {
        anyhow::bail!("the epoch was already closed")
    };
    let claims = store.claims_as_of(epoch).await?.len();
    store.close().await;
    Ok(json!({
        "bench": "epoch",
        "cores": cores(),
        "devices": devices,
        "reports": reports,
        "operators_paid": claims,
        "minted": summary.minted,
        "setup_seconds": round3(setup),
        "scan_seconds": round3(scan),
        "seconds": round3(secs),
        "ratio": round3(secs / scan),
        "target_seconds": 30,
    }))
}

fn seed(i: u64, tag: u8) -> [u8; 32] {
    let mut s = [tag; 32];
    s[..8].copy_from_slice(&i.to_le_bytes());
    s
}

fn device_row(
    device: depin_core::PublicKey,
    operator: depin_core::PublicKey,
    registered_ms: i64,
) -> DeviceRow {
    DeviceRow {
        device,
        operator,
        sector: Sector::Compute.code(),
        hardware_class: "bench".into(),
        firmware_version: "1.0.0".into(),
        lat_micro: None,
        lon_micro: None,
        h3_cell: None,
        certificate: vec![0],
        registered_ms,
        revoked_ms: None,
        replaced_by: None,
        last_seq: None,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
