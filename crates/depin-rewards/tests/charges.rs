//! The contract's rules for usage charges: a verifier may charge only open
//! orders of its own sector, for its own devices, within what is left.

use depin_core::{PublicKey, Sector};
use depin_rewards::*;

fn pk(b: u8) -> PublicKey {
    PublicKey([b; 32])
}

/// A verifier that returns the charges it was built with.
struct Charging(Vec<Charge>);

impl SectorVerifier for Charging {
    fn sector(&self) -> Sector {
        Sector::Storage
    }
    fn name(&self) -> &'static str {
        "charging"
    }
    fn kinds(&self) -> &[u32] {
        &[]
    }
    fn state_version(&self) -> u32 {
        1
    }
    fn verify_epoch(&self, _: &EpochInput) -> Result<SectorOutcome, VerifierError> {
        Ok(SectorOutcome {
            charges: self.0.clone(),
            ..SectorOutcome::default()
        })
    }
}

fn devices() -> Vec<DeviceInfo> {
    // 1 and 2: storage devices of operator 9; 3: a compute device.
    let d = |b: u8, sector| DeviceInfo {
        device: pk(b),
        operator: pk(9),
        sector,
        active_from_ms: 0,
        revoked_at_ms: None,
    };
    vec![
        d(1, Sector::Storage),
        d(2, Sector::Storage),
        d(3, Sector::Compute),
    ]
}

fn orders() -> Vec<OpenOrder> {
    vec![
        OpenOrder {
            consumer: pk(20),
            order: 1,
            remaining: 100,
            first_epoch: 0,
            last_epoch: 5,
            terms: vec![],
        },
        OpenOrder {
            consumer: pk(21),
            order: 0,
            remaining: u64::MAX,
            first_epoch: 0,
            last_epoch: 5,
            terms: vec![],
        },
    ]
}

fn charge(consumer: u8, order: u64, device: u8, gross: u64) -> Charge {
    Charge {
        consumer: pk(consumer),
        order,
        device: pk(device),
        gross,
    }
}

fn verdict(charges: Vec<Charge>) -> Result<(), String> {
    let v = Charging(charges);
    let out = SectorOutcome {
        charges: v.0.clone(),
        ..SectorOutcome::default()
    };
    check_outcome(&v, &devices(), &orders(), &out).map_err(|e| e.0)
}

#[test]
fn charges_within_the_lock_pass() {
    // 60 + 40 = the whole 100 of order (20, 1); the other order can take u64::MAX.
    assert_eq!(
        verdict(vec![
            charge(20, 1, 1, 60),
            charge(20, 1, 2, 40),
            charge(21, 0, 1, u64::MAX)
        ]),
        Ok(())
    );
    assert_eq!(verdict(vec![]), Ok(()));
}

#[test]
fn every_broken_rule_is_named() {
    let cases: Vec<(Vec<Charge>, &str)> = vec![
        (vec![charge(20, 1, 1, 101)], "has 100 left"),
        (
            vec![charge(20, 1, 1, 60), charge(20, 1, 2, 41)],
            "charged 101 to order 1",
        ),
        (vec![charge(20, 2, 1, 1)], "not open"),
        (vec![charge(22, 1, 1, 1)], "not open"),
        (vec![charge(20, 1, 3, 1)], "not a device of sector storage"),
        (vec![charge(20, 1, 7, 1)], "not a device of sector storage"),
        (vec![charge(20, 1, 1, 0)], "charged zero"),
        (vec![charge(20, 1, 1, 1), charge(20, 1, 1, 1)], "twice"),
        // Two shares of u64::MAX add up beyond u64 without wrapping.
        (
            vec![charge(21, 0, 1, u64::MAX), charge(21, 0, 2, u64::MAX)],
            "left",
        ),
    ];
    for (charges, want) in cases {
        let got = verdict(charges.clone()).expect_err(&format!("{charges:?} must be refused"));
        assert!(
            got.contains(want),
            "{charges:?}: {got:?} should say {want:?}"
        );
    }
}
