//! Sector-owned tables (migration 0006): a sector crate ships its own
//! migrations for both backends, numbered in its sector's block, and the
//! store applies the ones not applied yet, each in its own transaction,
//! refusing one whose SQL changed after it was applied.

use crate::{Backend, Result, Store, StoreError};
use depin_core::Sector;
use sqlx::Row;

/// One migration of a sector's schema, written for both backends.
#[derive(Clone, Copy, Debug)]
pub struct SectorMigration {
    /// In the sector's block, `Sector::kind_range()` (code × 1000 … + 999),
    /// strictly increasing within the schema.
    pub version: u32,
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// A sector's tables: its migrations in order. Table names start with the
/// sector crate's name (`echo_…`), so no two sectors collide.
#[derive(Clone, Copy, Debug)]
pub struct SectorSchema {
    pub sector: Sector,
    pub migrations: &'static [SectorMigration],
}

impl SectorSchema {
    /// Versions in the sector's block and strictly increasing.
    pub fn check(&self) -> std::result::Result<(), String> {
        let range = self.sector.kind_range();
        let mut last = None;
        for m in self.migrations {
            if !range.contains(&m.version) {
                return Err(format!(
                    "{} migration {} ({}) is outside the sector's block {}..={}",
                    self.sector,
                    m.version,
                    m.description,
                    range.start(),
                    range.end()
                ));
            }
            if last.is_some_and(|l| l >= m.version) {
                return Err(format!(
                    "{} migrations must be in increasing order; {} comes after {}",
                    self.sector,
                    m.version,
                    last.unwrap_or_default()
                ));
            }
            last = Some(m.version);
        }
        Ok(())
    }
}

impl Store {
    /// Applies the schema's migrations that this store has not applied yet,
    /// in order, each with its bookkeeping row in one transaction. Returns
    /// how many it applied. A migration applied before must have the same
    /// SQL (checksum), or the store refuses: its tables may not be what the
    /// sector's code expects.
    pub async fn apply_sector_schema(&self, schema: &SectorSchema) -> Result<u32> {
        schema.check().map_err(StoreError::Open)?;
        let mut applied = 0;
        for m in schema.migrations {
            let sql = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            let checksum = blake3::hash(sql.as_bytes()).as_bytes().to_vec();
            let mut tx = self.write_tx().await?;
            if let Some(r) =
                sqlx::query("SELECT sector, checksum FROM sector_migrations WHERE version = $1")
                    .bind(i64::from(m.version))
                    .fetch_optional(tx.conn())
                    .await?
            {
                let (sector, stored): (i64, Vec<u8>) = (r.try_get(0)?, r.try_get(1)?);
                tx.rollback().await?;
                if sector != i64::from(schema.sector.code()) || stored != checksum {
                    return Err(StoreError::Corrupt(format!(
                        "{} migration {} ({}) differs from the one this store applied; \
                         a released migration must never change",
                        schema.sector, m.version, m.description
                    )));
                }
                continue;
            }
            sqlx::raw_sql(sql).execute(tx.conn()).await?;
            tx.step("sector-schema:apply")?;
            sqlx::query(
                "INSERT INTO sector_migrations (version, sector, description, checksum) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(i64::from(m.version))
            .bind(i64::from(schema.sector.code()))
            .bind(m.description)
            .bind(checksum)
            .execute(tx.conn())
            .await?;
            tx.commit().await?;
            tracing::info!(sector = %schema.sector, version = m.version, "applied {}", m.description);
            applied += 1;
        }
        Ok(applied)
    }
}
