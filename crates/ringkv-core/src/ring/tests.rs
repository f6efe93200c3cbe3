use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::claim;
use crate::hash::digest;

fn member(id: u64, weight: u32) -> Member {
    Member {
        id: NodeId(id),
        addr: format!("127.0.0.1:{}", 7000 + id % 1000),
        weight,
        tokens: Vec::new(),
        zone: String::new(),
    }
}

/// Node ids as a real cluster would have them: random-looking 64-bit numbers, derived from a
/// counter and a cluster number so the figures are reproducible.
fn node_id(cluster: u64, i: u64) -> u64 {
    digest(&[cluster.to_be_bytes(), i.to_be_bytes()].concat())
}

fn members_of(cluster: u64, weights: &[u32], tokens_per_weight: u32) -> Vec<Member> {
    let members: Vec<Member> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| member(node_id(cluster, i as u64), w))
        .collect();
    claim::found(&members, tokens_per_weight).expect("found")
}

fn ring_of(cluster: u64, weights: &[u32], tokens_per_weight: u32) -> Ring {
    Ring::new(RingConfig::of(members_of(
        cluster,
        weights,
        tokens_per_weight,
    )))
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
        Box::new(|c| {
            let mut m = member(99, 1);
            m.tokens = vec![99];
            c.members.push(m)
        }),
        Box::new(|c| {
            c.members.pop();
        }),
        Box::new(|c| c.members[0].weight = 2),
        Box::new(|c| c.members[0].addr = "127.0.0.1:1".into()),
        Box::new(|c| c.members[0].tokens[0] ^= 1),
        Box::new(|c| c.version += 1),
        Box::new(|c| c.settings_version += 1),
        Box::new(|c| {
            c.transition = Some(Transition {
                id: 2,
                phase: Phase::Streaming,
                previous: c.members.clone(),
                removed: Vec::new(),
                previous_buckets: None,
            })
        }),
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
    let with_tokens = |id, weight| Member {
        tokens: vec![id],
        ..member(id, weight)
    };
    let dup = RingConfig::of(vec![with_tokens(1, 1), with_tokens(1, 1)]);
    assert_eq!(
        Ring::new(dup).expect_err("invalid config"),
        RingError::DuplicateMember(NodeId(1))
    );
    let zero = RingConfig::of(vec![with_tokens(1, 0)]);
    assert_eq!(
        Ring::new(zero).expect_err("invalid config"),
        RingError::ZeroWeight(NodeId(1))
    );
    let none = RingConfig::of(vec![member(1, 1)]);
    assert_eq!(
        Ring::new(none).expect_err("invalid config"),
        RingError::NoTokens(NodeId(1))
    );
    let mut bad_bucket = RingConfig::of(vec![]);
    bad_bucket.buckets.default.r = 4;
    let err = Ring::new(bad_bucket).expect_err("invalid config");
    assert!(err.to_string().contains("r = 4"), "{err}");
}

#[test]
fn a_transfer_routes_reads_by_its_phase_and_writes_to_both_rings() {
    let before = members_of(5, &[1, 1, 1], 16);
    let after = claim::join(&before, member(node_id(5, 3), 1), 16).expect("join");
    let mut config = RingConfig::of(after);
    config.transition = Some(Transition {
        id: 2,
        phase: Phase::Streaming,
        previous: before.clone(),
        removed: Vec::new(),
        previous_buckets: None,
    });
    let streaming = Ring::new(config.clone()).expect("valid");
    let old = Ring::new(RingConfig::of(before)).expect("valid");
    let mut moved = 0;
    for i in 0..2000 {
        let k = key(i);
        let route = streaming.route("default", &k);
        let reads: Vec<NodeId> = route.preference.take(3).map(|m| m.id).collect();
        let old_homes: Vec<NodeId> = old
            .home_replicas("default", &k)
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(reads, old_homes, "streaming reads the previous homes");
        let new_homes: Vec<NodeId> = streaming
            .home_replicas("default", &k)
            .iter()
            .map(|m| m.id)
            .collect();
        let extra: Vec<NodeId> = route.extra_homes.iter().map(|m| m.id).collect();
        let expected: Vec<NodeId> = new_homes
            .iter()
            .copied()
            .filter(|id| !old_homes.contains(id))
            .collect();
        assert_eq!(extra, expected, "writes also reach the new homes");
        moved += usize::from(!extra.is_empty());
    }
    assert!(moved > 0, "some keys gain the newcomer");
    if let Some(t) = &mut config.transition {
        t.phase = Phase::Switching;
    }
    let switching = Ring::new(config).expect("valid");
    for i in 0..200 {
        let k = key(i);
        let reads: Vec<NodeId> = switching
            .route("default", &k)
            .preference
            .take(3)
            .map(|m| m.id)
            .collect();
        let homes: Vec<NodeId> = switching
            .home_replicas("default", &k)
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(reads, homes, "switching reads the new homes");
    }
    assert_eq!(switching.all_members().len(), 4);
}

#[test]
fn during_a_leave_the_leaving_node_is_still_involved_and_found() {
    let before = members_of(6, &[1, 1, 1, 1], 16);
    let leaving = before[0].id;
    let after = claim::leave(&before, leaving).expect("leave");
    let mut config = RingConfig::of(after);
    config.transition = Some(Transition {
        id: 2,
        phase: Phase::Streaming,
        previous: before,
        removed: Vec::new(),
        previous_buckets: None,
    });
    let ring = Ring::new(config).expect("valid");
    assert_eq!(ring.members().len(), 3);
    let all: Vec<NodeId> = ring.all_members().iter().map(|m| m.id).collect();
    assert_eq!(all.len(), 4, "the leaving node must stream what it holds");
    assert!(all.contains(&leaving));
    assert!(ring.member(leaving).is_some());
    assert!(ring.members().iter().all(|m| m.id != leaving));
}

#[test]
fn keys_of_one_range_share_their_preference_list() {
    let ring = ring_of(7, &[1, 2, 1], 16);
    assert_eq!(Ring::empty().range_of(42), None);
    let mut ranges = std::collections::BTreeMap::new();
    for i in 0..5000 {
        let k = key(i);
        let position = crate::hash::key_position(b"default", &k);
        let range = ring.range_of(position).expect("a range");
        let list: Vec<NodeId> = ring.preference_list(b"default", &k).map(|m| m.id).collect();
        assert_eq!(
            ranges.entry(range).or_insert_with(|| list.clone()),
            &list,
            "two keys of range {range:x} route differently"
        );
    }
    assert!(ranges.len() > 32, "keys spread over many ranges");
}

#[test]
fn empty_ring_has_an_empty_preference_list() {
    assert_eq!(Ring::empty().preference_list(b"", b"k").count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

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
    let ring = ring_of(0, &[1, 1, 2], DEFAULT_TOKENS_PER_WEIGHT);
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
    let replicas: f64 = ring_of(0, &[1, 1, 1, 1, 2], 16)
        .replica_shares(3)
        .iter()
        .map(|(_, s)| s)
        .sum();
    assert!((replicas - 3.0).abs() < 1e-9, "{replicas}");
}

#[test]
fn a_transfer_of_n_reads_the_old_homes_until_it_switches_and_writes_the_new_ones_too() {
    let members = members_of(6, &[1, 1, 1, 1, 1], 16);
    let mut before = crate::bucket::Buckets::default();
    before.default.n = 2;
    before.default.r = 1;
    before.default.w = 1;
    let mut config = RingConfig::of(members.clone());
    config.transition = Some(Transition {
        id: 7,
        phase: Phase::Streaming,
        previous: members,
        removed: Vec::new(),
        previous_buckets: Some(before),
    });
    let streaming = Ring::new(config.clone()).expect("valid");
    config.transition.as_mut().expect("transfer").phase = Phase::Switching;
    let switching = Ring::new(config).expect("valid");
    for i in 0..500 {
        let k = key(i);
        let list: Vec<NodeId> = streaming
            .preference_list(b"default", &k)
            .take(3)
            .map(|m| m.id)
            .collect();
        // Streaming: reads ask the two old homes; the third (added) home takes writes only.
        let route = streaming.route("default", &k);
        assert_eq!(route.n, 2);
        let homes: Vec<NodeId> = route.preference.take(route.n).map(|m| m.id).collect();
        assert_eq!(homes, list[..2]);
        let extra: Vec<NodeId> = route.extra_homes.iter().map(|m| m.id).collect();
        assert_eq!(extra, list[2..]);
        assert_eq!(route.leaving, 0, "raising n drops no home");
        // Default quorums: the previous side's, chosen for its two homes.
        assert_eq!(streaming.reading_bucket("default").r, 1);
        assert_eq!(streaming.previous_home_replicas("default", &k).len(), 2);
        // Switching: the three new homes.
        let route = switching.route("default", &k);
        assert_eq!(route.n, 3);
        assert_eq!(switching.reading_bucket("default").r, 2);
        let homes: Vec<NodeId> = route.preference.take(route.n).map(|m| m.id).collect();
        assert_eq!(homes, list);
        assert!(route.extra_homes.is_empty());
        assert_eq!(route.leaving, 0);
    }
}

#[test]
fn a_write_while_n_is_lowered_needs_acknowledgements_from_the_homes_that_stay() {
    let members = members_of(7, &[1, 1, 1, 1], 16);
    let mut before = crate::bucket::Buckets::default();
    before.default.n = 3;
    let mut config = RingConfig::of(members.clone());
    config.buckets.default = crate::bucket::BucketProps {
        n: 1,
        r: 1,
        w: 1,
        ..Default::default()
    };
    config.transition = Some(Transition {
        id: 8,
        phase: Phase::Streaming,
        previous: members,
        removed: Vec::new(),
        previous_buckets: Some(before),
    });
    let streaming = Ring::new(config.clone()).expect("valid");
    config.transition.as_mut().expect("transfer").phase = Phase::Switching;
    let switching = Ring::new(config).expect("valid");
    for i in 0..200 {
        let k = key(i);
        let route = streaming.route("default", &k);
        assert_eq!((route.n, route.extra_homes.len(), route.leaving), (3, 0, 2));
        let route = switching.route("default", &k);
        assert_eq!((route.n, route.extra_homes.len(), route.leaving), (1, 2, 2));
    }
}

mod zones;
