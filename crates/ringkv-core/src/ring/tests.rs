use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::*;

fn member(id: u64, weight: u32) -> Member {
    Member {
        id: NodeId(id),
        addr: format!("127.0.0.1:{}", 7000 + id % 1000),
        weight,
        status: MemberStatus::Active,
    }
}

/// Node ids as a real cluster would have them: random-looking 64-bit numbers, derived from a
/// counter and a cluster number so the figures are reproducible.
fn node_id(cluster: u64, i: u64) -> u64 {
    digest(&[cluster.to_be_bytes(), i.to_be_bytes()].concat())
}

fn ring_of(cluster: u64, weights: &[u32], vnodes_per_weight: u32) -> Ring {
    let members = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| member(node_id(cluster, i as u64), w))
        .collect();
    Ring::new(RingConfig {
        members,
        buckets: Buckets::default(),
        vnodes_per_weight,
    })
    .expect("valid ring")
}

const KEYS: usize = 100_000;

fn key(i: usize) -> Vec<u8> {
    format!("user{i}").into_bytes()
}

/// Keys per node when each key counts once, for its first home replica.
fn primary_load(ring: &Ring) -> BTreeMap<NodeId, usize> {
    let mut load = BTreeMap::new();
    for i in 0..KEYS {
        let first = ring
            .preference_list(b"default", &key(i))
            .next()
            .expect("non-empty ring");
        *load.entry(first.id).or_insert(0) += 1;
    }
    load
}

/// Keys per node counting every home replica (n = 3): what each node actually stores.
fn replica_load(ring: &Ring) -> BTreeMap<NodeId, usize> {
    let mut load = BTreeMap::new();
    for i in 0..KEYS {
        for m in ring.preference_list(b"default", &key(i)).take(3) {
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

/// Fraction of keys whose first home replica differs between two rings, over the ideal share
/// of the newcomer (1 / members after).
fn moved_over_ideal(before: &Ring, after: &Ring) -> f64 {
    let moved = (0..KEYS)
        .filter(|&i| {
            let a = before
                .preference_list(b"default", &key(i))
                .next()
                .map(|m| m.id);
            let b = after
                .preference_list(b"default", &key(i))
                .next()
                .map(|m| m.id);
            a != b
        })
        .count();
    let ideal = KEYS as f64 / after.members().len() as f64;
    moved as f64 / ideal
}

/// The figures of one cluster: (primary max/mean, replica max/mean, moved/ideal, weight ratio).
fn figures(cluster: u64, vnodes: u32) -> [f64; 4] {
    let ten = ring_of(cluster, &[1; 10], vnodes);
    let eleven = ring_of(cluster, &[1; 11], vnodes);
    let weighted = ring_of(cluster, &[1, 1, 1, 1, 2], vnodes);
    let load = primary_load(&weighted);
    let heavy = load[&NodeId(node_id(cluster, 4))] as f64;
    let light = (0..4)
        .map(|i| load[&NodeId(node_id(cluster, i))])
        .sum::<usize>() as f64
        / 4.0;
    [
        max_over_mean(&primary_load(&ten)),
        max_over_mean(&replica_load(&ten)),
        moved_over_ideal(&ten, &eleven),
        heavy / light,
    ]
}

/// The figures the issue asks for, on 100,000 keys, for one cluster and as the worst over
/// several clusters with other random ids; they chose `DEFAULT_VNODES_PER_WEIGHT`.
/// `cargo test -p ringkv-core figures -- --nocapture` prints them.
#[test]
fn figures_balance_movement_and_weight() {
    const CLUSTERS: u64 = 8;
    for vnodes in [256, DEFAULT_VNODES_PER_WEIGHT] {
        let mut worst = [0.0f64; 4];
        for cluster in 0..CLUSTERS {
            let f = figures(cluster, vnodes);
            if cluster == 0 {
                println!(
                    "vnodes_per_weight={vnodes} cluster 0: max/mean primary={:.3} \
                     replicas(n=3)={:.3}; join 11th moved={:.3}x ideal; weight-2/weight-1={:.3}",
                    f[0], f[1], f[2], f[3]
                );
            }
            worst[0] = worst[0].max(f[0]);
            worst[1] = worst[1].max(f[1]);
            worst[2] = worst[2].max(f[2]);
            worst[3] = worst[3].max((f[3] - 2.0).abs());
        }
        println!(
            "vnodes_per_weight={vnodes} worst of {CLUSTERS} clusters: max/mean primary={:.3} \
             replicas(n=3)={:.3}; moved={:.3}x ideal; |weight ratio - 2|={:.3}",
            worst[0], worst[1], worst[2], worst[3]
        );
        if vnodes == DEFAULT_VNODES_PER_WEIGHT {
            // The thresholds, on the reference cluster.
            let f = figures(0, vnodes);
            assert!(
                f[0] <= 1.10,
                "most loaded node holds {:.3} x the mean",
                f[0]
            );
            assert!(f[2] <= 1.15, "the 11th node moved {:.3} x the ideal", f[2]);
            assert!((f[3] - 2.0).abs() <= 0.1, "weight-2 ratio {:.3}", f[3]);
            // Over other random clusters, primary ownership (sampling noise of random tokens,
            // about 1/sqrt(1024)) can touch 1.10; what a node stores (n = 3) stays well under.
            assert!(
                worst[0] <= 1.12,
                "most loaded node holds {:.3} x the mean",
                worst[0]
            );
            assert!(
                worst[1] <= 1.10,
                "most loaded replica set holds {:.3} x the mean",
                worst[1]
            );
            assert!(worst[2] <= 1.15, "a join moved {:.3} x the ideal", worst[2]);
            assert!(worst[3] <= 0.1, "weight-2 ratio off by {:.3}", worst[3]);
        }
    }
}

#[test]
fn preference_list_lists_every_member_once_home_first() {
    let ring = ring_of(0, &[1, 2, 1, 3, 1], 64);
    let list: Vec<NodeId> = ring.preference_list(b"b", b"k").map(|m| m.id).collect();
    assert_eq!(list.len(), 5);
    assert_eq!(list.iter().collect::<HashSet<_>>().len(), 5);
    let home: Vec<NodeId> = ring.home_replicas("b", b"k").iter().map(|m| m.id).collect();
    assert_eq!(home, list[..3]);
}

#[test]
fn member_order_does_not_change_ring_or_epoch() {
    let a = ring_of(0, &[1, 1, 2], 32);
    let mut config = a.config().clone();
    config.members.reverse();
    let b = Ring::new(config).expect("valid");
    assert_eq!(a.epoch(), b.epoch());
    for i in 0..1000 {
        let x: Vec<_> = a.preference_list(b"", &key(i)).map(|m| m.id).collect();
        let y: Vec<_> = b.preference_list(b"", &key(i)).map(|m| m.id).collect();
        assert_eq!(x, y);
    }
}

#[test]
fn epoch_changes_exactly_when_the_config_changes() {
    let base = ring_of(0, &[1, 1, 1], 32);
    let same = ring_of(0, &[1, 1, 1], 32);
    assert_eq!(base.epoch(), same.epoch());
    type Change = Box<dyn Fn(&mut RingConfig)>;
    let changes: Vec<Change> = vec![
        Box::new(|c| c.members.push(member(99, 1))),
        Box::new(|c| {
            c.members.pop();
        }),
        Box::new(|c| c.members[0].weight = 2),
        Box::new(|c| c.members[0].addr = "127.0.0.1:1".into()),
        Box::new(|c| c.vnodes_per_weight = 33),
        Box::new(|c| c.buckets.default.n = 2),
        Box::new(|c| {
            c.buckets
                .named
                .insert("carts".into(), BucketProps::default());
        }),
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut config = base.config().clone();
        change(&mut config);
        let changed = Ring::new(config).expect("valid");
        assert_ne!(changed.epoch(), base.epoch(), "change {i} kept the epoch");
    }
}

#[test]
fn invalid_configs_are_refused_with_the_reason() {
    let dup = RingConfig {
        members: vec![member(1, 1), member(1, 1)],
        buckets: Buckets::default(),
        vnodes_per_weight: 8,
    };
    assert_eq!(
        Ring::new(dup).expect_err("invalid config"),
        RingError::DuplicateMember(NodeId(1))
    );
    let zero = RingConfig {
        members: vec![member(1, 0)],
        buckets: Buckets::default(),
        vnodes_per_weight: 8,
    };
    assert_eq!(
        Ring::new(zero).expect_err("invalid config"),
        RingError::ZeroWeight(NodeId(1))
    );
    let mut bad_bucket = Buckets::default();
    bad_bucket.default.r = 4;
    let err = Ring::new(RingConfig {
        members: vec![],
        buckets: bad_bucket,
        vnodes_per_weight: 8,
    })
    .expect_err("invalid config");
    assert!(err.to_string().contains("r = 4"), "{err}");
}

#[test]
fn empty_ring_has_an_empty_preference_list() {
    assert_eq!(Ring::empty().preference_list(b"", b"k").count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Adding a member moves a key's first replica only onto the new member, and removing it
    /// moves back exactly those keys: nothing else is reshuffled.
    #[test]
    fn join_moves_keys_only_to_the_new_member(
        ids in prop::collection::btree_set(any::<u64>(), 2..8),
        newcomer in any::<u64>(),
        keys in prop::collection::vec(any::<[u8; 8]>(), 50),
    ) {
        prop_assume!(!ids.contains(&newcomer));
        let members: Vec<Member> = ids.iter().map(|&id| member(id, 1)).collect();
        let before = Ring::new(RingConfig {
            members: members.clone(),
            buckets: Buckets::default(),
            vnodes_per_weight: 16,
        }).expect("valid");
        let mut grown = members;
        grown.push(member(newcomer, 1));
        let after = Ring::new(RingConfig {
            members: grown,
            buckets: Buckets::default(),
            vnodes_per_weight: 16,
        }).expect("valid");
        for k in &keys {
            let a: Vec<NodeId> = before.preference_list(b"", k).map(|m| m.id).collect();
            let b: Vec<NodeId> = after.preference_list(b"", k).map(|m| m.id).collect();
            // The new list is the old one with the newcomer inserted somewhere.
            let without: Vec<NodeId> = b.iter().copied().filter(|id| id.0 != newcomer).collect();
            prop_assert_eq!(&without, &a);
        }
    }

    /// Every walk, from anywhere, meets every member exactly once.
    #[test]
    fn walks_are_permutations_of_the_members(
        weights in prop::collection::vec(1u32..4, 1..40),
        position in any::<u64>(),
    ) {
        let ring = ring_of(0, &weights, 4);
        let ids: Vec<NodeId> = ring.preference_list_at(position).map(|m| m.id).collect();
        prop_assert_eq!(ids.len(), weights.len());
        prop_assert_eq!(ids.iter().collect::<HashSet<_>>().len(), weights.len());
    }
}

#[test]
fn ownership_sums_to_one_and_follows_weight() {
    let ring = ring_of(0, &[1, 1, 2], DEFAULT_VNODES_PER_WEIGHT);
    let shares = ring.ownership();
    let total: f64 = shares.iter().map(|(_, s)| s).sum();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
    let heavy = shares
        .iter()
        .find(|(id, _)| *id == NodeId(node_id(0, 2)))
        .expect("member")
        .1;
    assert!((heavy - 0.5).abs() < 0.03, "weight 2 of 4 owns {heavy}");
    // And it agrees with where keys actually go.
    let load = primary_load(&ring);
    let measured = load[&NodeId(node_id(0, 2))] as f64 / KEYS as f64;
    assert!(
        (measured - heavy).abs() < 0.01,
        "ownership {heavy} vs keys {measured}"
    );
    let single = ring_of(0, &[1], 1);
    assert_eq!(single.ownership()[0].1, 1.0);
}
