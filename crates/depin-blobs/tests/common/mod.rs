//! Test backends: a real local directory, and a real S3 server (s3s + s3s-fs)
//! on 127.0.0.1 with an ephemeral port, run inside the test's own runtime.
//! No mocks: both go through object_store exactly as production does.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use depin_blobs::{BlobId, BlobStore, OpenOptions, S3Credentials};
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const ACCESS_KEY: &str = "depin-test-access";
pub const SECRET_KEY: &str = "depin-test-secret-0123456789";
pub const BUCKET: &str = "depin-test";
/// A non-empty prefix, so the S3 suite also covers prefixed layouts.
pub const PREFIX: &str = "site-1/frames";

pub enum Kind {
    Local,
    S3,
}

/// A store plus the on-disk place its bytes live, so tests can damage them
/// the way a failing disk or a tampering bucket would.
pub struct Backend {
    pub store: BlobStore,
    pub spec: String,
    /// Directory that object keys are relative to on disk.
    disk_root: PathBuf,
    kind: Kind,
    server: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}

pub fn creds() -> S3Credentials {
    S3Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        session_token: None,
    }
}

/// Options every test store gets: S3 retries bounded so a failing test fails
/// in seconds, not object_store's default three minutes.
pub fn base_opts(kind: &Kind) -> OpenOptions {
    let o = OpenOptions::new().with_retry(1, Duration::from_secs(5));
    match kind {
        Kind::Local => o,
        Kind::S3 => o.with_s3_credentials(creds()),
    }
}

impl Backend {
    pub async fn new(kind: Kind) -> Self {
        let opts = base_opts(&kind);
        Self::with_opts(kind, opts).await
    }

    pub async fn with_opts(kind: Kind, opts: OpenOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        match kind {
            Kind::Local => {
                let root = dir.path().join("blobs");
                let spec = root.display().to_string();
                let store = BlobStore::open_with(&spec, opts).await.expect("open local");
                let disk_root = std::fs::canonicalize(&root).expect("canonical root");
                Self {
                    store,
                    spec,
                    disk_root,
                    kind,
                    server: None,
                    _dir: dir,
                }
            }
            Kind::S3 => {
                let fs_root = dir.path().join("s3");
                std::fs::create_dir_all(fs_root.join(BUCKET)).expect("bucket dir");
                let (addr, server) = start_s3(&fs_root).await;
                let spec = format!(
                    "s3://{BUCKET}/{PREFIX}?endpoint=http://{addr}&region=us-east-1&allow_http=true"
                );
                let store = BlobStore::open_with(&spec, opts).await.expect("open s3");
                Self {
                    store,
                    spec,
                    disk_root: fs_root.join(BUCKET),
                    kind,
                    server: Some(server),
                    _dir: dir,
                }
            }
        }
    }

    pub fn is_s3(&self) -> bool {
        matches!(self.kind, Kind::S3)
    }

    /// Open the same place again with other options.
    pub async fn reopen(&self, opts: OpenOptions) -> BlobStore {
        BlobStore::open_with(&self.spec, opts)
            .await
            .expect("reopen")
    }

    /// Base options for this backend (credentials, bounded retries).
    pub fn opts(&self) -> OpenOptions {
        base_opts(&self.kind)
    }

    /// The file on disk that holds a blob's bytes.
    pub fn object_file(&self, id: &BlobId) -> PathBuf {
        self.disk_root.join(self.store.key_of(id))
    }

    /// A path on disk for an arbitrary key under the store's prefix.
    pub fn raw_file(&self, rel_key: &str) -> PathBuf {
        match self.kind {
            Kind::Local => self.disk_root.join(rel_key),
            Kind::S3 => self.disk_root.join(PREFIX).join(rel_key),
        }
    }

    /// A scratch directory that outlives nothing but this backend.
    pub fn scratch(&self) -> PathBuf {
        let p = self._dir.path().join("scratch");
        std::fs::create_dir_all(&p).expect("scratch dir");
        p
    }
}

/// Serve s3s-fs over `root` on 127.0.0.1:0 with static SigV4 credentials.
pub async fn start_s3(root: &Path) -> (SocketAddr, JoinHandle<()>) {
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = b.build();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let svc = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    (addr, handle)
}

/// Deterministic pseudo-random bytes (xorshift), so large-blob tests need no
/// rand dependency and fail reproducibly.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    // Spread the seed first: `seed | 1` alone maps 100 and 101 to one stream.
    let mut x = seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Flip one byte of a file in place (same length: only the hash can tell).
pub fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).expect("read object file");
    b[at] ^= 0x5a;
    std::fs::write(path, b).expect("write object file");
}
