//! The sibling set of one key: a dotted version vector set (DVV set).
//!
//! This is the DVV set of Preguiça, Almeida et al., in the explicit form of DESIGN.md §4:
//!
//! ```text
//! SiblingSet { vv: Actor -> u64,                       // every dot this state has seen
//!              siblings: [(Dot, timestamp, Option<value>)] }   // None = tombstone
//! ```
//!
//! # Operations and their contracts
//!
//! - [`SiblingSet::stamp`] (a write, made by the coordinating server under a per-key lock):
//!   a new dot `(actor, max(vv[actor], context[actor]) + 1)`, where the server chose an actor
//!   whose last dot on this key it provably remembers, or a fresh one (see
//!   [`crate::version`]); every sibling whose dot the writer's context covers is
//!   dropped; `vv` becomes `max(vv, context)` plus the new dot; the new sibling is added. A write
//!   therefore supersedes exactly what its writer had read, and two writes from the same
//!   context both survive as siblings.
//! - [`SiblingSet::merge`] (replication, read repair, hinted handoff, rebalancing): a sibling
//!   survives if both sides hold it, or if the other side has not seen its dot; `vv` is the
//!   pointwise maximum. Merge is **commutative, associative and idempotent** (tested as
//!   properties in `siblings::tests`), so replicas may exchange states in any order, any number
//!   of times, and converge to the same set.
//! - Under [`ConflictPolicy::Lww`] merge keeps only the sibling with the greatest
//!   `(timestamp, dot)`; that is still a lattice join, so the same laws hold.
//!
//! The invariant that makes "nothing acknowledged is lost" true: a sibling disappears only when
//! some later write's context covered its dot, i.e. only when a writer had seen it.
//!
//! # Expiry
//!
//! A write may carry an expiry ([`Sibling::expires_ms`]), set by the stamping server from its
//! own clock and the write's time to live. Expiry never removes a sibling, only its value:
//! an expired sibling keeps its dot, so it still covers what its write superseded, and the
//! version vector is untouched, so a stale replica's older value cannot merge back.
//! [`SiblingSet::strip_expired`] drops the value bytes of siblings expired by a replica's
//! clock (on every read, write and merge, and in the storage engine's compaction); a
//! stripped sibling reads as absent, like a tombstone. Two copies of one dot merge by
//! [`Sibling::join`]: the later expiry, and the value if either copy still holds it. So a
//! replica whose clock runs ahead cannot cut short a value that the others still hold, and
//! a value comes back only together with an expiry that a replica has not yet passed.
//!
//! # Retried writes
//!
//! A client that does not know whether a write was applied (its coordinator timed out) sends
//! it again, possibly to another coordinator, which stamps it with another dot. Each write
//! carries a random `write_id` chosen by the client, the same on every retry. A server that
//! already holds the id does not stamp it again. Two coordinators may still both have
//! stamped it, leaving two siblings with one id: merge keeps both (it is the plain DVV join,
//! so it stays commutative, associative and idempotent, and a sibling still disappears only
//! when a context covers its own dot), and reads present them as one write
//! ([`SiblingSet::writes`]). Collapsing them in merge instead would keep one dot and drop the
//! other: a reader that saw only the kept one deletes with a context that does not cover the
//! dropped one, which then comes back on a replica that still holds it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::bucket::ConflictPolicy;
use crate::version::{Actor, Dot, VersionVector};

/// Siblings one key may hold before new writes without a resolving context are refused.
/// Beyond this, reads grow large and the application has clearly stopped merging.
pub const MAX_SIBLINGS: usize = 100;

/// One version of a value (or a tombstone) and the write that made it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sibling {
    /// The write's identity: contexts cover siblings by their dot, and merges tell siblings
    /// apart by it.
    pub dot: Dot,
    /// Milliseconds since the Unix epoch on the stamping node's clock. Informational under
    /// `siblings`; the ordering under `lww`.
    pub timestamp_ms: u64,
    /// `None` marks a delete.
    pub value: Option<Bytes>,
    /// The client's id for the write, shared by every retry of it (see the module docs).
    #[serde(default)]
    pub write_id: Option<u64>,
    /// When the value expires, in milliseconds since the Unix epoch on the servers' clocks
    /// (see [Expiry](#expiry) in the module docs); `None`: never. Absent from states written
    /// before expiry existed, which therefore encode as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

impl Sibling {
    /// Whether this sibling's value has expired at `now_ms` (a server's clock).
    pub fn expired_at(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }

    /// The join of two copies of one write (one dot): the later expiry (a touch extends
    /// it), and the value if either copy still has it (the other's was reclaimed after it
    /// expired by that replica's clock). A write either expires or never does, so a copy
    /// without an expiry beside one with an expiry has lost it (a process older than expiry
    /// passed it on): `None` joins below any expiry, and such a copy cannot make the write
    /// immortal. Every field is joined by `max`, so that two copies a forged peer made to
    /// differ still merge the same way in any order.
    fn join(&self, other: &Sibling) -> Sibling {
        debug_assert_eq!(self.dot, other.dot);
        Sibling {
            dot: self.dot,
            timestamp_ms: self.timestamp_ms.max(other.timestamp_ms),
            value: self.value.clone().max(other.value.clone()),
            write_id: self.write_id.max(other.write_id),
            expires_ms: self.expires_ms.max(other.expires_ms),
        }
    }
}

/// The versioned state of one key. See the module docs for the semantics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SiblingSet {
    vv: VersionVector,
    /// Sorted by dot, no two with the same dot: the canonical form that makes `==` meaningful.
    siblings: Vec<Sibling>,
}

/// Why a sibling set received from a peer cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSiblings {
    /// The siblings are not sorted by dot, or two share a dot: equality and merge rely on
    /// the canonical form.
    #[error("siblings are not in canonical order or repeat a dot")]
    NotCanonical,
    /// A sibling's dot is not covered by the set's own version vector: the set would claim
    /// a write it has not seen, and a merge could wrongly drop the sibling elsewhere.
    #[error("sibling {actor}:{counter} is not covered by the set's own version vector")]
    Uncovered {
        /// The actor of the uncovered dot.
        actor: Actor,
        /// The counter of the uncovered dot.
        counter: u64,
    },
    /// A dot with counter 0: counters start at 1, so every version vector covers such a dot
    /// and the first merge would drop it.
    #[error("a dot with counter 0 cannot exist")]
    ZeroCounter,
}

/// Why a write cannot be stamped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    /// The set or the writer's context already claims `u64::MAX` dots of `actor`, so `actor`
    /// has no next dot to give this write. No genuine history gets there; a forged context or
    /// state does, and the write is refused. (A server stamps under a fresh actor whenever a
    /// key's counter for its actor is not the one it minted last, so a forged counter of its
    /// own actor does not poison the key.)
    #[error("the version vector claims every possible write of actor {actor}: no dot is left")]
    CounterExhausted {
        /// The actor the write was to be stamped under.
        actor: Actor,
    },
}

impl SiblingSet {
    /// The state of a key never written: no siblings, an empty version vector.
    pub fn new() -> SiblingSet {
        SiblingSet::default()
    }

    /// A state holding one write made without a server's stamp: the `lww` write path, where
    /// the client builds the state and sends it to every replica in one round trip. Its version
    /// vector stays empty; `dot` only breaks timestamp ties.
    pub fn lww(dot: Dot, timestamp_ms: u64, value: Option<Bytes>) -> SiblingSet {
        SiblingSet {
            vv: VersionVector::new(),
            siblings: vec![Sibling {
                dot,
                timestamp_ms,
                value,
                write_id: None,
                expires_ms: None,
            }],
        }
    }

    /// The causal context of this state: every dot it has seen.
    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    /// Every sibling, tombstones included, sorted by dot.
    pub fn siblings(&self) -> &[Sibling] {
        &self.siblings
    }

    /// The siblings that hold a value (not tombstones).
    pub fn live(&self) -> impl Iterator<Item = &Sibling> {
        self.siblings.iter().filter(|s| s.value.is_some())
    }

    /// How many siblings hold a value: more than one means concurrent writes that the
    /// application has to merge.
    pub fn live_count(&self) -> usize {
        self.live().count()
    }

    /// True when nothing was ever written, or every write was a delete: the key reads as absent.
    pub fn is_absent(&self) -> bool {
        self.live_count() == 0
    }

    /// The live siblings as the writes they are: siblings that share a write id (one write
    /// stamped by two coordinators, see the module docs) appear once, under the smallest dot.
    /// This is what a reader is shown; the set itself keeps every dot.
    pub fn writes(&self) -> impl Iterator<Item = &Sibling> {
        self.live()
            .enumerate()
            .filter(|&(i, s)| match s.write_id {
                Some(id) => !self.live().take(i).any(|e| e.write_id == Some(id)),
                None => true,
            })
            .map(|(_, s)| s)
    }

    /// How many distinct writes hold a value: more than one means concurrent writes that the
    /// application has to merge.
    pub fn write_count(&self) -> usize {
        self.writes().count()
    }

    /// The dot under which this set holds the write with id `id`, if it holds it.
    pub fn dot_of_write(&self, id: u64) -> Option<Dot> {
        self.siblings
            .iter()
            .find(|s| s.write_id == Some(id))
            .map(|s| s.dot)
    }

    /// The next dot `actor` would give a write on this set from `context`.
    ///
    /// Fails when `actor`'s counter is exhausted: a context or a stored vector claiming
    /// `u64::MAX` writes by `actor` (only a forged one can) leaves no next dot.
    pub fn next_dot(&self, actor: Actor, context: &VersionVector) -> Result<Dot, StampError> {
        let seen = self.vv.get(actor).max(context.get(actor));
        Ok(Dot {
            actor,
            counter: seen
                .checked_add(1)
                .ok_or(StampError::CounterExhausted { actor })?,
        })
    }

    /// Applies a write stamped by `actor`: see the module docs. Returns the write's new dot.
    ///
    /// The caller chose `actor` so that the dot is new (see [`crate::version`]); the set
    /// cannot check that, since it does not know what other replicas hold. Fails, changing
    /// nothing, as [`SiblingSet::next_dot`] does.
    pub fn stamp(
        &mut self,
        actor: Actor,
        context: &VersionVector,
        value: Option<Bytes>,
        timestamp_ms: u64,
        write_id: Option<u64>,
    ) -> Result<Dot, StampError> {
        let dot = self.next_dot(actor, context)?;
        self.siblings.retain(|s| !context.covers(s.dot));
        self.vv.merge(context);
        self.vv.observe(dot);
        let at = self.siblings.partition_point(|s| s.dot < dot);
        self.siblings.insert(
            at,
            Sibling {
                dot,
                timestamp_ms,
                value,
                write_id,
                expires_ms: None,
            },
        );
        Ok(dot)
    }

    /// Merges `other` into `self` under `policy`. Returns whether `self` changed.
    pub fn merge(&mut self, other: &SiblingSet, policy: ConflictPolicy) -> bool {
        let before_vv = self.vv.clone();
        // Values are `Bytes`: the copy shares them. A merge may change a sibling in place
        // (a later expiry, a value back), so whole siblings are compared, not only dots.
        let before = self.siblings.clone();
        match policy {
            ConflictPolicy::Siblings => self.merge_dvv(other),
            ConflictPolicy::Lww => self.merge_lww(other),
        }
        self.vv != before_vv || self.siblings != before
    }

    fn merge_dvv(&mut self, other: &SiblingSet) {
        let mut merged = Vec::with_capacity(self.siblings.len() + other.siblings.len());
        let (mut a, mut b) = (
            self.siblings.iter().peekable(),
            other.siblings.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.dot == y.dot => {
                    merged.push(x.join(y));
                    a.next();
                    b.next();
                }
                (Some(x), Some(y)) if x.dot < y.dot => {
                    if !other.vv.covers(x.dot) {
                        merged.push((*x).clone());
                    }
                    a.next();
                }
                (Some(_), Some(y)) => {
                    if !self.vv.covers(y.dot) {
                        merged.push((*y).clone());
                    }
                    b.next();
                }
                (Some(x), None) => {
                    if !other.vv.covers(x.dot) {
                        merged.push((*x).clone());
                    }
                    a.next();
                }
                (None, Some(y)) => {
                    if !self.vv.covers(y.dot) {
                        merged.push((*y).clone());
                    }
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.siblings = merged;
        self.vv.merge(&other.vv);
    }

    fn merge_lww(&mut self, other: &SiblingSet) {
        let key = |s: &Sibling| (s.timestamp_ms, s.dot);
        let all = || self.siblings.iter().chain(&other.siblings);
        // The winner is a write, named by its timestamp and dot; both sides' copies of it are
        // joined (one may carry a later expiry, or still its value).
        let winner = all().map(key).max().and_then(|best| {
            all()
                .filter(|s| key(s) == best)
                .cloned()
                .reduce(|a, b| a.join(&b))
        });
        self.siblings = winner.into_iter().collect();
        self.vv.merge(&other.vv);
    }

    /// Checks the invariants a state received from a peer or read from disk must hold. Under
    /// `siblings` every sibling must be covered by the set's own vector; `lww` states carry
    /// client-made dots and an empty vector, so only order is checked for them.
    pub fn validate(&self, policy: ConflictPolicy) -> Result<(), InvalidSiblings> {
        for pair in self.siblings.windows(2) {
            if pair[0].dot >= pair[1].dot {
                return Err(InvalidSiblings::NotCanonical);
            }
        }
        for s in &self.siblings {
            if s.dot.counter == 0 {
                return Err(InvalidSiblings::ZeroCounter);
            }
            if policy == ConflictPolicy::Siblings && !self.vv.covers(s.dot) {
                return Err(InvalidSiblings::Uncovered {
                    actor: s.dot.actor,
                    counter: s.dot.counter,
                });
            }
        }
        Ok(())
    }
}

mod expiry;

pub use expiry::TouchError;

#[cfg(test)]
mod tests;
