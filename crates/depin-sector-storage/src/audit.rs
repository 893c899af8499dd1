//! Proofs that a node still holds a piece: BLAKE3 verified streaming with
//! `bao-tree`.
//!
//! - **Set-up.** The uploader knows each piece's BLAKE3 hash ([`PieceHash`],
//!   computed while erasure coding); that hash *is* the piece's Bao root, so
//!   the coordinator keeps 32 bytes per piece and nothing else. The node
//!   keeps the piece and its outboard ([`PieceOutboard`]: the tree's hash
//!   pairs in pre-order, 64 bytes per 16 KiB chunk group, 0.4% of the piece).
//! - **Challenge.** At audit time the coordinator draws a chunk group of the
//!   piece from a fresh seed ([`Challenge::derive`]; the seed comes from the
//!   epoch's entropy and is never known in advance, which is what defeats
//!   Storj v2's "keep only the answers" cheat).
//! - **Answer.** The node sends that group's bytes with the hash pairs on
//!   the path from the root ([`answer`]): 16 KiB + 64 bytes × depth (about
//!   17 KiB for a 6.4 MiB piece).
//! - **Verification.** [`verify`] walks the path from the root the
//!   coordinator kept and checks the group's bytes against it.
//!
//! Why 16 KiB groups and not 1 KiB chunks: the node's outboard shrinks from
//! 6% to 0.4% of what it stores, for answers of 17 KiB instead of 2 KiB,
//! and an audit is one request either way.
//!
//! Why `bao-tree` and not our own Merkle tree: its root is the plain BLAKE3
//! hash (so one hash serves erasure decoding, the uploader's signature and
//! audits), chunk groups are built in, and its decoder is tested against the
//! reference `bao` crate. With default features off it pulls in no async
//! runtime.

use crate::PieceHash;
use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::io::sync::{DecodeResponseIter, encode_ranges_validated};
use bao_tree::io::{BaoContentItem, DecodeError};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};

/// log2 of the 1 KiB BLAKE3 chunks per group: 16 KiB groups.
pub const CHUNK_GROUP_LOG: u8 = 4;
/// Bytes in a challenged chunk group.
pub const CHUNK_GROUP_BYTES: u64 = 1024 << CHUNK_GROUP_LOG;
const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(CHUNK_GROUP_LOG);
/// BLAKE3 `derive_key` context for drawing challenges from a seed.
pub const CHALLENGE_CONTEXT: &str = "depin storage 2026-12 audit challenge v1";
/// Largest piece an audit speaks of. A piece is at most one coded 64 MiB
/// segment (k = 1); anything larger is refused before any tree arithmetic.
pub const MAX_PIECE_BYTES: u64 = 1 << 30;
/// Storj's `audit.min-download-timeout`: 15 s.
pub const MIN_ANSWER_DEADLINE_MS: u64 = 15_000;
/// Storj's `audit.min-bytes-per-second`: 150 KB/s.
pub const MIN_ANSWER_BYTES_PER_S: u64 = 150_000;

/// The node's side data for a piece: hash pairs in pre-order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceOutboard {
    pub root: PieceHash,
    pub piece_len: u64,
    /// Exactly `outboard_len(piece_len)` bytes.
    pub hash_pairs: Vec<u8>,
}

impl PieceOutboard {
    /// Hashes the piece and builds its outboard.
    pub fn create(piece: &[u8]) -> PieceOutboard {
        let ob = PreOrderMemOutboard::create(piece, BLOCK_SIZE);
        PieceOutboard {
            root: PieceHash(*ob.root.as_bytes()),
            piece_len: piece.len() as u64,
            hash_pairs: ob.data,
        }
    }
}

/// Bytes of the outboard of a piece of `piece_len` bytes.
pub fn outboard_len(piece_len: u64) -> u64 {
    BaoTree::new(piece_len, BLOCK_SIZE).outboard_size()
}

/// One audit question: which chunk group of which piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Challenge {
    /// The piece's id as the coordinator names it (opaque here).
    pub piece: [u8; 32],
    pub piece_len: u64,
    /// Index of the 16 KiB chunk group asked for.
    pub group: u64,
}

impl Challenge {
    /// Draws the group from `seed` and the piece id, uniformly over the
    /// piece's groups (a 128-bit draw reduced modulo the count: the bias is
    /// below 2⁻⁸⁰ for any piece size). `None` for an empty piece, which
    /// has nothing to challenge.
    pub fn derive(seed: &[u8; 32], piece: [u8; 32], piece_len: u64) -> Option<Challenge> {
        let groups = piece_len.div_ceil(CHUNK_GROUP_BYTES);
        if groups == 0 {
            return None;
        }
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(seed);
        material[32..].copy_from_slice(&piece);
        let h = blake3::derive_key(CHALLENGE_CONTEXT, &material);
        let draw = u128::from_le_bytes(h[..16].try_into().expect("16 bytes"));
        Some(Challenge {
            piece,
            piece_len,
            group: (draw % u128::from(groups)) as u64,
        })
    }

    fn ranges(&self) -> ChunkRanges {
        let first = self.group << CHUNK_GROUP_LOG;
        ChunkRanges::from(ChunkNum(first)..ChunkNum(first + (1 << CHUNK_GROUP_LOG)))
    }

    /// How long the node has to answer: Storj's max(15 s, size ÷ 150 KB/s),
    /// over the answer's size.
    pub fn deadline_ms(&self) -> u64 {
        let bytes = CHUNK_GROUP_BYTES + 64 * 64;
        MIN_ANSWER_DEADLINE_MS.max(bytes.saturating_mul(1000) / MIN_ANSWER_BYTES_PER_S)
    }
}

/// Why an answer failed, with a reason code for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditFailure {
    /// A hash on the path or the group's bytes do not match the root: wrong
    /// data, a wrong group, or a forged proof.
    #[error("the answer does not match the piece's root ({0})")]
    ProofMismatch(String),
    /// The answer ended before the proof or the data did.
    #[error("the answer is truncated ({0})")]
    Truncated(String),
    /// Bytes after a complete answer.
    #[error("{0} bytes follow a complete answer")]
    TrailingBytes(usize),
    /// The challenge names a group the piece does not have.
    #[error("group {group} is outside a piece of {piece_len} bytes")]
    OutOfRange { group: u64, piece_len: u64 },
}

impl AuditFailure {
    pub fn code(&self) -> &'static str {
        match self {
            AuditFailure::ProofMismatch(_) => "storage_audit_proof_mismatch",
            AuditFailure::Truncated(_) => "storage_audit_truncated",
            AuditFailure::TrailingBytes(_) => "storage_audit_trailing_bytes",
            AuditFailure::OutOfRange { .. } => "storage_audit_out_of_range",
        }
    }
}

/// Why a node could not build an answer from what it has on disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the outboard is {got} bytes, a piece of {piece_len} bytes needs {expected}")]
    OutboardLength {
        piece_len: u64,
        expected: u64,
        got: usize,
    },
    #[error("the stored piece or outboard is damaged: {0}")]
    Damaged(String),
    #[error("group {group} is outside a piece of {piece_len} bytes")]
    OutOfRange { group: u64, piece_len: u64 },
}

/// The node's answer: the challenged group with its proof. It validates
/// what it sends, so a node whose disk rotted learns it here rather than
/// from a failed audit.
pub fn answer(
    piece: &[u8],
    outboard: &PieceOutboard,
    challenge: &Challenge,
) -> Result<Vec<u8>, AnswerError> {
    let piece_len = piece.len() as u64;
    let expected = outboard_len(piece_len);
    if outboard.hash_pairs.len() as u64 != expected || outboard.piece_len != piece_len {
        return Err(AnswerError::OutboardLength {
            piece_len,
            expected,
            got: outboard.hash_pairs.len(),
        });
    }
    if challenge.group >= piece_len.div_ceil(CHUNK_GROUP_BYTES) {
        return Err(AnswerError::OutOfRange {
            group: challenge.group,
            piece_len,
        });
    }
    let ob = PreOrderMemOutboard {
        root: blake3::Hash::from_bytes(outboard.root.0),
        tree: BaoTree::new(piece_len, BLOCK_SIZE),
        data: outboard.hash_pairs.as_slice(),
    };
    let mut out = Vec::with_capacity(CHUNK_GROUP_BYTES as usize + 2048);
    encode_ranges_validated(piece, &ob, &challenge.ranges(), &mut out)
        .map_err(|e| AnswerError::Damaged(e.to_string()))?;
    Ok(out)
}

/// Checks an answer against the root the coordinator kept; `Ok` carries the
/// group's bytes.
pub fn verify(
    root: &PieceHash,
    challenge: &Challenge,
    answer: &[u8],
) -> Result<Vec<u8>, AuditFailure> {
    let groups = challenge.piece_len.div_ceil(CHUNK_GROUP_BYTES);
    if challenge.group >= groups || challenge.piece_len > MAX_PIECE_BYTES {
        return Err(AuditFailure::OutOfRange {
            group: challenge.group,
            piece_len: challenge.piece_len,
        });
    }
    let tree = BaoTree::new(challenge.piece_len, BLOCK_SIZE);
    let ranges = challenge.ranges();
    let mut reader = std::io::Cursor::new(answer);
    let mut data = Vec::with_capacity(CHUNK_GROUP_BYTES as usize);
    for item in
        DecodeResponseIter::new(blake3::Hash::from_bytes(root.0), tree, &mut reader, &ranges)
    {
        match item {
            Ok(BaoContentItem::Leaf(leaf)) => data.extend_from_slice(&leaf.data),
            Ok(BaoContentItem::Parent(_)) => {}
            Err(e @ (DecodeError::ParentHashMismatch(_) | DecodeError::LeafHashMismatch(_))) => {
                return Err(AuditFailure::ProofMismatch(e.to_string()));
            }
            Err(e) => return Err(AuditFailure::Truncated(e.to_string())),
        }
    }
    let rest = answer.len() - reader.position() as usize;
    if rest > 0 {
        return Err(AuditFailure::TrailingBytes(rest));
    }
    let start = challenge.group * CHUNK_GROUP_BYTES;
    let want = (challenge.piece_len - start).min(CHUNK_GROUP_BYTES);
    if data.len() as u64 != want {
        return Err(AuditFailure::Truncated(format!(
            "{} bytes of data, expected {want}",
            data.len()
        )));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn piece(len: usize, salt: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(7) ^ salt).collect()
    }

    #[test]
    fn the_bao_root_is_the_blake3_hash() {
        for len in [0, 1, 1024, 16 * 1024, 16 * 1024 + 1, 1_000_000] {
            let p = piece(len, 1);
            let ob = PieceOutboard::create(&p);
            assert_eq!(ob.root.0, *blake3::hash(&p).as_bytes(), "len {len}");
            assert_eq!(ob.hash_pairs.len() as u64, outboard_len(len as u64));
        }
        // 0.4% overhead on a 6.4 MiB piece.
        let len = 6_710_886u64;
        assert!(outboard_len(len) * 1000 / len <= 4);
    }

    #[test]
    fn honest_answers_verify_for_every_group() {
        for len in [1usize, 16 * 1024, 16 * 1024 + 1, 100_000, 262_144] {
            let p = piece(len, 2);
            let ob = PieceOutboard::create(&p);
            let groups = (len as u64).div_ceil(CHUNK_GROUP_BYTES);
            for group in 0..groups {
                let c = Challenge {
                    piece: [1; 32],
                    piece_len: len as u64,
                    group,
                };
                let a = answer(&p, &ob, &c).unwrap();
                let data = verify(&ob.root, &c, &a).unwrap();
                let start = (group * CHUNK_GROUP_BYTES) as usize;
                assert_eq!(
                    data,
                    &p[start..(start + CHUNK_GROUP_BYTES as usize).min(len)]
                );
            }
        }
    }

    #[test]
    fn tampered_answers_fail() {
        let p = piece(200_000, 3);
        let ob = PieceOutboard::create(&p);
        let c = Challenge {
            piece: [2; 32],
            piece_len: p.len() as u64,
            group: 5,
        };
        let a = answer(&p, &ob, &c).unwrap();
        // A flipped bit anywhere: in a hash pair of the proof or in the data.
        for at in [
            0,
            40,
            64 * 2 + 1,
            a.len() - CHUNK_GROUP_BYTES as usize + 7,
            a.len() - 1,
        ] {
            let mut bad = a.clone();
            bad[at] ^= 1;
            assert_eq!(
                verify(&ob.root, &c, &bad).unwrap_err().code(),
                "storage_audit_proof_mismatch",
                "byte {at}"
            );
        }
        // Truncated, or with bytes appended.
        assert_eq!(
            verify(&ob.root, &c, &a[..a.len() - 1]).unwrap_err().code(),
            "storage_audit_truncated"
        );
        assert_eq!(
            verify(&ob.root, &c, &[]).unwrap_err().code(),
            "storage_audit_truncated"
        );
        let mut long = a.clone();
        long.push(0);
        assert_eq!(
            verify(&ob.root, &c, &long),
            Err(AuditFailure::TrailingBytes(1))
        );
        // The answer to another group (the node kept only that one).
        let other = Challenge { group: 6, ..c };
        let a6 = answer(&p, &ob, &other).unwrap();
        assert_eq!(
            verify(&ob.root, &c, &a6).unwrap_err().code(),
            "storage_audit_proof_mismatch"
        );
        // Made-up data with a proof built over it: a different root.
        let fake = piece(200_000, 4);
        let fake_ob = PieceOutboard::create(&fake);
        let fake_answer = answer(&fake, &fake_ob, &c).unwrap();
        assert!(verify(&ob.root, &c, &fake_answer).is_err());
        // A group past the end.
        let past = Challenge { group: 13, ..c };
        assert_eq!(
            verify(&ob.root, &past, &a).unwrap_err().code(),
            "storage_audit_out_of_range"
        );
        assert!(matches!(
            answer(&p, &ob, &past),
            Err(AnswerError::OutOfRange { .. })
        ));
    }

    #[test]
    fn a_node_with_a_rotten_disk_finds_out_when_answering() {
        let mut p = piece(100_000, 5);
        let ob = PieceOutboard::create(&p);
        p[20_000] ^= 0xff; // group 1
        let c = Challenge {
            piece: [3; 32],
            piece_len: p.len() as u64,
            group: 1,
        };
        assert!(matches!(answer(&p, &ob, &c), Err(AnswerError::Damaged(_))));
        // Another group is still provable.
        assert!(answer(&p, &ob, &Challenge { group: 3, ..c }).is_ok());
        let short = PieceOutboard {
            hash_pairs: ob.hash_pairs[..64].to_vec(),
            ..ob.clone()
        };
        assert!(matches!(
            answer(&p, &short, &c),
            Err(AnswerError::OutboardLength { .. })
        ));
    }

    #[test]
    fn challenges_cover_the_piece_and_depend_on_the_seed() {
        assert_eq!(Challenge::derive(&[0; 32], [0; 32], 0), None);
        let len = 64 * CHUNK_GROUP_BYTES;
        let mut seen = std::collections::BTreeSet::new();
        for s in 0..=255u8 {
            let c = Challenge::derive(&[s; 32], [9; 32], len).unwrap();
            assert!(c.group < 64);
            seen.insert(c.group);
        }
        // 256 draws over 64 groups leave about one group unseen.
        assert!(seen.len() >= 58, "{}", seen.len());
        let a = Challenge::derive(&[1; 32], [1; 32], len).unwrap();
        let b = Challenge::derive(&[1; 32], [2; 32], len).unwrap();
        let c = Challenge::derive(&[1; 32], [1; 32], len).unwrap();
        assert_eq!(a, c);
        assert_ne!((a.piece, a.group), (b.piece, b.group));
        assert_eq!(a.deadline_ms(), 15_000);
        let one = Challenge::derive(&[1; 32], [1; 32], u64::MAX).unwrap();
        assert!(one.group <= u64::MAX / CHUNK_GROUP_BYTES);
    }

    proptest! {
        #[test]
        fn garbage_answers_never_verify_and_never_panic(
            garbage in proptest::collection::vec(any::<u8>(), 0..40_000),
            piece_len in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(CHUNK_GROUP_BYTES), 0u64..10_000_000],
            group in prop_oneof![Just(0u64), Just(u64::MAX), 0u64..1000],
            root in any::<[u8; 32]>(),
        ) {
            let c = Challenge { piece: [0; 32], piece_len, group };
            prop_assert!(verify(&PieceHash(root), &c, &garbage).is_err());
        }
    }
}
