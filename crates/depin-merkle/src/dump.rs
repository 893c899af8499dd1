//! The `standard-v1` JSON dump and its strict loader.

use crate::{FORMAT, Hash, LEAF_ENCODING, Leaf, StandardMerkleTree, leaf_hash, node_hash};
use serde::{Deserialize, Serialize};

/// The JSON shape of OpenZeppelin's `StandardMerkleTree.dump()`. Field order
/// matches the JS object, so `serde_json::to_string` equals `JSON.stringify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dump {
    pub format: String,
    #[serde(rename = "leafEncoding")]
    pub leaf_encoding: Vec<String>,
    /// Every node, root first, as `0x` lowercase hex.
    pub tree: Vec<String>,
    /// One entry per leaf, in insertion (value index) order.
    pub values: Vec<DumpValue>,
}

/// One `{ value, treeIndex }` entry of a dump.
///
/// `value` is kept as raw JSON so [`StandardMerkleTree::load`] can say precisely
/// what is wrong with a foreign dump instead of failing inside serde. Our dumps
/// write `["0x<64 lowercase hex>", "<decimal amount>"]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpValue {
    pub value: Vec<serde_json::Value>,
    #[serde(rename = "treeIndex")]
    pub tree_index: usize,
}

/// Why a dump (or a hash string) was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("dump is not valid JSON for a standard-v1 tree: {0}")]
    Json(String),
    #[error("unknown dump format {0:?}, expected \"standard-v1\"")]
    UnknownFormat(String),
    #[error("unsupported leaf encoding {0:?}, expected [\"bytes32\", \"uint256\"]")]
    UnsupportedLeafEncoding(Vec<String>),
    #[error("invalid hash {text:?}: {reason}")]
    BadHash { text: String, reason: &'static str },
    #[error("tree node {index} is not a hash: {reason}")]
    BadNode { index: usize, reason: &'static str },
    #[error("a tree of {nodes} nodes is not a complete tree of leaves (needs 2n - 1 nodes)")]
    BadShape { nodes: usize },
    #[error("tree has {leaves} leaves but the dump lists {values} values")]
    LeafCountMismatch { leaves: usize, values: usize },
    #[error("value {index} is invalid: {reason}")]
    BadValue { index: usize, reason: String },
    #[error("value {value_index} points at tree index {tree_index}, which is not a leaf")]
    TreeIndexNotALeaf {
        value_index: usize,
        tree_index: usize,
    },
    #[error(
        "value {value_index} points at tree index {tree_index}, which another value already uses"
    )]
    DuplicateTreeIndex {
        value_index: usize,
        tree_index: usize,
    },
    #[error("value {value_index} does not hash to the leaf at tree index {tree_index}")]
    LeafHashMismatch {
        value_index: usize,
        tree_index: usize,
    },
    #[error("tree node {index} is not the hash of its children")]
    NodeHashMismatch { index: usize },
    #[error(
        "leaves are not in StandardMerkleTree.of order at tree index {tree_index} \
         (built with sortLeaves: false, or edited?)"
    )]
    NotCanonical { tree_index: usize },
}

/// `0x` + 64 lowercase hex digits, nothing else.
pub(crate) fn parse_hash(s: &str) -> Result<Hash, &'static str> {
    let digits = s.strip_prefix("0x").ok_or("must start with 0x")?;
    if digits.len() != 64 {
        return Err("must have exactly 64 hex digits after 0x");
    }
    if !digits
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err("must be lowercase hex");
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).map_err(|_| "must be lowercase hex")?;
    Ok(out)
}

/// A uint256 as written by `dump()`: a canonical decimal string (no sign, no
/// leading zeros) that fits our `u128` amounts.
fn parse_amount(v: &serde_json::Value) -> Result<u128, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("amount must be a decimal string, got {}", brief(v)))?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("amount {:?} is not a decimal integer", truncate(s)));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!("amount {:?} has leading zeros", truncate(s)));
    }
    s.parse::<u128>().map_err(|_| {
        format!(
            "amount {} exceeds the u128 range of claim amounts",
            truncate(s)
        )
    })
}

fn parse_leaf(value: &[serde_json::Value]) -> Result<Leaf, String> {
    let [account, amount] = value else {
        return Err(format!(
            "expected [bytes32, uint256], got {} elements",
            value.len()
        ));
    };
    let account = match account.as_str() {
        Some(s) => parse_hash(s).map_err(|r| format!("account (bytes32) {r}"))?,
        None => {
            return Err(format!(
                "account (bytes32) must be a hex string, got {}",
                brief(account)
            ));
        }
    };
    Ok(Leaf {
        account,
        amount: parse_amount(amount)?,
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn brief(v: &serde_json::Value) -> String {
    truncate(&v.to_string())
}

pub(crate) fn load(dump: Dump) -> Result<StandardMerkleTree, MerkleError> {
    if dump.format != FORMAT {
        return Err(MerkleError::UnknownFormat(truncate(&dump.format)));
    }
    if dump.leaf_encoding.len() != LEAF_ENCODING.len()
        || dump
            .leaf_encoding
            .iter()
            .zip(LEAF_ENCODING)
            .any(|(a, b)| a != b)
    {
        return Err(MerkleError::UnsupportedLeafEncoding(
            dump.leaf_encoding
                .iter()
                .take(8)
                .map(|s| truncate(s))
                .collect(),
        ));
    }

    let tree = dump
        .tree
        .iter()
        .enumerate()
        .map(|(index, s)| parse_hash(s).map_err(|reason| MerkleError::BadNode { index, reason }))
        .collect::<Result<Vec<Hash>, _>>()?;
    let len = tree.len();
    if len % 2 == 0 && len != 0 {
        return Err(MerkleError::BadShape { nodes: len });
    }
    let n = len.div_ceil(2);
    if dump.values.len() != n {
        return Err(MerkleError::LeafCountMismatch {
            leaves: n,
            values: dump.values.len(),
        });
    }

    let mut leaves = Vec::with_capacity(n);
    let mut tree_index = Vec::with_capacity(n);
    // owner[leaf_pos] = value index; leaf_pos = len - 1 - tree index, as in `of`.
    let mut owner = vec![usize::MAX; n];
    for (value_index, entry) in dump.values.iter().enumerate() {
        let leaf = parse_leaf(&entry.value).map_err(|reason| MerkleError::BadValue {
            index: value_index,
            reason,
        })?;
        let at = entry.tree_index;
        // Leaves occupy indices n-1 ..= len-1 of a 2n-1 node tree.
        if at >= len || at + 1 < n {
            return Err(MerkleError::TreeIndexNotALeaf {
                value_index,
                tree_index: at,
            });
        }
        let slot = &mut owner[len - 1 - at];
        if *slot != usize::MAX {
            return Err(MerkleError::DuplicateTreeIndex {
                value_index,
                tree_index: at,
            });
        }
        *slot = value_index;
        if leaf_hash(&leaf) != tree[at] {
            return Err(MerkleError::LeafHashMismatch {
                value_index,
                tree_index: at,
            });
        }
        leaves.push(leaf);
        tree_index.push(at);
    }
    // n values at n distinct leaf slots: every leaf is owned by exactly one value.

    for index in (0..n.saturating_sub(1)).rev() {
        if tree[index] != node_hash(&tree[2 * index + 1], &tree[2 * index + 2]) {
            return Err(MerkleError::NodeHashMismatch { index });
        }
    }

    // `of` places (hash, value index) in strictly ascending order from the end.
    for leaf_pos in 1..n {
        let (at, prev_at) = (len - 1 - leaf_pos, len - leaf_pos);
        if (tree[prev_at], owner[leaf_pos - 1]) >= (tree[at], owner[leaf_pos]) {
            return Err(MerkleError::NotCanonical { tree_index: at });
        }
    }

    Ok(StandardMerkleTree::from_parts(leaves, tree, tree_index))
}
