use bytes::Bytes;
use ringkv_core::{Actor, Dot, NodeId, SiblingSet, VersionVector};

use super::*;

const ACTOR: Actor = Actor {
    node: NodeId(1),
    epoch: 9,
};

fn state(value: &str) -> SiblingSet {
    let mut s = SiblingSet::new();
    s.stamp(
        ACTOR,
        &VersionVector::new(),
        Some(Bytes::copy_from_slice(value.as_bytes())),
        1,
        None,
    )
    .expect("stamp");
    s
}

/// A stored record with a marker, which must come back as it went in.
fn record(value: &str) -> Record {
    Record {
        state: state(value),
        minted: Some(Minted {
            dot: Dot {
                actor: ACTOR,
                counter: 1,
            },
            incarnation: 3,
        }),
    }
}

/// The behaviour every store must have; run against each implementation below.
fn round_trips_and_separates_buckets(store: &dyn Store) {
    assert_eq!(store.get("b", b"k").expect("get"), None);
    store.put("b", b"k", &record("one")).expect("put");
    store.put("b2", b"k", &record("two")).expect("put");
    assert_eq!(store.get("b", b"k").expect("get"), Some(record("one")));
    assert_eq!(store.get("b2", b"k").expect("get"), Some(record("two")));
    // ("ab", "c") and ("a", "bc") are different keys.
    store.put("ab", b"c", &record("x")).expect("put");
    assert_eq!(store.get("a", b"bc").expect("get"), None);
    store.put("b", b"k", &record("three")).expect("overwrite");
    assert_eq!(store.get("b", b"k").expect("get"), Some(record("three")));
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

/// Hints: filed per (key, home), found by key, scanned in batches, deleted one by one.
fn keeps_hints_by_key_and_home(store: &dyn Store) {
    let hint = |key: &[u8], home: u64| HintKey {
        bucket: "b".into(),
        key: key.to_vec(),
        home: NodeId(home),
    };
    store
        .put_hint(&hint(b"k", 7), &record("for 7"))
        .expect("put");
    store
        .put_hint(&hint(b"k", 8), &record("for 8"))
        .expect("put");
    // "k" must not pick up the hints of "k2".
    store.put_hint(&hint(b"k2", 7), &record("k2")).expect("put");
    let for_k = store.hints_for_key("b", b"k").expect("by key");
    assert_eq!(
        for_k.iter().map(|(h, _)| h.home.0).collect::<Vec<_>>(),
        vec![7, 8]
    );
    assert_eq!(
        store.get_hint(&hint(b"k", 8)).expect("get"),
        Some(record("for 8"))
    );
    assert_eq!(store.hint_count().expect("count"), 3);
    let first = store.scan_hints(None, 2).expect("scan");
    assert_eq!(first.len(), 2);
    let rest = store.scan_hints(Some(&first[1].0), 10).expect("scan");
    assert_eq!(rest.len(), 1);
    assert!(!first.iter().any(|(h, _)| h == &rest[0].0));
    store.delete_hint(&hint(b"k", 7)).expect("delete");
    assert_eq!(store.hint_count().expect("count"), 2);
    assert_eq!(store.get_hint(&hint(b"k", 7)).expect("get"), None);
}

/// Compaction strips the value bytes of expired siblings, copies and hints alike, and
/// nothing else: the sibling, its dot and expiry and the version vector stay (a record
/// dropped whole would let a stale replica's older value merge back), and a value that has
/// not expired, or never expires, is kept.
fn compaction_strips_only_expired_values(store: &dyn Store) {
    let now = crate::clock::now_ms();
    // `v1`, superseded by `gone`, which expired a minute ago.
    let mut expired = state("v1");
    let read = expired.version_vector().clone();
    let dot = expired
        .stamp(ACTOR, &read, Some(Bytes::from("gone")), 2, None)
        .expect("stamp");
    expired.set_expiry(dot, Some(now - 60_000));
    let mut later = state("later");
    let later_dot = later.siblings()[0].dot;
    later.set_expiry(later_dot, Some(now + 3_600_000));
    store
        .put("b", b"expired", &Record::new(expired.clone()))
        .expect("put");
    store
        .put("b", b"later", &Record::new(later.clone()))
        .expect("put");
    store.put("b", b"never", &record("never")).expect("put");
    let hint = HintKey {
        bucket: "b".into(),
        key: b"expired".to_vec(),
        home: NodeId(7),
    };
    store
        .put_hint(&hint, &Record::new(expired.clone()))
        .expect("hint");
    store.flush().expect("flush");

    store.compact().expect("compact");

    for stripped in [
        store
            .get("b", b"expired")
            .expect("get")
            .expect("kept")
            .state,
        store.get_hint(&hint).expect("get").expect("kept").state,
    ] {
        assert!(stripped.is_absent(), "the expired value reads as absent");
        assert_eq!(stripped.version_vector(), expired.version_vector());
        let kept: Vec<_> = stripped
            .siblings()
            .iter()
            .map(|s| (s.dot, s.expires_ms))
            .collect();
        assert_eq!(
            kept,
            vec![(dot, Some(now - 60_000))],
            "the sibling itself stays"
        );
        // The older value a stale replica still holds cannot come back.
        let mut merged = stripped.clone();
        merged.merge(&state("v1"), ringkv_core::ConflictPolicy::Siblings);
        assert!(merged.is_absent());
    }
    assert_eq!(
        store.get("b", b"later").expect("get").expect("kept").state,
        later
    );
    assert_eq!(
        store.get("b", b"never").expect("get"),
        Some(record("never"))
    );
    assert_eq!(
        store.reclaimed().get(),
        (2, 8),
        "two values of 4 bytes, counted"
    );
}

#[test]
fn memory_store_behaves() {
    round_trips_and_separates_buckets(&MemoryStore::new(NodeId(5)));
    keeps_hints_by_key_and_home(&MemoryStore::new(NodeId(5)));
    compaction_strips_only_expired_values(&MemoryStore::new(NodeId(5)));
}

#[test]
fn rocks_store_behaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    round_trips_and_separates_buckets(&RocksStore::open(dir.path()).expect("open"));
    let dir = tempfile::tempdir().expect("tempdir");
    keeps_hints_by_key_and_home(&RocksStore::open(dir.path()).expect("open"));
    let dir = tempfile::tempdir().expect("tempdir");
    compaction_strips_only_expired_values(&RocksStore::open(dir.path()).expect("open"));
}

#[test]
fn hint_keys_round_trip_and_reject_garbage() {
    let hint = HintKey {
        bucket: "carts".into(),
        key: b"\x00k".to_vec(),
        home: NodeId(u64::MAX),
    };
    assert_eq!(HintKey::decode(&hint.encode()).expect("decodes"), hint);
    for bad in [&b""[..], &[0, 9, 1], &[0, 0, 0, 0, 0, 1]] {
        assert!(HintKey::decode(bad).is_err());
    }
}

#[test]
fn rocks_store_keeps_its_identity_and_data_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let store = RocksStore::open(dir.path()).expect("open");
        store.put("b", b"k", &record("kept")).expect("put");
        store
            .put_meta("node_id", b"a record, not the identity")
            .expect("meta");
        store.node_id()
    };
    let store = RocksStore::open(dir.path()).expect("reopen");
    assert_eq!(store.node_id(), id);
    assert_eq!(store.get("b", b"k").expect("get"), Some(record("kept")));
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
    assert_eq!(
        decode_record(&encode_record(&record("v"))).expect("decodes"),
        record("v")
    );
    assert!(matches!(
        decode_record(&[RECORD_FORMAT, 0x82, 0xa0]),
        Err(StoreError::Corrupt(_))
    ));
}

/// A copy of the store format 1 fixture (see `tests/fixtures/README.md`) in a fresh
/// directory: opening migrates it, and the fixture itself must stay as the old release wrote it.
fn fixture_copy(name: &str) -> tempfile::TempDir {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&from).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    dir
}

#[test]
fn a_store_written_by_format_1_opens_reads_and_migrates() {
    let dir = fixture_copy("store-v1");
    let other = NodeId(0x0b0b_0b0b_0b0b_0b0b);
    for reopen in [false, true] {
        let store = RocksStore::open(dir.path()).expect("opens");
        assert_eq!(
            store.node_id(),
            NodeId(0x4d49_1b3e_d1b6_6b1d),
            "reopen {reopen}"
        );
        let plain = store
            .get("default", b"plain")
            .expect("get")
            .expect("present");
        assert_eq!(plain.minted, None, "format 1 had no marker");
        assert_eq!(
            plain
                .state
                .live()
                .map(|s| s.value.clone())
                .collect::<Vec<_>>(),
            vec![Some(Bytes::from("v1"))]
        );
        assert_eq!(plain.state.siblings()[0].write_id, Some(11));
        assert_eq!(
            plain.state.siblings()[0].dot.actor,
            Actor::legacy(store.node_id()),
            "legacy dots decode as epoch 0"
        );
        let siblings = store
            .get("default", b"siblings")
            .expect("get")
            .expect("present");
        assert_eq!(siblings.state.live_count(), 2);
        let deleted = store
            .get("default", b"deleted")
            .expect("get")
            .expect("present");
        assert!(deleted.state.is_absent() && !deleted.state.siblings().is_empty());
        let hints = store.hints_for_key("default", b"hinted").expect("hints");
        assert_eq!(hints.len(), 1);
        assert_eq!(hints[0].0.home, other);
        assert_eq!(hints[0].1.state, plain.state);
        // Written back in the new format, a record keeps its marker.
        let mut again = plain.clone();
        again.minted = Some(Minted {
            dot: plain.state.siblings()[0].dot,
            incarnation: 1,
        });
        store.put("default", b"plain2", &again).expect("put");
        assert_eq!(store.get("default", b"plain2").expect("get"), Some(again));
    }
}

/// The store's RocksDB opened directly, as another release would see it.
fn raw_open(dir: &std::path::Path) -> rocksdb::DB {
    rocksdb::DB::open_cf(
        &rocksdb::Options::default(),
        dir,
        ["default", "data", "meta", "hints", "digests"],
    )
    .expect("raw open")
}

#[test]
fn a_store_of_a_newer_format_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = RocksStore::open(dir.path()).expect("create").node_id();
    // What a newer release would have written: the format byte of a later store format.
    {
        let db = raw_open(dir.path());
        let meta = db.cf_handle("meta").expect("meta");
        db.put_cf(meta, b"format", [9u8]).expect("put");
    }
    match RocksStore::open(dir.path()) {
        Err(e @ StoreError::NewerFormat { found: 9, .. }) => {
            assert!(e.to_string().contains("newer release"), "{e}");
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    let db = raw_open(dir.path());
    let meta = db.cf_handle("meta").expect("meta");
    assert_eq!(db.get_cf(meta, b"format").expect("get"), Some(vec![9u8]));
    assert!(db.get_cf(meta, b"node_id").expect("get") == Some(id.0.to_be_bytes().to_vec()));
}

/// The records and the hint the `store-v2`, `store-v3` and `store-v4` fixtures hold (see
/// `tests/fixtures/README.md`).
fn assert_fixture_data(store: &RocksStore) {
    for (bucket, key, value) in [("default", "plain", "v1"), ("carts", "cart-1", "apples")] {
        let record = store
            .get(bucket, key.as_bytes())
            .expect("get")
            .expect("present");
        let values: Vec<_> = record.state.live().map(|s| s.value.clone()).collect();
        assert_eq!(values, vec![Some(Bytes::from(value))], "{bucket}/{key}");
        assert_eq!(record.minted.map(|m| m.incarnation), Some(3));
    }
    let hints = store.hints_for_key("default", b"hinted").expect("hints");
    assert_eq!(hints.len(), 1);
    assert_eq!(hints[0].0.home, NodeId(0x0b0b_0b0b_0b0b_0b0b));
}

#[test]
fn a_store_written_by_format_2_opens_with_its_layout_and_migrates() {
    let dir = fixture_copy("store-v2");
    for reopen in [false, true] {
        let store = RocksStore::open(dir.path()).expect("opens");
        assert_eq!(
            store.node_id(),
            NodeId(0x1db7_d307_d964_4090),
            "reopen {reopen}"
        );
        assert_fixture_data(&store);
        // The layout of that release: a transfer under way, and no bucket table (the
        // gossiped one applies until a `bucket` command).
        let layout = crate::cluster::Keeper::stored(&store).expect("layout record");
        assert_eq!(layout.version, 3);
        assert_eq!(layout.members.len(), 4);
        let transfer = layout.transition.as_ref().expect("transfer");
        assert_eq!(transfer.id, 0x1d88_ee9e_0ed6_37e0);
        assert_eq!(transfer.previous_buckets, None);
        assert_eq!(layout.buckets, None);
        let report: Option<(u64, ringkv_core::Step)> = records::load(&store, "transfer-report");
        assert_eq!(report, Some((transfer.id, ringkv_core::Step::Streamed)));
    }
}

#[test]
fn a_store_written_by_format_3_opens_with_its_layout_and_buckets() {
    let dir = fixture_copy("store-v3");
    for reopen in [false, true] {
        let store = RocksStore::open(dir.path()).expect("opens");
        assert_eq!(
            store.node_id(),
            NodeId(0x3c4b_eb8c_3241_2a23),
            "reopen {reopen}"
        );
        assert_fixture_data(&store);
        // The layout of that release: the bucket table in the layout, a join streaming, and
        // members without zones (one zone: keys placed as that release placed them).
        let layout = crate::cluster::Keeper::stored(&store).expect("layout record");
        assert_eq!(layout.version, 4);
        assert_eq!(layout.members.len(), 4);
        assert!(layout.members.iter().all(|m| m.zone.is_empty()));
        let buckets = layout.buckets.as_ref().expect("bucket table");
        assert_eq!(
            buckets.props("carts").conflict,
            ringkv_core::ConflictPolicy::Lww
        );
        let transfer = layout.transition.as_ref().expect("transfer");
        assert_eq!(transfer.id, 0x1d88_ee9e_0ed6_37e0);
        let report: Option<(u64, ringkv_core::Step)> = records::load(&store, "transfer-report");
        assert_eq!(report, Some((transfer.id, ringkv_core::Step::Streamed)));
        // The ring it makes is the one that release computed: same epoch digest input, no
        // zones in it.
        let ring = ringkv_core::Ring::new(layout.ring_config(buckets.clone(), 0)).expect("ring");
        assert_eq!(ring.zones(), vec![""]);
    }
}

#[test]
fn a_store_written_by_format_4_opens_with_its_zones_and_nothing_expires() {
    let dir = fixture_copy("store-v4");
    for reopen in [false, true] {
        let store = RocksStore::open(dir.path()).expect("opens");
        assert_eq!(
            store.node_id(),
            NodeId(0xd70d_9d4a_317d_d6ca),
            "reopen {reopen}"
        );
        assert_fixture_data(&store);
        let layout = crate::cluster::Keeper::stored(&store).expect("layout record");
        assert_eq!(layout.version, 4);
        let zones: Vec<&str> = layout.members.iter().map(|m| m.zone.as_str()).collect();
        assert_eq!(zones, ["a", "b", "c", "a"]);
        let transfer = layout.transition.as_ref().expect("transfer");
        assert_eq!(transfer.id, 0x8e66_c9cc_7ef6_7ab6);
        let report: Option<(u64, ringkv_core::Step)> = records::load(&store, "transfer-report");
        assert_eq!(report, Some((transfer.id, ringkv_core::Step::Streamed)));
        // Written before expiry: compaction, which strips expired values, keeps every value.
        store.compact().expect("compact");
        assert_fixture_data(&store);
        assert_eq!(store.reclaimed().get(), (0, 0));
        for (bucket, key) in [("default", "plain"), ("carts", "cart-1")] {
            let record = store
                .get(bucket, key.as_bytes())
                .expect("get")
                .expect("present");
            assert!(!record.state.has_expiry(), "{bucket}/{key}");
        }
    }
}

/// Format 5 had no digest index: opening builds it from the data before recording format 6,
/// and the tables then hold exactly the stored keys.
#[test]
fn a_store_written_by_format_5_opens_with_its_expiry_and_gets_its_digest_index() {
    let dir = fixture_copy("store-v5");
    for reopen in [false, true] {
        let store = RocksStore::open(dir.path()).expect("opens");
        assert_eq!(
            store.node_id(),
            NodeId(0x342b_19b3_d24c_1f21),
            "reopen {reopen}"
        );
        assert_fixture_data(&store);
        let session = store
            .get("default", b"session")
            .expect("get")
            .expect("present");
        let expiries: Vec<_> = session
            .state
            .siblings()
            .iter()
            .map(|s| s.expires_ms)
            .collect();
        assert_eq!(expiries, vec![Some(4_102_444_800_000)]);
        let mut indexed = Vec::new();
        digests::for_each_entry(&store, 0, u64::MAX, |e| {
            indexed.push((e.bucket.clone(), e.key.clone(), e.class));
            Ok(())
        })
        .expect("scan");
        indexed.sort();
        assert_eq!(
            indexed,
            vec![
                ("carts".to_string(), b"cart-1".to_vec(), 0),
                ("default".to_string(), b"plain".to_vec(), 0),
                ("default".to_string(), b"session".to_vec(), 0),
            ],
            "every key indexed, not yet classed; hints are not"
        );
        let whole = digests::summarize(&store, 0, u64::MAX, &[0]).expect("summary");
        assert_eq!(whole.keys, 3, "the tables were built");
    }
    let db = raw_open(dir.path());
    let meta = db.cf_handle("meta").expect("meta");
    assert_eq!(db.get_cf(meta, b"format").expect("get"), Some(vec![6u8]));
}
