use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

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
            node: A,
            counter: 1,
        },
        10,
        value("old"),
    );
    let new = SiblingSet::lww(
        Dot {
            node: B,
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
    },
    /// Replica `to` merges in replica `from`'s state.
    Merge { from: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0..3usize,
            prop::option::of(0..3usize),
            prop::bool::weighted(0.1)
        )
            .prop_map(|(at, read_from, tombstone)| Step::Put {
                at,
                read_from,
                tombstone
            }),
        (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Merge { from, to }),
    ]
}

/// Plays a history; returns the replicas and every write as (dot, context it was made with).
fn play(steps: &[Step]) -> ([SiblingSet; 3], Vec<(Dot, VersionVector)>) {
    let mut replicas: [SiblingSet; 3] = Default::default();
    let mut writes = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match *s {
            Step::Put {
                at,
                read_from,
                tombstone,
            } => {
                let ctx = read_from
                    .map(|r| replicas[r].version_vector().clone())
                    .unwrap_or_default();
                let v = if tombstone {
                    None
                } else {
                    Some(Bytes::from(i.to_string()))
                };
                let dot = replicas[at]
                    .stamp(NodeId(at as u64 + 1), &ctx, v, i as u64, None)
                    .expect("stamp");
                writes.push((dot, ctx));
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
            NodeId(writer as u64 + 1), read.version_vector(), Some(Bytes::from("w")), 999, None).expect("stamp");
        // Concurrent activity after the read, which the write must not hide.
        let mut concurrent = BTreeSet::new();
        for (i, s) in later.iter().enumerate() {
            if let Step::Put { at, .. } = *s
                && at != writer
            {
                let ctx = VersionVector::new();
                concurrent.insert(replicas[at].stamp(
                    NodeId(at as u64 + 1), &ctx, Some(Bytes::from(format!("c{i}"))), 1000, None).expect("stamp"));
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

/// A history where some writes are retried: the same write id (and context) stamped again at
/// another replica, as a client does when a coordinator timed out.
#[derive(Clone, Debug)]
enum RetryStep {
    Put { at: usize, read_from: Option<usize> },
    Retry { nth: usize, at: usize },
    Merge { from: usize, to: usize },
}

fn retry_step() -> impl Strategy<Value = RetryStep> {
    prop_oneof![
        (0..3usize, prop::option::of(0..3usize))
            .prop_map(|(at, read_from)| RetryStep::Put { at, read_from }),
        (0..64usize, 0..3usize).prop_map(|(nth, at)| RetryStep::Retry { nth, at }),
        (0..3usize, 0..3usize).prop_map(|(from, to)| RetryStep::Merge { from, to }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Retries never show up as two siblings, and a write none of whose stamps was seen by a
    /// later writer is never lost, whatever the merge order.
    #[test]
    fn a_retried_write_is_one_sibling_and_is_never_lost(
        history in prop::collection::vec(retry_step(), 0..40),
        order in Just([0usize, 1, 2]).prop_shuffle(),
    ) {
        let mut replicas: [SiblingSet; 3] = Default::default();
        // Per write id: its context and every dot it was stamped with.
        let mut writes: Vec<(VersionVector, Vec<Dot>)> = Vec::new();
        for step in &history {
            match *step {
                RetryStep::Put { at, read_from } => {
                    let ctx = read_from
                        .map(|r| replicas[r].version_vector().clone())
                        .unwrap_or_default();
                    let id = writes.len() as u64;
                    let dot = replicas[at].stamp(
                        NodeId(at as u64 + 1), &ctx, Some(Bytes::from(id.to_string())), 0, Some(id)).expect("stamp");
                    writes.push((ctx, vec![dot]));
                }
                RetryStep::Retry { nth, at } if !writes.is_empty() => {
                    let id = nth % writes.len();
                    let ctx = writes[id].0.clone();
                    let dot = replicas[at].stamp(
                        NodeId(at as u64 + 1), &ctx, Some(Bytes::from(id.to_string())), 0,
                        Some(id as u64)).expect("stamp");
                    writes[id].1.push(dot);
                }
                RetryStep::Retry { .. } => {}
                RetryStep::Merge { from, to } => {
                    let src = replicas[from].clone();
                    replicas[to].merge(&src, ConflictPolicy::Siblings);
                }
            }
        }
        let merged = merge_all(&replicas, &order);
        let ids: Vec<u64> = merged.siblings().iter().filter_map(|s| s.write_id).collect();
        let unique: BTreeSet<u64> = ids.iter().copied().collect();
        prop_assert_eq!(ids.len(), unique.len(), "a write id appears twice");
        for (id, (_, dots)) in writes.iter().enumerate() {
            let seen = dots.iter().any(|d| writes.iter().any(|(ctx, _)| ctx.covers(*d)));
            if !seen {
                prop_assert!(unique.contains(&(id as u64)), "write {} lost", id);
            }
        }
    }
}
