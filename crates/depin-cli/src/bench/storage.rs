//! `depin bench storage`: the storage sector's CPU data path on one core
//! (this thread), against raw `reed-solomon-simd` on the same stripes in the
//! same run. k = 10, m = 20, 64 KiB shards, one segment of 102 full stripes
//! (63.75 MiB).
//!
//! - encode: [`SegmentEncoder`] (striping, Reed–Solomon and the BLAKE3 hash
//!   of every piece) over the raw encoder alone;
//! - decode: [`SegmentDecoder`] from the 10 recovery pieces only (every
//!   original lost, the most arithmetic a read can need), hashes checked,
//!   over the raw decoder on the same shards;
//! - figures are GiB of segment per second, best of three runs.
//!
//! The figures that need nodes over loopback are listed under
//! `not_measured` until the piece store exists.

use super::{cores, round3};
use depin_sector_storage::audit::{Challenge, PieceOutboard, answer, verify};
use depin_sector_storage::crypt::{ObjectVersion, RootSecret, seal_segment};
use depin_sector_storage::erasure::{Redundancy, SegmentDecoder, SegmentEncoder, SegmentLayout};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use serde_json::json;
use std::hint::black_box;
use std::time::Instant;

const SEGMENT: usize = 64 * 1024 * 1024;
const SHARD: usize = 64 * 1024;
const RUNS: usize = 3;
const GIB: f64 = (1u64 << 30) as f64;

pub fn storage() -> anyhow::Result<serde_json::Value> {
    let (wall, cpu) = (Instant::now(), thread_cpu_s());
    let r = Redundancy::new(10, 15, 25, 30)?;
    let (k, m) = (usize::from(r.k), usize::from(r.recovery()));
    // 102 full stripes (63.75 MiB): incompressible, deterministic input
    // (xorshift) with no zero padding in a last stripe, so both sides code
    // the same bytes.
    let stripes = SEGMENT / (k * SHARD);
    let segment = pseudo_random(stripes * k * SHARD);
    let layout = SegmentLayout::new(r, SHARD as u32, segment.len() as u64)?;
    let gib = segment.len() as f64 / GIB;

    // Set-up (not timed): the first k recovery pieces and every piece hash,
    // for the decode below.
    let mut recovery_pieces = vec![Vec::with_capacity(layout.piece_len() as usize); k];
    let mut enc = SegmentEncoder::new(layout)?;
    let mut keep = |i: u16, shard: &[u8]| {
        let i = usize::from(i);
        if (k..2 * k).contains(&i) {
            recovery_pieces[i - k].extend_from_slice(shard);
        }
    };
    enc.write(&segment, &mut keep)?;
    let hashes = enc.finish(&mut keep)?;

    // Ours: striping, Reed–Solomon and every piece's hash; the shards go to
    // a sink that only looks at them (a put would hand them to piece writers).
    let encode_s = best_of(|| {
        let mut enc = SegmentEncoder::new(layout)?;
        let mut sink = |_: u16, shard: &[u8]| {
            black_box(shard);
        };
        enc.write(&segment, &mut sink)?;
        anyhow::ensure!(
            enc.finish(&mut sink)? == hashes,
            "encoding is not deterministic"
        );
        Ok(())
    })?;

    // The bound: the raw encoder over the same stripes, output untouched.
    let mut raw = ReedSolomonEncoder::new(k, m, SHARD)?;
    let raw_encode_s = best_of(|| {
        for stripe in segment.chunks_exact(k * SHARD) {
            for shard in stripe.chunks_exact(SHARD) {
                raw.add_original_shard(shard)?;
            }
            let out = raw.encode()?;
            for rec in out.recovery_iter() {
                black_box(rec);
            }
        }
        Ok(())
    })?;

    // Ours: decode from the 10 recovery pieces (pieces 10..20), hash-checked.
    let available: Vec<u16> = (r.k..r.k + r.k).collect();
    let mut decoded = Vec::with_capacity(segment.len());
    let decode_s = best_of(|| {
        decoded.clear();
        let mut dec = SegmentDecoder::new(layout, &hashes, &available)?;
        for s in 0..stripes {
            let shards: Vec<&[u8]> = (0..k)
                .map(|j| &recovery_pieces[j][s * SHARD..(s + 1) * SHARD])
                .collect();
            dec.decode_stripe(&shards, &mut decoded)?;
        }
        dec.finish()?;
        Ok(())
    })?;
    anyhow::ensure!(
        decoded == segment,
        "the decoded segment differs from the input"
    );

    let mut raw_dec = ReedSolomonDecoder::new(k, m, SHARD)?;
    let raw_decode_s = best_of(|| {
        for s in 0..stripes {
            for (j, piece) in recovery_pieces.iter().enumerate() {
                raw_dec.add_recovery_shard(j, &piece[s * SHARD..(s + 1) * SHARD])?;
            }
            let out = raw_dec.decode()?;
            for restored in out.restored_original_iter() {
                black_box(restored);
            }
        }
        Ok(())
    })?;

    // Sealing the same segment (AES-256-GCM, 64 KiB blocks).
    let key =
        RootSecret::from_bytes([7; 32]).segment_key("bench", "object", &ObjectVersion([1; 16]), 0);
    let seal_s = best_of(|| {
        black_box(seal_segment(&key, &segment)?);
        Ok(())
    })?;

    // Coordinator-side audit checks: verifying answers for one piece.
    let piece = &recovery_pieces[0];
    let outboard = PieceOutboard::create(piece);
    let answers: Vec<(Challenge, Vec<u8>)> = (0..256u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            let c = Challenge::derive(&seed, [1; 32], piece.len() as u64)
                .expect("the piece is not empty");
            let a = answer(piece, &outboard, &c).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok::<_, anyhow::Error>((c, a))
        })
        .collect::<anyhow::Result<_>>()?;
    let verify_s = best_of(|| {
        for (c, a) in &answers {
            black_box(verify(&outboard.root, c, a).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        Ok(())
    })?;

    // On a shared machine this thread may get only part of a core; the
    // share is reported so the absolute figures can be read (the ratios
    // are measured under the same conditions and need no correction).
    let cpu_share = cpu
        .zip(thread_cpu_s())
        .map(|(a, b)| round3((b - a) / wall.elapsed().as_secs_f64()));
    let encode = gib / encode_s;
    let raw_encode = gib / raw_encode_s;
    let decode = gib / decode_s;
    let raw_decode = gib / raw_decode_s;
    Ok(json!({
        "bench": "storage",
        "cores": cores(),
        "threads_used": 1,
        "cpu_share": cpu_share,
        "k": k,
        "m": m,
        "shard_bytes": SHARD,
        "segment_bytes": segment.len(),
        "runs": RUNS,
        "encode_gib_s_per_core": round3(encode),
        "decode_gib_s_per_core": round3(decode),
        "raw_rs_encode_gib_s_per_core": round3(raw_encode),
        "raw_rs_decode_gib_s_per_core": round3(raw_decode),
        "encode_ratio": round3(encode / raw_encode),
        "decode_ratio": round3(decode / raw_decode),
        "decode_case": "from the 10 recovery pieces: every original lost",
        "seal_gib_s_per_core": round3(gib / seal_s),
        "audit_verify_per_s_per_core": (answers.len() as f64 / verify_s).round(),
        "target_gib_s_per_core": 1,
        "not_measured": {
            "put_vs_loopback": "needs storage nodes over loopback (piece store not built yet)",
            "get_vs_loopback": "needs storage nodes over loopback (piece store not built yet)",
            "put_peak_rss_mib": "needs `depin put` (client not built yet)",
            "audit_checks_per_s": "needs the coordinator's audit loop; audit_verify_per_s_per_core is the verification alone",
        },
    }))
}

/// Seconds of the fastest of [`RUNS`] runs.
fn best_of(mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// CPU seconds this thread has used, from `/proc/thread-self/stat` (utime +
/// stime, in Linux's fixed 100 ticks per second); `None` off Linux.
fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The name (field 2) is in parentheses and may hold spaces; fields
    // resume after the last ')', starting with field 3, so utime (14) and
    // stime (15) are the 12th and 13th.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
