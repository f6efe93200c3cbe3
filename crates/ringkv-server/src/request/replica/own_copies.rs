//! Copies this node's own workers take (an anti-entropy pull, a hint for a key this node also
//! holds): judged and written as a peer's hintless `Merge` is, so that no worker can leave a
//! copy behind a transfer's clean-up.

use ringkv_core::wire::WireError;
use ringkv_core::{RingEpoch, SiblingSet};

use super::Replica;
use crate::request::service::is_replica;

impl Replica {
    /// Merges `state` into this node's copy of `bucket`/`key`, decided on under the ring
    /// `epoch`: under the ring check a clean-up waits for ([`Replica::ring_checked`]), only
    /// while the node's ring is still `epoch` (`StaleRing` otherwise: the worker's view is
    /// old), and only where this node is a replica of the key (`NotOwner`). Taken behind a
    /// clean-up's walk on a node no longer home, such a copy would stay, a stray that a later
    /// layout change could hand back after the key was deleted and purged.
    pub fn merge_own_copy(
        &self,
        epoch: RingEpoch,
        bucket: &str,
        key: &[u8],
        state: &SiblingSet,
    ) -> Result<(), WireError> {
        let _checked = self.ring_checked();
        let view = self.view.borrow().clone();
        let ours = view.ring.epoch();
        if ours != epoch {
            return Err(WireError::StaleRing { epoch: ours });
        }
        if !is_replica(&view.ring, self.store.node_id(), bucket, key) {
            return Err(WireError::NotOwner { epoch: ours });
        }
        self.merge(bucket, key, state)
    }
}
