//! A throwaway PostgreSQL server for tests: `initdb` in a temporary directory,
//! `postgres` on a free loopback port, removed on drop.
//!
//! Where the server binaries are missing the harness says so and the caller
//! skips, unless `DEPIN_REQUIRE_POSTGRES=1` (set by `.ci/run`), which turns the
//! skip into a failure so CI can never pass by skipping.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestPostgres {
    child: Child,
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    root: bool,
    port: u16,
}

/// Finds `initdb` and `postgres`: on PATH, or in Debian's versioned folder.
fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `initdb` and `postgres` refuse to run as root; as root we run them as the
/// `postgres` system user the distribution package creates.
fn command(bin: &Path, as_postgres_user: bool) -> Command {
    if as_postgres_user {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl TestPostgres {
    /// Starts a server, or returns `None` (after printing why) when PostgreSQL
    /// is not installed and not required.
    pub fn start() -> Option<TestPostgres> {
        let Some(bin) = find_bin_dir() else {
            depin_testkit::skip(
                "DEPIN_REQUIRE_POSTGRES",
                "PostgreSQL server binaries (initdb, postgres) not found; install the postgresql package",
            );
            return None;
        };
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("depin-pg-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        if root {
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                ok,
                "running as root: could not chown the temp dir to the postgres user"
            );
        }
        let out = command(&bin.join("initdb"), root)
            .args([
                "-A",
                "trust",
                "-U",
                "depin",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let child = command(&bin.join("postgres"), root)
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=50",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn postgres");
        let pg = TestPostgres {
            child,
            _dir: dir,
            data,
            bin,
            root,
            port,
        };
        pg.wait_ready();
        Some(pg)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // The port opens a moment before the server accepts logins; the
                // caller's pool retries through that window (acquire timeout).
                std::thread::sleep(Duration::from_millis(200));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "postgres did not start listening on 127.0.0.1:{} within 30 s",
            self.port
        );
    }

    /// URL of a fresh database named `name` (created on first use).
    pub fn url(&self, name: &str) -> String {
        let createdb = self.bin.join("createdb");
        let status = if createdb.is_file() {
            command(&createdb, self.root)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "depin",
                    name,
                ])
                .status()
                .expect("createdb")
        } else {
            Command::new("psql")
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "depin",
                    "-d",
                    "postgres",
                    "-c",
                ])
                .arg(format!("CREATE DATABASE {name}"))
                .status()
                .expect("psql")
        };
        assert!(status.success(), "could not create database {name}");
        format!("postgres://depin@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // As root the server runs under `runuser`, which would orphan it if we
        // only killed our child; pg_ctl stops the postmaster itself.
        let _ = command(&self.bin.join("pg_ctl"), self.root)
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A small real file system (tmpfs) mounted in a temporary directory, for
/// tests of a full disk and of a read-only store. Mounting needs root (CI runs
/// as root); elsewhere the harness says so and the caller skips, unless
/// `DEPIN_REQUIRE_TMPFS=1` (set by `.ci/run`) turns the skip into a failure.
pub struct TestTmpfs {
    dir: tempfile::TempDir,
}

impl TestTmpfs {
    /// Mounts a tmpfs of `bytes` bytes, or returns `None` after saying why.
    pub fn mount(bytes: u64) -> Option<TestTmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("depin-tmpfs-")
            .tempdir()
            .expect("temp dir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes}"))
            .arg("tmpfs")
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            depin_testkit::skip(
                "DEPIN_REQUIRE_TMPFS",
                "cannot mount a tmpfs here (needs root)",
            );
            return None;
        }
        Some(TestTmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts the file system read-only (root ignores permission bits, so
    /// this is how a test running as root gets a truly read-only directory).
    pub fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "remounting the tmpfs read-only failed");
    }
}

impl Drop for TestTmpfs {
    fn drop(&mut self) {
        // Lazy unmount: a store still closing does not keep it mounted.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A store's schema as (table, column) → (type family, not null, part of the
/// primary key), types compared by family (integer, bytes, text), read from
/// the backend's own catalogue: what `assert_same_schema` compares between
/// SQLite and PostgreSQL.
pub type Schema = std::collections::BTreeMap<(String, String), (String, bool, bool)>;

fn family(t: &str) -> String {
    let t = t.to_ascii_lowercase();
    if t.contains("int") {
        "integer".into()
    } else if t.contains("blob") || t.contains("bytea") {
        "bytes".into()
    } else if t.contains("text") || t.contains("char") {
        "text".into()
    } else {
        t
    }
}

/// The store's [`Schema`] (sqlx's own bookkeeping table left out).
pub async fn schema(store: &crate::Store) -> Schema {
    use sqlx::Row;
    let mut out = Schema::new();
    match store.backend() {
        crate::Backend::Sqlite => {
            let tables = sqlx::query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
            )
            .fetch_all(store.pool())
            .await
            .expect("read sqlite_master");
            for t in tables {
                let table: String = t.get(0);
                let cols = sqlx::query(&format!(
                    "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}')"
                ))
                .fetch_all(store.pool())
                .await
                .expect("read table info");
                for c in cols {
                    let pk = c.get::<i64, _>(3) > 0;
                    // SQLite lets a primary-key column be NULL unless declared
                    // NOT NULL; PostgreSQL makes it NOT NULL: compare what each
                    // enforces.
                    let not_null = c.get::<i64, _>(2) == 1 || pk;
                    out.insert(
                        (table.clone(), c.get(0)),
                        (family(&c.get::<String, _>(1)), not_null, pk),
                    );
                }
            }
        }
        crate::Backend::Postgres => {
            let cols = sqlx::query(
                "SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.is_nullable::text, \
                 (SELECT COUNT(*) FROM information_schema.table_constraints tc \
                  JOIN information_schema.key_column_usage k ON tc.constraint_name = k.constraint_name AND tc.table_name = k.table_name \
                  WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_name = c.table_name AND k.column_name = c.column_name) \
                 FROM information_schema.columns c WHERE c.table_schema = 'public' AND c.table_name NOT LIKE '_sqlx%'",
            )
            .fetch_all(store.pool())
            .await
            .expect("read information_schema");
            for c in cols {
                let pk = c.get::<i64, _>(4) > 0;
                out.insert(
                    (c.get(0), c.get(1)),
                    (
                        family(&c.get::<String, _>(2)),
                        c.get::<String, _>(3) == "NO",
                        pk,
                    ),
                );
            }
        }
    }
    out
}

/// Panics, listing the differences, unless the two schemas are the same.
pub fn assert_same_schema(sqlite: &Schema, postgres: &Schema) {
    let only_a: Vec<_> = sqlite
        .iter()
        .filter(|(k, v)| postgres.get(*k) != Some(v))
        .collect();
    let only_b: Vec<_> = postgres
        .iter()
        .filter(|(k, v)| sqlite.get(*k) != Some(v))
        .collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "the schemas differ:\n  SQLite only or different: {only_a:?}\n  PostgreSQL only or different: {only_b:?}"
    );
}
