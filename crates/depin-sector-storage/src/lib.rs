//! The storage sector's pure core (issue 9): what a consumer's client, a
//! storage node and the coordinator compute, without I/O, clock or
//! unseeded randomness. The network, the piece store, the coordinator's
//! tables and the seam wiring build on it.
//!
//! The data path of one object, client side:
//!
//! ```text
//! file ─split─▶ segments ≤ 64 MiB ─crypt─▶ sealed segment ─erasure─▶ `total` pieces
//!                                                                │
//!                            piece hash = BLAKE3 = Bao root ◀────┘ (audit)
//! ```
//!
//! - [`crypt`]: AES-256-GCM per segment under keys derived with BLAKE3 from
//!   the consumer's root secret; object names encrypted deterministically.
//! - [`erasure`]: Reed–Solomon (`reed-solomon-simd`) in stripes of up to
//!   64 KiB shards; decode from any k pieces, corrupt pieces found by hash.
//! - [`audit`]: Bao proofs of one random 16 KiB group of a piece.
//! - [`reputation`]: Storj's audit, unknown-error and online scores.
//! - [`placement`]: nodes on distinct operators and subnets, weighted.

pub mod audit;
pub mod crypt;
pub mod erasure;
pub mod placement;
pub mod reputation;

/// The BLAKE3 hash of a whole piece. It is also the piece's Bao root, so
/// the one value identifies the piece, detects corruption when decoding and
/// anchors audits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PieceHash(pub [u8; 32]);
