use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkv_core::layout::Change;
use ringkv_core::{
    BucketProps, Buckets, Layout, Member, NodeId, Ring, SiblingSet, Step, VersionVector,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::spawn_transfer;
use crate::cluster::{ClusterView, Keeper};
use crate::node::NodeParts;
use crate::ops::config::{Limits, Transfer};
use crate::request::{Endpoint, Service, serve};
use crate::storage::{MemoryStore, Store};

/// A streamed copy is what a source deletes at clean-up, so its new owner must have it on
/// disk first: the transfer's merges ask the receiver to sync (a `dw` write stays durable
/// through a membership change), and the walk reports `Streamed` only after they did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_copy_is_synced_by_its_new_owner_before_the_walk_reports_done() {
    let listeners = [
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    ];
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").to_string())
        .collect();
    // Node 1 alone, then node 2 joins: with n = 1 about half the keys move to node 2.
    let mut layout = Layout::empty(8);
    layout
        .found(&[Member {
            id: NodeId(1),
            addr: addrs[0].clone(),
            weight: 1,
            tokens: Vec::new(),
            zone: String::new(),
        }])
        .expect("found");
    let before = Ring::new(layout.ring_config(single_copy(), 0)).expect("ring");
    layout
        .stage(Change::Join {
            id: NodeId(2),
            addr: addrs[1].clone(),
            weight: 1,
            zone: String::new(),
        })
        .expect("stage");
    layout.commit().expect("commit");
    let ring = Ring::new(layout.ring_config(single_copy(), 0)).expect("ring");
    let transition = ring.transition().expect("a transfer").id;
    let (_tx, rx) = watch::channel(Arc::new(ClusterView::fixed(ring.clone())));

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
    let keys: Vec<Vec<u8>> = (0..64).map(|i| format!("k{i}").into_bytes()).collect();
    let moving: Vec<&Vec<u8>> = keys
        .iter()
        .filter(|k| ring.home_replicas("b", k).iter().any(|m| m.id == NodeId(2)))
        .collect();
    assert!(!moving.is_empty(), "some keys move to node 2");
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
    for key in &keys {
        assert!(
            before
                .home_replicas("b", key)
                .iter()
                .any(|m| m.id == NodeId(1))
        );
        parts[0].replica.merge("b", key, &state).expect("merge");
    }

    let keeper = Arc::new(Keeper::detached(stores[0].clone(), layout));
    let source = parts.remove(0).with_keeper(keeper.clone(), 1);
    let synced_before = stores[1].syncs();
    let config = Transfer {
        interval_ms: 20,
        ..Transfer::default()
    };
    spawn_transfer(&source, config, life.clone());
    let mut streamed = false;
    for _ in 0..250 {
        if keeper.report() == Some((transition, Step::Streamed)) {
            streamed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    life.cancel();
    assert!(streamed, "the walk never completed");
    for key in moving {
        assert_eq!(
            stores[1].get("b", key).expect("get").map(|r| r.state),
            Some(state.clone()),
            "the new owner holds every moved key"
        );
    }
    assert!(
        stores[1].syncs() > synced_before,
        "the new owner acknowledged streamed copies without syncing them"
    );
}

fn single_copy() -> Buckets {
    Buckets {
        default: BucketProps {
            n: 1,
            r: 1,
            w: 1,
            ..Default::default()
        },
        ..Default::default()
    }
}
