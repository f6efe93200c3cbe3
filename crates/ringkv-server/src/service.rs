//! What a node does with one request, independent of sockets.
//!
//! [`Service::handle`] is plain synchronous code over a [`Store`]: it validates the request
//! against the node's limits, takes the per-key lock for read-modify-write requests (`Put`
//! stamps, `Merge` merges), and returns a [`Response`] or a [`WireError`]. The connection layer
//! (`server`) runs it on a blocking thread; tests call it directly on a `MemoryStore`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ringkv_core::hash::key_position;
use ringkv_core::siblings::MAX_SIBLINGS;
use ringkv_core::wire::{
    AntiEntropyStats, Coordinated, NodeStats, Request, Response, RingSnapshot, TransferStats,
    WireError,
};
use ringkv_core::{
    ConflictPolicy, Layout, LayoutError, NodeId, RingEpoch, SiblingSet, VersionVector,
};
use tokio::sync::watch;
use tracing::{debug, error};

use crate::antientropy;
use crate::commit::GroupCommit;
use crate::config::Limits;
use crate::membership::{ClusterView, Keeper};
use crate::proxy::Proxy;
use crate::security::Security;
use crate::storage::{HintKey, Store, StoreError};
use crate::tls::NodeTls;
use ringkv::transport::ConnectOptions;

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
    hints_delivered: AtomicU64,
    /// Anti-entropy counters: exchanges, ranges found differing, keys repaired.
    ae_exchanges: AtomicU64,
    ae_ranges: AtomicU64,
    ae_repaired: AtomicU64,
    /// Bytes of hints held, as the last handoff round measured them plus hints taken since.
    hint_bytes: AtomicU64,
    /// Hints handed to anti-entropy (too old, or the queue too full) since start.
    hints_converted: AtomicU64,
    /// The layout and its operations; `None` in tests that run without membership.
    keeper: Option<Arc<Keeper>>,
    security: Arc<Security>,
    tls: Option<NodeTls>,
    outbound: ConnectOptions,
    /// The weight this node was started with.
    weight: u32,
    /// Progress of this node's transfer, written by the transfer worker.
    transfer: Mutex<Option<TransferStats>>,
    metrics: crate::metrics::Metrics,
    /// Proxy mode's coordinator; `None` in tests that run without a network address.
    proxy: Option<Proxy>,
    /// Every write waits for the log to be synced (`storage.durability = "fsync"`), not only
    /// those that ask (`sync`, the SDK's `dw`).
    durable_writes: bool,
    /// The group committer, started by the first durable write.
    commit: std::sync::OnceLock<GroupCommit>,
}

/// The parts of a `Put` request that say what to write.
#[derive(Debug)]
struct Write {
    context: Option<VersionVector>,
    value: Option<Bytes>,
    overwrite: bool,
    write_id: Option<u64>,
    /// Stamped by a fallback: keep the result as a hint for this home node.
    hint: Option<NodeId>,
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
            hints_delivered: AtomicU64::new(0),
            ae_exchanges: AtomicU64::new(0),
            ae_ranges: AtomicU64::new(0),
            ae_repaired: AtomicU64::new(0),
            hint_bytes: AtomicU64::new(0),
            hints_converted: AtomicU64::new(0),
            keeper: None,
            security: Arc::default(),
            tls: None,
            outbound: ConnectOptions::default(),
            weight: 1,
            transfer: Mutex::new(None),
            metrics: crate::metrics::Metrics::new(),
            proxy: None,
            durable_writes: false,
            commit: std::sync::OnceLock::new(),
        }
    }

    /// With `fsync` durability every write is acknowledged only once on disk.
    pub fn with_durability(mut self, durability: crate::config::Durability) -> Service {
        self.durable_writes = durability == crate::config::Durability::Fsync;
        self
    }

    /// Whether `request` is quick enough to run on an async thread and needs nothing after:
    /// a read (from the memtable or the block cache, or at worst one disk read) or a write
    /// that need not wait for a sync (writes are never throttled: see `storage::rocks`).
    /// Everything else (durable writes, scans, membership) is not.
    pub fn runs_inline(&self, request: &Request) -> bool {
        match request {
            Request::Get { .. } | Request::Ring | Request::Ping => true,
            Request::Put { .. } | Request::Merge { .. } => !self.needs_sync(request),
            _ => false,
        }
    }

    /// Whether `request` is a write to acknowledge only once it is on disk (a `Put` with
    /// `defer_sync` is answered at once, marked pending: its `Merge` will wait).
    pub fn needs_sync(&self, request: &Request) -> bool {
        match request {
            Request::Put {
                defer_sync: true, ..
            } => false,
            Request::Put { sync, .. } | Request::Merge { sync, .. } => self.durable_writes || *sync,
            _ => false,
        }
    }

    /// Handles a write (unsynced, on the calling thread), then waits for the group committer
    /// to sync the log: one sync serves every durable write waiting at that moment. A merge
    /// that changed nothing waits too: the copy it found may not be on disk yet.
    pub async fn handle_durable(
        &self,
        client_epoch: RingEpoch,
        request: Request,
    ) -> Result<Response, WireError> {
        let response = self.handle(client_epoch, request)?;
        let commit = match self.commit.get() {
            Some(commit) => commit,
            None => {
                let store = self.store.clone();
                let started =
                    GroupCommit::start(move || store.sync()).map_err(|e| WireError::Storage {
                        reason: format!("starting the commit thread: {e}"),
                    })?;
                // Two first writers may both start one; the loser's thread ends by itself.
                let _ = self.commit.set(started);
                self.commit.get().ok_or_else(|| WireError::Storage {
                    reason: "no commit thread".into(),
                })?
            }
        };
        commit.durable().await.map_err(store_error)?;
        Ok(response)
    }

    /// Log syncs the group committer made so far (0 before the first durable write).
    pub fn log_syncs(&self) -> u64 {
        self.commit.get().map_or(0, GroupCommit::syncs)
    }

    /// Lets the node coordinate quorums for thin clients, through its own address `seed`
    /// (call after [`Service::with_outbound`]: the coordinator connects as the node does).
    pub fn with_proxy(mut self, seed: String) -> Service {
        self.proxy = Some(Proxy::new(seed, self.outbound.clone()));
        self
    }

    /// TLS for the node's connections, in and out (`None`: plain TCP).
    pub fn with_tls(mut self, tls: Option<NodeTls>) -> Service {
        self.tls = tls;
        self
    }

    pub fn tls(&self) -> Option<&NodeTls> {
        self.tls.as_ref()
    }

    /// The credentials the node accepts and proves (see `security`).
    pub fn with_security(mut self, security: Arc<Security>) -> Service {
        self.security = security;
        self
    }

    pub fn security(&self) -> &Arc<Security> {
        &self.security
    }

    /// How the node connects to the others (its address, credential and TLS).
    pub fn with_outbound(mut self, outbound: ConnectOptions) -> Service {
        self.outbound = outbound;
        self
    }

    /// A connection pool for talking to other nodes (see [`Service::with_outbound`]).
    pub fn outbound_pool(&self) -> ringkv::transport::Pool {
        ringkv::transport::Pool::with_options(self.outbound.clone())
    }

    /// Coordinates a thin client's operation (`Request::Coordinate`, proxy mode).
    pub async fn coordinate(&self, op: Coordinated) -> Result<Response, WireError> {
        match &self.proxy {
            Some(proxy) => proxy.coordinate(op).await,
            None => Err(WireError::InvalidRequest {
                reason: "this node does not coordinate for thin clients".into(),
            }),
        }
    }

    /// Lets the service answer and apply membership operations through `keeper`.
    pub fn with_keeper(mut self, keeper: Arc<Keeper>, weight: u32) -> Service {
        self.keeper = Some(keeper);
        self.weight = weight;
        self
    }

    pub fn keeper(&self) -> Option<&Arc<Keeper>> {
        self.keeper.as_ref()
    }

    /// The transfer worker's last recorded progress.
    pub fn transfer_stats(&self) -> Option<TransferStats> {
        self.transfer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Deletes the key's copy if it still is `expected` (a write that arrived meanwhile keeps
    /// it). Returns whether it is gone.
    pub fn delete_if_unchanged(
        &self,
        bucket: &str,
        key: &[u8],
        expected: &SiblingSet,
    ) -> Result<bool, StoreError> {
        let _guard = self.locks.lock(bucket, key);
        match self.store.get(bucket, key)? {
            Some(current) if &current == expected => {
                self.store.delete(bucket, key)?;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Ok(true),
        }
    }

    /// The node's counters, as `Stats` answers them and `/metrics` exposes them.
    pub fn stats(&self) -> Result<NodeStats, WireError> {
        let (keys, bytes) = self.store.estimate().map_err(store_error)?;
        Ok(NodeStats {
            node: self.node,
            hints_pending: self.store.hint_count().map_err(store_error)?,
            hints_delivered: self.hints_delivered.load(Ordering::Relaxed),
            hint_bytes: self.hint_bytes.load(Ordering::Relaxed),
            hints_converted: self.hints_converted.load(Ordering::Relaxed),
            keys,
            bytes,
            weight: self.weight,
            transfer: self.transfer_stats(),
            anti_entropy: AntiEntropyStats {
                exchanges: self.ae_exchanges.load(Ordering::Relaxed),
                ranges_differing: self.ae_ranges.load(Ordering::Relaxed),
                keys_repaired: self.ae_repaired.load(Ordering::Relaxed),
            },
        })
    }

    /// `Ok` while the node can serve clients: it belongs to a cluster and hands out its ring,
    /// and enough members are alive for the default bucket's quorums. Else why not.
    pub fn readiness(&self) -> Result<(), String> {
        let view = self.view.borrow().clone();
        if !view.ready || view.ring.members().is_empty() {
            return Err(not_ready_reason(&view));
        }
        let props = view.ring.bucket(ringkv_core::DEFAULT_BUCKET);
        let needed = usize::from(props.r.max(props.w)).min(view.ring.members().len());
        let alive = view
            .ring
            .members()
            .iter()
            .filter(|m| view.alive.contains(&m.id))
            .count();
        if alive < needed {
            return Err(format!(
                "{alive} of {} members alive, the default quorum needs {needed}",
                view.ring.members().len()
            ));
        }
        Ok(())
    }

    /// The request-path metrics, updated by the server.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// What the handoff worker measured: the bytes of hints held.
    pub fn set_hint_bytes(&self, bytes: u64) {
        self.hint_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn hint_bytes(&self) -> u64 {
        self.hint_bytes.load(Ordering::Relaxed)
    }

    /// Counts hints handed to anti-entropy, for `Stats`.
    pub fn record_hints_converted(&self, count: u64) {
        self.hints_converted.fetch_add(count, Ordering::Relaxed);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts one finished anti-entropy exchange, for `Stats`.
    pub fn record_anti_entropy(&self, ranges_differing: u64, keys_repaired: u64) {
        self.ae_exchanges.fetch_add(1, Ordering::Relaxed);
        self.ae_ranges
            .fetch_add(ranges_differing, Ordering::Relaxed);
        self.ae_repaired.fetch_add(keys_repaired, Ordering::Relaxed);
    }

    /// Records the transfer worker's progress, for `Stats`.
    pub fn set_transfer(&self, stats: TransferStats) {
        *self.transfer.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
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
                self.check_epoch(client_epoch)?;
                let state = self.read(&bucket, &key)?;
                let siblings = state.as_ref().map_or(0, |s| s.live_count());
                self.metrics.observe_siblings(siblings);
                Ok(Response::Value { state })
            }
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
            } => {
                self.check_key(&bucket, &key)?;
                self.check_value(value.as_ref())?;
                self.check_epoch(client_epoch)?;
                let pending_sync = defer_sync && (self.durable_writes || sync);
                let hint = hint.filter(|home| *home != self.node);
                let write = Write {
                    context,
                    value,
                    overwrite,
                    write_id,
                    hint,
                };
                let state = self.stamp(&bucket, &key, write)?;
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
            } => {
                self.check_key(&bucket, &key)?;
                for sibling in state.siblings() {
                    self.check_value(sibling.value.as_ref())?;
                }
                self.check_epoch(client_epoch)?;
                match hint.filter(|home| *home != self.node) {
                    Some(home) => self.merge_hint(&bucket, &key, home, &state)?,
                    None => self.merge(&bucket, &key, &state)?,
                }
                Ok(Response::Merged)
            }
            Request::Ring => {
                let view = self.view.borrow().clone();
                if !view.ready {
                    return Err(WireError::NotReady {
                        reason: not_ready_reason(&view),
                    });
                }
                Ok(Response::Ring(RingSnapshot {
                    node: self.node,
                    config: view.ring.config().clone(),
                    alive: view.alive.clone(),
                }))
            }
            Request::Ping => Ok(Response::Pong { node: self.node }),
            Request::Stats => Ok(Response::Stats(self.stats()?)),
            Request::Inspect { bucket, key } => {
                self.check_key(&bucket, &key)?;
                let data = self.store.get(&bucket, &key).map_err(store_error)?;
                let hints = self
                    .store
                    .hints_for_key(&bucket, &key)
                    .map_err(store_error)?
                    .into_iter()
                    .map(|(hint, state)| (hint.home, state))
                    .collect();
                Ok(Response::Inspection { data, hints })
            }
            Request::AeTree { peer } => {
                self.check_same_ring(client_epoch)?;
                let ranges = antientropy::tree(self, peer).map_err(store_error)?;
                Ok(Response::AeTree { ranges })
            }
            Request::AeKeys { peer, mut ranges } => {
                self.check_same_ring(client_epoch)?;
                ranges.sort_unstable();
                let keys = antientropy::keys(self, peer, &ranges).map_err(store_error)?;
                Ok(Response::AeKeys { keys })
            }
            Request::Layout => Ok(Response::Layout((*self.admin()?.layout()).clone())),
            Request::Found { members } => self.change_layout(|layout| layout.found(&members)),
            Request::Stage { change, base } => self.change_layout(|layout| {
                layout.expect_version(base)?;
                layout.stage(change)
            }),
            Request::Commit { base } => self.change_layout(|layout| {
                layout.expect_version(base)?;
                layout.commit()
            }),
            Request::Clear { base } => self.change_layout(|layout| {
                layout.expect_version(base)?;
                layout.clear()
            }),
            // Coordination waits on the network: the connection layer runs it on the async
            // path (`Service::coordinate`), never on a blocking thread.
            Request::Coordinate(_) => Err(WireError::InvalidRequest {
                reason: "a coordinated operation cannot run on the storage path".into(),
            }),
        }
    }

    fn admin(&self) -> Result<&Arc<Keeper>, WireError> {
        self.keeper
            .as_ref()
            .ok_or_else(|| WireError::InvalidRequest {
                reason: "this node runs without membership".into(),
            })
    }

    fn change_layout(
        &self,
        change: impl FnOnce(&mut Layout) -> Result<(), LayoutError>,
    ) -> Result<Response, WireError> {
        let layout = self
            .admin()?
            .update(change)
            .map_err(|e| WireError::Layout {
                reason: e.to_string(),
            })?;
        Ok(Response::Layout((*layout).clone()))
    }

    /// The key's state as this node can answer it: its own copy merged with any hints it
    /// holds for other nodes (a fallback that took a write must be able to serve it back).
    fn read(&self, bucket: &str, key: &[u8]) -> Result<Option<SiblingSet>, WireError> {
        let policy = self.view.borrow().ring.conflict_policy(bucket);
        let mut state = self.store.get(bucket, key).map_err(store_error)?;
        for (_, hinted) in self.store.hints_for_key(bucket, key).map_err(store_error)? {
            state
                .get_or_insert_with(SiblingSet::new)
                .merge(&hinted, policy);
        }
        Ok(state)
    }

    /// Stamps a write under the key's lock. See `SiblingSet::stamp` for the semantics.
    ///
    /// The write is stamped on top of everything this node holds for the key, its own copy and
    /// every hint: a dot `(this node, n)` must be new among all of them, or two writes kept in
    /// different places here could meet later under one dot and one would vanish.
    fn stamp(&self, bucket: &str, key: &[u8], write: Write) -> Result<SiblingSet, WireError> {
        let policy = self.view.borrow().ring.conflict_policy(bucket);
        let _guard = self.locks.lock(bucket, key);
        let mut state = self.read(bucket, key)?.unwrap_or_default();
        let live = state.live_count();
        let blind = write.context.is_none() && !write.overwrite;
        if blind && live > 1 && policy == ConflictPolicy::Siblings {
            return Err(WireError::ContextRequired {
                siblings: live as u32,
            });
        }
        let mut context = write.context.unwrap_or_default();
        // Under lww every write replaces what the node holds: there are no siblings to keep.
        if write.overwrite || policy == ConflictPolicy::Lww {
            context.merge(state.version_vector());
        }
        state.stamp(self.node, &context, write.value, now_ms(), write.write_id);
        if state.siblings().len() > MAX_SIBLINGS {
            return Err(WireError::TooManySiblings {
                count: state.siblings().len() as u32,
                max: MAX_SIBLINGS as u32,
            });
        }
        match write.hint {
            Some(home) => {
                let hint = HintKey {
                    bucket: bucket.to_string(),
                    key: key.to_vec(),
                    home,
                };
                self.store.put_hint(&hint, &state).map_err(store_error)?;
            }
            None => self.store.put(bucket, key, &state).map_err(store_error)?,
        }
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
        let policy = self.validated_policy(bucket, incoming)?;
        let (_guard, mut state) = self.load_locked(bucket, key)?;
        if state.merge(incoming, policy) {
            self.store.put(bucket, key, &state).map_err(store_error)?;
        }
        Ok(())
    }

    /// Keeps a state for `home` (which a client could not reach) until it can be handed off.
    fn merge_hint(
        &self,
        bucket: &str,
        key: &[u8],
        home: NodeId,
        incoming: &SiblingSet,
    ) -> Result<(), WireError> {
        let policy = self.validated_policy(bucket, incoming)?;
        let held = self.hint_bytes.load(Ordering::Relaxed);
        if held > self.limits.max_hint_queue_bytes {
            // Refusing is safe: the writer counts this copy as failed and uses another node.
            return Err(WireError::Overloaded {
                reason: format!(
                    "the hint queue holds {held} bytes, over its cap of {}",
                    self.limits.max_hint_queue_bytes
                ),
            });
        }
        let hint = HintKey {
            bucket: bucket.to_string(),
            key: key.to_vec(),
            home,
        };
        let _guard = self.locks.lock(bucket, key);
        let mut state = self
            .store
            .get_hint(&hint)
            .map_err(store_error)?
            .unwrap_or_default();
        if state.merge(incoming, policy) {
            self.store.put_hint(&hint, &state).map_err(store_error)?;
            let added = crate::storage::encode_state(incoming).len() + key.len();
            self.hint_bytes.fetch_add(added as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Deletes a hint after its home node acknowledged `delivered`, unless it changed since
    /// (a newer write arrived for the same home while the handoff was in flight: that one
    /// must be handed off too). Returns whether the hint is gone.
    pub fn hint_delivered(
        &self,
        hint: &HintKey,
        delivered: &SiblingSet,
    ) -> Result<bool, StoreError> {
        let _guard = self.locks.lock(&hint.bucket, &hint.key);
        match self.store.get_hint(hint)? {
            Some(current) if &current == delivered => {
                self.store.delete_hint(hint)?;
                self.hints_delivered.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Ok(true),
        }
    }

    /// The current view of the cluster.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    fn validated_policy(
        &self,
        bucket: &str,
        incoming: &SiblingSet,
    ) -> Result<ConflictPolicy, WireError> {
        let policy = self.view.borrow().ring.conflict_policy(bucket);
        incoming
            .validate(policy)
            .map_err(|e| WireError::InvalidRequest {
                reason: format!("corrupt state: {e}"),
            })?;
        Ok(policy)
    }

    /// Takes the key's lock and reads its state (empty if none).
    fn load_locked(
        &self,
        bucket: &str,
        key: &[u8],
    ) -> Result<(MutexGuard<'_, ()>, SiblingSet), WireError> {
        let guard = self.locks.lock(bucket, key);
        let state = self
            .store
            .get(bucket, key)
            .map_err(store_error)?
            .unwrap_or_default();
        Ok((guard, state))
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

    /// A client that routed by an older ring than this node's may have picked the wrong
    /// replicas, or may be reading the previous owners after a transfer switched: refuse, so
    /// that it refetches the ring and retries. A client with a newer ring than ours is served
    /// (we will catch up; what it asks of us is what the newer ring wants).
    fn check_epoch(&self, client: RingEpoch) -> Result<(), WireError> {
        let view = self.view.borrow();
        if view.ring.members().is_empty() {
            return Err(WireError::NotReady {
                reason: not_ready_reason(&view),
            });
        }
        let ours = view.ring.epoch();
        if client < ours {
            Err(WireError::StaleRing { epoch: ours })
        } else {
            Ok(())
        }
    }
}

impl Service {
    /// Anti-entropy compares ranges of one ring: both sides must hold the same one.
    fn check_same_ring(&self, client: RingEpoch) -> Result<(), WireError> {
        let ours = self.view.borrow().ring.epoch();
        if client == ours {
            Ok(())
        } else {
            Err(WireError::StaleRing { epoch: ours })
        }
    }
}

fn not_ready_reason(view: &ClusterView) -> String {
    if view.layout.is_founded() {
        "starting: no other member heard from yet".into()
    } else {
        "not part of a cluster yet: run `ringkv cluster init` or `ringkv cluster join`".into()
    }
}

fn store_error(e: StoreError) -> WireError {
    match e {
        StoreError::Full => WireError::StorageFull,
        // Back-pressure: the client retries after a back-off or uses another replica.
        StoreError::Stalled => WireError::Overloaded {
            reason: e.to_string(),
        },
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

    fn lock(&self, bucket: &str, key: &[u8]) -> MutexGuard<'_, ()> {
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
