//! What a node holds of a bucket, asked before a bucket is created with another conflict
//! policy than the default's (its keys would be merged under the wrong one).

use super::Service;
use crate::storage::DataKey;

impl Service {
    /// Whether this node stores any key of `bucket`, as a copy or a hint (a seek, and a scan
    /// of the hint queue; a store error counts as yes, so that doubt refuses the change that
    /// depends on it).
    pub(super) fn holds_keys_of(&self, bucket: &str) -> bool {
        let start = DataKey {
            bucket: bucket.to_string(),
            key: Vec::new(),
        };
        let copies = match self.store.scan(Some(&start), 1) {
            Ok(found) => found.first().is_some_and(|(k, _, _)| k.bucket == bucket),
            Err(_) => true,
        };
        copies || self.holds_hints_of(bucket)
    }

    /// Whether the hint queue holds a hint for a key of `bucket` (bounded: the queue is
    /// capped in bytes, and this runs only for a bucket being created).
    fn holds_hints_of(&self, bucket: &str) -> bool {
        let mut after = None;
        loop {
            let Ok(batch) = self.store.scan_hints(after.as_ref(), 1024) else {
                return true;
            };
            if batch.iter().any(|(hint, _)| hint.bucket == bucket) {
                return true;
            }
            match batch.last() {
                Some((hint, _)) if batch.len() == 1024 => after = Some(hint.clone()),
                _ => return false,
            }
        }
    }
}
