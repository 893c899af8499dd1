//! [`BlobId`]: the blake3 hash that names a blob. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use crate::error::BlobError;

/// The content address of a blob: the blake3 hash of its bytes.
///
/// Displayed and serialized as 64 lowercase hex characters. Parsing accepts
/// either case (people paste ids), but the store only ever writes and lists
/// the lowercase form, so one blob has one key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobId([u8; 32]);

impl BlobId {
    /// Length of the hex form.
    pub const HEX_LEN: usize = 64;

    /// The id of `bytes` (hashes them).
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Wrap a raw 32-byte hash (no hashing).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes of the hash.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, the canonical form used in object keys.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse only the canonical (lowercase) form. Used when reading object
    /// keys back from a listing, so that a foreign `ABCD…` object is not
    /// mistaken for one of ours.
    pub(crate) fn parse_canonical(s: &str) -> Option<Self> {
        if s.len() != Self::HEX_LEN || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        s.parse().ok()
    }
}

impl From<blake3::Hash> for BlobId {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

impl FromStr for BlobId {
    type Err = BlobError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Check length on bytes first: `hex` would otherwise report odd-length
        // or non-hex errors for inputs that are simply the wrong size.
        if s.len() != Self::HEX_LEN {
            return Err(BlobError::InvalidBlobId {
                reason: format!(
                    "expected {} hex characters, got {} bytes",
                    Self::HEX_LEN,
                    s.len()
                ),
            });
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| BlobError::InvalidBlobId {
            reason: e.to_string(),
        })?;
        Ok(Self(out))
    }
}

impl serde::Serialize for BlobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for BlobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = BlobId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a blake3 hash as 64 hex characters")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BlobId, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // blake3("") from the reference test vectors.
        let id = BlobId::of(b"");
        assert_eq!(
            id.to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(id.to_string().parse::<BlobId>().unwrap(), id);
    }

    #[test]
    fn upper_case_parses_but_is_not_canonical() {
        let id = BlobId::of(b"x");
        let upper = id.to_string().to_uppercase();
        assert_eq!(upper.parse::<BlobId>().unwrap(), id);
        assert!(BlobId::parse_canonical(&upper).is_none());
        assert_eq!(BlobId::parse_canonical(&id.to_string()), Some(id));
    }

    #[test]
    fn bad_ids() {
        for s in ["", "00", &"g".repeat(64), &"0".repeat(63), &"0".repeat(65)] {
            let e = s.parse::<BlobId>().unwrap_err();
            assert_eq!(e.code(), "blob_id_invalid", "{s:?}");
        }
        // 64 bytes but not 64 chars: must not panic on the char boundary.
        let s = "é".repeat(32);
        assert!(s.parse::<BlobId>().is_err());
    }

    #[test]
    fn serde_is_hex() {
        let id = BlobId::of(b"abc");
        let j = serde_json::to_string(&id).unwrap();
        assert_eq!(j, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<BlobId>(&j).unwrap(), id);
        assert!(serde_json::from_str::<BlobId>("\"zz\"").is_err());
        assert!(serde_json::from_str::<BlobId>("42").is_err());
    }
}
