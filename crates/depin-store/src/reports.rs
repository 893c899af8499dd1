//! The report log and the telemetry stored with it: the rows, and the
//! reads of them outside the append (see `admission` for the writes).

use crate::{Result, Store, StoreError, key_and_u64_from_row, key_from_row, to_i64, u64_from_row};
use depin_core::{EpochIndex, PublicKey};
use sqlx::Row;
use sqlx::any::AnyRow;

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

impl Store {
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
        let rows = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE device = $1 AND epoch = $2 ORDER BY seq"
        ))
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
}

/// The columns of a [`ReportRow`], in the order [`report_from_row`] reads them.
pub(crate) const REPORT_COLUMNS: &str = "device, seq, epoch, kind, timestamp_ms, received_ms, raw";

/// Columns: [`REPORT_COLUMNS`].
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

pub(crate) async fn report_counts(
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
        .map(|r| key_and_u64_from_row(r, "count"))
        .collect()
}
