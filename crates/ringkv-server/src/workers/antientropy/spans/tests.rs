use std::sync::Arc;

use bytes::Bytes;
use ringkv_core::{NodeId, Ring, SiblingSet, VersionVector};

use super::*;
use crate::storage::digests::settle_classes;
use crate::storage::{MemoryStore, Record};
use crate::workers::antientropy::test_ring;

/// Four members, and with `joining` a fifth one's join committed (a transfer under way).
fn ring(joining: bool) -> Ring {
    test_ring::ring(&[1, 2, 3, 4], joining.then_some(5))
}

fn state(value: &str) -> SiblingSet {
    let mut s = SiblingSet::new();
    s.stamp(
        NodeId(1).into(),
        &VersionVector::new(),
        Some(Bytes::copy_from_slice(value.as_bytes())),
        1,
        None,
    )
    .expect("stamp");
    s
}

/// Node 1's store, holding every key it is a home of (under either member list).
fn store_of_node_1(ring: &Ring) -> Arc<dyn Store> {
    let store = MemoryStore::new(NodeId(1));
    settle_classes(&store, Classes::of(&ring.config().buckets)).expect("settle");
    for i in 0..3000 {
        let key = format!("k{i}");
        let homes = ring.home_replicas("b", key.as_bytes());
        let before = ring.previous_home_replicas("b", key.as_bytes());
        if homes.iter().chain(&before).any(|m| m.id == NodeId(1)) {
            let record = Record::new(state(&key));
            store.put("b", key.as_bytes(), &record).expect("put");
        }
    }
    Arc::new(store)
}

/// The summary of a span must be exactly what its key list adds up to: the tables and the
/// exact per-key check agree, on a settled ring and during a transfer (keys in transit left
/// out of both).
#[test]
fn a_span_summary_is_the_sum_of_its_key_list() {
    for joining in [false, true] {
        let ring = ring(joining);
        let store = store_of_node_1(&ring);
        for peer in [2, 3, 4, 5] {
            let peer = NodeId(peer);
            let fragments = shared_fragments(&ring, NodeId(1), peer);
            check_spans(&ring, &fragments).expect("fragments are spans");
            let mut spans = fragments.clone();
            for f in &fragments {
                spans.extend(split(*f, 7));
            }
            let sums = summaries(&store, &ring, NodeId(1), peer, &spans).expect("summaries");
            let mut listed = 0;
            for (span, sum) in spans.iter().zip(&sums) {
                let (keys, _) =
                    keys(&store, &ring, NodeId(1), peer, &[*span], usize::MAX).expect("keys");
                let mut hash = 0;
                for (bucket, key, state_digest) in &keys {
                    let entry = crate::storage::digests::IndexEntry {
                        position: 0,
                        bucket: bucket.clone(),
                        key: key.to_vec(),
                        digest: *state_digest,
                        class: 0,
                    };
                    hash ^= entry.key_digest();
                }
                assert_eq!(
                    (sum.hash, sum.keys),
                    (hash, keys.len() as u64),
                    "joining {joining}, peer {peer}, span {span:x?}"
                );
                listed += keys.len();
            }
            if peer == NodeId(5) {
                // Node 5 is a member only with the join, and every key it will hold is in
                // transit to it until the transfer ends: nothing to compare yet.
                assert_eq!(listed, 0, "joining {joining}");
            } else {
                assert!(listed > 0, "joining {joining}: peer {peer} shares keys");
            }
        }
    }
}

/// During a transfer the keys moving are not compared, and the others are.
#[test]
fn during_a_transfer_keys_in_transit_are_left_to_it() {
    let ring = ring(true);
    let store = store_of_node_1(&ring);
    let spans = shared_fragments(&ring, NodeId(1), NodeId(2));
    let (listed, _) = keys(&store, &ring, NodeId(1), NodeId(2), &spans, usize::MAX).expect("keys");
    for (_, key, _) in &listed {
        let now: Vec<_> = ring.home_replicas("b", key).iter().map(|m| m.id).collect();
        let mut before: Vec<_> = ring
            .previous_home_replicas("b", key)
            .iter()
            .map(|m| m.id)
            .collect();
        let mut sorted = now.clone();
        sorted.sort_unstable();
        before.sort_unstable();
        assert_eq!(sorted, before, "{key:?} is in transit");
        assert!(now.contains(&NodeId(1)) && now.contains(&NodeId(2)));
    }
    assert!(!listed.is_empty());
}

#[test]
fn spans_split_evenly_and_cover_exactly() {
    for (span, parts) in [
        ((0, u64::MAX), 32),
        ((5, 5), 32),
        ((10, 12), 32),
        ((1 << 40, (1 << 41) + 17), 7),
    ] {
        let pieces = split(span, parts);
        assert_eq!(pieces.first().map(|p| p.0), Some(span.0));
        assert_eq!(pieces.last().map(|p| p.1), Some(span.1));
        for w in pieces.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0, "{span:?}: contiguous");
        }
        assert!(pieces.len() as u64 <= parts);
    }
}

#[test]
fn a_peer_span_must_lie_in_one_fragment() {
    let ring = ring(false);
    let ends = ring.fragment_ends();
    assert!(check_spans(&ring, &[(ends[0] + 1, ends[1])]).is_ok());
    assert!(check_spans(&ring, &[(0, ends[0])]).is_ok());
    assert!(
        check_spans(&ring, &[(ends[0], ends[1])]).is_err(),
        "crosses"
    );
    assert!(
        check_spans(&ring, &[(0, u64::MAX)]).is_err(),
        "the whole ring"
    );
    assert!(check_spans(&ring, &[(9, 3)]).is_err(), "empty");
    let tail = (ends[ends.len() - 1].saturating_add(1), u64::MAX);
    assert!(check_spans(&ring, &[tail]).is_ok());
    // In ring order, without repeats or overlaps: a peer cannot ask for one span many times.
    let first = (ends[0] + 1, ends[1]);
    assert!(check_spans(&ring, &[(0, ends[0]), first]).is_ok());
    assert!(check_spans(&ring, &[first, first]).is_err(), "repeated");
    assert!(
        check_spans(&ring, &[first, (0, ends[0])]).is_err(),
        "out of order"
    );
    assert!(
        check_spans(&ring, &[(ends[0] + 1, ends[0] + 5), (ends[0] + 5, ends[1])]).is_err(),
        "overlapping"
    );
}

/// An answer stops after the span that passes the byte budget, and always covers one span.
#[test]
fn a_key_list_stops_at_its_budget_after_whole_spans() {
    let ring = ring(false);
    let store = store_of_node_1(&ring);
    let spans = shared_fragments(&ring, NodeId(1), NodeId(2));
    let (all, listed) = keys(&store, &ring, NodeId(1), NodeId(2), &spans, usize::MAX).expect("all");
    assert_eq!(listed, spans.len());
    let (some, listed) = keys(&store, &ring, NodeId(1), NodeId(2), &spans, 1).expect("one");
    assert_eq!(listed, 1, "one span, however small the budget");
    let (first, _) =
        keys(&store, &ring, NodeId(1), NodeId(2), &spans[..1], usize::MAX).expect("first");
    assert_eq!(some, first);
    assert!(some.len() < all.len());
}
