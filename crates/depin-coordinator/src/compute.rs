//! The pure heart of an epoch close: registry + report counts + previous
//! claims → reward sheet, ledger entries, claim tree. No I/O, so the close and
//! `audit-epoch` run exactly the same code on the same inputs, and a
//! recomputation is byte-identical by construction.

use depin_core::{EpochIndex, PublicKey, Reason, Sector};
use depin_ledger::{Entry, Ledger};
use depin_merkle::{Leaf, StandardMerkleTree};
use depin_rewards::{
    Availability, DeviceInfo, EpochInput, FeeSettlement, ReportSummary, RewardPolicy, RewardSheet,
    SectorVerifier, compute_sheet,
};
use depin_store::{DeviceRow, LedgerEntryRow, RewardLineRow, SectorTotalRow};
use std::collections::BTreeMap;

/// Everything an epoch close decides.
pub struct ComputedEpoch {
    pub sheet: RewardSheet,
    pub entries: Vec<Entry>,
    /// Every account's cumulative claimable amount after this epoch, by account.
    pub leaves: Vec<(PublicKey, u64)>,
    /// The accounts whose cumulative amount changed this epoch.
    pub changed: Vec<(PublicKey, u64)>,
    pub claim_root: [u8; 32],
    pub sector_state: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("stored device {0} has unknown sector code {1}")]
    UnknownSector(PublicKey, u32),
    #[error("ledger rejected the epoch's entries: {0}")]
    Ledger(#[from] depin_ledger::LedgerError),
    #[error("cumulative claim for {0} overflows")]
    Overflow(PublicKey),
}

/// What the close and the audit read for `epoch` under `policy`: one
/// description, one loader (`depin_store::EpochInputRows`).
pub fn input_query(
    policy: &RewardPolicy,
    epoch: EpochIndex,
) -> depin_store::EpochInputQuery<'static> {
    depin_store::EpochInputQuery {
        epoch,
        registered_before_ms: policy.epoch_end_ms(epoch),
        report_kind: depin_protocol::PayloadKind::Heartbeat.as_u32(),
        max_delay_ms: policy.max_heartbeat_delay_ms(),
        sector: Availability::NAME,
    }
}

/// Computes an epoch from its loaded inputs: the one entry point of both the
/// close and the audit.
pub fn compute_from_inputs(
    policy: &RewardPolicy,
    epoch: EpochIndex,
    inputs: &depin_store::EpochInputRows,
    fees: &[FeeSettlement],
) -> Result<ComputedEpoch, ComputeError> {
    let devices = device_info(&inputs.devices)?;
    compute_epoch(
        policy,
        epoch,
        &devices,
        &inputs.report_counts,
        &inputs.prior_state,
        &inputs.previous_claims,
        fees,
    )
}

pub fn device_info(rows: &[DeviceRow]) -> Result<Vec<DeviceInfo>, ComputeError> {
    rows.iter()
        .map(|d| {
            Ok(DeviceInfo {
                device: d.device,
                operator: d.operator,
                sector: Sector::from_code(d.sector)
                    .ok_or(ComputeError::UnknownSector(d.device, d.sector))?,
                active_from_ms: d.registered_ms,
                revoked_at_ms: d.revoked_ms,
            })
        })
        .collect()
}

/// Computes one epoch. `heartbeats` are accepted heartbeat counts per device;
/// `previous_leaves` the claim leaves as of the previous epoch.
pub fn compute_epoch(
    policy: &RewardPolicy,
    epoch: EpochIndex,
    devices: &[DeviceInfo],
    heartbeats: &[(PublicKey, u64)],
    prior_state: &[u8],
    previous_leaves: &[(PublicKey, u64)],
    fees: &[FeeSettlement],
) -> Result<ComputedEpoch, ComputeError> {
    let reports: Vec<ReportSummary> = heartbeats
        .iter()
        .map(|(d, n)| ReportSummary {
            device: *d,
            heartbeats: u32::try_from(*n).unwrap_or(u32::MAX),
        })
        .collect();
    let availability = Availability;
    let outcome = availability.verify_epoch(&EpochInput {
        policy,
        epoch,
        devices,
        reports: &reports,
        prior_state,
    });
    let sheet = compute_sheet(policy, epoch, outcome.contributions, fees);

    // One emission entry per operator (and one fee entry): the ledger tracks
    // accounts; the sheet keeps the per-device detail.
    let totals = sheet.operator_totals();
    let mut entries = Vec::with_capacity(totals.len());
    for (operator, amount) in &totals {
        if *amount > 0 {
            entries.push(depin_ledger::emission(*operator, *amount));
        }
    }
    // The entries must form a valid ledger on their own (emission only moves
    // Mint → Operator); the store applies them on top of the running balances.
    Ledger::from_entries(&entries)?;

    let mut cumulative: BTreeMap<PublicKey, u64> = previous_leaves.iter().copied().collect();
    let mut changed = Vec::new();
    for (operator, amount) in &totals {
        if *amount == 0 {
            continue;
        }
        let c = cumulative.entry(*operator).or_insert(0);
        *c = c
            .checked_add(*amount)
            .ok_or(ComputeError::Overflow(*operator))?;
        changed.push((*operator, *c));
    }
    let leaves: Vec<(PublicKey, u64)> = cumulative.into_iter().collect();
    let claim_root = claim_tree(&leaves).root();
    Ok(ComputedEpoch {
        sheet,
        entries,
        leaves,
        changed,
        claim_root,
        sector_state: vec![(Availability::NAME.to_string(), outcome.next_state)],
    })
}

/// The epoch's claim tree: an OpenZeppelin StandardMerkleTree over
/// (operator key, cumulative amount), leaves in account order.
pub fn claim_tree(leaves: &[(PublicKey, u64)]) -> StandardMerkleTree {
    StandardMerkleTree::of(
        leaves
            .iter()
            .map(|(k, a)| Leaf::for_key(k, u128::from(*a)))
            .collect(),
    )
}

pub fn reasons_to_string(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The reason codes of a stored reward line. An unknown code is an error:
/// mapping it to some other reason would let an audit pass over a line that
/// says something this build cannot read.
pub fn reasons_from_string(s: &str) -> Result<Vec<Reason>, String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| Reason::parse(x).ok_or_else(|| format!("unknown stored reason code {x:?}")))
        .collect()
}

impl ComputedEpoch {
    pub fn line_rows(&self) -> Vec<RewardLineRow> {
        self.sheet
            .lines
            .iter()
            .map(|l| RewardLineRow {
                device: l.device,
                operator: l.operator,
                sector: l.sector.code(),
                score_ppm: l.score_ppm,
                weight: l.weight,
                reward: l.reward,
                fees: l.fees,
                reasons: reasons_to_string(&l.reasons),
            })
            .collect()
    }

    pub fn sector_rows(&self) -> Vec<SectorTotalRow> {
        self.sheet
            .per_sector
            .iter()
            .map(|(s, t)| SectorTotalRow {
                sector: s.code(),
                emission: t.emission,
                distributed: t.distributed,
                devices: u64::from(t.devices),
                rewarded: u64::from(t.rewarded),
            })
            .collect()
    }

    pub fn entry_rows(&self) -> Vec<LedgerEntryRow> {
        entry_rows(&self.entries)
    }
}

pub fn entry_rows(entries: &[Entry]) -> Vec<LedgerEntryRow> {
    entries
        .iter()
        .map(|e| LedgerEntryRow {
            debit: e.debit.to_key(),
            credit: e.credit.to_key(),
            amount: e.amount,
            kind: e.kind.as_str().to_string(),
        })
        .collect()
}

/// Rebuilds the reward sheet exactly as stored, for byte comparison.
pub fn stored_sheet(
    epoch: EpochIndex,
    row: &depin_store::EpochRow,
    totals: &[SectorTotalRow],
    lines: &[RewardLineRow],
) -> Result<RewardSheet, String> {
    let mut per_sector = BTreeMap::new();
    for t in totals {
        let sector = Sector::from_code(t.sector)
            .ok_or_else(|| format!("unknown sector code {}", t.sector))?;
        per_sector.insert(
            sector,
            depin_rewards::SectorTotals {
                emission: t.emission,
                distributed: t.distributed,
                devices: u32::try_from(t.devices).map_err(|_| "device count overflow")?,
                rewarded: u32::try_from(t.rewarded).map_err(|_| "rewarded count overflow")?,
            },
        );
    }
    let lines = lines
        .iter()
        .map(|l| {
            Ok(depin_rewards::RewardLine {
                device: l.device,
                operator: l.operator,
                sector: Sector::from_code(l.sector)
                    .ok_or_else(|| format!("unknown sector code {}", l.sector))?,
                score_ppm: l.score_ppm,
                weight: l.weight,
                reward: l.reward,
                fees: l.fees,
                reasons: reasons_from_string(&l.reasons)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(RewardSheet {
        epoch,
        policy_id: row.policy_id.clone(),
        emission: row.emission,
        minted: row.minted,
        fees: row.fees,
        burned: row.burned,
        per_sector,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_reason_codes_round_trip_and_unknown_ones_are_errors() {
        let all: Vec<Reason> = Reason::ALL.to_vec();
        assert_eq!(reasons_from_string(&reasons_to_string(&all)), Ok(all));
        assert_eq!(reasons_from_string(""), Ok(vec![]));
        let err = reasons_from_string("low_uptime,made_up").unwrap_err();
        assert!(err.contains("made_up"), "{err}");
    }
}
