//! Expiry and the end of a key's life: when values expire, how a touch extends them, and
//! when a state holds nothing but what its writes left behind (tombstones and expired
//! values), which is what a purge may remove, and the history of superseded writes a purge
//! may forget (see the server's `workers::purge`).

use super::SiblingSet;
use crate::version::Dot;

/// Why a touch (see [`SiblingSet::touch`]) was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TouchError {
    /// The write had expired by this replica's clock before the touch reached it.
    #[error("write {dot} has expired")]
    Expired {
        /// The expired write's dot.
        dot: Dot,
    },
    /// This replica has not seen these writes yet: send the read's state with the touch.
    #[error("{} write(s) not held here yet", .dots.len())]
    Missing {
        /// The dots it lacks.
        dots: Vec<Dot>,
    },
}

impl SiblingSet {
    /// Sets when the value of the sibling `dot` expires: a write's expiry, given right after
    /// it was stamped (or, under `lww`, built). Does nothing if the set has no such sibling.
    pub fn set_expiry(&mut self, dot: Dot, expires_ms: Option<u64>) {
        if let Some(s) = self.siblings.iter_mut().find(|s| s.dot == dot) {
            s.expires_ms = expires_ms;
        }
    }

    /// Extends the life of the writes `dots` (what a read returned) to `expires_ms`: a
    /// touch, which makes no new sibling and no new dot. All or nothing:
    ///
    /// - a dot held with a live value that expires gets `max(its expiry, expires_ms)`; one
    ///   that never expires stays so;
    /// - a dot this set has seen but no longer holds was superseded by a later write, which
    ///   the touch does not concern: skipped;
    /// - a dot held but expired at `now_ms` (its value stripped or due to be) is refused:
    ///   [`TouchError::Expired`], since extending it would bring back a value that replicas
    ///   may already have dropped;
    /// - a dot this set has not seen is [`TouchError::Missing`]: the caller sends the
    ///   read's state with the touch, so that the extension lands with the write.
    ///
    /// Returns whether anything changed.
    pub fn touch(
        &mut self,
        dots: &[Dot],
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<bool, TouchError> {
        let mut missing = Vec::new();
        let mut extend = Vec::new();
        for &dot in dots {
            match self.siblings.binary_search_by(|s| s.dot.cmp(&dot)).ok() {
                Some(i) => {
                    let s = &self.siblings[i];
                    if s.value.is_none() || s.expired_at(now_ms) {
                        return Err(TouchError::Expired { dot });
                    }
                    if s.expires_ms.is_some_and(|at| at < expires_ms) {
                        extend.push(i);
                    }
                }
                None if self.vv.covers(dot) => {}
                None => missing.push(dot),
            }
        }
        if !missing.is_empty() {
            return Err(TouchError::Missing { dots: missing });
        }
        for &i in &extend {
            self.siblings[i].expires_ms = Some(expires_ms);
        }
        Ok(!extend.is_empty())
    }

    /// Drops the siblings whose values expired at or before `cutoff_ms` and are already
    /// stripped, as a write that had read them would; returns how many. The version vector
    /// keeps covering them, so a copy of one still held elsewhere is dropped by the next
    /// merge instead of coming back. Only for sets under the `siblings` policy (an `lww`
    /// set's vector covers nothing, and its one sibling is what stops older values), and
    /// only for what no replica can still extend (see the server's replica).
    pub fn forget_expired(&mut self, cutoff_ms: u64) -> usize {
        let before = self.siblings.len();
        let vv = &self.vv;
        self.siblings.retain(|s| {
            !(s.value.is_none()
                && s.expires_ms.is_some_and(|at| at <= cutoff_ms)
                && vv.covers(s.dot))
        });
        before - self.siblings.len()
    }

    /// Gives every value without an expiry the expiry `expires_ms`: a new `lww` write's, set
    /// by the node it enters the cluster at.
    pub fn expire_new(&mut self, expires_ms: u64) {
        for s in &mut self.siblings {
            if s.value.is_some() && s.expires_ms.is_none() {
                s.expires_ms = Some(expires_ms);
            }
        }
    }

    /// Drops the value of every sibling expired at `now_ms`, keeping its dot and expiry (see
    /// [Expiry](#expiry)). Returns how many value bytes it dropped.
    pub fn strip_expired(&mut self, now_ms: u64) -> usize {
        let mut freed = 0;
        for s in &mut self.siblings {
            if s.expired_at(now_ms)
                && let Some(value) = s.value.take()
            {
                freed += value.len();
            }
        }
        freed
    }

    /// Whether some sibling expires: such a state is sent only to processes that know expiry
    /// (see `wire::EXPIRY_PROTOCOL_VERSION`).
    pub fn has_expiry(&self) -> bool {
        self.siblings.iter().any(|s| s.expires_ms.is_some())
    }

    /// Whether some sibling's value has expired at `now_ms` and is still held.
    pub fn holds_expired(&self, now_ms: u64) -> bool {
        self.siblings
            .iter()
            .any(|s| s.value.is_some() && s.expired_at(now_ms))
    }

    /// When this state stopped holding a live value, if it holds none at `now_ms`: the
    /// latest of its tombstones' stamps and its values' expiries (a state with no sibling
    /// at all says nothing of time: 0). `None` while a value is live. A purge measures its
    /// delay from this instant (see the server's `workers::purge`).
    pub fn dead_since(&self, now_ms: u64) -> Option<u64> {
        let mut since = 0;
        for s in &self.siblings {
            let ended = match (&s.value, s.expires_ms) {
                (_, Some(at)) if at <= now_ms => at,
                (Some(_), _) => return None,
                // A tombstone, or a stripped value whose expiry a clock behind ours has yet
                // to reach: its end is the later of its stamp and its expiry.
                (None, at) => s.timestamp_ms.max(at.unwrap_or(0)),
            };
            since = since.max(ended);
        }
        Some(since)
    }

    /// How many actors the version vector names that no sibling was stamped by: history
    /// kept only to cover writes superseded long ago (each fresh actor adds one, see
    /// `version`). What [`SiblingSet::prune_history`] would drop.
    pub fn prunable_actors(&self) -> usize {
        self.vv
            .iter()
            .filter(|(actor, _)| !self.siblings.iter().any(|s| s.dot.actor == *actor))
            .count()
    }

    /// Drops the version vector's entries of actors no sibling was stamped by. Only safe
    /// once no copy of the key anywhere can hold a version those entries cover (the
    /// server's purge rule): such a version would merge back in as new. Returns whether
    /// anything was dropped.
    pub fn prune_history(&mut self) -> bool {
        let before = self.vv.len();
        let siblings = &self.siblings;
        self.vv
            .retain(|actor| siblings.iter().any(|s| s.dot.actor == actor));
        self.vv.len() != before
    }
}
