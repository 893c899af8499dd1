//! Properties of the reward sheet, availability scoring and emission schedule.

use depin_core::{PublicKey, Reason, Sector};
use depin_rewards::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn sector() -> impl Strategy<Value = Sector> {
    prop::sample::select(Sector::ALL.to_vec())
}

fn score() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(0u32), 1 => Just(1_000_000u32), 4 => 0..=1_000_000u32]
}

fn weight() -> impl Strategy<Value = u64> {
    prop_oneof![4 => Just(1u64), 2 => 0..1_000u64, 1 => Just(u64::MAX), 1 => any::<u64>()]
}

/// Contributions with distinct (device, sector); the verifier's reason rule
/// (a reason for every score below 100%) holds.
fn contributions(max: usize) -> impl Strategy<Value = Vec<Contribution>> {
    prop::collection::vec((0..60u8, sector(), 0..4u8, score(), weight()), 0..max).prop_map(|rows| {
        let mut seen = BTreeSet::new();
        rows.into_iter()
            .filter(|(d, s, ..)| seen.insert((*d, *s)))
            .map(|(d, s, op, score_ppm, weight)| Contribution {
                device: PublicKey([d; 32]),
                operator: PublicKey([200 + op; 32]),
                sector: s,
                score_ppm,
                weight,
                reasons: if score_ppm == 0 {
                    vec![Reason::NoReports]
                } else if score_ppm < 1_000_000 {
                    vec![Reason::PartialUptime]
                } else {
                    vec![]
                },
            })
            .collect()
    })
}

fn policy() -> impl Strategy<Value = RewardPolicy> {
    let emission = prop_oneof![0..10u64, 0..10_000u64, Just(u64::MAX), any::<u64>()];
    let cuts = (0..=10_000u32, 0..=10_000u32, 0..=10_000u32);
    (emission, cuts, 0..=10_000u32).prop_map(|(e, (a, b, c), fee)| {
        let mut cut = [a, b, c];
        cut.sort();
        let weights = [cut[0], cut[1] - cut[0], cut[2] - cut[1], 10_000 - cut[2]];
        RewardPolicy {
            emission_per_epoch_year0: e,
            sector_weights_bps: Sector::ALL.into_iter().zip(weights).collect(),
            protocol_fee_bps: fee,
            ..RewardPolicy::default_v1()
        }
    })
}

fn fees_for(cs: &[Contribution], amounts: &[u32]) -> Vec<FeeSettlement> {
    cs.iter()
        .zip(amounts)
        .map(|(c, g)| FeeSettlement {
            device: c.device,
            operator: c.operator,
            sector: c.sector,
            gross: u64::from(*g),
        })
        .collect()
}

fn share(c: &Contribution) -> u128 {
    u128::from(c.score_ppm) * u128::from(c.weight)
}

fn reward_of(sheet: &RewardSheet, device: PublicKey, sector: Sector) -> u64 {
    sheet
        .lines
        .iter()
        .find(|l| l.device == device && l.sector == sector)
        .unwrap()
        .reward
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sector_sums_are_exact(p in policy(), cs in contributions(40), amounts in prop::collection::vec(0..100_000u32, 40), epoch in 0..100_000u64) {
        let fees = fees_for(&cs, &amounts);
        let sheet = compute_sheet(&p, epoch, cs.clone(), &fees);
        prop_assert_eq!(sheet.emission, emission_for_epoch(&p, epoch));
        prop_assert_eq!(sheet.per_sector.values().map(|t| u128::from(t.emission)).sum::<u128>(), u128::from(sheet.emission));
        let mut minted = 0u128;
        for (s, t) in &sheet.per_sector {
            let sum: u128 = sheet.lines.iter().filter(|l| l.sector == *s).map(|l| u128::from(l.reward)).sum();
            prop_assert_eq!(sum, u128::from(t.distributed));
            prop_assert!(t.distributed <= t.emission);
            let any_share = cs.iter().any(|c| c.sector == *s && share(c) > 0);
            if any_share {
                prop_assert_eq!(t.distributed, t.emission, "sector {} with a positive share", s);
            } else {
                prop_assert_eq!(t.distributed, 0);
            }
            prop_assert_eq!(t.rewarded as usize, sheet.lines.iter().filter(|l| l.sector == *s && l.reward > 0).count());
            minted += u128::from(t.distributed);
        }
        prop_assert_eq!(minted, u128::from(sheet.minted));
        // Fees: what devices keep plus what is burned is what consumers paid.
        let kept: u128 = sheet.lines.iter().map(|l| u128::from(l.fees)).sum();
        prop_assert_eq!(kept + u128::from(sheet.burned), u128::from(sheet.fees));
        prop_assert_eq!(u128::from(sheet.fees), amounts.iter().take(cs.len()).map(|a| u128::from(*a)).sum::<u128>());
        // Lines are sorted and unique by (device, sector).
        prop_assert!(sheet.lines.windows(2).all(|w| (w[0].device, w[0].sector) < (w[1].device, w[1].sector)));
        // Emission entries add up to minted.
        prop_assert_eq!(sheet.emission_entries().iter().map(|e| u128::from(e.amount)).sum::<u128>(), u128::from(sheet.minted));
    }

    #[test]
    fn input_order_does_not_matter(
        p in policy(),
        (cs, shuffled) in contributions(40).prop_flat_map(|cs| (Just(cs.clone()), Just(cs).prop_shuffle())),
        amounts in prop::collection::vec(0..1_000u32, 40),
    ) {
        let fees = fees_for(&cs, &amounts);
        let mut fees_rev = fees.clone();
        fees_rev.reverse();
        let a = compute_sheet(&p, 7, cs, &fees);
        let b = compute_sheet(&p, 7, shuffled, &fees_rev);
        prop_assert_eq!(a.canonical_bytes(), b.canonical_bytes());
        prop_assert_eq!(a.hash(), b.hash());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn scaling_every_share_changes_nothing(p in policy(), cs in contributions(40), k in 1..=20u32, weight_k in 1..=1000u64) {
        let small: Vec<Contribution> = cs
            .into_iter()
            .map(|c| Contribution { score_ppm: c.score_ppm / 20, weight: c.weight % 1_000_000, ..c })
            .collect();
        let scaled: Vec<Contribution> = small
            .iter()
            .map(|c| Contribution { score_ppm: c.score_ppm * k, weight: c.weight * weight_k, ..c.clone() })
            .collect();
        let a = compute_sheet(&p, 0, small, &[]);
        let b = compute_sheet(&p, 0, scaled, &[]);
        let ra: Vec<_> = a.lines.iter().map(|l| (l.device, l.sector, l.reward)).collect();
        let rb: Vec<_> = b.lines.iter().map(|l| (l.device, l.sector, l.reward)).collect();
        prop_assert_eq!(ra, rb);
    }

    #[test]
    fn a_larger_share_never_gets_less(p in policy(), cs in contributions(60)) {
        let sheet = compute_sheet(&p, 0, cs.clone(), &[]);
        for a in &cs {
            for b in &cs {
                if a.sector == b.sector && share(a) > share(b) {
                    let (ra, rb) = (reward_of(&sheet, a.device, a.sector), reward_of(&sheet, b.device, b.sector));
                    prop_assert!(ra >= rb, "share {} got {} < share {} got {}", share(a), ra, share(b), rb);
                }
            }
        }
    }

    #[test]
    fn every_zero_or_reduced_line_has_a_reason(p in policy(), cs in contributions(40), amounts in prop::collection::vec(0..3u32, 40)) {
        let fees = fees_for(&cs, &amounts);
        let sheet = compute_sheet(&p, 0, cs, &fees);
        for l in &sheet.lines {
            if l.reward == 0 || l.score_ppm < 1_000_000 {
                prop_assert!(!l.reasons.is_empty(), "{:?}", l);
            }
            prop_assert!(l.reasons.windows(2).all(|w| w[0] < w[1]), "reasons sorted and unique");
        }
    }

    /// The whole pipeline: random registry and heartbeats through availability
    /// and the sheet.
    #[test]
    fn availability_pipeline_gives_reasons_and_is_order_independent(
        rows in prop::collection::vec((0..80u8, sector(), -2i64..4, prop::option::of(-2i64..4), 0..30u32), 0..60),
        extra in prop::collection::vec((0..100u8, 0..15u32), 0..20),
        emission in 0..5_000u64,
        epoch in 0..3u64,
    ) {
        let p = RewardPolicy { emission_per_epoch_year0: emission, ..RewardPolicy::default_v1() };
        let quarter = 900_000i64;
        let start = p.epoch_start_ms(epoch);
        let devices: Vec<DeviceInfo> = rows
            .iter()
            .map(|(d, s, from, revoked, _)| DeviceInfo {
                device: PublicKey([*d; 32]),
                operator: PublicKey([255; 32]),
                sector: *s,
                active_from_ms: start + from * quarter,
                revoked_at_ms: revoked.map(|r| start + r * quarter + 1),
            })
            .collect();
        let mut reports: Vec<ReportSummary> = rows
            .iter()
            .map(|(d, .., hb)| ReportSummary { device: PublicKey([*d; 32]), heartbeats: *hb })
            .collect();
        reports.extend(extra.iter().map(|(d, hb)| ReportSummary { device: PublicKey([*d; 32]), heartbeats: *hb }));
        let run = |devices: &[DeviceInfo], reports: &[ReportSummary]| {
            let contributions: Vec<Contribution> = availability(&p, epoch, devices, reports)
                .iter()
                .map(|f| f.times(PPM, &[], 1))
                .collect();
            for c in &contributions {
                assert!(c.score_ppm <= 1_000_000);
                if c.score_ppm < 1_000_000 {
                    assert!(!c.reasons.is_empty(), "{c:?}");
                }
            }
            assert!(contributions.windows(2).all(|w| w[0].device < w[1].device));
            compute_sheet(&p, epoch, contributions, &[])
        };
        let sheet = run(&devices, &reports);
        for l in &sheet.lines {
            if l.reward == 0 || l.score_ppm < 1_000_000 {
                prop_assert!(!l.reasons.is_empty(), "{:?}", l);
            }
        }
        let mut rev_devices = devices.clone();
        rev_devices.reverse();
        let mut rev_reports = reports.clone();
        rev_reports.reverse();
        prop_assert_eq!(run(&rev_devices, &rev_reports).hash(), sheet.hash());
    }

    #[test]
    fn emission_never_increases_and_never_underflows(e0 in any::<u64>(), decay in 0..=10_000u32, year in 0..2_000u64, step in 1..50u64) {
        let p = RewardPolicy { emission_per_epoch_year0: e0, yearly_decay_bps: decay, ..RewardPolicy::default_v1() };
        prop_assert_eq!(emission_for_year(&p, 0), e0);
        let a = emission_for_year(&p, year);
        let b = emission_for_year(&p, year + step);
        prop_assert!(b <= a);
        prop_assert!(a <= e0);
        if decay == 0 {
            prop_assert_eq!(b, e0);
        } else if a > 0 {
            prop_assert!(b < a || a * u64::from(10_000 - decay) / 10_000 == a, "strictly decays while positive");
        }
        let per_year = p.epochs_per_year();
        prop_assert_eq!(emission_for_epoch(&p, year * per_year), a);
        prop_assert_eq!(emission_for_epoch(&p, year * per_year + per_year - 1), a);
    }
}

#[test]
fn emission_reaches_zero_with_any_decay() {
    let p = RewardPolicy {
        emission_per_epoch_year0: u64::MAX,
        yearly_decay_bps: 1,
        ..RewardPolicy::default_v1()
    };
    assert_eq!(emission_for_year(&p, u64::MAX), 0);
    let mut last = u64::MAX;
    for y in (0..500_000).step_by(10_000) {
        let e = emission_for_year(&p, y);
        assert!(e <= last);
        last = e;
    }
}

#[test]
fn fees_land_on_the_right_line_when_operators_sort_against_sectors() {
    // Regression: fees were once merged in (device, operator, sector) order, so a
    // device with lines in two sectors under two operators lost one fee to a
    // duplicate line.
    let d = PublicKey([0x28; 32]);
    let line = |s, op| Contribution {
        device: d,
        operator: PublicKey([op; 32]),
        sector: s,
        score_ppm: 0,
        weight: 1,
        reasons: vec![Reason::NoReports],
    };
    let fee = |s, op| FeeSettlement {
        device: d,
        operator: PublicKey([op; 32]),
        sector: s,
        gross: 100,
    };
    let p = RewardPolicy {
        protocol_fee_bps: 0,
        ..RewardPolicy::default_v1()
    };
    let sheet = compute_sheet(
        &p,
        0,
        vec![line(Sector::Storage, 0xca), line(Sector::Compute, 0xc8)],
        &[fee(Sector::Storage, 0xca), fee(Sector::Compute, 0xc8)],
    );
    let got: Vec<_> = sheet.lines.iter().map(|l| (l.sector, l.fees)).collect();
    assert_eq!(got, vec![(Sector::Storage, 100), (Sector::Compute, 100)]);
}
