//! What purging asks of this node's copies (see `workers::purge` for the rule), and the ages
//! of the hints it holds, which the rule waits on.
//!
//! A purge removes a key's record whole, version vector and marker with it: only a state
//! that holds no live value (tombstones and expired values) and only when it is exactly the
//! state the purge's coordinator checked on every home. Both are judged under the key's
//! lock, which every write holds, so a write that lands meanwhile keeps the record.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ringkv_core::RingEpoch;
use ringkv_core::wire::{PurgeKey, WireError};

use super::{Replica, store_error};
use crate::clock;
use crate::storage::{HintKey, Record, StoreError};

/// How old the content of each hint this process wrote is: the earliest of when the hint
/// was created (this node's clock) and the stamps of every version ever written into it. A
/// hint missing here was written before the process started (or by a release before
/// purging) and counts as the oldest possible: purging waits until it is delivered.
///
/// The stamps count because a hint can be made now of old content: a read repair that found
/// an older version on a fallback and sends it to a spare, a stamp that merges a node's other
/// records into a new hint. Its creation time alone would call that content young.
///
/// A delivered hint's age still counts for a grace period (the purge delay): a read that
/// found its content just before it was delivered may still be repairing it elsewhere.
/// The node's purge report always includes [`HintAges::oldest`] (see `cluster::Keeper`), so
/// a hint written between two handoff rounds counts at once.
#[derive(Debug)]
pub struct HintAges {
    ages: Mutex<Ages>,
    grace_ms: AtomicU64,
}

#[derive(Debug, Default)]
struct Ages {
    held: HashMap<HintKey, u64>,
    /// Ages of hints deleted lately, `(deleted at, age)`, deleted at ascending and age
    /// ascending (a later deletion of a younger or equal age supersedes an earlier one of
    /// an older age, which would expire first): the front is the oldest age still counting.
    gone: VecDeque<(u64, u64)>,
}

/// How long a deleted hint's age counts before the purge worker says (its delay).
const DEFAULT_GRACE_MS: u64 = 3_600_000;

impl Default for HintAges {
    fn default() -> Self {
        HintAges {
            ages: Mutex::default(),
            grace_ms: AtomicU64::new(DEFAULT_GRACE_MS),
        }
    }
}

impl HintAges {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ages> {
        self.ages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long a deleted hint's age keeps counting: the purge delay.
    pub fn set_grace(&self, grace_ms: u64) {
        self.grace_ms.store(grace_ms, Ordering::Relaxed);
    }

    /// Notes that `hint` now holds versions stamped as early as `oldest_ms` (its age only
    /// ever goes back: what it held first it may still hold).
    fn holds(&self, hint: &HintKey, oldest_ms: u64) {
        let mut ages = self.lock();
        let age = ages.held.entry(hint.clone()).or_insert(oldest_ms);
        *age = (*age).min(oldest_ms);
    }

    /// Forgets a hint never written (its write failed).
    fn forget(&self, hint: &HintKey) {
        self.lock().held.remove(hint);
    }

    /// `hint` was deleted: its age counts for the grace period still (one this process
    /// did not know counts as 0, the oldest).
    fn deleted(&self, hint: &HintKey) {
        let mut ages = self.lock();
        let age = ages.held.remove(hint).unwrap_or(0);
        let now = clock::now_ms();
        while ages.gone.back().is_some_and(|&(_, a)| a >= age) {
            ages.gone.pop_back();
        }
        ages.gone.push_back((now, age));
    }

    /// How old `hint`'s content is; 0 if this process does not know.
    pub(crate) fn age(&self, hint: &HintKey) -> u64 {
        self.lock().held.get(hint).copied().unwrap_or(0)
    }

    /// The oldest age of any hint this process wrote and holds, or deleted within the grace
    /// period.
    pub fn oldest(&self) -> Option<u64> {
        let grace = self.grace_ms.load(Ordering::Relaxed);
        let now = clock::now_ms();
        let mut ages = self.lock();
        while ages
            .gone
            .front()
            .is_some_and(|&(at, _)| at.saturating_add(grace) <= now)
        {
            ages.gone.pop_front();
        }
        let gone = ages.gone.front().map(|&(_, age)| age);
        ages.held.values().copied().chain(gone).min()
    }
}

impl Replica {
    /// Writes `record` as the hint `hint`, noting the age of its content if the hint is
    /// `new` (no such hint was held) or known to this process; a hint held from before it
    /// started keeps its unknown age. Every hint is written here, so that the purge
    /// watermark sees it.
    pub(super) fn write_hint(
        &self,
        hint: &HintKey,
        record: &Record,
        new: bool,
    ) -> Result<(), StoreError> {
        let known = new || self.hint_ages.age(hint) != 0;
        if known {
            // Noted before the write: a hint is never held with an age younger than its
            // content.
            let stamped = record.state.siblings().iter().map(|s| s.timestamp_ms).min();
            let now = clock::now_ms();
            self.hint_ages
                .holds(hint, stamped.map_or(now, |t| t.min(now)));
        }
        let written = self.store.put_hint(hint, record);
        if written.is_err() && new {
            // Never held: an age left behind would hold every purge back.
            self.hint_ages.forget(hint);
        }
        written
    }

    /// Deletes the hint `hint`; its age counts for the grace period still.
    pub(super) fn remove_hint(&self, hint: &HintKey) -> Result<(), StoreError> {
        self.store.delete_hint(hint)?;
        self.hint_ages.deleted(hint);
        Ok(())
    }

    /// How old the content of the hint `hint` is (0: unknown, written before this process
    /// started).
    pub fn hint_age(&self, hint: &HintKey) -> u64 {
        self.hint_ages.age(hint)
    }

    /// The ages of this node's hints, which its purge report includes at every gossip tick.
    pub fn hint_ages(&self) -> Arc<HintAges> {
        self.hint_ages.clone()
    }

    /// Whether this node's own copy of the key is the dead state `target` names (by its
    /// version vector and dots) and holds no live value by this node's clock: what every
    /// home must answer before a purge.
    pub fn purge_check(&self, target: &PurgeKey) -> Result<bool, WireError> {
        let record = self
            .store
            .get(&target.bucket, &target.key)
            .map_err(store_error)?;
        Ok(record.is_some_and(|r| target.matches(&r.state, clock::now_ms())))
    }

    /// Deletes this node's own copy of the key if it still is the dead state `target`
    /// names (or, for a pruning, drops the history of that state's version vector that no
    /// sibling needs), and the node still routes by the ring of epoch `judged_by`. Returns
    /// whether it is done (deleted or pruned now, or not held).
    pub fn purge(&self, target: &PurgeKey, judged_by: RingEpoch) -> Result<bool, StoreError> {
        let (bucket, key) = (target.bucket.as_str(), &target.key[..]);
        let _guard = self.locks.lock(bucket, key);
        if self.view.borrow().ring.epoch() != judged_by {
            return Ok(false);
        }
        match self.store.get(bucket, key)? {
            None => Ok(true),
            Some(mut record) if target.prune && target.matches(&record.state, clock::now_ms()) => {
                // The marker stays: the node still remembers the last dot it minted, and a
                // stamp continues that actor only if a context names it again.
                if record.state.prune_history() {
                    self.store.put(bucket, key, &record)?;
                    self.counters.pruned_keys.fetch_add(1, Ordering::Relaxed);
                }
                Ok(true)
            }
            Some(record) if target.matches(&record.state, clock::now_ms()) => {
                self.store.delete(bucket, key)?;
                self.counters.purged_keys.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }
}
