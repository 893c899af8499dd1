//! The state a sector verifier carries from one epoch to the next.

use crate::{Result, Store, to_i64};
use depin_core::EpochIndex;
use sqlx::Row;

impl Store {
    pub async fn sector_state(&self, sector: &str, epoch: EpochIndex) -> Result<Option<Vec<u8>>> {
        let r = sqlx::query("SELECT state FROM sector_state WHERE sector = $1 AND epoch = $2")
            .bind(sector)
            .bind(to_i64(epoch)?)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.get::<Vec<u8>, _>(0)))
    }
}
