//! Property tests: proofs verify, tampering fails, dumps round-trip, and `load`
//! turns any garbage into an error rather than a panic.

use depin_merkle::{Dump, Leaf, StandardMerkleTree, leaf_hash, verify};
use proptest::prelude::*;

fn arb_leaf() -> impl Strategy<Value = Leaf> {
    // A small account alphabet makes repeated accounts (and identical leaves) common.
    let account = prop_oneof![any::<[u8; 32]>(), (0u8..4).prop_map(|b| [b; 32]),];
    let amount = prop_oneof![
        Just(0u128),
        Just(u128::MAX),
        any::<u64>().prop_map(u128::from),
        any::<u128>()
    ];
    (account, amount).prop_map(|(account, amount)| Leaf { account, amount })
}

fn arb_leaves() -> impl Strategy<Value = Vec<Leaf>> {
    prop::collection::vec(arb_leaf(), 1..200)
}

/// A reference model of the root, written independently of the crate's flat
/// array: sort hashes ascending, then hash the complete binary tree recursively.
fn model_root(leaves: &[Leaf]) -> [u8; 32] {
    use sha3::{Digest, Keccak256};
    fn node(tree: &[[u8; 32]], i: usize) -> [u8; 32] {
        if 2 * i + 1 >= tree.len() {
            return tree[i];
        }
        let (mut a, mut b) = (node(tree, 2 * i + 1), node(tree, 2 * i + 2));
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        Keccak256::new()
            .chain_update(a)
            .chain_update(b)
            .finalize()
            .into()
    }
    let mut hashes: Vec<[u8; 32]> = leaves.iter().map(leaf_hash).collect();
    hashes.sort();
    let n = hashes.len();
    let mut tree = vec![[0u8; 32]; 2 * n - 1];
    for (k, h) in hashes.into_iter().enumerate() {
        tree[2 * n - 2 - k] = h;
    }
    node(&tree, 0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_proof_verifies(leaves in arb_leaves()) {
        let tree = StandardMerkleTree::of(leaves.clone());
        prop_assert_eq!(tree.root(), model_root(&leaves));
        prop_assert_eq!(tree.leaves(), leaves.as_slice());
        for (i, leaf) in leaves.iter().enumerate() {
            prop_assert!(verify(&tree.root(), leaf, &tree.proof(i)), "leaf {}", i);
            let first = tree.find(&leaf.account).unwrap();
            prop_assert!(first <= i);
            prop_assert_eq!(leaves[first].account, leaf.account);
            prop_assert!(leaves[..first].iter().all(|l| l.account != leaf.account));
        }
    }

    #[test]
    fn changed_amount_or_account_fails(leaves in arb_leaves(), pick in any::<prop::sample::Index>(), delta in 1u128..) {
        let tree = StandardMerkleTree::of(leaves.clone());
        let i = pick.index(leaves.len());
        let proof = tree.proof(i);
        let mut forged = leaves[i];
        forged.amount = forged.amount.wrapping_add(delta);
        // A forged leaf can only verify if it is literally another leaf of the
        // tree sitting at the same position, which a changed amount never is.
        prop_assert!(!verify(&tree.root(), &forged, &proof));
        let mut other = leaves[i];
        other.account[31] ^= 1;
        prop_assert!(!verify(&tree.root(), &other, &proof));
    }

    #[test]
    fn tampered_proof_fails(leaves in prop::collection::vec(arb_leaf(), 2..100), pick in any::<prop::sample::Index>(), step in any::<prop::sample::Index>(), bit in 0u8..8) {
        let tree = StandardMerkleTree::of(leaves.clone());
        let i = pick.index(leaves.len());
        let mut proof = tree.proof(i);
        prop_assume!(!proof.is_empty());
        let s = step.index(proof.len());
        proof[s][0] ^= 1 << bit;
        prop_assert!(!verify(&tree.root(), &leaves[i], &proof));
    }

    #[test]
    fn dump_load_dump_round_trips(leaves in prop::collection::vec(arb_leaf(), 0..200)) {
        let tree = StandardMerkleTree::of(leaves);
        let json = tree.to_json();
        prop_assert_eq!(&json, &serde_json::to_string(&tree.dump()).unwrap());
        let loaded = StandardMerkleTree::from_json(&json).unwrap();
        prop_assert_eq!(&loaded, &tree);
        prop_assert_eq!(loaded.to_json(), json);
        prop_assert_eq!(loaded.dump(), tree.dump());
    }

    /// Any single change to a valid dump's JSON text is either rejected or (when the
    /// change is semantically neutral, e.g. whitespace) loads the same tree.
    #[test]
    fn mutated_json_never_panics(leaves in prop::collection::vec(arb_leaf(), 1..20), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let tree = StandardMerkleTree::of(leaves);
        let mut bytes = tree.to_json().into_bytes();
        let p = pos.index(bytes.len());
        prop_assume!(bytes[p] != byte);
        bytes[p] = byte;
        let loaded = std::str::from_utf8(&bytes).ok().and_then(|text| StandardMerkleTree::from_json(text).ok());
        if let Some(loaded) = loaded {
            prop_assert_eq!(loaded, tree);
        }
    }

    #[test]
    fn mutated_dump_is_rejected(leaves in prop::collection::vec(arb_leaf(), 2..40), which in 0usize..9, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let tree = StandardMerkleTree::of(leaves);
        let mut d = tree.dump();
        let (nv, nt) = (d.values.len(), d.tree.len());
        let (va, vb, ta) = (a.index(nv), b.index(nv), a.index(nt));
        match which {
            0 => d.format = "standard-v2".into(),
            1 => d.leaf_encoding.reverse(),
            2 => { let mut c: Vec<char> = d.tree[ta].chars().collect(); c[2 + b.index(64)] = if c[2 + b.index(64)] == '0' { '1' } else { '0' }; d.tree[ta] = c.into_iter().collect(); }
            3 => { d.tree.pop(); }
            4 => { d.values.pop(); }
            5 => d.values[va].tree_index = b.index(nt / 2), // an internal node
            6 => { prop_assume!(d.values[va].tree_index != d.values[vb].tree_index); let t = d.values[vb].tree_index; d.values[va].tree_index = t; }
            7 => d.values[va].value[1] = serde_json::Value::String(format!("{}1", d.values[va].value[1].as_str().unwrap())),
            _ => { d.values[va].value.push(serde_json::Value::Null); }
        }
        prop_assert!(StandardMerkleTree::load(d).is_err());
    }

    #[test]
    fn arbitrary_dumps_never_panic(
        format in prop_oneof![Just("standard-v1".to_string()), ".{0,12}"],
        enc in prop_oneof![Just(vec!["bytes32".to_string(), "uint256".to_string()]), prop::collection::vec(".{0,8}", 0..3)],
        tree in prop::collection::vec(prop_oneof!["0x[0-9a-f]{64}", ".{0,70}"], 0..8),
        values in prop::collection::vec((prop::collection::vec(prop_oneof![
            "0x[0-9a-f]{64}".prop_map(serde_json::Value::String),
            "[0-9]{1,45}".prop_map(serde_json::Value::String),
            any::<i64>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ], 0..4), 0usize..20), 0..5),
    ) {
        let dump = Dump {
            format,
            leaf_encoding: enc,
            tree,
            values: values.into_iter().map(|(value, tree_index)| depin_merkle::DumpValue { value, tree_index }).collect(),
        };
        let _ = StandardMerkleTree::load(dump);
    }
}

#[test]
fn swapped_leaf_order_is_not_canonical() {
    // A tree built with JS `sortLeaves: false` is internally consistent but not
    // what `of` produces; load rejects it so a loaded tree always equals `of`.
    let leaves = vec![Leaf::new([1; 32], 1), Leaf::new([2; 32], 2)];
    let mut d = StandardMerkleTree::of(leaves).dump();
    d.tree.swap(1, 2);
    let (a, b) = (d.values[0].tree_index, d.values[1].tree_index);
    d.values[0].tree_index = b;
    d.values[1].tree_index = a;
    let err = StandardMerkleTree::load(d).unwrap_err();
    assert!(
        matches!(err, depin_merkle::MerkleError::NotCanonical { .. }),
        "{err}"
    );
}

#[test]
fn error_messages_say_what_is_wrong() {
    let d = StandardMerkleTree::of(vec![Leaf::new([1; 32], 1)]).dump();
    let mut bad = d.clone();
    bad.values[0].value[1] =
        serde_json::Value::String("340282366920938463463374607431768211456".into());
    assert_eq!(
        StandardMerkleTree::load(bad).unwrap_err().to_string(),
        "value 0 is invalid: amount 340282366920938463463374607431768211456 exceeds the u128 range of claim amounts"
    );
    let mut bad = d.clone();
    bad.values[0].value[1] = serde_json::Value::from(1);
    assert_eq!(
        StandardMerkleTree::load(bad).unwrap_err().to_string(),
        "value 0 is invalid: amount must be a decimal string, got 1"
    );
    let mut bad = d;
    bad.format = "simple-v1".into();
    assert_eq!(
        StandardMerkleTree::load(bad).unwrap_err().to_string(),
        "unknown dump format \"simple-v1\", expected \"standard-v1\""
    );
    assert!(matches!(
        StandardMerkleTree::from_json("[]"),
        Err(depin_merkle::MerkleError::Json(_))
    ));
}
