//! Where objects live inside a store. Pure: no I/O.
//!
//! ```text
//! <prefix>/blake3/<first 2 hex>/<64 hex>   a blob, at its content address
//! <prefix>/tmp/<32 hex>                    a streamed upload not yet hashed
//! ```
//!
//! The two-hex fan-out keeps any one directory (local disk) or listing page
//! (S3) to ~1/256 of the blobs. The hash algorithm is a path segment so that a
//! future hash can live beside blake3 without a migration. Temporary objects
//! sit outside `blake3/` so that nothing under a content address is ever a
//! half-written or unverified upload, and listing blobs never sees them.

use object_store::path::Path;

use crate::id::BlobId;

pub(crate) const HASH_DIR: &str = "blake3";
pub(crate) const TMP_DIR: &str = "tmp";

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    prefix: Path,
}

impl Layout {
    /// `prefix` must already be a valid object path (see `spec::parse_prefix`).
    pub(crate) fn new(prefix: Path) -> Self {
        Self { prefix }
    }

    pub(crate) fn prefix(&self) -> &Path {
        &self.prefix
    }

    pub(crate) fn blobs_dir(&self) -> Path {
        self.prefix.clone().join(HASH_DIR)
    }

    pub(crate) fn tmp_dir(&self) -> Path {
        self.prefix.clone().join(TMP_DIR)
    }

    pub(crate) fn blob_key(&self, id: &BlobId) -> Path {
        let hex = id.to_hex();
        self.blobs_dir().join(&hex[..2]).join(hex.as_str())
    }

    pub(crate) fn tmp_key(&self, nonce: u128) -> Path {
        self.tmp_dir().join(format!("{nonce:032x}").as_str())
    }

    /// The id a listed key stands for, or `None` for anything that is not
    /// exactly one of our blob keys (foreign objects, a misplaced fan-out
    /// directory, upper-case hex): those are skipped, never guessed at.
    pub(crate) fn parse_blob_key(&self, key: &Path) -> Option<BlobId> {
        let mut rest = key.prefix_match(&self.prefix)?;
        let dir = rest.next()?;
        let fan = rest.next()?;
        let name = rest.next()?;
        if rest.next().is_some() || dir.as_ref() != HASH_DIR {
            return None;
        }
        let id = BlobId::parse_canonical(name.as_ref())?;
        (fan.as_ref() == &name.as_ref()[..2]).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let id = BlobId::of(b"frame");
        let hex = id.to_hex();
        for prefix in ["", "site-7/frames"] {
            let l = Layout::new(Path::parse(prefix).unwrap());
            let key = l.blob_key(&id);
            let want = if prefix.is_empty() {
                format!("blake3/{}/{hex}", &hex[..2])
            } else {
                format!("{prefix}/blake3/{}/{hex}", &hex[..2])
            };
            assert_eq!(key.as_ref(), want);
            assert_eq!(l.parse_blob_key(&key), Some(id));
            assert_eq!(l.parse_blob_key(&l.tmp_key(7)), None);
        }
    }

    #[test]
    fn foreign_keys_are_not_blobs() {
        let id = BlobId::of(b"x");
        let hex = id.to_hex();
        let l = Layout::new(Path::parse("p").unwrap());
        for k in [
            format!("blake3/{}/{hex}", &hex[..2]),     // outside the prefix
            format!("p/blake3/zz/{hex}"),              // wrong fan-out
            format!("p/sha256/{}/{hex}", &hex[..2]),   // other hash dir
            format!("p/blake3/{}/{hex}/x", &hex[..2]), // too deep
            format!("p/blake3/{}", &hex[..2]),         // too shallow
            format!(
                "p/blake3/{}/{}",
                &hex[..2].to_uppercase(),
                hex.to_uppercase()
            ),
            "p/blake3/ab/abc".to_string(),
            "px/blake3/ab/abc".to_string(),
        ] {
            assert_eq!(l.parse_blob_key(&Path::parse(&k).unwrap()), None, "{k}");
        }
    }
}
