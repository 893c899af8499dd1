//! Closed epochs and the exactly-once close: the `epochs` row is claimed
//! first in the closing transaction, and everything the close writes lands
//! in that same transaction.

use crate::epoch_inputs::load_epoch_inputs;
use crate::{
    EpochInputQuery, EpochInputRows, LedgerEntryRow, Result, RewardLineRow, SectorTotalRow, Store,
    Val, WriteTx, insert_many, is_sqlite, to_i64, u64_from_row,
};
use depin_core::{EpochIndex, PublicKey};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRow {
    pub epoch: EpochIndex,
    pub policy_id: String,
    pub closed_ms: i64,
    pub emission: u64,
    pub minted: u64,
    pub fees: u64,
    pub burned: u64,
    pub devices: u64,
    pub sheet_hash: Vec<u8>,
    pub claim_root: Vec<u8>,
}

/// Everything an epoch close writes, in one value so it lands in one transaction.
#[derive(Clone, Debug, Default)]
pub struct EpochWrite {
    pub sector_totals: Vec<SectorTotalRow>,
    pub lines: Vec<RewardLineRow>,
    pub entries: Vec<LedgerEntryRow>,
    /// Accounts whose cumulative claimable amount changed this epoch.
    pub claims: Vec<(PublicKey, u64)>,
    /// (verifier name, state version, state bytes).
    pub sector_state: Vec<(String, u32, Vec<u8>)>,
    /// Work orders the verifiers issued at this close.
    pub work: Vec<WorkRow>,
    /// Usage charged against consumers' orders, settled by `entries`.
    pub charges: Vec<crate::ChargeRow>,
}

/// Advisory-lock key namespace for epochs on PostgreSQL ("DEPI").
const EPOCH_LOCK_NAMESPACE: i64 = 0x4445_5049_0000_0000;

pub(crate) fn epoch_lock_key(epoch: EpochIndex) -> i64 {
    EPOCH_LOCK_NAMESPACE | (epoch as i64 & 0xFFFF_FFFF)
}

/// How a transaction holds an epoch's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EpochLock {
    /// Appends: any number at once, none beside a close.
    Shared,
    /// The close, and whatever must not run beside it.
    Exclusive,
}

/// Takes `epoch`'s advisory lock for the rest of the transaction on
/// PostgreSQL. SQLite needs none: its one writer runs alone.
pub(crate) async fn lock_epoch(
    conn: &mut AnyConnection,
    epoch: EpochIndex,
    lock: EpochLock,
) -> Result<()> {
    if is_sqlite(conn) {
        return Ok(());
    }
    let sql = match lock {
        EpochLock::Shared => "SELECT pg_advisory_xact_lock_shared($1)",
        EpochLock::Exclusive => "SELECT pg_advisory_xact_lock($1)",
    };
    sqlx::query(sql)
        .bind(epoch_lock_key(epoch))
        .execute(conn)
        .await?;
    Ok(())
}

const EPOCH_COLUMNS: &str =
    "epoch, policy_id, closed_ms, emission, minted, fees, burned, devices, sheet_hash, claim_root";

/// The row of `epoch`, if its close has begun (a close in progress, visible
/// only inside its own transaction, has zero amounts and empty hashes).
pub(crate) async fn epoch_row(
    conn: &mut AnyConnection,
    epoch: EpochIndex,
) -> Result<Option<EpochRow>> {
    sqlx::query(&format!(
        "SELECT {EPOCH_COLUMNS} FROM epochs WHERE epoch = $1"
    ))
    .bind(to_i64(epoch)?)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(epoch_from_row)
    .transpose()
}

/// The newest epoch whose close has begun.
pub(crate) async fn last_closed_epoch(conn: &mut AnyConnection) -> Result<Option<EpochIndex>> {
    let r: Option<i64> = sqlx::query("SELECT MAX(epoch) FROM epochs")
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    r.map(|v| u64_from_row(v, "epoch")).transpose()
}

/// A work order as stored (see migration 0004).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WorkRow {
    pub id: [u8; 32],
    pub issued_epoch: EpochIndex,
    pub sector: u32,
    pub device: PublicKey,
    pub answer_kind: u32,
    pub body: Vec<u8>,
    pub deadline_ms: i64,
    pub due_epoch: EpochIndex,
    /// Sequence number of the device's accepted answer.
    pub answer_seq: Option<u64>,
}

impl Store {
    pub async fn epoch(&self, epoch: EpochIndex) -> Result<Option<EpochRow>> {
        epoch_row(&mut *self.pool.acquire().await?, epoch).await
    }

    pub async fn epochs(&self) -> Result<Vec<EpochRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {EPOCH_COLUMNS} FROM epochs ORDER BY epoch"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(epoch_from_row).collect()
    }

    pub async fn last_closed_epoch(&self) -> Result<Option<EpochIndex>> {
        last_closed_epoch(&mut *self.pool.acquire().await?).await
    }

    /// Starts closing `epoch`. Returns `None` when it is already closed (by this
    /// or another process): then nothing is to be done. Otherwise the returned
    /// transaction holds the epoch: concurrent closers and appenders wait.
    pub async fn begin_close(
        &self,
        epoch: EpochIndex,
        policy_id: &str,
        closed_ms: i64,
    ) -> Result<Option<EpochClose>> {
        let mut tx = self.write_tx().await?;
        lock_epoch(tx.conn(), epoch, EpochLock::Exclusive).await?;
        let claimed = sqlx::query(
            "INSERT INTO epochs (epoch, policy_id, closed_ms, emission, minted, fees, burned, devices, sheet_hash, claim_root) \
             VALUES ($1, $2, $3, 0, 0, 0, 0, 0, $4, $4) ON CONFLICT (epoch) DO NOTHING RETURNING epoch",
        )
        .bind(to_i64(epoch)?)
        .bind(policy_id)
        .bind(closed_ms)
        .bind(Vec::<u8>::new())
        .fetch_optional(tx.conn())
        .await?;
        if claimed.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.step("close:claimed")?;
        Ok(Some(EpochClose { tx, epoch }))
    }
}

fn epoch_from_row(r: &AnyRow) -> Result<EpochRow> {
    Ok(EpochRow {
        epoch: u64_from_row(r.try_get(0)?, "epoch")?,
        policy_id: r.try_get(1)?,
        closed_ms: r.try_get(2)?,
        emission: u64_from_row(r.try_get(3)?, "emission")?,
        minted: u64_from_row(r.try_get(4)?, "minted")?,
        fees: u64_from_row(r.try_get(5)?, "fees")?,
        burned: u64_from_row(r.try_get(6)?, "burned")?,
        devices: u64_from_row(r.try_get(7)?, "devices")?,
        sheet_hash: r.try_get(8)?,
        claim_root: r.try_get(9)?,
    })
}

/// A claimed, not yet committed epoch close. Reads happen inside the same
/// transaction so they see exactly the inputs the close commits against.
pub struct EpochClose {
    tx: WriteTx,
    epoch: EpochIndex,
}

impl EpochClose {
    pub fn epoch(&self) -> EpochIndex {
        self.epoch
    }

    /// The epoch's inputs, read inside the closing transaction, so they are
    /// exactly what the close commits against.
    pub async fn inputs(&mut self, q: &EpochInputQuery) -> Result<EpochInputRows> {
        load_epoch_inputs(self.tx.conn(), q).await
    }

    /// Writes everything and commits. Balances move by the entries' deltas.
    pub async fn commit(mut self, epoch_row: &EpochRow, w: &EpochWrite) -> Result<()> {
        let t = std::time::Instant::now();
        let e = to_i64(self.epoch)?;
        sqlx::query(
            "UPDATE epochs SET policy_id = $2, closed_ms = $3, emission = $4, minted = $5, fees = $6, burned = $7, devices = $8, \
             sheet_hash = $9, claim_root = $10 WHERE epoch = $1",
        )
        .bind(e)
        .bind(epoch_row.policy_id.as_str())
        .bind(epoch_row.closed_ms)
        .bind(to_i64(epoch_row.emission)?)
        .bind(to_i64(epoch_row.minted)?)
        .bind(to_i64(epoch_row.fees)?)
        .bind(to_i64(epoch_row.burned)?)
        .bind(to_i64(epoch_row.devices)?)
        .bind(epoch_row.sheet_hash.clone())
        .bind(epoch_row.claim_root.clone())
        .execute(self.tx.conn())
        .await?;
        self.tx.step("close:epoch-row")?;
        let totals: Vec<Vec<Val>> = w
            .sector_totals
            .iter()
            .map(|t| {
                vec![
                    e.into(),
                    t.sector.into(),
                    t.emission.into(),
                    t.distributed.into(),
                    t.devices.into(),
                    t.rewarded.into(),
                ]
            })
            .collect();
        insert_many(
            self.tx.conn(),
            "INSERT INTO sector_totals (epoch, sector, emission, distributed, devices, rewarded)",
            "",
            6,
            &totals,
        )
        .await?;
        self.tx.step("close:sector-totals")?;
        let lines: Vec<Vec<Val>> = w
            .lines
            .iter()
            .map(|l| {
                vec![
                    e.into(),
                    (&l.device).into(),
                    (&l.operator).into(),
                    l.sector.into(),
                    l.score_ppm.into(),
                    l.weight.into(),
                    l.reward.into(),
                    l.fees.into(),
                    l.reasons.as_str().into(),
                ]
            })
            .collect();
        insert_many(
            self.tx.conn(),
            "INSERT INTO reward_lines (epoch, device, operator, sector, score_ppm, weight, reward, fees, reasons)",
            "",
            9,
            &lines,
        )
        .await?;
        self.tx.step("close:reward-lines")?;
        drop(lines);
        tracing::debug!(ms = t.elapsed().as_millis() as u64, "commit: lines written");
        crate::escrow::write_entries(self.tx.conn(), self.epoch, &w.entries).await?;
        self.tx.step("close:ledger-entries")?;
        crate::escrow::write_charges(self.tx.conn(), self.epoch, &w.charges).await?;
        self.tx.step("close:balances")?;
        tracing::debug!(
            ms = t.elapsed().as_millis() as u64,
            "commit: ledger written"
        );
        let claims: Vec<Vec<Val>> = w
            .claims
            .iter()
            .map(|(a, c)| vec![e.into(), a.into(), (*c).into()])
            .collect();
        insert_many(
            self.tx.conn(),
            "INSERT INTO claims (epoch, account, cumulative)",
            "",
            3,
            &claims,
        )
        .await?;
        self.tx.step("close:claims")?;
        let states: Vec<Vec<Val>> = w
            .sector_state
            .iter()
            .map(|(s, v, b)| vec![s.as_str().into(), e.into(), (*v).into(), b.clone().into()])
            .collect();
        insert_many(
            self.tx.conn(),
            "INSERT INTO sector_state (sector, epoch, version, state)",
            "",
            4,
            &states,
        )
        .await?;
        self.tx.step("close:sector-state")?;
        let work: Vec<Vec<Val>> = w
            .work
            .iter()
            .map(|o| {
                vec![
                    Val::Blob(o.id.to_vec()),
                    o.issued_epoch.into(),
                    o.sector.into(),
                    (&o.device).into(),
                    o.answer_kind.into(),
                    Val::Blob(o.body.clone()),
                    o.deadline_ms.into(),
                    o.due_epoch.into(),
                ]
            })
            .collect();
        insert_many(
            self.tx.conn(),
            "INSERT INTO work (id, issued_epoch, sector, device, answer_kind, body, deadline_ms, due_epoch)",
            "",
            8,
            &work,
        )
        .await?;
        self.tx.step("close:work")?;
        tracing::debug!(
            ms = t.elapsed().as_millis() as u64,
            "commit: claims written"
        );
        // Report-rate counters of a closed epoch are never read again: late
        // reports are refused before the limit is consulted.
        sqlx::query("DELETE FROM rate_counts WHERE epoch <= $1")
            .bind(e)
            .execute(self.tx.conn())
            .await?;
        sqlx::query("DELETE FROM kind_counts WHERE epoch <= $1")
            .bind(e)
            .execute(self.tx.conn())
            .await?;
        self.tx.step("close:prune")?;
        self.tx.commit().await?;
        tracing::debug!(ms = t.elapsed().as_millis() as u64, "commit: done");
        Ok(())
    }

    /// Gives the epoch back unclosed (e.g. the computation failed).
    pub async fn abort(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}
