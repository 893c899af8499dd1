//! Work orders (migration 0004): what sector verifiers ask devices to do,
//! and the reports of the verifiers' kinds the close reads raw. Nothing here
//! decides anything: the append checks answers against these rows, the
//! close writes and reads them, `GET /v1/work` lists them.

use crate::{DueWork, StoredReport, WorkRow};
use crate::{Result, Store, StoreError, key_from_row, to_i64, u64_from_row};
use depin_core::{EpochIndex, PublicKey};
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) const WORK_COLUMNS: &str =
    "id, issued_epoch, sector, device, answer_kind, body, deadline_ms, due_epoch, answer_seq";

pub(crate) fn work_from_row(r: &AnyRow) -> Result<WorkRow> {
    let id: Vec<u8> = r.try_get(0)?;
    Ok(WorkRow {
        id: id
            .try_into()
            .map_err(|_| StoreError::Corrupt("work id is not 32 bytes".into()))?,
        issued_epoch: u64_from_row(r.try_get(1)?, "issued epoch")?,
        sector: u32::try_from(r.try_get::<i64, _>(2)?)
            .map_err(|_| StoreError::Corrupt("work sector".into()))?,
        device: key_from_row(r.try_get(3)?)?,
        answer_kind: u32::try_from(r.try_get::<i64, _>(4)?)
            .map_err(|_| StoreError::Corrupt("work answer kind".into()))?,
        body: r.try_get(5)?,
        deadline_ms: r.try_get(6)?,
        due_epoch: u64_from_row(r.try_get(7)?, "due epoch")?,
        answer_seq: r
            .try_get::<Option<i64>, _>(8)?
            .map(|v| u64_from_row(v, "answer seq"))
            .transpose()?,
    })
}

fn stored_report(r: &AnyRow) -> Result<StoredReport> {
    Ok(StoredReport {
        device: key_from_row(r.try_get(0)?)?,
        seq: u64_from_row(r.try_get(1)?, "seq")?,
        kind: u32::try_from(r.try_get::<i64, _>(2)?)
            .map_err(|_| StoreError::Corrupt("report kind".into()))?,
        timestamp_ms: r.try_get(3)?,
        received_ms: r.try_get(4)?,
        raw: r.try_get(5)?,
    })
}

/// The epoch's accepted reports of `kinds`, in (device, seq) order.
pub(crate) async fn reports_of_kinds(
    conn: &mut sqlx::AnyConnection,
    epoch: EpochIndex,
    kinds: &[u32],
) -> Result<Vec<StoredReport>> {
    let mut out = Vec::new();
    for kind in kinds {
        let rows = sqlx::query(
            "SELECT device, seq, kind, timestamp_ms, received_ms, raw FROM reports \
             WHERE epoch = $1 AND kind = $2 ORDER BY device, seq",
        )
        .bind(to_i64(epoch)?)
        .bind(i64::from(*kind))
        .fetch_all(&mut *conn)
        .await?;
        for r in &rows {
            out.push(stored_report(r)?);
        }
    }
    out.sort_unstable_by_key(|r| (r.device, r.seq));
    Ok(out)
}

/// Work orders due in `epoch`, in id order, each with its answer.
pub(crate) async fn due_work(
    conn: &mut sqlx::AnyConnection,
    epoch: EpochIndex,
) -> Result<Vec<DueWork>> {
    let rows = sqlx::query(&format!(
        "SELECT {WORK_COLUMNS} FROM work WHERE due_epoch = $1 ORDER BY id"
    ))
    .bind(to_i64(epoch)?)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let work = work_from_row(r)?;
        let answer = match work.answer_seq {
            None => None,
            Some(seq) => {
                let row = sqlx::query(
                    "SELECT device, seq, kind, timestamp_ms, received_ms, raw FROM reports \
                     WHERE device = $1 AND seq = $2",
                )
                .bind(work.device.0.to_vec())
                .bind(to_i64(seq)?)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "work order {} names answer seq {seq}, which is not in the report log",
                        PublicKey(work.id)
                    ))
                })?;
                Some(stored_report(&row)?)
            }
        };
        out.push(DueWork { work, answer });
    }
    Ok(out)
}

impl Store {
    /// The device's work orders that are still open at `now_ms`: not
    /// answered, deadline not passed; soonest deadline first.
    pub async fn open_work(&self, device: &PublicKey, now_ms: i64) -> Result<Vec<WorkRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {WORK_COLUMNS} FROM work WHERE device = $1 AND deadline_ms >= $2 \
             AND answer_seq IS NULL ORDER BY deadline_ms, id LIMIT 1000"
        ))
        .bind(device.0.to_vec())
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(work_from_row).collect()
    }

    /// The work orders issued at the close of `epoch`, in id order.
    pub async fn work_issued(&self, epoch: EpochIndex) -> Result<Vec<WorkRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {WORK_COLUMNS} FROM work WHERE issued_epoch = $1 ORDER BY id"
        ))
        .bind(to_i64(epoch)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(work_from_row).collect()
    }

    /// One work order by id.
    pub async fn work(&self, id: &[u8; 32]) -> Result<Option<WorkRow>> {
        sqlx::query(&format!("SELECT {WORK_COLUMNS} FROM work WHERE id = $1"))
            .bind(id.to_vec())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(work_from_row)
            .transpose()
    }
}
