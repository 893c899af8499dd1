//! The interface every sector implements at epoch close, and the availability
//! verifier every device gets today.
//!
//! A sector verifies an epoch's reports **as a batch, with history** (DESIGN
//! "What the four sectors will need from the spine"): wireless witnesses refer
//! to other devices' beacons and sensor checks need a device's earlier series,
//! so a verifier sees all of the epoch's reports at once plus an opaque state
//! blob it produced at the previous epoch's close. The coordinator stores
//! `next_state` in the same transaction as the reward sheet, so a recomputation
//! (`depin audit-epoch`) feeds the verifier exactly the bytes it saw the first
//! time. Verifiers are pure functions of their input.

use crate::policy::{PPM, RewardPolicy};
use depin_core::{EpochIndex, PublicKey, Reason, Sector};
use serde::{Deserialize, Serialize};

/// A registered device as the registry knows it at epoch close.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub device: PublicKey,
    pub operator: PublicKey,
    pub sector: Sector,
    /// Registration time; the device is expected to serve from here on.
    pub active_from_ms: i64,
    /// Revocation time, if the operator revoked the key.
    pub revoked_at_ms: Option<i64>,
}

/// What ingest accepted from one device in the epoch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReportSummary {
    pub device: PublicKey,
    /// Accepted heartbeats in the epoch, already deduplicated.
    pub heartbeats: u32,
}

/// A device's verified contribution in one sector for one epoch: the input of
/// [`crate::compute_sheet`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Contribution {
    pub device: PublicKey,
    pub operator: PublicKey,
    pub sector: Sector,
    /// Product of the sector's factors, each in [0, 1], in parts per million.
    /// Values above 1 000 000 are treated as 1 000 000.
    pub score_ppm: u32,
    /// Contribution units (1 for availability; e.g. stored bytes for storage).
    pub weight: u64,
    /// Why the score is below 1 000 000 or zero (DESIGN invariant 5). A verifier
    /// must give a reason for every factor below 1.
    pub reasons: Vec<Reason>,
}

/// Everything a sector verifier may read at epoch close.
#[derive(Clone, Copy, Debug)]
pub struct EpochInput<'a> {
    pub policy: &'a RewardPolicy,
    pub epoch: EpochIndex,
    /// The registry (all sectors); a verifier picks the devices it scores.
    pub devices: &'a [DeviceInfo],
    pub reports: &'a [ReportSummary],
    /// The verifier's own `next_state` from the previous epoch (empty at genesis).
    pub prior_state: &'a [u8],
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SectorOutcome {
    /// One per scored device, sorted by device.
    pub contributions: Vec<Contribution>,
    /// Opaque state for the next epoch's `prior_state`.
    pub next_state: Vec<u8>,
}

/// A sector's batch verification at epoch close.
pub trait SectorVerifier {
    /// Stable name, used as the key of the stored state.
    fn name(&self) -> &'static str;
    fn verify_epoch(&self, input: &EpochInput) -> SectorOutcome;
}

/// Availability: uptime from heartbeats. The backbone's only contribution
/// today, given to devices of **every** sector until their sector crates score
/// real work. Stateless (`next_state` is empty).
///
/// For each device active during the epoch (registered before its end and not
/// revoked before its start), over its active window
/// `[max(start, active_from), min(end, revoked_at))`:
///
/// - expected heartbeats = window / heartbeat interval (pro-rated for devices
///   registered or revoked mid-epoch; kept as an exact fraction, not rounded);
/// - uptime = min(1, heartbeats / expected);
/// - 0 heartbeats → score 0 with `NoReports`;
/// - uptime < `min_uptime_bps` → score 0 with `LowUptime` (hard gate);
/// - otherwise score = uptime × (window / epoch length), with `PartialUptime`
///   when uptime < 100% and `PartialEpoch` when the window is shorter than the
///   epoch. The second factor keeps a device registered in the last minute from
///   earning as much as one that served the whole epoch.
///
/// All arithmetic is integer (ppm, rounded down). Reports from devices not in
/// the registry are ignored (ingest already rejects them); several summaries for
/// one device are added up.
#[derive(Clone, Copy, Debug, Default)]
pub struct Availability;

impl Availability {
    pub const NAME: &'static str = "availability";
}

impl SectorVerifier for Availability {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn verify_epoch(&self, input: &EpochInput) -> SectorOutcome {
        let p = input.policy;
        let start = i128::from(p.epoch_start_ms(input.epoch));
        let end = i128::from(p.epoch_end_ms(input.epoch));
        let epoch_ms = end - start;
        let interval_ms = i128::from(p.heartbeat_interval_seconds.max(1)) * 1000;
        let min_uptime_ppm = i128::from(p.min_uptime_bps) * 100;
        let full = i128::from(PPM);

        // Sort (key, index) pairs by value, not the caller's data: comparisons stay
        // in cache, which matters at a million devices. Then one merge join.
        let mut order: Vec<(PublicKey, u32)> = input
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.device, i as u32))
            .collect();
        order.sort_unstable();
        let mut reports: Vec<(PublicKey, u32)> = input
            .reports
            .iter()
            .map(|r| (r.device, r.heartbeats))
            .collect();
        reports.sort_unstable();

        let mut contributions = Vec::with_capacity(order.len());
        let mut r = 0;
        let mut k = 0;
        while k < order.len() {
            // A device registered twice is a registry bug; keep the smallest entry
            // so the outcome does not depend on input order.
            let key = order[k].0;
            let mut d = &input.devices[order[k].1 as usize];
            k += 1;
            while k < order.len() && order[k].0 == key {
                d = d.min(&input.devices[order[k].1 as usize]);
                k += 1;
            }
            let mut heartbeats: u64 = 0;
            while r < reports.len() && reports[r].0 < key {
                r += 1;
            }
            while r < reports.len() && reports[r].0 == key {
                heartbeats += u64::from(reports[r].1);
                r += 1;
            }
            let from = start.max(i128::from(d.active_from_ms));
            let to = end.min(d.revoked_at_ms.map_or(end, i128::from));
            if from >= to || epoch_ms <= 0 {
                continue; // not active in this epoch: no line at all
            }
            let window = to - from;
            let mut reasons = Vec::new();
            let score = if heartbeats == 0 {
                reasons.push(Reason::NoReports);
                0
            } else {
                // heartbeats / (window / interval), in ppm, capped at 1.
                let uptime = (i128::from(heartbeats) * interval_ms * full / window).min(full);
                if uptime < min_uptime_ppm {
                    reasons.push(Reason::LowUptime);
                    0
                } else {
                    if uptime < full {
                        reasons.push(Reason::PartialUptime);
                    }
                    let active = window * full / epoch_ms;
                    if active < full {
                        reasons.push(Reason::PartialEpoch);
                    }
                    uptime * active / full
                }
            };
            contributions.push(Contribution {
                device: d.device,
                operator: d.operator,
                sector: d.sector,
                score_ppm: score as u32,
                weight: 1,
                reasons,
            });
        }
        SectorOutcome {
            contributions,
            next_state: Vec::new(),
        }
    }
}
