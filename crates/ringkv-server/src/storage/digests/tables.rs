//! The in-memory side of the digest index (see the parent module): per class, Fenwick trees
//! of XOR and count over the ring's segments, the striped write lock, and the classes new
//! entries are filed under.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use ringkv_core::hash::Position;

use super::{Classes, IndexEntry, Recorded, Summary};

/// How finely the tables cut the ring: 2^18 segments, 4 MiB of tables per class. With a
/// million keys a segment holds about four, so the partial segments an arc's hash scans are
/// small; larger stores scan more keys per partial segment, never more than two per arc.
pub const SEGMENT_BITS: u32 = 18;
pub(super) const SEGMENTS: usize = 1 << SEGMENT_BITS;
pub(super) const SHIFT: u32 = 64 - SEGMENT_BITS;
/// How many stripes the write lock has: writes of keys in different stripes never wait.
const STRIPES: usize = 256;

/// The in-memory tables and the write lock of a store's index: see the module docs.
#[derive(Debug)]
pub struct Digests {
    /// The classes new entries are filed under: read-locked by a write from choosing its
    /// entry's class until the entry is written, write-locked by a refiling to swap them.
    filing: RwLock<Arc<Classes>>,
    /// The classes every stored entry is filed under, once a refiling completed; `None`
    /// while one is under way, or after one was interrupted.
    settled: Mutex<Option<Arc<Classes>>>,
    tables: RwLock<BTreeMap<u8, Arc<Fenwick>>>,
    stripes: Vec<Mutex<()>>,
}

impl Digests {
    /// Empty tables, filing new keys under `recorded` (see [`recorded_classes`]).
    pub fn new(recorded: Recorded) -> Digests {
        let classes = Arc::new(recorded.classes);
        Digests {
            filing: RwLock::new(classes.clone()),
            settled: Mutex::new(recorded.complete.then_some(classes)),
            tables: RwLock::new(BTreeMap::new()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The classes new entries are filed under.
    pub fn classes(&self) -> Arc<Classes> {
        self.filing().clone()
    }

    /// The classes new entries are filed under, held: a write keeps the guard until its
    /// entry is written (see the module docs).
    pub fn filing(&self) -> RwLockReadGuard<'_, Arc<Classes>> {
        self.filing.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn class_of(&self, bucket: &str) -> u8 {
        self.filing().class_of(bucket)
    }

    /// Whether every stored entry is filed under `classes`, and new ones will be: only then
    /// may the tables answer a comparison.
    pub fn is_settled(&self, classes: &Classes) -> bool {
        let settled = self
            .settled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        settled.is_some_and(|s| *s == *classes) && *self.classes() == *classes
    }

    /// Files new entries under `classes` from now on, once the writes filing under the old
    /// ones are done; the index is not settled until [`Digests::finish_refiling`].
    pub(super) fn begin_refiling(&self, classes: Classes) {
        *self.settled.lock().unwrap_or_else(PoisonError::into_inner) = None;
        *self.filing.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(classes);
    }

    /// Every stored entry is filed under `classes`.
    pub(super) fn finish_refiling(&self, classes: Classes) {
        *self.settled.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(classes));
    }

    /// Empties the tables (before they are rebuilt from the entries).
    pub fn clear(&self) {
        self.tables
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The write lock of the keys at `position`: held from reading a key's old entry to
    /// updating the tables, so that two writes of one key cannot both XOR out the same entry.
    pub fn stripe(&self, position: Position) -> MutexGuard<'_, ()> {
        // The low bits: positions are uniform, and segments use the high ones.
        self.stripes[(position as usize) % STRIPES]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces `old` by `new` in the tables (either may be absent). Call with the stripe held,
    /// once the entries are written.
    pub fn replace(&self, old: Option<&IndexEntry>, new: Option<&IndexEntry>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.table(old.class)
                .add(segment(old.position), old.key_digest(), -1);
        }
        if let Some(new) = new {
            self.table(new.class)
                .add(segment(new.position), new.key_digest(), 1);
        }
    }

    /// The summary of the keys of `class` in the segments `first..end`.
    pub(super) fn segments(&self, class: u8, first: usize, end: usize) -> Summary {
        let table = self
            .tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&class)
            .cloned();
        table.map_or_else(Summary::default, |t| t.range(first, end))
    }

    fn table(&self, class: u8) -> Arc<Fenwick> {
        if let Some(table) = self
            .tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&class)
        {
            return table.clone();
        }
        self.tables
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(class)
            .or_insert_with(|| Arc::new(Fenwick::new()))
            .clone()
    }
}

/// XOR and count per segment, as Fenwick trees of atomics: updates commute, so concurrent
/// writes need no lock here (the stripes order the writes of one key).
#[derive(Debug)]
struct Fenwick {
    xor: Box<[AtomicU64]>,
    count: Box<[AtomicI64]>,
}

impl Fenwick {
    fn new() -> Fenwick {
        Fenwick {
            xor: (0..SEGMENTS).map(|_| AtomicU64::new(0)).collect(),
            count: (0..SEGMENTS).map(|_| AtomicI64::new(0)).collect(),
        }
    }

    fn add(&self, segment: usize, hash: u64, keys: i64) {
        let mut i = segment;
        while i < SEGMENTS {
            self.xor[i].fetch_xor(hash, Ordering::Relaxed);
            self.count[i].fetch_add(keys, Ordering::Relaxed);
            i |= i + 1;
        }
    }

    /// The segments `0..end`.
    fn before(&self, end: usize) -> (u64, i64) {
        let (mut hash, mut keys) = (0, 0);
        let mut i = end;
        while i > 0 {
            hash ^= self.xor[i - 1].load(Ordering::Relaxed);
            keys += self.count[i - 1].load(Ordering::Relaxed);
            i &= i - 1;
        }
        (hash, keys)
    }

    fn range(&self, first: usize, end: usize) -> Summary {
        let (a, b) = (self.before(first), self.before(end));
        Summary {
            hash: a.0 ^ b.0,
            // Concurrent updates may be seen half done; a count is only ever a hint.
            keys: u64::try_from(b.1 - a.1).unwrap_or(0),
        }
    }
}

pub(super) fn segment(position: Position) -> usize {
    (position >> SHIFT) as usize
}

pub(super) fn segment_start(segment: usize) -> Position {
    (segment as u64) << SHIFT
}

pub(super) fn segment_last(segment: usize) -> Position {
    segment_start(segment) | ((1u64 << SHIFT) - 1)
}
