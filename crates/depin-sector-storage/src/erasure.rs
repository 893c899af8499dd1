//! Reed–Solomon erasure coding of a (sealed) segment into pieces, one per
//! node, with `reed-solomon-simd`.
//!
//! A segment is cut into **stripes** of `k × shard_bytes`; each stripe is
//! coded into `total` shards (the first `k` are the stripe itself: the code
//! is systematic), and **piece `i`** is shard `i` of every stripe in order.
//! Any `k` pieces rebuild the segment. Shards are at most 64 KiB: the
//! research notes measured reed-solomon-simd's decoder at 30 MiB/s with
//! Storj's 256-byte shares and 880 MiB/s with 64 KiB shards, because each
//! decode call has a large fixed cost.
//!
//! **Shard size.** A segment gets `s = ceil(len / (k × 64 KiB))` stripes and
//! shards of `ceil(len / (s × k))` bytes rounded up to a multiple of 64 (the
//! SIMD engines' unit). So a 64 MiB segment at k = 10 has 103 stripes of
//! 63.7 KiB shards, a segment of at least k × 16 KiB has shards of 16–64 KiB,
//! padding is below 64 bytes per shard, and a small segment is one small
//! stripe instead of k × 16 KiB of padding. The layout
//! ([`SegmentLayout`]) is stored with the segment; the last stripe is padded
//! with zeros, cut off again on decoding by the recorded length.
//!
//! **Streaming.** [`SegmentEncoder`] takes the segment in any slices and
//! hands out each stripe's shards as soon as the stripe is full, so memory is
//! one stripe group (`total` shards), never the segment. [`SegmentDecoder`]
//! takes the shards of `k` pieces one stripe at a time.
//!
//! **Corruption.** Each piece's BLAKE3 hash ([`PieceHash`], the same value as
//! its Bao root in [`crate::audit`]) is computed while encoding and signed by
//! the uploader later. [`decode_segment`] checks every piece against it and
//! decodes from the good ones; the streaming decoder checks at
//! [`SegmentDecoder::finish`]. Reed–Solomon alone cannot tell which shard is
//! wrong (reed-solomon-simd has no error location), so the hash is what makes
//! "decode from any k" safe against a lying node.

use crate::PieceHash;
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// Most pieces a segment may have. Storj's production code uses 110; 256
/// leaves room and keeps a piece number in one byte on the wire.
pub const MAX_PIECES: u16 = 256;
/// Largest shard: the top of the 16–64 KiB range the decoder is fast in.
pub const MAX_SHARD_BYTES: u32 = 64 * 1024;
/// Shards are a multiple of this (reed-solomon-simd's SIMD unit).
pub const SHARD_ALIGN: u32 = 64;
/// Largest segment the coder takes: a sealed 64 MiB segment.
pub const MAX_CODED_SEGMENT_BYTES: u64 = crate::crypt::MAX_SEGMENT_BYTES
    + (crate::crypt::MAX_SEGMENT_BYTES / crate::crypt::BLOCK_PLAINTEXT_BYTES as u64)
        * crate::crypt::TAG_BYTES as u64;

/// Redundancy of a segment, Storj's four thresholds (k/m/o/n):
/// - `k`: pieces needed to read it;
/// - `repair`: at or below this many healthy pieces it is repaired;
/// - `success`: an upload is done once this many pieces are stored (the
///   long tail above it is cancelled);
/// - `total`: pieces an upload starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Redundancy {
    pub k: u16,
    pub repair: u16,
    pub success: u16,
    pub total: u16,
}

impl Redundancy {
    /// At scale (a few hundred nodes in distinct /24s): 10/15/25/30, from the
    /// research notes §7: about 10.9 nines at 10% monthly churn without
    /// repair, with a steady-state expansion of 25/10 = 2.5×.
    pub const DEFAULT: Redundancy = Redundancy {
        k: 10,
        repair: 15,
        success: 25,
        total: 30,
    };
    /// The devnet's dozens of nodes: 4/6/8/10. Eight stored pieces survive
    /// the loss of four (50%, above the run's 30% churn) before a read
    /// fails, and repair starts after two are gone.
    pub const DEVNET: Redundancy = Redundancy {
        k: 4,
        repair: 6,
        success: 8,
        total: 10,
    };

    pub fn new(k: u16, repair: u16, success: u16, total: u16) -> Result<Redundancy, ErasureError> {
        let r = Redundancy {
            k,
            repair,
            success,
            total,
        };
        r.validate()?;
        Ok(r)
    }

    /// `1 ≤ k ≤ repair ≤ success ≤ total ≤ MAX_PIECES` and `k < total` (with
    /// no recovery piece there is no code: one lost node loses the segment,
    /// and reed-solomon-simd needs at least one recovery shard).
    pub fn validate(&self) -> Result<(), ErasureError> {
        let bad = |why| Err(ErasureError::InvalidRedundancy(why));
        if self.k < 1 {
            return bad("k must be at least 1");
        }
        if self.repair < self.k {
            return bad("the repair threshold must be at least k");
        }
        if self.success < self.repair {
            return bad("the success threshold must be at least the repair threshold");
        }
        if self.total < self.success {
            return bad("total must be at least the success threshold");
        }
        if self.total > MAX_PIECES {
            return bad("total must be at most 256");
        }
        if self.total == self.k {
            return bad("total must exceed k: at least one recovery piece");
        }
        Ok(())
    }

    /// Recovery pieces per segment.
    pub fn recovery(&self) -> u16 {
        self.total - self.k
    }
}

/// How one segment was coded; stored with the segment's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegmentLayout {
    pub redundancy: Redundancy,
    pub shard_bytes: u32,
    /// Bytes of the coded segment (the sealed segment), before padding.
    pub segment_len: u64,
}

impl SegmentLayout {
    /// The layout for a segment of `segment_len` bytes (module docs).
    pub fn for_segment(
        redundancy: Redundancy,
        segment_len: u64,
    ) -> Result<SegmentLayout, ErasureError> {
        redundancy.validate()?;
        let k = u64::from(redundancy.k);
        let stripes = segment_len.div_ceil(k * u64::from(MAX_SHARD_BYTES)).max(1);
        let shard = segment_len
            .div_ceil(stripes * k)
            .max(1)
            .next_multiple_of(u64::from(SHARD_ALIGN));
        let shard_bytes =
            u32::try_from(shard).map_err(|_| ErasureError::SegmentTooLarge { len: segment_len })?;
        SegmentLayout::new(redundancy, shard_bytes, segment_len)
    }

    /// A layout from stored values, checked.
    pub fn new(
        redundancy: Redundancy,
        shard_bytes: u32,
        segment_len: u64,
    ) -> Result<SegmentLayout, ErasureError> {
        redundancy.validate()?;
        if shard_bytes == 0
            || shard_bytes > MAX_SHARD_BYTES
            || !shard_bytes.is_multiple_of(SHARD_ALIGN)
        {
            return Err(ErasureError::InvalidShardSize { shard_bytes });
        }
        if segment_len > MAX_CODED_SEGMENT_BYTES {
            return Err(ErasureError::SegmentTooLarge { len: segment_len });
        }
        Ok(SegmentLayout {
            redundancy,
            shard_bytes,
            segment_len,
        })
    }

    pub fn stripe_bytes(&self) -> u64 {
        u64::from(self.redundancy.k) * u64::from(self.shard_bytes)
    }

    /// Stripes in the segment (0 for an empty segment).
    pub fn stripes(&self) -> u64 {
        self.segment_len.div_ceil(self.stripe_bytes())
    }

    /// Bytes of every piece.
    pub fn piece_len(&self) -> u64 {
        self.stripes() * u64::from(self.shard_bytes)
    }
}

/// What went wrong, with a stable reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErasureError {
    #[error("invalid redundancy: {0}")]
    InvalidRedundancy(&'static str),
    #[error("invalid shard size {shard_bytes}: a multiple of 64 between 64 and 65536 bytes")]
    InvalidShardSize { shard_bytes: u32 },
    #[error("segment of {len} bytes is larger than a sealed 64 MiB segment")]
    SegmentTooLarge { len: u64 },
    #[error("the segment was declared as {expected} bytes but {got} were written")]
    LengthMismatch { expected: u64, got: u64 },
    #[error("piece {index} does not exist: a segment has {total} pieces")]
    PieceIndex { index: u16, total: u16 },
    #[error("piece {0} was given twice")]
    DuplicatePiece(u16),
    #[error("piece {index} is {got} bytes long, expected {expected}")]
    PieceLength { index: u16, expected: u64, got: u64 },
    #[error("{piece_hashes} piece hashes given for a segment of {total} pieces")]
    HashCount { piece_hashes: usize, total: u16 },
    #[error("{good} good pieces, {need} needed (corrupt: {corrupt:?})")]
    TooFewPieces {
        good: usize,
        need: u16,
        corrupt: Vec<u16>,
    },
    #[error("pieces {0:?} do not match their hashes")]
    CorruptPieces(Vec<u16>),
    #[error("shard {position} of the stripe is {got} bytes, expected {expected}")]
    ShardLength {
        position: usize,
        expected: u32,
        got: usize,
    },
    #[error("stripe {stripe} is past the segment's {stripes} stripes")]
    TooManyStripes { stripe: u64, stripes: u64 },
    #[error("reed-solomon: {0}")]
    Codec(String),
}

impl ErasureError {
    pub fn code(&self) -> &'static str {
        match self {
            ErasureError::InvalidRedundancy(_) => "storage_invalid_redundancy",
            ErasureError::InvalidShardSize { .. } => "storage_invalid_shard_size",
            ErasureError::SegmentTooLarge { .. } => "storage_segment_too_large",
            ErasureError::LengthMismatch { .. } => "storage_length_mismatch",
            ErasureError::PieceIndex { .. } => "storage_unknown_piece",
            ErasureError::DuplicatePiece(_) => "storage_duplicate_piece",
            ErasureError::PieceLength { .. } => "storage_piece_length",
            ErasureError::HashCount { .. } => "storage_piece_hashes",
            ErasureError::TooFewPieces { .. } => "storage_too_few_pieces",
            ErasureError::CorruptPieces(_) => "storage_corrupt_piece",
            ErasureError::ShardLength { .. } => "storage_shard_length",
            ErasureError::TooManyStripes { .. } => "storage_too_many_stripes",
            ErasureError::Codec(_) => "storage_codec",
        }
    }
}

fn codec(e: reed_solomon_simd::Error) -> ErasureError {
    ErasureError::Codec(e.to_string())
}

/// Encodes one segment stripe by stripe (module docs).
pub struct SegmentEncoder {
    layout: SegmentLayout,
    rs: ReedSolomonEncoder,
    stripe: Vec<u8>,
    written: u64,
    hashers: Vec<blake3::Hasher>,
}

impl SegmentEncoder {
    pub fn new(layout: SegmentLayout) -> Result<SegmentEncoder, ErasureError> {
        let r = layout.redundancy;
        let rs = ReedSolomonEncoder::new(
            usize::from(r.k),
            usize::from(r.recovery()),
            layout.shard_bytes as usize,
        )
        .map_err(codec)?;
        Ok(SegmentEncoder {
            layout,
            rs,
            stripe: Vec::with_capacity(layout.stripe_bytes() as usize),
            written: 0,
            hashers: vec![blake3::Hasher::new(); usize::from(r.total)],
        })
    }

    /// Takes the next bytes of the segment; `shard(piece, bytes)` receives
    /// every shard of each stripe completed, in piece order.
    pub fn write(
        &mut self,
        mut data: &[u8],
        shard: &mut impl FnMut(u16, &[u8]),
    ) -> Result<(), ErasureError> {
        let got = self.written + data.len() as u64;
        if got > self.layout.segment_len {
            return Err(ErasureError::LengthMismatch {
                expected: self.layout.segment_len,
                got,
            });
        }
        self.written = got;
        let stripe_bytes = self.layout.stripe_bytes() as usize;
        while !data.is_empty() {
            // Whole stripes straight from the caller's buffer: no copy.
            if self.stripe.is_empty() && data.len() >= stripe_bytes {
                let (full, rest) = data.split_at(stripe_bytes);
                code_stripe(&mut self.rs, &mut self.hashers, self.layout, full, shard)?;
                data = rest;
                continue;
            }
            let take = (stripe_bytes - self.stripe.len()).min(data.len());
            self.stripe.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.stripe.len() == stripe_bytes {
                code_stripe(
                    &mut self.rs,
                    &mut self.hashers,
                    self.layout,
                    &self.stripe,
                    shard,
                )?;
                self.stripe.clear();
            }
        }
        Ok(())
    }

    /// Pads and codes the last stripe; returns every piece's hash.
    pub fn finish(
        mut self,
        shard: &mut impl FnMut(u16, &[u8]),
    ) -> Result<Vec<PieceHash>, ErasureError> {
        if self.written != self.layout.segment_len {
            return Err(ErasureError::LengthMismatch {
                expected: self.layout.segment_len,
                got: self.written,
            });
        }
        if !self.stripe.is_empty() {
            self.stripe.resize(self.layout.stripe_bytes() as usize, 0);
            code_stripe(
                &mut self.rs,
                &mut self.hashers,
                self.layout,
                &self.stripe,
                shard,
            )?;
        }
        Ok(self
            .hashers
            .iter()
            .map(|h| PieceHash(*h.finalize().as_bytes()))
            .collect())
    }
}

/// Codes one full stripe: its k shards and the recovery shards, each handed
/// to `shard` and added to its piece's hash.
fn code_stripe(
    rs: &mut ReedSolomonEncoder,
    hashers: &mut [blake3::Hasher],
    layout: SegmentLayout,
    stripe: &[u8],
    shard: &mut impl FnMut(u16, &[u8]),
) -> Result<(), ErasureError> {
    let k = layout.redundancy.k;
    for (i, original) in stripe.chunks_exact(layout.shard_bytes as usize).enumerate() {
        rs.add_original_shard(original).map_err(codec)?;
        hashers[i].update(original);
        shard(i as u16, original);
    }
    let result = rs.encode().map_err(codec)?;
    for (j, recovery) in result.recovery_iter().enumerate() {
        let piece = k + j as u16;
        hashers[usize::from(piece)].update(recovery);
        shard(piece, recovery);
    }
    Ok(())
}

/// Decodes a segment from the shards of `k` pieces, one stripe at a time.
pub struct SegmentDecoder {
    layout: SegmentLayout,
    /// The k pieces used, ascending; originals come first when there are any.
    pieces: Vec<u16>,
    rs: Option<ReedSolomonDecoder>,
    expected: Vec<PieceHash>,
    hashers: Vec<blake3::Hasher>,
    next_stripe: u64,
}

impl SegmentDecoder {
    /// `available` lists the pieces the caller can supply; the decoder picks
    /// `k` of them ([`SegmentDecoder::pieces`]), originals first since those
    /// need no arithmetic.
    pub fn new(
        layout: SegmentLayout,
        piece_hashes: &[PieceHash],
        available: &[u16],
    ) -> Result<SegmentDecoder, ErasureError> {
        let r = layout.redundancy;
        if piece_hashes.len() != usize::from(r.total) {
            return Err(ErasureError::HashCount {
                piece_hashes: piece_hashes.len(),
                total: r.total,
            });
        }
        let mut sorted = available.to_vec();
        sorted.sort_unstable();
        for w in sorted.windows(2) {
            if w[0] == w[1] {
                return Err(ErasureError::DuplicatePiece(w[0]));
            }
        }
        if let Some(&index) = sorted.iter().find(|&&i| i >= r.total) {
            return Err(ErasureError::PieceIndex {
                index,
                total: r.total,
            });
        }
        if sorted.len() < usize::from(r.k) {
            return Err(ErasureError::TooFewPieces {
                good: sorted.len(),
                need: r.k,
                corrupt: Vec::new(),
            });
        }
        sorted.truncate(usize::from(r.k));
        let needs_code = sorted.iter().any(|&i| i >= r.k);
        let rs = if needs_code {
            Some(
                ReedSolomonDecoder::new(
                    usize::from(r.k),
                    usize::from(r.recovery()),
                    layout.shard_bytes as usize,
                )
                .map_err(codec)?,
            )
        } else {
            None
        };
        Ok(SegmentDecoder {
            layout,
            expected: sorted
                .iter()
                .map(|&i| piece_hashes[usize::from(i)])
                .collect(),
            hashers: vec![blake3::Hasher::new(); sorted.len()],
            pieces: sorted,
            rs,
            next_stripe: 0,
        })
    }

    /// The pieces whose shards [`SegmentDecoder::decode_stripe`] wants, in
    /// this order.
    pub fn pieces(&self) -> &[u16] {
        &self.pieces
    }

    /// Decodes the next stripe from one shard of each of
    /// [`SegmentDecoder::pieces`] and appends its segment bytes to `out`
    /// (the last stripe without its padding).
    pub fn decode_stripe(
        &mut self,
        shards: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), ErasureError> {
        let stripes = self.layout.stripes();
        if self.next_stripe >= stripes {
            return Err(ErasureError::TooManyStripes {
                stripe: self.next_stripe,
                stripes,
            });
        }
        let s = self.layout.shard_bytes;
        if shards.len() != self.pieces.len() {
            return Err(ErasureError::TooFewPieces {
                good: shards.len(),
                need: self.layout.redundancy.k,
                corrupt: Vec::new(),
            });
        }
        for (position, shard) in shards.iter().enumerate() {
            if shard.len() != s as usize {
                return Err(ErasureError::ShardLength {
                    position,
                    expected: s,
                    got: shard.len(),
                });
            }
            self.hashers[position].update(shard);
        }
        let start = self.next_stripe * self.layout.stripe_bytes();
        let keep = (self.layout.segment_len - start).min(self.layout.stripe_bytes()) as usize;
        let before = out.len();
        let k = self.layout.redundancy.k;
        match &mut self.rs {
            // Every original is here: the stripe is their concatenation.
            None => {
                for shard in shards {
                    out.extend_from_slice(shard);
                }
            }
            Some(rs) => {
                for (&piece, shard) in self.pieces.iter().zip(shards) {
                    if piece < k {
                        rs.add_original_shard(usize::from(piece), shard)
                    } else {
                        rs.add_recovery_shard(usize::from(piece - k), shard)
                    }
                    .map_err(codec)?;
                }
                let result = rs.decode().map_err(codec)?;
                let mut given = self.pieces.iter().zip(shards).peekable();
                for original in 0..k {
                    match given.peek() {
                        Some(&(&p, shard)) if p == original => {
                            out.extend_from_slice(shard);
                            given.next();
                        }
                        _ => {
                            let restored = result
                                .restored_original(usize::from(original))
                                .ok_or_else(|| {
                                    ErasureError::Codec(format!(
                                        "original {original} was not restored"
                                    ))
                                })?;
                            out.extend_from_slice(restored);
                        }
                    }
                }
            }
        }
        out.truncate(before + keep);
        self.next_stripe += 1;
        Ok(())
    }

    /// Checks that every stripe came and every piece used matched its hash.
    /// Until this returns `Ok`, the decoded bytes are not to be trusted.
    pub fn finish(self) -> Result<(), ErasureError> {
        let stripes = self.layout.stripes();
        if self.next_stripe != stripes {
            return Err(ErasureError::LengthMismatch {
                expected: self.layout.piece_len(),
                got: self.next_stripe * u64::from(self.layout.shard_bytes),
            });
        }
        let corrupt: Vec<u16> = self
            .pieces
            .iter()
            .zip(self.hashers.iter().zip(&self.expected))
            .filter(|(_, (h, want))| h.finalize().as_bytes() != &want.0)
            .map(|(&p, _)| p)
            .collect();
        if corrupt.is_empty() {
            Ok(())
        } else {
            Err(ErasureError::CorruptPieces(corrupt))
        }
    }
}

/// Encodes a whole in-memory segment into its `total` pieces and their hashes.
pub fn encode_segment(
    layout: SegmentLayout,
    segment: &[u8],
) -> Result<(Vec<Vec<u8>>, Vec<PieceHash>), ErasureError> {
    let mut pieces =
        vec![Vec::with_capacity(layout.piece_len() as usize); usize::from(layout.redundancy.total)];
    let mut sink = |i: u16, shard: &[u8]| pieces[usize::from(i)].extend_from_slice(shard);
    let mut enc = SegmentEncoder::new(layout)?;
    enc.write(segment, &mut sink)?;
    let hashes = enc.finish(&mut sink)?;
    Ok((pieces, hashes))
}

/// A decoded segment and the pieces that were found corrupt on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub segment: Vec<u8>,
    pub corrupt: Vec<u16>,
}

/// Decodes a segment from whichever pieces are at hand: every piece is
/// checked against its hash first, corrupt ones are set aside (and named),
/// and any `k` good ones rebuild the segment.
pub fn decode_segment(
    layout: SegmentLayout,
    piece_hashes: &[PieceHash],
    pieces: &[(u16, &[u8])],
) -> Result<Decoded, ErasureError> {
    let r = layout.redundancy;
    if piece_hashes.len() != usize::from(r.total) {
        return Err(ErasureError::HashCount {
            piece_hashes: piece_hashes.len(),
            total: r.total,
        });
    }
    let mut good: Vec<(u16, &[u8])> = Vec::new();
    let mut corrupt = Vec::new();
    for &(index, bytes) in pieces {
        if index >= r.total {
            return Err(ErasureError::PieceIndex {
                index,
                total: r.total,
            });
        }
        if good.iter().any(|(i, _)| *i == index) || corrupt.contains(&index) {
            return Err(ErasureError::DuplicatePiece(index));
        }
        // A piece of the wrong length, or whose hash differs, is corrupt.
        if bytes.len() as u64 == layout.piece_len()
            && blake3::hash(bytes).as_bytes() == &piece_hashes[usize::from(index)].0
        {
            good.push((index, bytes));
        } else {
            corrupt.push(index);
        }
    }
    corrupt.sort_unstable();
    if good.len() < usize::from(r.k) {
        return Err(ErasureError::TooFewPieces {
            good: good.len(),
            need: r.k,
            corrupt,
        });
    }
    let available: Vec<u16> = good.iter().map(|(i, _)| *i).collect();
    let mut dec = SegmentDecoder::new(layout, piece_hashes, &available)?;
    let chosen: Vec<&[u8]> = dec
        .pieces()
        .iter()
        .map(|p| {
            good.iter()
                .find(|(i, _)| i == p)
                .map(|(_, b)| *b)
                .expect("the decoder chose among the given pieces")
        })
        .collect();
    let s = layout.shard_bytes as usize;
    let mut segment = Vec::with_capacity(layout.segment_len as usize);
    for stripe in 0..layout.stripes() as usize {
        let shards: Vec<&[u8]> = chosen
            .iter()
            .map(|p| &p[stripe * s..(stripe + 1) * s])
            .collect();
        dec.decode_stripe(&shards, &mut segment)?;
    }
    dec.finish()?;
    Ok(Decoded { segment, corrupt })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_u32;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn redundancy_validation() {
        assert_eq!(Redundancy::DEFAULT.validate(), Ok(()));
        assert_eq!(Redundancy::DEVNET.validate(), Ok(()));
        assert!(Redundancy::new(1, 1, 1, 2).is_ok());
        assert!(Redundancy::new(128, 128, 128, 256).is_ok());
        for (k, r, s, t) in [
            (0, 0, 0, 1),
            (2, 1, 3, 4),
            (2, 3, 2, 4),
            (2, 3, 4, 3),
            (3, 3, 3, 3),
            (10, 15, 25, 257),
            (u16::MAX, u16::MAX, u16::MAX, u16::MAX),
        ] {
            let e = Redundancy::new(k, r, s, t).unwrap_err();
            assert_eq!(e.code(), "storage_invalid_redundancy", "{k}/{r}/{s}/{t}");
        }
    }

    #[test]
    fn layouts_keep_shards_in_range() {
        let r = Redundancy::DEFAULT;
        let l = SegmentLayout::for_segment(r, MAX_CODED_SEGMENT_BYTES).unwrap();
        assert!(l.shard_bytes <= MAX_SHARD_BYTES && l.shard_bytes >= 60 * 1024);
        assert_eq!(l.stripes(), 103);
        assert!(l.stripes() * l.stripe_bytes() - l.segment_len < 64 * 10 * 103);
        let l = SegmentLayout::for_segment(r, 10 * 32 * 1024).unwrap();
        assert_eq!((l.shard_bytes, l.stripes()), (32 * 1024, 1));
        let l = SegmentLayout::for_segment(r, 10 * 64 * 1024 + 1).unwrap();
        assert_eq!(l.stripes(), 2);
        assert!(l.shard_bytes >= 32 * 1024);
        let l = SegmentLayout::for_segment(r, 0).unwrap();
        assert_eq!((l.shard_bytes, l.stripes(), l.piece_len()), (64, 0, 0));
        let l = SegmentLayout::for_segment(r, 1).unwrap();
        assert_eq!((l.shard_bytes, l.stripes()), (64, 1));
        assert!(SegmentLayout::for_segment(r, MAX_CODED_SEGMENT_BYTES + 1).is_err());
        assert!(SegmentLayout::for_segment(r, u64::MAX).is_err());
        for bad in [0, 63, 65, MAX_SHARD_BYTES + 64, u32::MAX] {
            assert_eq!(
                SegmentLayout::new(r, bad, 10).unwrap_err().code(),
                "storage_invalid_shard_size"
            );
        }
    }

    #[test]
    fn round_trips_for_edge_sizes() {
        for r in [
            Redundancy::DEFAULT,
            Redundancy::DEVNET,
            Redundancy::new(1, 1, 1, 2).unwrap(),
        ] {
            let k = usize::from(r.k);
            for len in [
                0,
                1,
                63,
                64,
                k * 64,
                k * 64 + 1,
                k * 65536,
                k * 65536 * 2 + 77,
                1_000_003,
            ] {
                let seg = data(len);
                let layout = SegmentLayout::for_segment(r, len as u64).unwrap();
                let (pieces, hashes) = encode_segment(layout, &seg).unwrap();
                assert_eq!(pieces.len(), usize::from(r.total));
                assert!(pieces.iter().all(|p| p.len() as u64 == layout.piece_len()));
                // From the last k pieces only (all recovery pieces when possible).
                let given: Vec<(u16, &[u8])> = (r.total - r.k..r.total)
                    .map(|i| (i, pieces[usize::from(i)].as_slice()))
                    .collect();
                let d = decode_segment(layout, &hashes, &given).unwrap();
                assert_eq!(d.segment, seg, "{r:?} len {len}");
                assert!(d.corrupt.is_empty());
            }
        }
    }

    #[test]
    fn every_subset_of_at_least_k_decodes_and_fewer_are_refused() {
        let r = Redundancy::new(3, 4, 5, 6).unwrap();
        let seg = data(3 * 1024 * 3 + 11);
        let layout = SegmentLayout::new(r, 1024, seg.len() as u64).unwrap();
        assert_eq!(layout.stripes(), 4);
        let (pieces, hashes) = encode_segment(layout, &seg).unwrap();
        for mask in 0u32..(1 << 6) {
            let given: Vec<(u16, &[u8])> = (0..6u16)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| (i, pieces[usize::from(i)].as_slice()))
                .collect();
            let got = decode_segment(layout, &hashes, &given);
            if given.len() >= 3 {
                assert_eq!(got.unwrap().segment, seg, "mask {mask:06b}");
            } else {
                assert_eq!(
                    got.unwrap_err(),
                    ErasureError::TooFewPieces {
                        good: given.len(),
                        need: 3,
                        corrupt: vec![]
                    },
                    "mask {mask:06b}"
                );
            }
        }
    }

    #[test]
    fn corrupt_pieces_are_named_and_skipped() {
        let r = Redundancy::DEVNET;
        let seg = data(200_000);
        let layout = SegmentLayout::for_segment(r, seg.len() as u64).unwrap();
        let (mut pieces, hashes) = encode_segment(layout, &seg).unwrap();
        pieces[0][5] ^= 0x80; // flipped bit in an original
        pieces[7].truncate(10); // truncated recovery piece
        let foreign = data(layout.piece_len() as usize);
        pieces[2] = foreign; // a piece of someone else's data
        let given: Vec<(u16, &[u8])> = (0..8u16)
            .map(|i| (i, pieces[usize::from(i)].as_slice()))
            .collect();
        let d = decode_segment(layout, &hashes, &given).unwrap();
        assert_eq!(d.segment, seg);
        assert_eq!(d.corrupt, vec![0, 2, 7]);
        // With only k − 1 good pieces left it refuses and says why.
        let given: Vec<(u16, &[u8])> = [0u16, 1, 2, 3, 7]
            .iter()
            .map(|&i| (i, pieces[usize::from(i)].as_slice()))
            .collect();
        assert_eq!(
            decode_segment(layout, &hashes, &given).unwrap_err(),
            ErasureError::TooFewPieces {
                good: 2,
                need: 4,
                corrupt: vec![0, 2, 7]
            }
        );
    }

    #[test]
    fn streaming_decoder_catches_a_bad_shard_at_finish() {
        let r = Redundancy::DEVNET;
        let seg = data(10 * 4 * 1024);
        let layout = SegmentLayout::new(r, 1024, seg.len() as u64).unwrap();
        let (mut pieces, hashes) = encode_segment(layout, &seg).unwrap();
        pieces[5][1030] ^= 1; // second stripe of piece 5
        let mut dec = SegmentDecoder::new(layout, &hashes, &[9, 5, 8, 6, 7]).unwrap();
        assert_eq!(dec.pieces(), &[5, 6, 7, 8]);
        let mut out = Vec::new();
        for s in 0..layout.stripes() as usize {
            let shards: Vec<&[u8]> = dec
                .pieces()
                .iter()
                .map(|&p| &pieces[usize::from(p)][s * 1024..(s + 1) * 1024])
                .collect();
            dec.decode_stripe(&shards, &mut out).unwrap();
        }
        let extra = vec![0u8; 1024];
        let shards: Vec<&[u8]> = vec![&extra; 4].into_iter().map(|v| v.as_slice()).collect();
        assert!(matches!(
            dec.decode_stripe(&shards, &mut out),
            Err(ErasureError::TooManyStripes { .. })
        ));
        assert_ne!(out, seg);
        assert_eq!(dec.finish(), Err(ErasureError::CorruptPieces(vec![5])));
    }

    #[test]
    fn bad_arguments_are_refused() {
        let r = Redundancy::DEVNET;
        let layout = SegmentLayout::for_segment(r, 100).unwrap();
        let (pieces, hashes) = encode_segment(layout, &data(100)).unwrap();
        let p = |i: u16| (i, pieces[usize::from(i)].as_slice());
        assert_eq!(
            decode_segment(layout, &hashes, &[p(0), p(0), p(1), p(2)]).unwrap_err(),
            ErasureError::DuplicatePiece(0)
        );
        assert_eq!(
            decode_segment(layout, &hashes, &[(10, &[][..])]).unwrap_err(),
            ErasureError::PieceIndex {
                index: 10,
                total: 10
            }
        );
        assert_eq!(
            decode_segment(layout, &hashes[..9], &[p(0)])
                .unwrap_err()
                .code(),
            "storage_piece_hashes"
        );
        assert!(SegmentDecoder::new(layout, &hashes, &[u16::MAX, 1, 2, 3]).is_err());
        let mut enc = SegmentEncoder::new(layout).unwrap();
        let mut sink = |_: u16, _: &[u8]| {};
        assert_eq!(
            enc.write(&data(101), &mut sink),
            Err(ErasureError::LengthMismatch {
                expected: 100,
                got: 101
            })
        );
        let mut enc = SegmentEncoder::new(layout).unwrap();
        enc.write(&data(99), &mut sink).unwrap();
        assert_eq!(
            enc.finish(&mut sink),
            Err(ErasureError::LengthMismatch {
                expected: 100,
                got: 99
            })
        );
    }

    #[test]
    fn streaming_encoder_matches_whole_encoding_and_holds_one_stripe() {
        let r = Redundancy::DEVNET;
        let seg = data(4 * 2048 * 5 + 300);
        let layout = SegmentLayout::new(r, 2048, seg.len() as u64).unwrap();
        let (whole, whole_hashes) = encode_segment(layout, &seg).unwrap();
        let mut pieces = vec![Vec::new(); 10];
        let mut calls = 0;
        let mut enc = SegmentEncoder::new(layout).unwrap();
        // Odd-sized writes; shards come out as soon as a stripe is full.
        for chunk in seg.chunks(777) {
            enc.write(chunk, &mut |i, s| {
                pieces[usize::from(i)].extend_from_slice(s);
                calls += 1;
            })
            .unwrap();
        }
        assert_eq!(calls, 5 * 10);
        let hashes = enc
            .finish(&mut |i, s| pieces[usize::from(i)].extend_from_slice(s))
            .unwrap();
        assert_eq!(pieces, whole);
        assert_eq!(hashes, whole_hashes);
        assert_eq!(hashes[3], PieceHash(*blake3::hash(&whole[3]).as_bytes()));
    }

    use proptest::prelude::*;

    fn extreme_u16() -> impl Strategy<Value = u16> {
        prop_oneof![
            Just(0u16),
            Just(1),
            Just(255),
            Just(256),
            Just(257),
            Just(u16::MAX),
            any::<u16>()
        ]
    }

    proptest! {
        #[test]
        fn stored_layouts_are_checked_not_trusted(
            k in extreme_u16(), repair in extreme_u16(), success in extreme_u16(), total in extreme_u16(),
            shard in prop_oneof![Just(0u32), Just(64), Just(65_536), Just(65_537), Just(u32::MAX), any::<u32>()],
            len in prop_oneof![Just(0u64), Just(1), Just(MAX_CODED_SEGMENT_BYTES), Just(MAX_CODED_SEGMENT_BYTES + 1), Just(u64::MAX), any::<u64>()],
        ) {
            let r = Redundancy { k, repair, success, total };
            if let Ok(l) = SegmentLayout::new(r, shard, len) {
                prop_assert!(l.redundancy.k >= 1 && l.redundancy.total <= MAX_PIECES);
                prop_assert!(l.piece_len() * u64::from(k) >= len);
                prop_assert!(SegmentEncoder::new(l).is_ok());
            }
            if let Ok(l) = SegmentLayout::for_segment(r, len) {
                prop_assert!(l.shard_bytes <= MAX_SHARD_BYTES);
            }
        }

        #[test]
        fn garbage_pieces_never_decode(
            garbage in proptest::collection::vec((extreme_u16(), proptest::collection::vec(any::<u8>(), 0..200)), 0..12),
        ) {
            let layout = SegmentLayout::for_segment(Redundancy::DEVNET, 100).unwrap();
            let (_, hashes) = encode_segment(layout, &[9u8; 100]).unwrap();
            let given: Vec<(u16, &[u8])> = garbage.iter().map(|(i, b)| (*i, b.as_slice())).collect();
            prop_assert!(decode_segment(layout, &hashes, &given).is_err());
        }
    }
}
