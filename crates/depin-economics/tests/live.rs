//! The live operator view, from recorded facts to figures, worked by hand.

use depin_core::PublicKey;
use depin_economics::Catalogue;
use depin_economics::live::{
    DeviceFacts, Network, ProfileSource, Projection, SettingsSource, operator_economics,
};
use depin_economics::operator::{
    EnergyAccumulator, HardwareSetting, MS_PER_MONTH, OperatorCostSettings,
};
use std::collections::BTreeMap;

const MONTH_MS: i64 = MS_PER_MONTH as i64;
const T0: i64 = 1_700_000_000_000;

fn key(b: u8) -> PublicKey {
    PublicKey([b; 32])
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

/// 0.30 USD/kWh, a 60 USD line shared 10%, 2 USD/month upkeep, 0.50 USD a
/// token; device 1 bought for 300 USD as a LoRaWAN indoor hotspot.
fn settings() -> OperatorCostSettings {
    let mut hardware = BTreeMap::new();
    hardware.insert(
        key(1).to_hex(),
        HardwareSetting {
            profile: Some("lorawan-indoor-hotspot".into()),
            price_usd: Some(300.0),
        },
    );
    OperatorCostSettings {
        kwh_price_usd: 0.30,
        internet_usd_per_month: 60.0,
        internet_share: Some(0.1),
        maintenance_usd_per_month: Some(2.0),
        token_price_usd: 0.5,
        hardware,
    }
}

/// A device registered one month before `now`, drawing 10 W all along, paid
/// one token in each of 30 epochs.
fn month_old(device: PublicKey, class: &str) -> DeviceFacts {
    DeviceFacts {
        device,
        sector: Some("wireless"),
        hardware_class: class.into(),
        registered_ms: T0,
        revoked_ms: None,
        earned_per_epoch: vec![1_000_000; 30],
        energy: EnergyAccumulator {
            last_seq: Some(100),
            last_timestamp_ms: Some(T0 + MONTH_MS),
            energy_uj: 10_000 * MONTH_MS as u64, // 10 W = 10,000 mW for a month
            covered_ms: MONTH_MS as u64,
            heartbeats: 100,
        },
    }
}

fn network() -> Network {
    Network {
        now_ms: T0 + MONTH_MS,
        epoch_seconds: 86_400,
        yearly_decay_bps: 0,
    }
}

#[test]
fn one_month_of_a_priced_device_by_hand() {
    let cat = Catalogue::builtin();
    let view = operator_economics(
        &cat,
        key(9),
        &settings(),
        SettingsSource::Operator,
        network(),
        &[month_old(key(1), "some-class")],
    );
    let d = &view.devices[0];
    assert_eq!(d.profile_source, ProfileSource::Settings);
    assert_eq!(d.profile.as_deref(), Some("lorawan-indoor-hotspot"));
    assert_eq!(d.hardware_price_usd, Some(300.0));
    assert!(close(d.months_active, 1.0));
    // 30 tokens × 0.50 USD.
    assert_eq!(d.earned.base_units, 30_000_000);
    assert!(close(d.earned.usd, 15.0));
    // 10 W × 730.5 h = 7.305 kWh × 0.30 = 2.1915 USD.
    assert!(close(d.energy.kwh, 7.305));
    assert!(close(d.costs_usd.electricity, 2.1915));
    assert!(close(d.costs_usd.internet.unwrap(), 6.0));
    assert!(close(d.costs_usd.maintenance.unwrap(), 2.0));
    assert!(close(d.costs_usd.running.unwrap(), 10.1915));
    // 300 USD over the profile's 48 months, one month of it.
    let lifetime = cat.find("lorawan-indoor-hotspot").unwrap().lifetime_months;
    assert_eq!(d.lifetime_months, Some(lifetime));
    assert!(close(
        d.costs_usd.hardware_depreciation.unwrap(),
        300.0 / f64::from(lifetime)
    ));
    assert!(close(d.net_operating_usd.unwrap(), 4.8085));
    assert!(close(
        d.net_usd.unwrap(),
        4.8085 - 300.0 / f64::from(lifetime)
    ));
    assert!(close(
        d.payback_progress_pct.unwrap(),
        4.8085 / 300.0 * 100.0
    ));
    assert!(d.note.is_none() && d.projection_note.is_none());
    // The projection uses the observed rate (the first, partial epoch left out:
    // 1 token an epoch of a day) and the measured 10 W.
    match d.projection.as_ref().expect("a projection") {
        Projection::Figures(f) => {
            assert!(close(f.basis.tokens_per_month, 730.5 / 24.0));
            assert!(close(f.basis.watts, 10.0));
            assert_eq!(f.basis.months_elapsed, 1);
        }
        Projection::Unavailable { unavailable } => panic!("no projection: {unavailable}"),
    }
    // Totals of one device are its figures.
    assert_eq!(view.total.devices, 1);
    assert_eq!(view.total.devices_with_unknown_costs, 0);
    assert!(close(view.total.net_operating_usd, 4.8085));
    assert!(close(view.total.hardware_price_usd, 300.0));
    assert!(close(
        view.total.payback_progress_pct.unwrap(),
        4.8085 / 300.0 * 100.0
    ));
}

#[test]
fn unknown_hardware_and_revoked_devices_say_why_and_are_left_out_of_cost_totals() {
    let cat = Catalogue::builtin();
    let mut revoked = month_old(key(1), "x");
    revoked.revoked_ms = Some(T0 + MONTH_MS / 2);
    let unknown = month_old(key(2), "no-such-hardware");
    let view = operator_economics(
        &cat,
        key(9),
        &settings(),
        SettingsSource::Operator,
        network(),
        &[revoked, unknown],
    );
    let (r, u) = (&view.devices[0], &view.devices[1]);
    // A revoked device's costs stop at its revocation: half a month.
    assert!(close(r.months_active, 0.5));
    assert!(r.projection.is_none());
    assert_eq!(r.projection_note, Some("device revoked: no projection"));
    assert_eq!(u.profile_source, ProfileSource::Unknown);
    assert!(u.note.as_deref().unwrap().contains("no-such-hardware"));
    assert_eq!(u.hardware_price_usd, None);
    assert_eq!(u.costs_usd.hardware_depreciation, None);
    assert_eq!(u.projection_note, Some("unknown hardware: no projection"));
    // Settings give the unknown device internet and upkeep, so its running
    // costs are known; its depreciation is not.
    assert_eq!(view.total.devices_with_unknown_costs, 1);
    assert!(close(
        view.total.costs_usd.hardware_depreciation,
        r.costs_usd.hardware_depreciation.unwrap()
    ));
    // Earnings add over both.
    assert!(close(view.total.earned_usd, 30.0));
}

#[test]
fn a_device_never_paid_has_no_projection_and_the_view_is_reproducible() {
    let cat = Catalogue::builtin();
    let mut fresh = month_old(key(1), "lorawan-indoor-hotspot");
    fresh.earned_per_epoch.clear();
    let facts = [fresh, month_old(key(3), "lorawan-indoor-hotspot")];
    let a = operator_economics(
        &cat,
        key(9),
        &OperatorCostSettings::defaults(),
        SettingsSource::Defaults,
        network(),
        &facts,
    );
    assert_eq!(
        a.devices[0].projection_note,
        Some("no closed epoch has paid this device yet: nothing observed to project from")
    );
    // Device 3 is costed by its hardware class.
    assert_eq!(a.devices[1].profile_source, ProfileSource::HardwareClass);
    assert!(matches!(
        a.devices[1].projection,
        Some(Projection::Figures(_))
    ));
    let b = operator_economics(
        &cat,
        key(9),
        &OperatorCostSettings::defaults(),
        SettingsSource::Defaults,
        network(),
        &facts,
    );
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["settings_source"], "defaults");
    assert_eq!(json["devices"][1]["profile_source"], "hardware_class");
    assert!(json["devices"][0]["projection"].is_null());
}
