//! Which actor a write is stamped under: the rule that makes every dot unique for ever.
//!
//! # The problem
//!
//! A dot `(actor, n)` must name one write only: replicas that meet two writes under one dot
//! keep one and drop the other, and a version vector that has seen `(A, 17)` claims `(A, 1)`
//! to `(A, 16)` too. A node numbers its next write on a key from what it holds for the key.
//! But a node forgets: a fallback deletes a hint once it is delivered, a transfer deletes a
//! copy the node no longer owns, a crash with `durability = "os"` loses the last stamps of
//! the log (after peers received them), a restore from a checkpoint forgets everything since.
//! Numbered from what is left, the next write gets a dot the node already gave away (Riak's
//! KV679), and an acknowledged write vanishes.
//!
//! Two shortcuts do not work. A node-wide counter alone makes `(A, 17)` claim an earlier
//! `(A, 5)` of the same key it never saw. "A fresh actor when the node holds nothing for the
//! key" fails when the node forgot the key and then got an older state of it back (read
//! repair returns `{F:1}` after `(F, 2)` was delivered and deleted: the node would mint
//! `(F, 2)` again).
//!
//! # The rule
//!
//! Each stored record of a key (the node's copy or a hint) carries a [`Minted`] marker: the
//! last dot this node minted into it, and the node's incarnation then. It is written in the
//! same store write as the stamp, never sent to another node, and cleared from the key's other
//! records when a stamp lands in one of them. To stamp, the node continues actor `X` only if
//! a marker says `(X, c)` in the current incarnation and `c = max(vv[X], context[X])`: then it
//! provably remembers `X`'s last dot on the key, and `(X, c + 1)` is new. Otherwise it takes
//! a fresh actor: its node id and an epoch never handed out before, so `(fresh, 1)` is new.
//!
//! - A forgotten record takes its marker with it: the next stamp is fresh.
//! - A state received back (read repair, a hint, a stream) carries no marker: fresh.
//! - A marker with `vv[X]` or `context[X]` past it (a stamp kept in a record since deleted,
//!   a forged context): fresh.
//! - A crash, a lost log tail, a restore: a new incarnation, so no old marker matches.
//!
//! # Incarnations and epochs
//!
//! The node keeps one record, [`RECORD`], in its store's meta column family: its incarnation,
//! the next epoch, and whether the last run ended cleanly. A clean shutdown (the store flushed,
//! no stamp can follow) writes the exact next epoch and `clean`; the next start continues
//! both, so a rolling restart costs version vectors nothing. Any other start (a crash, a power
//! loss, a checkpoint, which is always taken from a running node) finds `clean` unset and
//! starts a new incarnation at a random 64-bit epoch: the node cannot know how far the lost
//! run got, so it jumps. A collision needs the same node to draw an epoch range overlapping an
//! earlier one on the same key, about `runs² · epochs per run / 2⁶⁴`: for a thousand unclean
//! starts of four billion fresh actors each, below one in a thousand million. The `running`
//! record is on disk (synced) before the first stamp of a run, so a crash is always seen.
//!
//! A copy of a cleanly stopped node's directory, started later as a restore, looks like a
//! clean restart; start it with `ringkvd --restored` so that it takes a new incarnation.
//! Checkpoints taken with `POST /checkpoint` need nothing: the checkpoint is made only once
//! the store records the run as running. Stamps hold a [`StampPermit`] until their record is
//! written, and [`Actors::close`] waits for them and refuses later ones, so nothing is minted
//! after the clean stop is recorded.
//!
//! Version vectors grow by one entry per fresh actor: once per key per node that forgot or
//! crashed, not per write or per clean restart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use ringkv_core::{Actor, NodeId, SiblingSet, VersionVector};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::storage::records;
use crate::storage::{Minted, Store, StoreError};

/// The name of the node's actor record in the store's meta column family.
pub const RECORD: &str = "actors";

/// What a run leaves for the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    incarnation: u64,
    next_epoch: u64,
    /// Written by a clean shutdown only; a record without it means the run was cut short.
    clean: bool,
}

/// The node's source of actors. See the module docs.
#[derive(Debug)]
pub struct Actors {
    node: NodeId,
    incarnation: u64,
    next_epoch: AtomicU64,
    /// Whether the store says this incarnation is running (so that a crash is seen as one).
    running_saved: AtomicBool,
    /// Serialises saving the record.
    saving: Mutex<()>,
    /// Held (shared) by every stamp from choosing its actor until its record is written;
    /// [`Actors::close`] takes it exclusively and sets it, after which no stamp is made.
    /// Without it a request still running after the server's drain timed out could stamp
    /// after the clean stop was recorded, and the next run would mint that dot again.
    closed: RwLock<bool>,
}

/// A stamp in progress: the node cannot record a clean stop until it is dropped.
#[derive(Debug)]
pub struct StampPermit<'a> {
    /// Held for its lifetime only: it keeps [`Actors::close`] waiting.
    _open: RwLockReadGuard<'a, bool>,
}

impl Actors {
    /// Makes the next [`Actors::open`] on `store` start a new incarnation even if the last
    /// run stopped cleanly: for a store restored from a copy made while it was stopped.
    pub fn forget_clean_stop(store: &dyn Store) -> Result<(), StoreError> {
        match records::load::<Saved>(store, RECORD) {
            Some(saved) if saved.clean => records::store(
                store,
                RECORD,
                &Saved {
                    clean: false,
                    ..saved
                },
            ),
            _ => Ok(()),
        }
    }

    /// The actors of the node that owns `store`: the last run's, if it ended cleanly, else a
    /// new incarnation. Records that this run has started before returning; if that fails,
    /// every stamp retries it first and fails while it cannot.
    pub fn open(store: &dyn Store) -> Actors {
        let saved = records::load::<Saved>(store, RECORD);
        let (incarnation, next_epoch) = match saved {
            Some(saved) if saved.clean => (saved.incarnation, saved.next_epoch),
            _ => {
                let incarnation = nonzero_random();
                info!(
                    incarnation = format_args!("{incarnation:x}"),
                    reason = if saved.is_some() {
                        "the last run did not stop cleanly"
                    } else {
                        "first start with actor epochs"
                    },
                    "a new incarnation: every key's next stamp here takes a fresh actor"
                );
                (incarnation, nonzero_random())
            }
        };
        let actors = Actors {
            node: store.node_id(),
            incarnation,
            next_epoch: AtomicU64::new(next_epoch),
            running_saved: AtomicBool::new(false),
            saving: Mutex::new(()),
            closed: RwLock::new(false),
        };
        if let Err(e) = actors.ensure_running(store) {
            warn!(error = %e, "cannot record the node's incarnation; writes wait for it");
        }
        actors
    }

    /// Permission to stamp: hold it from [`Actors::choose`] until the stamped record is
    /// written. Fails once the node recorded a clean stop, or while this run cannot be
    /// recorded as running (a full disk): a stamp then would not be seen by the next start.
    pub fn permit(&self, store: &dyn Store) -> Result<StampPermit<'_>, StoreError> {
        self.ensure_running(store)?;
        let closed = self.closed.read().unwrap_or_else(PoisonError::into_inner);
        if *closed {
            return Err(StoreError::Engine(
                "the node is stopping: it stamps no more writes".into(),
            ));
        }
        Ok(StampPermit { _open: closed })
    }

    /// The actor a write to a key holding `state` (all the node's records of it merged) is
    /// stamped under, given the writer's `context` and the key's `marker`: see the module
    /// docs. The caller holds a [`StampPermit`].
    pub fn choose(
        &self,
        _permit: &StampPermit<'_>,
        state: &SiblingSet,
        context: &VersionVector,
        marker: Option<Minted>,
    ) -> Actor {
        if let Some(m) = marker
            && m.incarnation == self.incarnation
            && m.dot.actor.node == self.node
            && m.dot.actor.epoch != 0
            && m.dot.counter
                == state
                    .version_vector()
                    .get(m.dot.actor)
                    .max(context.get(m.dot.actor))
        {
            return m.dot.actor;
        }
        self.fresh()
    }

    /// The marker for a dot this node just minted.
    pub fn minted(&self, dot: ringkv_core::Dot) -> Minted {
        Minted {
            dot,
            incarnation: self.incarnation,
        }
    }

    /// An actor no state anywhere has seen.
    pub fn fresh(&self) -> Actor {
        loop {
            let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed);
            // Epoch 0 is the legacy actor (the node id alone), which earlier versions used.
            if epoch != 0 {
                return Actor {
                    node: self.node,
                    epoch,
                };
            }
        }
    }

    /// The current incarnation (reported by `explain` and tests).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Stops stamping (waiting for stamps in progress), flushes the store, and records a
    /// clean stop, so that the next start continues this incarnation. Writes that arrive
    /// later are refused, never acknowledged.
    pub fn close(&self, store: &dyn Store) -> Result<(), StoreError> {
        let mut closed = self.closed.write().unwrap_or_else(PoisonError::into_inner);
        *closed = true;
        store.flush()?;
        let _saving = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
        self.save(store, true)
    }

    /// Records that this run is running (if not yet) before the store is copied, so that a
    /// copy never carries the last run's clean stop.
    pub fn before_checkpoint(&self, store: &dyn Store) -> Result<(), StoreError> {
        self.ensure_running(store)
    }

    fn ensure_running(&self, store: &dyn Store) -> Result<(), StoreError> {
        if self.running_saved.load(Ordering::Acquire) {
            return Ok(());
        }
        let _saving = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.running_saved.load(Ordering::Acquire) {
            self.save(store, false)?;
            self.running_saved.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn save(&self, store: &dyn Store, clean: bool) -> Result<(), StoreError> {
        let saved = Saved {
            incarnation: self.incarnation,
            next_epoch: self.next_epoch.load(Ordering::Relaxed),
            clean,
        };
        records::store(store, RECORD, &saved)
    }
}

fn nonzero_random() -> u64 {
    rand::random::<u64>().max(1)
}

#[cfg(test)]
mod tests;
