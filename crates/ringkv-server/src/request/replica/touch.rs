//! Touches on this node: a sliding expiry applied to the key's copy or a hint, under the
//! key's lock (see `ringkv_core::SiblingSet::touch`).

use ringkv_core::wire::WireError;
use ringkv_core::{NodeId, SiblingSet, TouchError};

use super::{Replica, store_error};
use crate::clock;
use crate::storage::HintKey;

/// The parts of a `Touch` request: which writes to extend, by how much, and where.
#[derive(Debug)]
pub struct Touch {
    /// The live writes the read returned.
    pub dots: Vec<ringkv_core::Dot>,
    /// Their new time to live, from now on this node's clock.
    pub ttl_ms: u64,
    /// A fallback touches its hint for this home.
    pub hint: Option<NodeId>,
    /// The read's state, merged in first when this node lacked some of the writes.
    pub state: Option<SiblingSet>,
}

impl Replica {
    /// Applies a touch (see `SiblingSet::touch`) to the key's copy, or to the hint for
    /// `touch.hint`, under the key's lock. Returns the writes it lacks (nothing was applied
    /// then: the caller sends the read's state with the touch); refused as `Expired` if one
    /// of them has expired here.
    pub fn touch(
        &self,
        bucket: &str,
        key: &[u8],
        touch: Touch,
    ) -> Result<Vec<ringkv_core::Dot>, WireError> {
        let policy = match &touch.state {
            Some(state) => self.validated_policy(bucket, state)?,
            None => self.policy(bucket),
        };
        if touch.hint.is_some() {
            self.refuse_hints_if_leaving()?;
            self.check_hint_room()?;
        }
        let target = touch.hint.map(|home| HintKey {
            bucket: bucket.to_string(),
            key: key.to_vec(),
            home,
        });
        let _guard = self.locks.lock(bucket, key);
        let held = match &target {
            Some(hint) => self.store.get_hint(hint),
            None => self.store.get(bucket, key),
        }
        .map_err(store_error)?;
        let new = held.is_none();
        let mut record = held.unwrap_or_default();
        let before = record.state.clone();
        if let Some(state) = &touch.state {
            record.state.merge(state, policy);
        }
        let now = clock::now_ms();
        self.reclaim(&mut record.state, now);
        let expires = now.saturating_add(touch.ttl_ms);
        let mut dots = touch.dots;
        loop {
            match record.state.touch(&dots, expires, now) {
                Ok(_) => break,
                // With the read's state merged in, a write still missing was superseded
                // (under `lww` a newer write replaces it without a version vector saying
                // so): the touch does not concern it.
                Err(TouchError::Missing { dots: missing }) if touch.state.is_some() => {
                    dots.retain(|d| !missing.contains(d));
                }
                Err(TouchError::Missing { dots }) => return Ok(dots),
                Err(TouchError::Expired { .. }) => return Err(WireError::Expired),
            }
        }
        if record.state != before {
            match &target {
                Some(hint) => self.write_hint(hint, &record, new),
                None => self.store.put(bucket, key, &record),
            }
            .map_err(store_error)?;
        }
        Ok(Vec::new())
    }
}
