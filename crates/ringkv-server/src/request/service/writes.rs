//! Writes: a client's `Put`, a peer's or a client's `Merge`, and `Touch`.

use ringkv_core::RingEpoch;
use ringkv_core::wire::{Request, Response, WireError};

use super::Service;
use crate::request::replica::{Touch, Write};

impl Service {
    /// Handles a `Put`, `Merge` or `Touch` (see [`Service::handle`]).
    pub(super) fn write(
        &self,
        client_epoch: RingEpoch,
        request: Request,
    ) -> Result<Response, WireError> {
        match request {
            Request::Put {
                bucket,
                key,
                context,
                value,
                overwrite,
                write_id,
                hint,
                sync,
                defer_sync,
                ttl_ms,
            } => {
                self.check_key(&bucket, &key)?;
                self.check_value(value.as_ref())?;
                // A value without a time to live of its own gets its bucket's, if it has one.
                let ttl_ms = ttl_ms.or_else(|| self.bucket_ttl(&bucket));
                match ttl_ms {
                    Some(0) => {
                        return Err(WireError::InvalidRequest {
                            reason: "a time to live must be at least 1 ms".into(),
                        });
                    }
                    Some(_) if value.is_some() => self.check_expiry_readers()?,
                    _ => {}
                }
                // From the ring checks until the copy is written (see `Replica::ring_checked`).
                let _ring = self.replica.ring_checked();
                self.check_epoch(client_epoch)?;
                let pending_sync = defer_sync && (self.durable_writes || sync);
                let hint = hint.filter(|home| *home != self.node);
                if hint.is_none() {
                    self.check_owner(client_epoch, &bucket, &key)?;
                }
                let write = Write {
                    context,
                    value,
                    overwrite,
                    write_id,
                    hint,
                    ttl_ms,
                };
                let state = self.replica.stamp(&bucket, &key, write)?;
                Ok(Response::Stamped {
                    state,
                    pending_sync,
                })
            }
            Request::Merge {
                bucket,
                key,
                state,
                hint,
                sync: _,
                entry,
                ttl_ms,
            } => {
                self.check_key(&bucket, &key)?;
                for sibling in state.siblings() {
                    self.check_value(sibling.value.as_ref())?;
                }
                let mut state = state;
                if entry {
                    self.check_clock(&bucket, &state)?;
                }
                // A new `lww` write without a time to live of its own gets its bucket's.
                let ttl_ms = ttl_ms.or_else(|| entry.then(|| self.bucket_ttl(&bucket)).flatten());
                match ttl_ms {
                    None => {}
                    Some(0) => {
                        return Err(WireError::InvalidRequest {
                            reason: "a time to live must be at least 1 ms".into(),
                        });
                    }
                    Some(_) if !entry => {
                        return Err(WireError::InvalidRequest {
                            reason: "a time to live comes with a new write (`entry`), never \
                                 with a copy"
                                .into(),
                        });
                    }
                    Some(ttl) => {
                        self.check_expiry_readers()?;
                        state.expire_new(crate::clock::now_ms().saturating_add(ttl));
                    }
                }
                let _ring = self.replica.ring_checked();
                self.check_epoch(client_epoch)?;
                match hint.filter(|home| *home != self.node) {
                    Some(home) => self.replica.merge_hint(&bucket, &key, home, &state)?,
                    None => {
                        self.check_owner(client_epoch, &bucket, &key)?;
                        self.replica.merge(&bucket, &key, &state)?;
                    }
                }
                Ok(Response::Merged)
            }
            Request::Touch {
                bucket,
                key,
                dots,
                ttl_ms,
                hint,
                state,
            } => {
                self.check_key(&bucket, &key)?;
                if ttl_ms == 0 {
                    return Err(WireError::InvalidRequest {
                        reason: "a time to live must be at least 1 ms".into(),
                    });
                }
                // A read returns at most this many live writes (see `MAX_SIBLINGS`).
                if dots.len() > ringkv_core::siblings::MAX_SIBLINGS {
                    return Err(WireError::InvalidRequest {
                        reason: format!(
                            "a touch names at most {} writes, not {}",
                            ringkv_core::siblings::MAX_SIBLINGS,
                            dots.len()
                        ),
                    });
                }
                if let Some(state) = &state {
                    for sibling in state.siblings() {
                        self.check_value(sibling.value.as_ref())?;
                    }
                }
                let _ring = self.replica.ring_checked();
                self.check_epoch(client_epoch)?;
                let hint = hint.filter(|home| *home != self.node);
                if hint.is_none() {
                    self.check_owner(client_epoch, &bucket, &key)?;
                }
                let touch = Touch {
                    dots,
                    ttl_ms,
                    hint,
                    state,
                };
                let missing = self.replica.touch(&bucket, &key, touch)?;
                Ok(Response::Touched { missing })
            }
            other => Err(WireError::InvalidRequest {
                reason: format!("{} is not a write", other.kind()),
            }),
        }
    }

    /// The default time to live of `bucket`'s values, if it has one.
    fn bucket_ttl(&self, bucket: &str) -> Option<u64> {
        self.view.borrow().ring.bucket(bucket).ttl_ms
    }
}
