//! `depin node init|run`: a thin shell over `depin-agent`.

use crate::keygen::{PassphraseArgs, open_operator_key};
use anyhow::{Context as _, anyhow};
use depin_agent::{InitParams, RunOptions};
use depin_core::Sector;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Subcommand, Debug)]
pub enum NodeCommand {
    /// Generate the device key, get it certified by the operator key, register.
    Init(InitArgs),
    /// Run the agent: heartbeats with telemetry, buffered on disk, resent.
    Run(RunArgs),
    /// Revoke a device key (a lost or stolen device): signed by the operator key.
    Revoke(RevokeArgs),
    /// Replace this node's device key with a new one; the old key is revoked.
    Rotate(RotateArgs),
    /// The agent's own view from its files: keys, coordinator, spool, last delivery.
    Status(StatusArgs),
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The node's data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// storage, compute, wireless or sensor.
    #[arg(long, value_name = "SECTOR")]
    pub sector: String,
    /// The operator key file from `depin keygen` (its passphrase is asked for).
    #[arg(long, value_name = "FILE")]
    pub operator_key: PathBuf,
    /// The coordinator's URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub coordinator: String,
    /// Where the device key, node.json, the report spool and status.json live.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// A short label of the hardware, e.g. raspberry-pi-5 [default: generic-<arch>].
    #[arg(long, value_name = "LABEL")]
    pub hardware_class: Option<String>,
    /// Firmware (agent) version the certificate declares and heartbeats report.
    #[arg(long, value_name = "VERSION", default_value = env!("CARGO_PKG_VERSION"))]
    pub firmware_version: String,
    /// Declared location, degrees (WGS84). Give both or neither.
    #[arg(long, allow_negative_numbers = true)]
    pub lat: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub lon: Option<f64>,
    /// Declared average power draw in watts, reported in every heartbeat (not measured).
    #[arg(long, value_name = "W", default_value_t = 0.0)]
    pub watts: f64,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The directory `depin node init` set up.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Stop after this many heartbeats (then send what is buffered, briefly).
    #[arg(long, value_name = "N")]
    pub max_heartbeats: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub for_seconds: Option<f64>,
    /// Heartbeat interval instead of the coordinator policy's (fractions allowed).
    #[arg(long, value_name = "SECONDS")]
    pub interval_seconds: Option<f64>,
    /// Coordinator URL instead of the one recorded at init.
    #[arg(long, value_name = "URL")]
    pub coordinator: Option<String>,
    /// Longest wait between retries while the coordinator is unreachable.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub max_backoff_seconds: f64,
    /// Time-out of one request to the coordinator.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub request_timeout_seconds: f64,
    /// Serve the agent's counters for Prometheus at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Log lines as human-readable `text` or as `json` (one object per line).
    #[arg(long, value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,
}

#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// The device's public key (hex), as `depin node init` printed it.
    #[arg(long, value_name = "HEX")]
    pub device: String,
    /// The operator key file that registered the device.
    #[arg(long, value_name = "FILE")]
    pub operator_key: PathBuf,
    /// The coordinator's URL.
    #[arg(long, value_name = "URL")]
    pub coordinator: String,
    /// Why, for the record (e.g. "stolen").
    #[arg(long, default_value = "revoked by operator")]
    pub reason: String,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// The node's data directory (stop its agent first).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The operator key file that registered the device.
    #[arg(long, value_name = "FILE")]
    pub operator_key: PathBuf,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

fn seconds(v: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow!("--{flag} must be a positive number of seconds, got {v}"))
}

pub async fn run(c: NodeCommand) -> anyhow::Result<()> {
    match c {
        NodeCommand::Init(a) => init(a).await,
        NodeCommand::Run(a) => run_agent(a).await,
        NodeCommand::Revoke(a) => revoke(a).await,
        NodeCommand::Rotate(a) => rotate(a).await,
        NodeCommand::Status(a) => status(a),
    }
}

/// Operator messages carry a sequence number like every envelope; the
/// coordinator does not order them (they are idempotent), so the clock serves.
fn operator_envelope<P: depin_protocol::Payload>(
    operator: &depin_protocol::SigningKey,
    payload: &P,
) -> depin_protocol::Signed {
    let now = depin_agent::now_ms();
    let env = depin_protocol::Envelope::new(
        depin_protocol::public_key_of(operator),
        now as u64,
        now,
        payload,
    );
    depin_protocol::sign(&env, operator)
}

async fn revoke(a: RevokeArgs) -> anyhow::Result<()> {
    let device: depin_core::PublicKey = a.device.parse().map_err(|e| anyhow!("--device: {e}"))?;
    let client =
        depin_client::Client::new(&a.coordinator).map_err(|e| anyhow!("--coordinator: {e}"))?;
    let operator = open_operator_key(&a.operator_key, &a.passphrase).await?;
    let msg = operator_envelope(
        &operator,
        &depin_protocol::Revocation {
            device_key: device,
            reason: a.reason.clone(),
        },
    );
    let view = client
        .revoke_device(&msg)
        .await
        .with_context(|| format!("revoking {device}"))?;
    match view.revoked_ms {
        Some(ms) => println!(
            "device {device} revoked at {}; its reports are refused from now on",
            depin_agent::fmt::utc(ms)
        ),
        None => println!("device {device} revoked; its reports are refused from now on"),
    }
    Ok(())
}

/// Rotation is ordered so that a crash at any step loses no key: the new key
/// is written beside the old one before the coordinator hears of it, and the
/// files are swapped only after the coordinator accepted the rotation.
async fn rotate(a: RotateArgs) -> anyhow::Result<()> {
    let dir = &a.data_dir;
    let config = depin_agent::node::NodeConfig::load(dir)?;
    let lock = dir.join("agent.lock");
    if let Some(pid) = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        && std::path::Path::new(&format!("/proc/{pid}")).exists()
    {
        anyhow::bail!(
            "the agent (pid {pid}) is running on {}; stop it first",
            dir.display()
        );
    }
    let operator = open_operator_key(&a.operator_key, &a.passphrase).await?;
    anyhow::ensure!(
        depin_protocol::public_key_of(&operator) == config.operator,
        "--operator-key: this node belongs to operator {}, not {}",
        config.operator,
        depin_protocol::public_key_of(&operator)
    );
    let key_path = config.device_key_path(dir);
    let pending = key_path.with_extension("key.new");
    let new_key = match depin_agent::node::load_device_key(&pending) {
        // A rotation interrupted after the new key was written: reuse it.
        Ok(k) => k,
        Err(_) => {
            let k = depin_protocol::generate_signing_key(&mut rand::rngs::OsRng);
            depin_agent::node::store_device_key(&pending, &k)?;
            k
        }
    };
    let new_pub = depin_protocol::public_key_of(&new_key);
    let client = depin_client::Client::new(&config.coordinator)
        .map_err(|e| anyhow!("coordinator {}: {e}", config.coordinator))?;
    let msg = operator_envelope(
        &operator,
        &depin_protocol::KeyRotation {
            old_device_key: config.device,
            new_device_key: new_pub,
            new_key_signature: None,
        }
        .signed_by_new_key(&new_key),
    );
    if let Err(e) = client.rotate_device(&msg).await {
        // A rotation interrupted after the coordinator committed it (the
        // answer was lost): the old key already names this new one as its
        // successor. The coordinator rotates atomically, so that is the whole
        // truth; anything else is a real failure.
        let done =
            matches!(client.device(&config.device).await, Ok(v) if v.replaced_by == Some(new_pub));
        if !done {
            return Err(anyhow!(e).context("rotating the device key"));
        }
    }
    let old_copy = key_path.with_extension(format!("key.revoked-{}", &config.device.to_hex()[..8]));
    std::fs::rename(&key_path, &old_copy)
        .with_context(|| format!("moving the old key to {}", old_copy.display()))?;
    std::fs::rename(&pending, &key_path)
        .with_context(|| format!("installing the new key at {}", key_path.display()))?;
    let new_config = depin_agent::node::NodeConfig {
        device: new_pub,
        ..config.clone()
    };
    let node_path = dir.join(depin_agent::node::NODE_FILE);
    depin_agent::node::write_atomic(
        &node_path,
        serde_json::to_string_pretty(&new_config)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", node_path.display()))?;
    println!("device key rotated: {} → {new_pub}", config.device);
    println!(
        "reports still buffered under the old key will be refused as revoked_device; start the agent again with `depin node run --data-dir {}`",
        dir.display()
    );
    Ok(())
}

async fn init(a: InitArgs) -> anyhow::Result<()> {
    let sector: Sector = a.sector.parse().map_err(|e| anyhow!("--sector: {e}"))?;
    if a.data_dir.join(depin_agent::node::NODE_FILE).exists() {
        return Err(depin_agent::NodeError::AlreadyInitialised {
            dir: a.data_dir.clone(),
        }
        .into());
    }
    depin_client::Client::new(&a.coordinator).map_err(|e| anyhow!("--coordinator: {e}"))?;
    depin_agent::node::location(a.lat, a.lon)?;
    let params = InitParams {
        data_dir: a.data_dir.clone(),
        coordinator: a.coordinator.clone(),
        sector,
        hardware_class: a
            .hardware_class
            .unwrap_or_else(|| format!("generic-{}", std::env::consts::ARCH)),
        firmware_version: a.firmware_version,
        declared_watts: a.watts,
        lat: a.lat,
        lon: a.lon,
    };
    let operator = open_operator_key(&a.operator_key, &a.passphrase).await?;
    let done = depin_agent::init(
        &params,
        &operator,
        || depin_protocol::generate_signing_key(&mut rand::rngs::OsRng),
        depin_agent::now_ms(),
    )
    .await?;
    println!("device   {}", done.config.device);
    println!("operator {}", done.config.operator);
    println!("sector   {}", done.config.sector);
    println!(
        "registered with {}{}; start it with: depin node run --data-dir {}",
        done.config.coordinator,
        if done.reused_key {
            " (reusing the key from an interrupted init)"
        } else {
            ""
        },
        a.data_dir.display()
    );
    Ok(())
}

async fn run_agent(a: RunArgs) -> anyhow::Result<()> {
    crate::logging::init(a.log_format);
    if let Some(addr) = a.metrics_listen {
        let bound = crate::node_metrics::spawn(addr, a.data_dir.clone()).await?;
        tracing::info!(url = %format!("http://{bound}/metrics"), "agent metrics listening");
    }
    let mut opts = RunOptions::new(a.data_dir.clone());
    opts.max_heartbeats = a.max_heartbeats;
    opts.for_duration = a
        .for_seconds
        .map(|s| seconds(s, "for-seconds"))
        .transpose()?;
    opts.interval = a
        .interval_seconds
        .map(|s| seconds(s, "interval-seconds"))
        .transpose()?;
    opts.coordinator = a.coordinator;
    opts.backoff.cap =
        seconds(a.max_backoff_seconds, "max-backoff-seconds")?.max(opts.backoff.base);
    opts.request_timeout = seconds(a.request_timeout_seconds, "request-timeout-seconds")?;
    opts.print_status = true;
    let summary = depin_agent::run(opts, depin_agent::shutdown_signal())
        .await
        .with_context(|| format!("node agent on {}", a.data_dir.display()))?;
    use depin_agent::fmt::{count, group};
    println!(
        "stopped: {} created, {} accepted, {} already at the coordinator, {} refused, {} pending in the spool",
        count(summary.heartbeats_created, "heartbeat"),
        group(summary.accepted),
        group(summary.already_had),
        group(summary.dropped),
        group(summary.pending as u64)
    );
    Ok(())
}

/// Reports in the spool not yet delivered, read without opening the spool:
/// `Spool::open` repairs a torn tail and rewrites its state, which must not
/// happen under a running agent. Records at or below `acked_through` in
/// `spool.state` are done with (see `depin_agent::spool`).
fn spool_pending(dir: &std::path::Path) -> anyhow::Result<(u64, Option<u64>)> {
    use depin_agent::spool::{LOG_FILE, STATE_FILE};
    let state_path = dir.join(STATE_FILE);
    let acked = match std::fs::read(&state_path) {
        Ok(b) => {
            let v: serde_json::Value = serde_json::from_slice(&b)
                .with_context(|| format!("{} is damaged", state_path.display()))?;
            v["acked_through"]
                .as_u64()
                .ok_or_else(|| anyhow!("{} is damaged: no acked_through", state_path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(anyhow!(e).context(format!("cannot read {}", state_path.display()))),
    };
    let log_path = dir.join(LOG_FILE);
    let buf = match std::fs::read(&log_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(anyhow!(e).context(format!("cannot read {}", log_path.display()))),
    };
    let scan = depin_agent::record::scan(&buf);
    let pending: Vec<u64> = scan
        .records
        .iter()
        .map(|r| r.seq)
        .filter(|s| *s > acked)
        .collect();
    Ok((pending.len() as u64, pending.first().copied()))
}

/// The pid in `agent.lock` if that process still runs.
fn running_agent(dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("agent.lock"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

fn status(a: StatusArgs) -> anyhow::Result<()> {
    let dir = &a.data_dir;
    let config = depin_agent::node::NodeConfig::load(dir)?;
    let status_path = dir.join(depin_agent::status::STATUS_FILE);
    // No status.json yet means the agent never ran: say so rather than
    // printing zeros as if it had.
    let status = if status_path.exists() {
        let text = std::fs::read_to_string(&status_path)
            .with_context(|| format!("cannot read {}", status_path.display()))?;
        Some(
            serde_json::from_str::<depin_agent::status::Status>(&text)
                .with_context(|| format!("{} is damaged", status_path.display()))?,
        )
    } else {
        None
    };
    let (pending, oldest_pending_seq) = spool_pending(dir)?;
    let pid = running_agent(dir);
    if a.json {
        let out = serde_json::json!({
            "data_dir": dir,
            "device": config.device,
            "operator": config.operator,
            "sector": config.sector.as_str(),
            "coordinator": config.coordinator,
            "hardware_class": config.hardware_class,
            "firmware_version": config.firmware_version,
            "registered_ms": config.registered_ms,
            "agent_pid": pid,
            "spool_pending": pending,
            "spool_oldest_pending_seq": oldest_pending_seq,
            "status": status,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    use depin_agent::fmt::{group, utc};
    println!("device        {}", config.device);
    println!("operator      {}", config.operator);
    println!("sector        {}", config.sector);
    println!("coordinator   {}", config.coordinator);
    println!(
        "hardware      {} (firmware {})",
        config.hardware_class, config.firmware_version
    );
    println!("registered    {}", utc(config.registered_ms));
    match pid {
        Some(p) => println!("agent         running (pid {p})"),
        None => println!("agent         not running"),
    }
    println!("spool         {} pending", group(pending));
    match &status {
        None => println!(
            "status        the agent has not run yet (no status.json); start it with `depin node run --data-dir {}`",
            dir.display()
        ),
        Some(s) => {
            println!(
                "delivered     {} accepted, {} already at the coordinator, {} refused",
                group(s.accepted_total),
                group(s.already_had_total),
                group(s.dropped_total)
            );
            for (r, n) in &s.dropped_by_reason {
                println!("  refused     {r}: {}", group(*n));
            }
            println!(
                "last accepted {}",
                s.last_success_ms.map_or_else(|| "never".to_string(), utc)
            );
            println!("failures      {} in a row", s.consecutive_failures);
            if let Some(e) = &s.last_error {
                println!("last error    {e}");
            }
            println!("updated       {} ({})", utc(s.updated_ms), s.state);
        }
    }
    Ok(())
}
