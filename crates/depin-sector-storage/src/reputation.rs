//! Node reputation from audit outcomes, as Storj's satellite keeps it
//! (`satellite/reputation`, research notes §2), in exact integer arithmetic.
//!
//! Three scores, each with its own consequence:
//!
//! | score | update | threshold | consequence |
//! |---|---|---|---|
//! | audit | beta with forgetting, λ = 0.999, α₀ = 1000, β₀ = 0 | ≤ 0.96 | disqualified, for good |
//! | unknown-error | beta with forgetting, λ = 0.95, α₀ = 1, β₀ = 0 | ≤ 0.6 | suspended while it lasts |
//! | online | mean over the last 60 windows of 12 h (30 days) of online ÷ all audits | < 0.6 | suspended while it lasts |
//!
//! A beta score is α / (α + β): on success α ← λα + w, β ← λβ; on failure
//! α ← λα, β ← λβ + w, with weight w = 1. With α₀ + β₀ = 1/(1 − λ) = 1000
//! the sum stays 1000 for ever, so from a fresh node n failures in a row
//! leave the score at λⁿ: 0.999⁴⁰ = 0.96077 still passes, 0.999⁴¹ = 0.95981
//! disqualifies (Storj's docs round this to "40 consecutive failures").
//!
//! **Why integers.** Disqualification stops a node's earnings, so the
//! decision must come out the same on every coordinator replica and in every
//! re-run. α and β are kept in units of 10⁻¹² ([`SCALE`]); λα is rounded
//! down once per update; the threshold test `α / (α+β) ≤ 96/100` is done as
//! `100 α ≤ 96 (α + β)` in u128, with no division and no float anywhere.
//! The rounding loses under 10⁻¹² per update, far below anything a threshold
//! can see. Scores are shown in parts per million.
//!
//! Which outcome moves which score (Storj's `reputation.Service`):
//!
//! | outcome | audit | unknown | online |
//! |---|---|---|---|
//! | success | success | success | online |
//! | failure | failure | — | online |
//! | unknown | — | failure | online |
//! | offline | — | — | offline |
//! | contained | — | — | — (decided when the node is re-asked) |
//!
//! Vetting: a node is vetted after 100 audits and 21 days (504 h) since it
//! joined (Storj's `audit-count: 100`, `minimum-node-age` 504 h); until then
//! it gets only the small share of uploads [`crate::placement`] gives.

use std::collections::BTreeMap;

/// Fixed-point unit of α and β: 10¹² per unit of weight.
pub const SCALE: u128 = 1_000_000_000_000;
/// Parts per million, the unit scores are shown in.
pub const PPM: u64 = 1_000_000;

/// A beta score's constants: forgetting factor λ = `lambda_num / lambda_den`,
/// the starting α and β (in whole units) and the threshold
/// `threshold_num / threshold_den` at or below which the consequence falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BetaParams {
    pub lambda_num: u128,
    pub lambda_den: u128,
    pub initial_alpha: u128,
    pub initial_beta: u128,
    pub threshold_num: u128,
    pub threshold_den: u128,
}

/// Storj `reputation.audit-lambda: 0.999`, `initial-alpha: 1000`,
/// `initial-beta: 0`, `audit-dq: 0.96` (satellite-config.yaml.lock).
pub const AUDIT: BetaParams = BetaParams {
    lambda_num: 999,
    lambda_den: 1000,
    initial_alpha: 1000,
    initial_beta: 0,
    threshold_num: 96,
    threshold_den: 100,
};

/// Storj `reputation.unknown-audit-lambda: 0.95`, `unknown-audit-dq: 0.6`;
/// a new node's unknown-audit α starts at 1, β at 0.
pub const UNKNOWN: BetaParams = BetaParams {
    lambda_num: 95,
    lambda_den: 100,
    initial_alpha: 1,
    initial_beta: 0,
    threshold_num: 6,
    threshold_den: 10,
};

/// Storj `audit-history.window-size: 12h`.
pub const ONLINE_WINDOW_MS: i64 = 12 * 3_600_000;
/// Storj `audit-history.tracking-period: 720h`: 60 windows of 12 h.
pub const ONLINE_WINDOWS: usize = 60;
/// Storj `audit-history.offline-threshold: 0.6`: suspended below it.
pub const ONLINE_THRESHOLD_PPM: u64 = 600_000;
/// Storj `overlay.node.audit-count: 100`.
pub const VETTING_AUDITS: u32 = 100;
/// Storj `overlay.node.minimum-node-age` for vetting: 21 days.
pub const VETTING_AGE_MS: i64 = 21 * 24 * 3_600_000;

/// One beta score's state, in units of 10⁻¹².
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BetaScore {
    pub alpha: u128,
    pub beta: u128,
}

impl BetaScore {
    pub fn new(p: &BetaParams) -> BetaScore {
        BetaScore {
            alpha: p.initial_alpha * SCALE,
            beta: p.initial_beta * SCALE,
        }
    }

    pub fn record(&mut self, p: &BetaParams, success: bool) {
        let forget = |x: u128| x * p.lambda_num / p.lambda_den;
        self.alpha = forget(self.alpha);
        self.beta = forget(self.beta);
        if success {
            self.alpha += SCALE;
        } else {
            self.beta += SCALE;
        }
    }

    /// α / (α + β) in parts per million, rounded down (display only).
    pub fn ppm(&self) -> u64 {
        let sum = self.alpha + self.beta;
        if sum == 0 {
            return 0;
        }
        (self.alpha * u128::from(PPM) / sum) as u64
    }

    /// `α / (α + β) ≤ threshold`, exactly.
    pub fn at_or_below_threshold(&self, p: &BetaParams) -> bool {
        p.threshold_den * self.alpha <= p.threshold_num * (self.alpha + self.beta)
    }
}

/// The result of one audit of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// The answer verified.
    Success,
    /// The node answered with wrong data or said it lost the piece.
    Failure,
    /// The node could not be reached.
    Offline,
    /// The node answered with an error that is neither of the above.
    Unknown,
    /// The node did not answer in time; it will be re-asked (containment).
    Contained,
}

impl AuditOutcome {
    pub fn code(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Offline => "offline",
            AuditOutcome::Unknown => "unknown",
            AuditOutcome::Contained => "contained",
        }
    }
}

/// Why a node may not take uploads; each carries a reason code for the
/// operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Penalty {
    /// Audit score at or below 0.96: permanent.
    Disqualified,
    /// Unknown-error score at or below 0.6.
    UnknownSuspended,
    /// Online score below 0.6.
    OfflineSuspended,
}

impl Penalty {
    pub fn code(self) -> &'static str {
        match self {
            Penalty::Disqualified => "storage_disqualified",
            Penalty::UnknownSuspended => "storage_suspended_unknown_errors",
            Penalty::OfflineSuspended => "storage_suspended_offline",
        }
    }
}

/// One audit window's tally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnlineWindow {
    pub online: u32,
    pub total: u32,
}

/// Everything the coordinator keeps about one node's audits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReputation {
    pub joined_ms: i64,
    pub audit: BetaScore,
    pub unknown: BetaScore,
    /// Window index (`time / 12 h`) → tally; only the last 60 are kept.
    pub windows: BTreeMap<i64, OnlineWindow>,
    pub audits: u32,
    /// When the audit score first fell to the threshold; never cleared.
    pub disqualified_ms: Option<i64>,
}

impl NodeReputation {
    pub fn new(joined_ms: i64) -> NodeReputation {
        NodeReputation {
            joined_ms,
            audit: BetaScore::new(&AUDIT),
            unknown: BetaScore::new(&UNKNOWN),
            windows: BTreeMap::new(),
            audits: 0,
            disqualified_ms: None,
        }
    }

    /// Applies one outcome observed at `now_ms`. A disqualified node's record
    /// no longer changes (Storj stops auditing it).
    pub fn record(&mut self, outcome: AuditOutcome, now_ms: i64) {
        if self.disqualified_ms.is_some() {
            return;
        }
        let online = match outcome {
            AuditOutcome::Success => {
                self.audit.record(&AUDIT, true);
                self.unknown.record(&UNKNOWN, true);
                Some(true)
            }
            AuditOutcome::Failure => {
                self.audit.record(&AUDIT, false);
                Some(true)
            }
            AuditOutcome::Unknown => {
                self.unknown.record(&UNKNOWN, false);
                Some(true)
            }
            AuditOutcome::Offline => Some(false),
            AuditOutcome::Contained => None,
        };
        if let Some(online) = online {
            self.audits = self.audits.saturating_add(1);
            let w = self
                .windows
                .entry(now_ms.div_euclid(ONLINE_WINDOW_MS))
                .or_default();
            w.total = w.total.saturating_add(1);
            w.online = w.online.saturating_add(u32::from(online));
            while self.windows.len() > ONLINE_WINDOWS {
                self.windows.pop_first();
            }
        }
        if self.audit.at_or_below_threshold(&AUDIT) {
            self.disqualified_ms = Some(now_ms);
        }
    }

    /// The online score in ppm over the windows of the last 30 days before
    /// `now_ms` (the current one included): the mean of each window's
    /// online ÷ total, every window weighing the same. `None` with no audit
    /// in that period.
    pub fn online_ppm(&self, now_ms: i64) -> Option<u64> {
        let current = now_ms.div_euclid(ONLINE_WINDOW_MS);
        let first = current - ONLINE_WINDOWS as i64 + 1;
        let (sum, n) = self
            .windows
            .range(first..=current)
            .filter(|(_, w)| w.total > 0)
            .fold((0u64, 0u64), |(s, n), (_, w)| {
                (s + u64::from(w.online) * PPM / u64::from(w.total), n + 1)
            });
        (n > 0).then(|| sum / n)
    }

    /// What keeps the node from new uploads at `now_ms`, worst first.
    pub fn penalties(&self, now_ms: i64) -> Vec<Penalty> {
        let mut out = Vec::new();
        if self.disqualified_ms.is_some() {
            out.push(Penalty::Disqualified);
        }
        if self.unknown.at_or_below_threshold(&UNKNOWN) {
            out.push(Penalty::UnknownSuspended);
        }
        if self
            .online_ppm(now_ms)
            .is_some_and(|s| s < ONLINE_THRESHOLD_PPM)
        {
            out.push(Penalty::OfflineSuspended);
        }
        out
    }

    /// Vetted: enough audits and old enough for the full share of uploads.
    pub fn is_vetted(&self, now_ms: i64) -> bool {
        self.audits >= VETTING_AUDITS && now_ms.saturating_sub(self.joined_ms) >= VETTING_AGE_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3_600_000;

    #[test]
    fn audit_score_by_hand() {
        let mut s = BetaScore::new(&AUDIT);
        assert_eq!(s.ppm(), 1_000_000);
        // One failure: α = 999, β = 1 → 0.999.
        s.record(&AUDIT, false);
        assert_eq!((s.alpha, s.beta), (999 * SCALE, SCALE));
        assert_eq!(s.ppm(), 999_000);
        // Then a success: α = 0.999·999 + 1 = 999.001, β = 0.999 → 0.999001.
        s.record(&AUDIT, true);
        assert_eq!(s.alpha, 999_001_000_000_000);
        assert_eq!(s.beta, 999_000_000_000);
        assert_eq!(s.ppm(), 999_001);
    }

    #[test]
    fn forty_one_failures_in_a_row_disqualify_a_fresh_node() {
        let mut n = NodeReputation::new(0);
        for i in 1..=40 {
            n.record(AuditOutcome::Failure, i);
        }
        // 0.999^40 = 0.960770…
        assert_eq!(n.audit.ppm(), 960_770);
        assert_eq!(n.disqualified_ms, None);
        n.record(AuditOutcome::Failure, 41);
        // 0.999^41 = 0.959809…
        assert_eq!(n.audit.ppm(), 959_809);
        assert_eq!(n.disqualified_ms, Some(41));
        assert_eq!(n.penalties(41), vec![Penalty::Disqualified]);
        // Disqualification is permanent: successes change nothing.
        for i in 0..1000 {
            n.record(AuditOutcome::Success, 100 + i);
        }
        assert_eq!(n.audit.ppm(), 959_809);
        assert_eq!(n.penalties(10_000)[0].code(), "storage_disqualified");
    }

    #[test]
    fn a_sustained_failure_rate_above_four_percent_disqualifies() {
        // Steady state of the score is the success rate, so 5% failures
        // (one in twenty) drift below 0.96 while 3% never do.
        let run = |fail_every: u32, audits: u32| {
            let mut n = NodeReputation::new(0);
            for i in 1..=audits {
                let o = if i % fail_every == 0 {
                    AuditOutcome::Failure
                } else {
                    AuditOutcome::Success
                };
                n.record(o, i64::from(i));
            }
            n
        };
        assert!(run(20, 20_000).disqualified_ms.is_some());
        let ok = run(33, 20_000);
        assert_eq!(ok.disqualified_ms, None);
        assert!(ok.audit.ppm() > 965_000, "{}", ok.audit.ppm());
    }

    #[test]
    fn unknown_errors_suspend_and_recover() {
        let mut n = NodeReputation::new(0);
        // α₀ = 1: one unknown error → α = 0.95, β = 1 → 0.487 ≤ 0.6.
        n.record(AuditOutcome::Unknown, 1);
        assert_eq!(n.unknown.ppm(), 487_179);
        assert_eq!(n.penalties(1), vec![Penalty::UnknownSuspended]);
        // Unknown errors leave the audit score alone.
        assert_eq!(n.audit.ppm(), 1_000_000);
        // Two successes: α = 0.95·(0.95·0.95 + 1) + 1 = 2.807375,
        // β = 0.9025 → 0.756730… > 0.6.
        n.record(AuditOutcome::Success, 2);
        n.record(AuditOutcome::Success, 3);
        assert_eq!(n.unknown.alpha, 2_807_375_000_000);
        assert_eq!(n.unknown.beta, 902_500_000_000);
        assert_eq!(n.unknown.ppm(), 756_730);
        assert!(n.penalties(3).is_empty());
    }

    #[test]
    fn online_score_is_the_mean_of_12_hour_windows() {
        let mut n = NodeReputation::new(0);
        let h = 3_600_000;
        // Window 0: 1 of 4 online (0.25); window 1: 2 of 2 (1.0);
        // window 2: nothing; window 3: 0 of 1 (0).
        n.record(AuditOutcome::Success, 0);
        for t in [h, 2 * h, 11 * h] {
            n.record(AuditOutcome::Offline, t);
        }
        n.record(AuditOutcome::Failure, 12 * h);
        n.record(AuditOutcome::Unknown, 23 * h);
        n.record(AuditOutcome::Offline, 40 * h);
        // Contained does not count.
        n.record(AuditOutcome::Contained, 41 * h);
        // (0.25 + 1.0 + 0) / 3 = 0.416666
        assert_eq!(n.online_ppm(41 * h), Some(416_666));
        assert!(n.penalties(41 * h).contains(&Penalty::OfflineSuspended));
        // 30 days later the early windows have left the period.
        assert_eq!(n.online_ppm(30 * DAY + 12 * h), Some(0));
        assert_eq!(n.online_ppm(30 * DAY + 36 * h), None);
        assert_eq!(n.audits, 7);
    }

    #[test]
    fn only_sixty_windows_are_kept() {
        let mut n = NodeReputation::new(0);
        for w in 0..100 {
            n.record(AuditOutcome::Success, w * ONLINE_WINDOW_MS);
        }
        assert_eq!(n.windows.len(), ONLINE_WINDOWS);
        assert_eq!(n.windows.keys().next(), Some(&40));
    }

    #[test]
    fn vetting_needs_audits_and_age() {
        let mut n = NodeReputation::new(DAY);
        for i in 0..99 {
            n.record(AuditOutcome::Success, DAY + i);
        }
        assert!(!n.is_vetted(DAY + VETTING_AGE_MS));
        n.record(AuditOutcome::Success, DAY + 100);
        assert!(!n.is_vetted(DAY + VETTING_AGE_MS - 1));
        assert!(n.is_vetted(DAY + VETTING_AGE_MS));
        // Extreme clocks neither panic nor vet.
        assert!(!NodeReputation::new(i64::MAX).is_vetted(i64::MIN));
        assert!(!NodeReputation::new(0).is_vetted(i64::MAX));
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let mut n = NodeReputation::new(0);
        for t in [i64::MIN, -1, 0, i64::MAX] {
            n.record(AuditOutcome::Offline, t);
            let _ = n.online_ppm(t);
            let _ = n.penalties(t);
        }
    }
}
