//! Segment and object-name encryption, on the consumer's machine only: the
//! coordinator and the nodes see ciphertext, never plaintext, keys or names.
//!
//! # Key derivation
//!
//! Everything derives from the consumer's 32-byte [`RootSecret`] with BLAKE3
//! in key-derivation mode (`blake3::derive_key`, one fixed context string per
//! purpose, so keys of different purposes can never coincide):
//!
//! - **segment key** = `derive_key(SEGMENT_KEY_CONTEXT, root ‖ lp(bucket) ‖
//!   lp(object) ‖ version ‖ u64be(segment index))`, where `lp(x)` is x's
//!   length as a big-endian u32 followed by x (so `("ab","c")` and
//!   `("a","bc")` differ) and `version` is the object's 16-byte
//!   [`ObjectVersion`].
//! - **name key** for a path component = `derive_key(NAME_KEY_CONTEXT, root ‖
//!   lp(bucket) ‖ lp(parent path))`, the parent being the plaintext
//!   components before it joined with `/`.
//! - **root fingerprint** = the first 16 bytes of `derive_key(FINGERPRINT_CONTEXT,
//!   root)`, kept with the consumer's account so a wrong root secret is told
//!   apart from tampered data ([`RootSecret::check`]).
//!
//! The brief derives segment keys from (bucket, object, segment index) only.
//! We add the object version: without it, putting a new object under a name
//! that was used before would encrypt different plaintext under the same key
//! and the same nonces, which breaks AES-GCM outright (the XOR of the two
//! ciphertexts is the XOR of the plaintexts, and the GHASH key leaks). The
//! client draws the version at random for every put (the caller passes the
//! 16 bytes: this crate draws no randomness) and it is stored beside the
//! segment in the clear; it is not secret.
//!
//! # Segments
//!
//! A segment (up to [`MAX_SEGMENT_BYTES`]) is sealed in blocks of
//! [`BLOCK_PLAINTEXT_BYTES`] with AES-256-GCM; each block grows by a 16-byte
//! tag. The nonce of block `i` is `u64be(i) ‖ u32be(last)`, `last` being 1 on
//! the final block only. One key seals exactly one segment and block indices
//! only increase, so no nonce repeats under a key. The `last` flag makes a
//! truncated segment (the final blocks cut off) or an extended one fail
//! instead of decrypting to a prefix. An empty segment is one empty final
//! block: 16 bytes of tag, which still proves the key.
//!
//! # Object names
//!
//! Names are encrypted per `/`-separated component, deterministically: the
//! nonce is a keyed BLAKE3 hash of the component under its name key (a
//! synthetic IV, as in AES-SIV), so the same name under the same root secret,
//! bucket and parent always gives the same ciphertext. That is what lets the
//! coordinator find an object by its encrypted name and list a bucket by
//! encrypted prefix without ever holding a key. The cost of that choice:
//!
//! - the coordinator sees which objects share a parent path, how many
//!   components each name has and their approximate lengths, and that two
//!   names are equal (it does not see the names themselves);
//! - the same file name in two different folders encrypts differently (the
//!   parent path is in the name key), which hides cross-folder equality;
//! - prefixes work on whole components only: `photos/2024/` maps to an
//!   encrypted prefix, `photos/20` does not. For a prefix ending inside a
//!   component, [`EncryptedPrefix`] gives the encrypted whole-component part
//!   and the plaintext remainder the client filters on after decrypting.
//!
//! Bucket names stay in the clear (they are account-level labels, like
//! Storj's); they are bound into every key instead.
//!
//! Because keys derive from the (plaintext) bucket and object name, a
//! server-side copy or rename cannot re-use ciphertext: it is a download and
//! a new upload. Storj wraps random segment keys instead to make copies cheap;
//! we keep the simpler derivation until the S3 gateway needs that.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroize;

/// Largest segment a client cuts from a file (Storj's `max-segment-size`).
pub const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Plaintext bytes per AES-GCM block of a segment. 64 KiB: the AEAD runs near
/// its peak speed there (research notes §5.4) and the tag costs 0.02%.
pub const BLOCK_PLAINTEXT_BYTES: usize = 64 * 1024;
/// Bytes an AES-GCM tag adds to each block.
pub const TAG_BYTES: usize = 16;
/// Bytes of a sealed block: plaintext plus tag.
pub const BLOCK_SEALED_BYTES: usize = BLOCK_PLAINTEXT_BYTES + TAG_BYTES;
/// Nonce bytes stored in front of each encrypted name component.
const NAME_NONCE_BYTES: usize = 12;

/// BLAKE3 `derive_key` contexts: globally unique, hard-coded, one per purpose
/// (the BLAKE3 paper's rule for contexts).
pub const SEGMENT_KEY_CONTEXT: &str = "depin storage 2026-12 segment key v1";
pub const NAME_KEY_CONTEXT: &str = "depin storage 2026-12 object name key v1";
pub const FINGERPRINT_CONTEXT: &str = "depin storage 2026-12 root secret fingerprint v1";

/// What went wrong, with a stable reason code for the operator or consumer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    /// The root secret is not the one this account's data was stored under.
    #[error("wrong root secret: its fingerprint does not match the account's")]
    WrongRootSecret,
    /// A block failed authentication: a wrong key (wrong root secret,
    /// bucket, name, version or segment index) or a modified ciphertext.
    #[error("block {block} does not authenticate: wrong key or tampered ciphertext")]
    Unauthentic { block: u64 },
    /// The ciphertext ended before its final block.
    #[error("segment ciphertext is truncated: no final block after {blocks} blocks")]
    Truncated { blocks: u64 },
    /// Bytes follow the final block.
    #[error("{extra} bytes follow the segment's final block")]
    TrailingData { extra: u64 },
    /// A segment longer than [`MAX_SEGMENT_BYTES`].
    #[error("segment of {len} bytes exceeds the {MAX_SEGMENT_BYTES}-byte limit")]
    SegmentTooLarge { len: u64 },
    /// A block was sealed after the final block, or was not full-sized
    /// without being final.
    #[error("block sequence misuse: {0}")]
    BlockOrder(&'static str),
    /// An encrypted name that is not hex, or too short to hold a nonce and tag.
    #[error("encrypted name component {component} is malformed")]
    MalformedName { component: usize },
    /// A name component decrypted, but its synthetic nonce does not match
    /// (it was moved from another parent path) or it is not UTF-8.
    #[error("encrypted name component {component} does not authenticate")]
    UnauthenticName { component: usize },
    /// An empty name, an empty component (`a//b`) or a component longer
    /// than [`MAX_NAME_BYTES`].
    #[error("invalid object name: {0}")]
    InvalidName(&'static str),
}

impl CryptError {
    /// The machine-readable reason code (sector block `storage_`).
    pub fn code(&self) -> &'static str {
        match self {
            CryptError::WrongRootSecret => "storage_wrong_root_secret",
            CryptError::Unauthentic { .. } => "storage_unauthentic_segment",
            CryptError::Truncated { .. } => "storage_truncated_segment",
            CryptError::TrailingData { .. } => "storage_trailing_data",
            CryptError::SegmentTooLarge { .. } => "storage_segment_too_large",
            CryptError::BlockOrder(_) => "storage_block_order",
            CryptError::MalformedName { .. } => "storage_malformed_name",
            CryptError::UnauthenticName { .. } => "storage_unauthentic_name",
            CryptError::InvalidName(_) => "storage_invalid_name",
        }
    }
}

/// S3's limit on a key, applied to the plaintext name.
pub const MAX_NAME_BYTES: usize = 1024;

/// The consumer's root secret. Never leaves the consumer's machine; wiped
/// from memory on drop.
#[derive(Clone)]
pub struct RootSecret([u8; 32]);

impl Drop for RootSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootSecret(…)")
    }
}

/// A 16-byte public fingerprint of a root secret (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RootFingerprint(pub [u8; 16]);

/// A per-put random value that makes every upload's keys fresh (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectVersion(pub [u8; 16]);

impl RootSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> RootSecret {
        RootSecret(bytes)
    }

    pub fn fingerprint(&self) -> RootFingerprint {
        let full = blake3::derive_key(FINGERPRINT_CONTEXT, &self.0);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        RootFingerprint(out)
    }

    /// `Ok` when this is the secret the account's data was stored under.
    /// Comparing 16 public bytes needs no constant time.
    pub fn check(&self, expected: &RootFingerprint) -> Result<(), CryptError> {
        if self.fingerprint() == *expected {
            Ok(())
        } else {
            Err(CryptError::WrongRootSecret)
        }
    }

    /// The key of one segment of one version of one object.
    pub fn segment_key(
        &self,
        bucket: &str,
        object: &str,
        version: &ObjectVersion,
        segment: u64,
    ) -> SegmentKey {
        let mut material = Vec::with_capacity(32 + 8 + bucket.len() + object.len() + 16 + 8);
        material.extend_from_slice(&self.0);
        push_lp(&mut material, bucket.as_bytes());
        push_lp(&mut material, object.as_bytes());
        material.extend_from_slice(&version.0);
        material.extend_from_slice(&segment.to_be_bytes());
        let key = SegmentKey(blake3::derive_key(SEGMENT_KEY_CONTEXT, &material));
        material.zeroize();
        key
    }

    fn name_key(&self, bucket: &str, parent: &str) -> [u8; 32] {
        let mut material = Vec::with_capacity(32 + 8 + bucket.len() + parent.len());
        material.extend_from_slice(&self.0);
        push_lp(&mut material, bucket.as_bytes());
        push_lp(&mut material, parent.as_bytes());
        let key = blake3::derive_key(NAME_KEY_CONTEXT, &material);
        material.zeroize();
        key
    }

    /// The encrypted form of an object name: each component as
    /// hex(nonce ‖ ciphertext ‖ tag), joined with `/`. A trailing `/` (a
    /// "folder" marker object) is kept as a trailing `/`.
    pub fn encrypt_name(&self, bucket: &str, name: &str) -> Result<String, CryptError> {
        validate_name(name)?;
        let (body, trailing) = match name.strip_suffix('/') {
            Some(b) => (b, true),
            None => (name, false),
        };
        let mut out = String::with_capacity(name.len() * 2 + 64);
        let mut parent = String::new();
        for (i, component) in body.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&self.encrypt_component(bucket, &parent, component));
            if i > 0 {
                parent.push('/');
            }
            parent.push_str(component);
        }
        if trailing {
            out.push('/');
        }
        Ok(out)
    }

    /// The plaintext name of an encrypted one; refuses anything not made by
    /// [`RootSecret::encrypt_name`] under this secret and bucket.
    pub fn decrypt_name(&self, bucket: &str, encrypted: &str) -> Result<String, CryptError> {
        let (body, trailing) = match encrypted.strip_suffix('/') {
            Some(b) => (b, true),
            None => (encrypted, false),
        };
        let mut parent = String::new();
        for (i, part) in body.split('/').enumerate() {
            let component = self.decrypt_component(bucket, &parent, part, i)?;
            if i > 0 {
                parent.push('/');
            }
            parent.push_str(&component);
        }
        if trailing {
            parent.push('/');
        }
        validate_name(&parent)?;
        Ok(parent)
    }

    /// What to ask the coordinator for when listing by a plaintext prefix.
    pub fn encrypt_prefix(&self, bucket: &str, prefix: &str) -> EncryptedPrefix {
        // Whole components are those followed by a `/` in the prefix.
        let (whole, rest) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let mut encrypted = String::new();
        let mut parent = String::new();
        if !whole.is_empty() || prefix.starts_with('/') {
            for (i, component) in whole.split('/').enumerate() {
                encrypted.push_str(&self.encrypt_component(bucket, &parent, component));
                encrypted.push('/');
                if i > 0 {
                    parent.push('/');
                }
                parent.push_str(component);
            }
        }
        EncryptedPrefix {
            encrypted,
            plaintext_filter: rest.to_string(),
        }
    }

    fn encrypt_component(&self, bucket: &str, parent: &str, component: &str) -> String {
        let mut key = self.name_key(bucket, parent);
        let siv = blake3::keyed_hash(&key, component.as_bytes());
        let mut nonce = [0u8; NAME_NONCE_BYTES];
        nonce.copy_from_slice(&siv.as_bytes()[..NAME_NONCE_BYTES]);
        let aead = aead_key(&key);
        key.zeroize();
        let mut buf = component.as_bytes().to_vec();
        // The synthetic nonce is unique per (key, plaintext): equal nonces
        // only ever seal equal plaintexts, which is the deterministic
        // encryption we want and leaks nothing beyond equality.
        aead.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .expect("AES-GCM seals any component shorter than 2^36 bytes");
        let mut out = Vec::with_capacity(NAME_NONCE_BYTES + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        hex::encode(out)
    }

    fn decrypt_component(
        &self,
        bucket: &str,
        parent: &str,
        part: &str,
        index: usize,
    ) -> Result<String, CryptError> {
        let malformed = CryptError::MalformedName { component: index };
        let raw = hex::decode(part).map_err(|_| malformed.clone())?;
        if raw.len() < NAME_NONCE_BYTES + TAG_BYTES {
            return Err(malformed);
        }
        let mut nonce = [0u8; NAME_NONCE_BYTES];
        nonce.copy_from_slice(&raw[..NAME_NONCE_BYTES]);
        let mut key = self.name_key(bucket, parent);
        let aead = aead_key(&key);
        let mut buf = raw[NAME_NONCE_BYTES..].to_vec();
        let unauthentic = CryptError::UnauthenticName { component: index };
        let plain = aead
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .map_err(|_| unauthentic.clone())?;
        let siv = blake3::keyed_hash(&key, plain);
        key.zeroize();
        if siv.as_bytes()[..NAME_NONCE_BYTES] != nonce {
            return Err(unauthentic);
        }
        String::from_utf8(plain.to_vec()).map_err(|_| unauthentic)
    }
}

/// The listing request for a plaintext prefix (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedPrefix {
    /// Encrypted whole components, each followed by `/` (empty for none):
    /// the coordinator lists names starting with it.
    pub encrypted: String,
    /// The part of the prefix inside the last component: the client keeps
    /// only decrypted names whose next component starts with it.
    pub plaintext_filter: String,
}

fn validate_name(name: &str) -> Result<(), CryptError> {
    if name.is_empty() {
        return Err(CryptError::InvalidName("the name is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(CryptError::InvalidName(
            "the name is longer than 1024 bytes",
        ));
    }
    let body = name.strip_suffix('/').unwrap_or(name);
    if body.split('/').any(str::is_empty) {
        return Err(CryptError::InvalidName(
            "the name has an empty component (`//`, or a leading `/`)",
        ));
    }
    Ok(())
}

fn push_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    // Names are at most a few KiB; u32 cannot overflow for anything that
    // reaches here, and saturating keeps the function total.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("AES-256 takes a 32-byte key"))
}

fn block_nonce(block: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&block.to_be_bytes());
    n[8..].copy_from_slice(&u32::from(last).to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The AES-256 key of one segment. Wiped on drop.
#[derive(Clone)]
pub struct SegmentKey([u8; 32]);

impl Drop for SegmentKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SegmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SegmentKey(…)")
    }
}

/// Sealed length of a segment of `plaintext_len` bytes.
pub fn sealed_len(plaintext_len: u64) -> u64 {
    let blocks = plaintext_len.div_ceil(BLOCK_PLAINTEXT_BYTES as u64).max(1);
    plaintext_len + blocks * TAG_BYTES as u64
}

/// Plaintext length of a sealed segment of `sealed_len` bytes, or why no
/// segment seals to that length.
pub fn plaintext_len(sealed_len: u64) -> Result<u64, CryptError> {
    let full = sealed_len / BLOCK_SEALED_BYTES as u64;
    let rest = sealed_len % BLOCK_SEALED_BYTES as u64;
    if rest == 0 && full > 0 {
        return Ok(full * BLOCK_PLAINTEXT_BYTES as u64);
    }
    if rest < TAG_BYTES as u64 {
        return Err(CryptError::Truncated { blocks: full });
    }
    Ok(full * BLOCK_PLAINTEXT_BYTES as u64 + rest - TAG_BYTES as u64)
}

/// Seals a segment block by block, so a 64 MiB segment never has to sit in
/// memory whole. Every block but the last must be exactly
/// [`BLOCK_PLAINTEXT_BYTES`].
pub struct SegmentSealer {
    key: LessSafeKey,
    next_block: u64,
    finished: bool,
    plaintext_seen: u64,
}

impl SegmentSealer {
    pub fn new(key: &SegmentKey) -> SegmentSealer {
        SegmentSealer {
            key: aead_key(&key.0),
            next_block: 0,
            finished: false,
            plaintext_seen: 0,
        }
    }

    /// Encrypts `block` in place and appends its tag.
    pub fn seal_block(&mut self, block: &mut Vec<u8>, last: bool) -> Result<(), CryptError> {
        if self.finished {
            return Err(CryptError::BlockOrder("a block after the final block"));
        }
        if block.len() > BLOCK_PLAINTEXT_BYTES || (!last && block.len() != BLOCK_PLAINTEXT_BYTES) {
            return Err(CryptError::BlockOrder(
                "only the final block may be shorter than 64 KiB, and none longer",
            ));
        }
        self.plaintext_seen += block.len() as u64;
        if self.plaintext_seen > MAX_SEGMENT_BYTES {
            return Err(CryptError::SegmentTooLarge {
                len: self.plaintext_seen,
            });
        }
        self.key
            .seal_in_place_append_tag(block_nonce(self.next_block, last), Aad::empty(), block)
            .expect("a 64 KiB block is far below AES-GCM's limit");
        self.next_block += 1;
        self.finished = last;
        Ok(())
    }
}

/// Opens a sealed segment block by block. Plaintext of a block is only
/// released after its tag verified; the caller must still treat the segment
/// as incomplete until the final block opened.
pub struct SegmentOpener {
    key: LessSafeKey,
    next_block: u64,
    finished: bool,
}

impl SegmentOpener {
    pub fn new(key: &SegmentKey) -> SegmentOpener {
        SegmentOpener {
            key: aead_key(&key.0),
            next_block: 0,
            finished: false,
        }
    }

    /// Decrypts one sealed block in place (the tag is removed); `last` says
    /// whether the caller saw the end of the ciphertext after it.
    pub fn open_block(&mut self, sealed: &mut Vec<u8>, last: bool) -> Result<(), CryptError> {
        if self.finished {
            return Err(CryptError::TrailingData {
                extra: sealed.len() as u64,
            });
        }
        if sealed.len() < TAG_BYTES || sealed.len() > BLOCK_SEALED_BYTES {
            return Err(CryptError::Truncated {
                blocks: self.next_block,
            });
        }
        let block = self.next_block;
        let len = self
            .key
            .open_in_place(block_nonce(block, last), Aad::empty(), sealed)
            .map_err(|_| CryptError::Unauthentic { block })?
            .len();
        sealed.truncate(len);
        self.next_block += 1;
        self.finished = last;
        Ok(())
    }
}

/// Seals a whole in-memory segment (tests, small objects, the benchmark).
pub fn seal_segment(key: &SegmentKey, plaintext: &[u8]) -> Result<Vec<u8>, CryptError> {
    if plaintext.len() as u64 > MAX_SEGMENT_BYTES {
        return Err(CryptError::SegmentTooLarge {
            len: plaintext.len() as u64,
        });
    }
    let mut sealer = SegmentSealer::new(key);
    let mut out = Vec::with_capacity(sealed_len(plaintext.len() as u64) as usize);
    let mut chunks = plaintext.chunks(BLOCK_PLAINTEXT_BYTES).peekable();
    if chunks.peek().is_none() {
        let mut empty = Vec::new();
        sealer.seal_block(&mut empty, true)?;
        return Ok(empty);
    }
    while let Some(chunk) = chunks.next() {
        let mut block = chunk.to_vec();
        sealer.seal_block(&mut block, chunks.peek().is_none())?;
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Opens a whole in-memory sealed segment.
pub fn open_segment(key: &SegmentKey, sealed: &[u8]) -> Result<Vec<u8>, CryptError> {
    let len = plaintext_len(sealed.len() as u64)?;
    if len > MAX_SEGMENT_BYTES {
        return Err(CryptError::SegmentTooLarge { len });
    }
    let mut opener = SegmentOpener::new(key);
    let mut out = Vec::with_capacity(len as usize);
    let mut chunks = sealed.chunks(BLOCK_SEALED_BYTES).peekable();
    while let Some(chunk) = chunks.next() {
        let mut block = chunk.to_vec();
        opener.open_block(&mut block, chunks.peek().is_none())?;
        out.extend_from_slice(&block);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(b: u8) -> RootSecret {
        RootSecret::from_bytes([b; 32])
    }
    const V1: ObjectVersion = ObjectVersion([1; 16]);

    #[test]
    fn segments_round_trip_at_block_boundaries() {
        let key = root(7).segment_key("b", "o", &V1, 0);
        for len in [
            0,
            1,
            BLOCK_PLAINTEXT_BYTES - 1,
            BLOCK_PLAINTEXT_BYTES,
            BLOCK_PLAINTEXT_BYTES + 1,
            3 * BLOCK_PLAINTEXT_BYTES,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = seal_segment(&key, &plain).unwrap();
            assert_eq!(sealed.len() as u64, sealed_len(len as u64), "len {len}");
            assert_eq!(plaintext_len(sealed.len() as u64).unwrap(), len as u64);
            if len > 0 {
                assert_ne!(&sealed[..len], &plain[..], "ciphertext equals plaintext");
            }
            assert_eq!(open_segment(&key, &sealed).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn wrong_root_secret_is_refused() {
        let plain = b"hello storage".to_vec();
        let sealed = seal_segment(&root(1).segment_key("b", "o", &V1, 0), &plain).unwrap();
        let wrong = root(2).segment_key("b", "o", &V1, 0);
        assert_eq!(
            open_segment(&wrong, &sealed),
            Err(CryptError::Unauthentic { block: 0 })
        );
        // The fingerprint tells a wrong secret apart from tampering.
        let fp = root(1).fingerprint();
        assert_eq!(root(1).check(&fp), Ok(()));
        assert_eq!(root(2).check(&fp), Err(CryptError::WrongRootSecret));
        assert_eq!(
            root(2).check(&fp).unwrap_err().code(),
            "storage_wrong_root_secret"
        );
    }

    #[test]
    fn every_key_input_matters() {
        let r = root(3);
        let base = r.segment_key("b", "o", &V1, 0).0;
        assert_ne!(base, r.segment_key("c", "o", &V1, 0).0);
        assert_ne!(base, r.segment_key("b", "p", &V1, 0).0);
        assert_ne!(base, r.segment_key("b", "o", &ObjectVersion([2; 16]), 0).0);
        assert_ne!(base, r.segment_key("b", "o", &V1, 1).0);
        // Length prefixes: moving a byte between bucket and object changes the key.
        assert_ne!(
            r.segment_key("ab", "c", &V1, 0).0,
            r.segment_key("a", "bc", &V1, 0).0
        );
    }

    #[test]
    fn tampering_truncation_and_extension_fail() {
        let key = root(4).segment_key("b", "o", &V1, 9);
        let plain = vec![5u8; 2 * BLOCK_PLAINTEXT_BYTES + 10];
        let sealed = seal_segment(&key, &plain).unwrap();
        for at in [0, BLOCK_SEALED_BYTES + 3, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(matches!(
                open_segment(&key, &bad),
                Err(CryptError::Unauthentic { .. })
            ));
        }
        // Cutting off the final block leaves a ciphertext whose new last
        // block was sealed as "not last": refused.
        let cut = &sealed[..2 * BLOCK_SEALED_BYTES];
        assert_eq!(
            open_segment(&key, cut),
            Err(CryptError::Unauthentic { block: 1 })
        );
        assert!(matches!(
            open_segment(&key, &sealed[..5]),
            Err(CryptError::Truncated { .. })
        ));
        // Swapping two full blocks breaks their nonces.
        let mut swapped = sealed.clone();
        let (a, b) = swapped.split_at_mut(BLOCK_SEALED_BYTES);
        a.swap_with_slice(&mut b[..BLOCK_SEALED_BYTES]);
        assert_eq!(
            open_segment(&key, &swapped),
            Err(CryptError::Unauthentic { block: 0 })
        );
        // A block appended after the final one.
        let mut opener = SegmentOpener::new(&key);
        let mut only = seal_segment(&key, b"x").unwrap();
        opener.open_block(&mut only, true).unwrap();
        let mut more = vec![0u8; 40];
        assert_eq!(
            opener.open_block(&mut more, false),
            Err(CryptError::TrailingData { extra: 40 })
        );
    }

    #[test]
    fn sealer_refuses_misuse() {
        let key = root(5).segment_key("b", "o", &V1, 0);
        let mut s = SegmentSealer::new(&key);
        let mut short = vec![0u8; 10];
        assert!(matches!(
            s.seal_block(&mut short, false),
            Err(CryptError::BlockOrder(_))
        ));
        let mut last = vec![0u8; 10];
        s.seal_block(&mut last, true).unwrap();
        let mut after = vec![0u8; 10];
        assert!(matches!(
            s.seal_block(&mut after, true),
            Err(CryptError::BlockOrder(_))
        ));
        // A segment longer than 64 MiB is refused, block by block as well.
        let mut s = SegmentSealer::new(&key);
        let blocks = MAX_SEGMENT_BYTES / BLOCK_PLAINTEXT_BYTES as u64;
        let mut block = vec![0u8; BLOCK_PLAINTEXT_BYTES];
        for _ in 0..blocks {
            block.truncate(BLOCK_PLAINTEXT_BYTES);
            s.seal_block(&mut block, false).unwrap();
        }
        let mut one = vec![0u8; 1];
        assert_eq!(
            s.seal_block(&mut one, true),
            Err(CryptError::SegmentTooLarge {
                len: MAX_SEGMENT_BYTES + 1
            })
        );
    }

    #[test]
    fn names_are_deterministic_hidden_and_round_trip() {
        let r = root(6);
        for name in ["a", "photos/2024/cat.jpg", "dir/", "ünï/cødé", "x/y/z/"] {
            let enc = r.encrypt_name("bucket", name).unwrap();
            assert_eq!(enc, r.encrypt_name("bucket", name).unwrap());
            // Each component is nonce ‖ ciphertext ‖ tag, the ciphertext
            // unlike the plaintext.
            for (e, p) in enc
                .trim_end_matches('/')
                .split('/')
                .zip(name.trim_end_matches('/').split('/'))
            {
                let raw = hex::decode(e).unwrap();
                assert_eq!(raw.len(), NAME_NONCE_BYTES + p.len() + TAG_BYTES);
                assert_ne!(
                    &raw[NAME_NONCE_BYTES..NAME_NONCE_BYTES + p.len()],
                    p.as_bytes()
                );
            }
            assert_eq!(enc.ends_with('/'), name.ends_with('/'));
            assert_eq!(r.decrypt_name("bucket", &enc).unwrap(), name);
            assert_ne!(enc, root(7).encrypt_name("bucket", name).unwrap());
            assert_ne!(enc, r.encrypt_name("other", name).unwrap());
        }
        // The same file name in two folders encrypts differently.
        let a = r.encrypt_name("b", "x/same").unwrap();
        let b = r.encrypt_name("b", "y/same").unwrap();
        assert_ne!(a.split('/').nth(1), b.split('/').nth(1));
    }

    #[test]
    fn bad_names_are_refused() {
        let r = root(8);
        for bad in ["", "/a", "a//b", "//"] {
            assert!(matches!(
                r.encrypt_name("b", bad),
                Err(CryptError::InvalidName(_))
            ));
        }
        let long = "a".repeat(MAX_NAME_BYTES + 1);
        assert!(r.encrypt_name("b", &long).is_err());
        assert!(r.encrypt_name("b", &long[1..]).is_ok());

        let enc = r.encrypt_name("b", "a/b").unwrap();
        assert_eq!(
            root(9).decrypt_name("b", &enc),
            Err(CryptError::UnauthenticName { component: 0 })
        );
        assert_eq!(
            r.decrypt_name("b", "zz"),
            Err(CryptError::MalformedName { component: 0 })
        );
        assert_eq!(
            r.decrypt_name("b", "abcd"),
            Err(CryptError::MalformedName { component: 0 })
        );
        // A component moved under another parent fails its synthetic nonce
        // check (its name key differs, so the tag fails first).
        let other = r.encrypt_name("b", "c/b").unwrap();
        let moved = format!(
            "{}/{}",
            enc.split('/').next().unwrap(),
            other.split('/').nth(1).unwrap()
        );
        assert_eq!(
            r.decrypt_name("b", &moved),
            Err(CryptError::UnauthenticName { component: 1 })
        );
        // Flipping one hex digit.
        let mut flipped = enc.clone().into_bytes();
        flipped[30] = if flipped[30] == b'0' { b'1' } else { b'0' };
        assert!(matches!(
            r.decrypt_name("b", std::str::from_utf8(&flipped).unwrap()),
            Err(CryptError::UnauthenticName { .. })
        ));
        assert_eq!(
            r.decrypt_name("b", ""),
            Err(CryptError::MalformedName { component: 0 })
        );
    }

    #[test]
    fn prefixes_map_to_whole_components() {
        let r = root(10);
        let name = r.encrypt_name("b", "photos/2024/cat.jpg").unwrap();
        let p = r.encrypt_prefix("b", "photos/2024/");
        assert!(name.starts_with(&p.encrypted) && !p.encrypted.is_empty());
        assert_eq!(p.plaintext_filter, "");
        let p = r.encrypt_prefix("b", "photos/20");
        assert!(name.starts_with(&p.encrypted));
        assert_eq!(p.encrypted.matches('/').count(), 1);
        assert_eq!(p.plaintext_filter, "20");
        let p = r.encrypt_prefix("b", "pho");
        assert_eq!(p.encrypted, "");
        assert_eq!(p.plaintext_filter, "pho");
        let other = r.encrypt_name("b", "music/a.mp3").unwrap();
        assert!(!other.starts_with(&r.encrypt_prefix("b", "photos/").encrypted));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn garbage_segments_are_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..(2 * BLOCK_SEALED_BYTES + 40)),
        ) {
            let key = root(11).segment_key("b", "o", &V1, 0);
            prop_assert!(open_segment(&key, &bytes).is_err());
        }

        #[test]
        fn garbage_names_are_refused(name in "\\PC{0,80}") {
            prop_assert!(root(12).decrypt_name("b", &name).is_err());
        }

        #[test]
        fn names_round_trip(name in "[a-z0-9é/]{1,60}", bucket in "\\PC{0,10}") {
            let r = root(13);
            match r.encrypt_name(&bucket, &name) {
                Ok(enc) => prop_assert_eq!(r.decrypt_name(&bucket, &enc).unwrap(), name),
                Err(e) => prop_assert_eq!(e.code(), "storage_invalid_name"),
            }
        }

        #[test]
        fn plaintext_lengths_are_total(len in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]) {
            let _ = plaintext_len(len);
            if len <= MAX_SEGMENT_BYTES {
                prop_assert_eq!(plaintext_len(sealed_len(len)), Ok(len));
            }
        }
    }
}
