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
    /// `ingest` (signed reports over loopback HTTP into SQLite), `epoch` (closing a large
    /// epoch), `compute` (int8 matmul kernels, Freivalds' check, verified inference) or
    /// `storage` (the storage sector's encryption, erasure coding and audit checks, one core).
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
    /// compute: the side of the square int8 matrices.
    #[arg(long, default_value_t = 1024)]
    size: usize,
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
        "compute" => compute(&a)?,
        "storage" => storage::storage()?,
        other => {
            anyhow::bail!(
                "unknown benchmark {other:?}: expected `ingest`, `epoch`, `compute` or `storage`"
            )
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

/// The compute sector's pure core on one core: the blocked int8 kernel
/// against the naive triple loop, Freivalds' check against recomputing the
/// product, and verifying the shipped digits model's trace against running
/// it. Each time is the best of several runs, so a busy neighbour on a shared
/// machine inflates it as little as possible.
fn compute(a: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    use depin_sector_compute::{Blocked, MatmulBackend, Matrix, Naive, ROUNDS, examples};
    use rand::{Rng, SeedableRng};

    let n = a.size;
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let mut random = |rows, cols| Matrix::from_fn(rows, cols, |_, _| rng.r#gen::<i8>());
    let (x, y) = (random(n, n)?, random(n, n)?);
    // Two operations (a multiply and an add) per multiply-accumulate.
    let ops = 2.0 * (n as f64).powi(3);

    eprintln!("{n}×{n} int8 product, blocked kernel…");
    let (product, blocked_s) = best_of(3, || Blocked.matmul(&x, &y))?;
    eprintln!("… naive triple loop…");
    let (naive, naive_s) = best_of(1, || Naive.matmul(&x, &y))?;
    anyhow::ensure!(
        naive == product,
        "the blocked kernel disagrees with the naive loop"
    );

    eprintln!("… Freivalds' check…");
    let (_, verify_s) = best_of(20, || {
        depin_sector_compute::freivalds::check(&x, &y, &product, [7; 32])
    })?;

    eprintln!("digits model: inference and verification…");
    let model = depin_sector_compute::Model::decode(examples::DIGITS_MODEL)?;
    let inputs = Matrix::<i8>::decode(examples::DIGITS_TEST_INPUTS)?;
    let (trace, infer_s) = best_of(50, || depin_sector_compute::infer(&model, &inputs))?;
    let (_, check_s) = best_of(50, || {
        depin_sector_compute::verify(&model, &inputs, &trace, [7; 32])
    })?;

    Ok(json!({
        "bench": "compute",
        "cores": cores(),
        "threads_used": 1,
        "size": n,
        "kernel": Blocked.name(),
        "matmul_seconds": round6(blocked_s),
        "matmul_gops_per_core": round3(ops / blocked_s / 1e9),
        "naive_seconds": round6(naive_s),
        "naive_gops_per_core": round3(ops / naive_s / 1e9),
        "kernel_vs_naive": round3(naive_s / blocked_s),
        "freivalds_rounds": ROUNDS,
        "freivalds_verify_seconds": round6(verify_s),
        "freivalds_speedup": round3(blocked_s / verify_s),
        "target_freivalds_speedup": 100,
        "inference_model": "digits-mlp 64-32-10",
        "inference_samples": inputs.rows(),
        "inference_seconds": round6(infer_s),
        "inference_verify_seconds": round6(check_s),
        "inference_verify_speedup": round3(infer_s / check_s),
        "not_measured": {
            "wasm_vs_native": "needs the wasmtime executor, not built yet",
            "dispatch_jobs_per_s": "needs the coordinator's job dispatch, not built yet",
        },
    }))
}

/// Runs `f` `runs` times; its last result and the shortest time.
fn best_of<T, E: std::error::Error + Send + Sync + 'static>(
    runs: usize,
    mut f: impl FnMut() -> Result<T, E>,
) -> anyhow::Result<(T, f64)> {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let r = std::hint::black_box(f()?);
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    Ok((out.expect("at least one run"), best))
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

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
