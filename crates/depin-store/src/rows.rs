//! Typed rows and the queries over them.

use crate::{
    Backend, Result, Store, StoreError, Val, WriteTx, insert_many, key_from_row, to_i64,
    u64_from_row,
};
use depin_core::{EpochIndex, PublicKey};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    pub device: PublicKey,
    pub operator: PublicKey,
    pub sector: u32,
    pub hardware_class: String,
    pub firmware_version: String,
    pub lat_micro: Option<i64>,
    pub lon_micro: Option<i64>,
    pub h3_cell: Option<i64>,
    pub certificate: Vec<u8>,
    pub registered_ms: i64,
    pub revoked_ms: Option<i64>,
    pub replaced_by: Option<PublicKey>,
    pub last_seq: Option<u64>,
}

const DEVICE_COLUMNS: &str = "device, operator, sector, hardware_class, firmware_version, lat_micro, lon_micro, h3_cell, certificate, registered_ms, revoked_ms, replaced_by, last_seq";

async fn insert_device(conn: &mut sqlx::AnyConnection, d: &DeviceRow) -> Result<bool> {
    let n = insert_many(
        conn,
        &format!("INSERT INTO devices ({DEVICE_COLUMNS})"),
        "ON CONFLICT (device) DO NOTHING",
        13,
        &[vec![
            (&d.device).into(),
            (&d.operator).into(),
            d.sector.into(),
            d.hardware_class.as_str().into(),
            d.firmware_version.as_str().into(),
            d.lat_micro.into(),
            d.lon_micro.into(),
            d.h3_cell.into(),
            d.certificate.clone().into(),
            d.registered_ms.into(),
            d.revoked_ms.into(),
            d.replaced_by.as_ref().map_or(Val::NullBlob, |k| k.into()),
            d.last_seq.map(to_i64).transpose()?.into(),
        ]],
    )
    .await?;
    Ok(n == 1)
}

/// The outcome of registering a device key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    Registered,
    /// The device key is already a registered device.
    DeviceKeyTaken,
    /// The device key is some operator's key.
    DeviceKeyIsOperator,
    /// The operator key is some device's key.
    OperatorKeyIsDevice,
    /// (rotation) the old key is revoked or not registered.
    OldKeyInactive,
}

const ROLE_DEVICE: i64 = 1;
const ROLE_OPERATOR: i64 = 2;

/// Claims the device key and the operator key in the key table, then inserts
/// the device; the caller commits only on `Registered`.
async fn register_in(tx: &mut WriteTx, d: &DeviceRow) -> Result<Registration> {
    let claimed = sqlx::query(
        "INSERT INTO key_roles (key, role) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING key",
    )
    .bind(d.device.0.to_vec())
    .bind(ROLE_DEVICE)
    .fetch_optional(tx.conn())
    .await?;
    if claimed.is_none() {
        let role: i64 = sqlx::query("SELECT role FROM key_roles WHERE key = $1")
            .bind(d.device.0.to_vec())
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        return Ok(if role == ROLE_OPERATOR {
            Registration::DeviceKeyIsOperator
        } else {
            Registration::DeviceKeyTaken
        });
    }
    sqlx::query("INSERT INTO key_roles (key, role) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(d.operator.0.to_vec())
        .bind(ROLE_OPERATOR)
        .execute(tx.conn())
        .await?;
    let role: i64 = sqlx::query("SELECT role FROM key_roles WHERE key = $1")
        .bind(d.operator.0.to_vec())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if role != ROLE_OPERATOR {
        return Ok(Registration::OperatorKeyIsDevice);
    }
    if !insert_device(tx.conn(), d).await? {
        return Err(StoreError::Corrupt(format!(
            "device {} is in the devices table but not in key_roles",
            d.device
        )));
    }
    Ok(Registration::Registered)
}

fn device_from_row(r: &AnyRow) -> Result<DeviceRow> {
    Ok(DeviceRow {
        device: key_from_row(r.try_get(0)?)?,
        operator: key_from_row(r.try_get(1)?)?,
        sector: u32::try_from(r.try_get::<i64, _>(2)?)
            .map_err(|_| StoreError::Corrupt("sector".into()))?,
        hardware_class: r.try_get(3)?,
        firmware_version: r.try_get(4)?,
        lat_micro: r.try_get(5)?,
        lon_micro: r.try_get(6)?,
        h3_cell: r.try_get(7)?,
        certificate: r.try_get(8)?,
        registered_ms: r.try_get(9)?,
        revoked_ms: r.try_get(10)?,
        replaced_by: r
            .try_get::<Option<Vec<u8>>, _>(11)?
            .map(key_from_row)
            .transpose()?,
        last_seq: r
            .try_get::<Option<i64>, _>(12)?
            .map(|v| u64_from_row(v, "seq"))
            .transpose()?,
    })
}

/// One accepted report: raw signed bytes plus the columns the close groups by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRow {
    pub device: PublicKey,
    pub seq: u64,
    pub epoch: EpochIndex,
    pub kind: u32,
    pub timestamp_ms: i64,
    /// When the coordinator received it (its own clock).
    pub received_ms: i64,
    pub raw: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryRow {
    pub device: PublicKey,
    pub timestamp_ms: i64,
    pub uptime_s: u64,
    pub temperature_centi_c: i64,
    pub firmware_version: String,
    pub power_mw: u64,
}

/// A rejected message from a registered device whose signature verified,
/// counted per epoch and reason. Unverified input is never stored: a claimed
/// signer proves nothing, so storing under it would let anyone grow the
/// database and plant rejections on someone else's device.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectionRow {
    pub epoch: EpochIndex,
    pub reason: String,
    pub device: PublicKey,
}

/// A report to append, with the telemetry it carries (stored only if the
/// report is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReport {
    pub row: ReportRow,
    pub telemetry: Option<TelemetryRow>,
    /// The work order this report answers, if its kind is an answer kind:
    /// the append stores it only if the order is the device's, of this kind,
    /// still open and not past its deadline (`received_ms ≤ deadline_ms`).
    pub answers: Option<[u8; 32]>,
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

/// A stored report of a kind some verifier reads, for the close.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredReport {
    pub device: PublicKey,
    pub seq: u64,
    pub kind: u32,
    pub timestamp_ms: i64,
    pub received_ms: i64,
    /// The signed bytes exactly as received.
    pub raw: Vec<u8>,
}

/// A work order that fell due in an epoch, with its answering report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueWork {
    pub work: WorkRow,
    pub answer: Option<StoredReport>,
}

/// The admission limits the append transaction enforces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendRules {
    pub max_reports_per_device_per_epoch: u32,
    /// (kind, most reports of that kind per device and epoch), sorted by
    /// kind; kinds not listed are bounded by the total alone.
    pub kind_limits: Vec<(u32, u32)>,
}

/// Why a report in an append was not stored: the committed state ruled it
/// out, whatever the caller's cache believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStored {
    /// Its sequence number is not above the device's stored high-water mark
    /// (a resend, a replay, or a report another replica already took).
    Duplicate,
    /// Its epoch closed before the append committed.
    EpochClosed,
    /// The signer is not a registered device.
    UnknownDevice,
    /// The device key is revoked.
    Revoked,
    /// The device reached its per-epoch report limit.
    RateLimited,
    /// The answered work id names no open order of this device and kind
    /// (never issued, someone else's, or answered already).
    UnknownWork,
    /// The answer arrived after the order's deadline.
    WorkExpired,
}

/// A device's committed admission state after an append: what a cache in
/// front of the store may hold (it can only be behind this, never ahead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAdmission {
    pub device: PublicKey,
    pub revoked: bool,
    pub last_seq: Option<u64>,
    /// Reports stored per open epoch.
    pub counts: BTreeMap<EpochIndex, u32>,
}

/// What an append did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// Index for index with the input: `None` when stored.
    pub verdicts: Vec<Option<NotStored>>,
    /// Every registered device of the batch, by key.
    pub devices: Vec<DeviceAdmission>,
}

/// Every integer a report row carries must fit the store's i64 columns; a
/// caller that skipped admission gets an error here, not a wrap or a panic.
fn check_report_range(r: &ReportRow) -> Result<()> {
    to_i64(r.seq)?;
    to_i64(r.epoch)?;
    Ok(())
}

/// `n` placeholders separated by commas, numbered from `offset + 1` on
/// PostgreSQL, anonymous on SQLite (see [`crate::values_sql`]).
fn placeholders(n: usize, offset: usize, anonymous: bool) -> String {
    let mut s = String::with_capacity(n * 6);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        if anonymous {
            s.push('?');
        } else {
            s.push('$');
            s.push_str(&(offset + i + 1).to_string());
        }
    }
    s
}

async fn count_rejections_in(tx: &mut WriteTx, rejections: &[RejectionRow]) -> Result<()> {
    let mut counts: BTreeMap<&RejectionRow, i64> = BTreeMap::new();
    for r in rejections {
        *counts.entry(r).or_default() += 1;
    }
    let rows: Vec<Vec<Val>> = counts
        .iter()
        .map(|(r, n)| {
            vec![
                r.epoch.into(),
                r.reason.as_str().into(),
                (&r.device).into(),
                (*n).into(),
            ]
        })
        .collect();
    insert_many(
        tx.conn(),
        "INSERT INTO rejections (epoch, reason, device, count)",
        "ON CONFLICT (epoch, reason, device) DO UPDATE SET count = rejections.count + excluded.count",
        4,
        &rows,
    )
    .await?;
    Ok(())
}

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectorTotalRow {
    pub sector: u32,
    pub emission: u64,
    pub distributed: u64,
    pub devices: u64,
    pub rewarded: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewardLineRow {
    pub device: PublicKey,
    pub operator: PublicKey,
    pub sector: u32,
    pub score_ppm: u32,
    pub weight: u64,
    pub reward: u64,
    pub fees: u64,
    /// Comma-separated reason codes.
    pub reasons: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntryRow {
    pub debit: String,
    pub credit: String,
    pub amount: u64,
    pub kind: String,
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

impl Store {
    // ---------------------------------------------------------------- devices

    /// Registers a device, recording both keys' roles: a key is a device key
    /// or an operator key, never both, or a stolen device could move funds
    /// and an operator key could sign heartbeats. The unique key table makes
    /// that hold across replicas racing on the same keys.
    pub async fn insert_device(&self, d: &DeviceRow) -> Result<Registration> {
        crate::retrying!(self.insert_device_once(d))
    }

    async fn insert_device_once(&self, d: &DeviceRow) -> Result<Registration> {
        let mut tx = self.write_tx().await?;
        let r = register_in(&mut tx, d).await?;
        if r == Registration::Registered {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(r)
    }

    /// Registers `new` and revokes `old` in one transaction: either both
    /// happen or neither, so a crash can never leave the old key active beside
    /// its successor. Changes nothing unless the answer is `Registered`;
    /// `OldKeyInactive` when `old` is revoked or unknown.
    pub async fn rotate_device(
        &self,
        old: &PublicKey,
        new: &DeviceRow,
        at_ms: i64,
    ) -> Result<Registration> {
        crate::retrying!(self.rotate_device_once(old, new, at_ms))
    }

    async fn rotate_device_once(
        &self,
        old: &PublicKey,
        new: &DeviceRow,
        at_ms: i64,
    ) -> Result<Registration> {
        {
            let mut tx = self.write_tx().await?;
            let r = register_in(&mut tx, new).await?;
            if r != Registration::Registered {
                tx.rollback().await?;
                return Ok(r);
            }
            let revoked = sqlx::query("UPDATE devices SET revoked_ms = $1, replaced_by = $2 WHERE device = $3 AND revoked_ms IS NULL")
                .bind(at_ms)
                .bind(new.device.0.to_vec())
                .bind(old.0.to_vec())
                .execute(tx.conn())
                .await?
                .rows_affected();
            if revoked != 1 {
                tx.rollback().await?;
                return Ok(Registration::OldKeyInactive);
            }
            tx.commit().await?;
            Ok(Registration::Registered)
        }
    }

    pub async fn device(&self, device: &PublicKey) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE device = $1"
        ))
        .bind(device.0.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    /// All devices, or one operator's, ordered by device key.
    pub async fn devices(&self, operator: Option<&PublicKey>) -> Result<Vec<DeviceRow>> {
        let rows = match operator {
            Some(op) => {
                sqlx::query(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE operator = $1 ORDER BY device"
                ))
                .bind(op.0.to_vec())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY device"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(device_from_row).collect()
    }

    /// Marks a device revoked at `at_ms` (and, for a rotation, its successor).
    /// Returns false if it was already revoked or does not exist.
    pub async fn revoke_device(
        &self,
        device: &PublicKey,
        at_ms: i64,
        replaced_by: Option<&PublicKey>,
    ) -> Result<bool> {
        crate::retrying!(self.revoke_device_once(device, at_ms, replaced_by))
    }

    async fn revoke_device_once(
        &self,
        device: &PublicKey,
        at_ms: i64,
        replaced_by: Option<&PublicKey>,
    ) -> Result<bool> {
        {
            let mut tx = self.write_tx().await?;
            let n = sqlx::query("UPDATE devices SET revoked_ms = $1, replaced_by = $2 WHERE device = $3 AND revoked_ms IS NULL")
                .bind(at_ms)
                .bind(replaced_by.map(|k| k.0.to_vec()))
                .bind(device.0.to_vec())
                .execute(tx.conn())
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(n == 1)
        }
    }

    // ---------------------------------------------------------------- reports

    /// Appends reports in one transaction (a group commit), deciding in that
    /// transaction, from what is committed, whether each is admissible:
    /// the device is registered and not revoked, its sequence number is above
    /// the stored high-water mark (and rising within the batch), its epoch is
    /// open, and the device is under `rules`' per-epoch limit. The database,
    /// not a process's memory, is the authority, so several replicas (or one
    /// restarted) can never admit what another has already ruled out; their
    /// caches may be behind, never wrong.
    ///
    /// The result says, index for index, what was not stored and why, plus
    /// the stored admission state of every device touched, for caches.
    /// Telemetry of stored reports and the given (verified) rejection counts
    /// land in the same transaction. Nothing is acknowledged unless this
    /// returns `Ok`, and then it is committed (fsynced on SQLite).
    pub async fn append_reports(
        &self,
        reports: &[NewReport],
        rejections: &[RejectionRow],
        rules: AppendRules,
    ) -> Result<Appended> {
        if reports.is_empty() && rejections.is_empty() {
            return Ok(Appended::default());
        }
        for r in reports {
            check_report_range(&r.row)?;
        }
        crate::retrying!(self.append_once(reports, rejections, &rules))
    }

    async fn append_once(
        &self,
        reports: &[NewReport],
        rejections: &[RejectionRow],
        rules: &AppendRules,
    ) -> Result<Appended> {
        let mut tx = self.write_tx().await?;
        let anonymous = self.backend == Backend::Sqlite;
        let epochs: BTreeSet<EpochIndex> = reports.iter().map(|r| r.row.epoch).collect();
        if self.backend == Backend::Postgres {
            // Shared lock per epoch, in ascending order: closes take it
            // exclusively, so no report can land in an epoch while (or after)
            // it is being closed.
            for e in &epochs {
                sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
                    .bind(epoch_lock_key(*e))
                    .execute(tx.conn())
                    .await?;
            }
        }
        tx.step("append:locked")?;
        let mut closed = HashSet::new();
        for e in &epochs {
            if sqlx::query("SELECT 1 FROM epochs WHERE epoch = $1")
                .bind(to_i64(*e)?)
                .fetch_optional(tx.conn())
                .await?
                .is_some()
            {
                closed.insert(*e);
            }
        }

        // The committed admission state of every device in the batch. On
        // PostgreSQL the rows are locked in key order, so concurrent appends
        // from several replicas queue per device instead of deadlocking.
        let devices: BTreeSet<PublicKey> = reports.iter().map(|r| r.row.device).collect();
        let devices: Vec<PublicKey> = devices.into_iter().collect();
        let min_epoch = epochs.first().copied().unwrap_or(0);
        let mut state: BTreeMap<PublicKey, DeviceAdmission> = BTreeMap::new();
        for chunk in devices.chunks(2000) {
            let sql = format!(
                "SELECT device, revoked_ms, last_seq FROM devices WHERE device IN ({}) ORDER BY device{}",
                placeholders(chunk.len(), 0, anonymous),
                if anonymous { "" } else { " FOR UPDATE" }
            );
            let mut q = sqlx::query(&sql);
            for d in chunk {
                q = q.bind(d.0.to_vec());
            }
            for r in q.fetch_all(tx.conn()).await? {
                let device = key_from_row(r.try_get(0)?)?;
                state.insert(
                    device,
                    DeviceAdmission {
                        device,
                        revoked: r.try_get::<Option<i64>, _>(1)?.is_some(),
                        last_seq: r
                            .try_get::<Option<i64>, _>(2)?
                            .map(|v| u64_from_row(v, "seq"))
                            .transpose()?,
                        counts: BTreeMap::new(),
                    },
                );
            }
            let sql = format!(
                "SELECT device, epoch, count FROM rate_counts WHERE epoch >= {} AND device IN ({})",
                if anonymous { "?" } else { "$1" },
                placeholders(chunk.len(), 1, anonymous),
            );
            let mut q = sqlx::query(&sql).bind(to_i64(min_epoch)?);
            for d in chunk {
                q = q.bind(d.0.to_vec());
            }
            for r in q.fetch_all(tx.conn()).await? {
                let device = key_from_row(r.try_get(0)?)?;
                let epoch = u64_from_row(r.try_get(1)?, "epoch")?;
                let count = u32::try_from(r.try_get::<i64, _>(2)?)
                    .map_err(|_| StoreError::Corrupt("rate count".into()))?;
                if let Some(s) = state.get_mut(&device) {
                    s.counts.insert(epoch, count);
                }
            }
        }
        tx.step("append:read-state")?;

        // Per-kind counts, for the kinds the rules limit.
        let mut kind_counts: BTreeMap<(PublicKey, EpochIndex, u32), u32> = BTreeMap::new();
        if !rules.kind_limits.is_empty() {
            for chunk in devices.chunks(2000) {
                let sql = format!(
                    "SELECT device, epoch, kind, count FROM kind_counts WHERE epoch >= {} AND device IN ({})",
                    if anonymous { "?" } else { "$1" },
                    placeholders(chunk.len(), 1, anonymous),
                );
                let mut q = sqlx::query(&sql).bind(to_i64(min_epoch)?);
                for d in chunk {
                    q = q.bind(d.0.to_vec());
                }
                for r in q.fetch_all(tx.conn()).await? {
                    let device = key_from_row(r.try_get(0)?)?;
                    let epoch = u64_from_row(r.try_get(1)?, "epoch")?;
                    let kind = u32::try_from(r.try_get::<i64, _>(2)?)
                        .map_err(|_| StoreError::Corrupt("kind count kind".into()))?;
                    let count = u32::try_from(r.try_get::<i64, _>(3)?)
                        .map_err(|_| StoreError::Corrupt("kind count".into()))?;
                    kind_counts.insert((device, epoch, kind), count);
                }
            }
        }
        let kind_limit = |kind: u32| {
            rules
                .kind_limits
                .binary_search_by_key(&kind, |(k, _)| *k)
                .ok()
                .map(|i| rules.kind_limits[i].1)
        };

        // The work orders answered in the batch, locked on PostgreSQL.
        let mut answered: Vec<[u8; 32]> = reports.iter().filter_map(|r| r.answers).collect();
        answered.sort_unstable();
        answered.dedup();
        let mut orders: BTreeMap<[u8; 32], WorkRow> = BTreeMap::new();
        for chunk in answered.chunks(2000) {
            let sql = format!(
                "SELECT {} FROM work WHERE id IN ({}) ORDER BY id{}",
                crate::work::WORK_COLUMNS,
                placeholders(chunk.len(), 0, anonymous),
                if anonymous { "" } else { " FOR UPDATE" }
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.to_vec());
            }
            for r in q.fetch_all(tx.conn()).await? {
                let w = crate::work::work_from_row(&r)?;
                orders.insert(w.id, w);
            }
        }

        // The verdicts, in batch order.
        let mut verdicts: Vec<Option<NotStored>> = vec![None; reports.len()];
        let mut accepted: Vec<usize> = Vec::with_capacity(reports.len());
        for (i, r) in reports.iter().enumerate() {
            let r = &r.row;
            let Some(s) = state.get_mut(&r.device) else {
                verdicts[i] = Some(NotStored::UnknownDevice);
                continue;
            };
            let count = s.counts.get(&r.epoch).copied().unwrap_or(0);
            let limit = kind_limit(r.kind);
            let of_kind = kind_counts
                .get(&(r.device, r.epoch, r.kind))
                .copied()
                .unwrap_or(0);
            verdicts[i] = if s.revoked {
                Some(NotStored::Revoked)
            } else if s.last_seq.is_some_and(|last| r.seq <= last) {
                Some(NotStored::Duplicate)
            } else if closed.contains(&r.epoch) {
                Some(NotStored::EpochClosed)
            } else if count >= rules.max_reports_per_device_per_epoch
                || limit.is_some_and(|l| of_kind >= l)
            {
                Some(NotStored::RateLimited)
            } else if let Some(id) = &reports[i].answers {
                match orders.get_mut(id) {
                    Some(w)
                        if w.device == r.device
                            && w.answer_kind == r.kind
                            && w.answer_seq.is_none() =>
                    {
                        if r.received_ms > w.deadline_ms {
                            Some(NotStored::WorkExpired)
                        } else {
                            w.answer_seq = Some(r.seq);
                            None
                        }
                    }
                    _ => Some(NotStored::UnknownWork),
                }
            } else {
                None
            };
            if verdicts[i].is_none() {
                s.last_seq = Some(r.seq);
                s.counts.insert(r.epoch, count + 1);
                if limit.is_some() {
                    kind_counts.insert((r.device, r.epoch, r.kind), of_kind + 1);
                }
                accepted.push(i);
            }
        }

        // Insert in canonical (device, seq) order: two replicas inserting
        // overlapping rows in different orders would otherwise deadlock.
        let mut order = accepted.clone();
        order.sort_by_key(|&i| (reports[i].row.device, reports[i].row.seq));
        let rows: Vec<Vec<Val>> = order
            .iter()
            .map(|&i| {
                let r = &reports[i].row;
                vec![
                    (&r.device).into(),
                    r.seq.into(),
                    r.epoch.into(),
                    r.kind.into(),
                    r.timestamp_ms.into(),
                    r.received_ms.into(),
                    Val::Blob(r.raw.clone()),
                ]
            })
            .collect();
        let inserted = insert_many(
            tx.conn(),
            "INSERT INTO reports (device, seq, epoch, kind, timestamp_ms, received_ms, raw)",
            "",
            7,
            &rows,
        )
        .await?;
        if inserted != rows.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "{} of {} admitted reports were stored",
                inserted,
                rows.len()
            )));
        }
        tx.step("append:reports")?;

        // High-water marks and rate counts, one statement each for all devices:
        // per-device statements cost a round trip each and dominated the append.
        // VALUES columns are column1, column2 in both SQLite and PostgreSQL.
        let touched: BTreeSet<PublicKey> =
            accepted.iter().map(|&i| reports[i].row.device).collect();
        let seq_rows: Vec<(PublicKey, u64)> = touched
            .iter()
            .filter_map(|d| state.get(d).and_then(|s| s.last_seq.map(|q| (*d, q))))
            .collect();
        for chunk in seq_rows.chunks(4000) {
            let values = crate::values_sql("", "", 2, chunk.len(), anonymous);
            let sql = format!(
                "UPDATE devices SET last_seq = v.column2 FROM ({}) AS v \
                 WHERE devices.device = v.column1",
                values.trim()
            );
            let mut q = sqlx::query(&sql);
            for (device, seq) in chunk {
                q = q.bind(device.0.to_vec()).bind(to_i64(*seq)?);
            }
            q.execute(tx.conn()).await?;
        }
        tx.step("append:seq")?;
        let mut epoch_touched: BTreeSet<(PublicKey, EpochIndex)> = BTreeSet::new();
        for &i in &accepted {
            epoch_touched.insert((reports[i].row.device, reports[i].row.epoch));
        }
        let count_rows: Vec<Vec<Val>> = epoch_touched
            .iter()
            .map(|(d, e)| {
                let n = state[d].counts[e];
                vec![d.into(), (*e).into(), n.into()]
            })
            .collect();
        insert_many(
            tx.conn(),
            "INSERT INTO rate_counts (device, epoch, count)",
            "ON CONFLICT (device, epoch) DO UPDATE SET count = excluded.count",
            3,
            &count_rows,
        )
        .await?;
        tx.step("append:rate-counts")?;
        if !rules.kind_limits.is_empty() {
            let mut touched: BTreeSet<(PublicKey, EpochIndex, u32)> = BTreeSet::new();
            for &i in &accepted {
                let r = &reports[i].row;
                if kind_limit(r.kind).is_some() {
                    touched.insert((r.device, r.epoch, r.kind));
                }
            }
            let rows: Vec<Vec<Val>> = touched
                .iter()
                .map(|k| vec![(&k.0).into(), k.1.into(), k.2.into(), kind_counts[k].into()])
                .collect();
            insert_many(
                tx.conn(),
                "INSERT INTO kind_counts (device, epoch, kind, count)",
                "ON CONFLICT (device, epoch, kind) DO UPDATE SET count = excluded.count",
                4,
                &rows,
            )
            .await?;
        }
        for &i in &accepted {
            if let Some(id) = &reports[i].answers {
                sqlx::query("UPDATE work SET answer_seq = $1 WHERE id = $2")
                    .bind(to_i64(reports[i].row.seq)?)
                    .bind(id.to_vec())
                    .execute(tx.conn())
                    .await?;
            }
        }
        tx.step("append:work")?;

        let telemetry_rows: Vec<Vec<Val>> = accepted
            .iter()
            .filter_map(|&i| reports[i].telemetry.as_ref())
            .map(|t| {
                vec![
                    (&t.device).into(),
                    t.timestamp_ms.into(),
                    t.uptime_s.into(),
                    t.temperature_centi_c.into(),
                    t.firmware_version.as_str().into(),
                    t.power_mw.into(),
                ]
            })
            .collect();
        insert_many(
            tx.conn(),
            "INSERT INTO telemetry (device, timestamp_ms, uptime_s, temperature_centi_c, firmware_version, power_mw)",
            "ON CONFLICT (device) DO UPDATE SET timestamp_ms = excluded.timestamp_ms, uptime_s = excluded.uptime_s, \
             temperature_centi_c = excluded.temperature_centi_c, firmware_version = excluded.firmware_version, power_mw = excluded.power_mw \
             WHERE excluded.timestamp_ms >= telemetry.timestamp_ms",
            6,
            &dedup_latest(telemetry_rows),
        )
        .await?;
        tx.step("append:telemetry")?;
        count_rejections_in(&mut tx, rejections).await?;
        tx.step("append:rejections")?;
        tx.commit().await?;
        Ok(Appended {
            verdicts,
            devices: state.into_values().collect(),
        })
    }

    async fn count_rejections_once(&self, rejections: &[RejectionRow]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        count_rejections_in(&mut tx, rejections).await?;
        tx.commit().await
    }

    /// Counts rejections of verified messages by epoch, reason and device.
    pub async fn count_rejections(&self, rejections: &[RejectionRow]) -> Result<()> {
        if rejections.is_empty() {
            return Ok(());
        }
        crate::retrying!(self.count_rejections_once(rejections))
    }

    /// Rejection counts by reason code, over all epochs (or one device).
    pub async fn rejection_counts(
        &self,
        device: Option<&PublicKey>,
    ) -> Result<BTreeMap<String, u64>> {
        let rows = match device {
            Some(d) => {
                sqlx::query("SELECT reason, CAST(SUM(count) AS BIGINT) FROM rejections WHERE device = $1 GROUP BY reason")
                    .bind(d.0.to_vec())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query("SELECT reason, CAST(SUM(count) AS BIGINT) FROM rejections GROUP BY reason").fetch_all(&self.pool).await?,
        };
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>(0)?,
                    u64_from_row(r.try_get(1)?, "count")?,
                ))
            })
            .collect()
    }

    pub async fn report_count(&self, epoch: EpochIndex) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM reports WHERE epoch = $1")
            .bind(to_i64(epoch)?)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        u64_from_row(n, "count")
    }

    /// Raw signed reports of one device, in sequence order (for re-verification).
    pub async fn device_reports(
        &self,
        device: &PublicKey,
        epoch: EpochIndex,
    ) -> Result<Vec<ReportRow>> {
        let rows = sqlx::query("SELECT device, seq, epoch, kind, timestamp_ms, received_ms, raw FROM reports WHERE device = $1 AND epoch = $2 ORDER BY seq")
            .bind(device.0.to_vec())
            .bind(to_i64(epoch)?)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(report_from_row).collect()
    }

    pub async fn telemetry(&self, device: &PublicKey) -> Result<Option<TelemetryRow>> {
        let r = sqlx::query("SELECT device, timestamp_ms, uptime_s, temperature_centi_c, firmware_version, power_mw FROM telemetry WHERE device = $1")
            .bind(device.0.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| {
            Ok(TelemetryRow {
                device: key_from_row(r.try_get(0)?)?,
                timestamp_ms: r.try_get(1)?,
                uptime_s: u64_from_row(r.try_get(2)?, "uptime")?,
                temperature_centi_c: r.try_get(3)?,
                firmware_version: r.try_get(4)?,
                power_mw: u64_from_row(r.try_get(5)?, "power")?,
            })
        })
        .transpose()
    }

    // ---------------------------------------------------------------- epochs

    pub async fn epoch(&self, epoch: EpochIndex) -> Result<Option<EpochRow>> {
        let r = sqlx::query(
            "SELECT epoch, policy_id, closed_ms, emission, minted, fees, burned, devices, sheet_hash, claim_root FROM epochs WHERE epoch = $1",
        )
        .bind(to_i64(epoch)?)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(epoch_from_row).transpose()
    }

    pub async fn epochs(&self) -> Result<Vec<EpochRow>> {
        let rows = sqlx::query(
            "SELECT epoch, policy_id, closed_ms, emission, minted, fees, burned, devices, sheet_hash, claim_root FROM epochs ORDER BY epoch",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(epoch_from_row).collect()
    }

    pub async fn last_closed_epoch(&self) -> Result<Option<EpochIndex>> {
        let r: Option<i64> = sqlx::query("SELECT MAX(epoch) FROM epochs")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        r.map(|v| u64_from_row(v, "epoch")).transpose()
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
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(epoch_lock_key(epoch))
                .execute(tx.conn())
                .await?;
        }
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

    pub async fn sector_totals(&self, epoch: EpochIndex) -> Result<Vec<SectorTotalRow>> {
        let rows = sqlx::query("SELECT sector, emission, distributed, devices, rewarded FROM sector_totals WHERE epoch = $1 ORDER BY sector")
            .bind(to_i64(epoch)?)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SectorTotalRow {
                    sector: r.try_get::<i64, _>(0)? as u32,
                    emission: u64_from_row(r.try_get(1)?, "emission")?,
                    distributed: u64_from_row(r.try_get(2)?, "distributed")?,
                    devices: u64_from_row(r.try_get(3)?, "devices")?,
                    rewarded: u64_from_row(r.try_get(4)?, "rewarded")?,
                })
            })
            .collect()
    }

    /// The stored reward sheet lines of an epoch, ordered by device.
    pub async fn reward_lines(&self, epoch: EpochIndex) -> Result<Vec<RewardLineRow>> {
        let rows = sqlx::query(
            "SELECT device, operator, sector, score_ppm, weight, reward, fees, reasons FROM reward_lines WHERE epoch = $1 ORDER BY device, sector",
        )
        .bind(to_i64(epoch)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(line_from_row).collect()
    }

    /// Reward lines of one device across epochs: (epoch, line).
    pub async fn device_rewards(
        &self,
        device: &PublicKey,
    ) -> Result<Vec<(EpochIndex, RewardLineRow)>> {
        let rows = sqlx::query(
            "SELECT device, operator, sector, score_ppm, weight, reward, fees, reasons, epoch FROM reward_lines WHERE device = $1 ORDER BY epoch, sector",
        )
        .bind(device.0.to_vec())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((u64_from_row(r.try_get(8)?, "epoch")?, line_from_row(r)?)))
            .collect()
    }

    /// Every account's cumulative claimable amount as of `epoch`: the leaves of
    /// that epoch's claim tree, ordered by account.
    pub async fn claims_as_of(&self, epoch: EpochIndex) -> Result<Vec<(PublicKey, u64)>> {
        claims_as_of(&mut *self.pool.acquire().await?, epoch).await
    }

    pub async fn ledger_entries(&self, epoch: EpochIndex) -> Result<Vec<LedgerEntryRow>> {
        let rows = sqlx::query(
            "SELECT debit, credit, amount, kind FROM ledger_entries WHERE epoch = $1 ORDER BY id",
        )
        .bind(to_i64(epoch)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// All ledger entries in order, for replaying the ledger from scratch.
    pub async fn all_ledger_entries(&self) -> Result<Vec<LedgerEntryRow>> {
        let rows =
            sqlx::query("SELECT debit, credit, amount, kind FROM ledger_entries ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(entry_from_row).collect()
    }

    pub async fn balance(&self, account: &str) -> Result<i64> {
        let r = sqlx::query("SELECT balance FROM balances WHERE account = $1")
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.get::<i64, _>(0)).unwrap_or(0))
    }

    pub async fn balances(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT account, balance FROM balances ORDER BY account")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn sector_state(&self, sector: &str, epoch: EpochIndex) -> Result<Option<Vec<u8>>> {
        let r = sqlx::query("SELECT state FROM sector_state WHERE sector = $1 AND epoch = $2")
            .bind(sector)
            .bind(to_i64(epoch)?)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.get::<Vec<u8>, _>(0)))
    }

    pub async fn put_policy(&self, policy_id: &str, body: &[u8]) -> Result<()> {
        self.execute_write(
            sqlx::query("INSERT INTO policies (policy_id, body) VALUES ($1, $2) ON CONFLICT (policy_id) DO NOTHING")
                .bind(policy_id)
                .bind(body.to_vec()),
        )
        .await?;
        Ok(())
    }

    pub async fn policy(&self, policy_id: &str) -> Result<Option<Vec<u8>>> {
        let r = sqlx::query("SELECT body FROM policies WHERE policy_id = $1")
            .bind(policy_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.get::<Vec<u8>, _>(0)))
    }
}

/// Columns: device, seq, epoch, kind, timestamp_ms, received_ms, raw.
pub(crate) fn report_from_row(r: &AnyRow) -> Result<ReportRow> {
    Ok(ReportRow {
        device: key_from_row(r.try_get(0)?)?,
        seq: u64_from_row(r.try_get(1)?, "seq")?,
        epoch: u64_from_row(r.try_get(2)?, "epoch")?,
        kind: u32::try_from(r.try_get::<i64, _>(3)?)
            .map_err(|_| StoreError::Corrupt("report kind".into()))?,
        timestamp_ms: r.try_get(4)?,
        received_ms: r.try_get(5)?,
        raw: r.try_get(6)?,
    })
}

fn entry_from_row(r: &AnyRow) -> Result<LedgerEntryRow> {
    Ok(LedgerEntryRow {
        debit: r.try_get(0)?,
        credit: r.try_get(1)?,
        amount: u64_from_row(r.try_get(2)?, "amount")?,
        kind: r.try_get(3)?,
    })
}

fn line_from_row(r: &AnyRow) -> Result<RewardLineRow> {
    Ok(RewardLineRow {
        device: key_from_row(r.try_get(0)?)?,
        operator: key_from_row(r.try_get(1)?)?,
        sector: r.try_get::<i64, _>(2)? as u32,
        score_ppm: u32::try_from(r.try_get::<i64, _>(3)?)
            .map_err(|_| StoreError::Corrupt("score".into()))?,
        weight: u64_from_row(r.try_get(4)?, "weight")?,
        reward: u64_from_row(r.try_get(5)?, "reward")?,
        fees: u64_from_row(r.try_get(6)?, "fees")?,
        reasons: r.try_get(7)?,
    })
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

async fn claims_as_of(
    conn: &mut sqlx::AnyConnection,
    epoch: EpochIndex,
) -> Result<Vec<(PublicKey, u64)>> {
    // Only accounts that changed are written each epoch; the leaves as of an
    // epoch are each account's latest row at or before it.
    let rows = sqlx::query(
        "SELECT c.account, c.cumulative FROM claims c \
         JOIN (SELECT account, MAX(epoch) AS e FROM claims WHERE epoch <= $1 GROUP BY account) m \
         ON c.account = m.account AND c.epoch = m.e ORDER BY c.account",
    )
    .bind(to_i64(epoch)?)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                key_from_row(r.try_get(0)?)?,
                u64_from_row(r.try_get(1)?, "cumulative")?,
            ))
        })
        .collect()
}

/// Keeps the last row per device key (first column), so one multi-row upsert
/// never touches the same key twice (PostgreSQL rejects that).
fn dedup_latest(rows: Vec<Vec<Val>>) -> Vec<Vec<Val>> {
    let mut by_key: BTreeMap<Vec<u8>, Vec<Val>> = BTreeMap::new();
    for row in rows {
        let Val::Blob(k) = &row[0] else {
            unreachable!("first telemetry column is the device key")
        };
        let ts = |r: &Vec<Val>| if let Val::Int(t) = r[1] { t } else { i64::MIN };
        match by_key.get(k) {
            Some(prev) if ts(prev) > ts(&row) => {}
            _ => {
                by_key.insert(k.clone(), row);
            }
        }
    }
    by_key.into_values().collect()
}

/// What to read for an epoch's reward computation.
#[derive(Clone, Debug)]
pub struct EpochInputQuery {
    pub epoch: EpochIndex,
    /// Devices registered before this instant (the epoch's end) take part.
    pub registered_before_ms: i64,
    /// The report kind counted per device (heartbeats), and the most a
    /// report may have arrived after its own timestamp to count.
    pub report_kind: u32,
    pub max_delay_ms: i64,
    /// The kinds whose reports are read raw, for the sector verifiers.
    pub kinds: Vec<u32>,
    /// Whose carried-over state to read from the previous epoch.
    pub states: Vec<String>,
}

/// Everything an epoch's reward computation reads from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochInputRows {
    /// Ordered by key.
    pub devices: Vec<DeviceRow>,
    /// Qualifying reports per device, ordered by key.
    pub report_counts: Vec<(PublicKey, u64)>,
    /// The epoch's reports of the query's `kinds`, in (device, seq) order.
    pub reports: Vec<StoredReport>,
    /// Each named verifier's (state version, state) after the previous
    /// epoch; absent at epoch 0 or when it stored none.
    pub prior_states: BTreeMap<String, (u32, Vec<u8>)>,
    /// The claim leaves as of the previous epoch.
    pub previous_claims: Vec<(PublicKey, u64)>,
    /// The previous epoch's claim root, if it was closed: the entropy's seed.
    pub previous_root: Option<[u8; 32]>,
    /// Work orders whose deadline falls in the epoch, with their answers.
    pub due_work: Vec<DueWork>,
    /// Consumers' orders the close may charge, in (consumer, order) order,
    /// each with what earlier closes charged.
    pub orders: Vec<crate::OrderRow>,
}

/// The one loader of an epoch's inputs: the close calls it inside its
/// transaction, `audit-epoch` on a read-only store, so the two can never
/// read different things (they used to be written twice, in lockstep).
async fn load_epoch_inputs(
    conn: &mut sqlx::AnyConnection,
    q: &EpochInputQuery,
) -> Result<EpochInputRows> {
    let rows = sqlx::query(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE registered_ms < $1 ORDER BY device"
    ))
    .bind(q.registered_before_ms)
    .fetch_all(&mut *conn)
    .await?;
    let devices = rows.iter().map(device_from_row).collect::<Result<_>>()?;
    let report_counts = report_counts(&mut *conn, q.epoch, q.report_kind, q.max_delay_ms).await?;
    let reports = crate::work::reports_of_kinds(&mut *conn, q.epoch, &q.kinds).await?;
    let mut prior_states = BTreeMap::new();
    let mut previous_claims = Vec::new();
    let mut previous_root = None;
    if let Some(prev) = q.epoch.checked_sub(1) {
        for name in &q.states {
            if let Some(r) = sqlx::query(
                "SELECT version, state FROM sector_state WHERE sector = $1 AND epoch = $2",
            )
            .bind(name.as_str())
            .bind(to_i64(prev)?)
            .fetch_optional(&mut *conn)
            .await?
            {
                let version = u32::try_from(r.try_get::<i64, _>(0)?)
                    .map_err(|_| StoreError::Corrupt("sector state version".into()))?;
                prior_states.insert(name.clone(), (version, r.try_get::<Vec<u8>, _>(1)?));
            }
        }
        previous_claims = claims_as_of(&mut *conn, prev).await?;
        if let Some(r) = sqlx::query("SELECT claim_root FROM epochs WHERE epoch = $1")
            .bind(to_i64(prev)?)
            .fetch_optional(&mut *conn)
            .await?
        {
            let root: Vec<u8> = r.try_get(0)?;
            // A close in progress has an empty root until it commits; the
            // loader only runs for the next epoch once that one is closed.
            previous_root = Some(
                root.try_into()
                    .map_err(|_| StoreError::Corrupt("claim root is not 32 bytes".into()))?,
            );
        }
    }
    let due_work = crate::work::due_work(&mut *conn, q.epoch).await?;
    let orders = crate::escrow::open_orders(&mut *conn, q.epoch).await?;
    Ok(EpochInputRows {
        orders,
        devices,
        report_counts,
        reports,
        prior_states,
        previous_claims,
        previous_root,
        due_work,
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

async fn report_counts(
    conn: &mut sqlx::AnyConnection,
    epoch: EpochIndex,
    kind: u32,
    max_delay_ms: i64,
) -> Result<Vec<(PublicKey, u64)>> {
    let rows = sqlx::query(
        "SELECT device, COUNT(*) FROM reports WHERE epoch = $1 AND kind = $2 AND received_ms - timestamp_ms <= $3 \
         GROUP BY device ORDER BY device",
    )
    .bind(to_i64(epoch)?)
    .bind(kind as i64)
    .bind(max_delay_ms)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                key_from_row(r.try_get(0)?)?,
                u64_from_row(r.try_get(1)?, "count")?,
            ))
        })
        .collect()
}

impl Store {
    /// Report counts per device for a closed or open epoch, outside a close
    /// (used by `audit-epoch` to recompute from stored inputs).
    pub async fn report_counts(
        &self,
        epoch: EpochIndex,
        kind: u32,
        max_delay_ms: i64,
    ) -> Result<Vec<(PublicKey, u64)>> {
        report_counts(&mut *self.pool.acquire().await?, epoch, kind, max_delay_ms).await
    }

    /// When the first device was registered: no epoch before it has anything to close.
    pub async fn first_registration_ms(&self) -> Result<Option<i64>> {
        Ok(sqlx::query("SELECT MIN(registered_ms) FROM devices")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// An epoch's inputs outside a close (for `audit-epoch`), through the
    /// same loader as the close.
    pub async fn epoch_inputs(&self, q: &EpochInputQuery) -> Result<EpochInputRows> {
        load_epoch_inputs(&mut *self.pool.acquire().await?, q).await
    }
}
