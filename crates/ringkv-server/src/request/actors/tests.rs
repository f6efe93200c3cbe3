use std::sync::Arc;

use super::*;
use crate::storage::MemoryStore;

fn store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(NodeId(5)))
}

#[test]
fn a_clean_stop_continues_the_incarnation_and_a_crash_does_not() {
    let store = store();
    let first = Actors::open(store.as_ref());
    let a = first.fresh();
    first.close(store.as_ref()).expect("close");

    let second = Actors::open(store.as_ref());
    assert_eq!(second.incarnation(), first.incarnation(), "clean restart");
    let b = second.fresh();
    assert_eq!(
        b.epoch,
        a.epoch + 1,
        "epochs continue where the clean stop left them"
    );
    // No close: this run is cut short.

    let third = Actors::open(store.as_ref());
    assert_ne!(
        third.incarnation(),
        second.incarnation(),
        "a crash is a new incarnation"
    );
    assert_ne!(third.fresh(), b);
}

#[test]
fn a_restored_copy_of_a_clean_stop_takes_a_new_incarnation() {
    let store = store();
    let first = Actors::open(store.as_ref());
    first.close(store.as_ref()).expect("close");
    Actors::forget_clean_stop(store.as_ref()).expect("forget");
    let restored = Actors::open(store.as_ref());
    assert_ne!(restored.incarnation(), first.incarnation());
}

#[test]
fn a_marker_is_continued_only_when_it_is_provably_the_last_dot() {
    let store = store();
    let actors = Actors::open(store.as_ref());
    let permit = actors.permit(store.as_ref()).expect("permit");
    let none = VersionVector::new();
    let mut state = SiblingSet::new();
    let x = actors.choose(&permit, &state, &none, None);
    let dot = state.stamp(x, &none, None, 1, None).expect("stamp");
    let marker = Some(actors.minted(dot));
    assert_eq!(
        actors.choose(&permit, &state, &none, marker),
        x,
        "the marker matches the state: continue"
    );
    // The state (or the context) knows a later dot of x than the marker: fresh.
    let mut later = state.clone();
    later.stamp(x, &none, None, 2, None).expect("stamp");
    assert_ne!(actors.choose(&permit, &later, &none, marker), x);
    assert_ne!(
        actors.choose(&permit, &state, later.version_vector(), marker),
        x
    );
    // No marker (a forgotten record, a state received back): fresh.
    assert_ne!(actors.choose(&permit, &state, &none, None), x);
    // A marker of another incarnation: fresh.
    let old = Some(Minted {
        dot,
        incarnation: actors.incarnation() ^ 1,
    });
    assert_ne!(actors.choose(&permit, &state, &none, old), x);
}

#[test]
fn once_a_clean_stop_is_recorded_nothing_more_is_stamped() {
    let store = store();
    let actors = Actors::open(store.as_ref());
    drop(actors.permit(store.as_ref()).expect("permit while running"));
    actors.close(store.as_ref()).expect("close");
    assert!(
        actors.permit(store.as_ref()).is_err(),
        "a stamp after the clean stop would be minted again by the next run"
    );
}

#[test]
fn a_checkpoint_never_carries_the_last_runs_clean_stop() {
    let store = store();
    Actors::open(store.as_ref())
        .close(store.as_ref())
        .expect("close");
    let running = Actors::open(store.as_ref());
    running.before_checkpoint(store.as_ref()).expect("recorded");
    // What a copy of the store now holds: a run that did not stop.
    let copy = Actors::open(store.as_ref());
    assert_ne!(copy.incarnation(), running.incarnation());
}
