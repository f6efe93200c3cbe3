//! What purging asks of this node's copies (see `workers::purge` for the rule), and the ages
//! of the hints it holds, which the rule waits on.
//!
//! A purge removes a key's record whole, version vector and marker with it: only a state
//! that holds no live value (tombstones and expired values) and only when it is exactly the
//! state the purge's coordinator checked on every home. Both are judged under the key's
//! lock, which every write holds, so a write that lands meanwhile keeps the record.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use ringkv_core::RingEpoch;
use ringkv_core::wire::{PurgeKey, WireError};

use super::{Replica, store_error};
use crate::clock;
use crate::storage::{HintKey, Record, StoreError};

/// When each hint this process created was first written, by this node's clock. A hint
/// missing here was written before the process started (or by a release before purging)
/// and counts as the oldest possible: purging waits until it is delivered.
#[derive(Debug, Default)]
pub(crate) struct HintAges {
    created: Mutex<HashMap<HintKey, u64>>,
}

impl HintAges {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HintKey, u64>> {
        self.created.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that `hint` was created now (a hint already known keeps its age: what it held
    /// first is what it may still hold).
    fn created(&self, hint: &HintKey) {
        self.lock()
            .entry(hint.clone())
            .or_insert_with(clock::now_ms);
    }

    fn deleted(&self, hint: &HintKey) {
        self.lock().remove(hint);
    }

    /// When `hint` was created; 0 if this process does not know.
    pub(crate) fn age(&self, hint: &HintKey) -> u64 {
        self.lock().get(hint).copied().unwrap_or(0)
    }
}

impl Replica {
    /// Writes `record` as the hint `hint`, noting its age if `new` (no such hint was held).
    /// Every hint is written here, so that the purge watermark sees it.
    pub(super) fn write_hint(
        &self,
        hint: &HintKey,
        record: &Record,
        new: bool,
    ) -> Result<(), StoreError> {
        if new {
            // Noted before the write: a hint must never be held without an age, or with
            // one younger than its content.
            self.hint_ages.created(hint);
        }
        self.store.put_hint(hint, record)
    }

    /// Deletes the hint `hint` and forgets its age.
    pub(super) fn remove_hint(&self, hint: &HintKey) -> Result<(), StoreError> {
        self.store.delete_hint(hint)?;
        self.hint_ages.deleted(hint);
        Ok(())
    }

    /// When the hint `hint` was created (0: unknown, before this process started).
    pub fn hint_created(&self, hint: &HintKey) -> u64 {
        self.hint_ages.age(hint)
    }

    /// Whether this node's own copy of the key is the dead state `target` names (by its
    /// version vector and dots) and holds no live value by this node's clock: what every
    /// home must answer before a purge.
    pub fn purge_check(&self, target: &PurgeKey) -> Result<bool, WireError> {
        let record = self
            .store
            .get(&target.bucket, &target.key)
            .map_err(store_error)?;
        Ok(record.is_some_and(|r| target.matches_dead(&r.state, clock::now_ms())))
    }

    /// Deletes this node's own copy of the key if it still is the dead state `target`
    /// names, and the node still routes by the ring of epoch `judged_by`. Returns whether
    /// the copy is gone (deleted now, or not held).
    pub fn purge(&self, target: &PurgeKey, judged_by: RingEpoch) -> Result<bool, StoreError> {
        let (bucket, key) = (target.bucket.as_str(), &target.key[..]);
        let _guard = self.locks.lock(bucket, key);
        if self.view.borrow().ring.epoch() != judged_by {
            return Ok(false);
        }
        match self.store.get(bucket, key)? {
            None => Ok(true),
            Some(record) if target.matches_dead(&record.state, clock::now_ms()) => {
                self.store.delete(bucket, key)?;
                self.counters.purged_keys.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }
}
