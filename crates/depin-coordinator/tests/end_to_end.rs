//! The coordinator end to end over a real store: onboarding, ingest with every
//! rejection path, exactly-once close, ledger invariant, claims and audit.

use depin_coordinator::audit::audit_epoch;
use depin_coordinator::{CloseOutcome, CoordError, Coordinator};
use depin_core::{PublicKey, Reason, Sector};
use depin_protocol::{
    DeviceCertificate, Envelope, Heartbeat, KeyRotation, Revocation, SigningKey,
    device_keypair_from_seed, encode_batch, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_store::Store;
use depin_store::testing::TestPostgres;

const EPOCH_S: u64 = 60;

fn policy() -> RewardPolicy {
    RewardPolicy {
        genesis_unix_ms: 1_000_000,
        ..RewardPolicy::devnet(EPOCH_S)
    }
}

fn cert(op: &SigningKey, dev: &SigningKey, now: i64) -> Vec<u8> {
    let c = DeviceCertificate {
        device_key: public_key_of(dev),
        operator_key: public_key_of(op),
        sector: Sector::Storage,
        hardware_class: "nas-4tb".into(),
        firmware_version: "1.2.0".into(),
        location: None,
        issued_at_ms: now,
        device_signature: None,
    }
    .signed_by_device(dev);
    sign(&Envelope::new(public_key_of(op), 0, now, &c), op).encode()
}

fn heartbeat(dev: &SigningKey, seq: u64, t: i64) -> depin_protocol::Signed {
    let hb = Heartbeat {
        uptime_s: seq * 5,
        temperature_centi_c: 4_000,
        firmware_version: "1.2.0".into(),
        power_mw: 6_000,
    };
    sign(&Envelope::new(public_key_of(dev), seq, t, &hb), dev)
}

fn reasons(outcome: &depin_coordinator::IngestOutcome) -> Vec<Reason> {
    outcome.rejected.iter().map(|r| r.reason).collect()
}

async fn scenario(store: Store) {
    let p = policy();
    let coord = Coordinator::open(store.clone(), p.clone()).await.unwrap();
    let op = device_keypair_from_seed([1; 32]);
    let honest = device_keypair_from_seed([2; 32]);
    let lazy = device_keypair_from_seed([3; 32]);
    let stranger = device_keypair_from_seed([4; 32]);
    let start = p.epoch_start_ms(0);
    coord
        .onboard(start, &cert(&op, &honest, start))
        .await
        .unwrap();
    coord
        .onboard(start, &cert(&op, &lazy, start))
        .await
        .unwrap();
    // `burst` is offline all epoch, then back-dates a burst of heartbeats.
    let burst = device_keypair_from_seed([6; 32]);
    coord
        .onboard(start, &cert(&op, &burst, start))
        .await
        .unwrap();

    // A certificate signed by someone else than the operator it names.
    let forged = {
        let c = DeviceCertificate {
            device_key: public_key_of(&stranger),
            operator_key: public_key_of(&op),
            sector: Sector::Storage,
            hardware_class: "x".into(),
            firmware_version: "1".into(),
            location: None,
            issued_at_ms: start,
            device_signature: None,
        }
        .signed_by_device(&stranger);
        sign(
            &Envelope::new(public_key_of(&stranger), 0, start, &c),
            &stranger,
        )
        .encode()
    };
    assert!(matches!(
        coord.onboard(start, &forged).await,
        Err(CoordError::Rejected {
            reason: Reason::BadCertificate,
            ..
        })
    ));
    assert!(matches!(
        coord.onboard(start, &cert(&op, &honest, start)).await,
        Err(CoordError::Rejected {
            reason: Reason::AlreadyRegistered,
            ..
        })
    ));
    assert!(matches!(
        coord.onboard(start, b"garbage").await,
        Err(CoordError::Rejected {
            reason: Reason::Malformed,
            ..
        })
    ));

    // Heartbeats over epoch 0: honest sends every interval, lazy once.
    let interval = p.heartbeat_interval_seconds as i64 * 1000;
    let mut seq = 0;
    for k in 0..(EPOCH_S as i64 * 1000 / interval) {
        seq += 1;
        let t = start + k * interval + 10;
        let mut batch = vec![heartbeat(&honest, seq, t)];
        if k == 0 {
            batch.push(heartbeat(&lazy, 1, t));
        }
        let out = coord.ingest(t, encode_batch(&batch)).await.unwrap();
        assert_eq!(out.accepted as usize, batch.len(), "{:?}", out.rejected);
    }

    // Every rejection path, in one batch.
    let t = start + 30_000;
    let mut forged_sig = heartbeat(&honest, 1000, t);
    forged_sig.signature[0] ^= 1;
    let batch = vec![
        heartbeat(&honest, 1, t),            // replayed sequence
        forged_sig,                          // bad signature
        heartbeat(&stranger, 1, t),          // unknown signer
        heartbeat(&lazy, 50, t + 3_600_000), // far future
        heartbeat(&lazy, 51, t - 3_600_000), // stale
    ];
    let out = coord.ingest(t, encode_batch(&batch)).await.unwrap();
    assert_eq!(out.accepted, 0);
    assert_eq!(
        reasons(&out),
        vec![
            Reason::ReplayedSequence,
            Reason::BadSignature,
            Reason::UnknownSigner,
            Reason::FutureTimestamp,
            Reason::StaleTimestamp
        ]
    );
    // A batch that is not a batch is refused as a whole; nothing is stored.
    assert!(matches!(
        coord.ingest(t, b"\xff\xff\xff".to_vec()).await,
        Err(CoordError::Rejected {
            reason: Reason::Malformed,
            ..
        })
    ));

    let now = start + 50_000;
    let burst_batch: Vec<_> = (0..10u64)
        .map(|k| heartbeat(&burst, k + 1, start + k as i64 * 5_000 + 1))
        .collect();
    let out = coord.ingest(now, encode_batch(&burst_batch)).await.unwrap();
    assert_eq!(
        out.accepted, 10,
        "late heartbeats are stored, never lost: {:?}",
        out.rejected
    );

    // Too early to close.
    assert!(matches!(
        coord.close_epoch(0, start + 1).await,
        Err(CoordError::NotDue { .. })
    ));
    let close_at = p.closable_at_ms(0);
    let CloseOutcome::Closed(summary) = coord.close_epoch(0, close_at).await.unwrap() else {
        panic!("first close")
    };
    assert_eq!(summary.devices, 3);
    assert_eq!(
        coord.close_epoch(0, close_at + 5).await.unwrap(),
        CloseOutcome::AlreadyClosed
    );
    let lines = store.reward_lines(0).await.unwrap();
    let honest_line = lines
        .iter()
        .find(|l| l.device == public_key_of(&honest))
        .unwrap();
    let lazy_line = lines
        .iter()
        .find(|l| l.device == public_key_of(&lazy))
        .unwrap();
    assert!(honest_line.reward > 0);
    assert_eq!(lazy_line.reward, 0);
    assert!(
        lazy_line.reasons.contains("low_uptime"),
        "{}",
        lazy_line.reasons
    );
    // Only the 3 heartbeats received within the allowed delay count: 3 of 12
    // expected is below the minimum uptime.
    let burst_line = lines
        .iter()
        .find(|l| l.device == public_key_of(&burst))
        .unwrap();
    assert_eq!(burst_line.reward, 0);
    assert!(
        burst_line.reasons.contains("low_uptime"),
        "{}",
        burst_line.reasons
    );
    let op_account = format!("operator:{}", public_key_of(&op));
    assert_eq!(
        store.balance(&op_account).await.unwrap() as u64,
        summary.minted
    );
    coord.check_ledger().await.unwrap();

    // A report for a closed epoch is late.
    let out = coord
        .ingest(
            close_at,
            encode_batch(&[heartbeat(&honest, 999, start + 5)]),
        )
        .await
        .unwrap();
    assert_eq!(reasons(&out), vec![Reason::LateReport]);

    // Claims verify.
    let tree = coord.claim_tree(0).await.unwrap();
    let i = tree.find(public_key_of(&op).as_bytes()).unwrap();
    assert_eq!(tree.leaves()[i].amount, u128::from(summary.minted));
    assert!(depin_merkle::verify(
        &tree.root(),
        &tree.leaves()[i],
        &tree.proof(i)
    ));

    // The audit passes untouched, and fails when one reward is altered.
    let report = audit_epoch(&store, 0).await.unwrap();
    assert!(report.passed(), "{:?}", report.differences);
    sqlx::query("UPDATE reward_lines SET reward = reward + 1 WHERE device = $1")
        .bind(public_key_of(&lazy).0.to_vec())
        .execute(store.pool())
        .await
        .unwrap();
    let report = audit_epoch(&store, 0).await.unwrap();
    assert!(!report.passed());
    assert!(
        report
            .differences
            .iter()
            .any(|d| d.contains(&public_key_of(&lazy).to_hex())),
        "{:?}",
        report.differences
    );

    // Revocation and rotation, signed by the operator only.
    let new_key = device_keypair_from_seed([5; 32]);
    let rot = KeyRotation {
        old_device_key: public_key_of(&honest),
        new_device_key: public_key_of(&new_key),
        new_key_signature: None,
    }
    .signed_by_new_key(&new_key);
    let by_stranger = sign(
        &Envelope::new(public_key_of(&stranger), 1, close_at, &rot),
        &stranger,
    )
    .encode();
    assert!(coord.rotate(close_at, &by_stranger).await.is_err());
    let by_op = sign(&Envelope::new(public_key_of(&op), 1, close_at, &rot), &op).encode();
    coord.rotate(close_at, &by_op).await.unwrap();
    let t1 = close_at + 1;
    let out = coord
        .ingest(
            t1,
            encode_batch(&[heartbeat(&honest, 5000, t1), heartbeat(&new_key, 1, t1)]),
        )
        .await
        .unwrap();
    assert_eq!(reasons(&out), vec![Reason::RevokedDevice]);
    let rev = Revocation {
        device_key: public_key_of(&lazy),
        reason: "stolen".into(),
    };
    coord
        .revoke(
            t1,
            &sign(&Envelope::new(public_key_of(&op), 2, t1, &rev), &op).encode(),
        )
        .await
        .unwrap();
    let out = coord
        .ingest(t1, encode_batch(&[heartbeat(&lazy, 60, t1)]))
        .await
        .unwrap();
    assert_eq!(reasons(&out), vec![Reason::RevokedDevice]);

    // A second coordinator on the same store sees the closed epoch and the
    // replay window (restart).
    drop(coord);
    let again = Coordinator::open(store.clone(), p.clone()).await.unwrap();
    assert_eq!(again.last_closed_epoch(), Some(0));
    let out = again
        .ingest(t1, encode_batch(&[heartbeat(&new_key, 1, t1)]))
        .await
        .unwrap();
    assert_eq!(reasons(&out), vec![Reason::ReplayedSequence]);
    // Only what a registered device really signed is stored: forged and
    // unregistered reports were refused above but left no row to anyone's name.
    let counts = store.rejection_counts(None).await.unwrap();
    assert!(
        !counts.contains_key("bad_signature") && !counts.contains_key("unknown_signer"),
        "{counts:?}"
    );
    assert!(
        counts["revoked_device"] >= 1 && counts["replayed_sequence"] >= 1,
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    scenario(Store::open_in_dir(dir.path()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_end_to_end() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    scenario(Store::open(&pg.url("coord_e2e")).await.unwrap()).await;
}

/// Two coordinators (two replicas on one PostgreSQL) close the same epoch at
/// once: one closes it, the other finds it closed, the money moves once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_close_once() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let url = pg.url("replicas");
    let p = policy();
    let a = Coordinator::open(Store::open(&url).await.unwrap(), p.clone())
        .await
        .unwrap();
    let b = Coordinator::open(Store::open(&url).await.unwrap(), p.clone())
        .await
        .unwrap();
    let op = device_keypair_from_seed([1; 32]);
    let dev = device_keypair_from_seed([2; 32]);
    let start = p.epoch_start_ms(0);
    a.onboard(start, &cert(&op, &dev, start)).await.unwrap();
    // Replica b learns about the device from the shared store.
    let out = b
        .ingest(start + 10, encode_batch(&[heartbeat(&dev, 1, start + 10)]))
        .await
        .unwrap();
    assert_eq!(out.accepted, 1);
    let at = p.closable_at_ms(0);
    let (x, y) = tokio::join!(a.close_epoch(0, at), b.close_epoch(0, at));
    let closed = [x.unwrap(), y.unwrap()]
        .into_iter()
        .filter(|o| matches!(o, CloseOutcome::Closed(_)))
        .count();
    assert_eq!(closed, 1);
    a.check_ledger().await.unwrap();
    assert!(audit_epoch(a.store(), 0).await.unwrap().passed());
    let _ = PublicKey([0; 32]);
}
