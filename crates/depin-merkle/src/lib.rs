//! The per-epoch claim tree: an exact port of OpenZeppelin's `StandardMerkleTree`
//! (`@openzeppelin/merkle-tree` v1.x) for leaves of type `["bytes32", "uint256"]`.
//!
//! # Why an exact copy
//!
//! DESIGN invariant 6: a claim is `(account public key, cumulative amount)` and the
//! epoch's claim root must be checkable by *anyone*, with tools we do not control.
//! The de-facto standard for that on EVM chains is OpenZeppelin's library together
//! with `MerkleProof.verify` in OpenZeppelin Contracts, which is what every
//! off-the-shelf "merkle distributor" contract uses. By matching it bit for bit we
//! get three things for free:
//!
//! * any EVM distributor contract can pay out a claim from our root and proof;
//! * the JavaScript library can `StandardMerkleTree.load()` our [`Dump`] JSON and
//!   re-derive every proof, so operators can audit a claim file without our code;
//! * our output is checked against the reference implementation itself: a committed
//!   test vector produced by the JS library (`tools/oz-merkle/make-vector.mjs`) and a
//!   test that feeds a large dump of ours to `tools/oz-merkle/verify.mjs`.
//!
//! The rules, confirmed against `src/{standard,core,merkletree,hashes}.ts` of
//! `@openzeppelin/merkle-tree@1.0.8`:
//!
//! * leaf hash = `keccak256(keccak256(abi.encode(bytes32 account, uint256 amount)))`
//!   (the double hash keeps a 64-byte leaf from ever being mistaken for an internal
//!   node);
//! * internal node = `keccak256(min(a, b) ‖ max(a, b))`: children are sorted, so a
//!   proof is a plain list of siblings with no left/right flags;
//! * `of` with default options sorts the leaf hashes **ascending** (stable, so equal
//!   leaves keep insertion order) and lays the tree out as a flat array of
//!   `2n − 1` nodes, root at index 0, children of `i` at `2i + 1` and `2i + 2`, and
//!   the sorted leaves at the *end in reverse* (the smallest hash is the last
//!   element);
//! * `dump()` is `{format: "standard-v1", leafEncoding, tree, values: [{value,
//!   treeIndex}]}` with values in insertion order, hashes as lowercase `0x` hex and
//!   (in our dumps) `bytes32` as lowercase `0x` hex and `uint256` as a decimal
//!   string.
//!
//! # The empty tree
//!
//! The JS library throws on zero leaves, but the network needs a defined root for an
//! epoch in which nobody has anything to claim (the first epochs of a new network).
//! We define: `StandardMerkleTree::of(vec![])` has **root `0x00…00`**, no leaves, no
//! proofs, and dumps as `tree: []`, `values: []`, which [`StandardMerkleTree::load`]
//! accepts. The zero root is safe to publish on chain: a proof would need a
//! keccak-256 output equal to zero, so nothing can ever be claimed against it.
//! `tools/oz-merkle/verify.mjs` recognises exactly this shape and reports the same
//! zero root.
//!
//! # Usage
//!
//! ```
//! use depin_merkle::{Leaf, StandardMerkleTree, to_hex, verify};
//!
//! let tree = StandardMerkleTree::of(vec![Leaf::new([1; 32], 5), Leaf::new([2; 32], 7)]);
//! let i = tree.find(&[2; 32]).unwrap();
//! // What a claimant submits on chain: (account, amount, proof) against the root.
//! assert!(verify(&tree.root(), &tree.leaves()[i], &tree.proof(i)));
//! // The claim file is the JS dump; it loads back to the same tree.
//! let again = StandardMerkleTree::from_json(&tree.to_json()).unwrap();
//! assert_eq!(to_hex(&again.root()), to_hex(&tree.root()));
//! ```
//!
//! [`StandardMerkleTree::load`] is deliberately strict: it accepts exactly what
//! [`StandardMerkleTree::dump`] writes (lowercase hex, decimal amounts that fit a
//! `u128`, leaves in `of` order, every leaf owned by one value), so a loaded tree
//! always equals `of` of its leaves and re-dumps byte-identically.
//!
//! # Performance
//!
//! Building hashes every leaf twice and every internal node once, nothing more; the
//! only allocations are the node array, the value → tree-index map and one
//! temporary `(hash, index)` vector for sorting. The account index behind
//! [`StandardMerkleTree::find`] is built lazily on first use.

mod dump;

pub use dump::{Dump, DumpValue, MerkleError};

use sha3::{Digest, Keccak256};
use std::fmt;
use std::sync::OnceLock;

/// A 32-byte keccak-256 digest: a leaf hash, an internal node or a root.
pub type Hash = [u8; 32];

/// The root of the empty tree (see the module docs).
pub const EMPTY_ROOT: Hash = [0; 32];

/// The OpenZeppelin leaf encoding this crate implements.
pub const LEAF_ENCODING: [&str; 2] = ["bytes32", "uint256"];

/// The `format` field of a dump.
pub const FORMAT: &str = "standard-v1";

/// One claim: ABI type `(bytes32, uint256)`.
///
/// `amount` is cumulative base units; it is a `u128` because per-epoch amounts are
/// `u64` and cumulative sums must not overflow, while the on-chain type is
/// `uint256` (the upper 16 bytes of the encoding are always zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Leaf {
    pub account: [u8; 32],
    pub amount: u128,
}

impl Leaf {
    pub fn new(account: [u8; 32], amount: u128) -> Self {
        Self { account, amount }
    }

    /// A claim for a depin public key (the account is the raw 32 key bytes).
    pub fn for_key(key: &depin_core::PublicKey, amount: u128) -> Self {
        Self {
            account: key.0,
            amount,
        }
    }
}

/// `keccak256(keccak256(abi.encode(account, amount)))`.
pub fn leaf_hash(leaf: &Leaf) -> Hash {
    let mut encoded = [0u8; 64];
    encoded[..32].copy_from_slice(&leaf.account);
    // uint256 big-endian: a u128 fills the low 16 bytes, the high 16 stay zero.
    encoded[48..].copy_from_slice(&leaf.amount.to_be_bytes());
    let inner: Hash = Keccak256::digest(encoded).into();
    Keccak256::digest(inner).into()
}

/// OpenZeppelin's commutative node hash: `keccak256(sorted(a, b))`.
fn node_hash(a: &Hash, b: &Hash) -> Hash {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    Keccak256::new()
        .chain_update(lo)
        .chain_update(hi)
        .finalize()
        .into()
}

/// Checks a proof the way `MerkleProof.verify` (OpenZeppelin Contracts) and
/// `StandardMerkleTree.verify` do: fold the siblings into the leaf hash with the
/// commutative node hash and compare with `root`.
pub fn verify(root: &Hash, leaf: &Leaf, proof: &[Hash]) -> bool {
    let computed = proof
        .iter()
        .fold(leaf_hash(leaf), |acc, sibling| node_hash(&acc, sibling));
    &computed == root
}

/// `0x` followed by 64 lowercase hex digits, as the JS library prints hashes.
pub fn to_hex(h: &Hash) -> String {
    let mut s = String::with_capacity(66);
    s.push_str("0x");
    s.push_str(&hex::encode(h));
    s
}

/// Parses the strict form written by [`to_hex`]: `0x` + 64 lowercase hex digits.
pub fn parse_hex(s: &str) -> Result<Hash, MerkleError> {
    dump::parse_hash(s).map_err(|reason| MerkleError::BadHash {
        text: s.chars().take(80).collect(),
        reason,
    })
}

/// An OpenZeppelin `StandardMerkleTree` over `(bytes32, uint256)` leaves.
///
/// Invariant: `tree` is exactly what `StandardMerkleTree.of(values, ["bytes32",
/// "uint256"])` would produce in JS for `leaves` (or empty for no leaves), and
/// `tree_index[v]` is the position of leaf `v`'s hash in `tree`.
#[derive(Clone)]
pub struct StandardMerkleTree {
    leaves: Vec<Leaf>,
    tree: Vec<Hash>,
    tree_index: Vec<usize>,
    /// Value indices sorted by `(account, value index)`; built on first `find`.
    by_account: OnceLock<Vec<usize>>,
}

impl StandardMerkleTree {
    /// Builds the tree exactly like `StandardMerkleTree.of(values, ["bytes32",
    /// "uint256"])` with default options (`sortLeaves: true`). Zero leaves give
    /// the empty tree with root [`EMPTY_ROOT`].
    pub fn of(leaves: Vec<Leaf>) -> Self {
        let n = leaves.len();
        if n == 0 {
            return Self::from_parts(leaves, Vec::new(), Vec::new());
        }
        // Sorting (hash, value index) pairs is the JS stable sort by hash: ties
        // (identical leaves) stay in insertion order.
        let mut sorted: Vec<(Hash, usize)> = leaves
            .iter()
            .enumerate()
            .map(|(v, leaf)| (leaf_hash(leaf), v))
            .collect();
        sorted.sort_unstable();

        let len = 2 * n - 1;
        let mut tree = vec![[0u8; 32]; len];
        let mut tree_index = vec![0usize; n];
        for (leaf_pos, (hash, value_index)) in sorted.into_iter().enumerate() {
            let at = len - 1 - leaf_pos;
            tree[at] = hash;
            tree_index[value_index] = at;
        }
        for i in (0..n - 1).rev() {
            tree[i] = node_hash(&tree[2 * i + 1], &tree[2 * i + 2]);
        }
        Self::from_parts(leaves, tree, tree_index)
    }

    fn from_parts(leaves: Vec<Leaf>, tree: Vec<Hash>, tree_index: Vec<usize>) -> Self {
        debug_assert_eq!(leaves.len(), tree_index.len());
        debug_assert_eq!(tree.len(), (2 * leaves.len()).saturating_sub(1));
        Self {
            leaves,
            tree,
            tree_index,
            by_account: OnceLock::new(),
        }
    }

    /// The root, or [`EMPTY_ROOT`] for the empty tree.
    pub fn root(&self) -> Hash {
        self.tree.first().copied().unwrap_or(EMPTY_ROOT)
    }

    /// Number of leaves (values).
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The leaves in insertion order; position = value index.
    pub fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    /// The proof for the leaf with this value index: siblings from the leaf up to
    /// (not including) the root, identical to JS `tree.getProof(valueIndex)`.
    ///
    /// # Panics
    /// If `value_index >= self.len()`. Use [`Self::try_proof`] for untrusted input.
    pub fn proof(&self, value_index: usize) -> Vec<Hash> {
        match self.try_proof(value_index) {
            Some(proof) => proof,
            None => panic!(
                "value index {value_index} out of bounds for a tree of {} leaves",
                self.len()
            ),
        }
    }

    /// [`Self::proof`], or `None` if `value_index` is out of bounds.
    pub fn try_proof(&self, value_index: usize) -> Option<Vec<Hash>> {
        let mut i = *self.tree_index.get(value_index)?;
        // Depth of a leaf in a complete tree is at most log2(len) + 1.
        let mut proof =
            Vec::with_capacity(usize::BITS as usize - self.tree.len().leading_zeros() as usize);
        while i > 0 {
            let sibling = if i % 2 == 1 { i + 1 } else { i - 1 };
            proof.push(self.tree[sibling]);
            i = (i - 1) / 2;
        }
        Some(proof)
    }

    /// The value index of the first leaf (in insertion order) with this account.
    ///
    /// The first call builds a sorted index (O(n log n)); later calls are
    /// O(log n), so looking up every account of a large epoch stays cheap.
    pub fn find(&self, account: &[u8; 32]) -> Option<usize> {
        let index = self.by_account.get_or_init(|| {
            let mut idx: Vec<usize> = (0..self.leaves.len()).collect();
            // Stable sort by account keeps equal accounts in value-index order.
            idx.sort_by(|&a, &b| self.leaves[a].account.cmp(&self.leaves[b].account));
            idx
        });
        let first = index.partition_point(|&v| self.leaves[v].account < *account);
        index
            .get(first)
            .copied()
            .filter(|&v| &self.leaves[v].account == account)
    }

    /// The JS `dump()`: serialising it with `serde_json` gives exactly the object
    /// `StandardMerkleTree.dump()` returns for the same values.
    pub fn dump(&self) -> Dump {
        Dump {
            format: FORMAT.to_owned(),
            leaf_encoding: LEAF_ENCODING.iter().map(|s| (*s).to_owned()).collect(),
            tree: self.tree.iter().map(to_hex).collect(),
            values: self
                .leaves
                .iter()
                .zip(&self.tree_index)
                .map(|(leaf, &tree_index)| DumpValue {
                    value: vec![
                        serde_json::Value::String(format!("0x{}", hex::encode(leaf.account))),
                        serde_json::Value::String(leaf.amount.to_string()),
                    ],
                    tree_index,
                })
                .collect(),
        }
    }

    /// Loads a dump, accepting exactly what [`Self::dump`] writes (so a loaded
    /// tree re-dumps byte-identically) and rejecting anything else with the first
    /// problem found: wrong format or leaf encoding, malformed hashes or values,
    /// a tree shape that is not `2n − 1` nodes for `n` values, a value that is not
    /// at a leaf or shares one, a leaf or internal node that does not hash
    /// correctly, or leaves not in the order `of` puts them (e.g. a JS tree built
    /// with `sortLeaves: false`). Never panics.
    pub fn load(dump: Dump) -> Result<Self, MerkleError> {
        dump::load(dump)
    }

    /// Exactly `serde_json::to_string(&self.dump())`, which is exactly JS
    /// `JSON.stringify(tree.dump())`, but written directly: a million-leaf dump
    /// would otherwise allocate three million small strings on the way.
    pub fn to_json(&self) -> String {
        fn push_hex(out: &mut String, bytes: &[u8; 32]) {
            let mut buf = [0u8; 64];
            hex::encode_to_slice(bytes, &mut buf).expect("64-byte buffer for 32 bytes");
            out.push_str("\"0x");
            out.push_str(std::str::from_utf8(&buf).expect("hex is ASCII"));
            out.push('"');
        }
        use std::fmt::Write as _;
        let mut out = String::with_capacity(96 + self.tree.len() * 69 + self.leaves.len() * 140);
        out.push_str(r#"{"format":"standard-v1","leafEncoding":["bytes32","uint256"],"tree":["#);
        for (i, node) in self.tree.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_hex(&mut out, node);
        }
        out.push_str(r#"],"values":["#);
        for (i, (leaf, tree_index)) in self.leaves.iter().zip(&self.tree_index).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"value":["#);
            push_hex(&mut out, &leaf.account);
            let _ = write!(out, r#","{}"],"treeIndex":{}}}"#, leaf.amount, tree_index);
        }
        out.push_str("]}");
        out
    }

    /// Parses dump JSON and [`Self::load`]s it.
    pub fn from_json(json: &str) -> Result<Self, MerkleError> {
        let dump: Dump =
            serde_json::from_str(json).map_err(|e| MerkleError::Json(e.to_string()))?;
        Self::load(dump)
    }
}

impl PartialEq for StandardMerkleTree {
    fn eq(&self, other: &Self) -> bool {
        // The tree and index are functions of the leaves, but comparing them too
        // keeps the check honest for loaded trees.
        self.leaves == other.leaves
            && self.tree == other.tree
            && self.tree_index == other.tree_index
    }
}

impl Eq for StandardMerkleTree {}

impl fmt::Debug for StandardMerkleTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A million-leaf tree must not be printed node by node.
        f.debug_struct("StandardMerkleTree")
            .field("root", &to_hex(&self.root()))
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tree_has_zero_root_and_round_trips() {
        let t = StandardMerkleTree::of(vec![]);
        assert_eq!(t.root(), EMPTY_ROOT);
        assert!(t.is_empty());
        assert_eq!(t.find(&[0; 32]), None);
        assert_eq!(t.try_proof(0), None);
        let json = t.to_json();
        assert_eq!(
            json,
            r#"{"format":"standard-v1","leafEncoding":["bytes32","uint256"],"tree":[],"values":[]}"#
        );
        assert_eq!(StandardMerkleTree::from_json(&json).unwrap(), t);
    }

    #[test]
    fn single_leaf_root_is_its_hash() {
        let leaf = Leaf::new([7; 32], 5);
        let t = StandardMerkleTree::of(vec![leaf]);
        assert_eq!(t.root(), leaf_hash(&leaf));
        assert!(t.proof(0).is_empty());
        assert!(verify(&t.root(), &leaf, &[]));
    }

    #[test]
    fn find_returns_first_insertion() {
        let t = StandardMerkleTree::of(vec![
            Leaf::new([2; 32], 1),
            Leaf::new([1; 32], 9),
            Leaf::new([2; 32], 3),
            Leaf::new([2; 32], 1),
        ]);
        assert_eq!(t.find(&[2; 32]), Some(0));
        assert_eq!(t.find(&[1; 32]), Some(1));
        assert_eq!(t.find(&[3; 32]), None);
    }

    #[test]
    fn hex_is_strict() {
        let h = [0xab; 32];
        assert_eq!(parse_hex(&to_hex(&h)).unwrap(), h);
        assert!(parse_hex(&to_hex(&h).to_uppercase()).is_err());
        assert!(parse_hex(&hex::encode(h)).is_err());
        assert!(parse_hex("0x").is_err());
        assert!(parse_hex("0xé").is_err());
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn proof_out_of_bounds_panics_with_message() {
        StandardMerkleTree::of(vec![Leaf::new([0; 32], 0)]).proof(1);
    }
}
