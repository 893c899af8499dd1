//! The append: reports admitted (or refused, with the reason) inside one
//! transaction, from the committed state, so replicas never disagree.

use crate::epochs::{EpochLock, lock_epoch};
use crate::rejections::count_rejections_in;
use crate::reports::REPORT_COLUMNS;
use crate::{
    Backend, RejectionRow, ReportRow, Result, Store, StoreError, TelemetryRow, Val, WorkRow,
    insert_many, is_sqlite, key_from_row, to_i64, u64_from_row,
};
use depin_core::{EpochIndex, PublicKey};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeMap, BTreeSet, HashSet};

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

/// The rows of `select` (`SELECT … FROM` a per-device, per-epoch counter
/// table) for `devices`, in epochs from `min_epoch` on.
async fn counters_since(
    conn: &mut AnyConnection,
    select: &str,
    min_epoch: EpochIndex,
    devices: &[PublicKey],
) -> Result<Vec<AnyRow>> {
    let anonymous = is_sqlite(conn);
    let sql = format!(
        "{select} WHERE epoch >= {} AND device IN ({})",
        if anonymous { "?" } else { "$1" },
        placeholders(devices.len(), 1, anonymous),
    );
    let mut q = sqlx::query(&sql).bind(to_i64(min_epoch)?);
    for d in devices {
        q = q.bind(d.0.to_vec());
    }
    Ok(q.fetch_all(conn).await?)
}

impl Store {
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
        // Shared lock per epoch, in ascending order: closes take it
        // exclusively, so no report can land in an epoch while (or after) it
        // is being closed.
        for e in &epochs {
            lock_epoch(tx.conn(), *e, EpochLock::Shared).await?;
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
            let sql = "SELECT device, epoch, count FROM rate_counts";
            for r in counters_since(tx.conn(), sql, min_epoch, chunk).await? {
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
                let sql = "SELECT device, epoch, kind, count FROM kind_counts";
                for r in counters_since(tx.conn(), sql, min_epoch, chunk).await? {
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
            &format!("INSERT INTO reports ({REPORT_COLUMNS})"),
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
