//! `cargo test -p depin-rewards --release --test scale -- --ignored --nocapture`:
//! availability and the sheet over a million devices, the benchmark's size.

use depin_core::{PublicKey, Sector};
use depin_rewards::*;
use std::time::Instant;

#[test]
#[ignore = "a million devices; run in release"]
fn million_devices() {
    let n = 1_000_000u32;
    let p = RewardPolicy::default_v1();
    let start = p.epoch_start_ms(1);
    // Keys spread by a cheap bijective mix so input order is not sorted.
    let key = |i: u32| {
        let mut k = [0u8; 32];
        let x = i.wrapping_mul(2_654_435_761).to_be_bytes();
        k[..4].copy_from_slice(&x);
        k[4..8].copy_from_slice(&i.to_be_bytes());
        PublicKey(k)
    };
    let devices: Vec<DeviceInfo> = (0..n)
        .map(|i| DeviceInfo {
            device: key(i),
            operator: key(i / 4),
            sector: Sector::ALL[(i % 4) as usize],
            active_from_ms: if i % 10 == 0 {
                start + 600_000
            } else {
                start - 1
            },
            revoked_at_ms: None,
        })
        .collect();
    let reports: Vec<ReportSummary> = (0..n)
        .filter(|i| i % 7 != 0)
        .map(|i| ReportSummary {
            device: key(i),
            heartbeats: i % 13,
        })
        .collect();
    let t = Instant::now();
    let factors = availability(&p, 1, &devices, &reports);
    let verify = t.elapsed();
    let t = Instant::now();
    let sheet = compute_sheet(
        &p,
        1,
        factors.iter().map(|f| f.times(PPM, &[], 1)).collect(),
        &[],
    );
    let compute = t.elapsed();
    let t = Instant::now();
    let hash = sheet.hash_hex();
    let hashing = t.elapsed();
    eprintln!(
        "verify {verify:?} sheet {compute:?} hash {hashing:?} lines {} minted {} {hash}",
        sheet.lines.len(),
        sheet.minted
    );
    assert_eq!(sheet.minted, sheet.emission);
}
