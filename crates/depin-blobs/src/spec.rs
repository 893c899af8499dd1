//! Parsing a store spec string into a [`StoreSpec`]. Pure: no I/O, no
//! environment, no clock, so every rule here is unit- and property-tested and
//! `open` only has to act on an already-validated value.
//!
//! Accepted forms (leading/trailing ASCII whitespace is ignored, since specs
//! come from env vars and config files that carry stray newlines):
//!
//! - a plain path, absolute or relative: a local directory (the default);
//! - `file:///abs/path` (or `file:/abs/path`, `file://localhost/abs/path`),
//!   percent-decoded; relative file URLs and other hosts are refused;
//! - `s3://bucket[/key/prefix][?option=value&…]` with options `endpoint`,
//!   `region`, `allow_http`, `virtual_hosted_style`, `skip_signature`.

use std::path::PathBuf;

use object_store::path::Path as ObjPath;

use crate::error::{BlobError, Result};

/// The query options an `s3://` spec accepts, for error messages and docs.
pub const S3_OPTIONS: &str = "endpoint, region, allow_http, virtual_hosted_style, skip_signature";

/// Query keys that would carry a secret. Refused by name, with a pointer to
/// the env vars, rather than lumped in with unknown keys.
const SECRET_KEYS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "session_token",
    "token",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "password",
    "secret",
];

/// A validated store spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// A directory on this machine. May be relative (resolved at open).
    Local {
        /// The directory.
        root: PathBuf,
    },
    /// An S3-compatible bucket.
    S3(S3Spec),
}

/// The parts of an `s3://` spec. `None` options fall back to the `AWS_*`
/// environment and then to object_store's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Spec {
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside the bucket, without leading/trailing `/`; empty for
    /// the bucket root. Already valid as an object path.
    pub prefix: String,
    /// `?endpoint=`: base URL of an S3-compatible server (MinIO, Garage, …).
    pub endpoint: Option<String>,
    /// `?region=`.
    pub region: Option<String>,
    /// `?allow_http=`: permit a plain-http endpoint.
    pub allow_http: Option<bool>,
    /// `?virtual_hosted_style=`: `bucket.host` addressing instead of `host/bucket`.
    pub virtual_hosted_style: Option<bool>,
    /// `?skip_signature=`: anonymous requests (public buckets).
    pub skip_signature: Option<bool>,
}

impl StoreSpec {
    /// Parse a spec string. Never panics; every refusal is a [`BlobError`]
    /// naming the problem.
    pub fn parse(spec: &str) -> Result<Self> {
        let s = spec.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.is_empty() {
            return Err(BlobError::EmptySpec);
        }
        if s.contains('\0') {
            return Err(BlobError::InvalidPath {
                reason: "contains a NUL byte".into(),
            });
        }
        match scheme_of(s) {
            Some(scheme) => match scheme.to_ascii_lowercase().as_str() {
                "file" => parse_file_url(s),
                "s3" => parse_s3_url(s).map(StoreSpec::S3),
                _ => Err(BlobError::UnknownScheme {
                    scheme: scheme.to_string(),
                }),
            },
            None => {
                // `file:rel` and `s3:bucket` look like typos of URLs, not like
                // directory names: refuse them instead of creating `./s3:bucket`.
                let lower = s.get(..5).map(str::to_ascii_lowercase);
                if lower.as_deref() == Some("file:") {
                    if s[5..].starts_with('/') {
                        // `file:/abs`: a valid single-slash file URL.
                        return parse_file_url(s);
                    }
                    return Err(BlobError::RelativeFileUrl { spec: s.into() });
                }
                if s.get(..3).map(str::to_ascii_lowercase).as_deref() == Some("s3:") {
                    return Err(BlobError::InvalidUrl {
                        reason: "expected s3://bucket[/prefix]".into(),
                    });
                }
                Ok(StoreSpec::Local { root: s.into() })
            }
        }
    }
}

/// The scheme if `s` is `scheme://…` with an RFC 3986 scheme.
fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

fn parse_file_url(s: &str) -> Result<StoreSpec> {
    let url = url::Url::parse(s).map_err(|e| BlobError::InvalidUrl {
        reason: e.to_string(),
    })?;
    if url.fragment().is_some() {
        return Err(BlobError::InvalidUrl {
            reason: "a file URL has no #fragment".into(),
        });
    }
    if let Some(q) = url.query() {
        return Err(BlobError::OptionsNotSupported { query: q.into() });
    }
    // The url crate drops `localhost`; any host left over (`file://data/x`,
    // `file://./x`) is almost always a relative path typed with two slashes.
    let has_host = url.host_str().is_some_and(|h| !h.is_empty());
    if has_host {
        return Err(BlobError::RelativeFileUrl { spec: s.into() });
    }
    let root = url
        .to_file_path()
        .map_err(|()| BlobError::RelativeFileUrl { spec: s.into() })?;
    if !root.is_absolute() {
        return Err(BlobError::RelativeFileUrl { spec: s.into() });
    }
    Ok(StoreSpec::Local { root })
}

/// URL parsing resolves `.` and `..` segments (`s3://b/a/../c` becomes
/// prefix `c`), which would silently move a store. Refuse them on the raw
/// text, including their percent-encoded spellings, before that happens.
fn reject_dot_segments(s: &str) -> Result<()> {
    let after_scheme = s.split_once("://").map_or(s, |(_, rest)| rest);
    let end = after_scheme.find(['?', '#']).unwrap_or(after_scheme.len());
    let Some((_, path)) = after_scheme[..end].split_once('/') else {
        return Ok(());
    };
    for seg in path.split('/') {
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        if seg == "." || seg == ".." {
            return Err(BlobError::InvalidPrefix {
                prefix: path.into(),
                reason: "'.' and '..' segments are not allowed".into(),
            });
        }
    }
    Ok(())
}

fn parse_s3_url(s: &str) -> Result<S3Spec> {
    reject_dot_segments(s)?;
    let url = url::Url::parse(s).map_err(|e| match e {
        url::ParseError::EmptyHost => BlobError::MissingBucket,
        e => BlobError::InvalidUrl {
            reason: e.to_string(),
        },
    })?;
    // Checked before anything else so no later error message can echo them.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BlobError::SecretInUrl { what: "user info" });
    }
    if url.fragment().is_some() {
        return Err(BlobError::InvalidUrl {
            reason: "an s3 URL has no #fragment".into(),
        });
    }
    if url.port().is_some() {
        return Err(BlobError::InvalidUrl {
            reason: "a bucket has no port; give the server as ?endpoint=http://host:port".into(),
        });
    }
    let bucket = match url.host_str() {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => return Err(BlobError::MissingBucket),
    };
    validate_bucket(&bucket)?;
    let prefix = parse_prefix(url.path())?;

    let mut out = S3Spec {
        bucket,
        prefix,
        ..S3Spec::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (k, v) in url.query_pairs() {
        let key = k.to_string();
        if SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
            return Err(BlobError::SecretInUrl {
                what: "query option",
            });
        }
        if seen.contains(&key) {
            return Err(BlobError::DuplicateOption { key });
        }
        seen.push(key.clone());
        let value = v.to_string();
        if value.is_empty() {
            return Err(BlobError::InvalidOption {
                key,
                reason: "empty value".into(),
            });
        }
        match key.as_str() {
            "endpoint" => out.endpoint = Some(value),
            "region" => {
                validate_region(&value)?;
                out.region = Some(value);
            }
            "allow_http" => out.allow_http = Some(parse_bool(&key, &value)?),
            "virtual_hosted_style" => out.virtual_hosted_style = Some(parse_bool(&key, &value)?),
            "skip_signature" => out.skip_signature = Some(parse_bool(&key, &value)?),
            _ => {
                return Err(BlobError::UnknownOption {
                    key,
                    accepted: S3_OPTIONS,
                });
            }
        }
    }
    if let Some(ep) = &out.endpoint {
        // After the loop so `allow_http` may come before or after `endpoint`.
        validate_endpoint(ep, out.allow_http.unwrap_or(false))?;
    }
    Ok(out)
}

/// A key prefix from a URL path (percent-encoded). Validated with
/// object_store's own rules so the store can never reject it later.
pub(crate) fn parse_prefix(url_path: &str) -> Result<String> {
    let p = ObjPath::from_url_path(url_path).map_err(|e| BlobError::InvalidPrefix {
        prefix: url_path.into(),
        reason: e.to_string(),
    })?;
    Ok(p.as_ref().to_string())
}

/// Today's S3 bucket naming rules (3–63 chars of `a-z 0-9 . -`, alphanumeric
/// at both ends, no `..`). Legacy names with capitals or `_` exist only in old
/// us-east-1 buckets and are not supported.
fn validate_bucket(b: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(BlobError::InvalidBucket {
            bucket: b.into(),
            reason: reason.into(),
        })
    };
    if !(3..=63).contains(&b.len()) {
        return bad("must be 3 to 63 characters");
    }
    if !b
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return bad("only lowercase letters, digits, '.' and '-' are allowed");
    }
    let ends_ok = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ends_ok(b.bytes().next()) || !ends_ok(b.bytes().last()) {
        return bad("must begin and end with a letter or digit");
    }
    if b.contains("..") {
        return bad("must not contain '..'");
    }
    Ok(())
}

/// Regions of AWS and of self-hosted servers (`garage`, `us-east-1`, …).
fn validate_region(r: &str) -> Result<()> {
    if r.len() > 64
        || !r
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    {
        return Err(BlobError::InvalidOption {
            key: "region".into(),
            reason: "expected up to 64 letters, digits, '-' or '_'".into(),
        });
    }
    Ok(())
}

fn validate_endpoint(ep: &str, allow_http: bool) -> Result<()> {
    let bad = |reason: String| BlobError::InvalidOption {
        key: "endpoint".into(),
        reason,
    };
    let u = url::Url::parse(ep).map_err(|e| bad(format!("not a URL: {e}")))?;
    match u.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(bad(
                "is plain http: add allow_http=true to permit unencrypted traffic".into(),
            ));
        }
        other => return Err(bad(format!("scheme must be http or https, not {other:?}"))),
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host".into()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(BlobError::SecretInUrl {
            what: "endpoint user info",
        });
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("must not have a ?query or #fragment".into()));
    }
    Ok(())
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(BlobError::InvalidOption {
            key: key.into(),
            reason: format!("expected true or false, got {v:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> &'static str {
        match StoreSpec::parse(s) {
            Ok(v) => panic!("{s:?} parsed as {v:?}"),
            Err(e) => e.code(),
        }
    }

    #[test]
    fn local_paths() {
        assert_eq!(
            StoreSpec::parse("/var/lib/depin/blobs").unwrap(),
            StoreSpec::Local {
                root: "/var/lib/depin/blobs".into()
            }
        );
        assert_eq!(
            StoreSpec::parse("  data/blobs\n").unwrap(),
            StoreSpec::Local {
                root: "data/blobs".into()
            }
        );
        // A colon in a directory name is not a scheme.
        assert!(matches!(
            StoreSpec::parse("run:2024").unwrap(),
            StoreSpec::Local { .. }
        ));
    }

    #[test]
    fn file_urls() {
        for s in [
            "file:///srv/blobs",
            "FILE:///srv/blobs",
            "file:/srv/blobs",
            "file://localhost/srv/blobs",
        ] {
            assert_eq!(
                StoreSpec::parse(s).unwrap(),
                StoreSpec::Local {
                    root: "/srv/blobs".into()
                },
                "{s}"
            );
        }
        assert_eq!(
            StoreSpec::parse("file:///srv/my%20blobs").unwrap(),
            StoreSpec::Local {
                root: "/srv/my blobs".into()
            }
        );
        assert_eq!(code("file://relative/path"), "spec_relative_file_url");
        assert_eq!(code("file://./x"), "spec_relative_file_url");
        assert_eq!(code("file:relative"), "spec_relative_file_url");
        assert_eq!(code("file:///x?endpoint=y"), "spec_options_not_supported");
        assert_eq!(code("file:///x#frag"), "spec_invalid_url");
    }

    #[test]
    fn s3_urls() {
        let s = StoreSpec::parse(
            "s3://depin-frames/site/a%20b/?endpoint=http://127.0.0.1:9000&region=us-east-1&allow_http=true",
        )
        .unwrap();
        assert_eq!(
            s,
            StoreSpec::S3(S3Spec {
                bucket: "depin-frames".into(),
                prefix: "site/a b".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: Some("us-east-1".into()),
                allow_http: Some(true),
                ..S3Spec::default()
            })
        );
        let StoreSpec::S3(s) = StoreSpec::parse("s3://bkt").unwrap() else {
            panic!()
        };
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("bkt", ""));
        // Option order does not matter for the allow_http check.
        assert!(StoreSpec::parse("s3://bkt?allow_http=true&endpoint=http://h:1").is_ok());
    }

    #[test]
    fn bad_specs() {
        assert_eq!(code(""), "spec_empty");
        assert_eq!(code(" \t\n"), "spec_empty");
        assert_eq!(code("a\0b"), "spec_invalid_path");
        assert_eq!(code("gs://bucket"), "spec_unknown_scheme");
        assert_eq!(code("http://host/bucket"), "spec_unknown_scheme");
        assert_eq!(code("s3://"), "spec_missing_bucket");
        assert_eq!(code("s3:///prefix"), "spec_missing_bucket");
        assert_eq!(code("s3:bucket"), "spec_invalid_url");
        assert_eq!(code("s3://Bucket"), "spec_invalid_bucket");
        assert_eq!(code("s3://ab"), "spec_invalid_bucket");
        assert_eq!(code("s3://-bkt"), "spec_invalid_bucket");
        assert_eq!(code("s3://bkt:9000"), "spec_invalid_url");
        assert_eq!(code("s3://bkt/a//b"), "spec_invalid_prefix");
        assert_eq!(code("s3://bkt/a/../b"), "spec_invalid_prefix");
        assert_eq!(code("s3://bkt/./b"), "spec_invalid_prefix");
        assert_eq!(code("s3://bkt/a/%2E%2e"), "spec_invalid_prefix");
        assert_eq!(code("s3://bkt/a/%2fb"), "spec_invalid_prefix");
        assert_eq!(code("s3://bkt?colour=red"), "spec_unknown_option");
        assert_eq!(code("s3://bkt?region=a&region=b"), "spec_duplicate_option");
        assert_eq!(code("s3://bkt?allow_http=yes"), "spec_invalid_option");
        assert_eq!(code("s3://bkt?region="), "spec_invalid_option");
        assert_eq!(code("s3://bkt?region=a/b"), "spec_invalid_option");
        assert_eq!(code("s3://bkt?endpoint=http://h:1"), "spec_invalid_option");
        assert_eq!(code("s3://bkt?endpoint=ftp://h"), "spec_invalid_option");
        assert_eq!(code("s3://bkt?endpoint=nope"), "spec_invalid_option");
        assert_eq!(code("s3://key:secret@bkt"), "spec_secret_in_url");
        assert_eq!(code("s3://bkt?secret_access_key=shh"), "spec_secret_in_url");
        assert_eq!(
            code("s3://bkt?endpoint=https://u:p@h"),
            "spec_secret_in_url"
        );
    }

    #[test]
    fn secrets_never_echoed() {
        for s in [
            "s3://AKIAEXAMPLE:hunter2@bkt",
            "s3://bkt?secret_access_key=hunter2",
            "s3://bkt?endpoint=https://AKIAEXAMPLE:hunter2@h",
        ] {
            let e = StoreSpec::parse(s).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}
