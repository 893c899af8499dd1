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

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    pub policy: RewardPolicy,
    /// How often the closing loop looks for due epochs.
    pub close_tick: Duration,
    pub max_body_bytes: usize,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, database_url: String, policy: RewardPolicy) -> Self {
        ServerConfig {
            listen,
            database_url,
            policy,
            close_tick: Duration::from_secs(1),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
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
    let app = routes::router(state.clone(), config.max_body_bytes);
    let (shutdown, mut rx) = watch::channel(false);
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
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.changed().await;
            })
            .await
            .context("HTTP server")?;
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
