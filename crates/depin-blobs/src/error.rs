//! One error type for the crate, with a stable machine-readable code per
//! variant so callers (HTTP handlers, the CLI, logs) can branch and alert on
//! the kind of failure without matching on message text.

use crate::id::BlobId;

/// Everything that can go wrong opening or using a [`BlobStore`](crate::BlobStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    // --- store specs (see `spec.rs`) ---
    /// The spec was empty or only whitespace.
    #[error("blob store spec is empty: give a directory, file:///abs/path or s3://bucket[/prefix]")]
    EmptySpec,

    /// A local directory path that can never be valid.
    #[error("blob store directory path is invalid: {reason}")]
    InvalidPath {
        /// What is wrong with it.
        reason: String,
    },

    /// A `scheme://` we don't serve.
    #[error(
        "blob store spec has unknown scheme {scheme:?}: supported are a plain directory path, file:// and s3://"
    )]
    UnknownScheme {
        /// The scheme as written.
        scheme: String,
    },

    /// Not a well-formed URL.
    #[error("blob store spec is not a valid URL: {reason}")]
    InvalidUrl {
        /// What the URL parser or our checks objected to.
        reason: String,
    },

    /// A `file:` URL that does not name an absolute path on this host.
    #[error(
        "file URL must be absolute (file:///abs/path); {spec:?} is relative or names a host. Use a plain path for a relative directory"
    )]
    RelativeFileUrl {
        /// The spec as written (file URLs carry no secrets).
        spec: String,
    },

    /// `s3://` with no bucket.
    #[error("s3 spec has no bucket: expected s3://bucket[/prefix]")]
    MissingBucket,

    /// A bucket name S3 would refuse.
    #[error("s3 bucket name {bucket:?} is invalid: {reason}")]
    InvalidBucket {
        /// The bucket as written.
        bucket: String,
        /// Which rule it breaks.
        reason: String,
    },

    /// The key prefix is not a valid object path.
    #[error("key prefix {prefix:?} is invalid: {reason}")]
    InvalidPrefix {
        /// The prefix as written.
        prefix: String,
        /// Which rule it breaks.
        reason: String,
    },

    /// A `?key=` that we do not accept.
    #[error("unknown option {key:?} in spec; accepted: {accepted}")]
    UnknownOption {
        /// The key as written.
        key: String,
        /// The accepted keys, comma separated.
        accepted: &'static str,
    },

    /// A `?key=value` whose value is wrong.
    #[error("option {key:?} is invalid: {reason}")]
    InvalidOption {
        /// The key.
        key: String,
        /// What is wrong with the value.
        reason: String,
    },

    /// The same `?key=` twice: ambiguous, so refused rather than guessed.
    #[error("option {key:?} is given more than once")]
    DuplicateOption {
        /// The key.
        key: String,
    },

    /// Credentials in the URL (user:password@ or a secret query option).
    /// Refused: specs end up in logs, configs and process lists.
    #[error(
        "credentials are not accepted in a blob store URL ({what}); use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or OpenOptions::with_s3_credentials"
    )]
    SecretInUrl {
        /// Which part of the URL carried them (never the value).
        what: &'static str,
    },

    /// A local directory spec carried URL query options.
    #[error("options ({query:?}) are only accepted on s3:// specs")]
    OptionsNotSupported {
        /// The query as written.
        query: String,
    },

    /// The [`OpenOptions`](crate::OpenOptions) are inconsistent.
    #[error("invalid blob store options: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },

    // --- ids ---
    /// A string that is not a blake3 hash in hex.
    #[error("invalid blob id: {reason}")]
    InvalidBlobId {
        /// What is wrong with it.
        reason: String,
    },

    // --- operations ---
    /// A blob over the store's size limit (refused before anything is written,
    /// or, for streams of unknown length, before anything becomes visible).
    #[error("blob of {size} bytes exceeds the store's limit of {limit} bytes")]
    TooLarge {
        /// The size (for a stream: the bytes seen when the limit was crossed).
        size: u64,
        /// The configured limit.
        limit: u64,
    },

    /// No blob with this id.
    #[error("blob {id} not found")]
    NotFound {
        /// The id asked for.
        id: BlobId,
    },

    /// The stored bytes do not hash to their address: a damaged disk or a
    /// tampering bucket. The bytes are never returned.
    #[error("blob {id} is corrupt: stored bytes hash to {actual}")]
    Corrupt {
        /// The id asked for.
        id: BlobId,
        /// What the stored bytes actually hash to.
        actual: BlobId,
    },

    /// A file changed while `put_file` was uploading it (the second read did
    /// not hash to what the first read did); the upload was aborted.
    #[error("file {path} changed while it was being stored; nothing was written")]
    SourceChanged {
        /// The file.
        path: String,
    },

    /// The backend refused our credentials or permissions.
    #[error("blob store denied {op}: {source}")]
    Denied {
        /// The operation (`put`, `get`, …).
        op: &'static str,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },

    /// Any other failure of the backend (network, server, disk via object_store).
    #[error("blob store {op} failed: {source}")]
    Backend {
        /// The operation (`put`, `get`, …).
        op: &'static str,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },

    /// A local I/O failure outside object_store (creating the root, reading
    /// a source file, writing a destination file).
    #[error("{op} failed: {source}")]
    Io {
        /// What we were doing.
        op: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl BlobError {
    /// A stable, machine-readable code for this kind of error. These strings
    /// are API: they may be added to, never changed.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptySpec => "spec_empty",
            Self::InvalidPath { .. } => "spec_invalid_path",
            Self::UnknownScheme { .. } => "spec_unknown_scheme",
            Self::InvalidUrl { .. } => "spec_invalid_url",
            Self::RelativeFileUrl { .. } => "spec_relative_file_url",
            Self::MissingBucket => "spec_missing_bucket",
            Self::InvalidBucket { .. } => "spec_invalid_bucket",
            Self::InvalidPrefix { .. } => "spec_invalid_prefix",
            Self::UnknownOption { .. } => "spec_unknown_option",
            Self::InvalidOption { .. } => "spec_invalid_option",
            Self::DuplicateOption { .. } => "spec_duplicate_option",
            Self::SecretInUrl { .. } => "spec_secret_in_url",
            Self::OptionsNotSupported { .. } => "spec_options_not_supported",
            Self::InvalidConfig { .. } => "config_invalid",
            Self::InvalidBlobId { .. } => "blob_id_invalid",
            Self::TooLarge { .. } => "blob_too_large",
            Self::NotFound { .. } => "blob_not_found",
            Self::Corrupt { .. } => "blob_corrupt",
            Self::SourceChanged { .. } => "blob_source_changed",
            Self::Denied { .. } => "backend_denied",
            Self::Backend { .. } => "backend",
            Self::Io { .. } => "io",
        }
    }

    /// True for the errors a bad spec or bad options produce at `open`.
    pub fn is_spec_error(&self) -> bool {
        self.code().starts_with("spec_") || matches!(self, Self::InvalidConfig { .. })
    }

    /// Map an object_store error for operation `op`. `NotFound` is mapped by
    /// the callers that know the id, so it is not special-cased here.
    pub(crate) fn backend(op: &'static str, source: object_store::Error) -> Self {
        match source {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => Self::Denied { op, source },
            _ => Self::Backend { op, source },
        }
    }

    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = BlobError> = std::result::Result<T, E>;
