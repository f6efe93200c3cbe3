use std::collections::BTreeMap;

use ringkv_core::{Member, NodeId, Phase, Ring, RingConfig, Transition};

use super::{Blocked, horizon};
use crate::cluster::PurgeReport;

fn members(ids: std::ops::RangeInclusive<u64>) -> Vec<Member> {
    let members: Vec<Member> = ids
        .map(|id| Member {
            id: NodeId(id),
            addr: format!("127.0.0.1:{id}"),
            weight: 1,
            tokens: Vec::new(),
            zone: String::new(),
        })
        .collect();
    ringkv_core::claim::found(&members, 8).expect("members")
}

fn ring(version: u64) -> Ring {
    let mut config = RingConfig::of(members(1..=3));
    config.version = version;
    Ring::new(config).expect("ring")
}

fn report(hints_since_ms: u64, cleaned: u64) -> PurgeReport {
    PurgeReport {
        hints_since_ms,
        cleaned,
    }
}

#[test]
fn the_horizon_is_the_oldest_hint_any_member_holds() {
    let ring = ring(4);
    let reports: BTreeMap<NodeId, PurgeReport> = [
        (NodeId(1), report(5_000, 4)),
        (NodeId(2), report(3_000, 4)),
        (NodeId(3), report(9_000, 5)),
    ]
    .into();
    assert_eq!(horizon(&ring, &reports, 10_000), Ok(3_000));
    assert_eq!(horizon(&ring, &reports, 2_000), Ok(2_000), "never past now");
    // A node that restarted holding hints of unknown age reports 0: nothing is purged.
    let mut restarted = reports.clone();
    restarted.insert(NodeId(2), report(0, 4));
    assert_eq!(horizon(&ring, &restarted, 10_000), Ok(0));
}

#[test]
fn a_member_unheard_or_not_cleaned_up_blocks_every_purge() {
    let ring = ring(4);
    let mut reports: BTreeMap<NodeId, PurgeReport> =
        [(NodeId(1), report(5_000, 4)), (NodeId(3), report(5_000, 4))].into();
    assert_eq!(
        horizon(&ring, &reports, 10_000),
        Err(Blocked::Unheard(NodeId(2)))
    );
    reports.insert(NodeId(2), report(5_000, 3));
    assert_eq!(
        horizon(&ring, &reports, 10_000),
        Err(Blocked::CleanUp(NodeId(2))),
        "node 2 may still hold copies from before the last layout change"
    );
    reports.insert(NodeId(2), report(5_000, 4));
    assert_eq!(horizon(&ring, &reports, 10_000), Ok(5_000));
    // Reports from nodes outside the ring change nothing.
    reports.insert(NodeId(9), report(0, 0));
    assert_eq!(horizon(&ring, &reports, 10_000), Ok(5_000));
}

#[test]
fn no_purge_completes_while_a_transfer_is_under_way() {
    let before = members(1..=3);
    let after = members(1..=4);
    let mut config = RingConfig::of(after);
    config.transition = Some(Transition {
        id: 7,
        phase: Phase::Streaming,
        previous: before,
        removed: Vec::new(),
        previous_buckets: None,
    });
    let ring = Ring::new(config).expect("ring");
    let reports: BTreeMap<NodeId, PurgeReport> =
        (1..=4).map(|id| (NodeId(id), report(5_000, 9))).collect();
    assert_eq!(horizon(&ring, &reports, 10_000), Err(Blocked::Transfer));
}
