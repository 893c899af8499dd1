//! The coordinator's Prometheus metrics: every name, its HELP text and
//! buckets, the HTTP middleware, and what is gathered at scrape time.
//!
//! Conventions (checked by `promtool check metrics` in `tests/metrics.rs`):
//! names start with `depin_`; counters end in `_total`; durations are
//! histograms in seconds ending in `_seconds`; amounts carry their unit
//! (`_base_units`). Every metric is described and registered when the server
//! starts, so a fresh server already exports each one (labelled ones with the
//! label values known in advance), and dashboards and alerts never see a
//! series appear out of nowhere. Label values come from closed sets (route
//! templates, reason codes, error codes), never from client input, so the
//! number of series is bounded.
//!
//! A few counters are incremented by `depin-coordinator` itself (reports,
//! registrations, closes, writer failures); they are described here, since
//! this is the crate that owns the exporter.

use crate::AppState;
use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use depin_core::Reason;
use depin_rewards::RewardPolicy;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

pub const HTTP_REQUESTS: &str = "depin_http_requests_total";
pub const HTTP_DURATION: &str = "depin_http_request_duration_seconds";
pub const HTTP_ERRORS: &str = "depin_http_errors_total";
pub const REPORTS_ACCEPTED: &str = "depin_reports_accepted_total";
pub const REPORTS_REJECTED: &str = "depin_reports_rejected_total";
pub const DEVICES_REGISTERED: &str = "depin_devices_registered_total";
pub const UNVERIFIED_REFUSALS: &str = "depin_unverified_budget_refusals_total";
pub const REPORT_LOG_COMMITS: &str = "depin_report_log_commits_total";
pub const REPORT_LOG_APPEND_FAILURES: &str = "depin_report_log_append_failures_total";
pub const EPOCHS_CLOSED: &str = "depin_epochs_closed_total";
pub const LAST_CLOSED_EPOCH: &str = "depin_last_closed_epoch";
pub const EPOCH_CLOSE_DURATION: &str = "depin_epoch_close_duration_seconds";
pub const EPOCH_CLOSE_LAG_EPOCHS: &str = "depin_epoch_close_lag_epochs";
pub const EPOCH_CLOSE_LAG_SECONDS: &str = "depin_epoch_close_lag_seconds";
pub const LEDGER_MINTED: &str = "depin_ledger_minted_base_units";
pub const LEDGER_BURNED: &str = "depin_ledger_burned_base_units";
pub const LEDGER_HELD: &str = "depin_ledger_held_base_units";
pub const STORE_ERRORS: &str = "depin_store_errors_total";
pub const BUILD_INFO: &str = "depin_build_info";
pub const DEPOSITS: &str = "depin_deposits_total";
pub const ORDERS_LOCKED: &str = "depin_orders_locked_total";

/// Where a store error surfaced (`depin_store_errors_total{during}`).
pub const STORE_ERROR_SITES: [&str; 3] = ["request", "epoch_close", "scrape"];
/// Holder kinds of `depin_ledger_held_base_units{holder}`.
pub const HOLDER_KINDS: [&str; 4] = ["operator", "escrow", "locked", "protocol"];

/// Histogram buckets for every `_seconds` metric: from a fast request (1 ms)
/// to a long epoch close over a million devices (5 min).
const SECONDS_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// The process-wide recorder (a process has one global recorder; tests start
/// several servers in one process). Registers every metric on first use.
pub(crate) fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            register();
            handle
        })
        .clone()
}

/// Reason codes a report can be refused with at ingest: every code except
/// those only a reward line or the escrow API carries. A code added later is
/// an ingest code unless listed here.
pub fn ingest_reasons() -> impl Iterator<Item = Reason> {
    Reason::ALL.into_iter().filter(|r| {
        !matches!(
            r,
            Reason::NoReports
                | Reason::LowUptime
                | Reason::PartialUptime
                | Reason::PartialEpoch
                | Reason::RoundedToZero
                | Reason::ChallengeMissed
                | Reason::InsufficientEscrow
                | Reason::DepositConflict
        )
    })
}

/// Describes every metric and creates its series at zero. `increment(0)`
/// rather than `absolute(0)`: a second server in the same process (tests)
/// must not reset the first one's counts.
fn register() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status code."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response head, by route template."
    );
    // The server's own scrape route is the one series known to exist on
    // every server; the others appear with their first request.
    metrics::counter!(HTTP_REQUESTS, "route" => "/metrics", "method" => "GET", "status" => "200")
        .increment(0);
    let _ = metrics::histogram!(HTTP_DURATION, "route" => "/metrics");
    describe_counter!(
        HTTP_ERRORS,
        "Error answers by error code (the `error` field of the JSON body)."
    );
    metrics::counter!(HTTP_ERRORS, "code" => "storage_unavailable").increment(0);
    describe_counter!(
        REPORTS_ACCEPTED,
        "Reports stored in the report log (acknowledged only after commit)."
    );
    metrics::counter!(REPORTS_ACCEPTED).increment(0);
    describe_counter!(
        REPORTS_REJECTED,
        "Reports refused at ingest, by reason code (see `depin reasons`)."
    );
    for r in ingest_reasons() {
        metrics::counter!(REPORTS_REJECTED, "reason" => r.as_str()).increment(0);
    }
    describe_counter!(DEVICES_REGISTERED, "Device registrations accepted.");
    metrics::counter!(DEVICES_REGISTERED).increment(0);
    describe_counter!(
        UNVERIFIED_REFUSALS,
        "Requests refused with 429 because their client address spent its budget for unverifiable messages."
    );
    metrics::counter!(UNVERIFIED_REFUSALS).increment(0);
    describe_counter!(
        REPORT_LOG_COMMITS,
        "Group commits of the report writer (one transaction and fsync each)."
    );
    metrics::counter!(REPORT_LOG_COMMITS).absolute(0);
    describe_counter!(
        REPORT_LOG_APPEND_FAILURES,
        "Report-log group commits that failed (nothing of the group was acknowledged)."
    );
    metrics::counter!(REPORT_LOG_APPEND_FAILURES).increment(0);
    describe_counter!(EPOCHS_CLOSED, "Epochs closed by this process.");
    metrics::counter!(EPOCHS_CLOSED).increment(0);
    describe_gauge!(
        LAST_CLOSED_EPOCH,
        "Index of the newest closed epoch this process knows of (-1 before the first)."
    );
    metrics::gauge!(LAST_CLOSED_EPOCH).set(-1.0);
    describe_histogram!(
        EPOCH_CLOSE_DURATION,
        Unit::Seconds,
        "Time one epoch close took: inputs read, rewards computed, committed, ledger checked."
    );
    let _ = metrics::histogram!(EPOCH_CLOSE_DURATION);
    describe_gauge!(
        EPOCH_CLOSE_LAG_EPOCHS,
        "Epochs that could be closed (end and grace passed) but are not closed yet."
    );
    metrics::gauge!(EPOCH_CLOSE_LAG_EPOCHS).set(0.0);
    describe_gauge!(
        EPOCH_CLOSE_LAG_SECONDS,
        Unit::Seconds,
        "How long the oldest closable but unclosed epoch has been closable; 0 when none is."
    );
    metrics::gauge!(EPOCH_CLOSE_LAG_SECONDS).set(0.0);
    describe_gauge!(
        LEDGER_MINTED,
        "Tokens minted so far, in base units (10^6 per token)."
    );
    metrics::gauge!(LEDGER_MINTED).set(0.0);
    describe_gauge!(
        LEDGER_BURNED,
        "Tokens burned so far, in base units (10^6 per token)."
    );
    metrics::gauge!(LEDGER_BURNED).set(0.0);
    describe_gauge!(
        LEDGER_HELD,
        "Tokens held in the ledger by kind of holder, in base units (10^6 per token)."
    );
    for h in HOLDER_KINDS {
        metrics::gauge!(LEDGER_HELD, "holder" => h).set(0.0);
    }
    describe_counter!(
        STORE_ERRORS,
        "Storage failures (database unreachable, disk full, …), by where they surfaced."
    );
    for s in STORE_ERROR_SITES {
        metrics::counter!(STORE_ERRORS, "during" => s).increment(0);
    }
    describe_counter!(
        DEPOSITS,
        "Consumer deposits credited to escrow (a replayed external reference is not counted)."
    );
    metrics::counter!(DEPOSITS).increment(0);
    describe_counter!(
        ORDERS_LOCKED,
        "Orders whose escrow lock was accepted (the same signed lock again is not counted)."
    );
    metrics::counter!(ORDERS_LOCKED).increment(0);
    describe_gauge!(BUILD_INFO, "Always 1; the version label names the build.");
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Counts a storage failure at `during` (one of [`STORE_ERROR_SITES`]).
pub(crate) fn store_error(during: &'static str) {
    metrics::counter!(STORE_ERRORS, "during" => during).increment(1);
}

// ------------------------------------------------------------------- HTTP

/// The route template a request matched, carried from the inner router (where
/// axum knows it) to [`track_http`] (which sees every answer, including those
/// the limits give before routing).
#[derive(Clone)]
struct RouteLabel(Arc<str>);

/// Inner layer (`route_layer` on the API router): tags the response with the
/// matched route template, e.g. `/v1/devices/{device}`.
pub(crate) async fn mark_route(req: Request, next: Next) -> Response {
    let route: Option<Arc<str>> = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| Arc::from(m.as_str()));
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteLabel(route));
    }
    response
}

/// Outermost layer: counts and times every request by route template,
/// method and status. Requests that matched no route (404s, refusals before
/// routing) share the label `unmatched`, so a scanner cannot create series.
pub(crate) async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let response = next.run(req).await;
    let route: Arc<str> = response
        .extensions()
        .get::<RouteLabel>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| Arc::from("unmatched"));
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => route.to_string(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route.to_string())
        .record(started.elapsed().as_secs_f64());
    response
}

/// Methods outside the standard set (any token is a valid method) would be
/// client-chosen label values.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

// ----------------------------------------------------------------- epochs

/// Records a closing pass that closed `closed` epochs in `elapsed`. The
/// coordinator closes due epochs oldest first in one call; when it catches up
/// on several, each counts as the pass's average.
pub(crate) fn observe_closes(elapsed: std::time::Duration, closed: usize) {
    if closed == 0 {
        return;
    }
    let each = elapsed.as_secs_f64() / closed as f64;
    let h = metrics::histogram!(EPOCH_CLOSE_DURATION);
    for _ in 0..closed {
        h.record(each);
    }
}

/// How far epoch closing is behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseLag {
    /// Epochs closable at `now` and not closed.
    pub epochs: u64,
    /// Milliseconds since the oldest of them became closable (0 if none).
    pub ms: i64,
}

/// The close lag at `now_ms`, given the newest closed epoch and the first
/// device registration (epochs before it are never closed: they are empty,
/// and the coordinator skips them). Pure.
pub fn close_lag(
    policy: &RewardPolicy,
    now_ms: i64,
    last_closed: Option<u64>,
    first_registration_ms: Option<i64>,
) -> CloseLag {
    let none = CloseLag { epochs: 0, ms: 0 };
    let (Some(current), Some(first_ms)) = (policy.epoch_of(now_ms), first_registration_ms) else {
        return none;
    };
    let first = policy.epoch_of(first_ms).unwrap_or(0);
    let oldest_open = last_closed.map_or(first, |l| (l + 1).max(first));
    // Closable epochs are a prefix of 0..current (closable_at_ms rises with
    // the epoch): count those at or after the oldest unclosed one.
    let mut epochs = 0;
    let mut e = oldest_open;
    while e < current && policy.closable_at_ms(e) <= now_ms {
        epochs += 1;
        e += 1;
    }
    if epochs == 0 {
        return none;
    }
    CloseLag {
        epochs,
        ms: now_ms - policy.closable_at_ms(oldest_open),
    }
}

// ----------------------------------------------------------------- ledger

/// Ledger totals in base units, from the stored balances.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LedgerTotals {
    pub minted: i128,
    pub burned: i128,
    /// By holder kind, in [`HOLDER_KINDS`] order.
    pub held: [i128; 4],
}

/// Sums stored balances (account key, balance) into totals. `mint` goes
/// negative by what it issued; `burn` rises by what it destroyed; holders
/// are grouped by kind. Keys this version does not know are skipped (the
/// ledger invariant check, not a scrape, is where they are an error). Pure.
pub fn ledger_totals(balances: &[(String, i64)]) -> LedgerTotals {
    use depin_ledger::Account;
    let mut t = LedgerTotals::default();
    for (key, balance) in balances {
        let b = i128::from(*balance);
        match Account::parse_key(key) {
            Ok(Account::Mint) => t.minted -= b,
            Ok(Account::Burn) => t.burned += b,
            Ok(Account::Operator(_)) => t.held[0] += b,
            Ok(Account::Escrow(_)) => t.held[1] += b,
            Ok(Account::Locked { .. }) => t.held[2] += b,
            Ok(Account::Protocol) => t.held[3] += b,
            Ok(Account::External) | Err(_) => {}
        }
    }
    t
}

// ----------------------------------------------------------------- scrape

/// `GET /metrics`: refreshes what is read at scrape time (writer commits,
/// close lag, ledger totals), then renders the text format.
pub(crate) async fn scrape(st: &AppState) -> Response {
    let w = st.coordinator.writer_stats();
    metrics::counter!(REPORT_LOG_COMMITS).absolute(w.commits);
    let coordinator = &st.coordinator;
    let store = coordinator.store();
    match store.first_registration_ms().await {
        Ok(first) => {
            let lag = close_lag(
                coordinator.policy(),
                crate::now_ms(),
                coordinator.last_closed_epoch(),
                first,
            );
            metrics::gauge!(EPOCH_CLOSE_LAG_EPOCHS).set(lag.epochs as f64);
            metrics::gauge!(EPOCH_CLOSE_LAG_SECONDS).set(lag.ms as f64 / 1000.0);
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the first registration");
            store_error("scrape");
        }
    }
    if let Some(last) = coordinator.last_closed_epoch() {
        metrics::gauge!(LAST_CLOSED_EPOCH).set(last as f64);
    }
    match store.balances().await {
        Ok(b) => {
            let t = ledger_totals(&b);
            metrics::gauge!(LEDGER_MINTED).set(t.minted as f64);
            metrics::gauge!(LEDGER_BURNED).set(t.burned as f64);
            for (h, v) in HOLDER_KINDS.iter().zip(t.held) {
                metrics::gauge!(LEDGER_HELD, "holder" => *h).set(v as f64);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read ledger balances");
            store_error("scrape");
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RewardPolicy {
        // 10 s epochs from t = 0; see RewardPolicy::devnet for the grace.
        RewardPolicy {
            genesis_unix_ms: 0,
            ..RewardPolicy::devnet(10)
        }
    }

    #[test]
    fn no_lag_before_any_registration_or_when_caught_up() {
        let p = policy();
        assert_eq!(close_lag(&p, 1_000_000, None, None).epochs, 0);
        let now = p.closable_at_ms(5) + 1;
        assert_eq!(
            close_lag(&p, now, Some(5), Some(0)),
            CloseLag { epochs: 0, ms: 0 }
        );
    }

    #[test]
    fn lag_counts_closable_epochs_from_the_oldest_unclosed() {
        let p = policy();
        // Epochs 0..=5 closable, 3 closed: 4 and 5 are behind, 4 the oldest.
        let now = p.closable_at_ms(5) + 250;
        let lag = close_lag(&p, now, Some(3), Some(0));
        assert_eq!(lag.epochs, 2);
        assert_eq!(lag.ms, now - p.closable_at_ms(4));
        // Nothing closed yet, first device registered in epoch 2.
        let lag = close_lag(&p, now, None, Some(p.epoch_start_ms(2) + 5));
        assert_eq!(lag.epochs, 4);
        assert_eq!(lag.ms, now - p.closable_at_ms(2));
        // An epoch whose grace has not passed is not behind.
        let just_before = p.closable_at_ms(4) - 1;
        assert_eq!(close_lag(&p, just_before, Some(3), Some(0)).epochs, 0);
    }

    #[test]
    fn ledger_totals_by_kind() {
        let op = "operator:".to_string() + &"ab".repeat(32);
        let esc = "escrow:".to_string() + &"cd".repeat(32);
        let locked = "locked:".to_string() + &"cd".repeat(32) + ":7";
        let b = vec![
            ("mint".to_string(), -1_000),
            ("burn".to_string(), 30),
            ("external".to_string(), -500),
            ("protocol".to_string(), 20),
            (op, 950),
            (esc, 400),
            (locked, 100),
        ];
        let t = ledger_totals(&b);
        assert_eq!(t.minted, 1_000);
        assert_eq!(t.burned, 30);
        assert_eq!(t.held, [950, 400, 100, 20]);
    }

    #[test]
    fn ingest_reasons_leave_out_reward_only_codes() {
        let r: Vec<&str> = ingest_reasons().map(|r| r.as_str()).collect();
        assert!(r.contains(&"replayed_sequence") && r.contains(&"late_report"));
        assert!(!r.contains(&"low_uptime") && !r.contains(&"rounded_to_zero"));
    }
}
