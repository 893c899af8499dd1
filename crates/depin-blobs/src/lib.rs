//! # depin-blobs
//!
//! A content-addressed store for bulk bytes — sensor frames, compute modules
//! and their outputs, report-log archives — on the [`object_store`] crate: a
//! local directory by default, any S3-compatible bucket by URL for scale.
//!
//! A blob is named by the blake3 hash of its bytes ([`BlobId`]) and stored at
//! `<prefix>/blake3/<first 2 hex>/<64 hex>`. Reads verify the hash, so a
//! damaged disk or a tampering bucket yields [`BlobError::Corrupt`], never
//! wrong bytes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), depin_blobs::BlobError> {
//! use depin_blobs::BlobStore;
//! let store = BlobStore::open("/var/lib/depin/blobs").await?;
//! let id = store.put(&b"frame 0001"[..]).await?;
//! assert_eq!(&store.get(&id).await?[..], b"frame 0001");
//! # Ok(()) }
//! ```
//!
//! ## Specs accepted by [`BlobStore::open`]
//!
//! - `/abs/dir` or `rel/dir`: a local directory, created if missing.
//! - `file:///abs/dir` (also `file:/abs/dir`, `file://localhost/abs/dir`),
//!   percent-decoded. Relative file URLs and other hosts are refused.
//! - `s3://bucket[/key/prefix][?options]`, options (each at most once):
//!   `endpoint=<http(s) URL>`, `region=<name>`, `allow_http=true|false`
//!   (required for an `http://` endpoint), `virtual_hosted_style=true|false`,
//!   `skip_signature=true|false`. Everything not given comes from the
//!   `AWS_*` environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, …);
//!   URL options win over the environment. Credentials are never accepted
//!   in the URL: use the environment or [`OpenOptions::with_s3_credentials`].

mod error;
mod id;
mod layout;
pub mod spec;
mod store;

pub use error::{BlobError, Result};
pub use id::BlobId;
pub use spec::{S3Spec, StoreSpec};
pub use store::{
    BlobMeta, BlobStore, DEFAULT_MAX_BLOB_SIZE, DEFAULT_PART_SIZE, OpenOptions, S3_MIN_PART_SIZE,
    S3Credentials,
};
