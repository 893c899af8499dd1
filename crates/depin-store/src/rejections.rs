//! Counts of refused messages from registered devices, by epoch and reason.

use crate::{Result, Store, Val, WriteTx, insert_many, u64_from_row};
use depin_core::{EpochIndex, PublicKey};
use sqlx::Row;
use std::collections::BTreeMap;

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

pub(crate) async fn count_rejections_in(
    tx: &mut WriteTx,
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
        tx.conn(),
        "INSERT INTO rejections (epoch, reason, device, count)",
        "ON CONFLICT (epoch, reason, device) DO UPDATE SET count = rejections.count + excluded.count",
        4,
        &rows,
    )
    .await?;
    Ok(())
}

impl Store {
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
}
