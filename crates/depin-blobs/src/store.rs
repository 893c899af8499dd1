//! [`BlobStore`]: the I/O half. Everything here acts on an already parsed
//! [`StoreSpec`] and the pure [`Layout`].

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::{BlobError, Result};
use crate::id::BlobId;
use crate::layout::Layout;
use crate::spec::{S3Spec, StoreSpec};

/// Default per-blob size limit: 64 MiB.
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 64 * 1024 * 1024;
/// Default multipart part size: 8 MiB (S3's minimum is 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3 refuses parts below 5 MiB (except the last), so we refuse them at open.
pub const S3_MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Floor for local stores, where part size is only a buffering granularity.
const LOCAL_MIN_PART_SIZE: usize = 4 * 1024;
/// Blobs above this are hashed on a blocking thread, off the async workers.
const HASH_INLINE_MAX: usize = 1024 * 1024;
/// Read granularity for streams and files.
const READ_CHUNK: usize = 256 * 1024;

/// Static S3 credentials, for when the `AWS_*` environment is not the right
/// source (tests, several stores with different keys in one process).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    // Never print the secret: stores and options end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Settings for [`BlobStore::open_with`]. `Default` is what [`BlobStore::open`] uses.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    max_blob_size: u64,
    part_size: usize,
    upload_concurrency: usize,
    fsync: bool,
    s3_credentials: Option<S3Credentials>,
    max_retries: Option<usize>,
    retry_timeout: Option<Duration>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
            part_size: DEFAULT_PART_SIZE,
            upload_concurrency: 4,
            fsync: true,
            s3_credentials: None,
            max_retries: None,
            retry_timeout: None,
        }
    }
}

impl OpenOptions {
    /// Same as `Default`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Largest blob accepted by any put and served by any get (bytes, ≥ 1).
    pub fn with_max_blob_size(mut self, bytes: u64) -> Self {
        self.max_blob_size = bytes;
        self
    }

    /// Multipart part size for `put_stream` / `put_file` (≥ 5 MiB on S3).
    /// Inputs up to one part are written with a single put instead.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes;
        self
    }

    /// Parts in flight per upload (≥ 1); memory per upload is about
    /// `part_size × (concurrency + 1)`.
    pub fn with_upload_concurrency(mut self, n: usize) -> Self {
        self.upload_concurrency = n;
        self
    }

    /// Local directory only: fsync files and directories before a write is
    /// reported done (default on; turn off only for scratch stores).
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// S3 only: use these credentials instead of the `AWS_*` environment.
    pub fn with_s3_credentials(mut self, c: S3Credentials) -> Self {
        self.s3_credentials = Some(c);
        self
    }

    /// S3 only: bound retries of failed requests (object_store's defaults
    /// are 10 retries within 3 minutes).
    pub fn with_retry(mut self, max_retries: usize, retry_timeout: Duration) -> Self {
        self.max_retries = Some(max_retries);
        self.retry_timeout = Some(retry_timeout);
        self
    }

    fn validate(&self, s3: bool) -> Result<()> {
        let bad = |reason: String| Err(BlobError::InvalidConfig { reason });
        if self.max_blob_size == 0 {
            return bad("max_blob_size must be at least 1 byte".into());
        }
        let min = if s3 {
            S3_MIN_PART_SIZE
        } else {
            LOCAL_MIN_PART_SIZE
        };
        if self.part_size < min {
            return bad(format!(
                "part_size {} is below the minimum of {min} bytes for this backend",
                self.part_size
            ));
        }
        if self.upload_concurrency == 0 {
            return bad("upload_concurrency must be at least 1".into());
        }
        if let Some(c) = &self.s3_credentials
            && (c.access_key_id.is_empty() || c.secret_access_key.is_empty())
        {
            return bad("s3 credentials need a non-empty access key id and secret".into());
        }
        Ok(())
    }
}

/// What `head` and `list` report about a stored blob. Not verified: only
/// `get`/`get_to_file` hash the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The blob's id (from its key).
    pub id: BlobId,
    /// Stored size in bytes.
    pub size: u64,
    /// When the backend last wrote the object.
    pub last_modified: SystemTime,
}

#[derive(Debug, Clone)]
enum Backend {
    /// Local directory (canonical root), kept for the staging-file sweep.
    Local(PathBuf),
    S3,
    /// Handed in by [`BlobStore::from_object_store`].
    Other,
}

/// A content-addressed blob store over an [`ObjectStore`]. Cheap to clone
/// (shares the client); safe to use from many tasks at once.
///
/// Guarantees:
/// - An object under a content address is always complete: single puts and
///   multipart completions are atomic on both backends, and streamed uploads
///   are published by rename/copy only after they are fully written.
/// - `get` and `get_to_file` never hand out bytes that do not hash to the
///   requested id ([`BlobError::Corrupt`]), nor more than the size limit.
/// - Puts over the size limit are refused before anything is written
///   (`put`, `put_file`) or before anything becomes visible (`put_stream`).
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    layout: Layout,
    backend: Backend,
    describe: String,
    max_blob_size: u64,
    part_size: usize,
    upload_concurrency: usize,
    /// S3 lists keys in lexicographic order, so a page can stop early;
    /// other backends promise no order.
    sorted_listing: bool,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("store", &self.describe)
            .field("max_blob_size", &self.max_blob_size)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe)
    }
}

impl BlobStore {
    /// Open a store from a spec (see the crate docs for the accepted forms)
    /// with default [`OpenOptions`]. A local directory is created if missing.
    pub async fn open(spec: &str) -> Result<Self> {
        Self::open_with(spec, OpenOptions::default()).await
    }

    /// Open a store from a spec with explicit options.
    pub async fn open_with(spec: &str, opts: OpenOptions) -> Result<Self> {
        match StoreSpec::parse(spec)? {
            StoreSpec::Local { root } => Self::open_local(root, opts).await,
            StoreSpec::S3(s3) => Self::open_s3(s3, opts),
        }
    }

    /// Wrap any object store (in-memory for tests, a store the caller built
    /// with its own settings) with keys under `prefix` (`""` for the root).
    pub fn from_object_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        opts: OpenOptions,
    ) -> Result<Self> {
        opts.validate(false)?;
        let prefix = ObjPath::parse(prefix).map_err(|e| BlobError::InvalidPrefix {
            prefix: prefix.into(),
            reason: e.to_string(),
        })?;
        let describe = format!("{store}/{prefix}");
        Ok(Self::assemble(
            store,
            prefix,
            Backend::Other,
            describe,
            &opts,
        ))
    }

    async fn open_local(root: PathBuf, opts: OpenOptions) -> Result<Self> {
        opts.validate(false)?;
        let shown = root.display().to_string();
        // Say "not a directory" plainly rather than create_dir_all's EEXIST.
        if let Ok(m) = tokio::fs::metadata(&root).await
            && !m.is_dir()
        {
            return Err(BlobError::InvalidPath {
                reason: format!("{shown} exists and is not a directory"),
            });
        }
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(|e| BlobError::io(format!("creating blob directory {shown}"), e))?;
        // Canonical so the description and the sweep name the real place,
        // whatever the working directory does later.
        let root = tokio::fs::canonicalize(&root)
            .await
            .map_err(|e| BlobError::io(format!("resolving blob directory {shown}"), e))?;
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| BlobError::backend("open", e))?
            .with_fsync(opts.fsync)
            // Remove emptied fan-out directories on delete.
            .with_automatic_cleanup(true);
        let describe = format!("file://{}", root.display());
        Ok(Self::assemble(
            Arc::new(fs),
            ObjPath::ROOT,
            Backend::Local(root),
            describe,
            &opts,
        ))
    }

    fn open_s3(s3: S3Spec, opts: OpenOptions) -> Result<Self> {
        opts.validate(true)?;
        // Environment first, then the URL's options on top: the spec a person
        // wrote beats whatever the process inherited.
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&s3.bucket);
        if let Some(ep) = &s3.endpoint {
            b = b.with_endpoint(ep);
        }
        if let Some(r) = &s3.region {
            b = b.with_region(r);
        }
        if let Some(v) = s3.allow_http {
            b = b.with_allow_http(v);
        }
        if let Some(v) = s3.virtual_hosted_style {
            b = b.with_virtual_hosted_style_request(v);
        }
        if let Some(v) = s3.skip_signature {
            b = b.with_skip_signature(v);
        }
        if let Some(c) = &opts.s3_credentials {
            b = b
                .with_access_key_id(&c.access_key_id)
                .with_secret_access_key(&c.secret_access_key);
            if let Some(t) = &c.session_token {
                b = b.with_token(t);
            }
        }
        if opts.max_retries.is_some() || opts.retry_timeout.is_some() {
            let mut rc = object_store::RetryConfig::default();
            if let Some(n) = opts.max_retries {
                rc.max_retries = n;
            }
            if let Some(t) = opts.retry_timeout {
                rc.retry_timeout = t;
            }
            b = b.with_retry(rc);
        }
        let store = b.build().map_err(|e| BlobError::InvalidConfig {
            reason: format!("s3 client: {e}"),
        })?;
        let prefix = ObjPath::parse(&s3.prefix).map_err(|e| BlobError::InvalidPrefix {
            prefix: s3.prefix.clone(),
            reason: e.to_string(),
        })?;
        let mut describe = format!("s3://{}", s3.bucket);
        if !s3.prefix.is_empty() {
            describe.push('/');
            describe.push_str(&s3.prefix);
        }
        if let Some(ep) = &s3.endpoint {
            describe.push_str(&format!(" at {ep}"));
        }
        let mut me = Self::assemble(Arc::new(store), prefix, Backend::S3, describe, &opts);
        me.sorted_listing = true;
        Ok(me)
    }

    fn assemble(
        inner: Arc<dyn ObjectStore>,
        prefix: ObjPath,
        backend: Backend,
        describe: String,
        opts: &OpenOptions,
    ) -> Self {
        Self {
            inner,
            layout: Layout::new(prefix),
            backend,
            describe,
            max_blob_size: opts.max_blob_size,
            part_size: opts.part_size,
            upload_concurrency: opts.upload_concurrency,
            sorted_listing: false,
        }
    }

    /// The configured per-blob size limit.
    pub fn max_blob_size(&self) -> u64 {
        self.max_blob_size
    }

    /// The object key a blob is stored under (for operators and debugging).
    pub fn key_of(&self, id: &BlobId) -> String {
        self.layout.blob_key(id).to_string()
    }

    fn check_size(&self, size: u64) -> Result<()> {
        if size > self.max_blob_size {
            return Err(BlobError::TooLarge {
                size,
                limit: self.max_blob_size,
            });
        }
        Ok(())
    }

    /// Store `bytes`, returning their id. Idempotent: storing the same bytes
    /// again rewrites the same content (which also repairs a damaged copy).
    pub async fn put(&self, bytes: impl Into<Bytes>) -> Result<BlobId> {
        let bytes = bytes.into();
        self.check_size(bytes.len() as u64)?;
        let id = hash_bytes(bytes.clone()).await?;
        self.put_at(id, bytes).await?;
        Ok(id)
    }

    /// One atomic write at the content address. Both backends publish a
    /// single put atomically (S3 PUT; local staging file + rename).
    async fn put_at(&self, id: BlobId, bytes: Bytes) -> Result<()> {
        self.inner
            .put(&self.layout.blob_key(&id), PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| BlobError::backend("put", e))?;
        Ok(())
    }

    /// Store everything `reader` yields. The bytes are hashed as they are
    /// uploaded; an input that fits one part is written with a single put,
    /// a larger one goes by multipart upload to a temporary key and is then
    /// renamed (local) or copied (S3) to its content address. A stream that
    /// crosses the size limit is aborted with [`BlobError::TooLarge`] and
    /// leaves nothing visible.
    ///
    /// On S3 the final copy is a single CopyObject, so a streamed blob must
    /// stay under S3's 5 GiB copy limit; `put_file` has no such limit.
    pub async fn put_stream<R: AsyncRead + Unpin + Send>(&self, mut reader: R) -> Result<BlobId> {
        let mut hasher = blake3::Hasher::new();
        // Fill the first part in memory: most inputs end here and need no
        // multipart upload, temporary object or copy.
        // Never buffer more than limit + 1 bytes: one past the limit is
        // enough to know the stream is too large.
        let cap = usize::try_from(self.max_blob_size.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(self.part_size);
        let first = read_up_to(&mut reader, cap, "reading blob stream").await?;
        self.check_size(first.len() as u64)?;
        if first.len() < self.part_size {
            return self.put(first).await;
        }
        hasher.update(&first);
        let mut total = first.len() as u64;

        let tmp = self.layout.tmp_key(rand::random::<u128>());
        let upload = self
            .inner
            .put_multipart(&tmp)
            .await
            .map_err(|e| BlobError::backend("put_stream", e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        w.put(first);
        let step: Result<()> = async {
            loop {
                let mut buf = BytesMut::with_capacity(READ_CHUNK);
                let n = reader
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| BlobError::io("reading blob stream", e))?;
                if n == 0 {
                    return Ok(());
                }
                total += n as u64;
                self.check_size(total)?;
                hasher.update(&buf);
                w.wait_for_capacity(self.upload_concurrency)
                    .await
                    .map_err(|e| BlobError::backend("put_stream", e))?;
                w.put(buf.freeze());
            }
        }
        .await;
        if let Err(e) = step {
            // Best effort: an abandoned S3 multipart upload is invisible but
            // billed until a lifecycle rule reaps it.
            let _ = w.abort().await;
            return Err(e);
        }
        // `finish` aborts the upload itself if completing fails.
        w.finish()
            .await
            .map_err(|e| BlobError::backend("put_stream", e))?;
        let id = BlobId::from(hasher.finalize());
        self.publish(&tmp, id, total).await?;
        Ok(id)
    }

    /// Move a fully written temporary object to its content address.
    async fn publish(&self, tmp: &ObjPath, id: BlobId, size: u64) -> Result<()> {
        let key = self.layout.blob_key(&id);
        let present = match self.inner.head(&key).await {
            Ok(meta) => meta.size == size,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => {
                let _ = self.inner.delete(tmp).await;
                return Err(BlobError::backend("put_stream", e));
            }
        };
        let res = if present {
            // Already stored: skip the copy, just drop our temporary.
            self.inner.delete(tmp).await
        } else {
            // Local: rename(2), atomic. S3: CopyObject (atomic) then delete.
            self.inner.rename(tmp, &key).await
        };
        if let Err(e) = res {
            let _ = self.inner.delete(tmp).await;
            return Err(BlobError::backend("put_stream", e));
        }
        Ok(())
    }

    /// Store a file. Its size is checked against the limit before anything
    /// is written. Small files are read and put whole; large ones are hashed
    /// in a first pass and then uploaded by multipart straight to their
    /// content address (a multipart object becomes visible only when
    /// completed), re-hashing on the way: if the file changed in between, the
    /// upload is aborted with [`BlobError::SourceChanged`]. A blob already
    /// present with the same size is not uploaded again.
    pub async fn put_file(&self, path: impl AsRef<FsPath>) -> Result<BlobId> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| BlobError::io(format!("reading {shown}"), e))?;
        if !meta.is_file() {
            return Err(BlobError::io(
                format!("reading {shown}"),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        self.check_size(meta.len())?;
        if meta.len() <= self.part_size as u64 {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| BlobError::io(format!("reading {shown}"), e))?;
            // Read at most limit + 1 bytes: the file may have grown since stat.
            let bytes = read_up_to(
                &mut file.take(self.max_blob_size + 1),
                usize::try_from(self.max_blob_size.saturating_add(1)).unwrap_or(usize::MAX),
                &format!("reading {shown}"),
            )
            .await?;
            return self.put(bytes).await;
        }

        // Pass 1: hash (blocking thread: this is pure CPU + sequential read).
        let limit = self.max_blob_size;
        let p1 = path.clone();
        let (id, len) = tokio::task::spawn_blocking(move || -> std::io::Result<(BlobId, u64)> {
            let f = std::fs::File::open(&p1)?;
            let mut h = blake3::Hasher::new();
            let n = std::io::copy(&mut std::io::Read::take(f, limit + 1), &mut h)?;
            Ok((BlobId::from(h.finalize()), n))
        })
        .await
        .map_err(|e| BlobError::io(format!("hashing {shown}"), std::io::Error::other(e)))?
        .map_err(|e| BlobError::io(format!("hashing {shown}"), e))?;
        self.check_size(len)?;

        let key = self.layout.blob_key(&id);
        match self.inner.head(&key).await {
            Ok(m) if m.size == len => return Ok(id),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(BlobError::backend("put_file", e)),
        }

        // Pass 2: upload straight to the content address, hashing again.
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| BlobError::io(format!("reading {shown}"), e))?;
        let upload = self
            .inner
            .put_multipart(&key)
            .await
            .map_err(|e| BlobError::backend("put_file", e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        let step: Result<()> = async {
            loop {
                let mut buf = BytesMut::with_capacity(READ_CHUNK);
                let n = file
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| BlobError::io(format!("reading {shown}"), e))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > len {
                    break; // grew: caught as SourceChanged below
                }
                hasher.update(&buf);
                w.wait_for_capacity(self.upload_concurrency)
                    .await
                    .map_err(|e| BlobError::backend("put_file", e))?;
                w.put(buf.freeze());
            }
            if total != len || BlobId::from(hasher.finalize()) != id {
                return Err(BlobError::SourceChanged {
                    path: shown.clone(),
                });
            }
            Ok(())
        }
        .await;
        if let Err(e) = step {
            let _ = w.abort().await;
            return Err(e);
        }
        w.finish()
            .await
            .map_err(|e| BlobError::backend("put_file", e))?;
        Ok(id)
    }

    /// Fetch a blob whole, verifying its hash. [`BlobError::Corrupt`] if the
    /// stored bytes do not match `id`; [`BlobError::TooLarge`] if the stored
    /// object is over the limit (read no further than the limit).
    pub async fn get(&self, id: &BlobId) -> Result<Bytes> {
        let res = self
            .inner
            .get(&self.layout.blob_key(id))
            .await
            .map_err(|e| not_found_or(e, id, "get"))?;
        self.check_size(res.meta.size)?;
        let cap = usize::try_from(res.meta.size).unwrap_or(0);
        let mut buf = BytesMut::with_capacity(cap);
        let mut hasher = blake3::Hasher::new();
        let mut stream = res.into_stream();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| BlobError::backend("get", e))?
        {
            // The size in the metadata is the backend's word; enforce the
            // limit on what actually arrives too.
            self.check_size((buf.len() + chunk.len()) as u64)?;
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        verify(id, hasher)?;
        Ok(buf.freeze())
    }

    /// Stream a blob into `dest`, verifying on the way. The bytes go to a
    /// temporary file beside `dest`, which is fsynced and renamed over `dest`
    /// only once the hash matches: `dest` is never left holding unverified or
    /// partial content. Returns the size written.
    pub async fn get_to_file(&self, id: &BlobId, dest: impl AsRef<FsPath>) -> Result<u64> {
        let dest = dest.as_ref().to_path_buf();
        let shown = dest.display().to_string();
        let res = self
            .inner
            .get(&self.layout.blob_key(id))
            .await
            .map_err(|e| not_found_or(e, id, "get"))?;
        self.check_size(res.meta.size)?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".depin-blob-")
            .suffix(".part")
            .tempfile_in(&parent)
            .map_err(|e| BlobError::io(format!("creating a temporary file for {shown}"), e))?;
        let std_file = tmp
            .as_file()
            .try_clone()
            .map_err(|e| BlobError::io(format!("writing {shown}"), e))?;
        let mut out = tokio::fs::File::from_std(std_file);
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        let mut stream = res.into_stream();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| BlobError::backend("get", e))?
        {
            total += chunk.len() as u64;
            self.check_size(total)?;
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| BlobError::io(format!("writing {shown}"), e))?;
        }
        // On any error above `tmp` is dropped, which deletes it.
        verify(id, hasher)?;
        out.flush()
            .await
            .map_err(|e| BlobError::io(format!("writing {shown}"), e))?;
        out.sync_all()
            .await
            .map_err(|e| BlobError::io(format!("syncing {shown}"), e))?;
        drop(out);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            tmp.persist(&dest).map_err(|e| e.error)?;
            // Make the rename itself durable.
            std::fs::File::open(&parent)?.sync_all()
        })
        .await
        .map_err(|e| BlobError::io(format!("renaming into {shown}"), std::io::Error::other(e)))?
        .map_err(|e| BlobError::io(format!("renaming into {shown}"), e))?;
        Ok(total)
    }

    /// Size and modification time of a blob, without reading or verifying it.
    pub async fn head(&self, id: &BlobId) -> Result<BlobMeta> {
        let m = self
            .inner
            .head(&self.layout.blob_key(id))
            .await
            .map_err(|e| not_found_or(e, id, "head"))?;
        Ok(BlobMeta {
            id: *id,
            size: m.size,
            last_modified: m.last_modified.into(),
        })
    }

    /// Whether a blob is stored (not verified).
    pub async fn exists(&self, id: &BlobId) -> Result<bool> {
        match self.head(id).await {
            Ok(_) => Ok(true),
            Err(BlobError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete a blob. Deleting a blob that is not there is not an error (S3
    /// does not tell the difference, so neither do we).
    pub async fn delete(&self, id: &BlobId) -> Result<()> {
        match self.inner.delete(&self.layout.blob_key(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BlobError::backend("delete", e)),
        }
    }

    /// Every stored blob, as a stream, in no particular order. Objects under
    /// the prefix that are not blob keys are skipped.
    pub fn list(&self) -> BoxStream<'static, Result<BlobMeta>> {
        self.list_from(None)
    }

    /// Like [`list`](Self::list), but only blobs whose id is greater than `after`.
    pub fn list_after(&self, after: &BlobId) -> BoxStream<'static, Result<BlobMeta>> {
        self.list_from(Some(after))
    }

    fn list_from(&self, after: Option<&BlobId>) -> BoxStream<'static, Result<BlobMeta>> {
        let dir = self.layout.blobs_dir();
        let raw = match after {
            // Keys sort like ids: the fan-out is the id's own first two hex.
            Some(a) => self
                .inner
                .list_with_offset(Some(&dir), &self.layout.blob_key(a)),
            None => self.inner.list(Some(&dir)),
        };
        let layout = self.layout.clone();
        raw.filter_map(move |item| {
            let out = match item {
                Ok(m) => to_meta(&layout, m).map(Ok),
                // A prefix that was never written is an empty store.
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => Some(Err(BlobError::backend("list", e))),
            };
            std::future::ready(out)
        })
        .boxed()
    }

    /// One page of blobs in id order: up to `limit` blobs with ids greater
    /// than `after`. Pass the last id of a page as `after` to get the next;
    /// a page shorter than `limit` is the last.
    pub async fn list_page(&self, after: Option<&BlobId>, limit: usize) -> Result<Vec<BlobMeta>> {
        let mut stream = self.list_from(after);
        let mut page: Vec<BlobMeta> = Vec::new();
        if limit == 0 {
            return Ok(page);
        }
        while let Some(m) = stream.try_next().await? {
            page.push(m);
            if self.sorted_listing && page.len() == limit {
                break;
            }
            // Unordered backends: keep the `limit` smallest seen so far, so
            // memory stays bounded by the page, not the store.
            if page.len() > 2 * limit {
                page.sort_by_key(|m| m.id);
                page.truncate(limit);
            }
        }
        page.sort_by_key(|m| m.id);
        page.truncate(limit);
        Ok(page)
    }

    /// Delete leftovers of interrupted uploads older than `older_than`:
    /// temporary objects of `put_stream` and, on a local directory,
    /// object_store's own `name#N` staging files. Returns how many were
    /// removed. Uploads younger than `older_than` may still be in progress,
    /// so pick something well above your longest upload (an hour, a day).
    /// Abandoned S3 multipart uploads are invisible to listing; reap them with
    /// a bucket lifecycle rule (`AbortIncompleteMultipartUpload`).
    pub async fn sweep_temp(&self, older_than: Duration) -> Result<usize> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut stale: Vec<ObjPath> = Vec::new();
        let mut s = self.inner.list(Some(&self.layout.tmp_dir()));
        loop {
            match s.try_next().await {
                Ok(Some(m)) => {
                    if SystemTime::from(m.last_modified) <= cutoff {
                        stale.push(m.location);
                    }
                }
                Ok(None) | Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(BlobError::backend("sweep", e)),
            }
        }
        let mut removed = 0;
        for p in stale {
            match self.inner.delete(&p).await {
                Ok(()) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(BlobError::backend("sweep", e)),
            }
        }
        if let Backend::Local(root) = &self.backend {
            let root = root.clone();
            let prefix = self.layout.prefix().to_string();
            removed += tokio::task::spawn_blocking(move || sweep_staging(&root, &prefix, cutoff))
                .await
                .map_err(|e| BlobError::io("sweeping staging files", std::io::Error::other(e)))?
                .map_err(|e| BlobError::io("sweeping staging files", e))?;
        }
        Ok(removed)
    }
}

fn to_meta(layout: &Layout, m: ObjectMeta) -> Option<BlobMeta> {
    Some(BlobMeta {
        id: layout.parse_blob_key(&m.location)?,
        size: m.size,
        last_modified: m.last_modified.into(),
    })
}

fn not_found_or(e: object_store::Error, id: &BlobId, op: &'static str) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound { id: *id },
        e => BlobError::backend(op, e),
    }
}

fn verify(id: &BlobId, hasher: blake3::Hasher) -> Result<()> {
    let actual = BlobId::from(hasher.finalize());
    if actual != *id {
        tracing::warn!(blob = %id, %actual, "stored blob does not match its address");
        return Err(BlobError::Corrupt { id: *id, actual });
    }
    Ok(())
}

/// Hash off the async workers when the input is big enough to matter.
async fn hash_bytes(bytes: Bytes) -> Result<BlobId> {
    if bytes.len() <= HASH_INLINE_MAX {
        return Ok(BlobId::of(&bytes));
    }
    tokio::task::spawn_blocking(move || BlobId::of(&bytes))
        .await
        .map_err(|e| BlobError::io("hashing", std::io::Error::other(e)))
}

/// Read until `max` bytes or end of input, whichever is first.
async fn read_up_to<R: AsyncRead + Unpin>(r: &mut R, max: usize, op: &str) -> Result<Bytes> {
    let mut buf = BytesMut::with_capacity(max.min(READ_CHUNK));
    while buf.len() < max {
        let want = (max - buf.len()).min(READ_CHUNK);
        buf.reserve(want);
        let n = (&mut *r)
            .take(want as u64)
            .read_buf(&mut buf)
            .await
            .map_err(|e| BlobError::io(op, e))?;
        if n == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

/// object_store's LocalFileSystem stages writes as `<name>#<digits>` next to
/// the target and renames on success; a crash leaves the staging file behind,
/// invisible to listing. Walk only our own two directories, two levels deep.
fn sweep_staging(root: &FsPath, prefix: &str, cutoff: SystemTime) -> std::io::Result<usize> {
    let base = if prefix.is_empty() {
        root.to_path_buf()
    } else {
        root.join(prefix)
    };
    let mut removed = 0;
    let mut dirs = vec![base.join(crate::layout::TMP_DIR)];
    if let Ok(rd) = std::fs::read_dir(base.join(crate::layout::HASH_DIR)) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            }
        }
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let staged = name
                .rsplit_once('#')
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !staged {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t <= cutoff);
            if old && e.file_type().is_ok_and(|t| t.is_file()) {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => removed += 1,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
            }
        }
    }
    Ok(removed)
}
