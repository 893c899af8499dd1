//! Cross-check against the JavaScript library on a larger tree: our dump of 1000
//! seeded leaves is loaded by `StandardMerkleTree.load` in
//! `tools/oz-merkle/verify.mjs`, which re-derives and verifies every proof.
//!
//! Needs `npm ci --prefix tools/oz-merkle`. Without it the test prints a skip line
//! and passes, unless `DEPIN_REQUIRE_NODE=1` (set in CI), where it fails.

use depin_merkle::{Leaf, StandardMerkleTree, to_hex};
use std::path::{Path, PathBuf};
use std::process::Command;

/// SplitMix64: a tiny, well-known seeded generator, enough for test data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn seeded_leaves(seed: u64, n: usize) -> Vec<Leaf> {
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|i| {
            let mut account = [0u8; 32];
            for chunk in account.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next().to_le_bytes());
            }
            // Mix small, zero and > 2^64 amounts; repeat an account now and then.
            let amount = match i % 4 {
                0 => 0,
                1 => u128::from(rng.next() % 1_000_000),
                _ => (u128::from(rng.next()) << 64) | u128::from(rng.next()),
            };
            if i % 97 == 96 {
                account = [0x5a; 32];
            }
            Leaf::new(account, amount)
        })
        .collect()
}

fn repo_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The path of `verify.mjs` if the JS library is installed and `node` runs;
/// otherwise prints why the cross-check is skipped (or fails under
/// `DEPIN_REQUIRE_NODE=1`).
fn js_verifier() -> Option<PathBuf> {
    let tools = repo_root().join("tools/oz-merkle");
    if !tools
        .join("node_modules/@openzeppelin/merkle-tree")
        .is_dir()
    {
        depin_testkit::skip(
            "DEPIN_REQUIRE_NODE",
            &format!(
                "{} has no node_modules: run `npm ci --prefix tools/oz-merkle` to cross-check against @openzeppelin/merkle-tree",
                tools.display()
            ),
        );
        return None;
    }
    if let Err(e) = Command::new("node").arg("--version").output() {
        depin_testkit::skip(
            "DEPIN_REQUIRE_NODE",
            &format!(
                "`node` is not runnable ({e}); install Node.js to cross-check against @openzeppelin/merkle-tree"
            ),
        );
        return None;
    }
    Some(tools.join("verify.mjs"))
}

/// Runs `node verify.mjs` on our dump and returns its `{"root", "leaves"}` report.
fn js_verify(verifier: &Path, tree: &StandardMerkleTree) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.json");
    std::fs::write(&path, tree.to_json()).unwrap();
    let out = Command::new("node")
        .arg(verifier)
        .arg(&path)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "verify.mjs rejected our dump: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("verify.mjs prints JSON")
}

#[test]
fn js_library_accepts_our_dump_of_1000_leaves() {
    let Some(verifier) = js_verifier() else {
        return;
    };
    let tree = StandardMerkleTree::of(seeded_leaves(0xdeb1_2026, 1000));
    let report = js_verify(&verifier, &tree);
    assert_eq!(report["root"], to_hex(&tree.root()));
    assert_eq!(report["leaves"], 1000);
}

#[test]
fn js_tool_agrees_on_small_and_empty_trees() {
    let Some(verifier) = js_verifier() else {
        return;
    };
    for n in [0, 1, 2, 3] {
        let tree = StandardMerkleTree::of(seeded_leaves(n as u64, n));
        let report = js_verify(&verifier, &tree);
        assert_eq!(report["root"], to_hex(&tree.root()), "n = {n}");
        assert_eq!(report["leaves"], n);
    }
}
