//! `depin audit-epoch`: recompute a closed epoch from the stored inputs (the
//! device registry, the report log and the policy the epoch was closed with)
//! and compare with what was stored, byte for byte. Any payout can be
//! explained and reproduced; any tampering with a stored result shows.

use crate::CoordError;
use crate::compute::{self, ComputedEpoch};
use depin_core::EpochIndex;
use depin_rewards::RewardPolicy;
use depin_store::Store;
use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    pub epoch: EpochIndex,
    pub policy_id: String,
    pub devices: u64,
    pub sheet_hash: String,
    pub claim_root: String,
    /// Empty when the stored epoch matches the recomputation exactly.
    pub differences: Vec<String>,
}

impl AuditReport {
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Most differences listed one by one; beyond this they are counted.
const MAX_LISTED: usize = 20;

/// [`audit_epoch_with`] for a coordinator with no sector plugins.
pub async fn audit_epoch(store: &Store, epoch: EpochIndex) -> Result<AuditReport, CoordError> {
    audit_epoch_with(store, epoch, &compute::SectorSet::backbone()).await
}

/// Recomputes a closed epoch with the same sector verifiers the coordinator
/// closed it with, and compares everything it decided.
pub async fn audit_epoch_with(
    store: &Store,
    epoch: EpochIndex,
    sectors: &compute::SectorSet,
) -> Result<AuditReport, CoordError> {
    let row = store.epoch(epoch).await?.ok_or_else(|| {
        CoordError::NotFound(format!("epoch {epoch} is not closed in this store"))
    })?;
    let body = store.policy(&row.policy_id).await?.ok_or_else(|| {
        CoordError::NotFound(format!(
            "policy {} used by epoch {epoch} is not stored",
            row.policy_id
        ))
    })?;
    let policy: RewardPolicy = serde_json::from_slice(&body).map_err(|e| {
        CoordError::Invariant(format!(
            "stored policy {} does not decode: {e}",
            row.policy_id
        ))
    })?;
    let mut differences = Vec::new();
    if policy.id() != row.policy_id {
        differences.push(format!(
            "stored policy body hashes to {}, not {}",
            policy.id(),
            row.policy_id
        ));
    }

    // Recompute from the inputs, read by the close's own loader.
    let inputs = store
        .epoch_inputs(&compute::input_query(&policy, epoch, sectors))
        .await?;
    let fresh: ComputedEpoch = compute::compute_from_inputs(&policy, epoch, &inputs, sectors)?;

    // What the verifiers carried forward and ordered.
    for (name, _, state) in &fresh.sector_state {
        let stored = store.sector_state(name, epoch).await?;
        if stored.as_ref() != Some(state) {
            differences.push(format!(
                "sector state of {name:?}: stored {} bytes, recomputed {}",
                stored.map_or(0, |s| s.len()),
                state.len()
            ));
        }
    }
    let mut stored_work = store.work_issued(epoch).await?;
    for w in &mut stored_work {
        w.answer_seq = None; // answers arrive after the close
    }
    let mut fresh_work = fresh.work.clone();
    fresh_work.sort();
    if stored_work != fresh_work {
        differences.push(format!(
            "work orders: {} stored, {} recomputed, or they differ",
            stored_work.len(),
            fresh.work.len()
        ));
    }

    // The stored sheet, rebuilt from its rows.
    let stored = compute::stored_sheet(
        epoch,
        &row,
        &store.sector_totals(epoch).await?,
        &store.reward_lines(epoch).await?,
    );
    match stored {
        Err(e) => differences.push(format!("stored reward sheet is unreadable: {e}")),
        Ok(stored) => {
            if stored.canonical_bytes() != fresh.sheet.canonical_bytes() {
                describe_sheet_differences(&stored, &fresh.sheet, &mut differences);
                if differences.is_empty() {
                    differences.push("reward sheet bytes differ".into());
                }
            }
            if row.sheet_hash != stored.hash() {
                differences.push(format!(
                    "stored sheet hash {} does not match the stored lines (hash {})",
                    hex::encode(&row.sheet_hash),
                    stored.hash_hex()
                ));
            }
        }
    }
    if row.sheet_hash != fresh.sheet.hash() {
        differences.push(format!(
            "sheet hash: stored {} recomputed {}",
            hex::encode(&row.sheet_hash),
            fresh.sheet.hash_hex()
        ));
    }
    if row.devices != fresh.sheet.lines.len() as u64 {
        differences.push(format!(
            "device count: stored {} recomputed {}",
            row.devices,
            fresh.sheet.lines.len()
        ));
    }

    // Ledger entries.
    // Deposits and locks are filed under an epoch too, but written outside
    // its close; the close's own entries are the ones to recompute.
    let stored_entries: Vec<_> = store
        .ledger_entries(epoch)
        .await?
        .into_iter()
        .filter(|e| depin_store::CLOSE_ENTRY_KINDS.contains(&e.kind.as_str()))
        .collect();
    let mut fresh_charges = fresh.charges.clone();
    fresh_charges.sort();
    if store.charges(epoch).await? != fresh_charges {
        differences.push(format!(
            "usage charges: {} recomputed, stored ones differ",
            fresh_charges.len()
        ));
    }
    if stored_entries != fresh.entry_rows() {
        differences.push(format!(
            "ledger entries differ: stored {} entries totalling {}, recomputed {} totalling {}",
            stored_entries.len(),
            stored_entries
                .iter()
                .map(|e| u128::from(e.amount))
                .sum::<u128>(),
            fresh.entries.len(),
            fresh
                .entries
                .iter()
                .map(|e| u128::from(e.amount))
                .sum::<u128>()
        ));
    }

    // Claims: stored leaves, their root, and the recomputed root.
    let leaves = store.claims_as_of(epoch).await?;
    if leaves != fresh.leaves {
        let n = leaves
            .iter()
            .zip(&fresh.leaves)
            .filter(|(a, b)| a != b)
            .count()
            + leaves.len().abs_diff(fresh.leaves.len());
        differences.push(format!("claim leaves differ for {n} account(s)"));
    }
    let stored_root = compute::claim_tree(&leaves).root();
    if row.claim_root != stored_root {
        differences.push(format!(
            "stored claim root {} does not match the stored leaves ({})",
            hex::encode(&row.claim_root),
            depin_merkle::to_hex(&stored_root)
        ));
    }
    if row.claim_root != fresh.claim_root {
        differences.push(format!(
            "claim root: stored 0x{} recomputed {}",
            hex::encode(&row.claim_root),
            depin_merkle::to_hex(&fresh.claim_root)
        ));
    }
    Ok(AuditReport {
        epoch,
        policy_id: row.policy_id,
        devices: fresh.sheet.lines.len() as u64,
        sheet_hash: fresh.sheet.hash_hex(),
        claim_root: depin_merkle::to_hex(&fresh.claim_root),
        differences,
    })
}

fn describe_sheet_differences(
    stored: &depin_rewards::RewardSheet,
    fresh: &depin_rewards::RewardSheet,
    out: &mut Vec<String>,
) {
    for (what, a, b) in [
        ("emission", stored.emission, fresh.emission),
        ("minted", stored.minted, fresh.minted),
        ("fees", stored.fees, fresh.fees),
        ("burned", stored.burned, fresh.burned),
    ] {
        if a != b {
            out.push(format!("{what}: stored {a} recomputed {b}"));
        }
    }
    if stored.per_sector != fresh.per_sector {
        out.push("per-sector totals differ".into());
    }
    if stored.lines.len() != fresh.lines.len() {
        out.push(format!(
            "line count: stored {} recomputed {}",
            stored.lines.len(),
            fresh.lines.len()
        ));
    }
    let mut listed = 0;
    let mut more = 0;
    for (s, f) in stored.lines.iter().zip(&fresh.lines) {
        if s != f {
            if listed < MAX_LISTED {
                out.push(format!(
                    "device {}: stored reward {} score {} reasons {:?}; recomputed reward {} score {} reasons {:?}",
                    s.device, s.reward, s.score_ppm, s.reasons, f.reward, f.score_ppm, f.reasons
                ));
                listed += 1;
            } else {
                more += 1;
            }
        }
    }
    if more > 0 {
        out.push(format!("… and {more} more differing lines"));
    }
}
