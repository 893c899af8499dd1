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
    }
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
    println!(
        "stopped: {} heartbeats created, {} accepted, {} already at the coordinator, {} refused, {} pending in the spool",
        summary.heartbeats_created,
        summary.accepted,
        summary.already_had,
        summary.dropped,
        summary.pending
    );
    Ok(())
}
