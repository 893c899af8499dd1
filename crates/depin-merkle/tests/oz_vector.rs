//! Golden test against a vector produced by `@openzeppelin/merkle-tree` itself
//! (`tools/oz-merkle/make-vector.mjs` → `tests/fixtures/oz-vector.json`).

use depin_merkle::{Leaf, StandardMerkleTree, leaf_hash, to_hex, verify};
use serde_json::Value;

const VECTOR: &str = include_str!("fixtures/oz-vector.json");

fn hex32(s: &str) -> [u8; 32] {
    depin_merkle::parse_hex(s).unwrap()
}

/// Mirrors the `values` list in make-vector.mjs; change both together.
fn oz_leaves() -> Vec<Leaf> {
    vec![
        Leaf::new([0x11; 32], 1_000_000),
        Leaf::new([0x00; 32], 0),
        Leaf::new([0xff; 32], u128::MAX),
        Leaf::new(
            hex32(&format!("0x{}{}", "ab".repeat(16), "cd".repeat(16))),
            (1u128 << 64) + 1,
        ),
        Leaf::new(
            hex32("0x8f3c2a1b9e7d6c5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f"),
            42,
        ),
        Leaf::new([0x11; 32], 7),
        Leaf::new(
            hex32("0x0000000000000000000000000000000000000000000000000000000000000001"),
            123456789012345678901234567890,
        ),
    ]
}

fn vector() -> Value {
    serde_json::from_str(VECTOR).unwrap()
}

#[test]
fn dump_is_identical_to_the_js_library() {
    let ours = serde_json::to_value(StandardMerkleTree::of(oz_leaves()).dump()).unwrap();
    assert_eq!(ours, vector()["dump"]);
}

#[test]
fn compact_json_is_identical_to_js_stringify() {
    // Same key order as JS, so even the compact text matches, not just the value.
    let js_text = vector()["dumpJson"].as_str().unwrap().to_owned();
    assert_eq!(StandardMerkleTree::of(oz_leaves()).to_json(), js_text);
}

#[test]
fn root_leaf_hashes_and_proofs_match() {
    let v = vector();
    let tree = StandardMerkleTree::of(oz_leaves());
    assert_eq!(to_hex(&tree.root()), v["root"]);
    for (i, leaf) in oz_leaves().iter().enumerate() {
        assert_eq!(
            to_hex(&leaf_hash(leaf)),
            v["leafHashes"][i],
            "leaf hash {i}"
        );
        let proof: Vec<String> = tree.proof(i).iter().map(to_hex).collect();
        assert_eq!(
            serde_json::to_value(&proof).unwrap(),
            v["proofs"][i],
            "proof {i}"
        );
        assert!(verify(&tree.root(), leaf, &tree.proof(i)));
    }
    assert_eq!(v["proofs"].as_array().unwrap().len(), tree.len());
}

#[test]
fn loads_the_js_dump() {
    let dump = serde_json::from_value(vector()["dump"].clone()).unwrap();
    let loaded = StandardMerkleTree::load(dump).unwrap();
    assert_eq!(loaded, StandardMerkleTree::of(oz_leaves()));
    assert_eq!(loaded.leaves(), oz_leaves().as_slice());
    // The repeated account resolves to its first insertion.
    assert_eq!(loaded.find(&[0x11; 32]), Some(0));
    assert_eq!(loaded.find(&[0x00; 32]), Some(1));
}
