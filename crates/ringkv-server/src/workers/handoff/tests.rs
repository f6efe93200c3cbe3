use std::collections::HashMap;

use ringkv_core::{Member, NodeId, Phase, Ring, RingConfig, Transition};

use super::{Destinations, destinations, live_other_homes};
use crate::cluster::ClusterView;
use crate::storage::HintKey;

fn view() -> ClusterView {
    let members: Vec<Member> = (1..=5)
        .map(|id| Member {
            id: NodeId(id),
            addr: format!("127.0.0.1:{id}"),
            weight: 1,
            tokens: Vec::new(),
            zone: String::new(),
        })
        .collect();
    let members = ringkv_core::claim::found(&members, 16).expect("members");
    ClusterView::fixed(Ring::new(RingConfig::of(members)).expect("ring"))
}

/// Every member but `me` and `down`, by address, as the worker sees them.
fn alive(view: &ClusterView, me: NodeId, down: &[NodeId]) -> HashMap<NodeId, String> {
    view.ring
        .members()
        .iter()
        .filter(|m| m.id != me && !down.contains(&m.id))
        .map(|m| (m.id, m.addr.clone()))
        .collect()
}

/// A key whose three homes satisfy `wanted`, and those homes.
fn key_where(view: &ClusterView, wanted: impl Fn(&[NodeId]) -> bool) -> (Vec<u8>, Vec<NodeId>) {
    (0..10_000)
        .map(|i| format!("k{i}").into_bytes())
        .map(|key| {
            let homes = view
                .ring
                .home_replicas("b", &key)
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>();
            (key, homes)
        })
        .find(|(_, homes)| wanted(homes))
        .expect("such a key")
}

fn hint(key: &[u8], home: NodeId) -> HintKey {
    HintKey {
        bucket: "b".into(),
        key: key.to_vec(),
        home,
    }
}

fn addr(id: NodeId) -> String {
    format!("127.0.0.1:{}", id.0)
}

/// A destination: the node and its address.
fn to(id: NodeId) -> (NodeId, String) {
    (id, addr(id))
}

/// Nodes 1 to 4, and node 5's join under way in `phase`.
fn fifth_joining(phase: Phase) -> ClusterView {
    let members: Vec<Member> = (1..=4)
        .map(|id| Member {
            id: NodeId(id),
            addr: addr(NodeId(id)),
            weight: 1,
            tokens: Vec::new(),
            zone: String::new(),
        })
        .collect();
    let before = ringkv_core::claim::found(&members, 16).expect("members");
    let joining = Member {
        id: NodeId(5),
        addr: addr(NodeId(5)),
        weight: 1,
        tokens: Vec::new(),
        zone: String::new(),
    };
    let after = ringkv_core::claim::join(&before, joining, 16).expect("join");
    let mut config = RingConfig::of(after);
    config.transition = Some(Transition {
        id: 2,
        phase,
        previous: before,
        removed: Vec::new(),
        previous_buckets: None,
    });
    ClusterView::fixed(Ring::new(config).expect("ring"))
}

#[test]
fn a_hint_goes_to_its_home_while_that_still_is_a_home_of_the_key() {
    let view = view();
    let me = NodeId(1);
    let (key, homes) = key_where(&view, |h| !h.contains(&me));
    let home = homes[1];
    assert_eq!(
        destinations(&view, &alive(&view, me, &[]), &hint(&key, home), me),
        Some(Destinations {
            remote: vec![to(home)],
            local: false
        })
    );
    // Down: the hint waits for it, however many other homes are up.
    assert_eq!(
        destinations(&view, &alive(&view, me, &[home]), &hint(&key, home), me),
        None
    );
}

#[test]
fn a_hint_whose_home_lost_the_key_goes_to_every_home_the_key_has_now() {
    let view = view();
    let me = NodeId(1);
    // The hint's node is alive and still a member, but no longer a home of the key (a
    // layout change moved it): delivering to it would leave the write with a node that has
    // streamed the key away and will clean its copy up.
    let (key, homes) = key_where(&view, |h| !h.contains(&me) && !h.contains(&NodeId(5)));
    let moved = hint(&key, NodeId(5));
    let Some(Destinations { mut remote, local }) =
        destinations(&view, &alive(&view, me, &[]), &moved, me)
    else {
        panic!("the key's homes are all up");
    };
    remote.sort();
    let mut expected: Vec<(NodeId, String)> = homes.iter().map(|&h| to(h)).collect();
    expected.sort();
    assert_eq!((remote, local), (expected, false));
    // One of the key's homes down: not now (it must get the write too).
    assert_eq!(
        destinations(&view, &alive(&view, me, &[homes[2]]), &moved, me),
        None
    );

    // This node is one of the key's homes now: it keeps the write itself as well.
    let (key, homes) = key_where(&view, |h| h.contains(&me) && !h.contains(&NodeId(5)));
    let Some(Destinations { remote, local }) =
        destinations(&view, &alive(&view, me, &[]), &hint(&key, NodeId(5)), me)
    else {
        panic!("the key's homes are all up");
    };
    assert!(local);
    assert_eq!(remote.len(), homes.len() - 1);
    assert!(!remote.contains(&to(me)));
}

#[test]
fn during_a_transfer_a_hint_for_a_home_losing_the_key_goes_to_the_new_homes_too() {
    for phase in [Phase::Streaming, Phase::Switching] {
        let view = fifth_joining(phase);
        let old_homes = |key: &[u8]| -> Vec<NodeId> {
            view.ring
                .previous_home_replicas("b", key)
                .iter()
                .map(|m| m.id)
                .collect()
        };
        // A key that moves from `losing` (an old home, not a new one) to node 5; this node
        // (`me`) is neither.
        let (key, new_homes) = key_where(&view, |h| h.contains(&NodeId(5)));
        let losing = old_homes(&key)
            .into_iter()
            .find(|id| !new_homes.contains(id))
            .expect("a home the key moves away from");
        let me = (1..=4)
            .map(NodeId)
            .find(|id| !new_homes.contains(id) && !old_homes(&key).contains(id))
            .expect("a bystander");
        let Some(Destinations { remote, local }) =
            destinations(&view, &alive(&view, me, &[]), &hint(&key, losing), me)
        else {
            panic!("every home is up ({phase:?})");
        };
        assert!(!local);
        for home in &new_homes {
            assert!(
                remote.contains(&to(*home)),
                "{phase:?}: the hint for {losing} must reach the new home {home}: {remote:?}"
            );
        }
    }
}

/// A hint handed to anti-entropy (overdue, or the queue full) during a transfer never lands
/// only on homes the key is moving away from: one of them may have streamed the key already
/// and will delete its copy once the ring settles, the write with it (review finding: a
/// bucket's `n` lowered, the dropped home the only one alive).
#[test]
fn a_converted_hint_never_lands_only_on_homes_the_key_leaves() {
    for phase in [Phase::Streaming, Phase::Switching] {
        let view = fifth_joining(phase);
        let old_homes = |key: &[u8]| -> Vec<NodeId> {
            view.ring
                .previous_home_replicas("b", key)
                .iter()
                .map(|m| m.id)
                .collect()
        };
        // A key moving from `losing` to node 5. The hint is for one of the homes it keeps;
        // this node holds it and is no home of the key.
        let (key, new_homes) = key_where(&view, |h| h.contains(&NodeId(5)));
        let losing = old_homes(&key)
            .into_iter()
            .find(|id| !new_homes.contains(id))
            .expect("a home the key moves away from");
        let me = NodeId(99);
        let home = new_homes
            .iter()
            .copied()
            .find(|id| *id != NodeId(5))
            .expect("a home the key keeps");
        let others: Vec<NodeId> = new_homes.iter().copied().filter(|id| *id != home).collect();
        // Every home but `losing` down (or unreachable): not handed over, it waits.
        assert_eq!(
            live_other_homes(&view, &alive(&view, me, &others), &hint(&key, home), me),
            None,
            "{phase:?}: handed to {losing} alone"
        );
        // One home the key keeps up as well: handed to it (and to `losing`, harmlessly).
        let up = others[0];
        let down: Vec<NodeId> = others.iter().copied().filter(|id| *id != up).collect();
        let homes = live_other_homes(&view, &alive(&view, me, &down), &hint(&key, home), me)
            .expect("a home that keeps the key is up");
        assert!(homes.contains(&to(up)), "{phase:?}: {homes:?}");
    }
}

/// A delivered hint is deleted at the fallback, so the home must have it on disk first: the
/// handoff's merge asks the home to sync (a `dw` write stays durable through its handoff).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hint_is_deleted_only_after_its_home_synced_it() {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use ringkv_core::{SiblingSet, VersionVector};
    use tokio::net::TcpListener;
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;

    use crate::node::NodeParts;
    use crate::ops::config::{Handoff, Limits};
    use crate::request::{Endpoint, Service, serve};
    use crate::storage::{MemoryStore, Store};
    use crate::workers::handoff::spawn_handoff;

    let listeners = [
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    ];
    let members: Vec<Member> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| Member {
            id: NodeId(i as u64 + 1),
            addr: l.local_addr().expect("addr").to_string(),
            weight: 1,
            tokens: Vec::new(),
            zone: String::new(),
        })
        .collect();
    let members = ringkv_core::claim::found(&members, 8).expect("members");
    let ring = Ring::new(RingConfig::of(members)).expect("ring");
    let (_tx, rx) = watch::channel(Arc::new(ClusterView::fixed(ring)));
    let stores = [
        Arc::new(MemoryStore::new(NodeId(1))),
        Arc::new(MemoryStore::new(NodeId(2))),
    ];
    let life = CancellationToken::new();
    let mut parts = Vec::new();
    for (store, listener) in stores.iter().zip(listeners) {
        let node = NodeParts::new(
            store.clone() as Arc<dyn Store>,
            rx.clone(),
            Limits::default(),
        );
        let endpoint = Arc::new(Endpoint::new(&node, Arc::new(Service::from_parts(&node))));
        tokio::spawn(serve(listener, endpoint, life.clone()));
        parts.push(node);
    }
    // Node 1 holds a hint for node 2.
    let mut state = SiblingSet::new();
    state
        .stamp(
            NodeId(1).into(),
            &VersionVector::new(),
            Some(Bytes::from("v")),
            1,
            None,
        )
        .expect("stamp");
    parts[0]
        .replica
        .merge_hint("b", b"k", NodeId(2), &state)
        .expect("hint");
    let before = stores[1].syncs();
    let config = Handoff {
        interval_ms: 20,
        ..Handoff::default()
    };
    spawn_handoff(&parts[0], config, life.clone());
    let mut delivered = false;
    for _ in 0..250 {
        if stores[0].hint_count().expect("count") == 0 {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    life.cancel();
    assert!(delivered, "the hint was never delivered");
    assert!(
        stores[1].get("b", b"k").expect("get").is_some(),
        "the home holds the write"
    );
    assert!(
        stores[1].syncs() > before,
        "the home acknowledged the hint without syncing it"
    );
}
