//! Hand-computed cases: every number below is worked out in the comments.

use depin_core::{PublicKey, Reason, Sector};
use depin_ledger::{Account, Ledger};
use depin_rewards::*;
use std::collections::BTreeMap;

fn pk(b: u8) -> PublicKey {
    PublicKey([b; 32])
}

fn contribution(
    device: u8,
    operator: u8,
    sector: Sector,
    score_ppm: u32,
    reasons: Vec<Reason>,
) -> Contribution {
    Contribution {
        device: pk(device),
        operator: pk(operator),
        sector,
        score_ppm,
        weight: 1,
        reasons,
    }
}

fn golden_policy() -> RewardPolicy {
    RewardPolicy {
        emission_per_epoch_year0: 1001,
        sector_weights_bps: BTreeMap::from([
            (Sector::Storage, 5000),
            (Sector::Compute, 3333),
            (Sector::Wireless, 1667),
            (Sector::Sensor, 0),
        ]),
        ..RewardPolicy::default_v1()
    }
}

fn golden_sheet() -> RewardSheet {
    let contributions = vec![
        // compute: listed out of key order on purpose
        contribution(0x20, 0xa2, Sector::Compute, 1_000_000, vec![]),
        contribution(0x10, 0xa2, Sector::Compute, 1_000_000, vec![]),
        contribution(0x30, 0xa2, Sector::Compute, 1_000_000, vec![]),
        // storage
        contribution(
            0x03,
            0xa2,
            Sector::Storage,
            333_333,
            vec![Reason::PartialUptime],
        ),
        contribution(0x01, 0xa1, Sector::Storage, 1_000_000, vec![]),
        contribution(0x02, 0xa1, Sector::Storage, 1_000_000, vec![]),
        // sensor: weight 0 in this policy
        contribution(0x40, 0xa3, Sector::Sensor, 1_000_000, vec![]),
    ];
    let fees = [
        FeeSettlement {
            device: pk(0x01),
            operator: pk(0xa1),
            sector: Sector::Storage,
            gross: 1999,
        },
        FeeSettlement {
            device: pk(0x50),
            operator: pk(0xa3),
            sector: Sector::Wireless,
            gross: 20,
        },
        FeeSettlement {
            device: pk(0x01),
            operator: pk(0xa1),
            sector: Sector::Storage,
            gross: 21,
        },
    ];
    compute_sheet(&golden_policy(), 0, contributions, &fees)
}

#[test]
fn golden_sheet_three_devices_odd_amounts_and_ties() {
    let sheet = golden_sheet();
    // Sector split of 1001 by 5000/3333/1667/0 bps:
    //   storage  500.5    → 500 (rem 5000)
    //   compute  333.6333 → 333 (rem 6333) +1 = 334
    //   wireless 166.8667 → 166 (rem 8667) +1 = 167
    //   sensor   0
    // 999 given, 2 left: wireless and compute have the largest remainders.
    let emission: Vec<_> = sheet.per_sector.values().map(|t| t.emission).collect();
    assert_eq!(emission, vec![500, 334, 167, 0]); // Sector order: storage, compute, wireless, sensor

    let got: Vec<(u8, Sector, u64, u64, Vec<Reason>)> = sheet
        .lines
        .iter()
        .map(|l| (l.device.0[0], l.sector, l.reward, l.fees, l.reasons.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            // storage, Σshare = 2_333_333, E = 500:
            //   0x01: 500e6 / 2_333_333 = 214 rem 666_738; fees 1999 − 99 + 21 − 1 = 1920
            //   0x02: 214 rem 666_738
            //   0x03: 166_666_500 / 2_333_333 = 71 rem 999_857 → the one leftover unit → 72
            (0x01, Sector::Storage, 214, 1920, vec![]),
            (0x02, Sector::Storage, 214, 0, vec![]),
            (0x03, Sector::Storage, 72, 0, vec![Reason::PartialUptime]),
            // compute, three equal shares of 334: 111 each, rem equal, 1 left → smallest id 0x10
            (0x10, Sector::Compute, 112, 0, vec![]),
            (0x20, Sector::Compute, 111, 0, vec![]),
            (0x30, Sector::Compute, 111, 0, vec![]),
            // sensor is unfunded: a full score rounds to zero, with a reason
            (0x40, Sector::Sensor, 0, 0, vec![Reason::RoundedToZero]),
            // a fee-only device gets a line: 20 − floor(20 × 5%) = 19
            (0x50, Sector::Wireless, 0, 19, vec![Reason::NoReports]),
        ]
    );
    assert_eq!(sheet.emission, 1001);
    // wireless had no share, so its 167 are not minted
    assert_eq!(sheet.minted, 500 + 334);
    assert_eq!(sheet.fees, 1999 + 21 + 20);
    assert_eq!(sheet.burned, 99 + 1 + 1);
    let totals: Vec<_> = sheet
        .per_sector
        .iter()
        .map(|(s, t)| (*s, t.distributed, t.devices, t.rewarded))
        .collect();
    assert_eq!(
        totals,
        vec![
            (Sector::Storage, 500, 3, 3),
            (Sector::Compute, 334, 3, 3),
            (Sector::Wireless, 0, 1, 0),
            (Sector::Sensor, 0, 1, 0),
        ]
    );
    assert_eq!(
        sheet.operator_totals(),
        BTreeMap::from([
            (pk(0xa1), 214 + 1920 + 214),
            (pk(0xa2), 72 + 334),
            (pk(0xa3), 19)
        ])
    );
    assert_eq!(
        sheet.operator_rewards(),
        BTreeMap::from([(pk(0xa1), 428), (pk(0xa2), 406)])
    );
    assert_eq!(sheet.policy_id, golden_policy().id());
}

#[test]
fn golden_sheet_hash_is_pinned() {
    // If this changes, the canonical encoding or the rules changed: every stored
    // epoch would fail `depin audit-epoch`. Bump the format version instead.
    let sheet = golden_sheet();
    assert_eq!(
        blake3::hash(&sheet.canonical_bytes()).as_bytes(),
        &sheet.hash()
    );
    // The policy id is part of the sheet, so changing `default_v1` also moves this pin.
    assert_eq!(
        sheet.hash_hex(),
        "4ca810e18b9da7930d45c867489e532d51acb9eb904c83c47092f9e46fb6eeaf"
    );
    // JSON round trip keeps the sheet (for APIs and files).
    let json = serde_json::to_string(&sheet).unwrap();
    assert_eq!(serde_json::from_str::<RewardSheet>(&json).unwrap(), sheet);
}

#[test]
fn emission_entries_balance_the_ledger() {
    let sheet = golden_sheet();
    let mut ledger = Ledger::new();
    ledger.apply_batch(&sheet.emission_entries()).unwrap();
    ledger.check_invariant().unwrap();
    assert_eq!(ledger.minted(), u128::from(sheet.minted));
    assert_eq!(ledger.balance(&Account::Operator(pk(0xa1))), 428);
}

#[test]
fn fee_for_the_wrong_operator_is_an_error() {
    let c = vec![contribution(1, 0xa1, Sector::Storage, 1_000_000, vec![])];
    let f = [FeeSettlement {
        device: pk(1),
        operator: pk(0xee),
        sector: Sector::Storage,
        gross: 5,
    }];
    assert!(matches!(
        try_compute_sheet(&RewardPolicy::default_v1(), 0, c, &f),
        Err(SheetError::OperatorMismatch { .. })
    ));
    let bad = RewardPolicy {
        epoch_seconds: 0,
        ..RewardPolicy::default_v1()
    };
    assert!(matches!(
        try_compute_sheet(&bad, 0, vec![], &[]),
        Err(SheetError::Policy(_))
    ));
    let huge = [
        FeeSettlement {
            device: pk(1),
            operator: pk(0xa1),
            sector: Sector::Storage,
            gross: u64::MAX,
        },
        FeeSettlement {
            device: pk(2),
            operator: pk(0xa1),
            sector: Sector::Storage,
            gross: 1,
        },
    ];
    assert_eq!(
        try_compute_sheet(&RewardPolicy::default_v1(), 0, vec![], &huge),
        Err(SheetError::FeeOverflow)
    );
}

#[test]
fn empty_epoch_mints_nothing() {
    let sheet = compute_sheet(&RewardPolicy::default_v1(), 3, vec![], &[]);
    assert_eq!(sheet.emission, 1_000_000_000);
    assert_eq!(
        (sheet.minted, sheet.fees, sheet.burned, sheet.lines.len()),
        (0, 0, 0, 0)
    );
    assert_eq!(sheet.per_sector.len(), 4);
}

// --- availability ---------------------------------------------------------

#[test]
fn availability_golden() {
    let p = RewardPolicy::default_v1(); // 1 h epochs, 300 s heartbeats → 12 expected, 50% minimum
    let epoch = 5;
    let start = p.epoch_start_ms(epoch);
    let end = p.epoch_end_ms(epoch);
    let dev = |b: u8, from: i64, revoked: Option<i64>| DeviceInfo {
        device: pk(b),
        operator: pk(0xa0),
        sector: if b.is_multiple_of(2) {
            Sector::Wireless
        } else {
            Sector::Storage
        },
        active_from_ms: from,
        revoked_at_ms: revoked,
    };
    let old = start - 1_000_000;
    let devices = vec![
        dev(11, old, None),
        dev(1, old, None),
        dev(2, old, None),
        dev(3, old, None),
        dev(4, old, None),
        dev(5, start + 1_800_000, None),
        dev(6, old, Some(start - 1)),
        dev(7, end, None),
        dev(8, old, None),
        dev(9, old, Some(start + 2_700_000)),
        dev(10, old, None),
    ];
    let hb = |b: u8, heartbeats: u32| ReportSummary {
        device: pk(b),
        heartbeats,
    };
    let reports = vec![
        hb(1, 12),
        hb(2, 9),
        hb(3, 5),
        hb(5, 6),
        hb(8, 20),
        hb(9, 9),
        hb(10, 3),
        hb(10, 4),
        hb(11, 6),
        hb(99, 12),
        hb(6, 12),
    ];
    let factors = availability(&p, epoch, &devices, &reports);
    let got: Vec<(u8, u32, Vec<Reason>)> = factors
        .iter()
        .map(|c| (c.device.0[0], c.score_ppm, c.reasons.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 1_000_000, vec![]),                    // 12/12
            (2, 750_000, vec![Reason::PartialUptime]), // 9/12
            (3, 0, vec![Reason::LowUptime]),           // 5/12 = 41.7% < 50%
            (4, 0, vec![Reason::NoReports]),           // nothing heard
            (5, 500_000, vec![Reason::PartialEpoch]),  // 6/6 over the last half hour
            // 6 revoked before the epoch and 7 registered at its end: no line
            (8, 1_000_000, vec![]),                     // 20/12 capped at 1
            (9, 750_000, vec![Reason::PartialEpoch]),   // 9/9 until revoked at 45 min
            (10, 583_333, vec![Reason::PartialUptime]), // 3 + 4 = 7/12
            (11, 500_000, vec![Reason::PartialUptime]), // 6/12: exactly the minimum passes
        ]
    );
    assert!(factors.iter().all(|c| c.operator == pk(0xa0)));
    assert_eq!(factors[1].sector, Sector::Wireless);

    // A sector without a verifier of its own pays availability alone,
    // weight 1, for its devices only.
    let mut sorted = devices.clone();
    sorted.sort();
    let input = EpochInput {
        policy: &p,
        epoch,
        devices: &sorted,
        availability: &factors,
        reports: &[],
        prior_state: None,
        entropy: epoch_entropy(epoch, None),
        orders: &[],
        work: &[],
    };
    let uptime = UptimeOnly(Sector::Wireless);
    let out = uptime.verify_epoch(&input).unwrap();
    check_outcome(&uptime, &sorted, &[], &out).unwrap();
    let wireless: Vec<&AvailabilityFactor> = factors
        .iter()
        .filter(|f| f.sector == Sector::Wireless)
        .collect();
    assert!(!wireless.is_empty());
    assert_eq!(out.contributions.len(), wireless.len());
    for (c, f) in out.contributions.iter().zip(wireless) {
        assert_eq!(
            (c.device, c.score_ppm, c.weight),
            (f.device, f.score_ppm, 1)
        );
        assert_eq!(c.reasons, f.reasons);
    }
    assert_eq!(uptime.name(), "wireless");
}

// --- policy ---------------------------------------------------------------

#[test]
fn default_policies_validate_and_have_stable_ids() {
    let p = RewardPolicy::default_v1();
    p.validate().unwrap();
    assert_eq!(p.epochs_per_year(), 8760);
    assert_eq!(p.expected_heartbeats(), 12);
    assert!(
        p.id().starts_with("v1-") && p.id().len() == 11,
        "{}",
        p.id()
    );
    assert_eq!(p.id(), RewardPolicy::default_v1().id());
    let json = String::from_utf8(p.canonical_bytes()).unwrap();
    assert_eq!(serde_json::from_str::<RewardPolicy>(&json).unwrap(), p);
    for secs in [1, 5, 12, 60, 600, 3600, 86_400] {
        let d = RewardPolicy::devnet(secs);
        d.validate()
            .unwrap_or_else(|e| panic!("devnet({secs}): {e}"));
        assert_ne!(d.id(), p.id());
    }
    // Any changed constant changes the id.
    let q = RewardPolicy {
        protocol_fee_bps: 501,
        ..p.clone()
    };
    assert_ne!(q.id(), p.id());
    // The data-credit price joined the policy later: at its default it is
    // left out of the canonical bytes, so policies stored before keep their
    // ids and read back with Helium's price; any other price is in the id.
    assert!(!json.contains("credit_price_micro_usd"), "{json}");
    assert_eq!(p.credit_price_micro_usd, 10);
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    old.as_object_mut()
        .unwrap()
        .remove("credit_price_micro_usd");
    assert_eq!(serde_json::from_value::<RewardPolicy>(old).unwrap(), p);
    let priced = RewardPolicy {
        credit_price_micro_usd: 20,
        ..p.clone()
    };
    priced.validate().unwrap();
    assert_ne!(priced.id(), p.id());
    let bytes = priced.canonical_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains("\"credit_price_micro_usd\":20"));
    assert_eq!(
        serde_json::from_slice::<RewardPolicy>(&bytes).unwrap(),
        priced
    );
}

#[test]
fn policy_validation_rejects_each_bad_constant() {
    let d = RewardPolicy::default_v1;
    let cases = [
        (RewardPolicy { version: 0, ..d() }, PolicyError::Version),
        (
            RewardPolicy {
                epoch_seconds: 0,
                ..d()
            },
            PolicyError::EpochLength(0),
        ),
        (
            RewardPolicy {
                epoch_seconds: SECONDS_PER_YEAR + 1,
                ..d()
            },
            PolicyError::EpochLength(SECONDS_PER_YEAR + 1),
        ),
        (
            RewardPolicy {
                sector_weights_bps: BTreeMap::from([(Sector::Storage, 9999)]),
                ..d()
            },
            PolicyError::SectorWeights(9999),
        ),
        (
            RewardPolicy {
                yearly_decay_bps: 10_001,
                ..d()
            },
            PolicyError::BasisPoints {
                field: "yearly_decay_bps",
                value: 10_001,
            },
        ),
        (
            RewardPolicy {
                min_uptime_bps: 10_001,
                ..d()
            },
            PolicyError::BasisPoints {
                field: "min_uptime_bps",
                value: 10_001,
            },
        ),
        (
            RewardPolicy {
                protocol_fee_bps: 10_001,
                ..d()
            },
            PolicyError::BasisPoints {
                field: "protocol_fee_bps",
                value: 10_001,
            },
        ),
        (
            RewardPolicy {
                heartbeat_interval_seconds: 0,
                ..d()
            },
            PolicyError::HeartbeatInterval(0),
        ),
        (
            RewardPolicy {
                heartbeat_interval_seconds: 3601,
                ..d()
            },
            PolicyError::HeartbeatInterval(3601),
        ),
        (
            RewardPolicy {
                max_clock_skew_ms: -1,
                ..d()
            },
            PolicyError::ClockSkew(-1),
        ),
        (
            RewardPolicy {
                close_grace_seconds: u64::MAX,
                ..d()
            },
            PolicyError::CloseGrace(u64::MAX),
        ),
        (
            RewardPolicy {
                max_reports_per_device_per_epoch: 11,
                ..d()
            },
            PolicyError::RateLimit {
                limit: 11,
                expected: 12,
            },
        ),
        (
            RewardPolicy {
                credit_price_micro_usd: 0,
                ..d()
            },
            PolicyError::CreditPrice(0),
        ),
        (
            RewardPolicy {
                credit_price_micro_usd: 1_000_001,
                ..d()
            },
            PolicyError::CreditPrice(1_000_001),
        ),
    ];
    for (p, err) in cases {
        assert_eq!(p.validate(), Err(err));
    }
    // Unknown fields are refused, so a typo cannot silently fall back to a default.
    let mut v: serde_json::Value = serde_json::from_slice(&d().canonical_bytes()).unwrap();
    v["protocol_fee_bsp"] = 1.into();
    assert!(serde_json::from_value::<RewardPolicy>(v).is_err());
}

#[test]
fn epoch_arithmetic() {
    let p = RewardPolicy::default_v1();
    let g = p.genesis_unix_ms;
    assert_eq!(p.epoch_of(g - 1), None);
    assert_eq!(p.epoch_of(g), Some(0));
    assert_eq!(p.epoch_of(g + 3_599_999), Some(0));
    assert_eq!(p.epoch_of(g + 3_600_000), Some(1));
    assert_eq!(p.epoch_start_ms(2), g + 7_200_000);
    assert_eq!(p.epoch_end_ms(2), g + 10_800_000);
    assert_eq!(p.closable_at_ms(2), g + 10_800_000 + 1_800_000);
    assert_eq!(
        p.epoch_of(i64::MAX),
        Some(((i64::MAX as i128 - g as i128) / 3_600_000) as u64)
    );
    assert_eq!(p.epoch_start_ms(u64::MAX), i64::MAX);
    assert_eq!(p.epoch_end_ms(u64::MAX), i64::MAX);
    for e in [0u64, 1, 17, 8759, 8760, 1_000_000] {
        assert_eq!(p.epoch_of(p.epoch_start_ms(e)), Some(e));
        assert_eq!(p.epoch_of(p.epoch_end_ms(e) - 1), Some(e));
    }
}

#[test]
fn emission_schedule_decays_per_year() {
    let p = RewardPolicy::default_v1();
    let e0 = 1_000_000_000;
    assert_eq!(emission_for_epoch(&p, 0), e0);
    assert_eq!(emission_for_epoch(&p, 8759), e0);
    assert_eq!(emission_for_epoch(&p, 8760), 850_000_000);
    assert_eq!(emission_for_epoch(&p, 2 * 8760), 722_500_000);
    assert_eq!(emission_for_year(&p, 3), 614_125_000);
    // floor(614_125_000 × 0.85) = 522_006_250, then 443_705_312.5 → 443_705_312
    assert_eq!(emission_for_year(&p, 5), 443_705_312);
    assert_eq!(emission_for_epoch(&p, u64::MAX), 0);
    let flat = RewardPolicy {
        yearly_decay_bps: 0,
        ..p.clone()
    };
    assert_eq!(emission_for_epoch(&flat, u64::MAX), e0);
    let total = RewardPolicy {
        yearly_decay_bps: 10_000,
        ..p
    };
    assert_eq!(emission_for_year(&total, 1), 0);
}
