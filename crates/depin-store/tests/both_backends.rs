//! The store's behaviour, run against SQLite and a real PostgreSQL server.

use depin_core::PublicKey;
use depin_store::testing::TestPostgres;
use depin_store::*;

fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

fn device(n: u8, op: u8) -> DeviceRow {
    DeviceRow {
        device: key(n),
        operator: key(op),
        sector: 1,
        hardware_class: "hotspot".into(),
        firmware_version: "1.0.0".into(),
        lat_micro: Some(52_520_000),
        lon_micro: None,
        h3_cell: None,
        certificate: vec![1, 2, 3],
        registered_ms: 1_000,
        revoked_ms: None,
        replaced_by: None,
        last_seq: None,
    }
}

fn report(dev: u8, seq: u64, epoch: u64) -> NewReport {
    NewReport {
        row: ReportRow {
            device: key(dev),
            seq,
            epoch,
            kind: 2,
            timestamp_ms: 5_000 + seq as i64,
            received_ms: 5_000 + seq as i64,
            raw: vec![dev, seq as u8],
        },
        telemetry: None,
        answers: None,
    }
}

const RULES: AppendRules = AppendRules {
    max_reports_per_device_per_epoch: 1_000,
    kind_limits: Vec::new(),
};

fn verdicts(a: Appended) -> Vec<Option<NotStored>> {
    a.verdicts
}

async fn exercise(store: Store) {
    // devices
    use Registration::*;
    assert_eq!(
        store.insert_device(&device(1, 100)).await.unwrap(),
        Registered
    );
    assert_eq!(
        store.insert_device(&device(1, 100)).await.unwrap(),
        DeviceKeyTaken,
        "second insert of the same key is refused"
    );
    assert_eq!(
        store.insert_device(&device(2, 100)).await.unwrap(),
        Registered
    );
    // A key has one role: an operator key cannot become a device, nor a
    // device key an operator, and nothing is written when refused.
    assert_eq!(
        store.insert_device(&device(100, 101)).await.unwrap(),
        DeviceKeyIsOperator
    );
    assert_eq!(
        store.insert_device(&device(9, 1)).await.unwrap(),
        OperatorKeyIsDevice
    );
    assert!(store.device(&key(9)).await.unwrap().is_none());
    assert!(store.devices(Some(&key(101))).await.unwrap().is_empty());
    assert_eq!(
        store.device(&key(1)).await.unwrap().unwrap(),
        device(1, 100)
    );
    assert_eq!(store.devices(Some(&key(100))).await.unwrap().len(), 2);
    assert!(store.device(&key(9)).await.unwrap().is_none());

    // reports: duplicates are reported, the rest stored, last_seq tracked
    let mut batch = vec![report(1, 1, 0), report(1, 2, 0), report(2, 1, 0)];
    batch[0].telemetry = Some(TelemetryRow {
        device: key(1),
        timestamp_ms: 5,
        uptime_s: 10,
        temperature_centi_c: 4_200,
        firmware_version: "1.0.0".into(),
        power_mw: 5_000,
    });
    let rej = vec![
        RejectionRow {
            epoch: 0,
            reason: "stale_timestamp".into(),
            device: key(2)
        };
        3
    ];
    let v = store.append_reports(&batch, &rej, RULES).await.unwrap();
    assert_eq!(v.verdicts, vec![None, None, None]);
    assert_eq!(v.devices.len(), 2);
    assert_eq!(v.devices[0].last_seq, Some(2));
    assert_eq!(v.devices[0].counts.get(&0), Some(&2));
    let v = store
        .append_reports(&[report(1, 2, 0), report(1, 3, 0)], &[], RULES)
        .await
        .unwrap();
    assert_eq!(verdicts(v), vec![Some(NotStored::Duplicate), None]);
    // Within one batch the sequence must rise too, and an unknown signer is
    // refused by the store itself.
    let v = store
        .append_reports(
            &[report(1, 5, 0), report(1, 4, 0), report(9, 1, 0)],
            &[],
            RULES,
        )
        .await
        .unwrap();
    assert_eq!(
        verdicts(v),
        vec![
            None,
            Some(NotStored::Duplicate),
            Some(NotStored::UnknownDevice)
        ]
    );
    assert_eq!(
        store.device(&key(1)).await.unwrap().unwrap().last_seq,
        Some(5)
    );
    assert_eq!(
        store.report_counts(0, 2, 60_000).await.unwrap(),
        vec![(key(1), 4), (key(2), 1)]
    );
    // Only reports that arrived within the allowed delay count.
    assert!(store.report_counts(0, 2, -1).await.unwrap().is_empty());
    assert_eq!(
        store
            .rejection_counts(None)
            .await
            .unwrap()
            .get("stale_timestamp"),
        Some(&3)
    );
    assert_eq!(
        store
            .telemetry(&key(1))
            .await
            .unwrap()
            .unwrap()
            .temperature_centi_c,
        4_200
    );

    // close exactly once
    let mut close = store
        .begin_close(0, "v1-test", 9_000)
        .await
        .unwrap()
        .expect("first close claims the epoch");
    let q = EpochInputQuery {
        epoch: 0,
        registered_before_ms: 2_000,
        report_kind: 2,
        max_delay_ms: 60_000,
        kinds: vec![2],
        states: vec!["availability".into()],
    };
    let inputs = close.inputs(&q).await.unwrap();
    assert_eq!(inputs.report_counts.len(), 2);
    assert_eq!(inputs.devices.len(), 2);
    // (1,1) (1,2) (1,3) (1,5) (2,1): every stored report of the asked kind
    let keys: Vec<(u8, u64)> = inputs
        .reports
        .iter()
        .map(|r| (r.device.0[0], r.seq))
        .collect();
    assert_eq!(keys, vec![(1, 1), (1, 2), (1, 3), (1, 5), (2, 1)]);
    assert!(
        inputs
            .reports
            .windows(2)
            .all(|w| (w[0].device, w[0].seq) < (w[1].device, w[1].seq))
    );
    assert!(inputs.prior_states.is_empty() && inputs.previous_claims.is_empty());
    assert_eq!(inputs.previous_root, None);
    let row = EpochRow {
        epoch: 0,
        policy_id: "v1-test".into(),
        closed_ms: 9_000,
        emission: 100,
        minted: 100,
        fees: 0,
        burned: 0,
        devices: 2,
        sheet_hash: vec![9; 32],
        claim_root: vec![8; 32],
    };
    let w = EpochWrite {
        sector_totals: vec![SectorTotalRow {
            sector: 1,
            emission: 100,
            distributed: 100,
            devices: 2,
            rewarded: 2,
        }],
        lines: vec![RewardLineRow {
            device: key(1),
            operator: key(100),
            sector: 1,
            score_ppm: 1_000_000,
            weight: 1,
            reward: 100,
            fees: 0,
            reasons: String::new(),
        }],
        entries: vec![LedgerEntryRow {
            debit: "mint".into(),
            credit: format!("operator:{}", key(100)),
            amount: 100,
            kind: "emission".into(),
        }],
        claims: vec![(key(100), 100)],
        sector_state: vec![("availability".into(), 3, vec![1])],
        ..Default::default()
    };
    close.commit(&row, &w).await.unwrap();
    assert!(
        store
            .begin_close(0, "v1-test", 9_999)
            .await
            .unwrap()
            .is_none(),
        "second close finds it closed"
    );
    assert_eq!(store.epoch(0).await.unwrap().unwrap(), row);
    assert_eq!(store.balance("mint").await.unwrap(), -100);
    assert_eq!(
        store
            .balance(&format!("operator:{}", key(100)))
            .await
            .unwrap(),
        100
    );
    assert_eq!(store.claims_as_of(0).await.unwrap(), vec![(key(100), 100)]);
    assert_eq!(store.reward_lines(0).await.unwrap(), w.lines);
    assert_eq!(
        store.sector_state("availability", 0).await.unwrap(),
        Some(vec![1])
    );

    // the next epoch reads the state with its version, and the root
    let next = store
        .epoch_inputs(&EpochInputQuery {
            epoch: 1,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(next.prior_states.get("availability"), Some(&(3, vec![1])));
    assert_eq!(next.previous_root, Some([8; 32]));

    // a report for the closed epoch is refused by the store itself
    let v = store
        .append_reports(&[report(2, 5, 0), report(2, 6, 1)], &[], RULES)
        .await
        .unwrap();
    assert_eq!(verdicts(v), vec![Some(NotStored::EpochClosed), None]);

    // claims carry forward: epoch 1 changes only operator 101
    let close = store
        .begin_close(1, "v1-test", 10_000)
        .await
        .unwrap()
        .unwrap();
    let w1 = EpochWrite {
        claims: vec![(key(101), 5)],
        ..Default::default()
    };
    close
        .commit(
            &EpochRow {
                epoch: 1,
                ..row.clone()
            },
            &w1,
        )
        .await
        .unwrap();
    assert_eq!(
        store.claims_as_of(1).await.unwrap(),
        vec![(key(100), 100), (key(101), 5)]
    );
    assert_eq!(store.claims_as_of(0).await.unwrap(), vec![(key(100), 100)]);
    assert_eq!(store.last_closed_epoch().await.unwrap(), Some(1));

    // an aborted close leaves the epoch open
    let close = store
        .begin_close(2, "v1-test", 11_000)
        .await
        .unwrap()
        .unwrap();
    close.abort().await.unwrap();
    assert!(store.epoch(2).await.unwrap().is_none());

    // rotation is atomic: a taken new key changes nothing
    assert_eq!(
        store
            .rotate_device(&key(1), &device(2, 100), 11_500)
            .await
            .unwrap(),
        DeviceKeyTaken
    );
    // nor can a device rotate onto an operator key, its own included
    assert_eq!(
        store
            .rotate_device(&key(1), &device(100, 100), 11_500)
            .await
            .unwrap(),
        DeviceKeyIsOperator
    );
    assert_eq!(
        store.device(&key(1)).await.unwrap().unwrap().revoked_ms,
        None,
        "old key untouched"
    );
    assert_eq!(
        store
            .rotate_device(&key(1), &device(5, 100), 11_500)
            .await
            .unwrap(),
        Registered
    );
    let old = store.device(&key(1)).await.unwrap().unwrap();
    assert_eq!(
        (old.revoked_ms, old.replaced_by),
        (Some(11_500), Some(key(5)))
    );
    assert_eq!(
        store
            .rotate_device(&key(1), &device(6, 100), 11_600)
            .await
            .unwrap(),
        OldKeyInactive,
        "a revoked key cannot rotate again"
    );
    // and a revoked key's reports are refused by the store, whatever a
    // cache in front of it believes
    let v = store
        .append_reports(&[report(1, 50, 3)], &[], RULES)
        .await
        .unwrap();
    assert_eq!(verdicts(v), vec![Some(NotStored::Revoked)]);
    assert!(
        store.device(&key(6)).await.unwrap().is_none(),
        "and its would-be successor is not registered"
    );

    // revocation
    assert!(
        store
            .revoke_device(&key(2), 12_000, Some(&key(3)))
            .await
            .unwrap()
    );
    assert!(!store.revoke_device(&key(2), 13_000, None).await.unwrap());
    assert_eq!(
        store.device(&key(2)).await.unwrap().unwrap().replaced_by,
        Some(key(3))
    );
}

/// Work orders: written by a close, listed while open, answered once by
/// their own device with the right kind before the deadline, seen with their
/// answer by the close of the epoch they fall due in.
async fn work_orders(store: Store) {
    store.insert_device(&device(40, 140)).await.unwrap();
    store.insert_device(&device(41, 140)).await.unwrap();
    let order = |id: u8, dev: u8, deadline_ms: i64| WorkRow {
        id: [id; 32],
        issued_epoch: 0,
        sector: 1,
        device: key(dev),
        answer_kind: 1001,
        body: vec![id],
        deadline_ms,
        due_epoch: 1,
        answer_seq: None,
    };
    let close = store
        .begin_close(0, "v1-test", 9_000)
        .await
        .unwrap()
        .unwrap();
    let row = EpochRow {
        epoch: 0,
        policy_id: "v1-test".into(),
        closed_ms: 9_000,
        emission: 0,
        minted: 0,
        fees: 0,
        burned: 0,
        devices: 0,
        sheet_hash: vec![0; 32],
        claim_root: vec![7; 32],
    };
    let orders = vec![
        order(1, 40, 20_000),
        order(2, 40, 6_000),
        order(3, 41, 20_000),
    ];
    close
        .commit(
            &row,
            &EpochWrite {
                work: orders.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.work_issued(0).await.unwrap(), orders);
    let open = store.open_work(&key(40), 7_000).await.unwrap();
    assert_eq!(
        open,
        vec![order(1, 40, 20_000)],
        "past deadlines are not open"
    );

    let answer = |dev: u8, seq: u64, id: u8, kind: u32, received_ms: i64| {
        let mut r = report(dev, seq, 1);
        r.row.kind = kind;
        r.row.received_ms = received_ms;
        r.answers = Some([id; 32]);
        r
    };
    let v = store
        .append_reports(
            &[
                answer(41, 1, 1, 1001, 8_000), // someone else's order
                answer(40, 1, 1, 1002, 8_000), // wrong kind
                answer(40, 2, 9, 1001, 8_000), // never issued
                answer(40, 3, 2, 1001, 8_000), // after its deadline
                answer(40, 4, 1, 1001, 8_000), // the one good answer
                answer(40, 5, 1, 1001, 8_000), // answered already
            ],
            &[],
            RULES,
        )
        .await
        .unwrap();
    use NotStored::*;
    assert_eq!(
        verdicts(v),
        vec![
            Some(UnknownWork),
            Some(UnknownWork),
            Some(UnknownWork),
            Some(WorkExpired),
            None,
            Some(UnknownWork)
        ]
    );
    assert!(store.open_work(&key(40), 7_000).await.unwrap().is_empty());
    let due = store
        .epoch_inputs(&EpochInputQuery {
            epoch: 1,
            registered_before_ms: 100_000,
            report_kind: 2,
            max_delay_ms: 60_000,
            kinds: vec![1001],
            states: vec![],
        })
        .await
        .unwrap();
    assert_eq!(due.due_work.len(), 3);
    let answered: Vec<(u8, Option<u64>)> = due
        .due_work
        .iter()
        .map(|d| (d.work.id[0], d.answer.as_ref().map(|a| a.seq)))
        .collect();
    assert_eq!(answered, vec![(1, Some(4)), (2, None), (3, None)]);
    assert_eq!(
        due.reports.len(),
        1,
        "only the stored answer is a report of kind 1001"
    );
    assert_eq!(due.previous_root, Some([7; 32]));
}

/// Two closers race for the same epoch: exactly one commits.
async fn concurrent_close(store: Store) {
    let a = store.clone();
    let b = store.clone();
    let run = |s: Store| async move {
        match s.begin_close(7, "p", 1).await.unwrap() {
            Some(c) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let row = EpochRow {
                    epoch: 7,
                    policy_id: "p".into(),
                    closed_ms: 1,
                    emission: 1,
                    minted: 1,
                    fees: 0,
                    burned: 0,
                    devices: 0,
                    sheet_hash: vec![],
                    claim_root: vec![],
                };
                let w = EpochWrite {
                    entries: vec![LedgerEntryRow {
                        debit: "mint".into(),
                        credit: "protocol".into(),
                        amount: 1,
                        kind: "emission".into(),
                    }],
                    ..Default::default()
                };
                c.commit(&row, &w).await.unwrap();
                true
            }
            None => false,
        }
    };
    let (x, y) = tokio::join!(run(a), run(b));
    assert!(x ^ y, "exactly one closer wins (got {x}, {y})");
    assert_eq!(
        store.balance("protocol").await.unwrap(),
        1,
        "the close was applied once"
    );
}

#[tokio::test]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    exercise(store.clone()).await;
    concurrent_close(store).await;
    let dir = tempfile::tempdir().unwrap();
    work_orders(Store::open_in_dir(dir.path()).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_backend() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let store = Store::open(&pg.url("store_test")).await.unwrap();
    exercise(store.clone()).await;
    concurrent_close(store).await;
    work_orders(Store::open(&pg.url("store_work")).await.unwrap()).await;
}

#[tokio::test]
async fn rejects_unknown_url_scheme() {
    assert!(matches!(
        Store::open("mysql://x").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}

#[tokio::test]
async fn reopening_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    store.insert_device(&device(4, 1)).await.unwrap();
    store.close().await;
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    assert!(store.device(&key(4)).await.unwrap().is_some());
}

/// The SQLite and PostgreSQL migrations describe the same schema: the same
/// tables with the same columns, nullability and primary keys (types are
/// compared by family: integer, blob/bytea, text). A migration written for
/// one backend and forgotten for the other fails here.
#[tokio::test]
async fn sqlite_and_postgres_schemas_agree() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = Store::open_in_dir(dir.path()).await.unwrap();
    let post = Store::open(&pg.url("schema")).await.unwrap();
    let a = depin_store::testing::schema(&lite).await;
    let b = depin_store::testing::schema(&post).await;
    assert!(a.len() > 40, "only {} columns found in SQLite", a.len());
    depin_store::testing::assert_same_schema(&a, &b);
}
