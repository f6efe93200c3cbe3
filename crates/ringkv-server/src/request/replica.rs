//! The replica: this node's read-modify-write of one key's versions.
//!
//! Every change to a key's stored state on this node goes through [`Replica`], under the key's
//! lock: a client's write is stamped here (this is where dots are minted, under the actor
//! `actors` chooses, with the marker that proves it next time), a peer's state is
//! merged, a hint is kept for an unreachable home, a delivered hint or a cleaned-up copy is
//! deleted only if it did not change meanwhile. Reads merge the node's own copy with the hints
//! it holds, so a fallback serves back what it took.
//!
//! The code is synchronous: each operation is one store read and one store write under a std
//! mutex, run on the connection's task or a blocking thread by the caller (see `lane`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use bytes::Bytes;
use ringkv_core::hash::key_position;
use ringkv_core::siblings::MAX_SIBLINGS;
use ringkv_core::wire::WireError;
use ringkv_core::{ConflictPolicy, NodeId, RingEpoch, SiblingSet, VersionVector};
use tokio::sync::watch;
use tracing::{debug, error};

use crate::clock;
use crate::cluster::ClusterView;
use crate::ops::counters::NodeCounters;
use crate::request::actors::Actors;
use crate::storage::{HintKey, Record, Store, StoreError, encode_state, expiry};
use records::KeyRecords;

/// The parts of a `Put` request that say what to write.
#[derive(Debug)]
pub struct Write {
    /// The version vector of the read this write is based on (`None`: a blind write).
    pub context: Option<VersionVector>,
    /// The value, or `None` for a delete (a tombstone).
    pub value: Option<Bytes>,
    /// Replace every sibling this node holds, whatever the context.
    pub overwrite: bool,
    /// The SDK's id for this write, the same on every retry of it.
    pub write_id: Option<u64>,
    /// Stamped by a fallback: keep the result as a hint for this home node.
    pub hint: Option<NodeId>,
    /// The value expires this long after this node's clock says it was stamped.
    pub ttl_ms: Option<u64>,
}

/// How long after its expiry (by this node's clock) an expired version may still be
/// extended elsewhere, by a touch this node missed and that anti-entropy, hints and read
/// repair have not brought yet; a write stamped here supersedes expired versions older than
/// that. Until then they stay (valueless) and do not count toward the sibling cap.
pub const EXPIRED_GRACE_MS: u64 = 10 * 60 * 1000;

/// One node's copy of every key it holds, and the hints it keeps for other nodes.
#[derive(Debug)]
pub struct Replica {
    store: Arc<dyn Store>,
    /// Which actor each stamp is made under.
    actors: Actors,
    /// For each bucket's conflict policy.
    view: watch::Receiver<Arc<ClusterView>>,
    locks: KeyLocks,
    counters: Arc<NodeCounters>,
    /// Hints are refused while the queue holds more bytes than this.
    max_hint_queue_bytes: u64,
    /// Held shared by each copy from its ring checks until it is written (see
    /// [`Replica::ring_checked`]), and taken alone by a transfer before it walks the store
    /// ([`Replica::settle_ring_checks`]).
    ring_gate: RwLock<()>,
    /// When each hint was created (see `purge`).
    hint_ages: Arc<purge::HintAges>,
}

impl Replica {
    /// The replica of the node that owns `store`, stamping under `actors`.
    pub fn new(
        store: Arc<dyn Store>,
        actors: Actors,
        view: watch::Receiver<Arc<ClusterView>>,
        counters: Arc<NodeCounters>,
        max_hint_queue_bytes: u64,
    ) -> Replica {
        Replica {
            store,
            actors,
            view,
            locks: KeyLocks::new(),
            counters,
            max_hint_queue_bytes,
            ring_gate: RwLock::new(()),
            hint_ages: Arc::default(),
        }
    }

    /// Taken by a request before it checks whether this node's ring lets it take a copy of
    /// a key, and held until the copy is written. A copy checked by the old ring, written
    /// after a new transfer's walk passed its key, would be neither streamed nor kept (the
    /// clean-up deletes it); [`Replica::settle_ring_checks`] closes that window.
    pub fn ring_checked(&self) -> RwLockReadGuard<'_, ()> {
        self.ring_gate
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every copy checked by an older ring than the one now in the view is
    /// written: a transfer calls it after it saw the new ring and before it walks the store,
    /// so the walk sees every copy taken under the old one. Blocking; brief (the copies in
    /// flight are single store writes).
    pub fn settle_ring_checks(&self) {
        drop(
            self.ring_gate
                .write()
                .unwrap_or_else(PoisonError::into_inner),
        );
    }

    /// The store the replica writes to (scans and statistics read it directly).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Where the replica's actors come from.
    pub fn actors(&self) -> &Actors {
        &self.actors
    }

    /// The key's state as this node can answer it: its own copy merged with any hints it
    /// holds for other nodes (a fallback that took a write must be able to serve it back).
    ///
    /// Values expired by this node's clock are left out (their siblings stay, valueless: see
    /// `ringkv_core::siblings`, "Expiry"); the store keeps them until the write path or the
    /// engine's compaction reclaims them.
    pub fn read(&self, bucket: &str, key: &[u8]) -> Result<Option<SiblingSet>, WireError> {
        let mut state = self.records(bucket, key)?.merged(self.policy(bucket));
        if let Some(state) = &mut state {
            state.strip_expired(clock::now_ms());
        }
        Ok(state)
    }

    /// Every record this node holds for the key: its copy and its hints.
    fn records(&self, bucket: &str, key: &[u8]) -> Result<KeyRecords, WireError> {
        Ok(KeyRecords {
            data: self.store.get(bucket, key).map_err(store_error)?,
            hints: self.store.hints_for_key(bucket, key).map_err(store_error)?,
        })
    }

    /// Stamps a write under the key's lock. See `SiblingSet::stamp` for the semantics.
    ///
    /// The write is stamped on top of everything this node holds for the key, its own copy and
    /// every hint, under the actor `Actors::choose` picks from the key's marker: the new dot
    /// is new among every state anywhere (see `actors`). The record written gets the new
    /// marker; the key's other records lose theirs first, since their markers no longer name
    /// the last dot minted here.
    pub fn stamp(&self, bucket: &str, key: &[u8], write: Write) -> Result<SiblingSet, WireError> {
        let policy = self.policy(bucket);
        if write.hint.is_some() {
            self.refuse_hints_if_leaving()?;
        }
        let _guard = self.locks.lock(bucket, key);
        let permit = self
            .actors
            .permit(self.store.as_ref())
            .map_err(store_error)?;
        let records = self.records(bucket, key)?;
        let mut state = records.merged(policy).unwrap_or_default();
        let now = clock::now_ms();
        self.reclaim(&mut state, now);
        if policy == ConflictPolicy::Siblings {
            // Versions long expired are superseded by this write, as if it had read them:
            // a key written blind once per time to live would otherwise keep one of each.
            state.forget_expired(now.saturating_sub(EXPIRED_GRACE_MS));
        }
        let target = write.hint.map(|home| HintKey {
            bucket: bucket.to_string(),
            key: key.to_vec(),
            home,
        });
        if let Some(id) = write.write_id
            && state.dot_of_write(id).is_some()
        {
            // A retry of a write this node already stamped: it is one write, stamped once.
            // The record it was asked for still gets it (a hint for another home, say).
            self.keep_in(bucket, key, target.as_ref(), &records, &state, policy)?;
            return Ok(state);
        }
        let writes = state.write_count();
        let blind = write.context.is_none() && !write.overwrite;
        if blind && writes > 1 && policy == ConflictPolicy::Siblings {
            return Err(WireError::ContextRequired {
                siblings: writes as u32,
            });
        }
        let mut context = write.context.unwrap_or_default();
        // Under lww every write replaces what the node holds: there are no siblings to keep.
        if write.overwrite || policy == ConflictPolicy::Lww {
            context.merge(state.version_vector());
        }
        let actor = self
            .actors
            .choose(&permit, &state, &context, records.marker());
        let expires = write
            .value
            .as_ref()
            .and(write.ttl_ms)
            .map(|ttl| now.saturating_add(ttl));
        let dot = state
            .stamp(actor, &context, write.value, now, write.write_id)
            .map_err(|e| WireError::InvalidRequest {
                reason: e.to_string(),
            })?;
        state.set_expiry(dot, expires);
        // Expired siblings whose values are gone do not count: a key written blind once per
        // time to live would otherwise fill up with them (they go with the purge).
        let kept = state
            .siblings()
            .iter()
            .filter(|s| s.value.is_some() || s.expires_ms.is_none())
            .count();
        if kept > MAX_SIBLINGS {
            return Err(WireError::TooManySiblings {
                count: kept as u32,
                max: MAX_SIBLINGS as u32,
            });
        }
        records.clear_markers_except(self.store.as_ref(), bucket, key, target.as_ref())?;
        let record = Record {
            state,
            minted: Some(self.actors.minted(dot)),
        };
        match &target {
            Some(hint) => {
                let new = !records.hints.iter().any(|(h, _)| h == hint);
                self.write_hint(hint, &record, new).map_err(store_error)?
            }
            None => self.store.put(bucket, key, &record).map_err(store_error)?,
        }
        drop(permit);
        debug!(
            bucket,
            key_len = key.len(),
            dot = %dot,
            siblings = record.state.siblings().len(),
            "stamped"
        );
        Ok(record.state)
    }

    /// Merges `state` into the record `target` names (`None`: the node's own copy), keeping
    /// its marker; under the key's lock, which the caller holds.
    fn keep_in(
        &self,
        bucket: &str,
        key: &[u8],
        target: Option<&HintKey>,
        records: &KeyRecords,
        state: &SiblingSet,
        policy: ConflictPolicy,
    ) -> Result<(), WireError> {
        let held = match target {
            Some(hint) => records
                .hints
                .iter()
                .find(|(h, _)| h == hint)
                .map(|(_, r)| r.clone()),
            None => records.data.clone(),
        };
        let new = held.is_none();
        let mut record = held.unwrap_or_default();
        if record.state.merge(state, policy) {
            match target {
                Some(hint) => self.write_hint(hint, &record, new),
                None => self.store.put(bucket, key, &record),
            }
            .map_err(store_error)?;
        }
        Ok(())
    }

    /// Writes a checkpoint of the store to `dir` (see `Store::checkpoint`), once the store
    /// records this run as running: a restored copy then starts a new incarnation.
    pub fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StoreError> {
        self.actors.before_checkpoint(self.store.as_ref())?;
        self.store.checkpoint(dir)
    }

    /// Merges a state from a peer under the key's lock, writing only if something changed.
    pub fn merge(&self, bucket: &str, key: &[u8], incoming: &SiblingSet) -> Result<(), WireError> {
        let policy = self.validated_policy(bucket, incoming)?;
        let _guard = self.locks.lock(bucket, key);
        let mut record = self
            .store
            .get(bucket, key)
            .map_err(store_error)?
            .unwrap_or_default();
        // The marker stays: merging in what others hold never makes a stamp made here older.
        // Written only if the result differs once stripped: a replica whose clock is behind
        // keeps sending back a value this one has already reclaimed.
        let before = record.state.clone();
        record.state.merge(incoming, policy);
        self.reclaim(&mut record.state, clock::now_ms());
        if record.state != before {
            self.store.put(bucket, key, &record).map_err(store_error)?;
        }
        Ok(())
    }

    /// Drops the values of `state` expired at `now_ms` before it is written anyway, counting
    /// them as reclaimed. Returns whether it dropped any.
    fn reclaim(&self, state: &mut SiblingSet, now_ms: u64) -> bool {
        expiry::strip(state, now_ms, self.store.reclaimed())
    }

    /// Keeps a state for `home` (which a client could not reach) until it can be handed off.
    pub fn merge_hint(
        &self,
        bucket: &str,
        key: &[u8],
        home: NodeId,
        incoming: &SiblingSet,
    ) -> Result<(), WireError> {
        let policy = self.validated_policy(bucket, incoming)?;
        self.refuse_hints_if_leaving()?;
        self.check_hint_room()?;
        let hint = HintKey {
            bucket: bucket.to_string(),
            key: key.to_vec(),
            home,
        };
        let _guard = self.locks.lock(bucket, key);
        let held = self.store.get_hint(&hint).map_err(store_error)?;
        let new = held.is_none();
        let mut record = held.unwrap_or_default();
        let before = record.state.clone();
        record.state.merge(incoming, policy);
        self.reclaim(&mut record.state, clock::now_ms());
        if record.state != before {
            self.write_hint(&hint, &record, new).map_err(store_error)?;
            let added = encode_state(incoming).len() + key.len();
            self.counters
                .hint_bytes
                .fetch_add(added as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Deletes a hint after its home node acknowledged `delivered`, unless it changed since
    /// (a newer write arrived for the same home while the handoff was in flight: that one
    /// must be handed off too). Returns whether the hint is gone.
    pub fn hint_delivered(
        &self,
        hint: &HintKey,
        delivered: &SiblingSet,
    ) -> Result<bool, StoreError> {
        let _guard = self.locks.lock(&hint.bucket, &hint.key);
        match self.store.get_hint(hint)? {
            Some(current) if &current.state == delivered => {
                self.remove_hint(hint)?;
                self.counters
                    .hints_delivered
                    .fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Ok(true),
        }
    }

    /// Deletes the key's copy if it still is `expected` (a write that arrived meanwhile keeps
    /// it) and the node still routes by the ring of epoch `judged_by` that found the copy
    /// foreign. Both are checked under the key's lock, which every write holds: a copy a newer
    /// ring sent here (a transfer's, acknowledged to its sender, which will delete its own)
    /// may equal what was found, and only the ring tells it apart. Returns whether it is gone.
    pub fn delete_if_unchanged(
        &self,
        bucket: &str,
        key: &[u8],
        expected: &SiblingSet,
        judged_by: RingEpoch,
    ) -> Result<bool, StoreError> {
        let _guard = self.locks.lock(bucket, key);
        if self.view.borrow().ring.epoch() != judged_by {
            return Ok(false);
        }
        match self.store.get(bucket, key)? {
            Some(current) if &current.state == expected => {
                self.store.delete(bucket, key)?;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Ok(true),
        }
    }

    /// Hints are refused while the queue holds more than its cap. Refusing is safe: the
    /// writer counts this copy as failed and uses another node.
    fn check_hint_room(&self) -> Result<(), WireError> {
        let held = self.counters.hint_bytes.load(Ordering::Relaxed);
        if held > self.max_hint_queue_bytes {
            return Err(WireError::Overloaded {
                reason: format!(
                    "the hint queue holds {held} bytes, over its cap of {}",
                    self.max_hint_queue_bytes
                ),
            });
        }
        Ok(())
    }

    /// A node leaving the ring (or gone from it) takes no hints: it must place every hint it
    /// holds before its part of the transfer is done (see `workers::transfer`), and one taken
    /// after that would leave with it. Refusing is safe: the writer uses the next spare.
    fn refuse_hints_if_leaving(&self) -> Result<(), WireError> {
        if !self.view.borrow().is_leaving(self.store.node_id()) {
            return Ok(());
        }
        Err(WireError::Overloaded {
            reason: "this node is leaving the ring: it takes no hints".into(),
        })
    }

    pub(super) fn policy(&self, bucket: &str) -> ConflictPolicy {
        self.view.borrow().ring.conflict_policy(bucket)
    }

    pub(super) fn validated_policy(
        &self,
        bucket: &str,
        incoming: &SiblingSet,
    ) -> Result<ConflictPolicy, WireError> {
        let policy = self.policy(bucket);
        incoming
            .validate(policy)
            .map_err(|e| WireError::InvalidRequest {
                reason: format!("corrupt state: {e}"),
            })?;
        Ok(policy)
    }
}

/// The wire's answer to a storage failure.
pub fn store_error(e: StoreError) -> WireError {
    match e {
        StoreError::Full => WireError::StorageFull,
        // Back-pressure: the client retries after a back-off or uses another replica.
        StoreError::Stalled => WireError::Overloaded {
            reason: e.to_string(),
        },
        other => {
            error!(error = %other, "storage error");
            WireError::Storage {
                reason: other.to_string(),
            }
        }
    }
}

/// Striped per-key locks for read-modify-write on one key.
///
/// A stripe per key would need a map and its own locking; 4,096 stripes make collisions rare
/// (two writes to different keys wait for each other only if they share a stripe) at a fixed
/// 4,096 small mutexes. The critical section is one store read and one store write, with no
/// await inside, hence std `Mutex`.
#[derive(Debug)]
struct KeyLocks {
    stripes: Vec<Mutex<()>>,
}

const LOCK_STRIPES: usize = 4096;

impl KeyLocks {
    fn new() -> KeyLocks {
        KeyLocks {
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn lock(&self, bucket: &str, key: &[u8]) -> MutexGuard<'_, ()> {
        let stripe = key_position(bucket.as_bytes(), key) as usize % LOCK_STRIPES;
        // A poisoned stripe only means another request panicked while holding it; the data
        // it guards lives in the store, which is still consistent.
        self.stripes[stripe]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

mod own_copies;
mod purge;
mod records;
mod touch;

pub use purge::HintAges;
pub use touch::Touch;

#[cfg(test)]
mod tests;
