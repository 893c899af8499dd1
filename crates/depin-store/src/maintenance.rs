//! Upkeep of the database itself, named for what it is for, so that no
//! caller outside this crate writes SQL (the devnet and `depin bench` used
//! to issue PRAGMAs, `VACUUM INTO` and generator queries of their own).

use crate::{Backend, Result, Store, StoreError};
use sqlx::Row;
use std::path::{Path, PathBuf};

/// The fixed instant `seal` writes into sqlx's migration bookkeeping.
const SEALED_MIGRATION_TIME: &str = "2026-01-01 00:00:00";

impl Store {
    /// Moves what the write-ahead log holds into the database files, so the
    /// next reader or a timed measurement does not pay for it. SQLite:
    /// `wal_checkpoint(TRUNCATE)`, which also empties the `-wal` file;
    /// PostgreSQL: `CHECKPOINT` (needs a superuser or `pg_checkpoint`).
    pub async fn checkpoint(&self) -> Result<()> {
        let sql = match self.backend {
            Backend::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
            Backend::Postgres => "CHECKPOINT",
        };
        sqlx::query(sql).execute(&self.pool).await?;
        Ok(())
    }

    /// Refreshes the query planner's statistics: after a bulk load the
    /// planner otherwise still believes the tables are empty.
    pub async fn analyze(&self) -> Result<()> {
        sqlx::query("ANALYZE").execute(&self.pool).await?;
        Ok(())
    }

    /// Writes a consistent copy of the whole database to `path`, a file that
    /// must not exist yet, while the store stays open and usable. SQLite
    /// only (`VACUUM INTO`: the copy is compact and has no log beside it);
    /// a PostgreSQL database is copied with `pg_dump`.
    pub async fn snapshot_to(&self, path: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Unsupported(
                "a snapshot file is a SQLite store's; copy a PostgreSQL database with pg_dump",
            ));
        }
        sqlx::query("VACUUM INTO $1")
            .bind(path.display().to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The SQLite file this store was opened on.
    async fn sqlite_file(&self) -> Result<PathBuf> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Unsupported(
                "only a SQLite store is a file that can be sealed",
            ));
        }
        let row = sqlx::query("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&self.pool)
            .await?;
        Ok(PathBuf::from(row.try_get::<String, _>(0)?))
    }

    /// Closes the store and leaves its SQLite file self-contained and
    /// reproducible: two stores that were sent the same statements seal to
    /// the same bytes. Three things would otherwise differ between them:
    /// - sqlx's migration bookkeeping (`installed_on` is the wall clock at
    ///   migration time, `execution_time` its duration): set to fixed values;
    ///   sqlx's "was this migration applied" check reads only versions and
    ///   checksums;
    /// - the header's change counter, which in WAL mode moves with checkpoint
    ///   timing: the file is rewritten by `VACUUM INTO`, whose header counts
    ///   only its own writes;
    /// - `-wal`/`-shm` side files: the file leaves WAL mode first (a store
    ///   opened for writing switches it back).
    pub async fn seal(self) -> Result<()> {
        let file = self.sqlite_file().await?;
        self.close().await;
        let url = format!("sqlite://{}?mode=rw", file.display());
        // sqlx finishes closing a pooled connection on a background task, so
        // one may still hold the file for a moment after `close` returns, and
        // leaving WAL mode needs it gone. Wait for that (bounded), no longer.
        let mut attempts = 0;
        let mut conn = loop {
            attempts += 1;
            let last = match <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await {
                Ok(mut conn) => {
                    let mode = async {
                        sqlx::query("PRAGMA busy_timeout = 30000")
                            .execute(&mut conn)
                            .await?;
                        sqlx::query("PRAGMA journal_mode = DELETE")
                            .fetch_one(&mut conn)
                            .await?
                            .try_get::<String, _>(0)
                    }
                    .await;
                    match mode {
                        Ok(m) if m.eq_ignore_ascii_case("delete") => break conn,
                        Ok(m) => {
                            let _ = sqlx::Connection::close(conn).await;
                            format!("the journal mode stays {m:?}")
                        }
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) => e.to_string(),
            };
            if attempts >= 500 {
                return Err(StoreError::Open(format!(
                    "cannot seal {}: another connection keeps it open ({last})",
                    file.display()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        sqlx::query("UPDATE _sqlx_migrations SET installed_on = $1, execution_time = 0")
            .bind(SEALED_MIGRATION_TIME)
            .execute(&mut conn)
            .await?;
        let mut sealed = file.clone().into_os_string();
        sealed.push(".sealed");
        let sealed = PathBuf::from(sealed);
        let _ = std::fs::remove_file(&sealed);
        sqlx::query("VACUUM INTO $1")
            .bind(sealed.display().to_string())
            .execute(&mut conn)
            .await?;
        sqlx::Connection::close(conn).await?;
        std::fs::rename(&sealed, &file).map_err(|e| {
            StoreError::Open(format!(
                "cannot replace {} with its sealed copy: {e}",
                file.display()
            ))
        })?;
        for side in ["-wal", "-shm", "-journal"] {
            let mut p = file.clone().into_os_string();
            p.push(side);
            if Path::new(&p).exists() {
                return Err(StoreError::Open(format!(
                    "{} is left beside the sealed store",
                    Path::new(&p).display()
                )));
            }
        }
        Ok(())
    }
}

/// A synthetic epoch for benchmarks: `devices` devices (four per operator,
/// the sectors in turn) and `reports` heartbeats spread over them, one per
/// device and second from `start_ms`, all in `epoch`. Already "verified": the
/// raw bytes are a placeholder the close never reads.
#[cfg(feature = "bulk-load")]
#[derive(Clone, Copy, Debug)]
pub struct SyntheticEpoch {
    pub devices: u64,
    pub reports: u64,
    pub epoch: depin_core::EpochIndex,
    pub start_ms: i64,
}

#[cfg(feature = "bulk-load")]
impl Store {
    /// Loads a [`SyntheticEpoch`] in one transaction. The database generates
    /// the rows itself (a recursive CTE on SQLite, `generate_series` on
    /// PostgreSQL): ten million rows bound one by one through sqlx would take
    /// minutes. Device `i` (from 0) has the key `i + 1` as 32 big-endian
    /// bytes. Call [`Store::analyze`] afterwards.
    pub async fn load_synthetic_epoch(&self, s: &SyntheticEpoch) -> Result<()> {
        let (devices, reports) = match self.backend {
            Backend::Sqlite => (
                "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < $1) \
                 INSERT INTO devices (device, operator, sector, hardware_class, firmware_version, certificate, registered_ms) \
                 SELECT unhex(printf('%064x', x + 1)), unhex(printf('%064x', x / 4 + 1000000000000)), (x % 4) + 1, 'bench', '1.0.0', x'00', $2 FROM c",
                "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < $1) \
                 INSERT INTO reports (device, seq, epoch, kind, timestamp_ms, received_ms, raw) \
                 SELECT unhex(printf('%064x', (x % $2) + 1)), x / $2, $3, 2, $4 + (x / $2) * 1000, $4 + (x / $2) * 1000 + 250, x'00' FROM c",
            ),
            Backend::Postgres => (
                "INSERT INTO devices (device, operator, sector, hardware_class, firmware_version, certificate, registered_ms) \
                 SELECT decode(lpad(to_hex(x + 1), 64, '0'), 'hex'), decode(lpad(to_hex(x / 4 + 1000000000000), 64, '0'), 'hex'), (x % 4) + 1, 'bench', '1.0.0', '\\x00'::bytea, $2 \
                 FROM generate_series(0::bigint, $1) AS x",
                "INSERT INTO reports (device, seq, epoch, kind, timestamp_ms, received_ms, raw) \
                 SELECT decode(lpad(to_hex((x % $2) + 1), 64, '0'), 'hex'), x / $2, $3, 2, $4 + (x / $2) * 1000, $4 + (x / $2) * 1000 + 250, '\\x00'::bytea \
                 FROM generate_series(0::bigint, $1) AS x",
            ),
        };
        let mut tx = self.write_tx().await?;
        sqlx::query(devices)
            .bind(crate::to_i64(s.devices)? - 1)
            .bind(s.start_ms - 1)
            .execute(tx.conn())
            .await?;
        sqlx::query(reports)
            .bind(crate::to_i64(s.reports)? - 1)
            .bind(crate::to_i64(s.devices)?)
            .bind(crate::to_i64(s.epoch)?)
            .bind(s.start_ms)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }
}
