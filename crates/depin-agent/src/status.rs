//! `status.json`: what the agent has done, for operators and dashboards.
//! Totals are cumulative across restarts (the previous file is read back).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const STATUS_FILE: &str = "status.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub device: String,
    pub coordinator: String,
    /// When this file was written (unix ms).
    pub updated_ms: i64,
    /// When the running agent started (unix ms).
    pub started_ms: i64,
    /// `running`, `stopped`.
    pub state: String,
    pub heartbeats_created: u64,
    pub last_seq_created: Option<u64>,
    /// Reports the coordinator accepted.
    pub accepted_total: u64,
    /// Reports the coordinator already had (a resend after a lost answer).
    pub already_had_total: u64,
    /// Reports refused for good, and why. Each was also logged.
    pub dropped_total: u64,
    pub dropped_by_reason: BTreeMap<String, u64>,
    /// Reports in the spool waiting to be sent.
    pub pending: u64,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub next_retry_ms: Option<i64>,
    /// Last telemetry sent. `temperature_c` is null when no sensor is readable.
    pub uptime_s: u64,
    pub temperature_c: Option<f64>,
    pub declared_watts: f64,
    /// The sector driver answering work orders; null: heartbeats only.
    pub driver: Option<String>,
    /// Work orders answered (answers signed and spooled).
    pub answers_created: u64,
    /// Orders open for the device at the last poll.
    pub work_open: u64,
    pub last_work_poll_ms: Option<i64>,
    pub last_work_error: Option<String>,
}

impl Status {
    /// The previous status in `dir`, or an empty one.
    pub fn load(dir: &Path) -> Status {
        std::fs::read_to_string(dir.join(STATUS_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        crate::node::write_atomic(
            &dir.join(STATUS_FILE),
            serde_json::to_string_pretty(self)
                .expect("serialises")
                .as_bytes(),
        )
    }

    pub fn count_drop(&mut self, reason: &str, n: u64) {
        self.dropped_total += n;
        *self
            .dropped_by_reason
            .entry(reason.to_string())
            .or_default() += n;
    }
}
