//! Every record one node holds for a key (its copy and its hints), as a stamp reads them
//! under the key's lock.

use ringkv_core::wire::WireError;
use ringkv_core::{ConflictPolicy, SiblingSet};

use super::store_error;
use crate::storage::{HintKey, Minted, Record, Store};

/// What a node holds for one key, read under the key's lock.
pub(super) struct KeyRecords {
    pub(super) data: Option<Record>,
    pub(super) hints: Vec<(HintKey, Record)>,
}

impl KeyRecords {
    /// Every record's state merged (`None` if the node holds nothing for the key).
    pub(super) fn merged(&self, policy: ConflictPolicy) -> Option<SiblingSet> {
        let mut states = self
            .data
            .iter()
            .map(|r| &r.state)
            .chain(self.hints.iter().map(|(_, r)| &r.state));
        let mut merged = states.next()?.clone();
        for state in states {
            merged.merge(state, policy);
        }
        Some(merged)
    }

    /// The key's marker. A stamp clears every other record's first, so at most one record
    /// holds one (a failed clearing aborts the stamp before it is written).
    pub(super) fn marker(&self) -> Option<Minted> {
        self.data
            .iter()
            .chain(self.hints.iter().map(|(_, r)| r))
            .find_map(|r| r.minted)
    }

    /// Clears the marker of every record but `keep` (`None`: the node's own copy), before a
    /// stamp lands there. Cleared first, so that a failure leaves too few markers (the next
    /// stamp takes a fresh actor), never a stale one.
    pub(super) fn clear_markers_except(
        &self,
        store: &dyn Store,
        bucket: &str,
        key: &[u8],
        keep: Option<&HintKey>,
    ) -> Result<(), WireError> {
        if let Some(data) = &self.data
            && data.minted.is_some()
            && keep.is_some()
        {
            let cleared = Record::new(data.state.clone());
            store.put(bucket, key, &cleared).map_err(store_error)?;
        }
        for (hint, record) in &self.hints {
            if record.minted.is_some() && Some(hint) != keep {
                let cleared = Record::new(record.state.clone());
                store.put_hint(hint, &cleared).map_err(store_error)?;
            }
        }
        Ok(())
    }
}
