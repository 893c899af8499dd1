//! The example sector in a whole devnet: its plugin in the coordinator
//! (reopened with it after every injected restart), its actor on every
//! honest compute device. The run's own checks hold (nothing lost, nothing
//! twice, ledger balanced, every epoch audited with the sector's verifier,
//! honest devices paid, cheats unpaid); honest compute devices answer every
//! challenge; heartbeat-only compute devices miss theirs; and the same seed
//! gives the same bytes.

use depin_devnet::{Config, Extensions, FaultLevel, Scenario, run_with};
use depin_sector_echo::EchoPlugin;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn extensions() -> Extensions {
    Extensions {
        plugins: vec![Arc::new(EchoPlugin)],
        actors: vec![&depin_sector_echo::devnet::ACTORS],
    }
}

fn config(faults: FaultLevel) -> Config {
    Config {
        seed: 5,
        nodes: 40,
        epochs: 4,
        scenario: Scenario::Mixed,
        faults,
    }
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_compute_devices_answer_every_challenge_through_faults() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let o = run_with(&config(FaultLevel::Heavy), a.path(), &mut (), &extensions())
        .await
        .unwrap();
    assert!(o.summary.faults.restarts > 0, "{:?}", o.summary.faults);
    assert_eq!(o.summary.checks.closed_twice, 0);
    assert_eq!(o.summary.checks.epochs_audited, 4);

    let echo: Vec<_> = o
        .devices
        .iter()
        .filter(|d| d.behaviour == "echo_honest")
        .collect();
    assert!(echo.len() >= 3, "{} echo devices", echo.len());
    for d in &echo {
        assert_eq!(d.sector, "compute");
        assert!(d.rewards > 0, "{d:?}");
        assert!(!d.reasons.contains_key("challenge_missed"), "{d:?}");
    }
    // No honest compute device plays the heartbeat-only kind.
    assert!(
        !o.devices
            .iter()
            .any(|d| d.sector == "compute" && d.behaviour == "honest")
    );
    // Registered heartbeat-only compute devices that heartbeat miss their
    // challenges: each epoch after the first that they were active in.
    let flaky: Vec<_> = o
        .devices
        .iter()
        .filter(|d| d.sector == "compute" && d.behaviour == "flaky")
        .collect();
    assert!(!flaky.is_empty());
    for d in &flaky {
        assert!(d.reasons.contains_key("challenge_missed"), "{d:?}");
    }
    // Honest devices of the other sectors are the devnet's own kind, paid on
    // availability alone.
    assert!(
        o.devices
            .iter()
            .filter(|d| d.sector != "compute" && d.behaviour == "honest")
            .all(|d| d.rewards > 0 && !d.reasons.contains_key("challenge_missed"))
    );
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["behaviours"]["echo_honest"]["devices"], echo.len());

    // Same seed, same bytes, with the sector in the run.
    run_with(&config(FaultLevel::Heavy), b.path(), &mut (), &extensions())
        .await
        .unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert!(fa.contains_key("depin.sqlite"));
    for (name, bytes) in &fa {
        assert!(fb.get(name) == Some(bytes), "{name} differs between runs");
    }
}

#[tokio::test]
async fn a_second_actor_kind_of_the_same_name_is_refused() {
    static TWICE: [depin_devnet::ActorKind; 1] = [depin_devnet::ActorKind {
        name: "honest",
        class: depin_devnet::Class::Honest,
        sectors: &[depin_core::Sector::Compute],
        registered: true,
        build: |kind, _| Box::new(depin_sector_echo::devnet::EchoActor::new(kind)),
    }];
    let ext = Extensions {
        plugins: vec![Arc::new(EchoPlugin)],
        actors: vec![&TWICE],
    };
    let dir = tempfile::tempdir().unwrap();
    let err = run_with(&config(FaultLevel::None), dir.path(), &mut (), &ext)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("listed twice"), "{err}");
}
