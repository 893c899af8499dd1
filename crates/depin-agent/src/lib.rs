//! The node agent behind `depin node init|run`.
//!
//! Pure parts, tested without I/O: the spool's record format
//! ([`record`]), the retry schedule ([`backoff`]), heartbeat building and the
//! telemetry conventions ([`heartbeat`]), and what an answer from the
//! coordinator does to the spool ([`sender`]), and which work orders a
//! sector's [`Driver`] answers and how ([`driver`]). The shell around them: the
//! crash-safe spool files ([`spool`]), the data directory and onboarding
//! ([`node`]), telemetry readers ([`telemetry`]), `status.json` ([`status`])
//! and the event loop ([`run`]).
//!
//! The guarantee the pieces add up to: a heartbeat is durable in the spool
//! (fsynced, checksummed) before anything is sent, and leaves it only once
//! the coordinator has it or has refused it for good; so nothing is lost
//! across an agent crash or restart, or while the coordinator is down.

pub mod backoff;
pub mod driver;
pub mod fmt;
pub mod heartbeat;
pub mod node;
pub mod record;
pub mod run;
pub mod sender;
pub mod spool;
pub mod status;
pub mod telemetry;

pub use driver::{Driver, DriverError, Drivers};
pub use node::{InitParams, Initialised, NodeConfig, NodeError, init};
pub use run::{AgentError, RunOptions, RunSummary, run, shutdown_signal};

/// The wall clock in unix milliseconds. Only this shell reads it; the pure
/// modules take time as an argument.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
