//! The defects an adversarial run found (issue 7), each as a test that fails
//! on the code before the fix: extreme integers, storage faults at every step,
//! replicas with stale caches, the rate limit across restarts, deadlocks
//! between replicas, keys with two roles. SQLite and PostgreSQL alike.

use depin_coordinator::audit::audit_epoch;
use depin_coordinator::{CloseOutcome, CoordError, Coordinator, IngestOutcome};
use depin_core::{Reason, Sector};
use depin_protocol::{
    DeviceCertificate, Envelope, Heartbeat, KeyRotation, Location, Revocation, SigningKey,
    device_keypair_from_seed, encode_batch, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_store::testing::TestPostgres;
use depin_store::{AppendRules, NewReport, ReportRow, Store, StoreError};
use proptest::prelude::*;

const EPOCH_S: u64 = 60;

/// Runs one scenario as two tests, on SQLite and on a throwaway PostgreSQL;
/// `store:` scenarios take an open store, `url:` ones a database URL (to open
/// several stores on one database, or to reopen one).
macro_rules! on_both_backends {
    (store: $sqlite:ident, $postgres:ident, $scenario:ident, $db:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            $scenario(Store::open_in_dir(dir.path()).await.unwrap()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(pg) = TestPostgres::start() else {
                return;
            };
            $scenario(Store::open(&pg.url($db)).await.unwrap()).await;
        }
    };
    (url: $sqlite:ident, $postgres:ident, $scenario:ident, $db:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            $scenario(&depin_store::sqlite_url(&dir.path().join("depin.sqlite"))).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(pg) = TestPostgres::start() else {
                return;
            };
            $scenario(&pg.url($db)).await;
        }
    };
}

fn policy() -> RewardPolicy {
    RewardPolicy {
        genesis_unix_ms: 1_000_000,
        max_reports_per_device_per_epoch: 20,
        ..RewardPolicy::devnet(EPOCH_S)
    }
}

fn cert_with(
    op: &SigningKey,
    dev: &SigningKey,
    now: i64,
    f: impl Fn(&mut DeviceCertificate),
) -> Vec<u8> {
    let mut c = DeviceCertificate {
        device_key: public_key_of(dev),
        operator_key: public_key_of(op),
        sector: Sector::Compute,
        hardware_class: "rtx-3060".into(),
        firmware_version: "1.0.0".into(),
        location: None,
        issued_at_ms: now,
        device_signature: None,
    };
    f(&mut c);
    let c = c.signed_by_device(dev);
    sign(&Envelope::new(public_key_of(op), 0, now, &c), op).encode()
}

fn cert(op: &SigningKey, dev: &SigningKey, now: i64) -> Vec<u8> {
    cert_with(op, dev, now, |_| {})
}

fn heartbeat(dev: &SigningKey, seq: u64, t: i64) -> depin_protocol::Signed {
    let hb = Heartbeat {
        uptime_s: seq,
        temperature_centi_c: 4_000,
        firmware_version: "1.0.0".into(),
        power_mw: 6_000,
    };
    sign(&Envelope::new(public_key_of(dev), seq, t, &hb), dev)
}

/// A coordinator over a store, with one operator and one registered device,
/// and a time inside epoch 0: the set-up most tests here start from.
struct World {
    c: Coordinator,
    p: RewardPolicy,
    t: i64,
    op: SigningKey,
    dev: SigningKey,
}

async fn world(store: &Store) -> World {
    let p = policy();
    let c = Coordinator::open(store.clone(), p.clone()).await.unwrap();
    let t = p.epoch_start_ms(0) + 1_000;
    let op = device_keypair_from_seed([1; 32]);
    let dev = device_keypair_from_seed([2; 32]);
    c.onboard(t, &cert(&op, &dev, t)).await.unwrap();
    World { c, p, t, op, dev }
}

/// `err` is a refusal with reason `want`.
fn assert_refused(err: &CoordError, want: Reason) {
    assert!(
        matches!(err, CoordError::Rejected { reason, .. } if *reason == want),
        "expected {want}, got {err}"
    );
}

fn reasons(o: &IngestOutcome) -> Vec<Reason> {
    o.rejected.iter().map(|r| r.reason).collect()
}

async fn stored(store: &Store, dev: &SigningKey, epoch: u64) -> Vec<u64> {
    store
        .device_reports(&public_key_of(dev), epoch)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

/// Two stores on one database: two replicas (or two processes), each with
/// its own pool and its own coordinator cache.
async fn two_replicas(url: &str) -> (Coordinator, Coordinator, Store) {
    let a = Store::open(url).await.unwrap();
    let b = Store::open(url).await.unwrap();
    let ca = Coordinator::open(a.clone(), policy()).await.unwrap();
    let cb = Coordinator::open(b, policy()).await.unwrap();
    (ca, cb, a)
}

// ------------------------------------------------------------- replicas

async fn replicas_agree(url: &str) {
    let p = policy();
    let (a, b, store) = two_replicas(url).await;
    let t = p.epoch_start_ms(0) + 1_000;
    let op = device_keypair_from_seed([1; 32]);
    let dev = device_keypair_from_seed([2; 32]);
    a.onboard(t, &cert(&op, &dev, t)).await.unwrap();

    // B caches seq 4; A then takes seq 10; B must refuse seq 5.
    let out = b
        .ingest(
            t,
            encode_batch(&[heartbeat(&dev, 1, t), heartbeat(&dev, 4, t)]),
        )
        .await
        .unwrap();
    assert_eq!(out.accepted, 2, "{out:?}");
    let out = a
        .ingest(t, encode_batch(&[heartbeat(&dev, 10, t)]))
        .await
        .unwrap();
    assert_eq!(out.accepted, 1, "{out:?}");
    let out = b
        .ingest(t, encode_batch(&[heartbeat(&dev, 5, t)]))
        .await
        .unwrap();
    assert_eq!(reasons(&out), vec![Reason::ReplayedSequence]);

    // The rate limit is one limit, not one per replica.
    let mut seq = 10;
    for round in 0..30 {
        seq += 1;
        let c = if round % 2 == 0 { &a } else { &b };
        let _ = c
            .ingest(t, encode_batch(&[heartbeat(&dev, seq, t)]))
            .await
            .unwrap();
    }
    assert_eq!(
        stored(&store, &dev, 0).await.len() as u32,
        p.max_reports_per_device_per_epoch,
        "both replicas together store no more than the limit"
    );

    // Rotation through A: B refuses the old key and takes the new one.
    let dev2 = device_keypair_from_seed([3; 32]);
    a.onboard(t, &cert(&op, &dev2, t)).await.unwrap();
    b.ingest(t, encode_batch(&[heartbeat(&dev2, 1, t)]))
        .await
        .unwrap();
    let new = device_keypair_from_seed([4; 32]);
    let rot = KeyRotation {
        old_device_key: public_key_of(&dev2),
        new_device_key: public_key_of(&new),
        new_key_signature: None,
    }
    .signed_by_new_key(&new);
    a.rotate(
        t,
        &sign(&Envelope::new(public_key_of(&op), 1, t, &rot), &op).encode(),
    )
    .await
    .unwrap();
    let out = b
        .ingest(t, encode_batch(&[heartbeat(&dev2, 2, t)]))
        .await
        .unwrap();
    assert_eq!(reasons(&out), vec![Reason::RevokedDevice]);
    let out = b
        .ingest(t, encode_batch(&[heartbeat(&new, 1, t)]))
        .await
        .unwrap();
    assert_eq!(out.accepted, 1, "{out:?}");

    // Revocation through A: B refuses the key, and it earns nothing after.
    let rev = Revocation {
        device_key: public_key_of(&new),
        reason: "stolen".into(),
    };
    a.revoke(
        t,
        &sign(&Envelope::new(public_key_of(&op), 2, t, &rev), &op).encode(),
    )
    .await
    .unwrap();
    let out = b
        .ingest(t, encode_batch(&[heartbeat(&new, 2, t)]))
        .await
        .unwrap();
    assert_eq!(reasons(&out), vec![Reason::RevokedDevice]);
    assert_eq!(stored(&store, &new, 0).await, vec![1]);
}

on_both_backends!(url: sqlite_replicas_agree, postgres_replicas_agree, replicas_agree, "replicas");

// ------------------------------------------------------------- restart

async fn rate_limit_survives_restart(url: &str) {
    let p = policy();
    let t = p.epoch_start_ms(0) + 1_000;
    let op = device_keypair_from_seed([1; 32]);
    let dev = device_keypair_from_seed([2; 32]);
    let store = Store::open(url).await.unwrap();
    let c = Coordinator::open(store.clone(), p.clone()).await.unwrap();
    c.onboard(t, &cert(&op, &dev, t)).await.unwrap();
    let limit = u64::from(p.max_reports_per_device_per_epoch);
    let batch: Vec<_> = (1..=limit).map(|s| heartbeat(&dev, s, t)).collect();
    assert_eq!(
        c.ingest(t, encode_batch(&batch)).await.unwrap().accepted as u64,
        limit
    );
    drop(c);
    let c = Coordinator::open(store.clone(), p.clone()).await.unwrap();
    let more: Vec<_> = (limit + 1..limit + 51)
        .map(|s| heartbeat(&dev, s, t))
        .collect();
    let out = c.ingest(t, encode_batch(&more)).await.unwrap();
    assert_eq!(out.accepted, 0, "{out:?}");
    assert!(reasons(&out).iter().all(|r| *r == Reason::RateLimited));
    assert_eq!(stored(&store, &dev, 0).await.len() as u64, limit);
}

on_both_backends!(url: sqlite_rate_limit_survives_restart, postgres_rate_limit_survives_restart, rate_limit_survives_restart, "restart");

// ------------------------------------------------------------- deadlocks

/// Two replicas append overlapping reports in opposite orders at once, many
/// times: the store locks and inserts in key order and retries conflicts, so
/// every append succeeds and every report is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_never_deadlock() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let url = pg.url("deadlock");
    let (a, b, store) = two_replicas(&url).await;
    let p = policy();
    let t = p.epoch_start_ms(0) + 1_000;
    let op = device_keypair_from_seed([1; 32]);
    let devs: Vec<SigningKey> = (10..30)
        .map(|i| device_keypair_from_seed([i; 32]))
        .collect();
    for d in &devs {
        a.onboard(t, &cert(&op, d, t)).await.unwrap();
    }
    drop((a, b));
    let sa = Store::open(&url).await.unwrap();
    let rules = AppendRules {
        max_reports_per_device_per_epoch: 10_000,
        kind_limits: Vec::new(),
    };
    let row = |d: &SigningKey, seq: u64| NewReport {
        answers: None,
        row: ReportRow {
            device: public_key_of(d),
            seq,
            epoch: 0,
            kind: 2,
            timestamp_ms: t,
            received_ms: t,
            raw: heartbeat(d, seq, t).encode(),
        },
        telemetry: None,
    };
    for round in 1..=40u64 {
        let fwd: Vec<NewReport> = devs.iter().map(|d| row(d, round)).collect();
        let rev: Vec<NewReport> = devs.iter().rev().map(|d| row(d, round)).collect();
        let (x, y) = tokio::join!(
            store.append_reports(&fwd, &[], rules.clone()),
            sa.append_reports(&rev, &[], rules.clone())
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        // Each report is stored by exactly one of the two.
        for i in 0..devs.len() {
            let stored_by_x = x.verdicts[i].is_none();
            let stored_by_y = y.verdicts[devs.len() - 1 - i].is_none();
            assert!(stored_by_x ^ stored_by_y, "round {round} device {i}");
        }
    }
    assert_eq!(store.report_count(0).await.unwrap(), 40 * devs.len() as u64);
}

// ------------------------------------------------------------- key roles

async fn keys_have_one_role(store: Store) {
    let World { c, t, op, dev, .. } = world(&store).await;
    let other_op = device_keypair_from_seed([5; 32]);
    // Another operator cannot register an operator key as its device.
    let err = c.onboard(t, &cert(&other_op, &op, t)).await.unwrap_err();
    assert_refused(&err, Reason::BadCertificate);
    // A device key cannot act as an operator.
    let x = device_keypair_from_seed([6; 32]);
    let err = c.onboard(t, &cert(&dev, &x, t)).await.unwrap_err();
    assert_refused(&err, Reason::BadCertificate);
    // A rotation cannot move a device onto its own operator key...
    let rot = KeyRotation {
        old_device_key: public_key_of(&dev),
        new_device_key: public_key_of(&op),
        new_key_signature: None,
    }
    .signed_by_new_key(&op);
    let err = c
        .rotate(
            t,
            &sign(&Envelope::new(public_key_of(&op), 1, t, &rot), &op).encode(),
        )
        .await
        .unwrap_err();
    assert_refused(&err, Reason::BadCertificate);
    // ...so heartbeats signed by the operator key are never accepted.
    let out = c
        .ingest(t, encode_batch(&[heartbeat(&op, 1, t)]))
        .await
        .unwrap();
    assert_eq!(reasons(&out), vec![Reason::UnknownSigner]);
    assert!(store.device(&public_key_of(&x)).await.unwrap().is_none());

    // Registering needs the device key: a certificate the device did not
    // sign, or signed by another key, is refused and stores nothing.
    let victim = device_keypair_from_seed([7; 32]);
    let unsigned = {
        let c = DeviceCertificate {
            device_key: public_key_of(&victim),
            operator_key: public_key_of(&op),
            sector: Sector::Compute,
            hardware_class: "rtx-3060".into(),
            firmware_version: "1.0.0".into(),
            location: None,
            issued_at_ms: t,
            device_signature: None,
        };
        let wrongly_signed = c.clone().signed_by_device(&other_op);
        [c, wrongly_signed]
    };
    for certificate in unsigned {
        let bytes = sign(&Envelope::new(public_key_of(&op), 0, t, &certificate), &op).encode();
        let err = c.onboard(t, &bytes).await;
        assert!(
            matches!(
                err,
                Err(CoordError::Rejected {
                    reason: Reason::BadCertificate,
                    ..
                })
            ),
            "{err:?}"
        );
    }
    assert!(
        store
            .device(&public_key_of(&victim))
            .await
            .unwrap()
            .is_none()
    );
    // A rotation the new key did not sign is refused too.
    let dev3 = device_keypair_from_seed([8; 32]);
    c.onboard(t, &cert(&op, &dev3, t)).await.unwrap();
    let rot = KeyRotation {
        old_device_key: public_key_of(&dev3),
        new_device_key: public_key_of(&victim),
        new_key_signature: None,
    };
    let err = c
        .rotate(
            t,
            &sign(&Envelope::new(public_key_of(&op), 2, t, &rot), &op).encode(),
        )
        .await
        .unwrap_err();
    assert_refused(&err, Reason::BadCertificate);
    assert_eq!(
        store
            .device(&public_key_of(&dev3))
            .await
            .unwrap()
            .unwrap()
            .revoked_ms,
        None
    );
}

on_both_backends!(store: sqlite_keys_have_one_role, postgres_keys_have_one_role, keys_have_one_role, "roles");

// ------------------------------------------------------------- faults

/// A write fails at each step of an append and of a close in turn. Every
/// time: the caller gets a storage error (nothing acknowledged), nothing is
/// half-written, the ledger balances, and once the fault is gone the same
/// request succeeds and the epoch audits clean.
async fn faults_at_every_step(store: Store) {
    let World { c, p, t, dev, .. } = world(&store).await;
    let faults = store.faults();

    // Learn the steps of one append.
    faults.record();
    let out = c
        .ingest(t, encode_batch(&[heartbeat(&dev, 1, t)]))
        .await
        .unwrap();
    assert_eq!(out.accepted, 1);
    let append_steps = faults.record();
    assert!(append_steps.len() >= 8, "{append_steps:?}");
    for (k, step) in append_steps.iter().enumerate() {
        let seq = 2 + k as u64;
        let batch = encode_batch(&[heartbeat(&dev, seq, t)]);
        faults.fail_at(k as u64 + 1);
        let err = c.ingest(t, batch.clone()).await.unwrap_err();
        assert!(
            matches!(err, CoordError::Unavailable(_)),
            "step {step}: {err}"
        );
        faults.disarm();
        assert!(
            !stored(&store, &dev, 0).await.contains(&seq),
            "step {step} left a row"
        );
        let out = c.ingest(t, batch).await.unwrap();
        assert_eq!(out.accepted, 1, "resend after a fault at {step}: {out:?}");
    }
    let expected: Vec<u64> = (1..=append_steps.len() as u64 + 1).collect();
    assert_eq!(stored(&store, &dev, 0).await, expected);

    // Every step of the close.
    let due = p.closable_at_ms(0);
    faults.record();
    let mut k = 1;
    loop {
        faults.fail_at(k);
        match c.close_epoch(0, due).await {
            Err(e) => {
                faults.disarm();
                assert!(store.epoch(0).await.unwrap().is_none(), "fault {k}: {e}");
                c.check_ledger().await.unwrap();
                assert!(
                    store.balances().await.unwrap().is_empty(),
                    "fault {k} moved money"
                );
                k += 1;
            }
            Ok(CloseOutcome::Closed(_)) => break,
            Ok(CloseOutcome::AlreadyClosed) => panic!("closed by whom?"),
        }
    }
    faults.disarm();
    let steps = faults.record();
    assert!(k >= 10, "only {k} fault points in a close: {steps:?}");
    assert!(audit_epoch(&store, 0).await.unwrap().passed());
    c.check_ledger().await.unwrap();
}

/// A panic deep inside an append (a driver bug, say) fails that group's
/// requests with a storage error and nothing else: the writer keeps running
/// and the next report is stored. (A panic there once ended ingest for
/// everyone until a restart, behind a green health check.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_an_append_does_not_stop_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let World { c, t, dev, .. } = world(&store).await;
    for step in 1..=4 {
        store.faults().panic_at(step);
        let err = c
            .ingest(t, encode_batch(&[heartbeat(&dev, step, t)]))
            .await
            .unwrap_err();
        assert!(matches!(err, CoordError::Unavailable(_)), "{err}");
        store.faults().disarm();
        assert!(c.writer_alive());
        let out = c
            .ingest(t, encode_batch(&[heartbeat(&dev, step, t)]))
            .await
            .unwrap();
        assert_eq!(out.accepted, 1, "{out:?}");
    }
}

on_both_backends!(store: sqlite_faults_at_every_step, postgres_faults_at_every_step, faults_at_every_step, "faults");

// ------------------------------------------------------------- extremes

async fn out_of_range_integers_are_refused(store: Store) {
    let r = NewReport {
        answers: None,
        row: ReportRow {
            device: public_key_of(&device_keypair_from_seed([2; 32])),
            seq: 1 << 63,
            epoch: 0,
            kind: 2,
            timestamp_ms: 0,
            received_ms: 0,
            raw: vec![1],
        },
        telemetry: None,
    };
    let rules = AppendRules {
        max_reports_per_device_per_epoch: 1,
        kind_limits: Vec::new(),
    };
    let err = store.append_reports(&[r], &[], rules).await.unwrap_err();
    assert!(matches!(err, StoreError::OutOfRange { .. }), "{err}");
    // and the store goes on working
    assert_eq!(store.report_count(0).await.unwrap(), 0);
}

on_both_backends!(store: sqlite_store_refuses_out_of_range_integers_without_panicking, postgres_store_refuses_out_of_range_integers_without_panicking, out_of_range_integers_are_refused, "range");

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(i64::MAX as u64),
        Just(i64::MAX as u64 + 1),
        Just(u64::MAX),
        Just(depin_protocol::limits::MAX_UPTIME_S),
        Just(depin_protocol::limits::MAX_UPTIME_S + 1),
        any::<u64>(),
    ]
}

fn extreme_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0),
        Just(-1),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(1_000_000),
        any::<i64>()
    ]
}

fn extreme_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(0),
        Just(i32::MIN),
        Just(i32::MAX),
        Just(15_000),
        Just(15_001),
        any::<i32>()
    ]
}

fn extreme_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(u32::MAX),
        Just(100_000_000),
        Just(100_000_001),
        any::<u32>()
    ]
}

/// One heartbeat, certificate or operator message with extreme values in
/// every field.
#[derive(Debug, Clone)]
enum Hostile {
    Heartbeat {
        seq: u64,
        ts: i64,
        uptime: u64,
        temp: i32,
        power: u32,
        firmware: String,
    },
    Certificate {
        issued: i64,
        lat: i32,
        lon: i32,
        h3: Option<u64>,
        seq: u64,
        ts: i64,
    },
    Revocation {
        seq: u64,
        ts: i64,
        reason: String,
    },
}

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        (
            extreme_u64(),
            extreme_i64(),
            extreme_u64(),
            extreme_i32(),
            extreme_u32(),
            "[\\PC]{0,80}"
        )
            .prop_map(
                |(seq, ts, uptime, temp, power, firmware)| Hostile::Heartbeat {
                    seq,
                    ts,
                    uptime,
                    temp,
                    power,
                    firmware
                }
            ),
        (
            extreme_i64(),
            extreme_i32(),
            extreme_i32(),
            proptest::option::of(extreme_u64()),
            extreme_u64(),
            extreme_i64()
        )
            .prop_map(|(issued, lat, lon, h3, seq, ts)| Hostile::Certificate {
                issued,
                lat,
                lon,
                h3,
                seq,
                ts
            }),
        (extreme_u64(), extreme_i64(), "[\\PC]{0,300}")
            .prop_map(|(seq, ts, reason)| Hostile::Revocation { seq, ts, reason }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Whatever a registered device or its operator signs, ingest and the
    /// registry answer with a verdict, and an honest report right after is
    /// still accepted: no input stops the writer (2^63 in `seq` or `uptime`
    /// once did, for everyone) or stores a value that cannot be read back.
    #[test]
    fn extreme_values_never_stop_ingest(cases in proptest::collection::vec(hostile(), 1..6)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open_in_dir(dir.path()).await.unwrap();
            let p = policy();
            let c = Coordinator::open(store.clone(), p.clone()).await.unwrap();
            let t = p.epoch_start_ms(0) + 1_000;
            let op = device_keypair_from_seed([1; 32]);
            let dev = device_keypair_from_seed([2; 32]);
            let honest = device_keypair_from_seed([3; 32]);
            c.onboard(t, &cert(&op, &dev, t)).await.unwrap();
            c.onboard(t, &cert(&op, &honest, t)).await.unwrap();
            for (i, h) in cases.into_iter().enumerate() {
                match h {
                    Hostile::Heartbeat { seq, ts, uptime, temp, power, firmware } => {
                        let hb = Heartbeat { uptime_s: uptime, temperature_centi_c: temp, firmware_version: firmware, power_mw: power };
                        let s = sign(&Envelope::new(public_key_of(&dev), seq, ts, &hb), &dev);
                        let out = c.ingest(t, encode_batch(&[s])).await;
                        assert!(out.is_ok(), "{out:?}");
                    }
                    Hostile::Certificate { issued, lat, lon, h3, seq, ts } => {
                        let d = device_keypair_from_seed([40 + i as u8; 32]);
                        let bytes = {
                            let c = DeviceCertificate {
                                device_key: public_key_of(&d),
                                operator_key: public_key_of(&op),
                                sector: Sector::Wireless,
                                hardware_class: "h".into(),
                                firmware_version: "1".into(),
                                location: Some(Location { lat_microdeg: lat, lon_microdeg: lon, h3_cell: h3 }),
                                issued_at_ms: issued,
                                device_signature: None,
                            }
                            .signed_by_device(&d);
                            sign(&Envelope::new(public_key_of(&op), seq, ts, &c), &op).encode()
                        };
                        match c.onboard(t, &bytes).await {
                            Ok(row) => {
                                // Whatever was stored reads back.
                                let back = store.device(&row.device).await.unwrap().unwrap();
                                assert_eq!(back, row);
                            }
                            Err(e) => assert!(matches!(e, CoordError::Rejected { .. }), "{e}"),
                        }
                    }
                    Hostile::Revocation { seq, ts, reason } => {
                        let r = Revocation { device_key: public_key_of(&device_keypair_from_seed([9; 32])), reason };
                        let bytes = sign(&Envelope::new(public_key_of(&op), seq, ts, &r), &op).encode();
                        let e = c.revoke(t, &bytes).await.unwrap_err();
                        assert!(matches!(e, CoordError::Rejected { .. } | CoordError::NotFound(_)), "{e}");
                    }
                }
            }
            assert!(c.writer_alive());
            let out = c.ingest(t, encode_batch(&[heartbeat(&honest, 1, t)])).await.unwrap();
            assert_eq!(out.accepted, 1, "{out:?}");
            store.devices(None).await.unwrap();
            store.telemetry(&public_key_of(&dev)).await.unwrap();
        });
    }
}
