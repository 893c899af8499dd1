//! Whole devnet runs, small: determinism, cheats caught, honest devices paid,
//! the ledger balanced, every epoch audited, claim files consistent.

use depin_devnet::{Config, FaultLevel, Scenario, run};
use depin_merkle::StandardMerkleTree;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A small run with the default faults.
fn small(seed: u64) -> Config {
    Config {
        seed,
        nodes: 40,
        epochs: 4,
        scenario: Scenario::Mixed,
        faults: FaultLevel::Default,
    }
}

/// Every file under `dir`, relative path → bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn json(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_bytes_different_seed_different_summary() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    run(&small(7), a.path(), &mut ()).await.unwrap();
    run(&small(7), b.path(), &mut ()).await.unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    let names: Vec<&String> = fa.keys().collect();
    assert!(names.iter().any(|n| *n == "depin.sqlite"), "{names:?}");
    assert!(
        names.iter().any(|n| *n == "summary.json") && names.iter().any(|n| *n == "devices.json")
    );
    assert_eq!(
        names.iter().filter(|n| n.ends_with("claims.json")).count(),
        4,
        "{names:?}"
    );
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(
            bytes == &fb[name],
            "{name} differs between two runs with the same seed"
        );
    }

    run(&small(8), c.path(), &mut ()).await.unwrap();
    assert_ne!(
        std::fs::read(a.path().join("summary.json")).unwrap(),
        std::fs::read(c.path().join("summary.json")).unwrap()
    );

    // Rerunning into an earlier output directory replaces it, same bytes.
    run(&small(7), a.path(), &mut ()).await.unwrap();
    assert_eq!(files(a.path()), fb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheats_earn_nothing_honest_devices_earn_ledger_balances_claims_match() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&small(11), dir.path(), &mut ()).await.unwrap();
    let devices = json(dir.path(), "devices.json");
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 40);
    let mut kinds = BTreeMap::new();
    for d in devices {
        let behaviour = d["behaviour"].as_str().unwrap();
        *kinds.entry(behaviour.to_string()).or_insert(0) += 1;
        let rewards = d["rewards"].as_u64().unwrap();
        let reasons = d["reasons"].as_object().unwrap();
        match behaviour {
            "honest" => assert!(rewards > 0, "{d}"),
            "flaky" => {}
            _ => {
                assert_eq!(rewards, 0, "{d}");
                assert!(!reasons.is_empty(), "{d}");
            }
        }
        if rewards == 0 {
            assert!(!reasons.is_empty(), "{d}");
        }
        assert!(d["costs_usd"].as_f64().unwrap() > 0.0, "{d}");
        for key in ["device", "operator", "sector", "profile"] {
            assert!(d[key].is_string(), "{key} in {d}");
        }
    }
    for kind in [
        "honest",
        "flaky",
        "forged_signature",
        "replayer",
        "skewed_clock",
        "unregistered",
    ] {
        assert!(kinds.contains_key(kind), "{kinds:?}");
    }
    // Each cheat is caught for what it does.
    let reason_of = |kind: &str| -> Vec<String> {
        devices
            .iter()
            .filter(|d| d["behaviour"] == kind)
            .flat_map(|d| {
                d["reasons"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert!(reason_of("forged_signature").contains(&"bad_signature".to_string()));
    assert!(reason_of("replayer").contains(&"replayed_sequence".to_string()));
    assert!(reason_of("unregistered").contains(&"unknown_signer".to_string()));
    let skew = reason_of("skewed_clock");
    assert!(
        skew.contains(&"stale_timestamp".to_string())
            || skew.contains(&"future_timestamp".to_string()),
        "{skew:?}"
    );

    let summary = json(dir.path(), "summary.json");
    let rejections = summary["rejections"].as_object().unwrap();
    for reason in ["bad_signature", "replayed_sequence", "unknown_signer"] {
        assert!(rejections[reason].as_u64().unwrap() > 0, "{rejections:?}");
    }
    assert!(
        rejections.contains_key("stale_timestamp") || rejections.contains_key("future_timestamp")
    );

    // Ledger: balances = minted − burned, and minted = the epochs' sum.
    let ledger = &summary["ledger"];
    let (minted, burned, total) = (
        ledger["minted"].as_u64().unwrap(),
        ledger["burned"].as_u64().unwrap(),
        ledger["balances_total"].as_u64().unwrap(),
    );
    assert_eq!(total, minted - burned);
    let epochs = summary["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 4);
    assert_eq!(
        epochs
            .iter()
            .map(|e| e["minted"].as_u64().unwrap())
            .sum::<u64>(),
        minted
    );
    assert_eq!(
        devices
            .iter()
            .map(|d| d["rewards"].as_u64().unwrap())
            .sum::<u64>(),
        minted
    );
    for e in epochs {
        assert_eq!(e["per_sector"].as_object().unwrap().len(), 4, "{e}");
    }

    // Claims: every file loads, and its root is the epoch's merkle_root.
    for e in epochs {
        let n = e["epoch"].as_u64().unwrap();
        let text =
            std::fs::read_to_string(dir.path().join(format!("epochs/{n}/claims.json"))).unwrap();
        assert!(text.contains("\"format\":\"standard-v1\""));
        let tree = StandardMerkleTree::from_json(&text).unwrap();
        assert_eq!(
            depin_merkle::to_hex(&tree.root()),
            e["merkle_root"].as_str().unwrap()
        );
    }

    // Every epoch audits clean against the sealed store, reopened from disk.
    let store = depin_store::Store::open_in_dir(dir.path()).await.unwrap();
    for n in 0..4 {
        let report = depin_coordinator::audit::audit_epoch(&store, n)
            .await
            .unwrap();
        assert!(report.passed(), "{:?}", report.differences);
    }
    store.close().await;

    // The table names the follow-up commands and is deterministic.
    let t = depin_devnet::table(&outcome, "out");
    assert!(
        t.contains("depin audit-epoch --database-url sqlite://out/depin.sqlite --epoch 3"),
        "{t}"
    );
    assert!(t.contains("bad_signature"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_scenario_pays_everyone_and_cheaters_scenario_catches_half() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &Config {
            seed: 3,
            nodes: 24,
            epochs: 2,
            scenario: Scenario::Honest,
            faults: FaultLevel::Default,
        },
        dir.path(),
        &mut (),
    )
    .await
    .unwrap();
    assert!(
        o.summary.rejections.is_empty(),
        "{:?}",
        o.summary.rejections
    );
    assert!(
        o.devices
            .iter()
            .filter(|d| d.behaviour == "honest")
            .all(|d| d.rewards > 0)
    );

    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &Config {
            seed: 3,
            nodes: 24,
            epochs: 2,
            scenario: Scenario::Cheaters,
            faults: FaultLevel::Heavy,
        },
        dir.path(),
        &mut (),
    )
    .await
    .unwrap();
    let cheats: Vec<_> = o
        .devices
        .iter()
        .filter(|d| d.behaviour != "honest" && d.behaviour != "flaky")
        .collect();
    assert_eq!(cheats.len(), 12);
    assert!(
        cheats
            .iter()
            .all(|d| d.rewards == 0 && !d.reasons.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_directory_that_is_not_devnet_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("thesis.tex"), "precious").unwrap();
    let err = run(&small(1), dir.path(), &mut ()).await.unwrap_err();
    assert!(err.to_string().contains("refusing to write"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("thesis.tex")).unwrap(),
        "precious"
    );

    let err = "chaos".parse::<Scenario>().unwrap_err();
    assert!(err.to_string().contains("mixed, honest, cheaters"), "{err}");
    let err = "some".parse::<FaultLevel>().unwrap_err();
    assert!(err.to_string().contains("none, default, heavy"), "{err}");
}

/// The summary of a fixed small run, frozen: any change to what the devnet
/// produces for a seed (rewards, rejections, economics, roots) shows up here
/// between commits, not only within one run. When a change is intended,
/// rerun with `UPDATE_DEVNET_HASH=1` and commit the new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_for_a_fixed_seed_is_frozen() {
    const FROZEN: &str = include_str!("golden/summary_seed7.blake3");
    let dir = tempfile::tempdir().unwrap();
    run(&small(7), dir.path(), &mut ()).await.unwrap();
    let summary = std::fs::read(dir.path().join("summary.json")).unwrap();
    let hash = blake3::hash(&summary).to_hex().to_string();
    if std::env::var_os("UPDATE_DEVNET_HASH").is_some() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/summary_seed7.blake3");
        std::fs::write(&path, format!("{hash}\n")).unwrap();
        return;
    }
    assert_eq!(
        hash,
        FROZEN.trim(),
        "the devnet summary for seed 7 changed; if intended, rerun with UPDATE_DEVNET_HASH=1:\n{}",
        String::from_utf8_lossy(&summary[..summary.len().min(2_000)])
    );
}

/// The summary without what faults are allowed to change.
fn without_faults(mut summary: Value) -> Value {
    let o = summary.as_object_mut().unwrap();
    o.remove("faults");
    o["flags"].as_object_mut().unwrap().remove("faults");
    summary
}

/// Faults happen, each kind of them, and change nothing that matters: the
/// same rewards, rejections, roots and checks as a reliable run of the same
/// seed, and every check passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_happens_and_changes_no_outcome() {
    let calm = tempfile::tempdir().unwrap();
    run(
        &Config {
            faults: FaultLevel::None,
            ..small(7)
        },
        calm.path(),
        &mut (),
    )
    .await
    .unwrap();
    let quiet = json(calm.path(), "summary.json");
    assert_eq!(quiet["faults"]["restarts"], 0);
    assert_eq!(quiet["faults"]["duplicates_delivered"], 0);

    for level in [FaultLevel::Default, FaultLevel::Heavy] {
        let dir = tempfile::tempdir().unwrap();
        let o = run(
            &Config {
                faults: level,
                ..small(7)
            },
            dir.path(),
            &mut (),
        )
        .await
        .unwrap();
        let f = &o.summary.faults;
        assert_eq!(f.level, level.as_str());
        assert!(f.restarts >= 1, "{f:?}");
        assert!(f.reordered_deliveries >= 1, "{f:?}");
        assert!(f.retried_deliveries >= 1 && f.retried_closes >= 1, "{f:?}");
        // Store errors landed in an append and in a close, at named steps.
        assert!(
            f.store_errors
                .keys()
                .any(|k| k.starts_with("append:") || k == "begin" || k == "commit"),
            "{f:?}"
        );
        assert!(
            f.store_errors
                .keys()
                .any(|k| k.starts_with("close:") || k == "begin" || k == "commit"),
            "{f:?}"
        );
        assert_eq!(
            f.store_errors.values().sum::<u64>(),
            f.retried_deliveries + f.retried_closes
        );
        // Duplicates of accepted reports are refused as replays.
        assert!(f.duplicates_delivered > 0, "{f:?}");
        assert_eq!(
            f.duplicates_refused.values().sum::<u64>(),
            f.duplicates_delivered
        );
        assert!(f.duplicates_refused["replayed_sequence"] > 0, "{f:?}");
        let c = &o.summary.checks;
        assert!(c.reports_to_accept > 0);
        assert_eq!(c.accepted_exactly_once, c.reports_to_accept);
        assert_eq!(c.reports_stored, c.reports_to_accept);
        assert_eq!(
            (c.epochs_closed, c.epochs_audited, c.closed_twice),
            (4, 4, 0)
        );
        assert!(c.ledger_balanced);

        assert_eq!(
            without_faults(json(dir.path(), "summary.json")),
            without_faults(quiet.clone()),
            "faults ({level}) changed the outcome"
        );
        assert_eq!(
            std::fs::read(dir.path().join("devices.json")).unwrap(),
            std::fs::read(calm.path().join("devices.json")).unwrap()
        );
        for n in 0..4 {
            let name = format!("epochs/{n}/claims.json");
            assert_eq!(
                std::fs::read(dir.path().join(&name)).unwrap(),
                std::fs::read(calm.path().join(&name)).unwrap(),
                "{name}"
            );
        }
    }
    // Heavy faults also restart between a failed close and its retry.
    let heavy = tempfile::tempdir().unwrap();
    let o = run(
        &Config {
            faults: FaultLevel::Heavy,
            ..small(7)
        },
        heavy.path(),
        &mut (),
    )
    .await
    .unwrap();
    let plan = depin_devnet::faults::FaultPlan::draw(7, FaultLevel::Heavy, 16, 4);
    assert_eq!(
        o.summary.faults.restarts,
        (plan.restarts.len() + plan.close_errors.len()) as u64
    );
}

/// Heavy faults replay byte for byte: same seed, same files, the store too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_faults_give_the_same_bytes_for_the_same_seed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = Config {
        faults: FaultLevel::Heavy,
        ..small(5)
    };
    run(&config, a.path(), &mut ()).await.unwrap();
    run(&config, b.path(), &mut ()).await.unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(
            bytes == &fb[name],
            "{name} differs between two runs with the same seed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_one_self_contained_page_with_the_runs_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&small(11), dir.path(), &mut ()).await.unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Nothing fetched when it opens: no script, no external resource.
    for banned in [
        "<script", "src=", "http://", "https://", "<link", "@import", "url(",
    ] {
        assert!(!html.contains(banned), "report.html contains {banned:?}");
    }
    for title in [
        "Checks",
        "Rewards by sector",
        "Rewards by behaviour",
        "Reports refused, by reason code",
        "Ledger",
        "Operators' net profit",
    ] {
        assert!(
            html.contains(&format!("<h2>{title}</h2>")),
            "no section {title}"
        );
    }
    // Its numbers are the summary's.
    let minted = depin_core::format_tokens(o.summary.ledger.minted);
    assert!(
        html.contains(&format!("Minted {minted} tokens")),
        "{minted}"
    );
    for (reason, n) in &o.summary.rejections {
        assert!(
            html.contains(&format!("<th scope=\"row\">{reason}</th><td>{n}</td>")),
            "{reason} {n}"
        );
    }
    assert!(
        !o.summary.rejections.is_empty(),
        "the mixed scenario refuses cheats"
    );
    assert!(
        !html.contains("class=\"bad\""),
        "a failed check shows in the page"
    );
    // Balanced markup for what it draws, and every chart has a title.
    for tag in ["svg", "table", "section", "title"] {
        assert_eq!(
            html.matches(&format!("<{tag}")).count(),
            html.matches(&format!("</{tag}>")).count(),
            "<{tag}> unbalanced"
        );
    }
    assert_eq!(
        html.matches("<svg").count(),
        html.matches("role=\"img\" aria-labelledby").count()
    );
}
