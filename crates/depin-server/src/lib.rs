//! `depin serve`: the coordinator behind an HTTP API.
//!
//! This crate is a thin shell: it turns HTTP requests into calls on
//! [`depin_coordinator::Coordinator`], reads the wall clock, and runs the loop
//! that closes epochs when they are due. Several replicas may run against one
//! PostgreSQL database; the store makes every epoch close exactly once.

mod error;
mod openapi;
mod operator;
mod routes;

pub use error::ApiError;

use anyhow::Context;
use depin_coordinator::Coordinator;
use depin_rewards::RewardPolicy;
use depin_store::Store;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
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

/// The process-wide Prometheus recorder (a process has one global recorder;
/// tests start several servers in one process).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Opens the store, binds the listener and starts serving and closing epochs.
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    config.check_http_limits()?;
    let store = Store::open(&config.database_url)
        .await
        .with_context(|| format!("opening the store at {}", config.database_url))?;
    let coordinator = Coordinator::open(store, config.policy.clone())
        .await
        .context("starting the coordinator")?;
    let state = Arc::new(AppState {
        coordinator,
        metrics: metrics_handle(),
        claim_cache: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let app = routes::router(state.clone(), &config);
    let limits = http::Limits::from(&config);
    let (shutdown, rx) = watch::channel(false);
    let mut closer_rx = shutdown.subscribe();
    let closer_state = state.clone();
    let tick = config.close_tick;
    let closer = tokio::spawn(async move {
        loop {
            match closer_state.coordinator.close_due_epochs(now_ms()).await {
                Ok(closed) => {
                    for s in closed {
                        tracing::info!(epoch = s.epoch, minted = s.minted, root = %s.claim_root, "closed epoch");
                    }
                }
                // A failing close is retried next tick; an invariant violation
                // stops the loop rather than continuing from a suspect state.
                Err(e @ depin_coordinator::CoordError::Invariant(_)) => {
                    tracing::error!(error = %e, "ledger invariant violated: epoch closing stopped");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "closing due epochs failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = closer_rx.changed() => return,
            }
        }
    });
    let handle = tokio::spawn(async move {
        http::serve(listener, app, limits, rx).await;
        let _ = closer.await;
        match Arc::try_unwrap(state) {
            Ok(state) => state.coordinator.store().clone().close().await,
            Err(_) => tracing::warn!("state still shared at shutdown; store closed by drop"),
        }
        Ok(())
    });
    tracing::info!(%addr, "depin coordinator listening");
    Ok(RunningServer {
        addr,
        shutdown,
        handle,
    })
}

/// The HTTP/1.1 accept loop. It replaces `axum::serve`, which offers neither
/// a header-read timeout nor a cap on connections: without them ~20,000
/// connections that sent half a request line each held a file descriptor
/// forever, and `/healthz` stopped answering.
///
/// What stays hyper's own: hyper answers some protocol errors itself, before
/// a request exists to route, with an empty body, and offers no hook to shape
/// that answer:
/// - an unparsable request line or header (bad method, version, header
///   syntax, invalid URI characters): empty `400`;
/// - a request head (request line and headers) longer than
///   [`http::MAX_HEAD_BYTES`], or with more than 100 headers: empty `431`.
///   Hyper's own fixed limit on the request target, 65,534 bytes (empty
///   `414`), is never reached: a head holding such a target is already too
///   long. Targets up to the head limit reach our JSON `414 uri_too_long`;
/// - a head not complete within the header-read timeout: the connection is
///   closed without an answer (there is no request to answer);
/// - an HTTP/2 preface: the connection is closed (the server speaks HTTP/1.1).
///
/// Each of these closes only the offending connection. Anything that parses
/// as a request reaches the router, so from there on every error is JSON.
mod http {
    use super::{ApiError, ServerConfig};
    use axum::Router;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{Semaphore, watch};
    use tower::ServiceExt;

    /// Longest request head (request line and headers) hyper reads. Without
    /// it a head may grow to hyper's whole read buffer (~400 KiB), which would
    /// let the connection cap's worth of clients trickling headers pin
    /// ~400 MiB; 64 KiB is eight times the longest target we route and far
    /// above any real client's headers. It does not limit bodies.
    pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
    /// Connections over the cap being answered at once; beyond this they are
    /// closed without an answer, so a flood cannot turn refusals into the very
    /// descriptor exhaustion the cap prevents.
    const MAX_REFUSALS_IN_FLIGHT: usize = 64;
    /// How long a refusal waits for the client to read it and hang up.
    const REFUSAL_LINGER: Duration = Duration::from_millis(500);
    /// Pause after an accept error that is not about one connection (such as
    /// running out of file descriptors), as hyper and axum do, rather than
    /// spinning on it.
    const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

    pub(crate) struct Limits {
        header_read_timeout: Duration,
        max_connections: usize,
    }

    impl From<&ServerConfig> for Limits {
        fn from(c: &ServerConfig) -> Self {
            Limits {
                header_read_timeout: c.header_read_timeout,
                max_connections: c.max_connections,
            }
        }
    }

    /// Serves `app` on `listener` until `shutdown` changes (or its sender is
    /// dropped), then stops accepting and waits for the open connections:
    /// requests in flight finish, idle connections are closed.
    pub(crate) async fn serve(
        listener: TcpListener,
        app: Router,
        limits: Limits,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_header_size(MAX_HEAD_BYTES);
        let graceful = GracefulShutdown::new();
        // A permit is held for a connection's whole life, so the count is of
        // open connections, not of requests.
        let connections = Arc::new(Semaphore::new(limits.max_connections));
        let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "accept failed; pausing");
                        tokio::select! {
                            _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                            _ = shutdown.changed() => break,
                        }
                    }
                },
                _ = shutdown.changed() => break,
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                metrics::counter!("depin_http_errors_total", "code" => "too_many_connections")
                    .increment(1);
                if let Ok(slot) = refusals.clone().try_acquire_owned() {
                    let max = limits.max_connections;
                    tokio::spawn(async move {
                        refuse(stream, max).await;
                        drop(slot);
                    });
                }
                continue;
            };
            // Handlers see the peer address as `ConnectInfo<SocketAddr>`,
            // as with `into_make_service_with_connect_info`.
            let service = app
                .clone()
                .map_request(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req.map(Body::new)
                });
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(listener);
        graceful.shutdown().await;
    }

    /// Errors that concern only the connection being accepted.
    fn is_connection_error(e: &std::io::Error) -> bool {
        matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::ConnectionReset
        )
    }

    /// Answers a connection over the cap with a JSON `503` and closes it.
    /// Written by hand because no hyper connection exists for it: that is the
    /// point of the cap.
    async fn refuse(mut stream: TcpStream, max: usize) {
        let body = ApiError::too_many_connections(format!(
            "the server is serving its maximum of {max} connections; retry shortly"
        ))
        .body()
        .to_string();
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
            body.len()
        );
        let answer = async {
            stream.write_all(response.as_bytes()).await?;
            // Half-close, then read what the client sent until it hangs up:
            // closing a socket with unread input makes the kernel send a
            // reset, which can destroy the answer before the client reads it.
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        };
        let _ = tokio::time::timeout(REFUSAL_LINGER, answer).await;
    }
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
