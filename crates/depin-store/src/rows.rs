//! Typed rows and the queries over them.

use crate::{
    Backend, Result, Store, StoreError, Val, insert_many, key_from_row, to_i64, u64_from_row,
};
use depin_core::{EpochIndex, PublicKey};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
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
            d.last_seq.map(to_i64).into(),
        ]],
    )
    .await?;
    Ok(n == 1)
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

/// A rejected message, counted per epoch and reason. `device` is the claimed
/// signer when one could be read, else all zeroes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectionRow {
    pub epoch: EpochIndex,
    pub reason: String,
    pub device: PublicKey,
}

/// Why a report in an append was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStored {
    /// (device, seq) already in the log: a resend or a replay.
    Duplicate,
    /// Its epoch closed before the append committed.
    EpochClosed,
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
    pub sector_state: Vec<(String, Vec<u8>)>,
}

/// Advisory-lock key namespace for epochs on PostgreSQL ("DEPI").
const EPOCH_LOCK_NAMESPACE: i64 = 0x4445_5049_0000_0000;

fn epoch_lock_key(epoch: EpochIndex) -> i64 {
    EPOCH_LOCK_NAMESPACE | (epoch as i64 & 0xFFFF_FFFF)
}

impl Store {
    // ---------------------------------------------------------------- devices

    /// Registers a device. Returns false when the key is already registered.
    pub async fn insert_device(&self, d: &DeviceRow) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        insert_device(&mut conn, d).await
    }

    /// Registers `new` and revokes `old` in one transaction: either both
    /// happen or neither, so a crash can never leave the old key active beside
    /// its successor. Returns false (and changes nothing) when `new` is
    /// already registered or `old` is no longer active.
    pub async fn rotate_device(
        &self,
        old: &PublicKey,
        new: &DeviceRow,
        at_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        if !insert_device(&mut tx, new).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let revoked = sqlx::query("UPDATE devices SET revoked_ms = $1, replaced_by = $2 WHERE device = $3 AND revoked_ms IS NULL")
            .bind(at_ms)
            .bind(new.device.0.to_vec())
            .bind(old.0.to_vec())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if revoked != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
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
        let q = sqlx::query("UPDATE devices SET revoked_ms = $1, replaced_by = $2 WHERE device = $3 AND revoked_ms IS NULL")
            .bind(at_ms)
            .bind(replaced_by.map(|k| k.0.to_vec()))
            .bind(device.0.to_vec());
        Ok(q.execute(&self.pool).await?.rows_affected() == 1)
    }

    // ---------------------------------------------------------------- reports

    /// Appends accepted reports, latest telemetry and rejection counts in one
    /// transaction (a group commit). Reports whose (device, seq) is already in
    /// the log, or whose epoch has closed, are not stored; the result says
    /// which, index for index.
    pub async fn append_reports(
        &self,
        reports: &[ReportRow],
        telemetry: &[TelemetryRow],
        rejections: &[RejectionRow],
    ) -> Result<Vec<Option<NotStored>>> {
        let mut tx = self.pool.begin().await?;
        let epochs: BTreeSet<EpochIndex> = reports.iter().map(|r| r.epoch).collect();
        if self.backend == Backend::Postgres {
            // Shared lock per epoch: closes take it exclusively, so no report
            // can land in an epoch while (or after) it is being closed.
            for e in &epochs {
                sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
                    .bind(epoch_lock_key(*e))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // Claim the write lock first on SQLite so the closed-epoch check below
        // reads what is committed, not a snapshot older than a concurrent close.
        if self.backend == Backend::Sqlite {
            sqlx::query("UPDATE meta SET value = value WHERE key = 'write-lock'")
                .execute(&mut *tx)
                .await?;
        }
        let mut closed = HashSet::new();
        for e in &epochs {
            if sqlx::query("SELECT 1 FROM epochs WHERE epoch = $1")
                .bind(to_i64(*e))
                .fetch_optional(&mut *tx)
                .await?
                .is_some()
            {
                closed.insert(*e);
            }
        }
        let mut verdicts: Vec<Option<NotStored>> = vec![None; reports.len()];
        let mut rows = Vec::with_capacity(reports.len());
        for (i, r) in reports.iter().enumerate() {
            if closed.contains(&r.epoch) {
                verdicts[i] = Some(NotStored::EpochClosed);
                continue;
            }
            rows.push(vec![
                (&r.device).into(),
                r.seq.into(),
                r.epoch.into(),
                r.kind.into(),
                r.timestamp_ms.into(),
                r.received_ms.into(),
                Val::Blob(r.raw.clone()),
            ]);
        }
        // Which rows did land? RETURNING answers for both databases.
        let anonymous = self.backend == Backend::Sqlite;
        let mut inserted: HashSet<(PublicKey, u64)> = HashSet::with_capacity(rows.len());
        for chunk in rows.chunks(2000) {
            let sql = crate::values_sql(
                "INSERT INTO reports (device, seq, epoch, kind, timestamp_ms, received_ms, raw)",
                "ON CONFLICT (device, seq) DO NOTHING RETURNING device, seq",
                7,
                chunk.len(),
                anonymous,
            );
            let mut q = sqlx::query(&sql);
            for row in chunk {
                for v in row {
                    q = crate::bind_val(q, v);
                }
            }
            for r in q.fetch_all(&mut *tx).await? {
                inserted.insert((
                    key_from_row(r.try_get(0)?)?,
                    u64_from_row(r.try_get(1)?, "seq")?,
                ));
            }
        }
        let mut max_seq: BTreeMap<PublicKey, u64> = BTreeMap::new();
        for (i, r) in reports.iter().enumerate() {
            if verdicts[i].is_some() {
                continue;
            }
            if inserted.contains(&(r.device, r.seq)) {
                let m = max_seq.entry(r.device).or_insert(r.seq);
                *m = (*m).max(r.seq);
            } else {
                verdicts[i] = Some(NotStored::Duplicate);
            }
        }
        // One statement for all devices: per-device UPDATEs cost a round trip
        // each and dominated the append. VALUES columns are column1, column2
        // in both SQLite and PostgreSQL.
        let seq_rows: Vec<(PublicKey, u64)> = max_seq.into_iter().collect();
        for chunk in seq_rows.chunks(4000) {
            let values = crate::values_sql("", "", 2, chunk.len(), anonymous);
            let sql = format!(
                "UPDATE devices SET last_seq = v.column2 FROM ({}) AS v \
                 WHERE devices.device = v.column1 AND (devices.last_seq IS NULL OR devices.last_seq < v.column2)",
                values.trim()
            );
            let mut q = sqlx::query(&sql);
            for (device, seq) in chunk {
                q = q.bind(device.0.to_vec()).bind(to_i64(*seq));
            }
            q.execute(&mut *tx).await?;
        }
        let telemetry_rows: Vec<Vec<Val>> = telemetry
            .iter()
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
            &mut tx,
            "INSERT INTO telemetry (device, timestamp_ms, uptime_s, temperature_centi_c, firmware_version, power_mw)",
            "ON CONFLICT (device) DO UPDATE SET timestamp_ms = excluded.timestamp_ms, uptime_s = excluded.uptime_s, \
             temperature_centi_c = excluded.temperature_centi_c, firmware_version = excluded.firmware_version, power_mw = excluded.power_mw \
             WHERE excluded.timestamp_ms >= telemetry.timestamp_ms",
            6,
            &dedup_latest(telemetry_rows),
        )
        .await?;
        self.count_rejections_in(&mut tx, rejections).await?;
        tx.commit().await?;
        Ok(verdicts)
    }

    pub async fn count_rejections(&self, rejections: &[RejectionRow]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.count_rejections_in(&mut tx, rejections).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn count_rejections_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        rejections: &[RejectionRow],
    ) -> Result<()> {
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
            &mut *tx,
            "INSERT INTO rejections (epoch, reason, device, count)",
            "ON CONFLICT (epoch, reason, device) DO UPDATE SET count = rejections.count + excluded.count",
            4,
            &rows,
        )
        .await?;
        Ok(())
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
            .bind(to_i64(epoch))
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
            .bind(to_i64(epoch))
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
        .bind(to_i64(epoch))
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
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(epoch_lock_key(epoch))
                .execute(&mut *tx)
                .await?;
        }
        let claimed = sqlx::query(
            "INSERT INTO epochs (epoch, policy_id, closed_ms, emission, minted, fees, burned, devices, sheet_hash, claim_root) \
             VALUES ($1, $2, $3, 0, 0, 0, 0, 0, $4, $4) ON CONFLICT (epoch) DO NOTHING RETURNING epoch",
        )
        .bind(to_i64(epoch))
        .bind(policy_id)
        .bind(closed_ms)
        .bind(Vec::<u8>::new())
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(EpochClose { tx, epoch }))
    }

    pub async fn sector_totals(&self, epoch: EpochIndex) -> Result<Vec<SectorTotalRow>> {
        let rows = sqlx::query("SELECT sector, emission, distributed, devices, rewarded FROM sector_totals WHERE epoch = $1 ORDER BY sector")
            .bind(to_i64(epoch))
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
            "SELECT device, operator, sector, score_ppm, weight, reward, fees, reasons FROM reward_lines WHERE epoch = $1 ORDER BY device",
        )
        .bind(to_i64(epoch))
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
            "SELECT device, operator, sector, score_ppm, weight, reward, fees, reasons, epoch FROM reward_lines WHERE device = $1 ORDER BY epoch",
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
        .bind(to_i64(epoch))
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
            .bind(to_i64(epoch))
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.get::<Vec<u8>, _>(0)))
    }

    pub async fn put_policy(&self, policy_id: &str, body: &[u8]) -> Result<()> {
        sqlx::query("INSERT INTO policies (policy_id, body) VALUES ($1, $2) ON CONFLICT (policy_id) DO NOTHING")
            .bind(policy_id)
            .bind(body.to_vec())
            .execute(&self.pool)
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
    .bind(to_i64(epoch))
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

/// A claimed, not yet committed epoch close. Reads happen inside the same
/// transaction so they see exactly the inputs the close commits against.
pub struct EpochClose {
    tx: Transaction<'static, Any>,
    epoch: EpochIndex,
}

impl EpochClose {
    pub fn epoch(&self) -> EpochIndex {
        self.epoch
    }

    /// Devices registered before `before_ms`, ordered by key.
    pub async fn devices_registered_before(&mut self, before_ms: i64) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE registered_ms < $1 ORDER BY device"
        ))
        .bind(before_ms)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(device_from_row).collect()
    }

    /// Number of stored reports of `kind` per device in this epoch that
    /// arrived at most `max_delay_ms` after their own timestamp.
    pub async fn report_counts(
        &mut self,
        kind: u32,
        max_delay_ms: i64,
    ) -> Result<Vec<(PublicKey, u64)>> {
        report_counts(&mut self.tx, self.epoch, kind, max_delay_ms).await
    }

    pub async fn claims_as_of(&mut self, epoch: EpochIndex) -> Result<Vec<(PublicKey, u64)>> {
        claims_as_of(&mut self.tx, epoch).await
    }

    pub async fn sector_state(
        &mut self,
        sector: &str,
        epoch: EpochIndex,
    ) -> Result<Option<Vec<u8>>> {
        let r = sqlx::query("SELECT state FROM sector_state WHERE sector = $1 AND epoch = $2")
            .bind(sector)
            .bind(to_i64(epoch))
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(r.map(|r| r.get::<Vec<u8>, _>(0)))
    }

    /// Writes everything and commits. Balances move by the entries' deltas.
    pub async fn commit(mut self, epoch_row: &EpochRow, w: &EpochWrite) -> Result<()> {
        let t = std::time::Instant::now();
        let e = to_i64(self.epoch);
        sqlx::query(
            "UPDATE epochs SET policy_id = $2, closed_ms = $3, emission = $4, minted = $5, fees = $6, burned = $7, devices = $8, \
             sheet_hash = $9, claim_root = $10 WHERE epoch = $1",
        )
        .bind(e)
        .bind(epoch_row.policy_id.as_str())
        .bind(epoch_row.closed_ms)
        .bind(to_i64(epoch_row.emission))
        .bind(to_i64(epoch_row.minted))
        .bind(to_i64(epoch_row.fees))
        .bind(to_i64(epoch_row.burned))
        .bind(to_i64(epoch_row.devices))
        .bind(epoch_row.sheet_hash.clone())
        .bind(epoch_row.claim_root.clone())
        .execute(&mut *self.tx)
        .await?;
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
            &mut self.tx,
            "INSERT INTO sector_totals (epoch, sector, emission, distributed, devices, rewarded)",
            "",
            6,
            &totals,
        )
        .await?;
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
            &mut self.tx,
            "INSERT INTO reward_lines (epoch, device, operator, sector, score_ppm, weight, reward, fees, reasons)",
            "",
            9,
            &lines,
        )
        .await?;
        drop(lines);
        tracing::debug!(ms = t.elapsed().as_millis() as u64, "commit: lines written");
        let entries: Vec<Vec<Val>> = w
            .entries
            .iter()
            .map(|x| {
                vec![
                    e.into(),
                    x.debit.as_str().into(),
                    x.credit.as_str().into(),
                    x.amount.into(),
                    x.kind.as_str().into(),
                ]
            })
            .collect();
        insert_many(
            &mut self.tx,
            "INSERT INTO ledger_entries (epoch, debit, credit, amount, kind)",
            "",
            5,
            &entries,
        )
        .await?;
        let mut deltas: BTreeMap<&str, i128> = BTreeMap::new();
        for x in &w.entries {
            *deltas.entry(x.debit.as_str()).or_default() -= x.amount as i128;
            *deltas.entry(x.credit.as_str()).or_default() += x.amount as i128;
        }
        let balance_rows: Vec<Vec<Val>> = deltas
            .iter()
            .map(|(a, d)| {
                Ok(vec![
                    (*a).into(),
                    Val::Int(
                        i64::try_from(*d)
                            .map_err(|_| StoreError::Corrupt("balance delta overflow".into()))?,
                    ),
                ])
            })
            .collect::<Result<_>>()?;
        insert_many(
            &mut self.tx,
            "INSERT INTO balances (account, balance)",
            "ON CONFLICT (account) DO UPDATE SET balance = balances.balance + excluded.balance",
            2,
            &balance_rows,
        )
        .await?;
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
            &mut self.tx,
            "INSERT INTO claims (epoch, account, cumulative)",
            "",
            3,
            &claims,
        )
        .await?;
        let states: Vec<Vec<Val>> = w
            .sector_state
            .iter()
            .map(|(s, b)| vec![s.as_str().into(), e.into(), b.clone().into()])
            .collect();
        insert_many(
            &mut self.tx,
            "INSERT INTO sector_state (sector, epoch, state)",
            "",
            3,
            &states,
        )
        .await?;
        tracing::debug!(
            ms = t.elapsed().as_millis() as u64,
            "commit: claims written"
        );
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
    tx: &mut Transaction<'static, Any>,
    epoch: EpochIndex,
    kind: u32,
    max_delay_ms: i64,
) -> Result<Vec<(PublicKey, u64)>> {
    let rows = sqlx::query(
        "SELECT device, COUNT(*) FROM reports WHERE epoch = $1 AND kind = $2 AND received_ms - timestamp_ms <= $3 \
         GROUP BY device ORDER BY device",
    )
    .bind(to_i64(epoch))
    .bind(kind as i64)
    .bind(max_delay_ms)
    .fetch_all(&mut **tx)
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
        let mut tx = self.pool.begin().await?;
        let r = report_counts(&mut tx, epoch, kind, max_delay_ms).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// When the first device was registered: no epoch before it has anything to close.
    pub async fn first_registration_ms(&self) -> Result<Option<i64>> {
        Ok(sqlx::query("SELECT MIN(registered_ms) FROM devices")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    pub async fn devices_registered_before(&self, before_ms: i64) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE registered_ms < $1 ORDER BY device"
        ))
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(device_from_row).collect()
    }
}
