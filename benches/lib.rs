//! Fixtures for the micro-benchmarks in `core.rs`, kept here so they are compiled (and
//! checked) with the rest of the workspace.

use bytes::Bytes;
use ringkv_core::wire::{ClientFrame, Request, RequestFrame};
use ringkv_core::{Member, NodeId, Ring, RingConfig, RingEpoch, SiblingSet, VersionVector};

/// The members of a cluster of `nodes` nodes with weights cycling through `weights`, with
/// their tokens allocated (`tokens_per_weight` per unit of weight) as a founded cluster's.
pub fn members(nodes: u64, weights: &[u32], tokens_per_weight: u32) -> Vec<Member> {
    let members: Vec<Member> = (1..=nodes)
        .map(|i| Member {
            id: NodeId(ringkv_core::hash::digest(&i.to_be_bytes())),
            addr: format!("10.{}.{}.{}:7400", i / 65536, (i / 256) % 256, i % 256),
            weight: weights[(i as usize) % weights.len()],
            tokens: Vec::new(),
            zone: String::new(),
        })
        .collect();
    ringkv_core::claim::found(&members, tokens_per_weight).expect("valid members")
}

/// A ring of `nodes` members of weight 1 with `tokens_per_weight` tokens each.
pub fn ring(nodes: u64, tokens_per_weight: u32) -> Ring {
    Ring::new(RingConfig::of(members(nodes, &[1], tokens_per_weight))).expect("valid ring")
}

/// Two replicas' states of one key, each with three concurrent siblings (two shared, one
/// of its own), as after a partition.
pub fn three_sibling_states() -> (SiblingSet, SiblingSet) {
    let value = |s: &str| Some(Bytes::copy_from_slice(s.as_bytes()));
    let mut base = SiblingSet::new();
    let empty = VersionVector::new();
    base.stamp(NodeId(1).into(), &empty, value("a"), 1, None)
        .expect("stamp");
    base.stamp(NodeId(2).into(), &empty, value("b"), 2, None)
        .expect("stamp");
    let mut left = base.clone();
    let mut right = base;
    left.stamp(NodeId(1).into(), &empty, value("left"), 3, None)
        .expect("stamp");
    right
        .stamp(NodeId(3).into(), &empty, value("right"), 4, None)
        .expect("stamp");
    (left, right)
}

/// A put of a 1 KiB value, as a client sends it.
pub fn put_frame() -> ClientFrame {
    ClientFrame::Request(RequestFrame {
        id: 7,
        epoch: RingEpoch {
            version: 42,
            settings: 0,
            digest: 42,
        },
        body: Request::Put {
            bucket: "default".into(),
            key: Bytes::from_static(b"user:1234567"),
            context: Some(
                [(NodeId(1), 3), (NodeId(2), 5), (NodeId(3), 1)]
                    .into_iter()
                    .collect(),
            ),
            value: Some(Bytes::from(vec![0x5a; 1024])),
            overwrite: false,
            write_id: Some(99),
            hint: None,
            sync: false,
            defer_sync: false,
            ttl_ms: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_what_the_benchmarks_claim() {
        assert_eq!(ring(100, 256).token_count(), 25_600);
        let (l, r) = three_sibling_states();
        assert_eq!((l.live_count(), r.live_count()), (3, 3));
        let mut merged = l.clone();
        merged.merge(&r, ringkv_core::ConflictPolicy::Siblings);
        assert_eq!(merged.live_count(), 4);
    }
}
