//! Anti-entropy's digest index: what a store keeps up to date as it writes, so that comparing
//! two replicas costs in proportion to what differs between them, not to what they hold.
//!
//! # Entries
//!
//! Every write of a key's state also writes, in the same atomic batch, an [`IndexEntry`]:
//! key = the key's ring position (`u64 BE`) ‖ `u16 BE len(bucket)` ‖ bucket ‖ key, value =
//! the state's digest (`u64 BE`) ‖ its class (`u8`). Entries sort by ring position, so the
//! keys of any arc of the ring are one range scan of small records, never of the values.
//!
//! # Tables
//!
//! In memory, per class, the ring is cut into 2^[`SEGMENT_BITS`] equal segments and a Fenwick
//! tree holds the XOR of the key digests and the key count of each: the hash of any arc is
//! about forty table reads plus a scan of the two partial segments at its ends. Every write
//! updates them (XOR out the old entry, XOR in the new one) under a lock striped by position,
//! so concurrent writes of different keys do not wait for each other. The tables are rebuilt
//! from the entries when the store opens; entries and data never disagree, since they are
//! written together.
//!
//! # Classes
//!
//! Two replicas compare the keys *both* are home replicas of, and that depends on the key's
//! bucket's replica count `n`. So a key counts under its bucket's `n` (its class), as this node
//! last learnt it from the ring's bucket table ([`Classes`]); when that table changes, or a
//! store migrated from a format without entries is first opened, [`settle_classes`] refiles
//! the entries whose class changed (a scan of the entries, once). Class 0 means "not known
//! yet": it is never compared. A write holds the classes it files under (read-locked) until
//! its entry is written, and a refiling swaps them (write-locked) before it scans, so no
//! entry can be filed under the old classes behind the scan. Until a refiling has completed
//! (recorded in `meta`, so one a crash or an error interrupted is run again) the index is
//! not *settled*, and the node answers no peer's comparison from it.
//!
//! # What a state's digest covers
//!
//! [`state_digest`] covers the version vector and every sibling's dot, timestamp, write id,
//! expiry and, for a sibling that never expires, its value (a delete or a value, hashed). A
//! value that expires is left out: reclaiming strips it in compactions that run on each
//! replica at its own time, and two replicas must agree on a key whatever their compactions
//! did. Leaving it out loses nothing, since a dot names one write and so one value.

use std::collections::BTreeMap;

use ringkv_core::hash::{Position, digest, key_position};
use ringkv_core::{Buckets, Dot, SiblingSet};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

mod tables;

pub use tables::{Digests, SEGMENT_BITS};
#[cfg(test)]
use tables::{SEGMENTS, SHIFT};
use tables::{segment, segment_last, segment_start};

/// Entries read per step of a scan.
const SCAN_BATCH: usize = 1024;
/// The meta record holding the classes the entries are filed under.
pub const CLASSES_RECORD: &str = "anti-entropy-classes";

/// One key's entry in the index: see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The key's position on the ring.
    pub position: Position,
    pub bucket: String,
    pub key: Vec<u8>,
    /// [`state_digest`] of the key's state.
    pub digest: u64,
    /// The replica count the key is filed under.
    pub class: u8,
}

impl IndexEntry {
    /// The entry for `state` stored under `(bucket, key)` in `class`.
    pub fn new(bucket: &str, key: &[u8], state: &SiblingSet, class: u8) -> IndexEntry {
        IndexEntry {
            position: key_position(bucket.as_bytes(), key),
            bucket: bucket.to_string(),
            key: key.to_vec(),
            digest: state_digest(state),
            class,
        }
    }

    /// The stored key of the entry.
    pub fn index_key(&self) -> Vec<u8> {
        index_key(self.position, &self.bucket, &self.key)
    }

    /// The stored value of the entry.
    pub fn value(&self) -> [u8; 9] {
        let mut out = [0u8; 9];
        out[..8].copy_from_slice(&self.digest.to_be_bytes());
        out[8] = self.class;
        out
    }

    /// An entry from its stored key and value; anything malformed is [`StoreError::Corrupt`].
    pub fn decode(key: &[u8], value: &[u8]) -> Result<IndexEntry, StoreError> {
        let corrupt = || StoreError::Corrupt("malformed digest index entry".into());
        let (position, rest) = key.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(corrupt)?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(corrupt());
        }
        let (bucket, name) = rest.split_at(len);
        let value: &[u8; 9] = value.try_into().map_err(|_| corrupt())?;
        let (digest, class) = value.split_at(8);
        Ok(IndexEntry {
            position: u64::from_be_bytes(*position),
            bucket: String::from_utf8(bucket.to_vec()).map_err(|_| corrupt())?,
            key: name.to_vec(),
            digest: u64::from_be_bytes(digest.try_into().map_err(|_| corrupt())?),
            class: class[0],
        })
    }

    /// What the entry adds to the hash of an arc: its bucket, key and state, hashed.
    pub fn key_digest(&self) -> u64 {
        let mut bytes = Vec::with_capacity(self.bucket.len() + self.key.len() + 12);
        bytes.extend_from_slice(&(self.bucket.len() as u32).to_be_bytes());
        bytes.extend_from_slice(self.bucket.as_bytes());
        bytes.extend_from_slice(&self.key);
        bytes.extend_from_slice(&self.digest.to_be_bytes());
        digest(&bytes)
    }
}

/// The stored key of the entry of `(bucket, key)` at `position`.
pub fn index_key(position: Position, bucket: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + bucket.len() + key.len());
    out.extend_from_slice(&position.to_be_bytes());
    // Bucket names are limited to u16::MAX bytes by the request validation.
    out.extend_from_slice(&(bucket.len() as u16).to_be_bytes());
    out.extend_from_slice(bucket.as_bytes());
    out.extend_from_slice(key);
    out
}

/// The digest of a state that anti-entropy compares: see the module docs.
pub fn state_digest(state: &SiblingSet) -> u64 {
    #[derive(Serialize)]
    struct Covered<'a> {
        dot: &'a Dot,
        timestamp_ms: u64,
        write_id: Option<u64>,
        expires_ms: Option<u64>,
        /// `None` for a value that expires; `Some(None)` for a delete.
        value: Option<Option<u64>>,
    }
    let siblings: Vec<Covered<'_>> = state
        .siblings()
        .iter()
        .map(|s| Covered {
            dot: &s.dot,
            timestamp_ms: s.timestamp_ms,
            write_id: s.write_id,
            expires_ms: s.expires_ms,
            value: s
                .expires_ms
                .is_none()
                .then(|| s.value.as_ref().map(|v| digest(v))),
        })
        .collect();
    let mut out = Vec::new();
    // Encoding into a Vec fails only on an I/O error, which a Vec never has.
    let _ = ciborium::into_writer(&(state.version_vector(), siblings), &mut out);
    digest(&out)
}

/// Which class (replica count) each bucket's keys are filed under: see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classes {
    /// The class of a bucket without its own entry; 0 before the node knew any.
    pub default: u8,
    /// Buckets whose replica count is not the default's.
    pub named: BTreeMap<String, u8>,
}

impl Classes {
    /// The classes a bucket table gives.
    pub fn of(buckets: &Buckets) -> Classes {
        let default = buckets.default.n;
        Classes {
            default,
            named: buckets
                .named
                .iter()
                .filter(|(_, props)| props.n != default)
                .map(|(name, props)| (name.clone(), props.n))
                .collect(),
        }
    }

    pub fn class_of(&self, bucket: &str) -> u8 {
        self.named.get(bucket).copied().unwrap_or(self.default)
    }

    /// Every class a key can be filed under, sorted, without 0.
    pub fn all(&self) -> Vec<u8> {
        let mut all: Vec<u8> = std::iter::once(self.default)
            .chain(self.named.values().copied())
            .filter(|c| *c > 0)
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// The hash and key count of an arc (or of any set of keys): XOR and sum of its keys'.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub hash: u64,
    pub keys: u64,
}

impl Summary {
    fn add(&mut self, hash: u64, keys: u64) {
        self.hash ^= hash;
        self.keys += keys;
    }
}

/// The summary of the keys of `classes` at positions `lo..=hi`: the tables for the whole
/// segments, a scan of the entries for the partial ones at either end.
pub fn summarize(
    store: &dyn Store,
    lo: Position,
    hi: Position,
    classes: &[u8],
) -> Result<Summary, StoreError> {
    let mut sum = Summary::default();
    if lo > hi || classes.is_empty() {
        return Ok(sum);
    }
    let (first, last) = (segment(lo), segment(hi));
    let mut scan = |lo, hi| {
        for_each_entry(store, lo, hi, |entry| {
            if classes.contains(&entry.class) {
                sum.add(entry.key_digest(), 1);
            }
            Ok(())
        })
    };
    if first == last && !(lo == segment_start(first) && hi == segment_last(last)) {
        scan(lo, hi)?;
        return Ok(sum);
    }
    let from = if lo == segment_start(first) {
        first
    } else {
        scan(lo, segment_last(first))?;
        first + 1
    };
    let to = if hi == segment_last(last) {
        last + 1
    } else {
        scan(segment_start(last), hi)?;
        last
    };
    for class in classes {
        let whole = store.digests().segments(*class, from, to);
        sum.add(whole.hash, whole.keys);
    }
    Ok(sum)
}

/// Calls `each` for every entry at positions `lo..=hi`, in order, until it fails. No lock of
/// the store is held meanwhile: entries are read a batch at a time.
pub fn for_each_entry(
    store: &dyn Store,
    lo: Position,
    hi: Position,
    mut each: impl FnMut(IndexEntry) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut after: Option<IndexEntry> = None;
    loop {
        let batch = store.scan_index(lo, hi, after.as_ref(), SCAN_BATCH)?;
        let full = batch.len() == SCAN_BATCH;
        after = batch.last().cloned();
        batch.into_iter().try_for_each(&mut each)?;
        if !full {
            return Ok(());
        }
    }
}

/// Fills the tables from the stored entries (when a store opens).
pub fn rebuild(store: &dyn Store) -> Result<u64, StoreError> {
    let mut keys = 0;
    let digests = store.digests();
    for_each_entry(store, 0, Position::MAX, |entry| {
        digests.replace(None, Some(&entry));
        keys += 1;
        Ok(())
    })?;
    Ok(keys)
}

/// Files new entries under `classes` and refiles every stored one whose class they change,
/// recording in `meta` that a refiling is under way and then that it completed (so one a crash
/// or an error interrupted runs again). Returns how many entries moved. Does nothing if the
/// index is settled under `classes` already.
pub fn settle_classes(store: &dyn Store, classes: Classes) -> Result<u64, StoreError> {
    let digests = store.digests();
    if digests.is_settled(&classes) {
        return Ok(0);
    }
    record(store, &classes, false)?;
    // Waits for the writes filing under the old classes: the scan below comes after them.
    digests.begin_refiling(classes.clone());
    let mut moved = 0;
    for_each_entry(store, 0, Position::MAX, |entry| {
        if entry.class == classes.class_of(&entry.bucket) {
            return Ok(());
        }
        let _stripe = digests.stripe(entry.position);
        // Read again under the lock: a write may have refiled it meanwhile.
        let Some(current) = store.index_entry(&entry.bucket, &entry.key)? else {
            return Ok(());
        };
        let class = classes.class_of(&current.bucket);
        if current.class == class {
            return Ok(());
        }
        let refiled = IndexEntry {
            class,
            ..current.clone()
        };
        store.put_index_entry(&refiled)?;
        digests.replace(Some(&current), Some(&refiled));
        moved += 1;
        Ok(())
    })?;
    record(store, &classes, true)?;
    digests.finish_refiling(classes);
    Ok(moved)
}

/// What `meta` records of the classes: those of the last refiling, and whether it completed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub classes: Classes,
    pub complete: bool,
}

fn record(store: &dyn Store, classes: &Classes, complete: bool) -> Result<(), StoreError> {
    let mut bytes = Vec::new();
    let recorded = Recorded {
        classes: classes.clone(),
        complete,
    };
    let _ = ciborium::into_writer(&recorded, &mut bytes);
    store.put_meta(CLASSES_RECORD, &bytes)
}

/// What `meta` records (nothing on a new or migrated store: class 0, not settled).
pub fn recorded_classes(record: Option<Vec<u8>>) -> Result<Recorded, StoreError> {
    match record {
        None => Ok(Recorded::default()),
        Some(bytes) => ciborium::from_reader(bytes.as_slice())
            .map_err(|e| StoreError::Corrupt(format!("anti-entropy classes: {e}"))),
    }
}

#[cfg(test)]
mod tests;
