//! What a run reports: `summary.json`, `devices.json` and the readable table.
//!
//! Deterministic by construction: every map is a `BTreeMap`, every list is in
//! device, operator or epoch order, the JSON writer sorts object keys, and
//! every float is rounded (USD to cents, prices to 1/10 000) before it is
//! written, with serde_json's shortest round-trip formatting.

use depin_core::{Amount, EpochIndex, format_tokens};
use depin_rewards::SectorTotals;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Marks a directory as devnet output (see `shell::prepare_out_dir`).
pub const GENERATOR: &str = "depin devnet";

#[derive(Clone, Debug, Serialize)]
pub struct Flags {
    pub seed: u64,
    pub nodes: u32,
    pub epochs: u32,
    pub scenario: String,
    pub faults: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EpochLine {
    pub epoch: EpochIndex,
    pub merkle_root: String,
    pub sheet_hash: String,
    pub emission: Amount,
    pub minted: Amount,
    pub fees: Amount,
    pub burned: Amount,
    pub devices: u64,
    pub rewarded: u64,
    pub token_price_usd: f64,
    pub per_sector: BTreeMap<String, SectorTotals>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LedgerTotals {
    pub minted: Amount,
    pub burned: Amount,
    /// Sum of every holder account's balance in the store.
    pub balances_total: Amount,
}

/// Per sector over the whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SectorLine {
    pub devices: u64,
    /// Devices that earned more than zero over the run.
    pub rewarded: u64,
    /// Base units paid to the sector's devices over the run.
    pub minted: Amount,
}

/// Per behaviour (ground truth) over the whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BehaviourLine {
    pub devices: u64,
    pub rewarded: u64,
    pub rewards: Amount,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Spread {
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

impl Spread {
    /// Nearest-rank percentiles, the economics crate's convention.
    pub fn of(values: &[f64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |q: f64| {
            v.get(((v.len().saturating_sub(1)) as f64 * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Spread {
            p10: cents(q(0.1)),
            p50: cents(q(0.5)),
            p90: cents(q(0.9)),
        }
    }
}

/// Operators' economics over the simulated window.
#[derive(Clone, Debug, Serialize)]
pub struct OperatorEconomics {
    pub operators: u64,
    pub months: f64,
    /// Revenue (rewards × the token price of their epoch) minus running costs
    /// and hardware depreciation for the window, per operator.
    pub net_profit_usd: Spread,
    /// Operators whose revenue covers running costs and depreciation: at
    /// this rate their hardware pays back within its lifetime.
    pub paying_back: u64,
    pub revenue_usd: f64,
    pub costs_usd: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TokenPrice {
    pub start_usd: f64,
    pub end_usd: f64,
    pub min_usd: f64,
    pub max_usd: f64,
    pub volatility_per_year: f64,
    pub drift_per_year: f64,
    pub per_epoch_usd: Vec<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ReportTotals {
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
}

/// The faults injected into a run (see `crate::faults`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultTotals {
    pub level: String,
    /// Coordinator restarts (drop without shutdown, reopen on the same directory).
    pub restarts: u64,
    /// Injected store errors, by the write step that failed.
    pub store_errors: BTreeMap<String, u64>,
    /// Deliveries (requests) sent again after a store error.
    pub retried_deliveries: u64,
    /// Epoch closes run again after a store error.
    pub retried_closes: u64,
    /// Deliveries that arrived interleaved differently, in two requests.
    pub reordered_deliveries: u64,
    /// Reports the network delivered a second time.
    pub duplicates_delivered: u64,
    /// How the coordinator refused those copies, by reason.
    pub duplicates_refused: BTreeMap<String, u64>,
}

/// What the run checked after the last event. A run with a failed check
/// ends with an error; these are the counts it passed with.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Checks {
    /// Reports the actors sent that the coordinator must accept.
    pub reports_to_accept: u64,
    /// Of those, accepted exactly once (the rest is a failed check).
    pub accepted_exactly_once: u64,
    /// Reports in the store over all closed epochs (must equal the above).
    pub reports_stored: u64,
    pub epochs_closed: u64,
    /// Epochs a further close changed (must be 0).
    pub closed_twice: u64,
    /// Epochs that `audit-epoch` recomputed byte for byte.
    pub epochs_audited: u64,
    /// Balances sum to zero and no holder is negative.
    pub ledger_balanced: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub generator: &'static str,
    pub seed: u64,
    pub flags: Flags,
    pub policy_id: String,
    pub epoch_seconds: u64,
    pub epochs: Vec<EpochLine>,
    pub ledger: LedgerTotals,
    /// Rejected reports by reason code, from the store.
    pub rejections: BTreeMap<String, u64>,
    pub reports: ReportTotals,
    pub sectors: BTreeMap<String, SectorLine>,
    pub behaviours: BTreeMap<String, BehaviourLine>,
    pub operators: OperatorEconomics,
    pub token_price: TokenPrice,
    pub faults: FaultTotals,
    pub checks: Checks,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviceLine {
    pub device: String,
    pub operator: String,
    pub sector: String,
    pub behaviour: String,
    pub profile: String,
    /// Base units over all epochs.
    pub rewards: Amount,
    /// Reward reasons from its reward lines (one count per epoch) plus its
    /// rejections by reason.
    pub reasons: BTreeMap<String, u64>,
    pub costs_usd: f64,
    pub revenue_usd: f64,
    pub net_usd: f64,
}

/// Everything a run produced, as written to the files.
#[derive(Clone, Debug)]
pub struct DevnetOutcome {
    pub summary: Summary,
    pub devices: Vec<DeviceLine>,
}

pub fn cents(v: f64) -> f64 {
    crate::world::round_to(v, 2) + 0.0 // + 0.0 turns -0.0 into 0.0
}

pub fn price(v: f64) -> f64 {
    crate::world::round_to(v, 4) + 0.0
}

/// Pretty JSON with every object's keys sorted, and a final newline.
pub fn to_canonical_json<T: Serialize>(value: &T) -> String {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<String, Value> =
                    m.into_iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
            other => other,
        }
    }
    let v = sort(serde_json::to_value(value).expect("devnet outputs always serialise"));
    let mut s = serde_json::to_string_pretty(&v).expect("a JSON value always serialises");
    s.push('\n');
    s
}

/// The readable summary printed after a run. `out` is the output directory
/// as the user gave it.
pub fn table(o: &DevnetOutcome, out: &str) -> String {
    let s = &o.summary;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "depin devnet: seed {}, {} devices, {} epochs of {} s, scenario {}, faults {}",
        s.seed, s.flags.nodes, s.flags.epochs, s.epoch_seconds, s.flags.scenario, s.flags.faults
    );
    let _ = writeln!(t, "policy {}\n", s.policy_id);
    let _ = writeln!(
        t,
        "{:<10} {:>8} {:>9} {:>18}",
        "sector", "devices", "rewarded", "minted (tokens)"
    );
    for (name, l) in &s.sectors {
        let _ = writeln!(
            t,
            "{:<10} {:>8} {:>9} {:>18}",
            name,
            l.devices,
            l.rewarded,
            format_tokens(l.minted)
        );
    }
    let _ = writeln!(
        t,
        "{:<10} {:>8} {:>9} {:>18}\n",
        "total",
        s.sectors.values().map(|l| l.devices).sum::<u64>(),
        s.sectors.values().map(|l| l.rewarded).sum::<u64>(),
        format_tokens(s.ledger.minted)
    );
    let _ = writeln!(
        t,
        "{:<17} {:>8} {:>9} {:>18}",
        "behaviour", "devices", "rewarded", "rewards (tokens)"
    );
    for (name, l) in &s.behaviours {
        let _ = writeln!(
            t,
            "{:<17} {:>8} {:>9} {:>18}",
            name,
            l.devices,
            l.rewarded,
            format_tokens(l.rewards)
        );
    }
    let _ = writeln!(t, "\ncheats caught (rejected reports by reason):");
    if s.rejections.is_empty() {
        let _ = writeln!(t, "  none");
    }
    for (reason, n) in &s.rejections {
        let _ = writeln!(t, "  {reason:<20} {n:>8}");
    }
    let _ = writeln!(
        t,
        "\nreports: {} sent, {} accepted, {} rejected",
        s.reports.sent, s.reports.accepted, s.reports.rejected
    );
    let f = &s.faults;
    let _ = writeln!(
        t,
        "faults ({}): {} restarts, {} store errors ({} deliveries and {} closes retried), {} reordered deliveries, {} duplicates refused of {}",
        f.level,
        f.restarts,
        f.store_errors.values().sum::<u64>(),
        f.retried_deliveries,
        f.retried_closes,
        f.reordered_deliveries,
        f.duplicates_refused.values().sum::<u64>(),
        f.duplicates_delivered
    );
    let c = &s.checks;
    let _ = writeln!(
        t,
        "checks: {} of {} reports accepted exactly once, {} stored; {} epochs closed once, {} audited",
        c.accepted_exactly_once,
        c.reports_to_accept,
        c.reports_stored,
        c.epochs_closed,
        c.epochs_audited
    );
    let _ = writeln!(
        t,
        "ledger: minted {} burned {} balances {} (= minted - burned)",
        format_tokens(s.ledger.minted),
        format_tokens(s.ledger.burned),
        format_tokens(s.ledger.balances_total)
    );
    let p = &s.token_price;
    let _ = writeln!(
        t,
        "token price: {:.4} -> {:.4} USD (min {:.4}, max {:.4}; volatility {:.0}%/year)",
        p.start_usd,
        p.end_usd,
        p.min_usd,
        p.max_usd,
        p.volatility_per_year * 100.0
    );
    let e = &s.operators;
    let _ = writeln!(
        t,
        "operators: {} over {:.3} months; net profit p10 {:.2} / p50 {:.2} / p90 {:.2} USD; {} of {} pay back",
        e.operators,
        e.months,
        e.net_profit_usd.p10,
        e.net_profit_usd.p50,
        e.net_profit_usd.p90,
        e.paying_back,
        e.operators
    );
    let last = s.flags.epochs.saturating_sub(1);
    let _ = writeln!(
        t,
        "\nfiles: {out}/summary.json, {out}/devices.json, {out}/epochs/<N>/claims.json, {out}/depin.sqlite"
    );
    let _ = writeln!(t, "next:");
    let _ = writeln!(
        t,
        "  depin audit-epoch --database-url sqlite://{out}/depin.sqlite --epoch {last}"
    );
    let _ = writeln!(
        t,
        "  depin claims --database-url sqlite://{out}/depin.sqlite --epoch {last} --out claims-{last}.json"
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_rounds() {
        #[derive(Serialize)]
        struct X {
            b: f64,
            a: BTreeMap<String, u32>,
        }
        let x = X {
            b: cents(-0.001),
            a: [("z".to_string(), 1), ("y".to_string(), 2)]
                .into_iter()
                .collect(),
        };
        assert_eq!(
            to_canonical_json(&x),
            "{\n  \"a\": {\n    \"y\": 2,\n    \"z\": 1\n  },\n  \"b\": 0.0\n}\n"
        );
    }

    #[test]
    fn spread_is_nearest_rank() {
        let s = Spread::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.p10, s.p50, s.p90), (1.0, 3.0, 5.0));
        let e = Spread::of(&[]);
        assert_eq!(e.p50, 0.0);
    }
}
