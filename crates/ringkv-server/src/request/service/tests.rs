use bytes::Bytes;
use ringkv_core::{
    BucketProps, Buckets, ConflictPolicy, Dot, Member, NodeId, Ring, RingConfig, SiblingSet,
    VersionVector,
};

use ringkv_core::siblings::MAX_SIBLINGS;
use ringkv_core::wire::NodeStats;

use super::*;
use crate::request::lane::handle_durable;
use crate::request::replica::Write;
use crate::storage::{HintKey, MemoryStore};

const ME: NodeId = NodeId(1);

fn members(ids: &[u64]) -> Vec<Member> {
    let members: Vec<Member> = ids
        .iter()
        .map(|&id| Member {
            id: NodeId(id),
            addr: format!("127.0.0.1:{id}"),
            weight: 1,
            tokens: Vec::new(),
            zone: String::new(),
        })
        .collect();
    ringkv_core::claim::found(&members, 16).expect("members")
}

fn service_with(buckets: Buckets, ids: &[u64]) -> Service {
    let ring = Ring::new(RingConfig {
        buckets,
        ..RingConfig::of(members(ids))
    })
    .expect("ring");
    let (_tx, rx) = watch::channel(Arc::new(ClusterView::fixed(ring)));
    Service::new(Arc::new(MemoryStore::new(ME)), rx, Limits::default())
}

fn service() -> Service {
    service_with(Buckets::default(), &[1])
}

fn put(context: Option<VersionVector>, value: &str, overwrite: bool) -> Request {
    Request::Put {
        bucket: "b".into(),
        key: Bytes::from_static(b"k"),
        context,
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        overwrite,
        write_id: None,
        hint: None,
        sync: false,
        defer_sync: false,
        ttl_ms: None,
    }
}

/// A blind overwrite of `b/k`, with the durability flags given.
fn overwrite_put(value: &str, sync: bool, defer_sync: bool) -> Request {
    Request::Put {
        bucket: "b".into(),
        key: Bytes::from_static(b"k"),
        context: None,
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        overwrite: true,
        write_id: None,
        hint: None,
        sync,
        defer_sync,
        ttl_ms: None,
    }
}

fn get(svc: &Service) -> Option<SiblingSet> {
    let epoch = svc.epoch();
    match svc.handle(
        epoch,
        Request::Get {
            bucket: "b".into(),
            key: Bytes::from_static(b"k"),
        },
    ) {
        Ok(Response::Value { state }) => state,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn blind_writes_make_siblings_then_need_a_context_or_an_overwrite() {
    let svc = service();
    let epoch = svc.epoch();
    svc.handle(epoch, put(None, "a", false))
        .expect("first write");
    svc.handle(epoch, put(None, "b", false))
        .expect("second blind write: a sibling");
    assert_eq!(get(&svc).expect("state").live_count(), 2);
    assert_eq!(
        svc.handle(epoch, put(None, "c", false)),
        Err(WireError::ContextRequired { siblings: 2 })
    );
    svc.handle(epoch, put(None, "c", true))
        .expect("explicit overwrite");
    let state = get(&svc).expect("state");
    assert_eq!(state.live_count(), 1);
    assert_eq!(
        state.live().next().and_then(|s| s.value.clone()),
        Some(Bytes::from("c"))
    );
}

#[test]
fn a_hundred_and_first_sibling_is_refused_with_the_limit_named() {
    let svc = service();
    let epoch = svc.epoch();
    // Each write from an empty context (a writer that read nothing) adds a sibling.
    for i in 0..MAX_SIBLINGS {
        svc.handle(
            epoch,
            put(Some(VersionVector::new()), &format!("v{i}"), false),
        )
        .expect("a sibling below the limit");
    }
    assert_eq!(
        svc.handle(
            epoch,
            put(Some(VersionVector::new()), "one too many", false)
        ),
        Err(WireError::TooManySiblings {
            count: MAX_SIBLINGS as u32 + 1,
            max: MAX_SIBLINGS as u32
        })
    );
    // Nothing was written; a write with the read's context still resolves them all.
    let state = get(&svc).expect("state");
    assert_eq!(state.live_count(), MAX_SIBLINGS);
    let context = state.version_vector().clone();
    svc.handle(epoch, put(Some(context), "merged", false))
        .expect("resolving write");
    assert_eq!(get(&svc).expect("state").live_count(), 1);
}

#[test]
fn a_write_with_the_read_context_resolves_siblings() {
    let svc = service();
    let epoch = svc.epoch();
    svc.handle(epoch, put(None, "a", false)).expect("write");
    svc.handle(epoch, put(None, "b", false)).expect("write");
    let ctx = get(&svc).expect("state").version_vector().clone();
    svc.handle(epoch, put(Some(ctx), "ab", false))
        .expect("resolve");
    assert_eq!(get(&svc).expect("state").live_count(), 1);
}

#[test]
fn lww_buckets_keep_one_value() {
    let mut buckets = Buckets::default();
    buckets.named.insert(
        "b".into(),
        BucketProps {
            conflict: ConflictPolicy::Lww,
            ..Default::default()
        },
    );
    let svc = service_with(buckets, &[1]);
    let epoch = svc.epoch();
    svc.handle(epoch, put(None, "a", false)).expect("write");
    svc.handle(epoch, put(None, "b", false)).expect("write");
    let state = get(&svc).expect("state");
    assert_eq!(state.live_count(), 1);
    assert_eq!(
        state.live().next().and_then(|s| s.value.clone()),
        Some(Bytes::from("b"))
    );
}

#[test]
fn an_lww_write_timestamped_too_far_ahead_is_refused_but_copies_never_are() {
    let mut buckets = Buckets::default();
    let lww = BucketProps {
        conflict: ConflictPolicy::Lww,
        ..Default::default()
    };
    buckets.named.insert("b".into(), lww);
    let svc = service_with(buckets, &[1]);
    let epoch = svc.epoch();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let max = Limits::default().max_clock_ahead_ms;
    let merge = |bucket: &str, ahead: u64, entry: bool| Request::Merge {
        bucket: bucket.into(),
        key: Bytes::from_static(b"k"),
        state: SiblingSet::lww(
            Dot {
                actor: ringkv_core::Actor::legacy(NodeId(77)),
                counter: ahead + 1,
            },
            now + ahead,
            Some(Bytes::from("v")),
        ),
        hint: None,
        sync: false,
        entry,
        ttl_ms: None,
    };
    // A client an hour fast: refused, saying by how much.
    match svc.handle(epoch, merge("b", 3_600_000, true)) {
        Err(WireError::ClockAhead { ahead_ms, max_ms }) => {
            assert!(ahead_ms >= 3_600_000 - 1_000, "{ahead_ms}");
            assert_eq!(max_ms, max);
        }
        other => panic!("expected ClockAhead, got {other:?}"),
    }
    assert_eq!(get(&svc), None, "the refused write was stored");
    // Within the bound: taken.
    svc.handle(epoch, merge("b", max / 2, true))
        .expect("a write a little ahead");
    // A copy of stored state (a hint, a transfer, anti-entropy) is never refused for its
    // timestamp: another node accepted it, and every node must hold what one holds.
    svc.handle(epoch, merge("b", 3_600_000, false))
        .expect("a copy");
    // Buckets that keep siblings do not order by timestamp: nothing to check.
    let mut stamped = SiblingSet::new();
    stamped
        .stamp(
            ringkv_core::Actor::legacy(NodeId(77)),
            &VersionVector::new(),
            Some(Bytes::from("v")),
            now + 3_600_000,
            None,
        )
        .expect("stamp");
    let siblings = Request::Merge {
        bucket: "other".into(),
        key: Bytes::from_static(b"k"),
        state: stamped,
        hint: None,
        sync: false,
        entry: true,
        ttl_ms: None,
    };
    svc.handle(epoch, siblings).expect("a siblings bucket");
}

#[test]
fn oversized_keys_and_values_and_bad_buckets_are_refused() {
    let svc = service();
    let epoch = svc.epoch();
    let big_key = Bytes::from(vec![0; Limits::default().max_key_bytes + 1]);
    assert!(matches!(
        svc.handle(
            epoch,
            Request::Get {
                bucket: "b".into(),
                key: big_key
            }
        ),
        Err(WireError::KeyTooLarge { .. })
    ));
    let big_value = "x".repeat(Limits::default().max_value_bytes + 1);
    assert!(matches!(
        svc.handle(epoch, put(None, &big_value, false)),
        Err(WireError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        svc.handle(
            epoch,
            Request::Get {
                bucket: String::new(),
                key: Bytes::new()
            }
        ),
        Err(WireError::InvalidRequest { .. })
    ));
    assert_eq!(get(&svc), None, "nothing was written");
}

#[test]
fn corrupt_merged_states_are_refused_and_nothing_is_written() {
    let svc = service();
    let epoch = svc.epoch();
    // A sibling its own version vector does not cover: impossible in a real state.
    let mut other = SiblingSet::new();
    other
        .stamp(
            NodeId(9).into(),
            &VersionVector::new(),
            Some(Bytes::from("x")),
            1,
            None,
        )
        .expect("stamp");
    let bytes = {
        let mut v = Vec::new();
        ciborium::into_writer(&other, &mut v).expect("encode");
        v
    };
    let mut value: ciborium::Value = ciborium::from_reader(&bytes[..]).expect("decode");
    if let ciborium::Value::Map(fields) = &mut value {
        for (k, v) in fields.iter_mut() {
            if k.as_text() == Some("vv") {
                *v = ciborium::Value::Map(vec![]);
            }
        }
    }
    let corrupt: SiblingSet = value.deserialized().expect("still well-typed");
    let result = svc.handle(
        epoch,
        Request::Merge {
            bucket: "b".into(),
            key: Bytes::from_static(b"k"),
            state: corrupt,
            hint: None,
            sync: false,
            entry: false,
            ttl_ms: None,
        },
    );
    assert!(
        matches!(result, Err(WireError::InvalidRequest { .. })),
        "{result:?}"
    );
    assert_eq!(get(&svc), None);
}

#[test]
fn a_request_routed_by_an_older_ring_is_refused_and_a_newer_one_served() {
    // Four nodes, n = 1: most keys are not on node 1, and that must not matter either way.
    let buckets = Buckets {
        default: BucketProps {
            n: 1,
            r: 1,
            w: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let svc = service_with(buckets, &[1, 2, 3, 4]);
    let ours = svc.epoch();
    let older = RingEpoch {
        version: ours.version - 1,
        ..ours
    };
    let newer = RingEpoch {
        version: ours.version + 1,
        ..ours
    };
    for i in 0..50u32 {
        let key = Bytes::from(i.to_be_bytes().to_vec());
        let get = || Request::Get {
            bucket: "b".into(),
            key: key.clone(),
        };
        // An older ring may pick the wrong replicas, or the previous owners after a switch.
        assert_eq!(
            svc.handle(older, get()),
            Err(WireError::StaleRing { epoch: ours })
        );
        // The same ring computed what we would; a newer one is what we will soon hold.
        assert!(svc.handle(ours, get()).is_ok());
        assert!(svc.handle(newer, get()).is_ok());
        // A rival of ours (two commits raced, and the layout order picked ours) is refused,
        // so that its holder takes ours, whichever digest is the greater.
        for digest in [ours.digest.wrapping_add(1), ours.digest.wrapping_sub(1)] {
            let rival = RingEpoch { digest, ..ours };
            assert_eq!(
                svc.handle(rival, get()),
                Err(WireError::StaleRing { epoch: ours })
            );
        }
    }
}

#[test]
fn a_node_that_has_not_heard_from_the_cluster_does_not_hand_out_its_ring() {
    let ring = Ring::new(RingConfig::of(members(&[1]))).expect("ring");
    let joining = ClusterView {
        ready: false,
        ..ClusterView::fixed(ring)
    };
    let (_tx, rx) = watch::channel(Arc::new(joining));
    let svc = Service::new(Arc::new(MemoryStore::new(ME)), rx, Limits::default());
    assert!(matches!(
        svc.handle(svc.epoch(), Request::Ring),
        Err(WireError::NotReady { .. })
    ));
    // Data requests are still served.
    assert!(matches!(
        svc.handle(svc.epoch(), Request::Ping),
        Ok(Response::Pong { .. })
    ));
}

fn stats(svc: &Service) -> NodeStats {
    match svc.handle(svc.epoch(), Request::Stats) {
        Ok(Response::Stats(stats)) => stats,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_hinted_merge_is_kept_as_a_hint_served_by_reads_and_removed_once_delivered() {
    let svc = service_with(Buckets::default(), &[1, 2]);
    let mut state = SiblingSet::new();
    state
        .stamp(
            NodeId(2).into(),
            &VersionVector::new(),
            Some(Bytes::from("for 2")),
            1,
            None,
        )
        .expect("stamp");
    let merge = Request::Merge {
        bucket: "b".into(),
        key: Bytes::from_static(b"k"),
        state: state.clone(),
        hint: Some(NodeId(2)),
        sync: false,
        entry: false,
        ttl_ms: None,
    };
    svc.handle(svc.epoch(), merge.clone())
        .expect("hinted merge");
    svc.handle(svc.epoch(), merge)
        .expect("redelivery is idempotent");
    assert_eq!(
        svc.store().get("b", b"k").expect("get"),
        None,
        "a hint is not our own data"
    );
    assert_eq!(get(&svc), Some(state.clone()), "reads include hints");
    assert_eq!(stats(&svc).hints_pending, 1);

    let hint = HintKey {
        bucket: "b".into(),
        key: b"k".to_vec(),
        home: NodeId(2),
    };
    let stale = SiblingSet::new();
    assert!(
        !svc.replica().hint_delivered(&hint, &stale).expect("store"),
        "a changed hint is kept"
    );
    assert!(svc.replica().hint_delivered(&hint, &state).expect("store"));
    let after = stats(&svc);
    assert_eq!((after.hints_pending, after.hints_delivered), (0, 1));
}

#[test]
fn a_retried_put_with_the_same_write_id_is_one_sibling() {
    let svc = service();
    let epoch = svc.epoch();
    let retry = || Request::Put {
        bucket: "b".into(),
        key: Bytes::from_static(b"k"),
        context: None,
        value: Some(Bytes::from("once")),
        overwrite: false,
        write_id: Some(42),
        hint: None,
        sync: false,
        defer_sync: false,
        ttl_ms: None,
    };
    svc.handle(epoch, retry()).expect("first attempt");
    svc.handle(epoch, retry()).expect("retry");
    assert_eq!(get(&svc).expect("state").live_count(), 1);
}

#[test]
fn a_fallback_stamps_on_top_of_everything_it_holds_and_keeps_the_result_as_a_hint() {
    let svc = service_with(Buckets::default(), &[1, 2, 3]);
    let epoch = svc.epoch();
    let put_for = |home: u64, value: &str| Request::Put {
        bucket: "b".into(),
        key: Bytes::from_static(b"k"),
        context: None,
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        overwrite: false,
        write_id: None,
        hint: Some(NodeId(home)),
        sync: false,
        defer_sync: false,
        ttl_ms: None,
    };
    svc.handle(epoch, put_for(2, "for 2")).expect("stamp for 2");
    svc.handle(epoch, put_for(3, "for 3")).expect("stamp for 3");
    assert_eq!(svc.store().get("b", b"k").expect("get"), None, "hints only");
    // Two writes stamped here for different homes must have different dots.
    let state = get(&svc).expect("served from hints");
    assert_eq!(state.live_count(), 2, "{state:?}");
    assert_eq!(stats(&svc).hints_pending, 2);
}

#[tokio::test]
async fn durable_writes_wait_for_a_sync_and_others_do_not() {
    let store = Arc::new(MemoryStore::new(ME));
    let ring = Ring::new(RingConfig::of(members(&[1]))).expect("ring");
    let (_tx, rx) = watch::channel(Arc::new(ClusterView::fixed(ring)));
    let svc = Service::new(store.clone(), rx.clone(), Limits::default());
    let epoch = svc.epoch();
    let write = |sync: bool, value: &str| overwrite_put(value, sync, false);
    assert_eq!(svc.lane(&write(false, "fast")), Lane::Inline);
    assert_eq!(svc.lane(&write(true, "durable")), Lane::Durable);
    svc.handle(epoch, write(false, "fast")).expect("put");
    assert_eq!(store.syncs(), 0, "a write without dw must not sync");
    let Ok(Response::Stamped {
        state,
        pending_sync: false,
    }) = handle_durable(&svc, epoch, write(true, "durable")).await
    else {
        panic!("a durable put must be stamped");
    };
    assert_eq!(store.syncs(), 1, "a durable put waits for a sync");
    assert_eq!(svc.log_syncs(), 1);
    // A durable merge waits even when it changes nothing: the copy may not be on disk yet.
    let merge = |sync: bool| Request::Merge {
        bucket: "b".into(),
        key: Bytes::from_static(b"k"),
        state: state.clone(),
        hint: None,
        sync,
        entry: false,
        ttl_ms: None,
    };
    handle_durable(&svc, epoch, merge(true))
        .await
        .expect("merge");
    assert_eq!(store.syncs(), 2);

    // With `fsync` durability every write is durable, asked or not.
    let fsync = Service::from_parts(
        &NodeParts::new(store.clone(), rx, Limits::default()).with_durability(Durability::Fsync),
    );
    assert_eq!(fsync.lane(&merge(false)), Lane::Durable);
    // A put that defers its sync is answered at once, marked pending: the caller's merge to
    // this node will wait for the sync.
    let deferred = overwrite_put("deferred", false, true);
    assert_eq!(fsync.lane(&deferred), Lane::Inline);
    let syncs = store.syncs();
    let answer = fsync.handle(fsync.epoch(), deferred);
    assert!(
        matches!(
            answer,
            Ok(Response::Stamped {
                pending_sync: true,
                ..
            })
        ),
        "{answer:?}"
    );
    assert_eq!(
        store.syncs(),
        syncs,
        "the deferred put did not wait for a sync"
    );
}

#[test]
fn a_forged_context_or_state_at_the_counters_limit_neither_panics_nor_poisons_the_key() {
    let svc = service();
    let epoch = svc.epoch();
    // A context claiming every possible write of this node's legacy actor (contexts travel
    // through cookies and forms). The node stamps under a fresh actor, which the forged
    // context cannot name, so the write is taken.
    let mut forged = VersionVector::new();
    forged.observe(Dot {
        actor: ME.into(),
        counter: u64::MAX,
    });
    svc.handle(epoch, put(Some(forged), "v", false))
        .expect("stamped under a fresh actor");
    assert_eq!(get(&svc).expect("state").live_count(), 1);

    // A peer's state holding such a dot is a valid state; merging it is fine, and later
    // writes of the key are taken too: the key is not poisoned.
    let mut state = SiblingSet::new();
    state
        .stamp(
            ME.into(),
            &forged_below_limit(),
            Some(Bytes::from("peer")),
            1,
            None,
        )
        .expect("stamp");
    let merge = Request::Merge {
        bucket: "b".into(),
        key: Bytes::from_static(b"k"),
        state,
        hint: None,
        sync: false,
        entry: false,
        ttl_ms: None,
    };
    svc.handle(epoch, merge).expect("merge");
    let read = get(&svc).expect("state").version_vector().clone();
    for overwrite in [false, true] {
        svc.handle(epoch, put(Some(read.clone()), "again", overwrite))
            .expect("a later write is taken");
    }
    assert!(get(&svc).is_some());
}

fn stamp_for(
    svc: &Service,
    home: Option<u64>,
    context: Option<VersionVector>,
    value: &str,
) -> SiblingSet {
    svc.replica()
        .stamp(
            "b",
            b"k",
            Write {
                context,
                value: Some(Bytes::copy_from_slice(value.as_bytes())),
                overwrite: false,
                write_id: None,
                hint: home.map(NodeId),
                ttl_ms: None,
            },
        )
        .expect("stamp")
}

/// The dot of the sibling holding `value`.
fn dot_of(state: &SiblingSet, value: &str) -> Dot {
    state
        .live()
        .find(|s| s.value.as_deref() == Some(value.as_bytes()))
        .map(|s| s.dot)
        .expect("value present")
}

fn hint_for(home: u64) -> HintKey {
    HintKey {
        bucket: "b".into(),
        key: b"k".to_vec(),
        home: NodeId(home),
    }
}

/// The review's first scenario at one fallback: its hint delivered and deleted, the next
/// outage's write must get a new dot, and the home keeps both writes.
#[test]
fn a_fallback_that_forgot_a_delivered_hint_never_mints_its_dot_again() {
    let svc = service_with(Buckets::default(), &[1, 2]);
    let first = stamp_for(&svc, Some(2), None, "v1");
    assert!(
        svc.replica()
            .hint_delivered(&hint_for(2), &first)
            .expect("store")
    );
    assert_eq!(get(&svc), None, "the fallback forgot the key");
    let second = stamp_for(&svc, Some(2), None, "v2");
    assert_ne!(dot_of(&first, "v1"), dot_of(&second, "v2"));
    let mut home = first.clone();
    home.merge(&second, ConflictPolicy::Siblings);
    assert_eq!(
        home.live_count(),
        2,
        "both acknowledged writes kept: {home:?}"
    );
}

/// Forgotten, then given an older copy back (read repair): the node must not continue the
/// actor from the older copy's counter.
#[test]
fn a_node_given_back_an_older_copy_does_not_mint_a_forgotten_dot_again() {
    let svc = service_with(Buckets::default(), &[1, 2]);
    let first = stamp_for(&svc, Some(2), None, "a");
    let second = stamp_for(&svc, Some(2), Some(first.version_vector().clone()), "b");
    assert!(
        svc.replica()
            .hint_delivered(&hint_for(2), &second)
            .expect("store")
    );
    svc.replica()
        .merge("b", b"k", &first)
        .expect("read repair returns {F:1}");
    let third = stamp_for(&svc, None, Some(first.version_vector().clone()), "c");
    assert_ne!(dot_of(&second, "b"), dot_of(&third, "c"));
    let mut merged = second.clone();
    merged.merge(&third, ConflictPolicy::Siblings);
    assert_eq!(merged.live_count(), 2, "b and c are concurrent: {merged:?}");
}

/// A stamp into a hint after one into the node's own copy: the copy's marker is stale once
/// the hint is gone, and must not be continued.
#[test]
fn a_stamp_kept_in_a_deleted_hint_is_not_minted_again_from_the_copy() {
    let svc = service_with(Buckets::default(), &[1, 2]);
    let own = stamp_for(&svc, None, None, "own");
    let hinted = stamp_for(&svc, Some(2), Some(own.version_vector().clone()), "hinted");
    assert!(
        svc.replica()
            .hint_delivered(&hint_for(2), &hinted)
            .expect("store")
    );
    let next = stamp_for(&svc, None, Some(own.version_vector().clone()), "next");
    assert_ne!(dot_of(&hinted, "hinted"), dot_of(&next, "next"));
}

/// A crash (no clean stop) is a new incarnation: a marker written before it is not trusted,
/// since the stamps after it may be lost here but held by peers. A clean stop keeps the
/// actor, so version vectors do not grow with rolling restarts.
#[test]
fn a_crash_takes_a_fresh_actor_and_a_clean_restart_continues() {
    let store = Arc::new(MemoryStore::new(ME));
    let on = |store: &Arc<MemoryStore>| {
        let ring = Ring::new(RingConfig::of(members(&[1]))).expect("ring");
        let (_tx, rx) = watch::channel(Arc::new(ClusterView::fixed(ring)));
        Service::new(store.clone(), rx, Limits::default())
    };
    let before = stamp_for(&on(&store), None, None, "v1");
    // "Crash": a new node on the same store without `close`.
    let crashed = on(&store);
    let after_crash = stamp_for(&crashed, None, Some(before.version_vector().clone()), "v2");
    assert_ne!(
        dot_of(&before, "v1").actor,
        dot_of(&after_crash, "v2").actor
    );

    crashed
        .replica()
        .actors()
        .close(store.as_ref())
        .expect("clean stop");
    let restarted = on(&store);
    let after_restart = stamp_for(
        &restarted,
        None,
        Some(after_crash.version_vector().clone()),
        "v3",
    );
    let (d2, d3) = (dot_of(&after_crash, "v2"), dot_of(&after_restart, "v3"));
    assert_eq!(d3.actor, d2.actor, "a clean restart continues the actor");
    assert_eq!(d3.counter, d2.counter + 1);
}

/// A context one short of the limit, so that the next stamp takes the last counter.
fn forged_below_limit() -> VersionVector {
    let mut context = VersionVector::new();
    context.observe(Dot {
        actor: ME.into(),
        counter: u64::MAX - 1,
    });
    context
}

/// A node not in the ring (leaving, or gone) takes no hints: it could not place them before
/// the transfer that tells the operator it may be stopped is done. Writes to it as a plain
/// replica (a transfer streaming to it, read repair) are still taken.
#[test]
fn a_node_leaving_the_ring_refuses_hints_and_takes_plain_merges() {
    let svc = service_with(Buckets::default(), &[2, 3, 4]);
    let state = stamp_for(&service_with(Buckets::default(), &[1, 2]), None, None, "v");
    let hinted = svc.replica().merge_hint("b", b"k", NodeId(2), &state);
    assert!(
        matches!(hinted, Err(WireError::Overloaded { .. })),
        "{hinted:?}"
    );
    let write = Write {
        context: None,
        value: Some(Bytes::from("w")),
        overwrite: false,
        write_id: None,
        hint: Some(NodeId(2)),
        ttl_ms: None,
    };
    let stamped = svc.replica().stamp("b", b"k", write);
    assert!(
        matches!(stamped, Err(WireError::Overloaded { .. })),
        "{stamped:?}"
    );
    svc.replica()
        .merge("b", b"k", &state)
        .expect("a plain merge is taken");
    assert_eq!(stats(&svc).hints_pending, 0);
}

/// A copy without a hint sent to a node that holds the key on neither side of the ring both
/// sides route by is refused with `NotOwner` (the sender re-plans); with a hint it is taken
/// (fallbacks never own what they hold), and the key's own homes take it either way.
#[test]
fn a_copy_misrouted_to_a_non_owner_is_refused_and_a_hinted_one_is_taken() {
    let ids = [1, 2, 3, 4, 5];
    let svc = service_with(Buckets::default(), &ids);
    let ring = Ring::new(RingConfig::of(members(&ids))).expect("ring");
    let owned = |key: &[u8]| ring.home_replicas("b", key).iter().any(|m| m.id == ME);
    let foreign = (0..1000)
        .map(|i| format!("k{i}").into_bytes())
        .find(|k| !owned(k))
        .expect("a key node 1 does not own");
    let mine = (0..1000)
        .map(|i| format!("k{i}").into_bytes())
        .find(|k| owned(k))
        .expect("a key node 1 owns");
    let state = stamp_for(&service_with(Buckets::default(), &[1]), None, None, "v");
    let merge = |key: &[u8], hint: Option<NodeId>| Request::Merge {
        bucket: "b".into(),
        key: Bytes::copy_from_slice(key),
        state: state.clone(),
        hint,
        sync: false,
        entry: false,
        ttl_ms: None,
    };
    let epoch = svc.epoch();
    assert!(matches!(
        svc.handle(epoch, merge(&foreign, None)),
        Err(WireError::NotOwner { .. })
    ));
    let put = Request::Put {
        bucket: "b".into(),
        key: Bytes::copy_from_slice(&foreign),
        context: None,
        value: Some(Bytes::from("p")),
        overwrite: false,
        write_id: None,
        hint: None,
        sync: false,
        defer_sync: false,
        ttl_ms: None,
    };
    assert!(matches!(
        svc.handle(epoch, put),
        Err(WireError::NotOwner { .. })
    ));
    assert_eq!(
        svc.store().get("b", &foreign).expect("get"),
        None,
        "nothing stored"
    );
    svc.handle(epoch, merge(&foreign, Some(NodeId(2))))
        .expect("a hinted copy is taken");
    svc.handle(epoch, merge(&mine, None))
        .expect("a home takes its copy");
}

/// A copy routed by a newer ring than this node's waits until the node has fetched that ring,
/// and is then judged by it: refused where the newer ring moved the key away, rather than
/// taken by the older ring's reckoning and cleaned up later. A node that cannot catch up
/// within `CATCH_UP` serves the copy, as the sender's ring names it a home.
#[tokio::test(start_paused = true)]
async fn a_copy_routed_by_a_newer_ring_is_judged_by_that_ring_once_fetched() {
    let alone = Ring::new(RingConfig::of(members(&[1]))).expect("ring");
    let (tx, rx) = watch::channel(Arc::new(ClusterView::fixed(alone)));
    let svc = Service::new(Arc::new(MemoryStore::new(ME)), rx, Limits::default());
    let ids = [1, 2, 3, 4, 5];
    let newer = Ring::new(RingConfig {
        version: svc.epoch().version + 1,
        ..RingConfig::of(members(&ids))
    })
    .expect("ring");
    let mut foreign = (0..1000)
        .map(|i| format!("k{i}").into_bytes())
        .filter(|k| !newer.home_replicas("b", k).iter().any(|m| m.id == ME));
    let (moved, unjudged) = (
        foreign.next().expect("a key"),
        foreign.next().expect("a key"),
    );
    let state = stamp_for(&service_with(Buckets::default(), &[1]), None, None, "v");
    let merge = |key: &[u8], hint: Option<NodeId>| Request::Merge {
        bucket: "b".into(),
        key: Bytes::copy_from_slice(key),
        state: state.clone(),
        hint,
        sync: false,
        entry: false,
        ttl_ms: None,
    };
    let epoch = newer.epoch();
    assert!(svc.behind(epoch, &merge(&moved, None)));
    assert!(
        !svc.behind(epoch, &merge(&moved, Some(NodeId(2)))),
        "hinted copies are always taken"
    );
    assert!(!svc.behind(svc.epoch(), &merge(&moved, None)));

    // The keeper fetches the newer layout while the copy waits.
    let publish = tokio::spawn(async move {
        tokio::time::sleep(CATCH_UP / 5).await;
        tx.send(Arc::new(ClusterView::fixed(newer)))
            .expect("the service holds the view");
        tx
    });
    svc.catch_up(epoch).await;
    assert_eq!(svc.epoch(), epoch, "caught up before the bound");
    assert!(matches!(
        svc.handle(epoch, merge(&moved, None)),
        Err(WireError::NotOwner { .. })
    ));
    assert_eq!(svc.store().get("b", &moved).expect("get"), None);

    // A ring nobody brings: after the bound, a copy this node owns by its own ring is taken,
    // and one it does not is refused for now (its clean-up would delete it).
    let _tx = publish.await.expect("publisher");
    let newest = RingEpoch {
        version: epoch.version + 1,
        ..epoch
    };
    let started = tokio::time::Instant::now();
    svc.catch_up(newest).await;
    assert_eq!(started.elapsed(), CATCH_UP, "waited exactly the bound");
    assert!(matches!(
        svc.handle(newest, merge(&unjudged, None)),
        Err(WireError::NotReady { .. })
    ));
    let mine = (0..1000)
        .map(|i| format!("k{i}").into_bytes())
        .find(|k| svc.view().ring.is_home_replica(ME, "b", k))
        .expect("a key node 1 owns");
    svc.handle(newest, merge(&mine, None))
        .expect("an owner takes it");
}

/// Clean-up deletes a foreign copy only while the node still routes by the ring that found
/// it foreign: a newer ring may have sent the very same state here (a transfer's copy, which
/// its sender counts as delivered), and only the ring tells the two apart.
#[test]
fn a_clean_up_judged_by_an_older_ring_deletes_nothing() {
    let alone = Ring::new(RingConfig::of(members(&[1]))).expect("ring");
    let (tx, rx) = watch::channel(Arc::new(ClusterView::fixed(alone)));
    let svc = Service::new(Arc::new(MemoryStore::new(ME)), rx, Limits::default());
    let state = stamp_for(&service_with(Buckets::default(), &[1]), None, None, "v");
    svc.replica().merge("b", b"k", &state).expect("merge");
    let judged_by = svc.epoch();
    let newer = Ring::new(RingConfig {
        version: judged_by.version + 1,
        ..RingConfig::of(members(&[1, 2]))
    })
    .expect("ring");
    tx.send(Arc::new(ClusterView::fixed(newer)))
        .expect("the service holds the view");
    assert!(
        !svc.replica()
            .delete_if_unchanged("b", b"k", &state, judged_by)
            .expect("delete")
    );
    assert!(svc.store().get("b", b"k").expect("get").is_some(), "kept");
    assert!(
        svc.replica()
            .delete_if_unchanged("b", b"k", &state, svc.epoch())
            .expect("delete")
    );
    assert!(svc.store().get("b", b"k").expect("get").is_none());
}

/// An abort reaches node 1 while it holds a streaming layout but has reported the switch of
/// that very transfer already (a rival layout of the same version, such as a member's
/// address move, took it back a phase): elsewhere the switch may be settling on the strength
/// of that report and cleaning up the previous members' copies, which the abort would go
/// back to. It is refused; a node that has only streamed takes it.
#[test]
fn an_abort_is_refused_by_a_node_that_reported_the_switch_already() {
    let mut layout = Layout::default();
    layout.found(&members(&[1, 2, 3])).expect("found");
    layout
        .stage(ringkv_core::Change::Join {
            id: NodeId(4),
            addr: "127.0.0.1:4".into(),
            weight: 1,
            zone: String::new(),
        })
        .expect("stage");
    layout.commit().expect("commit");
    let id = layout.transition.as_ref().expect("transfer").id;
    let base = layout.version;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(ME));
    let keeper = Arc::new(Keeper::detached(store.clone(), layout.clone()));
    let ring = Ring::new(layout.ring_config(Buckets::default(), 0)).expect("ring");
    let (_tx, rx) = watch::channel(Arc::new(ClusterView::fixed(ring)));
    let parts = NodeParts::new(store, rx, Limits::default()).with_keeper(keeper.clone(), 1);
    let svc = Service::from_parts(&parts);
    let epoch = svc.epoch();

    keeper.set_report(id, Step::Switched);
    match svc.handle(epoch, Request::Abort { base }) {
        Err(WireError::Layout {
            error: Some(LayoutError::AlreadySwitched(node)),
            ..
        }) => assert_eq!(node, ME),
        other => panic!("expected AlreadySwitched, got {other:?}"),
    }
    assert_eq!(keeper.layout().version, base, "nothing changed");

    // A fresh keeper whose node has only streamed: the abort goes through.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(ME));
    let keeper = Arc::new(Keeper::detached(store.clone(), layout.clone()));
    keeper.set_report(id, Step::Streamed);
    let ring = Ring::new(layout.ring_config(Buckets::default(), 0)).expect("ring");
    let (_tx, rx) = watch::channel(Arc::new(ClusterView::fixed(ring)));
    let parts = NodeParts::new(store, rx, Limits::default()).with_keeper(keeper.clone(), 1);
    let svc = Service::from_parts(&parts);
    match svc.handle(svc.epoch(), Request::Abort { base }) {
        Ok(Response::Layout(aborted)) => assert!(aborted.version > base),
        other => panic!("expected the abort to be taken, got {other:?}"),
    }
}

/// A node that is no member is not ready, though it hands out the ring: an orchestrator would
/// count it as an available replica (a wiped machine waiting to replace its member holds
/// none of that member's data). Members are ready while the quorum is alive.
#[test]
fn only_a_member_of_the_cluster_is_ready() {
    assert_eq!(
        service_with(Buckets::default(), &[1, 2, 3]).readiness(),
        Ok(())
    );
    let outsider = service_with(Buckets::default(), &[2, 3, 4]);
    let reason = outsider.readiness().expect_err("not a member");
    assert!(reason.contains("not a member"), "{reason}");
}

#[test]
fn a_batch_answers_its_gets_one_by_one_and_refuses_anything_else_in_its_place() {
    let store = Arc::new(MemoryStore::new(ME));
    let ring = Ring::new(RingConfig::of(members(&[1]))).expect("ring");
    let (_tx, rx) = watch::channel(Arc::new(ClusterView::fixed(ring)));
    let svc = Service::new(store.clone(), rx, Limits::default());
    let epoch = svc.epoch();
    svc.handle(epoch, overwrite_put("one", false, false))
        .expect("put");
    let read = || Request::Get {
        bucket: "b".into(),
        key: Bytes::from_static(b"k"),
    };
    let batch = |requests: Vec<Request>| Request::Batch { requests };
    assert_eq!(svc.lane(&batch(vec![read(), read()])), Lane::Inline);
    assert_eq!(
        svc.lane(&batch((0..65).map(|_| read()).collect())),
        Lane::Blocking,
        "a long batch would hold up the connection"
    );
    // A write in a batch would skip what a lone write gets on its way in (a newer ring
    // awaited, its sync): refused in its place, and nothing is written.
    let mixed = batch(vec![read(), overwrite_put("two", true, false), read()]);
    assert_eq!(svc.lane(&mixed), Lane::Blocking);
    let Ok(Response::Batch { results }) = svc.handle(epoch, mixed) else {
        panic!("a batch is answered with a batch");
    };
    assert_eq!(results.len(), 3);
    for i in [0, 2] {
        assert!(
            matches!(&results[i], Ok(Response::Value { state: Some(s) }) if s.live_count() == 1),
            "{:?}",
            results[i]
        );
    }
    assert!(matches!(results[1], Err(WireError::InvalidRequest { .. })));
    assert_eq!(store.syncs(), 0);
    let values: Vec<_> = get(&svc)
        .map(|s| s.live().filter_map(|s| s.value.clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        values,
        vec![Bytes::from_static(b"one")],
        "the batched put was not applied"
    );
    // Nested batches are refused without being looked into, however deep.
    let mut nested = read();
    for _ in 0..200 {
        nested = batch(vec![nested]);
    }
    assert_eq!(svc.lane(&nested), Lane::Blocking);
    assert!(matches!(
        svc.handle(epoch, nested),
        Ok(Response::Batch { results }) if matches!(results[..], [Err(WireError::InvalidRequest { .. })])
    ));
}

#[test]
fn a_batch_answer_never_outgrows_its_frame_even_for_its_first_key() {
    let svc = service();
    let epoch = svc.epoch();
    // Two concurrent writes of nearly 4 MiB: one state of half a frame.
    let large = "x".repeat((4 << 20) - 16);
    for _ in 0..2 {
        svc.handle(epoch, put(None, &large, false)).expect("put");
    }
    assert_eq!(get(&svc).map(|s| s.live_count()), Some(2));
    let read = || Request::Get {
        bucket: "b".into(),
        key: Bytes::from_static(b"k"),
    };
    let Ok(Response::Batch { results }) = svc.handle(
        epoch,
        Request::Batch {
            requests: vec![read(), read()],
        },
    ) else {
        panic!("a batch is answered with a batch");
    };
    // Both are refused, to be read alone (where the answer has the whole frame); the answer
    // encodes well under the limit.
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(WireError::Overloaded { .. }))),
        "{:?}",
        results.iter().map(|r| r.is_ok()).collect::<Vec<_>>()
    );
    let mut encoded = Vec::new();
    ciborium::into_writer(&Response::Batch { results }, &mut encoded).expect("encode");
    assert!(encoded.len() < 1024, "{} bytes", encoded.len());
}
