//! `depin node run --metrics-listen ADDR`: the agent's counters for
//! Prometheus at `http://ADDR/metrics`.
//!
//! The figures are the agent's `status.json`, which it rewrites after every
//! heartbeat and every send; a scrape reads the file again. So the endpoint
//! needs nothing from inside the agent's loop, and its counters keep counting
//! across agent restarts, as `status.json` does (a counter that never resets
//! is still a valid Prometheus counter). Rendering is a pure function of the
//! status.

use anyhow::Context as _;
use depin_agent::status::Status;
use metrics::{describe_counter, describe_gauge};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const HEARTBEATS: &str = "depin_agent_heartbeats_created_total";
pub const ACCEPTED: &str = "depin_agent_reports_accepted_total";
pub const ALREADY_HAD: &str = "depin_agent_reports_already_had_total";
pub const DROPPED: &str = "depin_agent_reports_dropped_total";
pub const SPOOL: &str = "depin_agent_spool_reports";
pub const LAST_ACCEPTED: &str = "depin_agent_last_accepted_timestamp_seconds";
pub const FAILURES: &str = "depin_agent_consecutive_send_failures";
pub const UPDATED: &str = "depin_agent_status_updated_timestamp_seconds";

/// Reasons every agent exports from the start (at zero), so alerts on them
/// have a series before the first refusal. Others appear when they happen.
const KNOWN_DROP_REASONS: [&str; 4] = [
    "spool_full",
    "revoked_device",
    "late_report",
    "stale_timestamp",
];

/// The Prometheus text for `status`. A fresh recorder per call: every value
/// is set from the file, nothing accumulates in the process.
pub fn render(status: &Status) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe_counter!(
            HEARTBEATS,
            "Heartbeats this device created and put in its spool."
        );
        metrics::counter!(HEARTBEATS).absolute(status.heartbeats_created);
        describe_counter!(ACCEPTED, "Reports the coordinator accepted.");
        metrics::counter!(ACCEPTED).absolute(status.accepted_total);
        describe_counter!(
            ALREADY_HAD,
            "Reports the coordinator already had (a resend after a lost answer)."
        );
        metrics::counter!(ALREADY_HAD).absolute(status.already_had_total);
        describe_counter!(
            DROPPED,
            "Reports given up for good, by reason: refused by the coordinator (its reason code) or dropped from a full spool (spool_full)."
        );
        for r in KNOWN_DROP_REASONS {
            if !status.dropped_by_reason.contains_key(r) {
                metrics::counter!(DROPPED, "reason" => r).absolute(0);
            }
        }
        for (reason, n) in &status.dropped_by_reason {
            metrics::counter!(DROPPED, "reason" => reason.clone()).absolute(*n);
        }
        describe_gauge!(SPOOL, "Reports in the on-disk spool waiting to be sent.");
        metrics::gauge!(SPOOL).set(status.pending as f64);
        describe_gauge!(
            LAST_ACCEPTED,
            "Unix time of the last send the coordinator accepted; 0 before the first."
        );
        metrics::gauge!(LAST_ACCEPTED).set(status.last_success_ms.unwrap_or(0) as f64 / 1000.0);
        describe_gauge!(
            FAILURES,
            "Sends in a row that failed (coordinator unreachable or answering 5xx)."
        );
        metrics::gauge!(FAILURES).set(f64::from(status.consecutive_failures));
        describe_gauge!(UPDATED, "Unix time the agent last wrote its status.");
        metrics::gauge!(UPDATED).set(status.updated_ms as f64 / 1000.0);
    });
    handle.render()
}

/// Binds `addr` now (so a taken port fails `node run` at once) and serves
/// `/metrics` from `DIR/status.json` in the background.
pub async fn spawn(addr: SocketAddr, data_dir: PathBuf) -> anyhow::Result<SocketAddr> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-listen {addr}: cannot listen there"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let dir = data_dir.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    render(&Status::load(&dir)),
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the agent's metrics endpoint stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_from_the_status() {
        let mut s = Status {
            heartbeats_created: 12,
            accepted_total: 10,
            already_had_total: 1,
            pending: 2,
            last_success_ms: Some(1_700_000_000_500),
            updated_ms: 1_700_000_001_000,
            consecutive_failures: 3,
            ..Status::default()
        };
        s.count_drop("late_report", 1);
        s.count_drop("bad_payload", 2);
        let text = render(&s);
        for line in [
            "depin_agent_heartbeats_created_total 12",
            "depin_agent_reports_accepted_total 10",
            "depin_agent_reports_already_had_total 1",
            "depin_agent_reports_dropped_total{reason=\"late_report\"} 1",
            "depin_agent_reports_dropped_total{reason=\"bad_payload\"} 2",
            "depin_agent_reports_dropped_total{reason=\"spool_full\"} 0",
            "depin_agent_spool_reports 2",
            "depin_agent_last_accepted_timestamp_seconds 1700000000.5",
            "depin_agent_consecutive_send_failures 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        for name in [
            HEARTBEATS,
            ACCEPTED,
            ALREADY_HAD,
            DROPPED,
            SPOOL,
            LAST_ACCEPTED,
            FAILURES,
            UPDATED,
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
        }
    }
}
