//! `depin serve`: run the coordinator.

use anyhow::Context;
use depin_rewards::RewardPolicy;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Every setting of `depin serve`. Each can also be given in the `--config`
/// file under the same name (`data-dir = "…"`); the command line wins over
/// the file, the file over the defaults. No setting has a clap default, so
/// that "not given" can be told from "given as the default".
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below, named as the flags are
    /// (e.g. `listen = "0.0.0.0:8080"`); unknown names are an error.
    /// Relative paths in it are relative to the file's directory.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory for the embedded SQLite store (used when no --database-url) [default: ./depin-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
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
    /// Most client connections open at once; more are refused with a 503 [default: 1024].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Seconds a client may take to send its request headers [default: 10].
    #[arg(long)]
    header_timeout_seconds: Option<u64>,
    /// Seconds a request may take, body included [default: 30].
    #[arg(long)]
    request_timeout_seconds: Option<u64>,
    /// Unverifiable reports and registrations accepted per client address and minute [default: 2000].
    #[arg(long)]
    unverified_per_minute: Option<u32>,
    /// A load balancer in front of this server whose X-Forwarded-For names the client (repeatable).
    #[arg(long = "trusted-proxy", value_name = "IP")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Log lines as human-readable `text` or as `json` (one object per line) [default: text].
    #[arg(long, value_enum)]
    log_format: Option<crate::logging::LogFormat>,
}

/// The `--config` file: the same settings as [`ServeArgs`], named as the
/// flags are. `deny_unknown_fields` turns a misspelt key into an error that
/// names it instead of a setting silently ignored.
#[derive(serde::Deserialize, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServeFile {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    policy: Option<PathBuf>,
    epoch_seconds: Option<u64>,
    genesis_ms: Option<i64>,
    max_connections: Option<usize>,
    header_timeout_seconds: Option<u64>,
    request_timeout_seconds: Option<u64>,
    unverified_per_minute: Option<u32>,
    /// A list, where the flag is repeated.
    trusted_proxy: Option<Vec<std::net::IpAddr>>,
    log_format: Option<crate::logging::LogFormat>,
}

/// The settings in force: command line over file over defaults.
#[derive(Debug, PartialEq)]
struct Settings {
    listen: SocketAddr,
    data_dir: PathBuf,
    database_url: Option<String>,
    policy: Option<PathBuf>,
    epoch_seconds: Option<u64>,
    genesis_ms: Option<i64>,
    max_connections: usize,
    header_timeout_seconds: u64,
    request_timeout_seconds: u64,
    unverified_per_minute: u32,
    trusted_proxies: Vec<std::net::IpAddr>,
    log_format: crate::logging::LogFormat,
}

/// Parses a `--config` file's text; `dir` is the file's directory, against
/// which relative paths are resolved (so a unit file can name the config
/// alone, wherever systemd starts the process). Pure.
fn parse_file(text: &str, dir: &std::path::Path) -> Result<ServeFile, toml::de::Error> {
    let mut f: ServeFile = toml::from_str(text)?;
    for p in [&mut f.data_dir, &mut f.policy].into_iter().flatten() {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    }
    Ok(f)
}

impl Settings {
    /// Merges the command line over the file over the defaults. Pure.
    fn merge(a: ServeArgs, f: ServeFile) -> Settings {
        Settings {
            listen: a
                .listen
                .or(f.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("a socket address")),
            data_dir: a
                .data_dir
                .or(f.data_dir)
                .unwrap_or_else(|| PathBuf::from("./depin-data")),
            database_url: a.database_url.or(f.database_url),
            policy: a.policy.or(f.policy),
            epoch_seconds: a.epoch_seconds.or(f.epoch_seconds),
            genesis_ms: a.genesis_ms.or(f.genesis_ms),
            max_connections: a
                .max_connections
                .or(f.max_connections)
                .unwrap_or(depin_server::DEFAULT_MAX_CONNECTIONS),
            header_timeout_seconds: a
                .header_timeout_seconds
                .or(f.header_timeout_seconds)
                .unwrap_or(depin_server::DEFAULT_HEADER_READ_TIMEOUT.as_secs()),
            request_timeout_seconds: a
                .request_timeout_seconds
                .or(f.request_timeout_seconds)
                .unwrap_or(depin_server::DEFAULT_REQUEST_TIMEOUT.as_secs()),
            unverified_per_minute: a
                .unverified_per_minute
                .or(f.unverified_per_minute)
                .unwrap_or(depin_server::DEFAULT_UNVERIFIED_PER_MINUTE),
            // A list given on the command line replaces the file's.
            trusted_proxies: if a.trusted_proxies.is_empty() {
                f.trusted_proxy.unwrap_or_default()
            } else {
                a.trusted_proxies
            },
            log_format: a.log_format.or(f.log_format).unwrap_or_default(),
        }
    }

    fn from_args(mut a: ServeArgs) -> anyhow::Result<Settings> {
        let file = match a.config.take() {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("--config: cannot read {}", path.display()))?;
                let dir = path.parent().unwrap_or(std::path::Path::new("."));
                parse_file(&text, dir).map_err(|e| {
                    anyhow::anyhow!("--config {}: {}", path.display(), e.to_string().trim_end())
                })?
            }
            None => ServeFile::default(),
        };
        Ok(Settings::merge(a, file))
    }
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
    // Read the settings before logging starts: the log format is one of them.
    let args = Settings::from_args(args)?;
    crate::logging::init(args.log_format);
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
    match args.log_format {
        crate::logging::LogFormat::Text => eprintln!(
            "depin coordinator on http://{} (store {}, policy {}, epochs of {} s)",
            server.addr,
            redact(&url),
            policy.id(),
            policy.epoch_seconds
        ),
        // Every line on stderr is JSON: the same facts as one event.
        crate::logging::LogFormat::Json => tracing::info!(
            url = %format!("http://{}", server.addr),
            store = %redact(&url),
            policy = %policy.id(),
            epoch_seconds = policy.epoch_seconds,
            "depin coordinator started"
        ),
    }
    let shutdown = server.shutdown_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
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

/// Human-readable logs on stderr (the benchmarks use this too).
pub fn init_tracing() {
    crate::logging::init(crate::logging::LogFormat::Text);
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
    fn the_command_line_wins_over_the_file_and_the_file_over_defaults() {
        let file = parse_file(
            "listen = \"0.0.0.0:9000\"\ndata-dir = \"state\"\nmax-connections = 7\n\
             trusted-proxy = [\"10.0.0.1\"]\nlog-format = \"json\"\n",
            std::path::Path::new("/etc/depin"),
        )
        .unwrap();
        assert_eq!(file.data_dir, Some(PathBuf::from("/etc/depin/state")));
        let args = ServeArgs {
            max_connections: Some(9),
            ..ServeArgs::default()
        };
        let s = Settings::merge(args, file);
        assert_eq!(s.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(s.max_connections, 9);
        assert_eq!(
            s.trusted_proxies,
            vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(s.log_format, crate::logging::LogFormat::Json);
        assert_eq!(s.request_timeout_seconds, 30);
        let none = Settings::merge(ServeArgs::default(), ServeFile::default());
        assert_eq!(none.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(none.data_dir, PathBuf::from("./depin-data"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let e = parse_file("lisen = \"0.0.0.0:1\"\n", std::path::Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = parse_file("max-connections = \"many\"\n", std::path::Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("max-connections"), "{e}");
    }

    #[test]
    fn short_epochs_need_two_seconds() {
        assert!(load_policy(None, Some(1), None).is_err());
        assert_eq!(load_policy(None, Some(10), None).unwrap().epoch_seconds, 10);
    }
}
