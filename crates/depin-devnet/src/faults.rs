//! Seeded fault injection: which faults hit a run, drawn from the seed alone.
//!
//! Four kinds, each something a real deployment meets:
//! - **restart**: the coordinator and its store are dropped without a
//!   shutdown (no checkpoint, connections just abandoned) before a delivery,
//!   in the middle of an epoch, and reopened on the same data directory;
//! - **store error**: one write step of a delivery's append or of an epoch
//!   close fails (the store's fault points, `WriteTx::step`); the sender
//!   retries, as an agent or the close loop would;
//! - **reordered delivery**: the reports of a delivery arrive interleaved
//!   differently and in two requests, the second half first (each device's
//!   own reports stay in sequence order: an agent sends its spool in order
//!   and waits for each answer);
//! - **duplicate**: the network delivers a report a second time.
//!
//! None of them may lose a report, close an epoch twice or change a reward;
//! the shell checks that after the run. Faults draw from their own ChaCha
//! stream, so a run's keys, reports and verdicts are those of the same seed
//! without faults.

use crate::DevnetError;
use crate::world::{STREAM_FAULTS, rng};
use depin_core::EpochIndex;
use rand::Rng;
use rand::seq::index::sample;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// How many faults a run meets (`--faults`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultLevel {
    /// A reliable world.
    None,
    /// A few of each kind: every run exercises recovery. The default.
    Default,
    /// Many of each, and a restart between a failed close and its retry.
    Heavy,
}

impl FaultLevel {
    pub const ALL: [FaultLevel; 3] = [FaultLevel::None, FaultLevel::Default, FaultLevel::Heavy];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultLevel::None => "none",
            FaultLevel::Default => "default",
            FaultLevel::Heavy => "heavy",
        }
    }
}

impl fmt::Display for FaultLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultLevel {
    type Err = DevnetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultLevel::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                DevnetError::Usage(format!(
                    "unknown fault level {s:?}: expected one of none, default, heavy"
                ))
            })
    }
}

/// The faults of one run, by delivery index (0-based, in schedule order) and
/// by epoch.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// Deliveries before which the coordinator restarts.
    pub restarts: BTreeSet<u64>,
    /// Deliveries whose append fails at one write step; the value picks the
    /// step (see [`StoreFault`]).
    pub delivery_errors: BTreeMap<u64, u32>,
    /// Epochs whose first close attempt fails at one write step.
    pub close_errors: BTreeMap<EpochIndex, u32>,
    /// Whether the coordinator also restarts between a failed close and its
    /// retry.
    pub restart_after_failed_close: bool,
    /// Deliveries that arrive reordered, in two requests.
    pub reordered: BTreeSet<u64>,
    /// Chance of each report being delivered twice, per million.
    pub duplicate_ppm: u32,
}

/// A store error to inject into one event: the `1 + pick % n`-th write step,
/// where `n` is how many steps the same kind of event passed before (the
/// shell counts them), so the fault always lands inside the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreFault {
    pub pick: u32,
}

impl FaultPlan {
    /// Draws the plan for a run of `deliveries` deliveries and `epochs`
    /// epochs. Store errors never hit the first delivery or the first close:
    /// there is no earlier event of the same kind to count steps in.
    pub fn draw(seed: u64, level: FaultLevel, deliveries: u64, epochs: u64) -> FaultPlan {
        let mut r = rng(seed, STREAM_FAULTS);
        let (restarts, delivery_errors, close_errors, reordered, duplicate_ppm) = match level {
            FaultLevel::None => return FaultPlan::default(),
            FaultLevel::Default => (
                (epochs / 8).max(1),
                (epochs / 8).max(1),
                (epochs / 12).max(1),
                (deliveries / 10).max(1),
                5_000,
            ),
            FaultLevel::Heavy => (
                (epochs / 2).max(2),
                (deliveries / 10).max(2),
                (epochs / 2).max(1),
                (deliveries / 2).max(1),
                50_000,
            ),
        };
        let pick = |n: u64, among: u64, skip: u64, r: &mut rand_chacha::ChaCha20Rng| {
            let among = among.saturating_sub(skip);
            let n = n.min(among);
            let mut v: Vec<u64> = sample(r, among as usize, n as usize)
                .into_iter()
                .map(|i| i as u64 + skip)
                .collect();
            v.sort_unstable();
            v
        };
        let restarts = pick(restarts, deliveries, 0, &mut r).into_iter().collect();
        let delivery_errors = pick(delivery_errors, deliveries, 1, &mut r)
            .into_iter()
            .map(|d| (d, r.r#gen::<u32>()))
            .collect();
        let close_errors = pick(close_errors, epochs, 1, &mut r)
            .into_iter()
            .map(|e| (e, r.r#gen::<u32>()))
            .collect();
        let reordered = pick(reordered, deliveries, 0, &mut r).into_iter().collect();
        FaultPlan {
            restarts,
            delivery_errors,
            close_errors,
            restart_after_failed_close: level == FaultLevel::Heavy,
            reordered,
            duplicate_ppm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_seeded_and_spare_the_first_events() {
        let a = FaultPlan::draw(7, FaultLevel::Default, 16, 4);
        let b = FaultPlan::draw(7, FaultLevel::Default, 16, 4);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(a.restarts.len(), 1);
        assert_eq!(a.delivery_errors.len(), 1);
        assert_eq!(a.close_errors.len(), 1);
        assert!(!a.delivery_errors.contains_key(&0));
        assert!(!a.close_errors.contains_key(&0));
        let none = FaultPlan::draw(7, FaultLevel::None, 16, 4);
        assert!(none.restarts.is_empty() && none.duplicate_ppm == 0);
        let heavy = FaultPlan::draw(7, FaultLevel::Heavy, 16, 4);
        assert!(heavy.restarts.len() >= 2 && heavy.restart_after_failed_close);
        // One epoch: no close may fail (there is no earlier close).
        assert!(
            FaultPlan::draw(1, FaultLevel::Heavy, 4, 1)
                .close_errors
                .is_empty()
        );
    }
}
