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

mod admission;
mod credits;
mod devices;
mod epoch_inputs;
mod epochs;
mod escrow;
mod ledger;
mod maintenance;
mod operator;
mod policy;
mod rejections;
mod reports;
mod rewards;
mod sector_schema;
mod sector_state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod work;

pub use admission::*;
pub use credits::{
    MAX_CREDIT_TEXT_LEN, NewPurchase, NewTokenPrice, NewWithdrawal, PayoutRefusal, PurchaseRefusal,
    PurchaseRow, SpendRefusal, Spent, TokenPriceRow, WithdrawalRefusal, WithdrawalRow,
};
pub use devices::*;
pub use epoch_inputs::*;
pub use epochs::*;
pub use escrow::{
    CLOSE_ENTRY_KINDS, ChargeRow, EscrowRefusal, NewDeposit, NewOrder, OrderRow, Recorded,
};
pub use ledger::*;
#[cfg(feature = "bulk-load")]
pub use maintenance::SyntheticEpoch;
pub use operator::*;
pub use rejections::*;
pub use reports::*;
pub use rewards::*;
pub use sector_schema::{SectorMigration, SectorSchema};

use depin_core::PublicKey;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Row};
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
    /// A value the store would have to wrap to keep. Admission range-checks
    /// every integer from the wire, so meeting one here means a caller skipped
    /// that check; it is refused rather than wrapped, and never panics.
    #[error("{what} = {value} does not fit the store's signed 64-bit integers")]
    OutOfRange { what: &'static str, value: u64 },
    /// The database could not be opened (the cause is in the message).
    #[error("{0}")]
    Open(String),
    /// A write would leave a holder account (operator, escrow, lock,
    /// protocol) negative; the transaction was rolled back.
    #[error("ledger account {account} would hold {balance} base units; refused")]
    Overdraft { account: String, balance: i64 },
    /// A fault injected at a named step by a test (feature `fault-injection`).
    #[error("injected fault at step {0}")]
    Injected(&'static str),
    /// The operation does not exist on this backend (the message says what to
    /// use instead).
    #[error("{0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Whether the failure lies in the storage rather than in the data: a full
    /// disk, an I/O error, a lost or locked database, an injected fault. Nothing
    /// was written, and the same request may succeed once storage recovers, so
    /// servers answer 503 and clients retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            // A violated constraint is about the data, not the storage.
            StoreError::Db(sqlx::Error::Database(d)) => {
                matches!(d.kind(), sqlx::error::ErrorKind::Other)
            }
            StoreError::Db(e) => !matches!(
                e,
                sqlx::Error::RowNotFound
                    | sqlx::Error::ColumnNotFound(_)
                    | sqlx::Error::ColumnDecode { .. }
                    | sqlx::Error::ColumnIndexOutOfBounds { .. }
                    | sqlx::Error::TypeNotFound { .. }
                    | sqlx::Error::Decode(_)
            ),
            StoreError::Injected(_) | StoreError::Open(_) => true,
            StoreError::Migrate(_)
            | StoreError::Unsupported(_)
            | StoreError::UnsupportedUrl(_)
            | StoreError::Corrupt(_)
            | StoreError::OutOfRange { .. }
            | StoreError::Overdraft { .. } => false,
        }
    }

    /// A PostgreSQL serialization failure or deadlock: the transaction was
    /// rolled back by the server and may simply be run again.
    fn is_retryable_conflict(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40001") | Some("40P01"))
            }
            _ => false,
        }
    }
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
    read_only: bool,
    faults: std::sync::Arc<Faults>,
}

/// A value bound into a dynamically built statement.
#[derive(Clone, Debug)]
pub enum Val {
    Int(i64),
    Blob(Vec<u8>),
    Text(String),
    /// Checked into i64 when bound: out of range is an error, never a wrap.
    U64(u64),
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
        Val::U64(v)
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
/// i64::MAX cannot arise from a valid ledger (total supply is far below it) and
/// admission refuses them on the wire; meeting one is an error for the caller,
/// never a panic (a panic here once stopped the report writer for everyone).
pub fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::OutOfRange {
        what: "integer",
        value: v,
    })
}

pub(crate) fn key_from_row(bytes: Vec<u8>) -> Result<PublicKey> {
    PublicKey::from_slice(&bytes).map_err(|e| StoreError::Corrupt(format!("stored key: {e}")))
}

pub(crate) fn u64_from_row(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {what}: {v}")))
}

/// A row whose first two columns are a key and a non-negative amount.
pub(crate) fn key_and_u64_from_row(r: &sqlx::any::AnyRow, what: &str) -> Result<(PublicKey, u64)> {
    Ok((
        key_from_row(r.try_get(0)?)?,
        u64_from_row(r.try_get(1)?, what)?,
    ))
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`:
    /// `sqlite://path/to/file.sqlite` or `postgres://user@host/db`.
    ///
    /// One connection is made first, outside the pool, so a database that
    /// cannot be opened (missing directory, read-only file system, refused
    /// login) fails at once with the driver's own words instead of a pool
    /// time-out half a minute later.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, false).await
    }

    /// Opens an existing store for reading only: no migration, no write, and
    /// on SQLite it works on a copy in a read-only directory, so an auditor can
    /// check a store without write access to it. The schema must be one this
    /// build knows.
    pub async fn open_read_only(url: &str) -> Result<Store> {
        Store::open_with(url, true).await
    }

    async fn open_with(url: &str, read_only: bool) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let url = match backend {
            Backend::Sqlite if read_only => sqlite_read_only_url(url),
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let probe = async {
            let mut conn =
                <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options).await?;
            prepare_connection(&mut conn, backend, read_only).await?;
            if backend == Backend::Sqlite && !read_only {
                // A read-only file opens "successfully" in read-only mode; find
                // out now, not at the first report.
                sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await?;
                sqlx::query("ROLLBACK").execute(&mut conn).await?;
            }
            sqlx::Connection::close(conn).await
        };
        if let Err(e) = probe.await {
            return Err(StoreError::Open(open_error_message(backend, read_only, &e)));
        }
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time is all SQLite allows; a few readers help the API.
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move { prepare_connection(conn, backend, read_only).await })
            })
            .connect_with(options)
            .await?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        if read_only {
            check_schema_version(&pool, migrator).await?;
        } else {
            migrator.run(&pool).await?;
        }
        Ok(Store {
            pool,
            backend,
            read_only,
            faults: Default::default(),
        })
    }

    /// Whether this store was opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
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

    /// Starts a write transaction on a connection of its own (see [`WriteTx`]).
    pub async fn write_tx(&self) -> Result<WriteTx> {
        WriteTx::begin(self).await
    }

    /// Whether to run a failed write again: PostgreSQL rolled it back for a
    /// deadlock or a serialization failure (two replicas touching the same
    /// rows). Gives up after a few tries; used by [`retrying!`].
    #[doc(hidden)]
    pub fn should_retry(e: &StoreError, attempt: &mut u32) -> bool {
        const ATTEMPTS: u32 = 8;
        *attempt += 1;
        let retry = e.is_retryable_conflict() && *attempt < ATTEMPTS;
        if retry {
            tracing::debug!(attempt = *attempt, error = %e, "retrying a write after a conflict");
        }
        retry
    }

    /// Runs one write statement in a [`WriteTx`] of its own, so a failing
    /// statement closes its connection like any other write. Rows affected.
    pub(crate) async fn execute_write<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let n = q.execute(tx.conn()).await?.rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// The store's fault points, for tests that fail a write at each step.
    #[cfg(feature = "fault-injection")]
    pub fn faults(&self) -> &Faults {
        &self.faults
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
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }
}

/// A database URL fit to print: a password in it is replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if s + 3 <= at && url[s + 3..at].contains(':') => {
            let user_end = s + 3 + url[s + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &url[..user_end], &url[at..])
        }
        _ => url.to_string(),
    }
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Awaits `$call` (a future of a store `Result`), running it again after a
/// PostgreSQL deadlock or serialization failure (see [`Store::should_retry`]).
/// A macro because a closure-taking function would not be `Send` over the
/// borrowed arguments the calls take.
#[macro_export]
#[doc(hidden)]
macro_rules! retrying {
    ($call:expr) => {{
        let mut attempt = 0;
        loop {
            match $call.await {
                Err(e) if $crate::Store::should_retry(&e, &mut attempt) => {
                    $crate::conflict_pause(attempt).await
                }
                other => break other,
            }
        }
    }};
}

/// A pause growing with the attempt number, so conflicting replicas drift apart.
#[doc(hidden)]
pub async fn conflict_pause(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt * attempt))).await;
}

/// Per-connection settings.
///
/// SQLite runs in WAL mode (API readers beside the one writer) with
/// `synchronous = FULL`: every commit fsyncs the WAL, so a report the
/// coordinator acknowledged survives a power cut, not just a process crash.
/// Group commit (one transaction for many requests) keeps that affordable.
async fn prepare_connection(
    conn: &mut AnyConnection,
    backend: Backend,
    read_only: bool,
) -> std::result::Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => {
            let pragmas: &[&str] = if read_only {
                &["PRAGMA query_only = ON", "PRAGMA busy_timeout = 30000"]
            } else {
                &[
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = FULL",
                    "PRAGMA busy_timeout = 30000",
                    "PRAGMA cache_size = -65536",
                ]
            };
            for p in pragmas {
                sqlx::query(p).execute(&mut *conn).await?;
            }
        }
        Backend::Postgres if read_only => {
            sqlx::query("SET default_transaction_read_only = on")
                .execute(&mut *conn)
                .await?;
        }
        Backend::Postgres => {}
    }
    Ok(())
}

/// A read-only SQLite URL for `url`. A database whose write-ahead log is
/// empty or absent is opened `immutable`, which needs no `-shm` file and so
/// works in a read-only directory; with a non-empty log beside it, SQLite must
/// read the log and needs its shared-memory index.
fn sqlite_read_only_url(url: &str) -> String {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    let wal = format!("{path}-wal");
    let log_is_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
    if log_is_empty {
        format!("sqlite://{path}?mode=ro&immutable=true")
    } else {
        format!("sqlite://{path}?mode=ro")
    }
}

/// The driver's words plus a hint; callers add which store (they know how to
/// print its URL without a password).
fn open_error_message(backend: Backend, read_only: bool, e: &sqlx::Error) -> String {
    let cause = match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    };
    let lower = cause.to_ascii_lowercase();
    let hint = match backend {
        Backend::Sqlite if lower.contains("readonly") || lower.contains("read-only") => {
            " (the file or its directory is read-only: `depin serve` needs to write there; \
             `depin audit-epoch` and `depin claims` open a store read-only)"
        }
        Backend::Sqlite if lower.contains("unable to open") => {
            " (check that the directory exists and is writable, and that the file is a depin store)"
        }
        Backend::Sqlite if read_only && lower.contains("no such table") => " (not a depin store)",
        Backend::Postgres if lower.contains("connect") || lower.contains("refused") => {
            " (is the PostgreSQL server running and reachable?)"
        }
        _ => "",
    };
    format!("{cause}{hint}")
}

/// A read-only open cannot migrate: the stored schema must be exactly what
/// this build would have written.
async fn check_schema_version(pool: &AnyPool, migrator: &sqlx::migrate::Migrator) -> Result<()> {
    let newest_known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    let stored: Option<i64> = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .map_err(|e| StoreError::Open(format!("not a depin store (no migration table): {e}")))?
        .try_get(0)?;
    match stored {
        Some(v) if v == newest_known => Ok(()),
        Some(v) if v < newest_known => Err(StoreError::Open(format!(
            "the store's schema is version {v}, older than this build's {newest_known}; \
             open it once with write access (depin serve) to migrate it"
        ))),
        Some(v) => Err(StoreError::Open(format!(
            "the store's schema is version {v}, newer than this build's {newest_known}; use a newer depin"
        ))),
        None => Err(StoreError::Open("the store has no schema yet".into())),
    }
}

/// A write transaction on a connection of its own.
///
/// Why not `sqlx::Transaction`: sqlx tracks the transaction depth itself, and
/// SQLite silently rolls a transaction back on some errors (a full disk,
/// `SQLITE_FULL`). The two then disagree: sqlx's rollback fails, the
/// connection goes back to the pool believing it is still inside a
/// transaction, the next `begin` becomes a `SAVEPOINT` inside a transaction
/// that is never committed, and "committed" reports pile up in it, hold the
/// write lock and vanish at shutdown. That is exactly what a disk-full test
/// showed.
///
/// So this issues `BEGIN`/`COMMIT`/`ROLLBACK` itself, and any error — of a
/// statement, of `COMMIT`, or a drop before commit — closes the connection
/// instead of returning it to the pool: a connection that saw an I/O error is
/// never reused. Closing makes the database roll back whatever was open.
/// Callers acknowledge anything only after [`WriteTx::commit`] returned `Ok`.
pub struct WriteTx {
    conn: Option<sqlx::pool::PoolConnection<Any>>,
    faults: std::sync::Arc<Faults>,
}

impl WriteTx {
    async fn begin(store: &Store) -> Result<WriteTx> {
        if store.read_only {
            return Err(StoreError::Open("the store is open read-only".into()));
        }
        store.faults.hit("begin")?;
        let mut conn = store.pool.acquire().await?;
        // IMMEDIATE takes SQLite's write lock now, so reads inside the
        // transaction see what is committed rather than an older snapshot.
        let begin = match store.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        let mut tx = WriteTx {
            conn: None,
            faults: store.faults.clone(),
        };
        match sqlx::Executor::execute(&mut *conn, begin).await {
            Ok(_) => {
                tx.conn = Some(conn);
                Ok(tx)
            }
            Err(e) => {
                discard(conn);
                Err(e.into())
            }
        }
    }

    /// The connection, inside the transaction.
    pub fn conn(&mut self) -> &mut AnyConnection {
        // `conn` is only taken by `commit`/`rollback`, which consume self.
        self.conn
            .as_mut()
            .expect("an open WriteTx has its connection")
    }

    /// A named step where a test may inject a failure (no-op otherwise).
    pub fn step(&self, name: &'static str) -> Result<()> {
        self.faults.hit(name)
    }

    /// Commits. On any error the connection is closed, never reused.
    pub async fn commit(mut self) -> Result<()> {
        self.faults.hit("commit")?;
        let mut conn = self
            .conn
            .take()
            .expect("an open WriteTx has its connection");
        match sqlx::Executor::execute(&mut *conn, "COMMIT").await {
            Ok(_) => Ok(()),
            Err(e) => {
                discard(conn);
                Err(e.into())
            }
        }
    }

    /// Rolls back, keeping the connection only if the rollback itself worked.
    pub async fn rollback(mut self) -> Result<()> {
        let mut conn = self
            .conn
            .take()
            .expect("an open WriteTx has its connection");
        match sqlx::Executor::execute(&mut *conn, "ROLLBACK").await {
            Ok(_) => Ok(()),
            Err(e) => {
                discard(conn);
                Err(e.into())
            }
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            discard(conn);
        }
    }
}

/// Closes a pooled connection instead of returning it: whatever transaction
/// it had open is rolled back by the database when it closes.
fn discard(mut conn: sqlx::pool::PoolConnection<Any>) {
    conn.close_on_drop();
    drop(conn);
}

/// Named points in the write paths where a test can make the store fail, to
/// check that an error at any step leaves nothing half-written and nothing
/// acknowledged that was not committed. Disarmed, a point costs one atomic
/// load. Only `fault-injection` builds can arm them.
#[derive(Debug, Default)]
pub struct Faults {
    /// 0: disarmed. n > 0: the n-th point passed from now fails.
    countdown: std::sync::atomic::AtomicU64,
    /// Whether the armed point panics instead of returning an error (to
    /// check that no panic below a background task can end it).
    panics: std::sync::atomic::AtomicBool,
    recording: std::sync::atomic::AtomicBool,
    seen: std::sync::Mutex<Vec<&'static str>>,
}

impl Faults {
    fn hit(&self, point: &'static str) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.recording.load(Ordering::Relaxed) {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(point);
        }
        let n = self.countdown.load(Ordering::Relaxed);
        if n == 0 {
            return Ok(());
        }
        if n == 1 {
            self.countdown.store(0, Ordering::Relaxed);
            if self.panics.swap(false, Ordering::Relaxed) {
                panic!("injected panic at step {point}");
            }
            return Err(StoreError::Injected(point));
        }
        self.countdown.store(n - 1, Ordering::Relaxed);
        Ok(())
    }

    /// Makes the `n`-th fault point passed from now on fail (1 = the next).
    pub fn fail_at(&self, n: u64) {
        self.countdown
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Makes the `n`-th fault point passed from now on panic.
    pub fn panic_at(&self, n: u64) {
        self.panics
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.fail_at(n);
    }

    pub fn disarm(&self) {
        self.panics
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.fail_at(0);
    }

    /// Starts recording the names of the points passed; returns those
    /// recorded since the previous call.
    pub fn record(&self) -> Vec<&'static str> {
        self.recording
            .store(true, std::sync::atomic::Ordering::Relaxed);
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }
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
                q = bind_val(q, v)?;
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
) -> Result<sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>> {
    Ok(match v {
        Val::Int(i) => q.bind(*i),
        Val::U64(u) => q.bind(to_i64(*u)?),
        Val::Blob(b) => q.bind(b.clone()),
        Val::Text(t) => q.bind(t.clone()),
        Val::NullInt => q.bind(Option::<i64>::None),
        // PostgreSQL types a NULL parameter, so a NULL bytea must be bound as one.
        Val::NullBlob => q.bind(Option::<Vec<u8>>::None),
    })
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
