//! Consumers' money at epoch close, on SQLite and PostgreSQL: a deposit is
//! credited once per external reference, a lock never exceeds the escrow,
//! the close settles a sector's charges from the locks to the operators that
//! served (fees are moved, never minted), burns the protocol share, refunds
//! what an order did not use in its last epoch, and `audit-epoch` reproduces
//! all of it. Bad input at each step is refused with its reason code and
//! leaves the ledger as it was.

use depin_coordinator::audit::audit_epoch_with;
use depin_coordinator::{CoordError, Coordinator, Recorded, SectorPlugin, SectorSet};
use depin_core::{PublicKey, Reason, Sector};
use depin_ledger::{Account, Entry, EntryKind, Ledger};
use depin_protocol::{
    DeviceCertificate, Envelope, Heartbeat, KindSpec, OrderLock, SigningKey,
    device_keypair_from_seed, encode_batch, public_key_of, sign,
};
use depin_rewards::{
    Charge, EpochInput, PPM, RewardPolicy, SectorOutcome, SectorVerifier, VerifierError,
};
use depin_store::Store;
use depin_store::testing::TestPostgres;

const EPOCH_S: u64 = 60;

macro_rules! on_both_backends {
    ($sqlite:ident, $postgres:ident, $scenario:ident, $db:literal) => {
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
}

/// A storage verifier for tests: availability is the score, and each open
/// order is charged the per-epoch price in its terms (u64 little-endian,
/// capped at what is left), split evenly over the sector's devices that were
/// available, the first ones taking the remainder. `overcharge` adds one base
/// unit beyond the lock, breaking the contract.
struct Metered {
    overcharge: bool,
}

impl SectorVerifier for Metered {
    fn sector(&self) -> Sector {
        Sector::Storage
    }
    fn name(&self) -> &'static str {
        "metered"
    }
    fn kinds(&self) -> &[u32] {
        &[]
    }
    fn state_version(&self) -> u32 {
        1
    }
    fn verify_epoch(&self, input: &EpochInput) -> Result<SectorOutcome, VerifierError> {
        let serving: Vec<PublicKey> = input
            .availability
            .iter()
            .filter(|f| f.sector == Sector::Storage && f.score_ppm > 0)
            .map(|f| f.device)
            .collect();
        let mut charges = Vec::new();
        for o in input.orders {
            let price = u64::from_le_bytes(
                o.terms
                    .as_slice()
                    .try_into()
                    .map_err(|_| VerifierError("terms are not a u64 price".into()))?,
            );
            let mut total = price.min(o.remaining);
            if self.overcharge {
                total = o.remaining + 1;
            }
            if total == 0 || serving.is_empty() {
                continue;
            }
            let n = serving.len() as u64;
            for (i, d) in serving.iter().enumerate() {
                let share = total / n + u64::from((i as u64) < total % n);
                if share > 0 {
                    charges.push(Charge {
                        consumer: o.consumer,
                        order: o.order,
                        device: *d,
                        gross: share,
                    });
                }
            }
        }
        Ok(SectorOutcome {
            contributions: input
                .availability
                .iter()
                .filter(|f| f.sector == Sector::Storage)
                .map(|f| f.times(PPM, &[], 1))
                .collect(),
            charges,
            ..SectorOutcome::default()
        })
    }
}

struct MeteredPlugin {
    overcharge: bool,
}

impl SectorPlugin for MeteredPlugin {
    fn sector(&self) -> Sector {
        Sector::Storage
    }
    fn kinds(&self) -> &'static [KindSpec] {
        &[]
    }
    fn verifier(&self) -> Box<dyn SectorVerifier> {
        Box::new(Metered {
            overcharge: self.overcharge,
        })
    }
}

fn sectors(overcharge: bool) -> SectorSet {
    SectorSet::new(&[&MeteredPlugin { overcharge }]).unwrap()
}

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
        hardware_class: "nas-4bay".into(),
        firmware_version: "1.0.0".into(),
        location: None,
        issued_at_ms: now,
        device_signature: None,
    }
    .signed_by_device(dev);
    sign(&Envelope::new(public_key_of(op), 0, now, &c), op).encode()
}

/// A full epoch of on-time heartbeats from `dev`, sequence numbers from `seq0`.
async fn serve_epoch(c: &Coordinator, p: &RewardPolicy, dev: &SigningKey, epoch: u64, seq0: u64) {
    let start = p.epoch_start_ms(epoch);
    let n = p.expected_heartbeats();
    for i in 0..n {
        let t = start + (i * p.heartbeat_interval_seconds * 1000) as i64 + 100;
        let hb = Heartbeat {
            uptime_s: seq0 + i,
            temperature_centi_c: 4_000,
            firmware_version: "1.0.0".into(),
            power_mw: 9_000,
        };
        let s = sign(&Envelope::new(public_key_of(dev), seq0 + i, t, &hb), dev);
        let out = c.ingest(t, encode_batch(&[s])).await.unwrap();
        assert_eq!(out.accepted, 1, "{out:?}");
    }
}

fn lock_bytes(consumer: &SigningKey, seq: u64, t: i64, lock: &OrderLock) -> Vec<u8> {
    sign(
        &Envelope::new(public_key_of(consumer), seq, t, lock),
        consumer,
    )
    .encode()
}

fn order(n: u64, amount: u64, first: u64, last: u64, price: u64) -> OrderLock {
    OrderLock {
        order: n,
        sector: Sector::Storage,
        amount,
        first_epoch: first,
        last_epoch: last,
        terms: price.to_le_bytes().to_vec(),
    }
}

fn assert_refused<T: std::fmt::Debug>(r: Result<T, CoordError>, want: Reason) {
    match r {
        Err(CoordError::Rejected { reason, .. }) if reason == want => {}
        other => panic!("expected {want}, got {other:?}"),
    }
}

/// The stored ledger replayed from its entries: the invariant holds and the
/// replay agrees with the running balances.
async fn replayed(store: &Store) -> Ledger {
    let entries: Vec<Entry> = store
        .all_ledger_entries()
        .await
        .unwrap()
        .iter()
        .map(|e| Entry {
            debit: e.debit.parse().unwrap(),
            credit: e.credit.parse().unwrap(),
            amount: e.amount,
            kind: EntryKind::parse(&e.kind).unwrap(),
        })
        .collect();
    let ledger = Ledger::from_entries(&entries).unwrap();
    ledger.check_invariant().unwrap();
    for (account, balance) in store.balances().await.unwrap() {
        let a: Account = account.parse().unwrap();
        assert_eq!(ledger.balance(&a), i128::from(balance), "{account}");
    }
    ledger
}

fn bal(l: &Ledger, a: Account) -> i128 {
    l.balance(&a)
}

async fn fees_settle_from_escrow(store: Store) {
    let p = policy();
    let c = Coordinator::open_with(store.clone(), p.clone(), sectors(false))
        .await
        .unwrap();
    let t0 = p.epoch_start_ms(0) + 50;
    let (op_a, op_b) = (
        device_keypair_from_seed([1; 32]),
        device_keypair_from_seed([2; 32]),
    );
    let (dev_a, dev_b) = (
        device_keypair_from_seed([3; 32]),
        device_keypair_from_seed([4; 32]),
    );
    let consumer = device_keypair_from_seed([9; 32]);
    let ck = public_key_of(&consumer);
    c.onboard(t0, &cert(&op_a, &dev_a, t0)).await.unwrap();
    c.onboard(t0, &cert(&op_b, &dev_b, t0)).await.unwrap();

    // Deposits: once per reference; a replay with other facts is refused.
    assert_eq!(
        c.record_deposit(t0, ck, 1_000, "pay-1").await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        c.record_deposit(t0, ck, 1_000, "pay-1").await.unwrap(),
        Recorded::Again
    );
    assert_refused(
        c.record_deposit(t0, ck, 999, "pay-1").await,
        Reason::DepositConflict,
    );
    assert_refused(
        c.record_deposit(t0, public_key_of(&op_a), 1_000, "pay-1")
            .await,
        Reason::DepositConflict,
    );
    assert_refused(
        c.record_deposit(t0, ck, 0, "pay-2").await,
        Reason::OutOfRange,
    );
    assert_refused(
        c.record_deposit(t0, ck, u64::MAX, "pay-2").await,
        Reason::OutOfRange,
    );
    assert_refused(c.record_deposit(t0, ck, 5, "").await, Reason::BadPayload);
    assert_refused(
        c.record_deposit(t0, ck, 5, "with space").await,
        Reason::BadPayload,
    );
    assert_eq!(c.consumer(&ck).await.unwrap().escrow, 1_000);

    // Locks: within the escrow only; the same signed lock is a no-op, another
    // lock under the same number a conflict.
    let o1 = lock_bytes(&consumer, 1, t0, &order(1, 600, 0, 1, 250));
    let locked = c.lock_order(t0, &o1).await.unwrap();
    assert!(locked.new);
    assert_eq!((locked.first_epoch, locked.last_epoch), (0, 1));
    assert!(!c.lock_order(t0, &o1).await.unwrap().new);
    assert_refused(
        c.lock_order(t0, &lock_bytes(&consumer, 2, t0, &order(1, 100, 0, 1, 250)))
            .await,
        Reason::OrderConflict,
    );
    assert_refused(
        c.lock_order(t0, &lock_bytes(&consumer, 3, t0, &order(2, 401, 0, 0, 1)))
            .await,
        Reason::InsufficientEscrow,
    );
    // A lock signed by someone else spends the signer's (empty) escrow.
    assert_refused(
        c.lock_order(t0, &lock_bytes(&op_a, 1, t0, &order(2, 1, 0, 0, 1)))
            .await,
        Reason::InsufficientEscrow,
    );
    // Garbage and a badly signed lock.
    assert_refused(
        c.lock_order(t0, b"not an envelope").await,
        Reason::Malformed,
    );
    let mut forged = lock_bytes(&consumer, 4, t0, &order(3, 1, 0, 0, 1));
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_refused(c.lock_order(t0, &forged).await, Reason::BadSignature);
    let ledger = replayed(&store).await;
    assert_eq!(bal(&ledger, Account::Escrow(ck)), 400);
    assert_eq!(
        bal(
            &ledger,
            Account::Locked {
                consumer: ck,
                order: 1
            }
        ),
        600
    );

    // Epoch 0: both devices serve; the order is charged 250, 125 each.
    serve_epoch(&c, &p, &dev_a, 0, 1).await;
    serve_epoch(&c, &p, &dev_b, 0, 1).await;
    c.close_epoch(0, p.closable_at_ms(0)).await.unwrap();
    let e0 = store.epoch(0).await.unwrap().unwrap();
    // 5% protocol fee per share: floor(125 × 0.05) = 6, twice.
    assert_eq!((e0.fees, e0.burned), (250, 12));
    let ledger = replayed(&store).await;
    assert_eq!(
        ledger.minted(),
        u128::from(e0.minted),
        "fees are not minted"
    );
    assert_eq!(ledger.burned(), 12);
    assert_eq!(
        bal(
            &ledger,
            Account::Locked {
                consumer: ck,
                order: 1
            }
        ),
        350
    );
    let emission_a: u64 = store
        .reward_lines(0)
        .await
        .unwrap()
        .iter()
        .filter(|l| l.operator == public_key_of(&op_a))
        .map(|l| {
            assert_eq!(l.fees, 119);
            l.reward
        })
        .sum();
    assert_eq!(
        bal(&ledger, Account::Operator(public_key_of(&op_a))),
        i128::from(emission_a) + 119
    );
    let claims = store.claims_as_of(0).await.unwrap();
    assert!(
        claims.contains(&(public_key_of(&op_a), emission_a + 119)),
        "{claims:?}"
    );

    // Epoch 1 (the order's last): only device A serves, takes the whole 250,
    // and the 100 left is refunded to the free escrow.
    serve_epoch(&c, &p, &dev_a, 1, 100).await;
    c.close_epoch(1, p.closable_at_ms(1)).await.unwrap();
    let e1 = store.epoch(1).await.unwrap().unwrap();
    assert_eq!((e1.fees, e1.burned), (250, 12));
    let ledger = replayed(&store).await;
    assert_eq!(
        bal(
            &ledger,
            Account::Locked {
                consumer: ck,
                order: 1
            }
        ),
        0
    );
    assert_eq!(bal(&ledger, Account::Escrow(ck)), 500);
    assert_eq!(ledger.burned(), 24);
    assert_eq!(ledger.imported(), 1_000);
    assert_eq!(ledger.minted(), u128::from(e0.minted + e1.minted));
    let view = c.consumer(&ck).await.unwrap();
    assert_eq!(view.escrow, 500);
    assert_eq!(
        (view.orders[0].charged, view.orders[0].state),
        (500, "settled")
    );

    // Too late: both epochs are closed.
    let t2 = p.epoch_start_ms(2) + 10;
    assert_refused(
        c.lock_order(t2, &lock_bytes(&consumer, 5, t2, &order(3, 10, 0, 1, 1)))
            .await,
        Reason::OrderTooLate,
    );
    // Asking for a closed epoch moves the order to the first open one.
    let moved = c
        .lock_order(t2, &lock_bytes(&consumer, 6, t2, &order(4, 10, 1, 3, 1)))
        .await
        .unwrap();
    assert_eq!((moved.first_epoch, moved.last_epoch), (2, 3));

    // The audit recomputes charges, settlements and refunds byte for byte.
    for epoch in [0, 1] {
        let report = audit_epoch_with(&store, epoch, &sectors(false))
            .await
            .unwrap();
        assert!(report.passed(), "epoch {epoch}: {:?}", report.differences);
    }
    // A charge changed behind the coordinator's back shows in the audit.
    sqlx::query("UPDATE charges SET gross = gross + 1 WHERE epoch = 1")
        .execute(store.pool())
        .await
        .unwrap();
    let report = audit_epoch_with(&store, 1, &sectors(false)).await.unwrap();
    assert!(!report.passed());
}
on_both_backends!(
    sqlite_fees_settle_from_escrow,
    postgres_fees_settle_from_escrow,
    fees_settle_from_escrow,
    "escrow"
);

/// A verifier that charges beyond a lock stops the close: nothing written,
/// the epoch still open, the ledger as it was.
async fn overcharging_stops_the_close(store: Store) {
    let p = policy();
    let c = Coordinator::open_with(store.clone(), p.clone(), sectors(true))
        .await
        .unwrap();
    let t0 = p.epoch_start_ms(0) + 50;
    let (op, dev) = (
        device_keypair_from_seed([1; 32]),
        device_keypair_from_seed([3; 32]),
    );
    let consumer = device_keypair_from_seed([9; 32]);
    c.onboard(t0, &cert(&op, &dev, t0)).await.unwrap();
    c.record_deposit(t0, public_key_of(&consumer), 100, "pay-1")
        .await
        .unwrap();
    c.lock_order(t0, &lock_bytes(&consumer, 1, t0, &order(1, 100, 0, 0, 10)))
        .await
        .unwrap();
    serve_epoch(&c, &p, &dev, 0, 1).await;
    let before = store.balances().await.unwrap();
    let err = c.close_epoch(0, p.closable_at_ms(0)).await.unwrap_err();
    assert!(err.to_string().contains("which has 100 left"), "{err}");
    assert!(store.epoch(0).await.unwrap().is_none());
    assert_eq!(store.balances().await.unwrap(), before);
    replayed(&store).await;
}
on_both_backends!(
    sqlite_overcharging_stops_the_close,
    postgres_overcharging_stops_the_close,
    overcharging_stops_the_close,
    "overcharge"
);

/// Two replicas lock the same escrow at once: exactly one lock fits, and the
/// escrow never goes negative.
async fn racing_locks_never_overdraw(store: Store) {
    let p = policy();
    let a = Coordinator::open_with(store.clone(), p.clone(), sectors(false))
        .await
        .unwrap();
    let b = Coordinator::open_with(store.clone(), p.clone(), sectors(false))
        .await
        .unwrap();
    let t0 = p.epoch_start_ms(0) + 50;
    // Each round a fresh consumer with 1000 sends two locks of 600 at once,
    // one through each replica.
    for round in 0..10u8 {
        let consumer = device_keypair_from_seed([100 + round; 32]);
        let ck = public_key_of(&consumer);
        a.record_deposit(t0, ck, 1_000, &format!("pay-{round}"))
            .await
            .unwrap();
        let x = lock_bytes(&consumer, 1, t0, &order(1, 600, 0, 0, 1));
        let y = lock_bytes(&consumer, 2, t0, &order(2, 600, 0, 0, 1));
        let (rx, ry) = tokio::join!(a.lock_order(t0, &x), b.lock_order(t0, &y));
        let mut accepted = 0;
        for r in [rx, ry] {
            match r {
                Ok(_) => accepted += 1,
                Err(CoordError::Rejected { reason, .. }) => {
                    assert_eq!(reason, Reason::InsufficientEscrow)
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            accepted, 1,
            "round {round}: 1000 holds exactly one lock of 600"
        );
        let ledger = replayed(&store).await;
        assert_eq!(bal(&ledger, Account::Escrow(ck)), 400);
    }
}
on_both_backends!(
    sqlite_racing_locks_never_overdraw,
    postgres_racing_locks_never_overdraw,
    racing_locks_never_overdraw,
    "race"
);
