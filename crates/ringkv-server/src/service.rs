//! What a node does with one request, independent of sockets.
//!
//! [`Service::handle`] is plain synchronous code over a [`Store`]: it validates the request
//! against the node's limits, takes the per-key lock for read-modify-write requests (`Put`
//! stamps, `Merge` merges), and returns a [`Response`] or a [`WireError`]. The connection layer
//! (`server`) runs it on a blocking thread; tests call it directly on a `MemoryStore`.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ringkv_core::hash::key_position;
use ringkv_core::siblings::MAX_SIBLINGS;
use ringkv_core::wire::{Request, Response, RingSnapshot, WireError};
use ringkv_core::{ConflictPolicy, NodeId, RingEpoch, SiblingSet, VersionVector};
use tokio::sync::watch;
use tracing::{debug, error};

use crate::config::Limits;
use crate::membership::ClusterView;
use crate::storage::{Store, StoreError};

/// Longest bucket name accepted.
pub const MAX_BUCKET_BYTES: usize = 255;

/// Handles requests for one node. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Service {
    store: Arc<dyn Store>,
    node: NodeId,
    view: watch::Receiver<Arc<ClusterView>>,
    limits: Limits,
    locks: KeyLocks,
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        view: watch::Receiver<Arc<ClusterView>>,
        limits: Limits,
    ) -> Service {
        let node = store.node_id();
        Service {
            store,
            node,
            view,
            limits,
            locks: KeyLocks::new(),
        }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The epoch of the ring this node currently routes by.
    pub fn epoch(&self) -> RingEpoch {
        self.view.borrow().ring.epoch()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Handles one request sent by a client that routed by `client_epoch`. Blocking: it may
    /// touch the disk.
    pub fn handle(&self, client_epoch: RingEpoch, request: Request) -> Result<Response, WireError> {
        match request {
            Request::Get { bucket, key } => {
                self.check_key(&bucket, &key)?;
                self.check_responsible(client_epoch, &bucket, &key)?;
                let state = self.store.get(&bucket, &key).map_err(store_error)?;
                Ok(Response::Value { state })
            }
            Request::Put {
                bucket,
                key,
                context,
                value,
                overwrite,
            } => {
                self.check_key(&bucket, &key)?;
                self.check_value(value.as_ref())?;
                self.check_responsible(client_epoch, &bucket, &key)?;
                let state = self.stamp(&bucket, &key, context, value, overwrite)?;
                Ok(Response::Stamped { state })
            }
            Request::Merge { bucket, key, state } => {
                self.check_key(&bucket, &key)?;
                for sibling in state.siblings() {
                    self.check_value(sibling.value.as_ref())?;
                }
                self.check_responsible(client_epoch, &bucket, &key)?;
                self.merge(&bucket, &key, &state)?;
                Ok(Response::Merged)
            }
            Request::Ring => {
                let view = self.view.borrow().clone();
                if !view.ready {
                    return Err(WireError::NotReady {
                        reason: "joining: no other member heard from yet".into(),
                    });
                }
                Ok(Response::Ring(RingSnapshot {
                    node: self.node,
                    config: view.ring.config().clone(),
                    alive: view.alive.clone(),
                }))
            }
            Request::Ping => Ok(Response::Pong { node: self.node }),
        }
    }

    /// Stamps a write under the key's lock. See `SiblingSet::stamp` for the semantics.
    fn stamp(
        &self,
        bucket: &str,
        key: &[u8],
        context: Option<VersionVector>,
        value: Option<Bytes>,
        overwrite: bool,
    ) -> Result<SiblingSet, WireError> {
        let policy = self.view.borrow().ring.conflict_policy(bucket);
        let _guard = self.locks.lock(bucket, key);
        let mut state = self
            .store
            .get(bucket, key)
            .map_err(store_error)?
            .unwrap_or_default();
        let live = state.live_count();
        if context.is_none() && !overwrite && live > 1 && policy == ConflictPolicy::Siblings {
            return Err(WireError::ContextRequired {
                siblings: live as u32,
            });
        }
        let mut context = context.unwrap_or_default();
        // Under lww every write replaces what the node holds: there are no siblings to keep.
        if overwrite || policy == ConflictPolicy::Lww {
            context.merge(state.version_vector());
        }
        state.stamp(self.node, &context, value, now_ms());
        if state.siblings().len() > MAX_SIBLINGS {
            return Err(WireError::TooManySiblings {
                count: state.siblings().len() as u32,
                max: MAX_SIBLINGS as u32,
            });
        }
        self.store.put(bucket, key, &state).map_err(store_error)?;
        debug!(
            bucket,
            key_len = key.len(),
            siblings = state.siblings().len(),
            "stamped"
        );
        Ok(state)
    }

    /// Merges a state from a peer under the key's lock, writing only if something changed.
    fn merge(&self, bucket: &str, key: &[u8], incoming: &SiblingSet) -> Result<(), WireError> {
        let policy = self.view.borrow().ring.conflict_policy(bucket);
        incoming
            .validate(policy)
            .map_err(|e| WireError::InvalidRequest {
                reason: format!("corrupt state: {e}"),
            })?;
        let _guard = self.locks.lock(bucket, key);
        let mut state = self
            .store
            .get(bucket, key)
            .map_err(store_error)?
            .unwrap_or_default();
        if state.merge(incoming, policy) {
            self.store.put(bucket, key, &state).map_err(store_error)?;
        }
        Ok(())
    }

    fn check_key(&self, bucket: &str, key: &[u8]) -> Result<(), WireError> {
        if bucket.is_empty() || bucket.len() > MAX_BUCKET_BYTES {
            return Err(WireError::InvalidRequest {
                reason: format!("bucket names are 1 to {MAX_BUCKET_BYTES} bytes"),
            });
        }
        if key.len() > self.limits.max_key_bytes {
            return Err(WireError::KeyTooLarge {
                len: key.len() as u64,
                max: self.limits.max_key_bytes as u64,
            });
        }
        Ok(())
    }

    fn check_value(&self, value: Option<&Bytes>) -> Result<(), WireError> {
        match value {
            Some(v) if v.len() > self.limits.max_value_bytes => Err(WireError::ValueTooLarge {
                len: v.len() as u64,
                max: self.limits.max_value_bytes as u64,
            }),
            _ => Ok(()),
        }
    }

    /// A client that routed by another ring may have picked this node wrongly. If, under this
    /// node's ring, the key is not ours, say so instead of answering from a copy we may not
    /// hold. (Same epoch: the client computed exactly what we would.)
    fn check_responsible(
        &self,
        client: RingEpoch,
        bucket: &str,
        key: &[u8],
    ) -> Result<(), WireError> {
        let view = self.view.borrow();
        let ring = &view.ring;
        if client == ring.epoch() || ring.members().is_empty() {
            return Ok(());
        }
        if ring.is_home_replica(self.node, bucket, key) {
            Ok(())
        } else {
            Err(WireError::StaleRing {
                epoch: ring.epoch(),
            })
        }
    }
}

fn store_error(e: StoreError) -> WireError {
    match e {
        StoreError::Full => WireError::StorageFull,
        other => {
            error!(error = %other, "storage error");
            WireError::Storage {
                reason: other.to_string(),
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

    fn lock(&self, bucket: &str, key: &[u8]) -> std::sync::MutexGuard<'_, ()> {
        let stripe = key_position(bucket.as_bytes(), key) as usize % LOCK_STRIPES;
        // A poisoned stripe only means another request panicked while holding it; the data
        // it guards lives in the store, which is still consistent.
        self.stripes[stripe]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests;
