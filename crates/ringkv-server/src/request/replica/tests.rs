//! The dot-uniqueness invariant as a property: random histories of one key at one node, with
//! every way the node forgets or gets back state, never mint one dot for two writes.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use ringkv_core::wire::PurgeKey;
use ringkv_core::{Dot, Member, Ring, RingConfig};

use super::*;
use crate::cluster::ClusterView;
use crate::ops::config::Limits;
use crate::request::Service;
use crate::storage::MemoryStore;

const ME: NodeId = NodeId(1);

/// What can happen to the node's records of the key.
#[derive(Clone, Debug)]
enum Op {
    /// A client write stamped here, into the node's copy or a hint for `home`, with the
    /// context of an earlier state (`None`: blind) or an overwrite.
    Stamp {
        hint: Option<u64>,
        context: Option<usize>,
        overwrite: bool,
    },
    /// A delete stamped here over everything the node holds: its copy is then dead.
    Delete,
    /// The node's copy is purged, if it is dead (see `workers::purge`).
    Purge,
    /// The hint for `home` is delivered, then deleted.
    Deliver { home: u64 },
    /// A transfer cleans up the node's copy.
    CleanUp,
    /// Read repair, a stream or anti-entropy gives back an earlier state.
    MergeBack { state: usize },
    /// A hint for `home` arrives with an earlier state.
    MergeHint { home: u64, state: usize },
    /// kill -9 and restart.
    Crash,
    /// A clean stop and restart.
    Restart,
    /// A snapshot of the store taken now, restored later by `Restore`.
    Snapshot,
    /// The node comes back on its latest snapshot (a checkpoint restore, or a lost log tail),
    /// without a clean stop.
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::option::of(2..4u64), prop::option::of(0..64usize), prop::bool::weighted(0.2))
            .prop_map(|(hint, context, overwrite)| Op::Stamp { hint, context, overwrite }),
        1 => Just(Op::Delete),
        1 => Just(Op::Purge),
        2 => (2..4u64).prop_map(|home| Op::Deliver { home }),
        1 => Just(Op::CleanUp),
        2 => (0..64usize).prop_map(|state| Op::MergeBack { state }),
        1 => (2..4u64, 0..64usize).prop_map(|(home, state)| Op::MergeHint { home, state }),
        1 => Just(Op::Crash),
        1 => Just(Op::Restart),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Restore),
    ]
}

fn service(store: &Arc<MemoryStore>) -> Service {
    let members: Vec<Member> = (1..4)
        .map(|id| Member {
            id: NodeId(id),
            addr: format!("127.0.0.1:{id}"),
            weight: 1,
            tokens: Vec::new(),
            zone: String::new(),
        })
        .collect();
    let members = ringkv_core::claim::found(&members, 8).expect("members");
    let ring = Ring::new(RingConfig::of(members)).expect("ring");
    let (_tx, rx) = watch::channel(Arc::new(ClusterView::fixed(ring)));
    Service::new(store.clone(), rx, Limits::default())
}

fn hint(home: u64) -> HintKey {
    HintKey {
        bucket: "b".into(),
        key: b"k".to_vec(),
        home: NodeId(home),
    }
}

/// Everything the store holds (data, hints and the node's records), for a snapshot.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    data: Option<Record>,
    hints: Vec<(HintKey, Record)>,
    actors: Option<Vec<u8>>,
}

fn snapshot(store: &MemoryStore) -> Snapshot {
    Snapshot {
        data: store.get("b", b"k").expect("get"),
        hints: store.hints_for_key("b", b"k").expect("hints"),
        actors: store
            .get_meta(crate::request::actors::RECORD)
            .expect("meta"),
    }
}

fn restore(snapshot: &Snapshot) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new(ME));
    if let Some(data) = &snapshot.data {
        store.put("b", b"k", data).expect("put");
    }
    for (hint, record) in &snapshot.hints {
        store.put_hint(hint, record).expect("hint");
    }
    if let Some(actors) = &snapshot.actors {
        store
            .put_meta(crate::request::actors::RECORD, actors)
            .expect("meta");
    }
    store
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the node forgot or got back, a dot it mints names one write: no two stamps
    /// ever produce the same dot.
    #[test]
    fn no_history_of_forgetting_and_returning_mints_a_dot_twice(
        history in prop::collection::vec(op(), 1..60),
    ) {
        let mut store = Arc::new(MemoryStore::new(ME));
        let mut svc = service(&store);
        // Every state the node ever answered with, as the rest of the cluster keeps them.
        let mut world: Vec<SiblingSet> = Vec::new();
        let mut minted: BTreeMap<Dot, u64> = BTreeMap::new();
        let mut saved = snapshot(&store);
        for (i, op) in history.iter().enumerate() {
            let earlier = |n: usize| (!world.is_empty()).then(|| world[n % world.len()].clone());
            match *op {
                Op::Stamp { .. } | Op::Delete => {
                    let write = match *op {
                        Op::Stamp { hint: home, context, overwrite } => Write {
                            context: context.and_then(earlier).map(|s| s.version_vector().clone()),
                            value: Some(Bytes::from(format!("w{i}"))),
                            overwrite,
                            write_id: Some(i as u64),
                            hint: home.map(NodeId),
                            ttl_ms: None,
                        },
                        _ => Write {
                            context: None,
                            value: None,
                            overwrite: true,
                            write_id: Some(i as u64),
                            hint: None,
                            ttl_ms: None,
                        },
                    };
                    // Refusals (siblings need a context) are fine: nothing is minted.
                    if let Ok(state) = svc.replica().stamp("b", b"k", write) {
                        let dot = state
                            .siblings()
                            .iter()
                            .find(|s| s.write_id == Some(i as u64))
                            .map(|s| s.dot)
                            .expect("the write is in the state it answered");
                        if let Some(other) = minted.insert(dot, i as u64) {
                            prop_assert!(false, "dot {} minted for writes {} and {}", dot, other, i);
                        }
                        world.push(state);
                    }
                }
                Op::Purge => {
                    if let Some(record) = store.get("b", b"k").expect("get") {
                        world.push(record.state.clone());
                        let target = PurgeKey::of("b".into(), Bytes::from_static(b"k"), &record.state);
                        svc.replica().purge(&target, svc.epoch()).expect("purge");
                    }
                }
                Op::Deliver { home } => {
                    if let Some(record) = store.get_hint(&hint(home)).expect("hint") {
                        world.push(record.state.clone());
                        svc.replica().hint_delivered(&hint(home), &record.state).expect("deliver");
                    }
                }
                Op::CleanUp => {
                    if let Some(record) = store.get("b", b"k").expect("get") {
                        world.push(record.state.clone());
                        svc.replica().delete_if_unchanged("b", b"k", &record.state, svc.epoch()).expect("delete");
                    }
                }
                Op::MergeBack { state } => {
                    if let Some(state) = earlier(state) {
                        svc.replica().merge("b", b"k", &state).expect("merge");
                    }
                }
                Op::MergeHint { home, state } => {
                    if let Some(state) = earlier(state) {
                        svc.replica().merge_hint("b", b"k", NodeId(home), &state).expect("merge hint");
                    }
                }
                Op::Crash => svc = service(&store),
                Op::Restart => {
                    svc.replica().actors().close(store.as_ref()).expect("close");
                    svc = service(&store);
                }
                Op::Snapshot => saved = snapshot(&store),
                Op::Restore => {
                    store = restore(&saved);
                    svc = service(&store);
                }
            }
        }
    }
}

/// A transfer's walk waits for the copies already checked by the previous ring: while one
/// holds its ring check, `settle_ring_checks` does not return (review finding: a copy checked
/// by the old ring and written after the walk passed its key was neither streamed nor kept).
#[test]
fn a_transfer_walk_waits_for_copies_checked_by_the_previous_ring() {
    let store = Arc::new(MemoryStore::new(ME));
    let svc = Arc::new(service(&store));
    let settled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checked = svc.replica().ring_checked();
    let walker = {
        let (svc, settled) = (svc.clone(), settled.clone());
        std::thread::spawn(move || {
            svc.replica().settle_ring_checks();
            settled.store(true, Ordering::SeqCst);
        })
    };
    // However long the walker has had, it cannot have passed a check still held.
    std::thread::yield_now();
    assert!(!settled.load(Ordering::SeqCst), "the walk did not wait");
    drop(checked);
    walker.join().expect("walker");
    assert!(settled.load(Ordering::SeqCst));
}

fn stamp(svc: &Service, value: Option<&str>, context: Option<VersionVector>) -> SiblingSet {
    let write = Write {
        context,
        value: value.map(|v| Bytes::from(v.to_string())),
        overwrite: false,
        write_id: None,
        hint: None,
        ttl_ms: None,
    };
    svc.replica().stamp("b", b"k", write).expect("stamp")
}

/// A purge removes only the dead state it was checked against (its version vector and
/// dots), under the ring it was judged by: a write that landed since keeps the key.
#[test]
fn a_purge_removes_only_the_dead_state_it_was_checked_against() {
    let store = Arc::new(MemoryStore::new(ME));
    let svc = service(&store);
    let target = |state: &SiblingSet| PurgeKey::of("b".into(), Bytes::from_static(b"k"), state);
    let live = stamp(&svc, Some("v1"), None);
    assert!(!svc.replica().purge_check(&target(&live)).expect("check"));
    assert!(
        !svc.replica()
            .purge(&target(&live), svc.epoch())
            .expect("purge")
    );
    assert!(
        store.get("b", b"k").expect("get").is_some(),
        "a live value was purged"
    );

    let dead = stamp(&svc, None, Some(live.version_vector().clone()));
    assert!(svc.replica().purge_check(&target(&dead)).expect("check"));
    assert!(
        !svc.replica().purge_check(&target(&live)).expect("check"),
        "another version vector is another state"
    );
    let other_ring = ringkv_core::RingEpoch::default();
    assert_ne!(other_ring, svc.epoch());
    assert!(
        !svc.replica()
            .purge(&target(&dead), other_ring)
            .expect("purge"),
        "judged by another ring"
    );
    // A concurrent write lands after the check: the key stays.
    let revived = stamp(&svc, Some("v2"), None);
    assert!(
        !svc.replica()
            .purge(&target(&dead), svc.epoch())
            .expect("purge")
    );
    let record = store.get("b", b"k").expect("get").expect("kept");
    assert_eq!(record.state, revived);

    // Deleted again, and purged: the record is gone, marker and all.
    let dead = stamp(&svc, None, Some(revived.version_vector().clone()));
    assert!(
        svc.replica()
            .purge(&target(&dead), svc.epoch())
            .expect("purge")
    );
    assert!(store.get("b", b"k").expect("get").is_none());
    assert!(
        svc.replica()
            .purge(&target(&dead), svc.epoch())
            .expect("purge"),
        "a key not held is gone"
    );
}

/// Under `lww` every state's version vector is empty: a newer tombstone that arrived after
/// the check is told apart by its dot, and is not purged before its own delay.
#[test]
fn an_lww_tombstone_is_named_by_its_dot() {
    let dot = |node: u64| Dot {
        actor: NodeId(node).into(),
        counter: 1,
    };
    let checked = SiblingSet::lww(dot(2), 100, None);
    let newer = SiblingSet::lww(dot(3), 200, None);
    let target = PurgeKey::of("b".into(), Bytes::from_static(b"k"), &checked);
    assert_eq!(checked.version_vector(), newer.version_vector());
    let now = crate::clock::now_ms();
    assert!(target.matches(&checked, now));
    assert!(!target.matches(&newer, now));
}

/// A pruning drops the history no version needs on a copy that still is the state it was
/// checked against, keeps the value and the node's marker, and leaves any other state alone.
#[test]
fn a_pruning_touches_only_the_state_it_was_checked_against() {
    let store = Arc::new(MemoryStore::new(ME));
    let svc = service(&store);
    // Two actors wrote the key, the second over the first: the first's entry is history.
    let mut other = SiblingSet::new();
    other
        .stamp(
            NodeId(2).into(),
            &VersionVector::new(),
            Some(Bytes::from("v1")),
            1,
            None,
        )
        .expect("stamp");
    svc.replica().merge("b", b"k", &other).expect("merge");
    let state = stamp(&svc, Some("v2"), Some(other.version_vector().clone()));
    assert_eq!(state.prunable_actors(), 1);
    let target = PurgeKey::prune("b".into(), Bytes::from_static(b"k"), &state);
    let marker = store.get("b", b"k").expect("get").expect("held").minted;
    assert!(marker.is_some());

    // A write lands between the check and the pruning: nothing is pruned.
    let newer = stamp(&svc, Some("v3"), Some(state.version_vector().clone()));
    assert!(!svc.replica().purge_check(&target).expect("check"));
    assert!(!svc.replica().purge(&target, svc.epoch()).expect("prune"));
    assert_eq!(
        store.get("b", b"k").expect("get").expect("held").state,
        newer
    );

    let target = PurgeKey::prune("b".into(), Bytes::from_static(b"k"), &newer);
    assert!(svc.replica().purge_check(&target).expect("check"));
    assert!(svc.replica().purge(&target, svc.epoch()).expect("prune"));
    let record = store.get("b", b"k").expect("get").expect("kept");
    assert_eq!(record.state.version_vector().len(), 1);
    assert_eq!(record.state.prunable_actors(), 0);
    let values: Vec<_> = record
        .state
        .live()
        .filter_map(|s| s.value.clone())
        .collect();
    assert_eq!(values, vec![Bytes::from("v3")]);
    assert!(record.minted.is_some(), "the marker went with the history");
}

/// Hints have ages the purge watermark reads: the stamp of the oldest version ever written
/// into the hint (a hint made now of old content is old), kept while later writes merge in,
/// forgotten once it is delivered; a hint this process did not write counts as the oldest
/// possible.
#[test]
fn a_hint_is_as_old_as_the_oldest_version_written_into_it() {
    let store = Arc::new(MemoryStore::new(ME));
    let svc = service(&store);
    let now = crate::clock::now_ms();
    let stamped_at = |at: u64, base: &SiblingSet, value: &str| {
        let mut state = base.clone();
        let read = state.version_vector().clone();
        state
            .stamp(
                NodeId(2).into(),
                &read,
                Some(Bytes::from(value.to_string())),
                at,
                None,
            )
            .expect("stamp");
        state
    };
    // Old content in a new hint (a read repair of an old version sent to a spare).
    let old = stamped_at(now - 60_000, &SiblingSet::new(), "a");
    svc.replica()
        .merge_hint("b", b"k", NodeId(2), &old)
        .expect("hint");
    assert_eq!(svc.replica().hint_age(&hint(2)), now - 60_000);
    assert_eq!(svc.replica().hint_ages().oldest(), Some(now - 60_000));
    // A newer write merged in: the hint may still hold the old one, and stays as old.
    let newer = stamped_at(now, &old, "b");
    svc.replica()
        .merge_hint("b", b"k", NodeId(2), &newer)
        .expect("hint");
    assert_eq!(svc.replica().hint_age(&hint(2)), now - 60_000);
    let held = store.get_hint(&hint(2)).expect("get").expect("held");
    assert!(
        svc.replica()
            .hint_delivered(&hint(2), &held.state)
            .expect("deliver")
    );
    assert_eq!(svc.replica().hint_age(&hint(2)), 0, "no longer held");
    // A read that found its content may still be repairing it: its age counts a while.
    assert_eq!(svc.replica().hint_ages().oldest(), Some(now - 60_000));
    svc.replica().hint_ages().set_grace(0);
    assert_eq!(svc.replica().hint_ages().oldest(), None);

    // A hint held from before this process (put straight into the store) has no known age,
    // and a write into it does not give it one.
    store
        .put_hint(&hint(3), &Record::new(old.clone()))
        .expect("put");
    let restarted = service(&store);
    let newest = stamped_at(now + 1, &old, "c");
    restarted
        .replica()
        .merge_hint("b", b"k", NodeId(3), &newest)
        .expect("hint");
    assert_eq!(restarted.replica().hint_age(&hint(3)), 0);
    // Delivered, its unknown age still counts as the oldest for the grace period.
    let held = store.get_hint(&hint(3)).expect("get").expect("held");
    assert!(
        restarted
            .replica()
            .hint_delivered(&hint(3), &held.state)
            .expect("deliver")
    );
    assert_eq!(restarted.replica().hint_ages().oldest(), Some(0));
}
