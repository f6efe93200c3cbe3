//! Placement with zones: distinct zones for the homes, fallbacks from zones without a copy,
//! each zone 1/zones of the copies however uneven, and balance within each zone.

use std::collections::{BTreeMap, BTreeSet};

use super::{KEYS, key, member, node_id};
use crate::claim;
use crate::node::{Member, NodeId};
use crate::ring::{DEFAULT_TOKENS_PER_WEIGHT as T, Ring, RingConfig};

fn zoned(id: u64, zone: &str) -> Member {
    Member {
        zone: zone.to_string(),
        ..member(id, 1)
    }
}

/// A cluster grown one join at a time, nodes dealt to zones by `zones[i]`.
fn grown(cluster: u64, zones: &[&str]) -> Vec<Member> {
    let mut members = Vec::new();
    for (i, zone) in zones.iter().enumerate() {
        members = claim::join(&members, zoned(node_id(cluster, i as u64), zone), T).expect("join");
    }
    members
}

/// 3 uneven zones: 2, 3 and 5 nodes.
const UNEVEN: [&str; 10] = ["a", "b", "c", "c", "b", "c", "a", "c", "b", "c"];

fn ring(members: Vec<Member>) -> Ring {
    Ring::new(RingConfig::of(members)).expect("ring")
}

fn zone_of(ring: &Ring, id: NodeId) -> String {
    ring.member(id).expect("member").zone.clone()
}

#[test]
fn homes_span_distinct_zones_and_fallbacks_prefer_zones_without_a_copy() {
    let ring = ring(grown(1, &UNEVEN));
    assert_eq!(ring.zones(), vec!["a", "b", "c"]);
    for i in 0..2_000 {
        let list: Vec<&Member> = ring.preference_list(b"default", &key(i)).collect();
        // Every member once.
        let ids: BTreeSet<NodeId> = list.iter().map(|m| m.id).collect();
        assert_eq!((list.len(), ids.len()), (10, 10), "key {i}");
        // The first three: one per zone, so n=3 homes and n=2 homes (plus the first
        // fallback) span every zone.
        let first: BTreeSet<&str> = list[..3].iter().map(|m| m.zone.as_str()).collect();
        assert_eq!(first.len(), 3, "key {i}: {:?}", &list[..3]);
        // Then the second of each zone, then the third: zone "a" (2 nodes) runs out first.
        let second: BTreeSet<&str> = list[3..6].iter().map(|m| m.zone.as_str()).collect();
        assert_eq!(second.len(), 3, "key {i}");
        let rest: Vec<&str> = list[6..].iter().map(|m| m.zone.as_str()).collect();
        assert!(!rest.contains(&"a"), "key {i}: {rest:?}");
    }
}

#[test]
fn one_zone_places_keys_as_no_zones_do() {
    let plain = grown(2, &[""; 6]);
    let labelled: Vec<Member> = plain
        .iter()
        .map(|m| Member {
            zone: "only".into(),
            ..m.clone()
        })
        .collect();
    let (plain, labelled) = (ring(plain), ring(labelled));
    for i in 0..1_000 {
        let a: Vec<NodeId> = plain.preference_list(b"b", &key(i)).map(|m| m.id).collect();
        let b: Vec<NodeId> = labelled
            .preference_list(b"b", &key(i))
            .map(|m| m.id)
            .collect();
        assert_eq!(a, b);
    }
    // The labels are in the epoch: two rings that name zones differently are not one.
    assert_ne!(plain.epoch(), labelled.epoch());
}

/// Each zone's share of the copies and, within each zone, the most loaded node over the
/// zone's mean, from the exact arcs (`replica_shares`).
fn zone_balance(ring: &Ring, n: usize) -> BTreeMap<String, (f64, f64)> {
    let mut zones: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (id, share) in ring.replica_shares(n) {
        zones.entry(zone_of(ring, id)).or_default().push(share);
    }
    zones
        .into_iter()
        .map(|(zone, shares)| {
            let total: f64 = shares.iter().sum();
            let mean = total / shares.len() as f64;
            let max = shares.iter().cloned().fold(0.0, f64::max);
            (zone, (total / n as f64, max / mean))
        })
        .collect()
}

#[test]
fn uneven_zones_hold_a_third_each_and_balance_within() {
    let mut worst = 0.0f64;
    for cluster in 0..6 {
        let ring = ring(grown(cluster, &UNEVEN));
        for (zone, (share, max_over_mean)) in zone_balance(&ring, 3) {
            assert!(
                (share - 1.0 / 3.0).abs() < 1e-9,
                "cluster {cluster} zone {zone}: {share}"
            );
            worst = worst.max(max_over_mean);
        }
    }
    println!("zones 2/3/5 nodes, n=3: worst max/mean within a zone {worst:.3}");
    assert!(worst <= 1.10, "within-zone max/mean {worst:.3}");
    // The same from keys, as clients place them.
    let ring = ring(grown(0, &UNEVEN));
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..KEYS / 10 {
        for m in ring.preference_list(b"default", &key(i)).take(3) {
            *per_zone.entry(m.zone.clone()).or_default() += 1;
        }
    }
    assert!(per_zone.values().all(|&c| c == KEYS / 10), "{per_zone:?}");
}

#[test]
fn a_join_moves_data_only_within_its_zone() {
    let before = grown(3, &UNEVEN);
    let after = claim::join(&before, zoned(node_id(3, 99), "a"), T).expect("join");
    let (before, after) = (ring(before), ring(after));
    let newcomer = NodeId(node_id(3, 99));
    let mut moved = 0;
    for i in 0..5_000 {
        let homes = |ring: &Ring| -> BTreeSet<NodeId> {
            ring.home_replicas("default", &key(i))
                .iter()
                .map(|m| m.id)
                .collect()
        };
        let (a, b) = (homes(&before), homes(&after));
        // Only zone a's copy changes hands, and only to the newcomer.
        for gone in a.difference(&b) {
            assert_eq!(zone_of(&before, *gone), "a", "key {i}");
            moved += 1;
        }
        for new in b.difference(&a) {
            assert_eq!(*new, newcomer, "key {i}");
        }
    }
    // About a third of zone a's copies (it had 2 nodes, now 3): 5,000 / 3.
    assert!((1_400..1_950).contains(&moved), "{moved} copies moved");
    // Zone a now has 3 nodes and still holds a third.
    let balance = zone_balance(&after, 3);
    assert!((balance["a"].0 - 1.0 / 3.0).abs() < 1e-9);
    assert!(balance["a"].1 <= 1.10, "{balance:?}");
}

#[test]
fn moving_a_member_to_another_zone_rebalances_both() {
    let members = grown(4, &UNEVEN);
    let moving = members
        .iter()
        .find(|m| m.zone == "c")
        .expect("a node in c")
        .id;
    let moved = claim::rezone(&members, moving, "a", T).expect("rezone");
    let ring = ring(moved);
    assert_eq!(zone_of(&ring, moving), "a");
    let balance = zone_balance(&ring, 3);
    for (zone, (share, max_over_mean)) in &balance {
        assert!((share - 1.0 / 3.0).abs() < 1e-9, "{zone}: {share}");
        assert!(*max_over_mean <= 1.10, "{zone}: {max_over_mean}");
    }
    // The last member of a zone may move away: the zone is gone.
    let two = grown(5, &["a", "b", "b"]);
    let lone = two.iter().find(|m| m.zone == "a").expect("a").id;
    let one_zone = claim::rezone(&two, lone, "b", T).expect("rezone");
    assert_eq!(ring_zones(&one_zone), vec!["b"]);
    // And so may the last member of the last zone.
    assert_eq!(
        claim::leave(&two, lone).map(|m| ring_zones(&m)),
        Ok(vec!["b".to_string()])
    );
}

fn ring_zones(members: &[Member]) -> Vec<String> {
    let mut zones: Vec<String> = members.iter().map(|m| m.zone.clone()).collect();
    zones.dedup();
    zones.sort();
    zones.dedup();
    zones
}

#[test]
fn fewer_zones_than_copies_spread_the_copies_as_evenly_as_they_can() {
    let ring = ring(grown(6, &["a", "b", "a", "b", "a", "b"]));
    for i in 0..2_000 {
        let homes = ring.home_replicas("default", &key(i));
        let in_a = homes.iter().filter(|m| m.zone == "a").count();
        assert!(in_a == 1 || in_a == 2, "key {i}: {in_a} of 3 in a");
    }
    // n=5 on zones of 1, 2 and 2 nodes: 1 + 2 + 2.
    let small = ring_with_n(grown(7, &["a", "b", "c", "b", "c"]), 5);
    for i in 0..500 {
        let zones: Vec<String> = small
            .home_replicas("default", &key(i))
            .iter()
            .map(|m| m.zone.clone())
            .collect();
        assert_eq!(zones.len(), 5);
        assert_eq!(zones.iter().filter(|z| *z == "a").count(), 1, "{zones:?}");
    }
}

fn ring_with_n(members: Vec<Member>, n: u8) -> Ring {
    let mut config = RingConfig::of(members);
    config.buckets.default.n = n;
    config.buckets.default.r = 1;
    config.buckets.default.w = 1;
    Ring::new(config).expect("ring")
}

#[test]
fn turning_zones_on_is_one_planned_transfer() {
    use crate::layout::{Change, Layout, LayoutError};
    let mut layout = Layout::default();
    let founders: Vec<Member> = (0..6).map(|i| member(node_id(8, i), 1)).collect();
    layout.found(&founders).expect("found");
    let ring_version = layout.ring_version;
    for (m, zone) in founders.iter().zip(["a", "b", "c", "a", "b", "c"]) {
        layout
            .stage(Change::Zone {
                id: m.id,
                zone: zone.into(),
            })
            .expect("stage");
    }
    assert_eq!(
        layout.stage(Change::Zone {
            id: NodeId(12345),
            zone: "a".into()
        }),
        Err(LayoutError::Claim(claim::ClaimError::NotMember(NodeId(
            12345
        ))))
    );
    assert!(matches!(
        claim::rezone(&layout.plan().expect("plan"), founders[0].id, "a", T),
        Err(claim::ClaimError::SameZone { .. })
    ));
    let mut bad = layout.clone();
    bad.staged.clear();
    assert!(matches!(
        bad.stage(Change::Zone {
            id: founders[0].id,
            zone: "rack 1".into()
        }),
        Err(LayoutError::BadZone(_))
    ));
    layout.commit().expect("commit");
    let transfer = layout.transition.as_ref().expect("a transfer");
    assert!(transfer.previous.iter().all(|m| m.zone.is_empty()));
    assert!(layout.ring_version > ring_version);
    let ring = ring(layout.members.clone());
    assert_eq!(ring.zones(), vec!["a", "b", "c"]);
    for (zone, (share, max_over_mean)) in zone_balance(&ring, 3) {
        assert!((share - 1.0 / 3.0).abs() < 1e-9, "{zone}: {share}");
        assert!(max_over_mean <= 1.10, "{zone}: {max_over_mean}");
    }
}

#[test]
fn ownership_is_each_members_share_of_its_zone() {
    let ring = ring(grown(9, &UNEVEN));
    let mut per_zone: BTreeMap<String, f64> = BTreeMap::new();
    for (id, share) in ring.ownership() {
        *per_zone.entry(zone_of(&ring, id)).or_default() += share;
    }
    for (zone, total) in per_zone {
        assert!((total - 1.0).abs() < 1e-9, "zone {zone}: {total}");
    }
    // With n = zones, what a member stores is its share of its zone's ring.
    let stored: BTreeMap<NodeId, f64> = ring.replica_shares(3).into_iter().collect();
    for (id, share) in ring.ownership() {
        assert!(
            (stored[&id] - share).abs() < 1e-9,
            "{id}: {share} vs {}",
            stored[&id]
        );
    }
}

#[test]
fn zones_reach_only_processes_that_know_them_and_label_every_member() {
    use crate::layout::{Change, Layout, LayoutError};
    use crate::wire::ZONES_PROTOCOL_VERSION as Z;
    let mut plain = Layout::default();
    let founders: Vec<Member> = (0..3).map(|i| member(node_id(10, i), 1)).collect();
    plain.found(&founders).expect("found");
    let mut zoned = plain.clone();
    for (m, zone) in founders.iter().zip(["a", "b", "c"]) {
        zoned
            .stage(Change::Zone {
                id: m.id,
                zone: zone.into(),
            })
            .expect("stage");
    }
    // Bringing zones in: every holder must speak the zones protocol.
    assert_eq!(zoned.check_zone_readers(&plain, |_| Some(Some(Z))), Ok(()));
    let old = founders[1].id;
    let speaks = |v: Option<u32>| move |id: NodeId| Some(if id == old { v } else { Some(Z) });
    for version in [None, Some(Z - 1)] {
        assert_eq!(
            zoned.check_zone_readers(&plain, speaks(version)),
            Err(LayoutError::ZonesUnknown {
                node: old,
                speaks: version
            })
        );
    }
    // A node gossip has not heard from yet is not taken for one that knows zones.
    assert_eq!(
        zoned.check_zone_readers(&plain, |id| (id != old).then_some(Some(Z))),
        Err(LayoutError::ZonesUnheard { node: old })
    );
    // A layout without zones reaches anyone.
    assert_eq!(plain.check_zone_readers(&plain, |_| Some(None)), Ok(()));

    // Half-labelled members are refused at commit; all of them labelled commit.
    let mut half = plain.clone();
    half.stage(Change::Zone {
        id: founders[0].id,
        zone: "a".into(),
    })
    .expect("stage");
    assert!(matches!(
        half.commit(),
        Err(LayoutError::ZonesIncomplete { unlabelled }) if unlabelled.len() == 2
    ));
    zoned.commit().expect("commit");

    // Once zones are in, only the holders a change adds are checked: a joining node must
    // know zones (and have one), removals and aborts add nobody.
    let joiner = node_id(10, 9);
    let mut joined = zoned.clone();
    joined
        .stage(Change::Join {
            id: NodeId(joiner),
            addr: "127.0.0.1:9".into(),
            weight: 1,
            zone: "a".into(),
        })
        .expect("stage");
    let only_joiner_old = |id: NodeId| Some((id != NodeId(joiner)).then_some(Z));
    assert!(matches!(
        joined.check_zone_readers(&zoned, only_joiner_old),
        Err(LayoutError::ZonesUnknown { node, .. }) if node == NodeId(joiner)
    ));
    assert_eq!(
        joined.check_zone_readers(&zoned, |id| Some((id == NodeId(joiner)).then_some(Z))),
        Ok(())
    );
    let mut unlabelled = zoned.clone();
    unlabelled.transition = None; // as once settled
    unlabelled
        .stage(Change::Join {
            id: NodeId(joiner),
            addr: "127.0.0.1:9".into(),
            weight: 1,
            zone: String::new(),
        })
        .expect("stage");
    assert!(matches!(
        unlabelled.commit(),
        Err(LayoutError::ZonesIncomplete { .. })
    ));
    let mut removed = zoned.clone();
    removed.transition = None;
    let before = removed.clone();
    removed.remove(founders[2].id).expect("remove");
    assert_eq!(removed.check_zone_readers(&before, |_| Some(None)), Ok(()));
}

/// A bucket's default time to live reaches only processes that know expiry: an older one
/// would refuse the table, or keep the bucket's values for ever.
#[test]
fn a_bucket_ttl_reaches_only_processes_that_know_expiry() {
    use crate::bucket::{BucketProps, Buckets};
    use crate::layout::{Layout, LayoutError};
    use crate::wire::EXPIRY_PROTOCOL_VERSION as E;
    let mut plain = Layout::default();
    let founders: Vec<Member> = (0..3).map(|i| member(node_id(11, i), 1)).collect();
    plain.found(&founders).expect("found");
    let mut expiring = plain.clone();
    let sessions = BucketProps {
        ttl_ms: Some(1_800_000),
        ..BucketProps::default()
    };
    expiring
        .set_bucket("sessions", sessions, true, &Buckets::default())
        .expect("bucket");
    assert!(expiring.has_expiry() && !plain.has_expiry());
    assert_eq!(expiring.check_readers(&plain, |_| Some(Some(E))), Ok(()));
    let old = founders[2].id;
    for version in [None, Some(E - 1)] {
        assert_eq!(
            expiring.check_readers(&plain, |id| Some(if id == old { version } else { Some(E) })),
            Err(LayoutError::ExpiryUnknown {
                node: old,
                speaks: version
            })
        );
    }
    assert_eq!(
        expiring.check_readers(&plain, |id| (id != old).then_some(Some(E))),
        Err(LayoutError::ExpiryUnheard { node: old })
    );
    // A zero time to live is no time to live: refused.
    let zero = BucketProps {
        ttl_ms: Some(0),
        ..BucketProps::default()
    };
    assert!(
        plain
            .clone()
            .set_bucket("bad", zero, true, &Buckets::default())
            .is_err()
    );
}
