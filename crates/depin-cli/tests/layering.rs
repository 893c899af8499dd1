//! Architecture invariant, enforced: the pure crates never depend, even
//! transitively through normal dependencies, on the async runtime, the
//! database, HTTP or the CLI parser (ARCHITECTURE.md "Invariants").

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const PURE: &[&str] = &[
    "depin-core",
    "depin-protocol",
    "depin-keys",
    "depin-ledger",
    "depin-rewards",
    "depin-merkle",
    "depin-economics",
];
const IO: &[&str] = &["tokio", "sqlx", "axum", "reqwest", "clap", "hyper", "mio"];

#[test]
fn pure_crates_stay_pure() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    // Normal (non-dev, non-build) dependency edges of the resolved graph.
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap();
        for dep in node["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                edges
                    .entry(id)
                    .or_default()
                    .push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    for pure in PURE {
        let start = names
            .iter()
            .find(|(_, n)| *n == pure)
            .map(|(id, _)| *id)
            .unwrap_or_else(|| panic!("{pure} not in the workspace"));
        let mut seen = BTreeSet::new();
        let mut stack = vec![(start, vec![*pure])];
        while let Some((id, path)) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            for dep in edges.get(id).into_iter().flatten() {
                let name = names[dep];
                let mut p = path.clone();
                p.push(name);
                assert!(
                    !IO.contains(&name),
                    "{pure} must stay pure but depends on {name}: {}",
                    p.join(" → ")
                );
                stack.push((dep, p));
            }
        }
    }
}
