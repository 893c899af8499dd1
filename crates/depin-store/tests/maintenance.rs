//! Upkeep of the database (checkpoint, statistics, snapshots, sealing) and
//! the benchmarks' synthetic epoch, on SQLite and on a real PostgreSQL.

use depin_core::PublicKey;
use depin_store::testing::TestPostgres;
use depin_store::*;

fn key_of(i: u64) -> PublicKey {
    let mut k = [0u8; 32];
    k[24..].copy_from_slice(&i.to_be_bytes());
    PublicKey(k)
}

const LOAD: SyntheticEpoch = SyntheticEpoch {
    devices: 10,
    reports: 25,
    epoch: 3,
    start_ms: 1_000_000,
};

/// The synthetic epoch holds what its documentation says, and the upkeep
/// calls work on top of it.
async fn load_and_upkeep(store: &Store) {
    store.load_synthetic_epoch(&LOAD).await.unwrap();
    store.analyze().await.unwrap();
    store.checkpoint().await.unwrap();
    let devices = store.devices(None).await.unwrap();
    assert_eq!(devices.len(), 10);
    let first = devices.iter().find(|d| d.device == key_of(1)).unwrap();
    assert_eq!(first.operator, key_of(1_000_000_000_000));
    assert_eq!(first.registered_ms, LOAD.start_ms - 1);
    assert!(devices.iter().any(|d| d.device == key_of(10)));
    assert_eq!(store.report_count(3).await.unwrap(), 25);
    // Device 1 sends at x = 0, 10, 20: sequence numbers 0, 1, 2.
    let seqs: Vec<u64> = store
        .device_reports(&key_of(1), 3)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, vec![0, 1, 2]);
    let counts = store.report_counts(3, 2, 1_000).await.unwrap();
    assert_eq!(counts.len(), 10);
}

#[tokio::test]
async fn sqlite_snapshot_seal_and_synthetic_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    load_and_upkeep(&store).await;

    let copy = dir.path().join("copy.sqlite");
    store.snapshot_to(&copy).await.unwrap();
    let err = store.snapshot_to(&copy).await.unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err}");
    let snap = Store::open_read_only(&sqlite_url(&copy)).await.unwrap();
    assert_eq!(snap.report_count(3).await.unwrap(), 25);
    snap.close().await;

    // Two stores given the same statements seal to the same bytes, with no
    // side files, and a sealed store opens again.
    store.seal().await.unwrap();
    let other = tempfile::tempdir().unwrap();
    let second = Store::open_in_dir(other.path()).await.unwrap();
    second.load_synthetic_epoch(&LOAD).await.unwrap();
    second.analyze().await.unwrap();
    second.checkpoint().await.unwrap();
    second.seal().await.unwrap();
    let a = std::fs::read(dir.path().join("depin.sqlite")).unwrap();
    let b = std::fs::read(other.path().join("depin.sqlite")).unwrap();
    assert!(a == b, "two sealed stores differ");
    for side in [
        "depin.sqlite-wal",
        "depin.sqlite-shm",
        "depin.sqlite.sealed",
    ] {
        assert!(!dir.path().join(side).exists(), "{side}");
    }
    let again = Store::open_in_dir(dir.path()).await.unwrap();
    assert_eq!(again.report_count(3).await.unwrap(), 25);
    again.close().await;
}

#[tokio::test]
async fn postgres_checkpoint_analyze_and_synthetic_epoch() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let store = Store::open(&pg.url("maintenance")).await.unwrap();
    load_and_upkeep(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let err = store
        .snapshot_to(&dir.path().join("x.sqlite"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pg_dump"), "{err}");
    let err = store.clone().seal().await.unwrap_err();
    assert!(matches!(err, StoreError::Unsupported(_)), "{err}");
    store.close().await;
}
