use bytes::Bytes;
use ringkv_core::{NodeId, SiblingSet, VersionVector};

use super::*;

fn state(value: &str) -> SiblingSet {
    let mut s = SiblingSet::new();
    s.stamp(
        NodeId(1),
        &VersionVector::new(),
        Some(Bytes::copy_from_slice(value.as_bytes())),
        1,
    );
    s
}

/// The behaviour every store must have; run against each implementation below.
fn round_trips_and_separates_buckets(store: &dyn Store) {
    assert_eq!(store.get("b", b"k").expect("get"), None);
    store.put("b", b"k", &state("one")).expect("put");
    store.put("b2", b"k", &state("two")).expect("put");
    assert_eq!(store.get("b", b"k").expect("get"), Some(state("one")));
    assert_eq!(store.get("b2", b"k").expect("get"), Some(state("two")));
    // ("ab", "c") and ("a", "bc") are different keys.
    store.put("ab", b"c", &state("x")).expect("put");
    assert_eq!(store.get("a", b"bc").expect("get"), None);
    store.put("b", b"k", &state("three")).expect("overwrite");
    assert_eq!(store.get("b", b"k").expect("get"), Some(state("three")));
    assert_eq!(store.get_meta("members").expect("meta"), None);
    store.put_meta("members", b"m").expect("put meta");
    store
        .put_meta("node_id", b"not the identity")
        .expect("put meta");
    assert_eq!(
        store.get_meta("members").expect("meta"),
        Some(b"m".to_vec())
    );
    assert_ne!(store.node_id(), NodeId(0));
    store.flush().expect("flush");
}

#[test]
fn memory_store_behaves() {
    round_trips_and_separates_buckets(&MemoryStore::new(NodeId(5)));
}

#[test]
fn rocks_store_behaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    round_trips_and_separates_buckets(&RocksStore::open(dir.path()).expect("open"));
}

#[test]
fn rocks_store_keeps_its_identity_and_data_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let store = RocksStore::open(dir.path()).expect("open");
        store.put("b", b"k", &state("kept")).expect("put");
        store
            .put_meta("node_id", b"a record, not the identity")
            .expect("meta");
        store.node_id()
    };
    let store = RocksStore::open(dir.path()).expect("reopen");
    assert_eq!(store.node_id(), id);
    assert_eq!(store.get("b", b"k").expect("get"), Some(state("kept")));
    let other = tempfile::tempdir().expect("tempdir");
    assert_ne!(
        RocksStore::open(other.path()).expect("open").node_id(),
        id,
        "fresh dir, new id"
    );
}

#[test]
fn corrupt_stored_bytes_are_an_error_not_a_panic() {
    assert!(matches!(decode_state(&[]), Err(StoreError::Corrupt(_))));
    assert!(matches!(
        decode_state(&[9, 1, 2]),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        decode_state(&[STATE_FORMAT, 0xff]),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(
        decode_state(&encode_state(&state("v"))).expect("decodes"),
        state("v")
    );
}
