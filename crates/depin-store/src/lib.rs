//! The coordinator's durable state.
//!
//! One code path serves both databases: queries go through sqlx's `Any` driver
//! and use `$N` placeholders, which both SQLite and PostgreSQL accept. Only the
//! DDL differs, so each backend has its own migration folder with the same
//! numbered files. SQLite (one file in the data directory, nothing to install)
//! is the default; PostgreSQL is for several stateless `depin serve` replicas.
//!
//! This crate knows tables and rows, not rules: deciding what to write is the
//! coordinator's job. The one rule that lives here is the exactly-once epoch
//! close, because only the database can enforce it across processes: the
//! `epochs` row is inserted first in the closing transaction, so a second
//! closer blocks on it and then finds the conflict and rolls back.

mod operator;
pub(crate) mod rows;
pub mod testing;

pub use operator::*;
pub use rows::*;

use depin_core::PublicKey;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// SQLite caps bound parameters per statement at 32766, PostgreSQL at 65535.
/// Chunks stay well below both.
const MAX_PARAMS_PER_STATEMENT: usize = 16_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// A value bound into a dynamically built statement.
#[derive(Clone, Debug)]
pub enum Val {
    Int(i64),
    Blob(Vec<u8>),
    Text(String),
    NullInt,
    NullBlob,
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl From<u64> for Val {
    fn from(v: u64) -> Self {
        Val::Int(to_i64(v))
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Self {
        Val::Int(v as i64)
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Self {
        Val::Blob(v)
    }
}
impl From<&PublicKey> for Val {
    fn from(v: &PublicKey) -> Self {
        Val::Blob(v.0.to_vec())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_string())
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Val::NullInt, Val::Int)
    }
}

/// Amounts and counters are u64 in the domain and BIGINT in SQL. Values above
/// i64::MAX cannot arise from a valid ledger (total supply is far below it);
/// meeting one means a bug, so we stop rather than wrap.
pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).expect("amount exceeds i64::MAX: ledger bug")
}

pub(crate) fn key_from_row(bytes: Vec<u8>) -> Result<PublicKey> {
    PublicKey::from_slice(&bytes).map_err(|e| StoreError::Corrupt(format!("stored key: {e}")))
}

pub(crate) fn u64_from_row(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {what}: {v}")))
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`:
    /// `sqlite://path/to/file.sqlite` or `postgres://user@host/db`.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time is all SQLite allows; a few readers help the API.
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets API readers run beside the writer; NORMAL sync is
                        // durable across process crashes (WAL is fsynced at checkpoints).
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 30000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA cache_size = -65536")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    /// The default embedded store: `DIR/depin.sqlite`.
    pub async fn open_in_dir(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", dir.display())))?;
        Store::open(&sqlite_url(&dir.join("depin.sqlite"))).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.pool.begin().await?)
    }

    /// Checkpoints and closes every connection: the SQLite file is complete
    /// and self-contained afterwards (no -wal beside it).
    pub async fn close(self) {
        if self.backend == Backend::Sqlite {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await;
        }
        self.pool.close().await;
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    pub async fn meta_set(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Inserts many rows with multi-row `INSERT … VALUES (…),(…)` statements,
/// chunked under the parameter limit. Per-row statements cost ~15 µs each
/// through sqlx; this is what makes a million-row epoch close fit in seconds.
/// `head` is `INSERT INTO t (a, b, c)`, `tail` e.g. `ON CONFLICT DO NOTHING`.
pub async fn insert_many(
    conn: &mut AnyConnection,
    head: &str,
    tail: &str,
    ncols: usize,
    rows: &[Vec<Val>],
) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let per_chunk = (MAX_PARAMS_PER_STATEMENT / ncols).max(1);
    let anonymous = is_sqlite(conn);
    let mut affected = 0;
    for chunk in rows.chunks(per_chunk) {
        let sql = values_sql(head, tail, ncols, chunk.len(), anonymous);
        let mut q = sqlx::query(&sql);
        for row in chunk {
            debug_assert_eq!(row.len(), ncols);
            for v in row {
                q = bind_val(q, v);
            }
        }
        affected += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(affected)
}

/// Builds `head VALUES (…),(…) tail`. SQLite gets anonymous `?` placeholders:
/// it resolves numbered ones (`$N`, `?N`) by a linear scan per parameter, which
/// makes binding a statement with thousands of them quadratic (a 100k-row
/// epoch close spent 19 s there). PostgreSQL needs `$N`.
pub(crate) fn values_sql(
    head: &str,
    tail: &str,
    ncols: usize,
    nrows: usize,
    anonymous: bool,
) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + nrows * ncols * 7);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    let mut n = 0;
    for r in 0..nrows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..ncols {
            if c > 0 {
                sql.push(',');
            }
            n += 1;
            if anonymous {
                sql.push('?');
            } else {
                sql.push('$');
                sql.push_str(&n.to_string());
            }
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

pub(crate) fn is_sqlite(conn: &AnyConnection) -> bool {
    conn.backend_name() == "SQLite"
}

pub(crate) fn bind_val<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    v: &Val,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    match v {
        Val::Int(i) => q.bind(*i),
        Val::Blob(b) => q.bind(b.clone()),
        Val::Text(t) => q.bind(t.clone()),
        Val::NullInt => q.bind(Option::<i64>::None),
        // PostgreSQL types a NULL parameter, so a NULL bytea must be bound as one.
        Val::NullBlob => q.bind(Option::<Vec<u8>>::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_sql_numbers_placeholders_in_order() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b)", "", 2, 2, false),
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4) "
        );
        assert_eq!(
            values_sql("INSERT INTO t (a, b)", "", 2, 2, true),
            "INSERT INTO t (a, b) VALUES (?,?),(?,?) "
        );
    }
}
