//! `depin serve`: the coordinator behind an HTTP API.
//!
//! This crate is a thin shell: it turns HTTP requests into calls on
//! [`depin_coordinator::Coordinator`], reads the wall clock, and runs the loop
//! that closes epochs when they are due. Several replicas may run against one
//! PostgreSQL database; the store makes every epoch close exactly once.

mod budget;
mod consumer;
mod dashboard;
mod error;
mod http;
pub mod metrics;
mod openapi;
mod operator;
mod routes;
mod work;

pub use error::ApiError;
pub use routes::{ApiPath, Endpoint, RawBody, parse_key};

use anyhow::Context;
use depin_coordinator::Coordinator;
use depin_rewards::RewardPolicy;
use depin_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Largest request body accepted (a full report batch fits comfortably).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// How long a client may take to send a request's line and headers, counted
/// from the moment the server starts waiting for them (a new connection, or
/// the end of the previous response on a kept-alive one).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take from its headers to its answer, reading
/// the body included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections served at once; more are answered `503` and closed.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Longest request target (path and query) routed.
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
/// Unverifiable messages and registrations per client address and minute.
pub const DEFAULT_UNVERIFIED_PER_MINUTE: u32 = 2_000;
/// Devices whose energy cursor the closing loop advances per tick.
const ENERGY_PAGE: u32 = 500;

/// After a whole pass over the devices' energy cursors, the next starts
/// this much later, or as soon as this replica stores a report or closes an
/// epoch: an idle coordinator then runs two small queries per device a
/// minute, not every tick. The operator view stays exact meanwhile (it adds the heartbeats
/// after the stored cursor itself); the pass only keeps that addition short.
const ENERGY_PASS_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    pub policy: RewardPolicy,
    /// How often the closing loop looks for due epochs.
    pub close_tick: Duration,
    pub max_body_bytes: usize,
    /// Connections that have not sent a complete request head within this
    /// are closed (slow or stalled clients, idle kept-alive connections).
    pub header_read_timeout: Duration,
    /// A request not answered within this, body reading included, gets
    /// `408 request_timeout`.
    pub request_timeout: Duration,
    /// Connections served at once; beyond it a connection gets a JSON `503
    /// too_many_connections` and is closed, so file descriptors are never
    /// exhausted by clients and `/healthz` keeps answering once load drops.
    pub max_connections: usize,
    /// Request targets longer than this get `414 uri_too_long`.
    pub max_uri_bytes: usize,
    /// Unverifiable messages (undecodable, badly signed, from unregistered
    /// keys) and device registrations accepted per client address and minute.
    pub unverified_per_minute: u32,
    /// Load balancers in front of this server whose `X-Forwarded-For` names
    /// the client (for the per-address budget). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The sector plugins this coordinator serves (their kinds and
    /// verifiers); sectors without one are scored by availability alone.
    pub sectors: Vec<SectorHandle>,
}

/// A sector plugin shared by the configuration and the coordinator, with
/// the sector's own HTTP endpoints, if it has any.
#[derive(Clone)]
pub struct SectorHandle(
    pub Arc<dyn depin_coordinator::SectorPlugin>,
    pub Option<Arc<dyn SectorRoutes>>,
);

impl SectorHandle {
    pub fn new(plugin: Arc<dyn depin_coordinator::SectorPlugin>) -> SectorHandle {
        SectorHandle(plugin, None)
    }

    pub fn with_routes(mut self, routes: Arc<dyn SectorRoutes>) -> SectorHandle {
        self.1 = Some(routes);
        self
    }
}

impl std::fmt::Debug for SectorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SectorHandle({})", self.0.sector())
    }
}

/// A sector's own endpoints, mounted under `/v1/<sector>/` (the sector's
/// name, e.g. `/v1/storage/objects`) beside the backbone's and listed in the
/// OpenAPI document from the same table. Handlers take
/// `State<Arc<AppState>>` like the backbone's and reach the store through
/// `state.coordinator.store()`. A path outside the sector's prefix, or one
/// another endpoint already has, stops the server at start.
pub trait SectorRoutes: Send + Sync {
    fn endpoints(&self) -> Vec<Endpoint>;
}

/// Every sector endpoint of `config`, checked: under `/v1/<sector>/`, and no
/// (method, path) twice.
fn sector_endpoints(config: &ServerConfig) -> anyhow::Result<Vec<Endpoint>> {
    let mut out: Vec<Endpoint> = Vec::new();
    for h in &config.sectors {
        let Some(routes) = &h.1 else { continue };
        let prefix = format!("/v1/{}/", h.0.sector());
        for e in routes.endpoints() {
            if !e.doc.path.starts_with(&prefix) || e.doc.path.len() == prefix.len() {
                anyhow::bail!(
                    "the {} sector's endpoint {} {} is not under {prefix}",
                    h.0.sector(),
                    e.doc.method,
                    e.doc.path
                );
            }
            if out
                .iter()
                .any(|o| o.doc.path == e.doc.path && o.doc.method == e.doc.method)
            {
                anyhow::bail!("two sector endpoints are {} {}", e.doc.method, e.doc.path);
            }
            out.push(e);
        }
    }
    Ok(out)
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, database_url: String, policy: RewardPolicy) -> Self {
        ServerConfig {
            listen,
            database_url,
            policy,
            close_tick: Duration::from_secs(1),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            unverified_per_minute: DEFAULT_UNVERIFIED_PER_MINUTE,
            trusted_proxies: Vec::new(),
            sectors: Vec::new(),
        }
    }

    /// Refuses limits that would make the server refuse everything or panic
    /// inside hyper or tokio.
    fn check_http_limits(&self) -> anyhow::Result<()> {
        if self.header_read_timeout.is_zero() || self.request_timeout.is_zero() {
            anyhow::bail!("the header-read and request timeouts must be longer than zero");
        }
        if self.max_connections == 0 || self.max_connections > tokio::sync::Semaphore::MAX_PERMITS {
            anyhow::bail!(
                "max_connections must be between 1 and {}, got {}",
                tokio::sync::Semaphore::MAX_PERMITS,
                self.max_connections
            );
        }
        if self.max_uri_bytes == 0 {
            anyhow::bail!("max_uri_bytes must be at least 1");
        }
        Ok(())
    }
}

pub struct AppState {
    pub coordinator: Coordinator,
    pub metrics: PrometheusHandle,
    pub claim_cache: std::sync::Mutex<Vec<(u64, Arc<depin_merkle::StandardMerkleTree>)>>,
    pub health: Health,
    pub budget: budget::UnverifiedBudget,
}

/// The background work a coordinator cannot do without, as `/healthz` reports
/// it. A task that dies is not limped past: the server stops (see [`start`]).
#[derive(Debug, Default)]
pub struct Health {
    /// Why the server is stopping for good (a dead writer, a ledger
    /// invariant violation), once it is.
    fatal: std::sync::Mutex<Option<String>>,
    /// The last epoch close attempt's error; cleared by the next success.
    last_close_error: std::sync::Mutex<Option<String>>,
}

impl Health {
    fn set_fatal(&self, why: String) {
        let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert(why);
    }

    fn fatal(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_close_error(&self, e: Option<String>) {
        *self
            .last_close_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = e;
    }

    /// Everything wrong right now, in sentences; empty when healthy.
    pub fn problems(&self, writer_alive: bool) -> Vec<String> {
        let mut out = Vec::new();
        if !writer_alive {
            out.push("the report writer is not running: no report can be stored".into());
        }
        if let Some(f) = self.fatal() {
            out.push(format!("the coordinator is stopping: {f}"));
        }
        if let Some(e) = self
            .last_close_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            out.push(format!("the last epoch close failed (retrying): {e}"));
        }
        out
    }
}

/// A server started by [`start`]; [`RunningServer::stop`] shuts it down
/// gracefully (in-flight requests finish, the store is closed cleanly).
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.handle.await.context("server task panicked")?
    }

    /// Waits until the server stops by itself (it only does on error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.handle.await.context("server task panicked")?
    }

    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether a coordinator error is the storage failing (as opposed to a bug
/// or a refusal), for `depin_store_errors_total`.
fn is_storage_error(e: &depin_coordinator::CoordError) -> bool {
    use depin_coordinator::CoordError;
    match e {
        CoordError::Unavailable(_) => true,
        CoordError::Store(s) => s.is_unavailable(),
        _ => false,
    }
}

/// Opens the store, binds the listener and starts serving and closing epochs.
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    config.check_http_limits()?;
    let sector_routes = sector_endpoints(&config)?;
    let store = Store::open(&config.database_url).await.with_context(|| {
        format!(
            "opening the store at {}",
            depin_store::redact_url(&config.database_url)
        )
    })?;
    let plugins: Vec<&dyn depin_coordinator::SectorPlugin> =
        config.sectors.iter().map(|h| h.0.as_ref()).collect();
    let sectors = depin_coordinator::SectorSet::new(&plugins)
        .map_err(|e| anyhow::anyhow!("sector plugins: {e}"))?;
    let coordinator = Coordinator::open_with(store, config.policy.clone(), sectors)
        .await
        .context("starting the coordinator")?;
    let state = Arc::new(AppState {
        coordinator,
        metrics: metrics::handle(),
        claim_cache: Default::default(),
        health: Health::default(),
        budget: budget::UnverifiedBudget::new(
            config.unverified_per_minute,
            config.trusted_proxies.clone(),
        ),
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Outermost, so that answers the limits give before routing are counted too.
    let app = routes::router(state.clone(), &config, sector_routes)
        .layer(axum::middleware::from_fn(metrics::track_http));
    let limits = http::Limits::from(&config);
    let (shutdown, rx) = watch::channel(false);
    let mut closer_rx = shutdown.subscribe();
    let closer_state = state.clone();
    let closer_shutdown = shutdown.clone();
    let tick = config.close_tick;
    let closer = tokio::spawn(async move {
        let interval_ms = closer_state
            .coordinator
            .policy()
            .heartbeat_interval_seconds
            .max(1)
            * 1000;
        let mut energy_from = None;
        let mut energy_rest_until: Option<std::time::Instant> = None;
        // Reports this replica had written when the last pass ended.
        let mut energy_seen_reports = 0u64;
        loop {
            let started = std::time::Instant::now();
            match closer_state.coordinator.close_due_epochs(now_ms()).await {
                Ok(closed) => {
                    if !closed.is_empty() {
                        energy_rest_until = None;
                    }
                    metrics::observe_closes(started.elapsed(), closed.len());
                    closer_state.health.set_close_error(None);
                    for s in closed {
                        tracing::info!(epoch = s.epoch, minted = s.minted, root = %s.claim_root, "closed epoch");
                    }
                }
                // An invariant violation stops the coordinator rather than
                // continuing from a suspect state; other failures (storage)
                // are retried next tick and shown by /healthz meanwhile.
                Err(e @ depin_coordinator::CoordError::Invariant(_)) => {
                    tracing::error!(error = %e, "ledger invariant violated: stopping the coordinator");
                    closer_state
                        .health
                        .set_fatal(format!("epoch closing stopped: {e}"));
                    let _ = closer_shutdown.send(true);
                    return;
                }
                Err(e) => {
                    if is_storage_error(&e) {
                        metrics::store_error("epoch_close");
                    }
                    tracing::warn!(error = %e, "closing due epochs failed; retrying");
                    closer_state.health.set_close_error(Some(e.to_string()));
                }
            }
            // Energy cursors for the operator view, a page per tick, so a
            // GET of it only reads (and reads little).
            let written = closer_state.coordinator.writer_stats().reports;
            if written != energy_seen_reports {
                energy_rest_until = None;
            }
            if energy_rest_until.is_none_or(|t| std::time::Instant::now() >= t) {
                match operator::advance_energy_cursors(
                    closer_state.coordinator.store(),
                    interval_ms,
                    energy_from,
                    ENERGY_PAGE,
                )
                .await
                {
                    Ok(next) => {
                        energy_seen_reports = written;
                        energy_rest_until = next
                            .is_none()
                            .then(|| std::time::Instant::now() + ENERGY_PASS_EVERY);
                        energy_from = next;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.message, "advancing energy cursors failed; retrying")
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = closer_rx.changed() => return,
            }
        }
    });
    // Without its writer a coordinator acknowledges nothing: stop, so a
    // supervisor (systemd, an orchestrator) restarts it, instead of serving
    // 503s behind a green health check.
    let watchdog_state = state.clone();
    let watchdog_shutdown = shutdown.clone();
    let watchdog = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if !watchdog_state.coordinator.writer_alive() {
                tracing::error!("the report writer stopped: stopping the coordinator");
                watchdog_state
                    .health
                    .set_fatal("the report writer stopped".into());
                let _ = watchdog_shutdown.send(true);
                return;
            }
        }
    });
    let handle = tokio::spawn(async move {
        http::serve(listener, app, limits, rx).await;
        let _ = closer.await;
        watchdog.abort();
        let fatal = state.health.fatal();
        match Arc::try_unwrap(state) {
            Ok(state) => state.coordinator.store().clone().close().await,
            Err(_) => tracing::warn!("state still shared at shutdown; store closed by drop"),
        }
        match fatal {
            Some(why) => Err(anyhow::anyhow!("the coordinator stopped: {why}")),
            None => Ok(()),
        }
    });
    tracing::info!(%addr, "depin coordinator listening");
    Ok(RunningServer {
        addr,
        shutdown,
        handle,
    })
}

#[cfg(test)]
mod tests {
    use super::{ServerConfig, http};
    use axum::Router;
    use axum::extract::ConnectInfo;
    use axum::routing::get;
    use depin_rewards::RewardPolicy;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{Notify, watch};

    const DEADLINE: Duration = Duration::from_secs(10);

    /// Starts the accept loop alone (no store) on a loopback port.
    async fn serve(app: Router) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = ServerConfig::new(addr, String::new(), RewardPolicy::default_v1());
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(http::serve(listener, app, http::Limits::from(&config), rx));
        (addr, tx, task)
    }

    async fn get_text(addr: SocketAddr, path: &str) -> (SocketAddr, String) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let me = s.local_addr().unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(DEADLINE, s.read_to_string(&mut out))
            .await
            .expect("answered within the deadline")
            .unwrap();
        (me, out)
    }

    /// Handlers can take the peer address as `ConnectInfo<SocketAddr>`, as
    /// under axum's `into_make_service_with_connect_info`.
    #[tokio::test]
    async fn handlers_see_the_peer_address() {
        let app = Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        );
        let (addr, stop, task) = serve(app).await;
        let (me, out) = get_text(addr, "/peer").await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.ends_with(&format!("\r\n\r\n{me}")), "{me} in {out}");
        stop.send(true).unwrap();
        tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
    }

    /// Shutting down lets a request in flight finish and be answered, and
    /// only then does the accept loop return. Ordered by signals, not time.
    #[tokio::test]
    async fn shutdown_waits_for_requests_in_flight() {
        let entered = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let app = {
            let (entered, release) = (entered.clone(), release.clone());
            Router::new().route(
                "/slow",
                get(move || async move {
                    entered.notify_one();
                    release.notified().await;
                    "done"
                }),
            )
        };
        let (addr, stop, task) = serve(app).await;
        let client = tokio::spawn(get_text(addr, "/slow"));
        tokio::time::timeout(DEADLINE, entered.notified())
            .await
            .expect("the request reached the handler");
        stop.send(true).unwrap();
        // The loop has stopped accepting but must still be waiting for the
        // request: give it every chance to (wrongly) finish first.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!task.is_finished(), "shutdown did not wait for the request");
        release.notify_one();
        let (_, out) = tokio::time::timeout(DEADLINE, client)
            .await
            .unwrap()
            .unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.ends_with("done"), "{out}");
        tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
    }
}
