//! Choosing the nodes that receive a segment's pieces.
//!
//! Rules (issue 9; Storj's `nodeselection`, research notes §1):
//! - **Distinct operators and distinct subnets**: no two pieces of a segment
//!   on nodes of one operator, nor in one IPv4 /24 or IPv6 /48 (an
//!   IPv4-mapped IPv6 address counts as its IPv4 address). One operator or
//!   one home connection failing then costs at most one piece.
//! - **Weighted** by free space and audit reputation: a node's weight is
//!   `min(free, weight_cap) in MiB × reputation weight`, where the
//!   reputation weight maps the audit score from the disqualification line
//!   (0.96 → 0) to a clean record (1.0 → 1). The cap keeps a node that
//!   claims a huge disk (a cheat the devnet plays) from drawing every piece.
//! - **Unvetted nodes** get `new_node_share_ppm` of the pieces, rounded up or
//!   down at random in proportion (so 5% of 30 = 1.5 is 1 or 2, 2 half the
//!   time), and more only when there are not enough vetted nodes (a young
//!   network, or the devnet, where everyone starts unvetted).
//! - **Deterministic**: the candidates are sorted by node id and all draws
//!   come from ChaCha20 seeded by the caller, so the same seed and the same
//!   candidate set give the same nodes in the same order, whatever order the
//!   candidates came in.
//!
//! Picking one node at a time at random can paint itself into a corner: with
//! nodes A (operator 1, subnet x), B (1, y) and C (2, x), choosing A first
//! leaves nothing, although {B, C} satisfies both rules. So when the weighted
//! draw runs out, the choice is completed by augmenting paths (Kuhn's
//! algorithm on the operator × subnet graph whose edges are nodes), which
//! may swap earlier picks for others and fails only when no set of `total`
//! nodes with distinct operators and subnets exists at all.

use rand::Rng as _;
use rand::SeedableRng as _;
use rand_chacha::ChaCha20Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A node's public key.
pub type NodeId = [u8; 32];
/// An operator's public key.
pub type OperatorId = [u8; 32];

/// The network a node's address belongs to, for the one-piece-per-subnet rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subnet {
    /// An IPv4 /24: the first three bytes.
    V4([u8; 3]),
    /// An IPv6 /48: the first six bytes (a typical site's allocation).
    V6([u8; 6]),
}

impl Subnet {
    pub fn of(address: IpAddr) -> Subnet {
        let v4 = match address {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        };
        match (v4, address) {
            (Some(a), _) => {
                let o = a.octets();
                Subnet::V4([o[0], o[1], o[2]])
            }
            (None, IpAddr::V6(a)) => {
                let mut s = [0u8; 6];
                s.copy_from_slice(&a.octets()[..6]);
                Subnet::V6(s)
            }
            (None, IpAddr::V4(_)) => unreachable!("an IPv4 address is always Some above"),
        }
    }
}

/// A node that could take a piece; the caller has already left out nodes
/// that are disqualified, suspended, exiting or offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub node: NodeId,
    pub operator: OperatorId,
    pub address: IpAddr,
    pub free_bytes: u64,
    /// The audit score in ppm ([`crate::reputation::BetaScore::ppm`]).
    pub audit_score_ppm: u64,
    pub vetted: bool,
}

/// Placement constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacementPolicy {
    /// Share of a segment's pieces for unvetted nodes. Storj uses 1% with
    /// tens of thousands of nodes; with a few hundred, 1% of 30 pieces would
    /// take months to give a new node its 100 vetting audits, so 5%.
    pub new_node_share_ppm: u32,
    /// Free space above this adds no weight.
    pub weight_cap_bytes: u64,
    /// A node with less free space than this (or than the piece) is skipped.
    /// Storj: 5 GB.
    pub min_free_bytes: u64,
}

impl Default for PlacementPolicy {
    fn default() -> PlacementPolicy {
        PlacementPolicy {
            new_node_share_ppm: 50_000,
            weight_cap_bytes: 8_000_000_000_000,
            min_free_bytes: 5_000_000_000,
        }
    }
}

/// Audit score at and below which a node is disqualified (0.96), and so
/// weighs nothing.
const DQ_LINE_PPM: u64 = 960_000;

/// The reputation part of a node's weight, in ppm: 0 at the
/// disqualification line, 10⁶ for a clean record, linear between.
pub fn reputation_weight_ppm(audit_score_ppm: u64) -> u64 {
    audit_score_ppm
        .min(1_000_000)
        .saturating_sub(DQ_LINE_PPM)
        .saturating_mul(1_000_000 / (1_000_000 - DQ_LINE_PPM))
}

fn weight(c: &Candidate, policy: &PlacementPolicy) -> u128 {
    let mib = c.free_bytes.min(policy.weight_cap_bytes) >> 20;
    u128::from(mib) * u128::from(reputation_weight_ppm(c.audit_score_ppm))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("{wanted} nodes on distinct operators and subnets are needed, only {found} exist")]
    NotEnoughNodes { wanted: u16, found: u16 },
    #[error("node {} is listed twice", hex::encode(.0))]
    DuplicateCandidate(NodeId),
}

impl PlacementError {
    pub fn code(&self) -> &'static str {
        match self {
            PlacementError::NotEnoughNodes { .. } => "storage_not_enough_nodes",
            PlacementError::DuplicateCandidate(_) => "storage_duplicate_candidate",
        }
    }
}

/// Picks `total` nodes for a segment whose pieces are `piece_bytes` long.
pub fn place(
    candidates: &[Candidate],
    total: u16,
    piece_bytes: u64,
    policy: &PlacementPolicy,
    seed: [u8; 32],
) -> Result<Vec<NodeId>, PlacementError> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by_key(|c| c.node);
    if let Some(w) = sorted.windows(2).find(|w| w[0].node == w[1].node) {
        return Err(PlacementError::DuplicateCandidate(w[0].node));
    }
    let min_free = policy.min_free_bytes.max(piece_bytes);
    let eligible: Vec<&Candidate> = sorted
        .into_iter()
        .filter(|c| c.free_bytes >= min_free && weight(c, policy) > 0)
        .collect();

    let mut rng = ChaCha20Rng::from_seed(seed);
    let share = u64::from(total) * u64::from(policy.new_node_share_ppm.min(1_000_000));
    let mut unvetted_slots = share / 1_000_000;
    if rng.gen_range(0..1_000_000) < share % 1_000_000 {
        unvetted_slots += 1;
    }
    let total = usize::from(total);
    let mut chosen = Chosen::default();
    let (vetted, unvetted): (Vec<&Candidate>, Vec<&Candidate>) =
        eligible.iter().partition(|c| c.vetted);
    draw(
        &unvetted,
        unvetted_slots as usize,
        &mut chosen,
        policy,
        &mut rng,
    );
    draw(&vetted, total - chosen.len(), &mut chosen, policy, &mut rng);
    // Not enough vetted nodes: unvetted ones fill the rest.
    draw(
        &unvetted,
        total - chosen.len(),
        &mut chosen,
        policy,
        &mut rng,
    );
    if chosen.len() < total {
        complete_by_augmenting_paths(&eligible, total, &mut chosen);
    }
    if chosen.len() < total {
        return Err(PlacementError::NotEnoughNodes {
            wanted: total as u16,
            found: chosen.len() as u16,
        });
    }
    Ok(chosen.nodes.iter().map(|c| c.node).collect())
}

#[derive(Default)]
struct Chosen<'a> {
    nodes: Vec<&'a Candidate>,
    operators: BTreeSet<OperatorId>,
    subnets: BTreeSet<Subnet>,
}

impl<'a> Chosen<'a> {
    fn len(&self) -> usize {
        self.nodes.len()
    }
    fn allows(&self, c: &Candidate) -> bool {
        !self.operators.contains(&c.operator) && !self.subnets.contains(&Subnet::of(c.address))
    }
    fn add(&mut self, c: &'a Candidate) {
        self.operators.insert(c.operator);
        self.subnets.insert(Subnet::of(c.address));
        self.nodes.push(c);
    }
}

/// Draws up to `count` more nodes from `pool`, each with probability in
/// proportion to its weight among those the rules still allow.
fn draw<'a>(
    pool: &[&'a Candidate],
    count: usize,
    chosen: &mut Chosen<'a>,
    policy: &PlacementPolicy,
    rng: &mut ChaCha20Rng,
) {
    for _ in 0..count {
        let open: Vec<(&'a Candidate, u128)> = pool
            .iter()
            .filter(|c| chosen.allows(c))
            .map(|c| (*c, weight(c, policy)))
            .collect();
        let sum: u128 = open.iter().map(|(_, w)| w).sum();
        if sum == 0 {
            return;
        }
        let mut r = rng.gen_range(0..sum);
        for (c, w) in open {
            if r < w {
                chosen.add(c);
                break;
            }
            r -= w;
        }
    }
}

/// Grows the choice to `total` with Kuhn's augmenting paths: operators on
/// one side, subnets on the other, each eligible node an edge. Nodes are
/// tried vetted first, then by id, so the result stays deterministic.
fn complete_by_augmenting_paths<'a>(
    eligible: &[&'a Candidate],
    total: usize,
    chosen: &mut Chosen<'a>,
) {
    let mut order: Vec<&'a Candidate> = eligible.to_vec();
    order.sort_by_key(|c| (!c.vetted, c.node));
    let mut edges: BTreeMap<OperatorId, Vec<&'a Candidate>> = BTreeMap::new();
    for c in &order {
        edges.entry(c.operator).or_default().push(c);
    }
    // The matching: subnet → chosen node, and operator → chosen node.
    let mut by_subnet: BTreeMap<Subnet, &'a Candidate> = chosen
        .nodes
        .iter()
        .map(|c| (Subnet::of(c.address), *c))
        .collect();
    let mut by_operator: BTreeMap<OperatorId, &'a Candidate> =
        chosen.nodes.iter().map(|c| (c.operator, *c)).collect();
    let free_operators: Vec<OperatorId> = edges
        .keys()
        .filter(|o| !by_operator.contains_key(*o))
        .copied()
        .collect();
    for operator in free_operators {
        if by_operator.len() >= total {
            break;
        }
        let mut seen = BTreeSet::new();
        augment(
            operator,
            &edges,
            &mut by_subnet,
            &mut by_operator,
            &mut seen,
        );
    }
    // Rebuild the choice: earlier picks first (in their order), then new ones.
    let kept: BTreeSet<NodeId> = by_operator.values().map(|c| c.node).collect();
    let mut next = Chosen::default();
    for c in &chosen.nodes {
        if kept.contains(&c.node) {
            next.add(c);
        }
    }
    for c in by_operator.values() {
        if !next.nodes.iter().any(|n| n.node == c.node) {
            next.add(c);
        }
    }
    *chosen = next;
}

fn augment<'a>(
    operator: OperatorId,
    edges: &BTreeMap<OperatorId, Vec<&'a Candidate>>,
    by_subnet: &mut BTreeMap<Subnet, &'a Candidate>,
    by_operator: &mut BTreeMap<OperatorId, &'a Candidate>,
    seen: &mut BTreeSet<Subnet>,
) -> bool {
    for c in edges.get(&operator).map(Vec::as_slice).unwrap_or(&[]) {
        let subnet = Subnet::of(c.address);
        if !seen.insert(subnet) {
            continue;
        }
        let holder = by_subnet.get(&subnet).map(|h| h.operator);
        let freed = match holder {
            None => true,
            Some(other) => augment(other, edges, by_subnet, by_operator, seen),
        };
        if freed {
            by_subnet.insert(subnet, c);
            by_operator.insert(operator, c);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn cand(node: u8, operator: u8, address: &str, vetted: bool) -> Candidate {
        Candidate {
            node: [node; 32],
            operator: [operator; 32],
            address: address.parse().unwrap(),
            free_bytes: 100 << 30,
            audit_score_ppm: 1_000_000,
            vetted,
        }
    }

    fn policy() -> PlacementPolicy {
        PlacementPolicy {
            min_free_bytes: 1 << 30,
            ..PlacementPolicy::default()
        }
    }

    #[test]
    fn subnets() {
        let s = |a: &str| Subnet::of(a.parse().unwrap());
        assert_eq!(s("10.1.2.3"), s("10.1.2.250"));
        assert_ne!(s("10.1.2.3"), s("10.1.3.3"));
        assert_eq!(s("::ffff:10.1.2.9"), s("10.1.2.3"));
        assert_eq!(s("2001:db8:1::1"), s("2001:db8:1:ffff::2"));
        assert_ne!(s("2001:db8:1::1"), s("2001:db8:2::1"));
        assert_eq!(s("0.0.0.0"), Subnet::V4([0, 0, 0]));
        assert_eq!(
            Subnet::of(IpAddr::V6(Ipv6Addr::from(u128::MAX))),
            Subnet::V6([0xff; 6])
        );
        assert_eq!(
            Subnet::of(IpAddr::V4(Ipv4Addr::BROADCAST)),
            Subnet::V4([255; 3])
        );
    }

    #[test]
    fn reputation_weights() {
        assert_eq!(reputation_weight_ppm(1_000_000), 1_000_000);
        assert_eq!(reputation_weight_ppm(u64::MAX), 1_000_000);
        assert_eq!(reputation_weight_ppm(980_000), 500_000);
        assert_eq!(reputation_weight_ppm(960_000), 0);
        assert_eq!(reputation_weight_ppm(0), 0);
    }

    #[test]
    fn greedy_dead_end_is_escaped() {
        // A (op 1, net x), B (op 1, net y), C (op 2, net x): only {B, C} works.
        let cs = [
            cand(1, 1, "10.0.0.1", true),
            cand(2, 1, "10.0.1.1", true),
            cand(3, 2, "10.0.0.2", true),
        ];
        for s in 0..50u8 {
            let mut got = place(&cs, 2, 1, &policy(), [s; 32]).unwrap();
            got.sort();
            assert_eq!(got, vec![[2; 32], [3; 32]]);
        }
        assert_eq!(
            place(&cs, 3, 1, &policy(), [0; 32]),
            Err(PlacementError::NotEnoughNodes {
                wanted: 3,
                found: 2
            })
        );
    }

    #[test]
    fn duplicates_small_disks_and_dq_line_are_handled() {
        let a = cand(1, 1, "10.0.0.1", true);
        assert_eq!(
            place(&[a.clone(), a.clone()], 1, 1, &policy(), [0; 32])
                .unwrap_err()
                .code(),
            "storage_duplicate_candidate"
        );
        let mut small = cand(2, 2, "10.0.1.1", true);
        small.free_bytes = (1 << 30) - 1;
        let mut dq = cand(3, 3, "10.0.2.1", true);
        dq.audit_score_ppm = 960_000;
        let got = place(&[a, small, dq], 3, 1, &policy(), [0; 32]);
        assert_eq!(
            got,
            Err(PlacementError::NotEnoughNodes {
                wanted: 3,
                found: 1
            })
        );
        // A piece larger than the free space is not placed there either.
        let big = cand(4, 4, "10.0.3.1", true);
        assert!(place(&[big], 1, 101 << 30, &policy(), [0; 32]).is_err());
        assert_eq!(place(&[], 0, 0, &policy(), [0; 32]), Ok(vec![]));
    }

    #[test]
    fn weight_follows_free_space_up_to_the_cap() {
        let mut heavy = cand(1, 1, "10.0.0.1", true);
        heavy.free_bytes = 900 << 30;
        let light = cand(2, 2, "10.0.1.1", true); // 100 GiB
        let mut heavy_wins = 0;
        for s in 0..1000u32 {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&s.to_le_bytes());
            if place(&[heavy.clone(), light.clone()], 1, 1, &policy(), seed).unwrap()[0] == [1; 32]
            {
                heavy_wins += 1;
            }
        }
        // Expected 900 of 1000.
        assert!((860..=940).contains(&heavy_wins), "{heavy_wins}");
        // Above the cap, a larger claim earns nothing more.
        let capped = PlacementPolicy {
            weight_cap_bytes: 100 << 30,
            ..policy()
        };
        let mut heavy_wins = 0;
        for s in 0..1000u32 {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&s.to_le_bytes());
            if place(&[heavy.clone(), light.clone()], 1, 1, &capped, seed).unwrap()[0] == [1; 32] {
                heavy_wins += 1;
            }
        }
        assert!((440..=560).contains(&heavy_wins), "{heavy_wins}");
    }

    #[test]
    fn unvetted_nodes_get_their_share_and_fill_gaps() {
        let mut cs = Vec::new();
        for i in 0..100u8 {
            cs.push(cand(i, i, &format!("10.0.{i}.1"), i % 2 == 0));
        }
        let mut unvetted_total = 0;
        for s in 0..200u8 {
            let got = place(&cs, 30, 1, &policy(), [s; 32]).unwrap();
            let unvetted = got.iter().filter(|n| n[0] % 2 == 1).count();
            // 5% of 30 = 1.5: one or two each time.
            assert!((1..=2).contains(&unvetted), "{unvetted}");
            unvetted_total += unvetted;
        }
        assert!((260..=340).contains(&unvetted_total), "{unvetted_total}");
        // Only 10 vetted nodes: the other 20 pieces go to unvetted ones.
        let few: Vec<Candidate> = cs
            .iter()
            .filter(|c| c.node[0] < 20 || c.node[0] % 2 == 1)
            .cloned()
            .collect();
        let got = place(&few, 30, 1, &policy(), [1; 32]).unwrap();
        assert_eq!(got.iter().filter(|n| n[0] % 2 == 0).count(), 10);
    }

    /// Largest set with distinct operators and subnets, by brute force.
    fn max_distinct(cs: &[Candidate], min_free: u64) -> usize {
        let ok: Vec<&Candidate> = cs
            .iter()
            .filter(|c| {
                c.free_bytes >= min_free
                    && reputation_weight_ppm(c.audit_score_ppm) > 0
                    && c.free_bytes >> 20 > 0
            })
            .collect();
        let mut best = 0;
        for mask in 0u32..(1 << ok.len()) {
            let set: Vec<&&Candidate> = ok
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, c)| c)
                .collect();
            let ops: BTreeSet<_> = set.iter().map(|c| c.operator).collect();
            let nets: BTreeSet<_> = set.iter().map(|c| Subnet::of(c.address)).collect();
            if ops.len() == set.len() && nets.len() == set.len() {
                best = best.max(set.len());
            }
        }
        best
    }

    fn arb_candidate() -> impl Strategy<Value = Candidate> {
        let addresses = prop_oneof![
            (0u8..3, any::<u8>())
                .prop_map(|(net, host)| IpAddr::V4(Ipv4Addr::new(10, 0, net, host))),
            (0u8..3, any::<u8>()).prop_map(|(net, host)| IpAddr::V6(
                Ipv4Addr::new(10, 0, net, host).to_ipv6_mapped()
            )),
            (0u16..3, any::<u16>()).prop_map(|(net, host)| IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, net, 7, 0, 0, 0, host
            ))),
        ];
        (
            any::<u8>(),
            0u8..5,
            addresses,
            prop_oneof![Just(0u64), Just(1 << 30), Just(u64::MAX), 0u64..(1 << 44)],
            prop_oneof![
                Just(0u64),
                Just(960_000),
                Just(960_001),
                Just(1_000_000),
                Just(u64::MAX),
                0u64..2_000_000
            ],
            any::<bool>(),
        )
            .prop_map(
                |(node, operator, address, free_bytes, audit_score_ppm, vetted)| Candidate {
                    node: [node; 32],
                    operator: [operator; 32],
                    address,
                    free_bytes,
                    audit_score_ppm,
                    vetted,
                },
            )
    }

    proptest! {
        #[test]
        fn placement_keeps_the_rules(
            mut cs in proptest::collection::vec(arb_candidate(), 0..11),
            total in 0u16..7,
            seed in any::<[u8; 32]>(),
            share in prop_oneof![Just(0u32), Just(1_000_000), Just(u32::MAX), 0u32..1_000_000],
        ) {
            cs.sort_by_key(|c| c.node);
            cs.dedup_by_key(|c| c.node);
            let policy = PlacementPolicy { new_node_share_ppm: share, ..policy() };
            let got = place(&cs, total, 1, &policy, seed);
            let max = max_distinct(&cs, policy.min_free_bytes);
            match &got {
                Ok(nodes) => {
                    prop_assert_eq!(nodes.len(), usize::from(total));
                    let picked: Vec<&Candidate> = nodes.iter().map(|n| cs.iter().find(|c| c.node == *n).unwrap()).collect();
                    let ops: BTreeSet<_> = picked.iter().map(|c| c.operator).collect();
                    let nets: BTreeSet<_> = picked.iter().map(|c| Subnet::of(c.address)).collect();
                    let ids: BTreeSet<_> = picked.iter().map(|c| c.node).collect();
                    prop_assert_eq!(ops.len(), nodes.len());
                    prop_assert_eq!(nets.len(), nodes.len());
                    prop_assert_eq!(ids.len(), nodes.len());
                    for c in picked {
                        prop_assert!(c.free_bytes >= policy.min_free_bytes);
                        prop_assert!(reputation_weight_ppm(c.audit_score_ppm) > 0);
                    }
                }
                Err(PlacementError::NotEnoughNodes { wanted, found }) => {
                    prop_assert_eq!(*wanted, total);
                    prop_assert_eq!(usize::from(*found), max);
                }
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
            prop_assert_eq!(got.is_ok(), max >= usize::from(total));
            // The same seed and the same set in another order: the same answer.
            let mut reversed = cs.clone();
            reversed.reverse();
            prop_assert_eq!(place(&reversed, total, 1, &policy, seed), got);
        }
    }
}
