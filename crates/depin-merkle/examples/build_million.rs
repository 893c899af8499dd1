//! Times building, proving and dumping a 1,000,000-leaf claim tree.
//!
//! `cargo run --release -p depin-merkle --example build_million [leaves]`

use depin_merkle::{Leaf, StandardMerkleTree, to_hex, verify};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("leaf count"));
    // Deterministic, distinct accounts; amounts spread over the u64 range.
    let leaves: Vec<Leaf> = (0..n as u64)
        .map(|i| {
            let mut account = [0u8; 32];
            account[..8].copy_from_slice(&i.to_be_bytes());
            account[8..16].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            Leaf::new(account, u128::from(i.wrapping_mul(0x2545_f491_4f6c_dd1d)))
        })
        .collect();

    let t = Instant::now();
    let tree = StandardMerkleTree::of(leaves);
    println!("of({n}): {:?}, root {}", t.elapsed(), to_hex(&tree.root()));

    let t = Instant::now();
    for i in (0..n).step_by((n / 1000).max(1)) {
        assert!(verify(&tree.root(), &tree.leaves()[i], &tree.proof(i)));
    }
    println!("1000 proofs + verify: {:?}", t.elapsed());

    let t = Instant::now();
    let account = tree.leaves()[n / 2].account;
    assert_eq!(tree.find(&account), Some(n / 2));
    println!("first find (builds index): {:?}", t.elapsed());

    let t = Instant::now();
    let json = tree.to_json();
    println!("to_json: {:?} ({} MB)", t.elapsed(), json.len() / 1_000_000);

    let t = Instant::now();
    let loaded = StandardMerkleTree::from_json(&json).expect("own dump loads");
    println!("from_json (full validation): {:?}", t.elapsed());
    assert_eq!(loaded, tree);
}
