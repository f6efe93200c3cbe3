//! What a request is checked against before anything is done with it: sizes, the writer's
//! clock, and (for `remove` and `replace`) whether the member is really down.

use bytes::Bytes;
use ringkv_core::wire::WireError;
use ringkv_core::{ConflictPolicy, LayoutError, NodeId, SiblingSet};

use super::{MAX_BUCKET_BYTES, Service};
use crate::ops::config::Limits;

impl Service {
    /// `remove` and `replace` are for a member that is down for good: refused while this
    /// node's failure detector sees it alive.
    pub(super) fn check_down(&self, id: NodeId, operation: &str) -> Result<(), WireError> {
        if self.view.borrow().alive.contains(&id) {
            return Err(WireError::layout(LayoutError::Alive {
                node: id,
                operation: operation.to_string(),
            }));
        }
        Ok(())
    }

    /// Refuses a client's `lww` write timestamped further ahead of this node's clock than
    /// `limits.max_clock_ahead_ms` (see `WireError::ClockAhead`).
    pub(super) fn check_clock(&self, bucket: &str, state: &SiblingSet) -> Result<(), WireError> {
        if self.view.borrow().ring.conflict_policy(bucket) != ConflictPolicy::Lww {
            return Ok(());
        }
        let now = crate::clock::now_ms();
        let max_ms = self.limits.max_clock_ahead_ms;
        match state.siblings().iter().map(|s| s.timestamp_ms).max() {
            Some(latest) if latest > now.saturating_add(max_ms) => Err(WireError::ClockAhead {
                ahead_ms: latest - now,
                max_ms,
            }),
            _ => Ok(()),
        }
    }

    pub(super) fn check_key(&self, bucket: &str, key: &[u8]) -> Result<(), WireError> {
        check_key(&self.limits, bucket, key)
    }

    pub(super) fn check_value(&self, value: Option<&Bytes>) -> Result<(), WireError> {
        check_value(&self.limits, value)
    }
}

/// Refuses a bucket name out of bounds or a key longer than `limits` allow.
pub fn check_key(limits: &Limits, bucket: &str, key: &[u8]) -> Result<(), WireError> {
    if bucket.is_empty() || bucket.len() > MAX_BUCKET_BYTES {
        return Err(WireError::InvalidRequest {
            reason: format!("bucket names are 1 to {MAX_BUCKET_BYTES} bytes"),
        });
    }
    if key.len() > limits.max_key_bytes {
        return Err(WireError::KeyTooLarge {
            len: key.len() as u64,
            max: limits.max_key_bytes as u64,
        });
    }
    Ok(())
}

/// Refuses a value longer than `limits` allow.
pub fn check_value(limits: &Limits, value: Option<&Bytes>) -> Result<(), WireError> {
    match value {
        Some(v) if v.len() > limits.max_value_bytes => Err(WireError::ValueTooLarge {
            len: v.len() as u64,
            max: limits.max_value_bytes as u64,
        }),
        _ => Ok(()),
    }
}
