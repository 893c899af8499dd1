//! `depin serve`: run the coordinator.

use anyhow::Context;
use depin_rewards::RewardPolicy;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for the embedded SQLite store (used when no --database-url).
    #[arg(long, default_value = "./depin-data")]
    data_dir: PathBuf,
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DB (several replicas may share one PostgreSQL).
    #[arg(long, env = "DEPIN_DATABASE_URL")]
    database_url: Option<String>,
    /// Reward policy as a JSON file (see GET /v1/policy for the shape); default: the built-in v1 policy.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Override the epoch length in seconds (short epochs for trying things out; heartbeat interval and grace scale with it).
    #[arg(long)]
    epoch_seconds: Option<u64>,
    /// Override the network's genesis time (unix milliseconds).
    #[arg(long)]
    genesis_ms: Option<i64>,
    /// Most client connections open at once; more are refused with a 503.
    #[arg(long, default_value_t = depin_server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds a client may take to send its request headers.
    #[arg(long, default_value_t = depin_server::DEFAULT_HEADER_READ_TIMEOUT.as_secs())]
    header_timeout_seconds: u64,
    /// Seconds a request may take, body included.
    #[arg(long, default_value_t = depin_server::DEFAULT_REQUEST_TIMEOUT.as_secs())]
    request_timeout_seconds: u64,
    /// Unverifiable reports and registrations accepted per client address and minute.
    #[arg(long, default_value_t = depin_server::DEFAULT_UNVERIFIED_PER_MINUTE)]
    unverified_per_minute: u32,
    /// A load balancer in front of this server whose X-Forwarded-For names the client (repeatable).
    #[arg(long = "trusted-proxy", value_name = "IP")]
    trusted_proxies: Vec<std::net::IpAddr>,
}

pub fn load_policy(
    file: Option<&PathBuf>,
    epoch_seconds: Option<u64>,
    genesis_ms: Option<i64>,
) -> anyhow::Result<RewardPolicy> {
    let mut policy = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--policy: cannot read {}", f.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("--policy: {} is not a reward policy", f.display()))?
        }
        None => RewardPolicy::default_v1(),
    };
    if let Some(s) = epoch_seconds {
        anyhow::ensure!(s >= 2, "--epoch-seconds: must be at least 2, got {s}");
        policy = RewardPolicy {
            genesis_unix_ms: policy.genesis_unix_ms,
            ..RewardPolicy::devnet(s)
        };
    }
    if let Some(g) = genesis_ms {
        policy.genesis_unix_ms = g;
    }
    policy
        .validate()
        .map_err(|e| anyhow::anyhow!("reward policy: {e}"))?;
    Ok(policy)
}

/// Says at once whether `addr` can be listened on, before anything is
/// created on disk. The probe is closed again and the server binds the
/// address itself; another program taking it in between is caught there.
fn check_listen(addr: SocketAddr) -> anyhow::Result<()> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(anyhow::anyhow!(
            "--listen {addr}: the address is already in use (another depin serve, or another \
             program, listens there); stop it or pick another --listen address"
        )),
        Err(e) => Err(anyhow::anyhow!("--listen {addr}: cannot listen there: {e}")),
    }
}

/// `DIR/depin.lock`, holding the pid of the `depin serve` that owns an
/// embedded SQLite store: a second coordinator on the same store would
/// interleave epoch closes and sequence checks with the first. A pid file
/// rather than `flock`: `File::try_lock` needs Rust 1.89 (the project builds
/// with 1.88), libc is no dependency of ours and the workspace forbids
/// `unsafe`. A file whose pid no longer runs (a crash, `kill -9`) is taken
/// over; liveness is read from `/proc`, so elsewhere than Linux a stale file
/// is always taken over.
struct DataDirLock {
    path: PathBuf,
}

impl DataDirLock {
    fn take(dir: &std::path::Path) -> anyhow::Result<DataDirLock> {
        use std::io::Write as _;
        let path = dir.join("depin.lock");
        let me = std::process::id();
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{me}")
                        .and_then(|()| f.sync_all())
                        .with_context(|| format!("writing {}", path.display()))?;
                    return Ok(DataDirLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    match pid {
                        Some(pid)
                            if pid != me
                                && std::path::Path::new(&format!("/proc/{pid}")).exists() =>
                        {
                            anyhow::bail!(
                                "--data-dir {}: another depin serve (pid {pid}) is using this store; \
                                 stop it first, or give this one another --data-dir (if no such \
                                 process is a depin serve, remove {})",
                                dir.display(),
                                path.display()
                            );
                        }
                        // A crashed coordinator's file, or one half written.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(anyhow::anyhow!(e))
                        .with_context(|| format!("cannot create {}", path.display()));
                }
            }
        }
        anyhow::bail!("{}: the lock file keeps reappearing", path.display())
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    let policy = load_policy(args.policy.as_ref(), args.epoch_seconds, args.genesis_ms)?;
    check_listen(args.listen)?;
    let mut _lock = None;
    let url = match args.database_url {
        Some(u) => u,
        None => {
            std::fs::create_dir_all(&args.data_dir).with_context(|| {
                format!("--data-dir: cannot create {}", args.data_dir.display())
            })?;
            // Say at once when the directory cannot take the store, rather
            // than leaving it to SQLite's vaguer words.
            let probe = args.data_dir.join(".depin-write-probe");
            std::fs::write(&probe, b"").with_context(|| {
                format!(
                    "--data-dir: {} is not writable (read-only file system or permissions); \
                     depin serve keeps its store there (to audit a read-only copy, use depin audit-epoch)",
                    args.data_dir.display()
                )
            })?;
            let _ = std::fs::remove_file(&probe);
            _lock = Some(DataDirLock::take(&args.data_dir)?);
            depin_store::sqlite_url(&args.data_dir.join("depin.sqlite"))
        }
    };
    let mut config = depin_server::ServerConfig::new(args.listen, url.clone(), policy.clone());
    config.max_connections = args.max_connections;
    config.header_read_timeout = std::time::Duration::from_secs(args.header_timeout_seconds);
    config.request_timeout = std::time::Duration::from_secs(args.request_timeout_seconds);
    config.unverified_per_minute = args.unverified_per_minute;
    config.trusted_proxies = args.trusted_proxies;
    let server = depin_server::start(config).await?;
    eprintln!(
        "depin coordinator on http://{} (store {}, policy {}, epochs of {} s)",
        server.addr,
        redact(&url),
        policy.id(),
        policy.epoch_seconds
    );
    let shutdown = server.shutdown_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("shutting down");
        let _ = shutdown.send(true);
    });
    server.wait().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Hides a password in a database URL before printing it.
fn redact(url: &str) -> String {
    depin_store::redact_url(url)
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://x.sqlite"), "sqlite://x.sqlite");
    }

    #[test]
    fn short_epochs_need_two_seconds() {
        assert!(load_policy(None, Some(1), None).is_err());
        assert_eq!(load_policy(None, Some(10), None).unwrap().epoch_seconds, 10);
    }
}
