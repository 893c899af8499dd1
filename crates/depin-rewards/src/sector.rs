//! The seam every sector implements at epoch close, and the availability
//! factor every device gets.
//!
//! # The contract (version 2)
//!
//! A sector verifies an epoch's reports **as a batch, with history** (DESIGN
//! "What the four sectors will need from the spine"): wireless witnesses refer
//! to other devices' beacons and sensor checks need a device's earlier series,
//! so a [`SectorVerifier`] sees all of the epoch's accepted reports of the
//! payload kinds it declares at once, plus an opaque state blob it produced at
//! the previous epoch's close. It declares:
//!
//! - its [`Sector`]: it scores devices of that sector only, at most one line
//!   per device;
//! - the payload kinds it reads ([`SectorVerifier::kinds`]): the close loads
//!   those reports' raw signed bytes from the report log, verifies the
//!   signatures again and hands the verifier the signed payloads, so an audit
//!   re-verifies exactly what was signed;
//! - its state format version, stored beside the state.
//!
//! It receives ([`EpochInput`]) the registry, every device's availability
//! factor, its reports, its prior state, the epoch's entropy
//! ([`epoch_entropy`]), the consumers' open orders of its sector (the escrow
//! it may charge), and the work it ordered that fell due in the epoch; it
//! returns ([`SectorOutcome`]) contributions, the usage it charges against
//! those orders, its next state and the work it wants done next, or a
//! [`VerifierError`], which stops the close.
//!
//! # Usage fees
//!
//! Only a sector knows who served an order (held the pieces, ran the job), so
//! the verifier decides the charges: `(order, device, gross)` shares, at most
//! the order's remaining lock in total. The close settles them from the
//! consumer's locked escrow (`Locked → Operator` net of the protocol fee,
//! which is burned) and refunds what is left of an order in its last epoch.
//! Fees are never minted.
//!
//! The coordinator stores `next_state` and the work orders in the same
//! transaction as the reward sheet, so a recomputation (`depin audit-epoch`)
//! feeds the verifier exactly the bytes it saw the first time. Verifiers are
//! pure functions of their input.
//!
//! # Availability is a factor, not a line
//!
//! [`availability`] scores every device active in the epoch from its on-time
//! heartbeats. A device that was not reachable did not serve, so each sector
//! verifier multiplies its own score by the device's availability (and keeps
//! its reasons). A sector without a verifier of its own is scored by
//! [`UptimeOnly`]: availability alone, weight 1.

use crate::policy::{PPM, RewardPolicy};
use depin_core::{Amount, EpochIndex, PublicKey, Reason, Sector};
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

/// Heartbeats ingest accepted from one device in the epoch, on time.
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

/// A device's availability in an epoch: a factor in [0, 1] (ppm) with the
/// reasons it is below 1. One per device active in the epoch, every sector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AvailabilityFactor {
    pub device: PublicKey,
    pub operator: PublicKey,
    pub sector: Sector,
    pub score_ppm: u32,
    pub reasons: Vec<Reason>,
}

impl AvailabilityFactor {
    /// This factor times another one (`score_ppm` in ppm, with its reasons):
    /// what a sector verifier pays a device that also did its sector's work.
    pub fn times(&self, score_ppm: u32, reasons: &[Reason], weight: u64) -> Contribution {
        let product =
            u64::from(self.score_ppm.min(PPM)) * u64::from(score_ppm.min(PPM)) / u64::from(PPM);
        let mut all: Vec<Reason> = self.reasons.iter().chain(reasons).copied().collect();
        all.sort_unstable();
        all.dedup();
        Contribution {
            device: self.device,
            operator: self.operator,
            sector: self.sector,
            score_ppm: product as u32,
            weight,
            reasons: all,
        }
    }
}

/// Looks a device up in the sorted availability factors.
pub fn availability_of<'a>(
    factors: &'a [AvailabilityFactor],
    device: &PublicKey,
) -> Option<&'a AvailabilityFactor> {
    factors
        .binary_search_by(|f| f.device.cmp(device))
        .ok()
        .map(|i| &factors[i])
}

/// One accepted report of a kind a verifier reads, after the close verified
/// its signature again from the raw bytes in the report log.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SectorReport {
    pub device: PublicKey,
    pub seq: u64,
    pub kind: u32,
    /// The device's own clock.
    pub timestamp_ms: i64,
    /// The coordinator's clock when it arrived.
    pub received_ms: i64,
    /// The signed payload bytes (decode with the sector's protocol types).
    pub payload: Vec<u8>,
}

/// The state a verifier left at the previous epoch's close.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriorState {
    /// The `state_version` of the verifier that wrote it; a verifier that
    /// changes its format reads the old one and migrates it.
    pub version: u32,
    pub bytes: Vec<u8>,
}

/// Work a verifier wants a device to do: a storage audit, a coverage beacon,
/// a benchmark job. The device pulls it (`GET /v1/work`) and answers with a
/// signed report of `answer_kind` carrying the work id before `deadline_ms`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkOrder {
    pub device: PublicKey,
    /// The payload kind the answer must have (one of the verifier's kinds).
    pub answer_kind: u32,
    /// Sector-defined challenge bytes (e.g. which piece to prove).
    pub body: Vec<u8>,
    /// The answer must arrive at the coordinator by this instant.
    pub deadline_ms: i64,
}

/// A work order the close issued earlier, as the verifier sees it in the
/// epoch its deadline falls in: with the answer, or without one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IssuedWork {
    /// `work_id(issuing epoch, sector, index)`; what the answer names.
    pub id: [u8; 32],
    pub issued_epoch: EpochIndex,
    pub order: WorkOrder,
    /// The answering report, if one arrived in time. `None` is the outcome
    /// "missed its deadline" ([`Reason::ChallengeMissed`]).
    pub answer: Option<SectorReport>,
}

/// Everything a sector verifier may read at epoch close.
#[derive(Clone, Copy, Debug)]
pub struct EpochInput<'a> {
    pub policy: &'a RewardPolicy,
    pub epoch: EpochIndex,
    /// The registry (all sectors), sorted by device; a verifier picks the
    /// devices of its sector.
    pub devices: &'a [DeviceInfo],
    /// Every active device's availability factor, sorted by device.
    pub availability: &'a [AvailabilityFactor],
    /// Accepted reports of the verifier's kinds, sorted by (device, seq).
    pub reports: &'a [SectorReport],
    /// The verifier's own state from the previous epoch (`None` at genesis).
    pub prior_state: Option<&'a PriorState>,
    /// The epoch's entropy ([`epoch_entropy`]): seeds challenges.
    pub entropy: [u8; 32],
    /// Consumers' orders for this sector that the close may charge, sorted
    /// by (consumer, order).
    pub orders: &'a [OpenOrder],
    /// Work this verifier ordered whose deadline falls in the epoch.
    pub work: &'a [IssuedWork],
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SectorOutcome {
    /// At most one per device of the verifier's sector.
    pub contributions: Vec<Contribution>,
    /// Opaque state for the next epoch's `prior_state`.
    pub next_state: Vec<u8>,
    /// Work to publish now, answered in a later epoch.
    pub work: Vec<WorkOrder>,
    /// Usage charged against the input's orders, settled at this close.
    pub charges: Vec<Charge>,
}

/// A consumer's order as a verifier sees it: escrow locked for this sector's
/// service that the close may still charge.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpenOrder {
    pub consumer: PublicKey,
    /// The consumer's order number (unique per consumer).
    pub order: u64,
    /// Locked amount not charged by earlier closes.
    pub remaining: Amount,
    /// The first and last epoch whose close may charge it; the close of
    /// `last_epoch` refunds what is left.
    pub first_epoch: EpochIndex,
    pub last_epoch: EpochIndex,
    /// Sector-defined bytes: what the consumer bought.
    pub terms: Vec<u8>,
}

/// One share of usage: `gross` base units of `order` earned by `device`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Charge {
    pub consumer: PublicKey,
    pub order: u64,
    pub device: PublicKey,
    pub gross: Amount,
}

/// A verifier could not score the epoch (a state it cannot read, an input
/// that breaks its own invariant). The close stops; nothing is written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VerifierError(pub String);

/// A sector's batch verification at epoch close (contract version 2; see the
/// module docs).
pub trait SectorVerifier: Send + Sync {
    /// The sector whose devices it scores.
    fn sector(&self) -> Sector;
    /// Stable name, the key of the stored state (e.g. `"storage"`).
    fn name(&self) -> &'static str;
    /// The payload kinds whose accepted reports it reads (each in its
    /// sector's kind range).
    fn kinds(&self) -> &[u32];
    /// The format version of the state it writes.
    fn state_version(&self) -> u32;
    fn verify_epoch(&self, input: &EpochInput) -> Result<SectorOutcome, VerifierError>;
    /// Checks this verifier's section of the policy (`policy.sectors[name]`),
    /// or its absence, before a coordinator starts with it, so a bad setting
    /// is refused at start rather than at the first close. The default takes
    /// no settings.
    fn check_policy(&self, section: Option<&serde_json::Value>) -> Result<(), VerifierError> {
        match section {
            None => Ok(()),
            Some(_) => Err(VerifierError(format!(
                "verifier {:?} takes no policy section",
                self.name()
            ))),
        }
    }
}

/// The entropy of `epoch`: `blake3::derive_key("depin/v1/epoch-entropy",
/// epoch as u64 little-endian ‖ claim root of epoch − 1)`, with 32 zero bytes
/// for the root when the previous epoch was never closed (genesis, or no
/// device registered yet). Nobody can know it before epoch − 1 closed, and
/// anyone can recompute it from the published roots.
pub fn epoch_entropy(epoch: EpochIndex, previous_claim_root: Option<[u8; 32]>) -> [u8; 32] {
    let mut input = Vec::with_capacity(40);
    input.extend_from_slice(&epoch.to_le_bytes());
    input.extend_from_slice(&previous_claim_root.unwrap_or([0; 32]));
    blake3::derive_key("depin/v1/epoch-entropy", &input)
}

/// The id of the `index`-th work order a sector's verifier issued at the
/// close of `epoch`: `blake3::derive_key("depin/v1/work-id", epoch u64 LE ‖
/// sector code u32 LE ‖ index u32 LE)`. Unique per (epoch, sector, index).
pub fn work_id(epoch: EpochIndex, sector: Sector, index: u32) -> [u8; 32] {
    let mut input = Vec::with_capacity(16);
    input.extend_from_slice(&epoch.to_le_bytes());
    input.extend_from_slice(&sector.code().to_le_bytes());
    input.extend_from_slice(&index.to_le_bytes());
    blake3::derive_key("depin/v1/work-id", &input)
}

/// Availability alone: the verifier of every sector that has none of its
/// own yet. Each active device of the sector gets its availability factor
/// as its score, weight 1. Stateless; reads no reports of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UptimeOnly(pub Sector);

impl SectorVerifier for UptimeOnly {
    fn sector(&self) -> Sector {
        self.0
    }
    fn name(&self) -> &'static str {
        self.0.as_str()
    }
    fn kinds(&self) -> &[u32] {
        &[]
    }
    fn state_version(&self) -> u32 {
        0
    }
    fn verify_epoch(&self, input: &EpochInput) -> Result<SectorOutcome, VerifierError> {
        Ok(SectorOutcome {
            contributions: input
                .availability
                .iter()
                .filter(|f| f.sector == self.0)
                .map(|f| f.times(PPM, &[], 1))
                .collect(),
            ..SectorOutcome::default()
        })
    }
}

/// Availability: uptime from heartbeats, for devices of **every** sector.
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
pub fn availability(
    policy: &RewardPolicy,
    epoch: EpochIndex,
    devices: &[DeviceInfo],
    reports: &[ReportSummary],
) -> Vec<AvailabilityFactor> {
    let p = policy;
    let start = i128::from(p.epoch_start_ms(epoch));
    let end = i128::from(p.epoch_end_ms(epoch));
    let epoch_ms = end - start;
    let interval_ms = i128::from(p.heartbeat_interval_seconds.max(1)) * 1000;
    let min_uptime_ppm = i128::from(p.min_uptime_bps) * 100;
    let full = i128::from(PPM);

    // Sort (key, index) pairs by value, not the caller's data: comparisons stay
    // in cache, which matters at a million devices. Then one merge join.
    let mut order: Vec<(PublicKey, u32)> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.device, i as u32))
        .collect();
    order.sort_unstable();
    let mut reports: Vec<(PublicKey, u32)> =
        reports.iter().map(|r| (r.device, r.heartbeats)).collect();
    reports.sort_unstable();

    let mut contributions = Vec::with_capacity(order.len());
    let mut r = 0;
    let mut k = 0;
    while k < order.len() {
        // A device registered twice is a registry bug; keep the smallest entry
        // so the outcome does not depend on input order.
        let key = order[k].0;
        let mut d = &devices[order[k].1 as usize];
        k += 1;
        while k < order.len() && order[k].0 == key {
            d = d.min(&devices[order[k].1 as usize]);
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
        contributions.push(AvailabilityFactor {
            device: d.device,
            operator: d.operator,
            sector: d.sector,
            score_ppm: score as u32,
            reasons,
        });
    }
    contributions
}

/// The verifiers a coordinator closes epochs with: exactly one per sector,
/// in sector order. A sector that brings no verifier of its own is scored by
/// [`UptimeOnly`].
pub struct Sectors {
    verifiers: Vec<Box<dyn SectorVerifier>>,
}

impl std::fmt::Debug for Sectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.verifiers.iter().map(|v| (v.sector(), v.name())))
            .finish()
    }
}

impl Default for Sectors {
    fn default() -> Self {
        Self::uptime_only()
    }
}

impl Sectors {
    /// Availability alone for every sector: the backbone before any sector
    /// crate is plugged in.
    pub fn uptime_only() -> Sectors {
        Sectors {
            verifiers: Sector::ALL
                .into_iter()
                .map(|s| Box::new(UptimeOnly(s)) as Box<dyn SectorVerifier>)
                .collect(),
        }
    }

    /// `custom` verifiers, at most one per sector, each reading only kinds
    /// of its own sector's range, with distinct state names; [`UptimeOnly`]
    /// for the rest.
    pub fn new(custom: Vec<Box<dyn SectorVerifier>>) -> Result<Sectors, VerifierError> {
        let mut slots: Vec<Option<Box<dyn SectorVerifier>>> =
            Sector::ALL.iter().map(|_| None).collect();
        for v in custom {
            let s = v.sector();
            let range = s.kind_range();
            if let Some(k) = v.kinds().iter().find(|k| !range.contains(k)) {
                return Err(VerifierError(format!(
                    "verifier {:?} of sector {s} reads kind {k}, outside its range {}..={}",
                    v.name(),
                    range.start(),
                    range.end()
                )));
            }
            let slot = &mut slots[s.code() as usize - 1];
            if let Some(other) = slot {
                return Err(VerifierError(format!(
                    "two verifiers for sector {s}: {:?} and {:?}",
                    other.name(),
                    v.name()
                )));
            }
            *slot = Some(v);
        }
        let verifiers: Vec<Box<dyn SectorVerifier>> = Sector::ALL
            .into_iter()
            .zip(slots)
            .map(|(s, v)| v.unwrap_or_else(|| Box::new(UptimeOnly(s))))
            .collect();
        let mut names: Vec<&str> = verifiers.iter().map(|v| v.name()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(VerifierError(format!(
                "two verifiers share the state name {:?}",
                w[0]
            )));
        }
        Ok(Sectors { verifiers })
    }

    /// Checks the policy's sector sections: each names one of these
    /// verifiers, and each verifier accepts its section (or its absence).
    pub fn check_policy(&self, policy: &RewardPolicy) -> Result<(), VerifierError> {
        for name in policy.sectors.keys() {
            if !self.verifiers.iter().any(|v| v.name() == name) {
                return Err(VerifierError(format!(
                    "the policy has a section for {name:?}, which no verifier here is called"
                )));
            }
        }
        for v in &self.verifiers {
            v.check_policy(policy.sectors.get(v.name()))
                .map_err(|e| VerifierError(format!("policy section {:?}: {}", v.name(), e.0)))?;
        }
        Ok(())
    }

    /// In sector order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn SectorVerifier> {
        self.verifiers.iter().map(|v| v.as_ref())
    }

    pub fn get(&self, sector: Sector) -> &dyn SectorVerifier {
        self.verifiers[sector.code() as usize - 1].as_ref()
    }

    /// Every payload kind some verifier reads, sorted.
    pub fn kinds(&self) -> Vec<u32> {
        let mut kinds: Vec<u32> = self
            .verifiers
            .iter()
            .flat_map(|v| v.kinds().iter().copied())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }
}

/// Checks what a verifier returned against the contract: every line is for
/// a registered device of the verifier's sector, names the device's operator
/// and the verifier's sector, and appears once; every work order is for a
/// device of the sector and asks for one of the verifier's kinds. `devices`
/// is sorted by device.
pub fn check_outcome(
    verifier: &dyn SectorVerifier,
    devices: &[DeviceInfo],
    orders: &[OpenOrder],
    outcome: &SectorOutcome,
) -> Result<(), VerifierError> {
    let sector = verifier.sector();
    let name = verifier.name();
    let registered = |key: &PublicKey| {
        devices
            .binary_search_by(|d| d.device.cmp(key))
            .ok()
            .map(|i| &devices[i])
    };
    let mut seen: Vec<PublicKey> = Vec::with_capacity(outcome.contributions.len());
    for c in &outcome.contributions {
        let Some(d) = registered(&c.device) else {
            return Err(VerifierError(format!(
                "verifier {name:?} scored {}, which is not registered",
                c.device
            )));
        };
        if c.sector != sector || d.sector != sector {
            return Err(VerifierError(format!(
                "verifier {name:?} of sector {sector} scored {} in sector {} (device's sector: {})",
                c.device, c.sector, d.sector
            )));
        }
        if c.operator != d.operator {
            return Err(VerifierError(format!(
                "verifier {name:?} credited {} to operator {}, not its operator {}",
                c.device, c.operator, d.operator
            )));
        }
        seen.push(c.device);
    }
    seen.sort_unstable();
    if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
        return Err(VerifierError(format!(
            "verifier {name:?} gave {} two lines in one epoch",
            w[0]
        )));
    }
    for w in &outcome.work {
        match registered(&w.device) {
            Some(d) if d.sector == sector => {}
            _ => {
                return Err(VerifierError(format!(
                    "verifier {name:?} ordered work from {}, not a device of sector {sector}",
                    w.device
                )));
            }
        }
        if !verifier.kinds().contains(&w.answer_kind) {
            return Err(VerifierError(format!(
                "verifier {name:?} ordered an answer of kind {}, which it does not read",
                w.answer_kind
            )));
        }
    }
    check_charges(name, sector, &registered, orders, &outcome.charges)
}

/// Charges name an order of the input and a device of the sector, move a
/// positive amount, come once per (order, device), and add up to at most the
/// order's remaining lock.
fn check_charges<'d>(
    name: &str,
    sector: Sector,
    registered: &dyn Fn(&PublicKey) -> Option<&'d DeviceInfo>,
    orders: &[OpenOrder],
    charges: &[Charge],
) -> Result<(), VerifierError> {
    let mut sorted: Vec<&Charge> = charges.iter().collect();
    sorted.sort_unstable_by_key(|c| (c.consumer, c.order, c.device));
    let mut i = 0;
    while i < sorted.len() {
        let (consumer, order) = (sorted[i].consumer, sorted[i].order);
        let Ok(at) = orders.binary_search_by(|o| (o.consumer, o.order).cmp(&(consumer, order)))
        else {
            return Err(VerifierError(format!(
                "verifier {name:?} charged order {order} of consumer {consumer}, which is not open for sector {sector}"
            )));
        };
        let mut total: u128 = 0;
        let mut last: Option<PublicKey> = None;
        while i < sorted.len() && (sorted[i].consumer, sorted[i].order) == (consumer, order) {
            let c = sorted[i];
            if c.gross == 0 {
                return Err(VerifierError(format!(
                    "verifier {name:?} charged zero to order {order} for {}",
                    c.device
                )));
            }
            if last == Some(c.device) {
                return Err(VerifierError(format!(
                    "verifier {name:?} charged order {order} twice for {}",
                    c.device
                )));
            }
            match registered(&c.device) {
                Some(d) if d.sector == sector => {}
                _ => {
                    return Err(VerifierError(format!(
                        "verifier {name:?} charged order {order} for {}, not a device of sector {sector}",
                        c.device
                    )));
                }
            }
            last = Some(c.device);
            total += u128::from(c.gross);
            i += 1;
        }
        let remaining = orders[at].remaining;
        if total > u128::from(remaining) {
            return Err(VerifierError(format!(
                "verifier {name:?} charged {total} to order {order} of consumer {consumer}, which has {remaining} left"
            )));
        }
    }
    Ok(())
}
