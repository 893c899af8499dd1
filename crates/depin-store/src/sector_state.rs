//! The state a sector verifier carries from one epoch to the next.

use crate::{Result, Store, StoreError, to_i64};
use depin_core::EpochIndex;
use sqlx::{AnyConnection, Row};

/// The (version, state) verifier `sector` stored at the close of `epoch`.
pub(crate) async fn sector_state_at(
    conn: &mut AnyConnection,
    sector: &str,
    epoch: EpochIndex,
) -> Result<Option<(u32, Vec<u8>)>> {
    let Some(r) =
        sqlx::query("SELECT version, state FROM sector_state WHERE sector = $1 AND epoch = $2")
            .bind(sector)
            .bind(to_i64(epoch)?)
            .fetch_optional(conn)
            .await?
    else {
        return Ok(None);
    };
    let version = u32::try_from(r.try_get::<i64, _>(0)?)
        .map_err(|_| StoreError::Corrupt("sector state version".into()))?;
    Ok(Some((version, r.try_get(1)?)))
}

impl Store {
    pub async fn sector_state(&self, sector: &str, epoch: EpochIndex) -> Result<Option<Vec<u8>>> {
        let state = sector_state_at(&mut *self.pool.acquire().await?, sector, epoch).await?;
        Ok(state.map(|(_version, state)| state))
    }
}
