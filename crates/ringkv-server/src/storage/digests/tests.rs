use std::collections::BTreeMap;

use bytes::Bytes;
use ringkv_core::hash::key_position;
use ringkv_core::{Actor, NodeId, SiblingSet, VersionVector};

use super::*;
use crate::storage::{MemoryStore, Record};

const ACTOR: Actor = Actor {
    node: NodeId(1),
    epoch: 1,
};

fn state(value: &str, expires_ms: Option<u64>) -> SiblingSet {
    let mut s = SiblingSet::new();
    let dot = s
        .stamp(
            ACTOR,
            &VersionVector::new(),
            Some(Bytes::copy_from_slice(value.as_bytes())),
            1,
            None,
        )
        .expect("stamp");
    s.set_expiry(dot, expires_ms);
    s
}

fn classes() -> Classes {
    Classes {
        default: 3,
        named: BTreeMap::from([("five".to_string(), 5)]),
    }
}

/// A small deterministic generator: the tests need spread, not secrecy.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 ^ (self.0 >> 29)
    }
}

/// The summary of `lo..=hi` for `class`, computed from the data alone, as if there were no
/// index: what the index and the tables must give.
fn brute_force(store: &dyn Store, lo: u64, hi: u64, class: u8) -> Summary {
    let mut sum = Summary::default();
    let mut after = None;
    loop {
        let batch = store.scan(after.as_ref(), 512).expect("scan");
        let Some((last, _, _)) = batch.last() else {
            return sum;
        };
        after = Some(last.clone());
        for (key, state, _) in &batch {
            let position = key_position(key.bucket.as_bytes(), &key.key);
            if (lo..=hi).contains(&position) && classes().class_of(&key.bucket) == class {
                let entry = IndexEntry::new(&key.bucket, &key.key, state, class);
                sum.add(entry.key_digest(), 1);
            }
        }
    }
}

fn fill(store: &dyn Store, rng: &mut Lcg) {
    for i in 0..3000u64 {
        let bucket = if i % 3 == 0 { "five" } else { "default" };
        let key = format!("k{}", rng.next() % 2000);
        match rng.next() % 10 {
            0 => store.delete(bucket, key.as_bytes()).expect("delete"),
            _ => store
                .put(
                    bucket,
                    key.as_bytes(),
                    &Record::new(state(&format!("v{i}"), None)),
                )
                .expect("put"),
        }
    }
}

/// Spans of every shape: inside one segment, across many, on segment bounds, the whole ring.
fn spans(rng: &mut Lcg) -> Vec<(u64, u64)> {
    let mut spans = vec![(0, u64::MAX), (0, 0), (u64::MAX, u64::MAX)];
    for _ in 0..200 {
        let (a, b) = (rng.next(), rng.next());
        spans.push((a.min(b), a.max(b)));
        let s = (a >> SHIFT) as usize;
        let t = s.saturating_add((b % 5000) as usize).min(SEGMENTS - 1);
        spans.push((segment_start(s), segment_last(t)));
        spans.push((segment_start(s), segment_last(s)));
        spans.push((a, a.saturating_add(1 << (SHIFT - 1))));
    }
    spans
}

#[test]
fn summaries_of_any_arc_match_the_data() {
    let store = MemoryStore::new(NodeId(7));
    settle_classes(&store, classes()).expect("settle");
    let mut rng = Lcg(42);
    fill(&store, &mut rng);
    let mut nonempty = 0;
    for (lo, hi) in spans(&mut rng) {
        for class in [3, 5] {
            let expected = brute_force(&store, lo, hi, class);
            let got = summarize(&store, lo, hi, &[class]).expect("summary");
            assert_eq!(got, expected, "{lo:#x}..={hi:#x} class {class}");
            nonempty += usize::from(expected.keys > 0);
        }
    }
    assert!(nonempty > 100, "the spans must hold keys: {nonempty}");
    let both = summarize(&store, 0, u64::MAX, &[3, 5]).expect("summary");
    assert_eq!(both.keys, store.estimate().expect("estimate").0);
}

#[test]
fn reopening_a_rocks_store_rebuilds_the_same_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Lcg(7);
    let spans = spans(&mut rng);
    let before: Vec<Summary> = {
        let store = crate::storage::RocksStore::open(dir.path()).expect("open");
        settle_classes(&store, classes()).expect("settle");
        fill(&store, &mut rng);
        spans
            .iter()
            .map(|(lo, hi)| {
                let got = summarize(&store, *lo, *hi, &[3, 5]).expect("summary");
                let mut expected = brute_force(&store, *lo, *hi, 3);
                let five = brute_force(&store, *lo, *hi, 5);
                expected.add(five.hash, five.keys);
                assert_eq!(got, expected, "{lo:#x}..={hi:#x}");
                got
            })
            .collect()
    };
    let store = crate::storage::RocksStore::open(dir.path()).expect("reopen");
    assert_eq!(*store.digests().classes(), classes(), "classes recorded");
    let after: Vec<Summary> = spans
        .iter()
        .map(|(lo, hi)| summarize(&store, *lo, *hi, &[3, 5]).expect("summary"))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn settling_classes_refiles_the_keys_whose_replica_count_changed() {
    let store = MemoryStore::new(NodeId(7));
    let mut rng = Lcg(3);
    fill(&store, &mut rng);
    let total = store.estimate().expect("estimate").0;
    assert_eq!(summarize(&store, 0, u64::MAX, &[0]).expect("s").keys, total);
    let moved = settle_classes(&store, classes()).expect("settle");
    assert_eq!(moved, total, "every key leaves class 0");
    let three = summarize(&store, 0, u64::MAX, &[3]).expect("s");
    let five = summarize(&store, 0, u64::MAX, &[5]).expect("s");
    assert_eq!(three, brute_force(&store, 0, u64::MAX, 3));
    assert_eq!(five, brute_force(&store, 0, u64::MAX, 5));
    assert_eq!(summarize(&store, 0, u64::MAX, &[0]).expect("s").keys, 0);
    assert_eq!(settle_classes(&store, classes()).expect("again"), 0);
    // Bucket `five` goes to 3: its keys move, the others stay.
    let moved = settle_classes(
        &store,
        Classes {
            default: 3,
            named: BTreeMap::new(),
        },
    )
    .expect("settle");
    assert_eq!(moved, five.keys);
    assert_eq!(
        summarize(&store, 0, u64::MAX, &[3]).expect("s").keys,
        three.keys + five.keys
    );
    let recorded = recorded_classes(store.get_meta(CLASSES_RECORD).expect("meta"));
    let recorded = recorded.expect("decodes");
    assert!(recorded.complete && recorded.classes.named.is_empty());
}

/// A refiling that did not complete (a crash, a full disk) is run again after a restart,
/// even when the ring's classes are those it was refiling to, and until then the index is not
/// settled (so the node answers no comparison from it).
#[test]
fn an_interrupted_refiling_runs_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = crate::storage::RocksStore::open(dir.path()).expect("open");
        fill(&store, &mut Lcg(5));
        assert!(
            !store.digests().is_settled(&classes()),
            "a new store is not"
        );
        // What a refiling interrupted before its scan leaves: the record says under way.
        record(&store, &classes(), false).expect("record");
    }
    let store = crate::storage::RocksStore::open(dir.path()).expect("reopen");
    assert!(!store.digests().is_settled(&classes()));
    let mut total = 0;
    for_each_entry(&store, 0, u64::MAX, |_| {
        total += 1;
        Ok(())
    })
    .expect("count");
    assert_eq!(settle_classes(&store, classes()).expect("settle"), total);
    assert!(store.digests().is_settled(&classes()));
    drop(store);
    let store = crate::storage::RocksStore::open(dir.path()).expect("reopen");
    assert!(store.digests().is_settled(&classes()), "recorded complete");
    assert_eq!(settle_classes(&store, classes()).expect("settle"), 0);
}

/// Reclaiming strips expired values at each replica's own time: the digest must not see it,
/// but must see everything a repair has to carry (an expiry moved by a touch, a new write).
#[test]
fn a_state_digest_is_blind_to_reclaiming_and_sees_touches() {
    let expiring = state("session", Some(1_000));
    let mut stripped = expiring.clone();
    assert!(stripped.strip_expired(2_000) > 0, "the value was stripped");
    assert_ne!(stripped, expiring);
    assert_eq!(state_digest(&stripped), state_digest(&expiring));
    assert_ne!(
        state_digest(&expiring),
        state_digest(&state("session", Some(5_000))),
        "a touch moves the expiry"
    );
    assert_ne!(
        state_digest(&state("a", None)),
        state_digest(&state("b", None)),
        "a value that never expires is covered"
    );
    let mut newer = state("a", None);
    let context = newer.version_vector().clone();
    newer
        .stamp(ACTOR, &context, Some(Bytes::from_static(b"c")), 2, None)
        .expect("stamp");
    assert_ne!(state_digest(&newer), state_digest(&state("a", None)));
}

#[test]
fn malformed_entries_are_an_error_not_a_panic() {
    for (key, value) in [
        (&b""[..], &[0u8; 9][..]),
        (&[0u8; 9][..], &[0u8; 9][..]),
        (&[0, 0, 0, 0, 0, 0, 0, 0, 0, 5, b'a'][..], &[0u8; 9][..]),
        (&[0u8; 10][..], &[0u8; 3][..]),
        (&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff][..], &[0u8; 9][..]),
    ] {
        assert!(
            matches!(IndexEntry::decode(key, value), Err(StoreError::Corrupt(_))),
            "{key:?} {value:?}"
        );
    }
    let entry = IndexEntry::new("b", b"k", &state("v", None), 3);
    assert_eq!(
        IndexEntry::decode(&entry.index_key(), &entry.value()).expect("decodes"),
        entry
    );
}
