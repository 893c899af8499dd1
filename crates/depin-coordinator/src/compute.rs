//! The pure heart of an epoch close: registry + report counts + previous
//! claims → reward sheet, ledger entries, claim tree. No I/O, so the close and
//! `audit-epoch` run exactly the same code on the same inputs, and a
//! recomputation is byte-identical by construction.

use depin_core::{EpochIndex, PublicKey, Reason, Sector};
use depin_ledger::{Entry, Ledger};
use depin_merkle::{Leaf, StandardMerkleTree};
use depin_protocol::{KindSpec, KindTable, decode_signed, verify_batch};
use depin_rewards::{
    DeviceInfo, EpochInput, FeeSettlement, IssuedWork, OpenOrder, PriorState, ReportSummary,
    RewardPolicy, RewardSheet, SectorReport, SectorVerifier, Sectors, availability, check_outcome,
    compute_sheet, epoch_entropy, work_id,
};
use depin_store::{
    ChargeRow, DeviceRow, LedgerEntryRow, OrderRow, RewardLineRow, SectorTotalRow, StoredReport,
    WorkRow,
};
use std::collections::BTreeMap;

/// How far ahead a work order's deadline may lie: at most this many epochs
/// after the epoch whose close issued it.
pub const MAX_WORK_EPOCHS: u64 = 24;

/// What one sector brings to a coordinator: its payload kinds (each in its
/// kind range) and its verifier. The server side (routes) and the devnet
/// side (actors) plug in beside it; see ARCHITECTURE "The sector seam".
pub trait SectorPlugin: Send + Sync {
    fn sector(&self) -> Sector;
    /// Its rows of the kind table.
    fn kinds(&self) -> &'static [KindSpec];
    fn verifier(&self) -> Box<dyn SectorVerifier>;
    /// Its own tables, if it has any: applied when a coordinator opens with
    /// the plugin (`Store::apply_sector_schema`).
    fn schema(&self) -> Option<&'static depin_store::SectorSchema> {
        None
    }
}

/// The sectors a coordinator serves: one verifier per sector (availability
/// alone where none is plugged in) and the kind table.
#[derive(Debug)]
pub struct SectorSet {
    pub verifiers: Sectors,
    pub kinds: KindTable,
    /// The plugins' own tables.
    pub schemas: Vec<&'static depin_store::SectorSchema>,
}

impl Default for SectorSet {
    fn default() -> Self {
        SectorSet::backbone()
    }
}

impl SectorSet {
    /// No sector plugins: heartbeats and availability only.
    pub fn backbone() -> SectorSet {
        SectorSet {
            verifiers: Sectors::uptime_only(),
            kinds: KindTable::backbone(),
            schemas: Vec::new(),
        }
    }

    pub fn new(plugins: &[&dyn SectorPlugin]) -> Result<SectorSet, String> {
        let kinds = KindTable::new(
            &plugins
                .iter()
                .map(|p| (p.sector(), p.kinds()))
                .collect::<Vec<_>>(),
        )?;
        let mut verifiers = Vec::new();
        let mut schemas = Vec::new();
        for p in plugins {
            if let Some(s) = p.schema() {
                if s.sector != p.sector() {
                    return Err(format!(
                        "the {} plugin's schema is for sector {}",
                        p.sector(),
                        s.sector
                    ));
                }
                s.check()?;
                schemas.push(s);
            }
            let v = p.verifier();
            if v.sector() != p.sector() {
                return Err(format!(
                    "the {} plugin's verifier {:?} scores sector {}",
                    p.sector(),
                    v.name(),
                    v.sector()
                ));
            }
            for k in v.kinds() {
                if kinds
                    .get(*k)
                    .is_none_or(|s| s.route != depin_protocol::Route::Reports)
                {
                    return Err(format!(
                        "verifier {:?} reads kind {k}, which is not a report kind of its plugin",
                        v.name()
                    ));
                }
            }
            verifiers.push(v);
        }
        Ok(SectorSet {
            verifiers: Sectors::new(verifiers).map_err(|e| e.0)?,
            kinds,
            schemas,
        })
    }
}

/// Everything an epoch close decides.
pub struct ComputedEpoch {
    pub sheet: RewardSheet,
    pub entries: Vec<Entry>,
    /// Every account's cumulative claimable amount after this epoch, by account.
    pub leaves: Vec<(PublicKey, u64)>,
    /// The accounts whose cumulative amount changed this epoch.
    pub changed: Vec<(PublicKey, u64)>,
    pub claim_root: [u8; 32],
    /// (verifier name, state version, state).
    pub sector_state: Vec<(String, u32, Vec<u8>)>,
    /// Work orders issued at this close.
    pub work: Vec<WorkRow>,
    /// Usage the verifiers charged, settled by this close's entries.
    pub charges: Vec<ChargeRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("stored device {0} has unknown sector code {1}")]
    UnknownSector(PublicKey, u32),
    #[error("ledger rejected the epoch's entries: {0}")]
    Ledger(#[from] depin_ledger::LedgerError),
    #[error("cumulative claim for {0} overflows")]
    Overflow(PublicKey),
    /// A report in the log no longer verifies or disagrees with its row:
    /// the store was damaged or written by something else.
    #[error("stored report ({device}, seq {seq}) is damaged: {why}")]
    DamagedReport {
        device: PublicKey,
        seq: u64,
        why: String,
    },
    /// A sector verifier failed or broke its contract: the close stops.
    #[error("sector verifier {name:?} failed: {message}")]
    Verifier { name: String, message: String },
    /// A stored order disagrees with itself (charged more than it locked,
    /// a sector no verifier serves): the store was damaged.
    #[error("stored order {order} of consumer {consumer} is damaged: {why}")]
    DamagedOrder {
        consumer: PublicKey,
        order: u64,
        why: String,
    },
}

/// What the close and the audit read for `epoch` under `policy`: one
/// description, one loader (`depin_store::EpochInputRows`).
pub fn input_query(
    policy: &RewardPolicy,
    epoch: EpochIndex,
    sectors: &SectorSet,
) -> depin_store::EpochInputQuery {
    depin_store::EpochInputQuery {
        epoch,
        registered_before_ms: policy.epoch_end_ms(epoch),
        report_kind: depin_protocol::PayloadKind::Heartbeat.as_u32(),
        max_delay_ms: policy.max_heartbeat_delay_ms(),
        kinds: sectors.verifiers.kinds(),
        states: sectors
            .verifiers
            .iter()
            .map(|v| v.name().to_string())
            .collect(),
    }
}

pub fn device_info(rows: &[DeviceRow]) -> Result<Vec<DeviceInfo>, ComputeError> {
    let mut out: Vec<DeviceInfo> = rows
        .iter()
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
        .collect::<Result<_, ComputeError>>()?;
    out.sort();
    Ok(out)
}

/// Re-verifies stored reports from their raw signed bytes: the signature,
/// and that the envelope says what the row's columns say.
fn verify_stored(rows: &[&StoredReport]) -> Result<Vec<SectorReport>, ComputeError> {
    let damaged = |r: &StoredReport, why: String| ComputeError::DamagedReport {
        device: r.device,
        seq: r.seq,
        why,
    };
    let mut signed = Vec::with_capacity(rows.len());
    for r in rows {
        let s = decode_signed(&r.raw).map_err(|e| damaged(r, format!("does not decode: {e}")))?;
        let env = &s.envelope;
        if env.signer != r.device
            || env.seq != r.seq
            || env.kind.as_u32() != r.kind
            || env.timestamp_ms != r.timestamp_ms
        {
            return Err(damaged(r, "envelope disagrees with its row".into()));
        }
        signed.push(s);
    }
    let verdicts = verify_batch(&signed);
    rows.iter()
        .zip(signed)
        .zip(verdicts)
        .map(|((r, s), v)| {
            v.map_err(|e| damaged(r, format!("signature: {e}")))?;
            Ok(SectorReport {
                device: r.device,
                seq: r.seq,
                kind: r.kind,
                timestamp_ms: r.timestamp_ms,
                received_ms: r.received_ms,
                payload: s.envelope.payload,
            })
        })
        .collect()
}

/// Computes an epoch from its loaded inputs: the one entry point of both the
/// close and the audit.
///
/// 1. availability of every active device, from on-time heartbeat counts;
/// 2. each sector's verifier over its reports (re-verified from the raw
///    signed bytes), prior state, the epoch entropy, its fees and its due
///    work; its outcome checked against the contract;
/// 3. the reward sheet over all contributions and fees, ledger entries and
///    cumulative claims.
pub fn compute_from_inputs(
    policy: &RewardPolicy,
    epoch: EpochIndex,
    inputs: &depin_store::EpochInputRows,
    sectors: &SectorSet,
) -> Result<ComputedEpoch, ComputeError> {
    let devices = device_info(&inputs.devices)?;
    let mut orders = open_orders(&inputs.orders, sectors)?;
    let heartbeats: Vec<ReportSummary> = inputs
        .report_counts
        .iter()
        .map(|(d, n)| ReportSummary {
            device: *d,
            heartbeats: u32::try_from(*n).unwrap_or(u32::MAX),
        })
        .collect();
    let factors = availability(policy, epoch, &devices, &heartbeats);
    let entropy = epoch_entropy(epoch, inputs.previous_root);

    // Every raw report any verifier reads, and every due answer, verified in
    // one batch.
    let mut raw: Vec<&StoredReport> = inputs.reports.iter().collect();
    raw.extend(inputs.due_work.iter().filter_map(|w| w.answer.as_ref()));
    let verified = verify_stored(&raw)?;
    let (reports, answers) = verified.split_at(inputs.reports.len());
    let mut answers = answers.iter();

    let mut due: BTreeMap<u32, Vec<IssuedWork>> = BTreeMap::new();
    for w in &inputs.due_work {
        let answer = w.answer.as_ref().map(|_| {
            answers
                .next()
                .cloned()
                .expect("one verified answer per stored answer")
        });
        due.entry(w.work.sector).or_default().push(IssuedWork {
            id: w.work.id,
            issued_epoch: w.work.issued_epoch,
            order: depin_rewards::WorkOrder {
                device: w.work.device,
                answer_kind: w.work.answer_kind,
                body: w.work.body.clone(),
                deadline_ms: w.work.deadline_ms,
            },
            answer,
        });
    }

    let mut contributions = Vec::new();
    let mut sector_state = Vec::new();
    let mut work = Vec::new();
    let mut charges = Vec::new();
    for v in sectors.verifiers.iter() {
        let sector = v.sector();
        let name = v.name();
        let fail = |message: String| ComputeError::Verifier {
            name: name.to_string(),
            message,
        };
        let kinds = v.kinds();
        let mine: Vec<SectorReport> = reports
            .iter()
            .filter(|r| kinds.contains(&r.kind))
            .cloned()
            .collect();
        let prior = inputs
            .prior_states
            .get(name)
            .map(|(version, bytes)| PriorState {
                version: *version,
                bytes: bytes.clone(),
            });
        let my_orders = orders.remove(&sector).unwrap_or_default();
        let my_work = due.remove(&sector.code()).unwrap_or_default();
        let outcome = v
            .verify_epoch(&EpochInput {
                policy,
                epoch,
                devices: &devices,
                availability: &factors,
                reports: &mine,
                prior_state: prior.as_ref(),
                entropy,
                orders: &my_orders,
                work: &my_work,
            })
            .map_err(|e| fail(e.0))?;
        check_outcome(v, &devices, &my_orders, &outcome).map_err(|e| fail(e.0))?;
        for c in outcome.charges {
            let operator = devices
                .binary_search_by(|d| d.device.cmp(&c.device))
                .map(|i| devices[i].operator)
                .expect("check_outcome found the charged device");
            charges.push(ChargeRow {
                consumer: c.consumer,
                order_id: c.order,
                device: c.device,
                operator,
                sector: sector.code(),
                gross: c.gross,
            });
        }
        let earliest = policy.closable_at_ms(epoch);
        let latest = policy.epoch_end_ms(epoch.saturating_add(MAX_WORK_EPOCHS));
        for (i, o) in outcome.work.into_iter().enumerate() {
            if o.deadline_ms <= earliest || o.deadline_ms >= latest {
                return Err(fail(format!(
                    "work order {i} has deadline {} ms, outside ({earliest}, {latest}): \
                     after this close and within {MAX_WORK_EPOCHS} epochs",
                    o.deadline_ms
                )));
            }
            let index = u32::try_from(i).map_err(|_| fail("too many work orders".into()))?;
            work.push(WorkRow {
                id: work_id(epoch, sector, index),
                issued_epoch: epoch,
                sector: sector.code(),
                device: o.device,
                answer_kind: o.answer_kind,
                body: o.body,
                deadline_ms: o.deadline_ms,
                due_epoch: policy
                    .epoch_of(o.deadline_ms)
                    .ok_or_else(|| fail("deadline before genesis".into()))?,
                answer_seq: None,
            });
        }
        sector_state.push((name.to_string(), v.state_version(), outcome.next_state));
        contributions.extend(outcome.contributions);
    }
    if let Some((code, _)) = due.into_iter().next() {
        return Err(ComputeError::Verifier {
            name: format!("sector code {code}"),
            message: "work fell due for a sector no verifier scores".into(),
        });
    }
    finish(
        policy,
        epoch,
        contributions,
        &inputs.orders,
        charges,
        &inputs.previous_claims,
        sector_state,
        work,
    )
}

/// The stored open orders as each sector's verifier sees them.
fn open_orders(
    rows: &[OrderRow],
    sectors: &SectorSet,
) -> Result<BTreeMap<Sector, Vec<OpenOrder>>, ComputeError> {
    let mut out: BTreeMap<Sector, Vec<OpenOrder>> = BTreeMap::new();
    for o in rows {
        let damaged = |why: &str| ComputeError::DamagedOrder {
            consumer: o.consumer,
            order: o.order_id,
            why: why.to_string(),
        };
        let sector = Sector::from_code(o.sector)
            .filter(|s| sectors.verifiers.iter().any(|v| v.sector() == *s))
            .ok_or_else(|| damaged("its sector has no verifier"))?;
        let remaining = o
            .amount
            .checked_sub(o.charged)
            .ok_or_else(|| damaged("charged more than it locked"))?;
        out.entry(sector).or_default().push(OpenOrder {
            consumer: o.consumer,
            order: o.order_id,
            remaining,
            first_epoch: o.first_epoch,
            last_epoch: o.last_epoch,
            terms: o.terms.clone(),
        });
    }
    // Rows come in (consumer, order) order; each sector's list keeps it.
    Ok(out)
}

/// The sheet, ledger entries and claims from the verified contributions and
/// the checked charges.
///
/// Entries, in order: emission (`Mint → Operator`, rewards only: fees are
/// never minted), then per order in (consumer, order) order its settlement
/// (`Locked → Operator` net, `Locked → Protocol → Burn` for the protocol
/// fee), then the refund of what is left of each order whose last epoch
/// this is.
#[allow(clippy::too_many_arguments)]
fn finish(
    policy: &RewardPolicy,
    epoch: EpochIndex,
    contributions: Vec<depin_rewards::Contribution>,
    orders: &[OrderRow],
    mut charges: Vec<ChargeRow>,
    previous_leaves: &[(PublicKey, u64)],
    sector_state: Vec<(String, u32, Vec<u8>)>,
    work: Vec<WorkRow>,
) -> Result<ComputedEpoch, ComputeError> {
    charges.sort();
    let fees: Vec<FeeSettlement> = charges
        .iter()
        .map(|c| FeeSettlement {
            device: c.device,
            operator: c.operator,
            sector: Sector::from_code(c.sector).expect("charges carry a verifier's sector"),
            gross: c.gross,
        })
        .collect();
    let sheet = compute_sheet(policy, epoch, contributions, &fees);
    let mut entries = sheet.emission_entries();
    let mut charged: BTreeMap<(PublicKey, u64), u64> = BTreeMap::new();
    let mut at = 0;
    while at < charges.len() {
        let (consumer, order) = (charges[at].consumer, charges[at].order_id);
        let mut shares = Vec::new();
        while at < charges.len()
            && (charges[at].consumer, charges[at].order_id) == (consumer, order)
        {
            shares.push((charges[at].operator, charges[at].gross));
            // check_outcome bounded the sum by the order's remainder (a u64).
            *charged.entry((consumer, order)).or_default() += charges[at].gross;
            at += 1;
        }
        entries.extend(depin_ledger::settle(
            consumer,
            order,
            &shares,
            policy.protocol_fee_bps,
        ));
    }
    for o in orders.iter().filter(|o| o.last_epoch == epoch) {
        let now = charged.get(&(o.consumer, o.order_id)).copied().unwrap_or(0);
        let left = o.amount - o.charged - now; // open_orders checked charged ≤ amount
        if left > 0 {
            entries.push(depin_ledger::refund(o.consumer, o.order_id, left));
        }
    }
    // The entries must be valid against the locks they draw on: replay them
    // on a scratch ledger holding exactly each open order's remainder.
    let mut scratch = Ledger::new();
    for o in orders {
        let remaining = o.amount - o.charged;
        if remaining > 0 {
            scratch.apply_batch(&[
                depin_ledger::deposit(o.consumer, remaining),
                depin_ledger::lock(o.consumer, o.order_id, remaining),
            ])?;
        }
    }
    scratch.apply_batch(&entries)?;
    // The sheet and the ledger compute the protocol fee per share with the
    // same function; they must agree to the base unit.
    if u128::from(sheet.burned) != scratch.burned() {
        return Err(ComputeError::Ledger(
            depin_ledger::LedgerError::InvariantViolated(format!(
                "the sheet burns {} but the settlements burn {}",
                sheet.burned,
                scratch.burned()
            )),
        ));
    }
    let totals = sheet.operator_totals();

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
        sector_state,
        work,
        charges,
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
