use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

use crate::node::NodeId;

const A: Actor = Actor {
    node: NodeId(1),
    epoch: 0,
};
const B: Actor = Actor {
    node: NodeId(2),
    epoch: 7,
};

/// The actor replica `at` stamps under in the generated histories.
fn actor(at: usize) -> Actor {
    Actor {
        node: NodeId(at as u64 + 1),
        epoch: 1,
    }
}

fn value(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

fn live_values(set: &SiblingSet) -> BTreeSet<Bytes> {
    set.live().filter_map(|s| s.value.clone()).collect()
}

#[test]
fn a_write_with_the_read_context_replaces_what_was_read() {
    let mut state = SiblingSet::new();
    state
        .stamp(A, &VersionVector::new(), value("v1"), 1, None)
        .expect("stamp");
    let read = state.version_vector().clone();
    state.stamp(A, &read, value("v2"), 2, None).expect("stamp");
    assert_eq!(live_values(&state), BTreeSet::from([Bytes::from("v2")]));
}

#[test]
fn two_writes_from_one_context_both_survive() {
    let mut state = SiblingSet::new();
    state
        .stamp(A, &VersionVector::new(), value("v1"), 1, None)
        .expect("stamp");
    let read = state.version_vector().clone();
    state
        .stamp(A, &read, value("left"), 2, None)
        .expect("stamp");
    state
        .stamp(B, &read, value("right"), 3, None)
        .expect("stamp");
    assert_eq!(
        live_values(&state),
        BTreeSet::from([Bytes::from("left"), Bytes::from("right")])
    );
    // Resolving with the merged context leaves exactly one value.
    let merged = state.version_vector().clone();
    state
        .stamp(A, &merged, value("both"), 4, None)
        .expect("stamp");
    assert_eq!(live_values(&state), BTreeSet::from([Bytes::from("both")]));
}

#[test]
fn a_stale_context_never_overwrites_a_newer_value() {
    let mut state = SiblingSet::new();
    state
        .stamp(A, &VersionVector::new(), value("v1"), 1, None)
        .expect("stamp");
    let stale = state.version_vector().clone();
    let fresh = {
        state.stamp(A, &stale, value("v2"), 2, None).expect("stamp");
        state.version_vector().clone()
    };
    assert!(fresh.descends(&stale));
    state
        .stamp(B, &stale, value("late"), 3, None)
        .expect("stamp");
    assert_eq!(
        live_values(&state),
        BTreeSet::from([Bytes::from("v2"), Bytes::from("late")])
    );
}

#[test]
fn a_delete_is_a_tombstone_that_reads_as_absent_with_a_context() {
    let mut state = SiblingSet::new();
    state
        .stamp(A, &VersionVector::new(), value("v1"), 1, None)
        .expect("stamp");
    let read = state.version_vector().clone();
    state.stamp(A, &read, None, 2, None).expect("stamp");
    assert!(state.is_absent());
    assert_eq!(state.siblings().len(), 1);
    assert!(!state.version_vector().is_empty());
    // A replica that missed the delete cannot bring the value back by merging.
    let mut stale_replica = SiblingSet::new();
    stale_replica
        .stamp(A, &VersionVector::new(), value("v1"), 1, None)
        .expect("stamp");
    state.merge(&stale_replica, ConflictPolicy::Siblings);
    assert!(state.is_absent());
}

#[test]
fn lww_keeps_the_latest_timestamp_whatever_the_order() {
    let old = SiblingSet::lww(
        Dot {
            actor: A,
            counter: 1,
        },
        10,
        value("old"),
    );
    let new = SiblingSet::lww(
        Dot {
            actor: B,
            counter: 1,
        },
        20,
        value("new"),
    );
    let mut x = old.clone();
    x.merge(&new, ConflictPolicy::Lww);
    let mut y = new.clone();
    y.merge(&old, ConflictPolicy::Lww);
    assert_eq!(x, y);
    assert_eq!(live_values(&x), BTreeSet::from([Bytes::from("new")]));
}

#[test]
fn merge_reports_whether_anything_changed() {
    let mut a = SiblingSet::new();
    a.stamp(A, &VersionVector::new(), value("v1"), 1, None)
        .expect("stamp");
    let copy = a.clone();
    assert!(!a.merge(&copy, ConflictPolicy::Siblings));
    let mut b = SiblingSet::new();
    b.stamp(B, &VersionVector::new(), value("v2"), 1, None)
        .expect("stamp");
    assert!(a.merge(&b, ConflictPolicy::Siblings));
}

#[test]
fn validate_rejects_corrupt_states() {
    let mut good = SiblingSet::new();
    good.stamp(A, &VersionVector::new(), value("v1"), 1, None)
        .expect("stamp");
    assert_eq!(good.validate(ConflictPolicy::Siblings), Ok(()));
    let uncovered = SiblingSet {
        vv: VersionVector::new(),
        siblings: good.siblings.clone(),
    };
    assert!(matches!(
        uncovered.validate(ConflictPolicy::Siblings),
        Err(InvalidSiblings::Uncovered { .. })
    ));
    let mut repeated = good.clone();
    repeated.siblings.push(repeated.siblings[0].clone());
    assert_eq!(
        repeated.validate(ConflictPolicy::Siblings),
        Err(InvalidSiblings::NotCanonical)
    );
}

/// One step of a random history over three replicas of one key.
#[derive(Clone, Debug)]
enum Step {
    /// Replica `at` stamps a write whose context is what replica `read_from` held (or nothing).
    Put {
        at: usize,
        read_from: Option<usize>,
        tombstone: bool,
        /// The write expires this many steps after it is made.
        ttl: Option<u64>,
    },
    /// Replica `at` drops the values expired `lag` steps from now: replicas reclaim at
    /// different times, as their clocks and compactions differ.
    Strip { at: usize, lag: u64 },
    /// Replica `at` extends what replica `read_from` holds live to `by` steps from now (a
    /// touch after a read); refused by `at` if expired or missing there.
    Touch {
        at: usize,
        read_from: usize,
        by: u64,
    },
    /// Replica `at` stamps the `nth` earlier write again, with its id and context, as a
    /// client does when its coordinator timed out (unless `at` already holds the id).
    Retry { nth: usize, at: usize },
    /// Replica `to` merges in replica `from`'s state.
    Merge { from: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0..3usize,
            prop::option::of(0..3usize),
            prop::bool::weighted(0.1),
            prop::option::weighted(0.3, 0..8u64),
        )
            .prop_map(|(at, read_from, tombstone, ttl)| Step::Put {
                at,
                read_from,
                tombstone,
                ttl,
            }),
        (0..3usize, 0..6u64).prop_map(|(at, lag)| Step::Strip { at, lag }),
        (0..3usize, 0..3usize, 1..10u64).prop_map(|(at, read_from, by)| Step::Touch {
            at,
            read_from,
            by
        }),
        (0..64usize, 0..3usize).prop_map(|(nth, at)| Step::Retry { nth, at }),
        (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Merge { from, to }),
    ]
}

/// Plays a history; returns the replicas and every stamp as (dot, context it was made with).
/// Write `i` has the write id `i`; a retry stamps an earlier id again.
fn play(steps: &[Step]) -> ([SiblingSet; 3], Vec<(Dot, VersionVector)>) {
    let mut replicas: [SiblingSet; 3] = Default::default();
    let mut writes = Vec::new();
    // Per write id: the step that made it, its context and its value.
    let mut made: Vec<(u64, VersionVector, Option<Bytes>)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match *s {
            Step::Put {
                at,
                read_from,
                tombstone,
                ttl,
            } => {
                let ctx = read_from
                    .map(|r| replicas[r].version_vector().clone())
                    .unwrap_or_default();
                let v = if tombstone {
                    None
                } else {
                    Some(Bytes::from(i.to_string()))
                };
                // Every third write has no id (clients older than write ids).
                let id = (i % 3 != 0).then_some(i as u64);
                let dot = replicas[at]
                    .stamp(actor(at), &ctx, v.clone(), i as u64, id)
                    .expect("stamp");
                if !tombstone {
                    replicas[at].set_expiry(dot, ttl.map(|t| i as u64 + t));
                }
                if let Some(id) = id {
                    made.push((id, ctx.clone(), v));
                }
                writes.push((dot, ctx));
            }
            Step::Retry { nth, at } if !made.is_empty() => {
                let (id, ctx, v) = made[nth % made.len()].clone();
                if replicas[at].dot_of_write(id).is_none() {
                    let dot = replicas[at]
                        .stamp(actor(at), &ctx, v, i as u64, Some(id))
                        .expect("stamp");
                    writes.push((dot, ctx));
                }
            }
            Step::Retry { .. } => {}
            Step::Strip { at, lag } => {
                replicas[at].strip_expired((i as u64).saturating_sub(lag));
            }
            Step::Touch { at, read_from, by } => {
                let dots: Vec<Dot> = replicas[read_from].live().map(|s| s.dot).collect();
                let _ = replicas[at].touch(&dots, i as u64 + by, i as u64);
            }
            Step::Merge { from, to } => {
                let src = replicas[from].clone();
                replicas[to].merge(&src, ConflictPolicy::Siblings);
            }
        }
    }
    (replicas, writes)
}

fn merge_all(states: &[SiblingSet], order: &[usize]) -> SiblingSet {
    let mut acc = SiblingSet::new();
    for &i in order {
        acc.merge(&states[i], ConflictPolicy::Siblings);
    }
    acc
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// States are drawn from snapshots of one history, as in a real cluster where a dot names
    /// one write only (two independent histories would mint the same dot for different values).
    #[test]
    fn merge_is_commutative_associative_idempotent(
        history in prop::collection::vec(step(), 0..40),
        pick in (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<prop::sample::Index>()),
    ) {
        let snapshots: Vec<SiblingSet> = (0..=history.len())
            .flat_map(|len| play(&history[..len]).0)
            .collect();
        let a = &snapshots[pick.0.index(snapshots.len())];
        let b = &snapshots[pick.1.index(snapshots.len())];
        let c = &snapshots[pick.2.index(snapshots.len())];
        for policy in [ConflictPolicy::Siblings, ConflictPolicy::Lww] {
            let mut ab = a.clone();
            ab.merge(b, policy);
            let mut ba = b.clone();
            ba.merge(a, policy);
            prop_assert_eq!(&ab, &ba, "commutative");

            let mut ab_c = ab.clone();
            ab_c.merge(c, policy);
            let mut bc = b.clone();
            bc.merge(c, policy);
            let mut a_bc = a.clone();
            a_bc.merge(&bc, policy);
            prop_assert_eq!(&ab_c, &a_bc, "associative");

            // Merging a state in twice is the same as merging it once (and, for DVV sets,
            // the same as not merging it at all: a state is its own join).
            let mut aa = a.clone();
            aa.merge(a, policy);
            let mut again = aa.clone();
            prop_assert!(!again.merge(a, policy), "idempotent merge reported a change");
            prop_assert_eq!(&again, &aa, "idempotent");
            if policy == ConflictPolicy::Siblings {
                prop_assert_eq!(&aa, a, "a DVV set is its own join");
            }
        }
    }

    /// No acknowledged write is ever lost: after any history, merged in any order, the
    /// surviving siblings are exactly the writes that no other write's context covered.
    #[test]
    fn exactly_the_uncovered_writes_survive_any_merge_order(
        history in prop::collection::vec(step(), 0..40),
        order in Just([0usize, 1, 2]).prop_shuffle(),
    ) {
        let (replicas, writes) = play(&history);
        let merged = merge_all(&replicas, &order);
        let survivors: BTreeSet<Dot> = merged.siblings().iter().map(|s| s.dot).collect();
        let expected: BTreeSet<Dot> = writes
            .iter()
            .filter(|(dot, _)| !writes.iter().any(|(_, ctx)| ctx.covers(*dot)))
            .map(|(dot, _)| *dot)
            .collect();
        prop_assert_eq!(survivors, expected);
        prop_assert_eq!(merged.validate(ConflictPolicy::Siblings), Ok(()));
    }

    /// A write made with a read's context supersedes exactly what that read saw: every sibling
    /// of the read is gone, every concurrent sibling the read did not see is still there.
    #[test]
    fn a_write_supersedes_exactly_what_its_read_saw(
        history in prop::collection::vec(step(), 1..40),
        later in prop::collection::vec(step(), 0..12),
        reader in 0..3usize,
        writer in 0..3usize,
    ) {
        let (mut replicas, _) = play(&history);
        let read = replicas[reader].clone();
        let dot = replicas[writer].stamp(
            actor(writer), read.version_vector(), Some(Bytes::from("w")), 999, None).expect("stamp");
        // Concurrent activity after the read, which the write must not hide.
        let mut concurrent = BTreeSet::new();
        for (i, s) in later.iter().enumerate() {
            if let Step::Put { at, .. } = *s
                && at != writer
            {
                let ctx = VersionVector::new();
                concurrent.insert(replicas[at].stamp(
                    actor(at), &ctx, Some(Bytes::from(format!("c{i}"))), 1000, None).expect("stamp"));
            }
        }
        let merged = merge_all(&replicas, &[0, 1, 2]);
        let survivors: BTreeSet<Dot> = merged.siblings().iter().map(|s| s.dot).collect();
        prop_assert!(survivors.contains(&dot));
        for s in read.siblings() {
            prop_assert!(!survivors.contains(&s.dot), "read sibling {:?} survived", s.dot);
        }
        for c in &concurrent {
            prop_assert!(survivors.contains(c), "concurrent write {:?} lost", c);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A write stamped twice (a retry) is shown to readers once, and a write none of whose
    /// stamps a later writer saw is never lost, whatever the merge order. (The merge laws with
    /// retries in play are `merge_is_commutative_associative_idempotent`: its histories
    /// retry too.)
    #[test]
    fn a_retried_write_is_shown_once_and_is_never_lost(
        history in prop::collection::vec(step(), 0..40),
        order in Just([0usize, 1, 2]).prop_shuffle(),
    ) {
        let (replicas, stamps) = play(&history);
        let merged = merge_all(&replicas, &order);
        let shown: Vec<u64> = merged.writes().filter_map(|s| s.write_id).collect();
        let unique: BTreeSet<u64> = shown.iter().copied().collect();
        prop_assert_eq!(shown.len(), unique.len(), "a write id is shown twice");
        // Every live write is shown: each id once, and every sibling without an id.
        let live_ids: BTreeSet<u64> = merged.live().filter_map(|s| s.write_id).collect();
        prop_assert_eq!(&unique, &live_ids, "a live write is hidden");
        let anonymous = merged.live().filter(|s| s.write_id.is_none()).count();
        prop_assert_eq!(
            merged.writes().filter(|s| s.write_id.is_none()).count(),
            anonymous
        );
        prop_assert_eq!(merged.write_count(), unique.len() + anonymous);
        for (dot, _) in &stamps {
            let covered = stamps.iter().any(|(_, ctx)| ctx.covers(*dot));
            let kept = merged.siblings().iter().any(|s| s.dot == *dot);
            if !covered {
                prop_assert!(kept, "stamp {} lost", dot);
            }
        }
    }
}

/// The review's case against deduplicating in merge: a put applied at H1 though its
/// coordinator timed out, retried and stamped at H2. A reader that saw only H2's copy deletes
/// with `{H2:1}`. The H1 stamp was never seen by that reader, so it stays, as a sibling beside
/// the tombstone, on every replica alike; and a reader of the merged state sees both dots and
/// its delete removes both.
#[test]
fn both_stamps_of_a_retried_write_stay_until_a_context_covers_each() {
    let (h1, h2, d) = (actor(0), actor(1), actor(2));
    let mut at_h1 = SiblingSet::new();
    at_h1
        .stamp(h1, &VersionVector::new(), value("x"), 1, Some(9))
        .expect("stamp");
    let mut at_h2 = SiblingSet::new();
    at_h2
        .stamp(h2, &VersionVector::new(), value("x"), 2, Some(9))
        .expect("stamp");
    let mut deleted = at_h2.clone();
    deleted
        .stamp(d, at_h2.version_vector(), None, 3, Some(10))
        .expect("stamp");

    let mut one = at_h1.clone();
    one.merge(&deleted, ConflictPolicy::Siblings);
    let mut other = deleted.clone();
    other.merge(&at_h1, ConflictPolicy::Siblings);
    assert_eq!(
        one, other,
        "every replica ends the same, whatever the order"
    );
    assert_eq!(
        one.write_count(),
        1,
        "the H1 stamp was not seen by the delete"
    );

    let mut merged = at_h1.clone();
    merged.merge(&at_h2, ConflictPolicy::Siblings);
    assert_eq!(merged.write_count(), 1, "one write, shown once");
    assert_eq!(merged.live_count(), 2, "kept under both its dots");
    let read = merged.version_vector().clone();
    merged.stamp(d, &read, None, 4, Some(11)).expect("stamp");
    merged.merge(&at_h1, ConflictPolicy::Siblings);
    merged.merge(&at_h2, ConflictPolicy::Siblings);
    assert!(
        merged.is_absent(),
        "a delete from the merged read covers both stamps"
    );
}

#[test]
fn an_exhausted_counter_is_an_error_not_a_panic() {
    let mut state = SiblingSet::new();
    let forged: VersionVector = [(A, u64::MAX)].into_iter().collect();
    assert_eq!(
        state.stamp(A, &forged, value("v"), 1, None),
        Err(StampError::CounterExhausted { actor: A })
    );
    assert_eq!(state, SiblingSet::new(), "nothing changed");
    assert!(
        state.stamp(B, &forged, value("v"), 1, None).is_ok(),
        "another actor still can"
    );
}

/// The review's case against a compaction that drops expired records whole: v1 (no expiry)
/// is superseded by v2, which expires. Once v2's value is reclaimed, a stale replica that
/// still holds v1 merges in, and v1 must not come back: the expired sibling keeps its dot and
/// the version vector that covers v1.
#[test]
fn an_expired_sibling_still_covers_what_it_superseded() {
    let mut stale = SiblingSet::new();
    stale
        .stamp(A, &VersionVector::new(), value("v1"), 1, None)
        .expect("stamp");
    let mut fresh = stale.clone();
    let read = fresh.version_vector().clone();
    let v2 = fresh.stamp(A, &read, value("v2"), 2, None).expect("stamp");
    fresh.set_expiry(v2, Some(100));

    assert_eq!(fresh.strip_expired(99), 0, "not expired yet");
    assert_eq!(live_values(&fresh), BTreeSet::from([Bytes::from("v2")]));
    assert_eq!(fresh.strip_expired(100), 2, "v2's two bytes reclaimed");
    assert!(fresh.is_absent(), "an expired value reads as absent");
    assert!(!fresh.holds_expired(100));

    for policy in [ConflictPolicy::Siblings, ConflictPolicy::Lww] {
        let mut merged = fresh.clone();
        merged.merge(&stale, policy);
        assert!(
            merged.is_absent(),
            "{policy:?}: v1 came back after v2 expired"
        );
        let mut other_way = stale.clone();
        other_way.merge(&fresh, policy);
        assert_eq!(merged, other_way, "{policy:?}: the same in either order");
    }
}

/// A replica that reclaimed a value by its own clock meets one that holds the same write
/// with a later expiry (a touch it missed): the merge keeps the value and the later expiry,
/// in either order, so a fast clock cannot cut short what the others still hold.
#[test]
fn a_reclaimed_copy_and_a_touched_copy_of_one_write_join() {
    let mut early = SiblingSet::new();
    let dot = early
        .stamp(A, &VersionVector::new(), value("s"), 1, None)
        .expect("stamp");
    early.set_expiry(dot, Some(10));
    let mut touched = early.clone();
    touched.set_expiry(dot, Some(30));
    early.strip_expired(20);
    assert!(early.is_absent());

    let mut a = early.clone();
    assert!(
        a.merge(&touched, ConflictPolicy::Siblings),
        "the merge changed it"
    );
    let mut b = touched.clone();
    assert!(
        !b.merge(&early, ConflictPolicy::Siblings),
        "nothing new for the touched copy"
    );
    assert_eq!(a, b);
    assert_eq!(a.siblings()[0].expires_ms, Some(30));
    assert_eq!(live_values(&a).len(), 1, "the value is back, until 30");
    assert_eq!(a.strip_expired(29), 0);
    assert_eq!(a.strip_expired(30), 1);
}

/// States written before expiry existed encode as they did: a sibling without an expiry
/// has no `expires_ms` field on the wire or on disk.
#[test]
fn a_sibling_without_expiry_encodes_as_before() {
    let mut state = SiblingSet::new();
    let dot = state
        .stamp(A, &VersionVector::new(), value("v"), 1, None)
        .expect("stamp");
    let mut plain = Vec::new();
    ciborium::into_writer(&state, &mut plain).expect("encode");
    assert!(!plain.windows(10).any(|w| w == b"expires_ms"));
    state.set_expiry(dot, Some(5));
    let mut expiring = Vec::new();
    ciborium::into_writer(&state, &mut expiring).expect("encode");
    assert!(expiring.windows(10).any(|w| w == b"expires_ms"));
    let back: SiblingSet = ciborium::from_reader(&expiring[..]).expect("decode");
    assert_eq!(back, state);
}

/// A touch extends the writes a read saw, and nothing else: no new sibling, no new dot, and
/// the extension travels by merge (the later expiry wins), in either order.
#[test]
fn a_touch_extends_what_was_read_and_merges_as_the_later_expiry() {
    let mut a = SiblingSet::new();
    let dot = a
        .stamp(A, &VersionVector::new(), value("session"), 1, None)
        .expect("stamp");
    a.set_expiry(dot, Some(100));
    let b = a.clone();
    assert_eq!(a.touch(&[dot], 200, 50), Ok(true));
    assert_eq!(a.touch(&[dot], 150, 60), Ok(false), "never shortened");
    assert_eq!(a.siblings().len(), 1);
    assert_eq!(a.version_vector(), b.version_vector(), "no new dot");
    let mut ab = a.clone();
    ab.merge(&b, ConflictPolicy::Siblings);
    let mut ba = b.clone();
    ba.merge(&a, ConflictPolicy::Siblings);
    assert_eq!(ab, ba);
    assert_eq!(ab.siblings()[0].expires_ms, Some(200));

    // Expired here: refused, nothing changed.
    let mut late = b.clone();
    assert_eq!(
        late.touch(&[dot], 300, 100),
        Err(TouchError::Expired { dot })
    );
    assert_eq!(late, b);
    // Not seen here: missing; superseded here: skipped.
    let mut empty = SiblingSet::new();
    assert_eq!(
        empty.touch(&[dot], 300, 10),
        Err(TouchError::Missing { dots: vec![dot] })
    );
    let mut superseded = b.clone();
    let read = superseded.version_vector().clone();
    superseded
        .stamp(A, &read, value("newer"), 2, None)
        .expect("stamp");
    assert_eq!(superseded.touch(&[dot], 300, 10), Ok(false));
}

/// Long-expired versions are dropped by a stamping node without a reader's context, and the
/// version vector still covers them: a replica's unstripped copy does not come back.
#[test]
fn forgotten_expired_versions_stay_covered() {
    let mut state = SiblingSet::new();
    let dot = state
        .stamp(A, &VersionVector::new(), value("old"), 1, None)
        .expect("stamp");
    state.set_expiry(dot, Some(10));
    let elsewhere = state.clone();
    assert_eq!(state.forget_expired(100), 0, "not stripped yet: kept");
    state.strip_expired(20);
    assert_eq!(state.forget_expired(5), 0, "expired after the cutoff: kept");
    assert_eq!(state.forget_expired(10), 1);
    assert!(state.siblings().is_empty());
    state.merge(&elsewhere, ConflictPolicy::Siblings);
    assert!(state.siblings().is_empty(), "the unstripped copy came back");
}

/// A purge measures its delay from the moment a state stopped holding a live value: the
/// latest tombstone stamp or expiry. A live value anywhere in the set means not dead at all.
#[test]
fn a_state_is_dead_since_its_last_tombstone_or_expiry() {
    let mut state = SiblingSet::new();
    assert_eq!(
        state.dead_since(0),
        Some(0),
        "nothing written: nothing to wait for"
    );
    let v1 = state
        .stamp(A, &VersionVector::new(), value("v1"), 5, None)
        .expect("stamp");
    assert_eq!(state.dead_since(100), None, "a value that never expires");
    state.set_expiry(v1, Some(50));
    assert_eq!(state.dead_since(49), None, "not expired yet");
    assert_eq!(
        state.dead_since(50),
        Some(50),
        "expired at 50, stripped or not"
    );
    state.strip_expired(60);
    assert_eq!(state.dead_since(60), Some(50));

    // A concurrent delete stamped at 70 (a second sibling, a tombstone): dead since 70.
    let mut deleted = SiblingSet::new();
    deleted
        .stamp(actor(1), &VersionVector::new(), None, 70, None)
        .expect("stamp");
    state.merge(&deleted, ConflictPolicy::Siblings);
    assert_eq!(state.siblings().len(), 2);
    assert_eq!(state.dead_since(80), Some(70));

    // A concurrent live value keeps the whole key alive.
    let mut alive = SiblingSet::new();
    alive
        .stamp(actor(2), &VersionVector::new(), value("v2"), 10, None)
        .expect("stamp");
    state.merge(&alive, ConflictPolicy::Siblings);
    assert_eq!(state.dead_since(1_000), None);

    // A copy stripped by a replica whose clock is ahead: dead here only from its expiry on.
    let mut ahead = SiblingSet::new();
    let dot = ahead
        .stamp(A, &VersionVector::new(), value("v"), 5, None)
        .expect("stamp");
    ahead.set_expiry(dot, Some(500));
    ahead.strip_expired(500);
    assert_eq!(ahead.dead_since(400), Some(500), "its end is its expiry");
}

/// Pruning keeps the entries of the actors the siblings were stamped by, counters and all,
/// and drops the rest: what the purge rule makes safe, and only then (a copy of a version
/// the dropped entries covered would merge back in, as this test shows).
#[test]
fn pruning_keeps_the_history_of_the_siblings_actors_only() {
    let mut state = SiblingSet::new();
    state
        .stamp(actor(0), &VersionVector::new(), value("v1"), 1, None)
        .expect("stamp");
    let stale = state.clone();
    let read = state.version_vector().clone();
    state
        .stamp(actor(1), &read, value("v2"), 2, None)
        .expect("stamp");
    let read = state.version_vector().clone();
    let v3 = state
        .stamp(actor(2), &read, value("v3"), 3, None)
        .expect("stamp");
    let read = state.version_vector().clone();
    let v4 = state
        .stamp(actor(2), &read, value("v4"), 4, None)
        .expect("stamp");
    assert_eq!(
        state.prunable_actors(),
        2,
        "actors 0 and 1 stamped nothing still held"
    );
    let before = state.clone();
    assert!(state.prune_history());
    assert!(!state.prune_history(), "pruned once");
    assert_eq!(state.version_vector().len(), 1);
    assert!(state.version_vector().covers(v3) && state.version_vector().covers(v4));
    assert_eq!(live_values(&state), live_values(&before));
    state
        .validate(ConflictPolicy::Siblings)
        .expect("still a valid state");
    // An unpruned copy merges back to the unpruned history: nothing lost either way.
    let mut merged = state.clone();
    merged.merge(&before, ConflictPolicy::Siblings);
    assert_eq!(merged, before);
    // Why only the purge rule may prune: a copy of v1 still held somewhere comes back.
    state.merge(&stale, ConflictPolicy::Siblings);
    assert!(live_values(&state).contains(&Bytes::from("v1")));
}
