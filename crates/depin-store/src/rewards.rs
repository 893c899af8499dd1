//! The reward sheet an epoch close stores: per-device lines and per-sector totals.

use crate::{Result, Store, StoreError, key_from_row, to_i64, u64_from_row};
use depin_core::{EpochIndex, PublicKey};
use sqlx::Row;
use sqlx::any::AnyRow;

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

impl Store {
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
        let rows = sqlx::query(&format!(
            "SELECT {LINE_COLUMNS} FROM reward_lines WHERE epoch = $1 ORDER BY device, sector"
        ))
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
        let rows = sqlx::query(&format!(
            "SELECT {LINE_COLUMNS}, epoch FROM reward_lines WHERE device = $1 ORDER BY epoch, sector"
        ))
        .bind(device.0.to_vec())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((u64_from_row(r.try_get(8)?, "epoch")?, line_from_row(r)?)))
            .collect()
    }
}

const LINE_COLUMNS: &str = "device, operator, sector, score_ppm, weight, reward, fees, reasons";

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
