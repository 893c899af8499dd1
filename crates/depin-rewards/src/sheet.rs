//! The reward sheet: what closing an epoch produces, byte-reproducible for
//! `depin audit-epoch` (DESIGN invariant 4).
//!
//! # Rules
//!
//! 1. The epoch's emission ([`emission_for_epoch`]) is split across sectors by
//!    `sector_weights_bps`: each sector gets `floor(E × w / Σw)`, and the units
//!    left over go one each to the sectors with the largest remainders (ties in
//!    `Sector` order), so the parts sum to `E` exactly.
//! 2. Inside a sector, a device's share is `score_ppm × weight`. It receives
//!    `floor(E_s × share / Σshare)`; the leftover units go one each to the
//!    devices with the largest remainders, ties to the smaller device id, so the
//!    rewards sum to `E_s` exactly. A device with a higher share therefore never
//!    receives less, and scaling every share by one factor changes nothing.
//! 3. A sector in which no device has a positive share distributes nothing:
//!    its emission is **not minted**, so `minted ≤ emission`, with equality
//!    when every funded sector has a positive share.
//! 4. Usage fees ([`FeeSettlement`]): a device's line gets `gross − fee` with
//!    `fee = depin_ledger::protocol_fee(gross, protocol_fee_bps)` computed per
//!    settlement, and the fees are burned. Pass one settlement per share given
//!    to `depin_ledger::settle` and the sheet agrees with the ledger to the unit.
//! 5. Every line with a zero reward or a score below 100% carries a reason
//!    (DESIGN invariant 5). Verifiers give the reasons for their factors; the
//!    sheet adds `RoundedToZero` when a positive share rounds to nothing (or its
//!    sector is unfunded), and `NoReports` to a line with neither share nor
//!    reason (a fee-only device, or a verifier that forgot one).
//!
//! Cost: one sort of the contributions and one of the fees, then linear passes
//! (a selection per sector for the leftover units): O(n log n).

use crate::policy::{BPS, PPM, PolicyError, RewardPolicy, emission_for_epoch};
use crate::sector::Contribution;
use depin_core::{Amount, EpochIndex, PublicKey, Reason, Sector};
use depin_ledger::{Entry, protocol_fee};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One device's result in one sector for one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardLine {
    pub device: PublicKey,
    pub operator: PublicKey,
    pub sector: Sector,
    pub score_ppm: u32,
    pub weight: u64,
    /// Emission paid to the device's operator for this line.
    pub reward: Amount,
    /// Usage fees net of the protocol fee.
    pub fees: Amount,
    /// Sorted, without duplicates.
    pub reasons: Vec<Reason>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorTotals {
    /// The sector's part of the epoch emission.
    pub emission: Amount,
    /// What its devices received (`== emission` unless no device had a share).
    pub distributed: Amount,
    /// Lines in the sector.
    pub devices: u32,
    /// Lines with a positive reward.
    pub rewarded: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardSheet {
    pub epoch: EpochIndex,
    pub policy_id: String,
    /// The schedule's emission for the epoch.
    pub emission: Amount,
    /// What was actually paid out of it (Σ rewards).
    pub minted: Amount,
    /// Gross usage fees settled in the epoch.
    pub fees: Amount,
    /// Protocol fees burned.
    pub burned: Amount,
    /// Every sector, funded or not.
    pub per_sector: BTreeMap<Sector, SectorTotals>,
    /// Sorted by (device, sector).
    pub lines: Vec<RewardLine>,
}

/// Usage fees a device earned in the epoch (one per settled share; see rule 4).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FeeSettlement {
    pub device: PublicKey,
    pub operator: PublicKey,
    /// The sector whose service earned the fee; the line it lands on.
    pub sector: Sector,
    pub gross: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SheetError {
    #[error("invalid reward policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("fees of the epoch exceed the largest amount ({})", Amount::MAX)]
    FeeOverflow,
    #[error(
        "fee for device {device} names operator {fee_operator}, but its contribution names {line_operator}"
    )]
    OperatorMismatch {
        device: PublicKey,
        fee_operator: PublicKey,
        line_operator: PublicKey,
    },
}

/// Computes the reward sheet of `epoch`; see the module docs for the rules.
///
/// # Panics
///
/// If [`try_compute_sheet`] fails: an invalid policy, fees above `u64::MAX` in
/// total, or a fee whose operator disagrees with the device's contribution.
/// The coordinator validates its policy at start and builds fees from ledger
/// settlements, so none of these can happen there; call `try_compute_sheet`
/// with untrusted input.
pub fn compute_sheet(
    policy: &RewardPolicy,
    epoch: EpochIndex,
    contributions: Vec<Contribution>,
    fees: &[FeeSettlement],
) -> RewardSheet {
    match try_compute_sheet(policy, epoch, contributions, fees) {
        Ok(sheet) => sheet,
        Err(e) => panic!("compute_sheet: {e}"),
    }
}

fn sector_index(s: Sector) -> usize {
    s.code() as usize - 1
}

/// [`compute_sheet`] returning its errors.
pub fn try_compute_sheet(
    policy: &RewardPolicy,
    epoch: EpochIndex,
    mut contributions: Vec<Contribution>,
    fees: &[FeeSettlement],
) -> Result<RewardSheet, SheetError> {
    policy.validate()?;
    let emission = emission_for_epoch(policy, epoch);
    let sector_emission = split_by_weights(emission, &policy.sector_weights_bps);

    // One canonical order makes the sheet independent of input order.
    contributions.sort_unstable_by(|a, b| {
        (&a.device, a.sector)
            .cmp(&(&b.device, b.sector))
            .then_with(|| a.cmp(b))
    });

    let shares: Vec<u128> = contributions
        .iter()
        .map(|c| u128::from(c.score_ppm.min(PPM)) * u128::from(c.weight))
        .collect();
    let mut total_share = [0u128; 4];
    for (c, s) in contributions.iter().zip(&shares) {
        // < 2^84 per line, so 2^44 lines fit: no overflow for any real input.
        total_share[sector_index(c.sector)] += s;
    }

    // Quotas: floor part now, remainder kept for the leftover units.
    let mut rewards: Vec<Amount> = vec![0; contributions.len()];
    let mut remainders: Vec<u128> = vec![0; contributions.len()];
    let mut floor_sum = [0u128; 4];
    for (i, c) in contributions.iter().enumerate() {
        let k = sector_index(c.sector);
        if shares[i] == 0 {
            continue;
        }
        let (q, r) = mul_div(u128::from(sector_emission[k]), shares[i], total_share[k]);
        rewards[i] = q as Amount; // q ≤ E_s because share ≤ total
        remainders[i] = r;
        floor_sum[k] += q;
    }
    for s in Sector::ALL {
        let k = sector_index(s);
        if total_share[k] == 0 {
            continue;
        }
        let leftover = (u128::from(sector_emission[k]) - floor_sum[k]) as usize;
        if leftover == 0 {
            continue;
        }
        let mut candidates: Vec<u32> = (0..contributions.len() as u32)
            .filter(|&i| contributions[i as usize].sector == s && shares[i as usize] > 0)
            .collect();
        // Largest remainder first; ties to the earlier line, i.e. the smaller
        // device id (lines are sorted by device). Σ remainders < count × total,
        // so leftover < candidates.len().
        let order = |a: &u32, b: &u32| {
            remainders[*b as usize]
                .cmp(&remainders[*a as usize])
                .then(a.cmp(b))
        };
        if leftover < candidates.len() {
            candidates.select_nth_unstable_by(leftover - 1, order);
        }
        for &i in candidates.iter().take(leftover) {
            rewards[i as usize] += 1;
        }
    }
    drop(remainders);

    let mut lines: Vec<RewardLine> = contributions
        .into_iter()
        .zip(rewards)
        .zip(shares)
        .map(|((c, reward), share)| {
            let mut reasons = c.reasons;
            if reward == 0 && share > 0 {
                reasons.push(Reason::RoundedToZero);
            }
            RewardLine {
                device: c.device,
                operator: c.operator,
                sector: c.sector,
                score_ppm: c.score_ppm.min(PPM),
                weight: c.weight,
                reward,
                fees: 0,
                reasons,
            }
        })
        .collect();

    let (fees_gross, burned) = apply_fees(&mut lines, fees, policy.protocol_fee_bps)?;

    let mut per_sector: BTreeMap<Sector, SectorTotals> = Sector::ALL
        .into_iter()
        .map(|s| {
            (
                s,
                SectorTotals {
                    emission: sector_emission[sector_index(s)],
                    ..Default::default()
                },
            )
        })
        .collect();
    let mut minted: Amount = 0;
    for line in &mut lines {
        if line.reward == 0 && line.reasons.is_empty() {
            line.reasons.push(Reason::NoReports);
        }
        line.reasons.sort_unstable();
        line.reasons.dedup();
        let t = per_sector
            .get_mut(&line.sector)
            .expect("every sector is listed");
        t.devices += 1;
        if line.reward > 0 {
            t.rewarded += 1;
            // Σ rewards in a sector ≤ its emission ≤ the epoch's emission: no overflow.
            t.distributed += line.reward;
            minted += line.reward;
        }
    }
    debug_assert!(minted <= emission);

    Ok(RewardSheet {
        epoch,
        policy_id: policy.id(),
        emission,
        minted,
        fees: fees_gross,
        burned,
        per_sector,
        lines,
    })
}

/// Adds fees to the sorted `lines` (creating a line for a fee-only device) and
/// returns (gross, burned).
fn apply_fees(
    lines: &mut Vec<RewardLine>,
    fees: &[FeeSettlement],
    bps: u32,
) -> Result<(Amount, Amount), SheetError> {
    let mut sorted: Vec<&FeeSettlement> = fees.iter().filter(|f| f.gross > 0).collect();
    // Same order as the lines, (device, sector), so one merge pass matches them.
    sorted.sort_unstable_by(|a, b| {
        (&a.device, a.sector)
            .cmp(&(&b.device, b.sector))
            .then_with(|| a.cmp(b))
    });
    let (mut gross_total, mut burned): (Amount, Amount) = (0, 0);
    let mut orphans: Vec<RewardLine> = Vec::new();
    let mut i = 0;
    for f in sorted {
        let fee = protocol_fee(f.gross, bps);
        gross_total = gross_total
            .checked_add(f.gross)
            .ok_or(SheetError::FeeOverflow)?;
        burned += fee; // ≤ gross_total
        let key = (&f.device, f.sector);
        while i < lines.len() && (&lines[i].device, lines[i].sector) < key {
            i += 1;
        }
        let line = if i < lines.len() && (&lines[i].device, lines[i].sector) == key {
            &mut lines[i]
        } else {
            match orphans.last_mut() {
                Some(o) if (&o.device, o.sector) == key => o,
                _ => {
                    orphans.push(RewardLine {
                        device: f.device,
                        operator: f.operator,
                        sector: f.sector,
                        score_ppm: 0,
                        weight: 0,
                        reward: 0,
                        fees: 0,
                        reasons: vec![Reason::NoReports],
                    });
                    orphans.last_mut().expect("just pushed")
                }
            }
        };
        if line.operator != f.operator {
            return Err(SheetError::OperatorMismatch {
                device: f.device,
                fee_operator: f.operator,
                line_operator: line.operator,
            });
        }
        line.fees += f.gross - fee; // ≤ gross_total
    }
    if !orphans.is_empty() {
        lines.append(&mut orphans);
        lines.sort_by(|a, b| (&a.device, a.sector).cmp(&(&b.device, b.sector)));
    }
    Ok((gross_total, burned))
}

/// Splits `total` by `weights` with the largest-remainder method; indexed by
/// `Sector::code() - 1`. Sums to `total` exactly when any weight is positive.
fn split_by_weights(total: Amount, weights: &BTreeMap<Sector, u32>) -> [Amount; 4] {
    let denominator: u128 = weights.values().map(|w| u128::from(*w)).sum();
    let mut parts = [0 as Amount; 4];
    if denominator == 0 {
        return parts;
    }
    debug_assert_eq!(
        denominator,
        u128::from(BPS),
        "validated policies sum to 10000"
    );
    let mut remainders = [(0u128, Sector::Storage); 4];
    let mut given: u128 = 0;
    for (k, s) in Sector::ALL.into_iter().enumerate() {
        let w = u128::from(weights.get(&s).copied().unwrap_or(0));
        let exact = u128::from(total) * w; // < 2^96
        parts[sector_index(s)] = (exact / denominator) as Amount;
        given += exact / denominator;
        remainders[k] = (exact % denominator, s);
    }
    // Largest remainder first, ties in Sector order (a stable sort keeps it).
    remainders.sort_by_key(|r| std::cmp::Reverse(r.0));
    let leftover = u128::from(total) - given; // < 4
    for (_, s) in remainders.iter().take(leftover as usize) {
        parts[sector_index(*s)] += 1;
    }
    parts
}

/// `(a × b / c, a × b mod c)` for `a < 2^64`, `b ≤ c`, `c > 0`, without losing
/// bits when `a × b` exceeds `u128` (only with very large weights).
fn mul_div(a: u128, b: u128, c: u128) -> (u128, u128) {
    debug_assert!(c > 0 && b <= c && a <= u128::from(u64::MAX));
    if let Some(p) = a.checked_mul(b) {
        return (p / c, p % c);
    }
    // 256-bit product (hi, lo) from 64-bit limbs, then binary long division.
    let (a0, a1) = (a & u128::from(u64::MAX), a >> 64);
    let (b0, b1) = (b & u128::from(u64::MAX), b >> 64);
    let ll = a0 * b0;
    let mid1 = a0 * b1;
    let mid2 = a1 * b0;
    let hh = a1 * b1;
    let (lo, carry1) = ll.overflowing_add(mid1 << 64);
    let (lo, carry2) = lo.overflowing_add(mid2 << 64);
    let hi = hh + (mid1 >> 64) + (mid2 >> 64) + u128::from(carry1) + u128::from(carry2);
    let (mut q, mut r) = (0u128, 0u128);
    for bit in (0..256).rev() {
        let next = if bit >= 128 {
            (hi >> (bit - 128)) & 1
        } else {
            (lo >> bit) & 1
        };
        let overflow = r >> 127;
        r = (r << 1) | next;
        if overflow == 1 || r >= c {
            r = r.wrapping_sub(c);
            // The quotient is ≤ a < 2^64, so only low bits are ever set.
            debug_assert!(bit < 128);
            q |= 1u128 << (bit % 128);
        }
    }
    (q, r)
}

impl RewardSheet {
    /// The canonical encoding whose BLAKE3 is [`RewardSheet::hash`]. A simple
    /// little-endian binary layout, streamed rather than built through serde so
    /// a million-line sheet hashes without a second copy in memory:
    ///
    /// ```text
    /// "depin-reward-sheet/v1\n"
    /// u64 epoch · str policy_id · u64 emission · u64 minted · u64 fees · u64 burned
    /// u32 sector count, then per sector in Sector order:
    ///     u32 sector code · u64 emission · u64 distributed · u32 devices · u32 rewarded
    /// u64 line count, then per line in stored order (compute_sheet sorts by device, sector):
    ///     [32] device · [32] operator · u32 sector code · u32 score_ppm · u64 weight
    ///     · u64 reward · u64 fees · u32 reason count · str reason code…
    /// str = u32 byte length · UTF-8 bytes
    /// ```
    ///
    /// Reason codes are written as their public strings, which never change
    /// (`depin_core::Reason`), so the bytes are stable across releases.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.lines.len() * 110);
        self.write_canonical(&mut out);
        out
    }

    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        self.write_canonical(&mut hasher);
        *hasher.finalize().as_bytes()
    }

    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash())
    }

    fn write_canonical(&self, w: &mut impl Sink) {
        let str_ = |w: &mut dyn FnMut(&[u8]), s: &str| {
            w(&(s.len() as u32).to_le_bytes());
            w(s.as_bytes());
        };
        let mut put = |b: &[u8]| w.put(b);
        put(b"depin-reward-sheet/v1\n");
        put(&self.epoch.to_le_bytes());
        str_(&mut put, &self.policy_id);
        for x in [self.emission, self.minted, self.fees, self.burned] {
            put(&x.to_le_bytes());
        }
        put(&(self.per_sector.len() as u32).to_le_bytes());
        for (s, t) in &self.per_sector {
            put(&s.code().to_le_bytes());
            put(&t.emission.to_le_bytes());
            put(&t.distributed.to_le_bytes());
            put(&t.devices.to_le_bytes());
            put(&t.rewarded.to_le_bytes());
        }
        put(&(self.lines.len() as u64).to_le_bytes());
        for l in &self.lines {
            put(l.device.as_bytes());
            put(l.operator.as_bytes());
            put(&l.sector.code().to_le_bytes());
            put(&l.score_ppm.to_le_bytes());
            put(&l.weight.to_le_bytes());
            put(&l.reward.to_le_bytes());
            put(&l.fees.to_le_bytes());
            put(&(l.reasons.len() as u32).to_le_bytes());
            for r in &l.reasons {
                str_(&mut put, r.as_str());
            }
        }
    }

    /// What each operator earned in the epoch: rewards plus net fees.
    pub fn operator_totals(&self) -> BTreeMap<PublicKey, Amount> {
        let mut totals: BTreeMap<PublicKey, Amount> = BTreeMap::new();
        for l in &self.lines {
            let t = totals.entry(l.operator).or_default();
            // Σ ≤ minted + fees ≤ 2 × u64::MAX only in theory; saturate rather
            // than wrap if a hand-built sheet ever gets there.
            *t = t.saturating_add(l.reward).saturating_add(l.fees);
        }
        totals
    }

    /// Emission per operator (rewards only, no fees), the amounts of the
    /// epoch's `Mint → Operator` entries.
    pub fn operator_rewards(&self) -> BTreeMap<PublicKey, Amount> {
        let mut totals: BTreeMap<PublicKey, Amount> = BTreeMap::new();
        for l in self.lines.iter().filter(|l| l.reward > 0) {
            let t = totals.entry(l.operator).or_default();
            *t = t.saturating_add(l.reward);
        }
        totals
    }

    /// The epoch's emission as ledger entries, one per paid operator in key
    /// order; they sum to `minted`. Fees are settled separately from the
    /// consumers' locked escrow with `depin_ledger::settle`.
    pub fn emission_entries(&self) -> Vec<Entry> {
        self.operator_rewards()
            .into_iter()
            .map(|(op, amount)| depin_ledger::emission(op, amount))
            .collect()
    }
}

trait Sink {
    fn put(&mut self, bytes: &[u8]);
}
impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}
impl Sink for blake3::Hasher {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_div_matches_the_exact_result_beyond_u128() {
        let cases: [(u128, u128, u128); 5] = [
            (7, 3, 10),
            (u128::from(u64::MAX), 1 << 84, (1 << 84) + 12345),
            (u128::from(u64::MAX), (1 << 90) - 1, 1 << 90),
            (u128::from(u64::MAX) - 17, 3 << 80, 5 << 80),
            (1 << 63, u128::MAX / 2, u128::MAX),
        ];
        for (a, b, c) in cases {
            let (q, r) = mul_div(a, b, c);
            // Check q × c + r == a × b with 256-bit arithmetic done differently:
            // split b into c-multiples: a × b = a × c × (b / c) + a × (b % c) with b ≤ c.
            assert!(r < c);
            assert!(q <= a);
            // Exact check via f64 is not exact; use the identity a*b - q*c = r in
            // wrapping u128 arithmetic (true modulo 2^128) plus the bounds above.
            assert_eq!(
                a.wrapping_mul(b).wrapping_sub(q.wrapping_mul(c)),
                r,
                "{a} {b} {c}"
            );
        }
    }

    #[test]
    fn weights_split_exactly_with_ties_in_sector_order() {
        let w: BTreeMap<Sector, u32> = Sector::ALL.into_iter().map(|s| (s, 2500)).collect();
        // 7 / 4 = 1.75 each: three leftover units to the first three sectors.
        assert_eq!(split_by_weights(7, &w), [2, 2, 2, 1]);
        assert_eq!(
            split_by_weights(u64::MAX, &w)
                .iter()
                .map(|x| u128::from(*x))
                .sum::<u128>(),
            u128::from(u64::MAX)
        );
        assert_eq!(split_by_weights(5, &BTreeMap::new()), [0; 4]);
    }
}
