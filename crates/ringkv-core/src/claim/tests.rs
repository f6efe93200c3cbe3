use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::hash::digest;
use crate::ring::{DEFAULT_TOKENS_PER_WEIGHT, Ring, RingConfig};

const T: u32 = DEFAULT_TOKENS_PER_WEIGHT;

fn member(id: u64, weight: u32) -> Member {
    Member {
        id: NodeId(id),
        addr: format!("127.0.0.1:{}", 7000 + id % 1000),
        weight,
        tokens: Vec::new(),
        zone: String::new(),
    }
}

/// Node ids as a real cluster would have them: random-looking, reproducible.
fn node_id(cluster: u64, i: u64) -> u64 {
    digest(&[cluster.to_be_bytes(), i.to_be_bytes()].concat())
}

fn ring(members: &[Member]) -> Ring {
    Ring::new(RingConfig::of(members.to_vec())).expect("valid ring")
}

/// A cluster grown the way operators grow one: the first node founds it, the others join one
/// at a time.
fn grown(cluster: u64, weights: &[u32]) -> Vec<Member> {
    let mut members = found(&[member(node_id(cluster, 0), weights[0])], T).expect("found");
    for (i, &w) in weights.iter().enumerate().skip(1) {
        members = join(&members, member(node_id(cluster, i as u64), w), T).expect("join");
    }
    members
}

const KEYS: usize = 100_000;

fn key(i: usize) -> Vec<u8> {
    format!("user{i}").into_bytes()
}

/// Keys per node, counting each key for its first `n` home replicas.
fn load(ring: &Ring, n: usize) -> BTreeMap<NodeId, usize> {
    let mut load = BTreeMap::new();
    for i in 0..KEYS {
        for m in ring.preference_list(b"default", &key(i)).take(n) {
            *load.entry(m.id).or_insert(0) += 1;
        }
    }
    load
}

fn max_over_mean(load: &BTreeMap<NodeId, usize>) -> f64 {
    let max = *load.values().max().expect("loaded") as f64;
    let mean = load.values().sum::<usize>() as f64 / load.len() as f64;
    max / mean
}

/// Key copies that must move (a node gains a key it did not hold) between two rings, with
/// `n` replicas, over the ideal: the share of all copies one node of the larger ring holds.
fn moved_over_ideal(before: &Ring, after: &Ring, n: usize) -> f64 {
    let mut moved = 0;
    for i in 0..KEYS {
        let a: BTreeSet<NodeId> = before
            .preference_list(b"default", &key(i))
            .take(n)
            .map(|m| m.id)
            .collect();
        moved += after
            .preference_list(b"default", &key(i))
            .take(n)
            .filter(|m| !a.contains(&m.id))
            .count();
    }
    let members = before.members().len().max(after.members().len());
    let ideal = (KEYS * n) as f64 / members as f64;
    moved as f64 / ideal
}

/// The ring figures the issues ask for, on 100,000 keys, printed by
/// `cargo test -p ringkv-core figures -- --nocapture`.
#[test]
fn figures_balance_movement_and_weight() {
    const CLUSTERS: u64 = 8;
    let mut worst = [0.0f64; 6];
    for cluster in 0..CLUSTERS {
        let ten = grown(cluster, &[1; 10]);
        let ten_ring = ring(&ten);
        let eleven = join(&ten, member(node_id(cluster, 10), 1), T).expect("join");
        let five = grown(cluster, &[1; 5]);
        let six = join(&five, member(node_id(cluster, 5), 1), T).expect("join");
        let weighted =
            join(&grown(cluster, &[1; 4]), member(node_id(cluster, 9), 2), T).expect("join");
        let weighted_load = load(&ring(&weighted), 1);
        let heavy = weighted_load[&NodeId(node_id(cluster, 9))] as f64;
        let light = (0..4)
            .map(|i| weighted_load[&NodeId(node_id(cluster, i))])
            .sum::<usize>() as f64
            / 4.0;
        let left = leave(&ten, NodeId(node_id(cluster, 3))).expect("leave");
        let f = [
            max_over_mean(&load(&ten_ring, 1)),
            max_over_mean(&load(&ten_ring, 3)),
            moved_over_ideal(&ten_ring, &ring(&eleven), 1),
            moved_over_ideal(&ring(&five), &ring(&six), 3),
            heavy / light,
            moved_over_ideal(&ten_ring, &ring(&left), 3),
        ];
        if cluster == 0 {
            println!(
                "tokens/weight={T} cluster 0: 10 nodes max/mean primary={:.3} replicas(n=3)={:.3}; \
                 11th join moved={:.3}x ideal; 5->6 moved (n=3)={:.3}x ideal; \
                 weight-2/weight-1={:.3}; a leave moved (n=3)={:.3}x ideal",
                f[0], f[1], f[2], f[3], f[4], f[5]
            );
        }
        for (i, (w, v)) in worst.iter_mut().zip(f).enumerate() {
            *w = w.max(if i == 4 { (v - 2.0).abs() } else { v });
        }
    }
    println!(
        "tokens/weight={T} worst of {CLUSTERS}: primary={:.3} replicas={:.3} 11th moved={:.3} \
         5->6 moved={:.3} |weight ratio - 2|={:.3} leave moved={:.3}",
        worst[0], worst[1], worst[2], worst[3], worst[4], worst[5]
    );
    assert!(worst[0] <= 1.05, "primary max/mean {:.3}", worst[0]);
    assert!(worst[1] <= 1.20, "replica max/mean {:.3}", worst[1]);
    assert!(worst[2] <= 1.10, "11th join moved {:.3} x ideal", worst[2]);
    assert!(worst[3] <= 1.15, "5->6 moved {:.3} x ideal", worst[3]);
    assert!(worst[4] <= 0.15, "weight-2 ratio off by {:.3}", worst[4]);
    assert!(worst[5] <= 1.25, "a leave moved {:.3} x ideal", worst[5]);
}

#[test]
fn a_founded_cluster_splits_the_ring_exactly_by_weight() {
    let members: Vec<Member> = [1, 2, 1, 4]
        .iter()
        .enumerate()
        .map(|(i, &w)| member(node_id(7, i as u64), w))
        .collect();
    let founded = found(&members, T).expect("found");
    let shares = ring(&founded).ownership();
    for (m, (id, share)) in founded.iter().zip(shares) {
        assert_eq!(m.id, id);
        assert_eq!(m.tokens.len() as u32, m.weight * T);
        let expected = f64::from(m.weight) / 8.0;
        assert!(
            (share - expected).abs() < 1e-9,
            "{id}: {share} vs {expected}"
        );
    }
}

#[test]
fn changes_are_refused_with_the_reason() {
    let three = grown(1, &[1, 1, 1]);
    let first = three[0].id;
    assert_eq!(
        join(&three, member(first.0, 1), T),
        Err(ClaimError::AlreadyMember(first))
    );
    assert_eq!(join(&three, member(5, 0), T), Err(ClaimError::ZeroWeight));
    assert_eq!(
        leave(&three, NodeId(5)),
        Err(ClaimError::NotMember(NodeId(5)))
    );
    let one = grown(1, &[1]);
    assert_eq!(
        leave(&one, one[0].id),
        Err(ClaimError::LastMember(one[0].id))
    );
    assert_eq!(reweight(&three, first, 0, T), Err(ClaimError::ZeroWeight));
}

#[test]
fn reweighting_follows_the_new_weight_both_ways() {
    let members = grown(2, &[1, 1, 1, 1]);
    let id = members[0].id;
    let heavier = reweight(&members, id, 2, T).expect("reweight");
    let share = |ms: &[Member]| {
        ring(ms)
            .ownership()
            .into_iter()
            .find(|(m, _)| *m == id)
            .map(|(_, s)| s)
            .expect("member")
    };
    assert!((share(&heavier) - 0.4).abs() < 0.02, "{}", share(&heavier));
    let back = reweight(&heavier, id, 1, T).expect("reweight");
    assert!((share(&back) - 0.25).abs() < 0.03, "{}", share(&back));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A join moves a key's first replica only onto the newcomer; a leave moves only the
    /// leaver's keys. Nothing else is reshuffled.
    #[test]
    fn changes_move_only_what_they_must(
        weights in prop::collection::vec(1u32..4, 2..8),
        joining_weight in 1u32..4,
        leaver in any::<prop::sample::Index>(),
        keys in prop::collection::vec(any::<[u8; 8]>(), 100),
    ) {
        let members = grown(3, &weights);
        let newcomer = NodeId(node_id(3, 99));
        let joined = join(&members, member(newcomer.0, joining_weight), T).expect("join");
        let leaving = members[leaver.index(members.len())].id;
        let left = leave(&members, leaving).expect("leave");
        let (before, after_join, after_leave) = (ring(&members), ring(&joined), ring(&left));
        for k in &keys {
            let a = before.preference_list(b"", k).next().map(|m| m.id);
            let b = after_join.preference_list(b"", k).next().map(|m| m.id);
            let c = after_leave.preference_list(b"", k).next().map(|m| m.id);
            prop_assert!(a == b || b == Some(newcomer));
            prop_assert!(a == c || a == Some(leaving));
        }
        prop_assert!(left.iter().all(|m| m.id != leaving));
    }

    /// The allocator is a function: the same inputs give the same tokens.
    #[test]
    fn allocation_is_deterministic(weights in prop::collection::vec(1u32..4, 1..6)) {
        prop_assert_eq!(grown(4, &weights), grown(4, &weights));
    }
}
