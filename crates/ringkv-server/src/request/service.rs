//! Dispatch and validation: what a node answers to each request.
//!
//! [`Service::handle`] is plain synchronous code: it validates the request against the node's
//! limits and ring (key and value sizes, bucket names, the client's ring epoch), hands reads
//! and writes to the [`Replica`], answers membership operations through the layout
//! [`Keeper`], and returns a [`Response`] or a [`WireError`]. Where it runs (on the
//! connection's task, or a blocking thread, or followed by a wait for the group commit) is
//! `lane`'s decision; tests call it directly on a `MemoryStore`.

use std::sync::{Arc, OnceLock};

use ringkv_core::wire::{Coordinated, NodeStats, Request, Response, RingSnapshot, WireError};
use ringkv_core::{Layout, LayoutError, NodeId, Phase, RingEpoch, Step};
use tokio::sync::watch;

use crate::cluster::{ClusterView, Keeper};
use crate::node::NodeParts;
use crate::ops::config::{Durability, Limits};
use crate::ops::counters::NodeCounters;
use crate::ops::metrics::Metrics;
use crate::request::lane::{Lane, lane};
use crate::request::proxy::Proxy;
use crate::request::replica::{Replica, store_error};
use crate::storage::Store;
use crate::workers::commit::GroupCommit;

/// Longest bucket name accepted.
pub const MAX_BUCKET_BYTES: usize = 255;

/// Answers requests for one node. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Service {
    node: NodeId,
    /// This process's instance number (`NodeStats::instance`).
    instance: u64,
    store: Arc<dyn Store>,
    view: watch::Receiver<Arc<ClusterView>>,
    limits: Limits,
    replica: Arc<Replica>,
    counters: Arc<NodeCounters>,
    /// Records the siblings each read returns.
    metrics: Arc<Metrics>,
    /// The layout and its operations; `None` in tests that run without membership.
    keeper: Option<Arc<Keeper>>,
    /// The weight this node was started with.
    weight: u32,
    /// The zone this node was started with.
    zone: String,
    /// Proxy mode's coordinator; `None` in tests that run without a network address.
    proxy: Option<Proxy>,
    /// Every write waits for the log to be synced (`storage.durability = "fsync"`), not only
    /// those that ask (`sync`, the SDK's `dw`).
    durable_writes: bool,
    /// The group committer, started by the first durable write.
    commit: OnceLock<GroupCommit>,
}

impl Service {
    /// A service of its own over `store` (tests, fuzzing): the parts of
    /// [`NodeParts::new`].
    pub fn new(
        store: Arc<dyn Store>,
        view: watch::Receiver<Arc<ClusterView>>,
        limits: Limits,
    ) -> Service {
        Service::from_parts(&NodeParts::new(store, view, limits))
    }

    /// The service of the node `parts` make up.
    pub fn from_parts(parts: &NodeParts) -> Service {
        Service {
            node: parts.id,
            instance: parts.instance,
            store: parts.store.clone(),
            view: parts.view.clone(),
            limits: parts.limits.clone(),
            replica: parts.replica.clone(),
            counters: parts.counters.clone(),
            metrics: parts.metrics.clone(),
            keeper: parts.keeper.clone(),
            weight: parts.weight,
            zone: parts.zone.clone(),
            proxy: parts
                .proxy_seed
                .clone()
                .map(|seed| Proxy::new(seed, parts.outbound.clone())),
            durable_writes: parts.durability == Durability::Fsync,
            commit: OnceLock::new(),
        }
    }

    /// Where `request` runs (see `lane`).
    pub fn lane(&self, request: &Request) -> Lane {
        lane(request, self.durable_writes)
    }

    /// The node's group committer, started by the first durable write.
    pub fn group_commit(&self) -> Result<&GroupCommit, WireError> {
        if let Some(commit) = self.commit.get() {
            return Ok(commit);
        }
        let store = self.store.clone();
        let started = GroupCommit::start(move || store.sync()).map_err(|e| WireError::Storage {
            reason: format!("starting the commit thread: {e}"),
        })?;
        // Two first writers may both start one; the loser's thread ends by itself.
        let _ = self.commit.set(started);
        self.commit.get().ok_or_else(|| WireError::Storage {
            reason: "no commit thread".into(),
        })
    }

    /// Log syncs the group committer made so far (0 before the first durable write).
    pub fn log_syncs(&self) -> u64 {
        self.commit.get().map_or(0, GroupCommit::syncs)
    }

    /// Durable writes that waited for the group committer so far.
    pub fn durable_writes(&self) -> u64 {
        self.commit.get().map_or(0, GroupCommit::writes)
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

    /// The node's counters, as `Stats` answers them and `/metrics` exposes them.
    pub fn stats(&self) -> Result<NodeStats, WireError> {
        let (keys, bytes) = self.store.estimate().map_err(store_error)?;
        let counters = self.counters.snapshot();
        let (expired_values_reclaimed, expired_bytes_reclaimed) = self.store.reclaimed().get();
        Ok(NodeStats {
            node: self.node,
            instance: self.instance,
            hints_pending: self.store.hint_count().map_err(store_error)?,
            hints_delivered: counters.hints_delivered,
            hint_bytes: counters.hint_bytes,
            hints_converted: counters.hints_converted,
            expired_values_reclaimed,
            expired_bytes_reclaimed,
            purged_keys: counters.purged_keys,
            pruned_keys: counters.pruned_keys,
            keys,
            bytes,
            weight: self.weight,
            zone: self.zone.clone(),
            transfer: counters.transfer,
            anti_entropy: counters.anti_entropy,
        })
    }

    /// `Ok` while the node can serve clients: it is a member of a cluster (or leaving one,
    /// while it still holds data) and hands out its ring, and enough members are alive for
    /// the default bucket's quorums. Else why not.
    ///
    /// A node that is no member is not ready even though it could hand out the ring: an
    /// orchestrator counts ready nodes as available (a disruption budget, a rolling update),
    /// and a machine back with a wiped disk, waiting to replace the member it was, holds
    /// none of that member's data.
    pub fn readiness(&self) -> Result<(), String> {
        let view = self.view.borrow().clone();
        if !view.ready || view.ring.members().is_empty() {
            return Err(not_ready_reason(&view));
        }
        if !view.ring.all_members().iter().any(|m| m.id == self.node) {
            return Err(format!(
                "node {} is not a member of the cluster: `ringkv cluster join` adds it (or \
                 `ringkv cluster replace` puts it in the place of a member that lost its disk)",
                self.node
            ));
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

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The epoch of the ring this node currently routes by.
    pub fn epoch(&self) -> RingEpoch {
        self.view.borrow().ring.epoch()
    }

    /// The current view of the cluster.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// The node's store (the admin endpoint reads the engine's statistics from it).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The node's replica (tests check what it kept).
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Handles one request sent by a client that routed by `client_epoch`. Blocking: it may
    /// touch the disk.
    pub fn handle(&self, client_epoch: RingEpoch, request: Request) -> Result<Response, WireError> {
        match request {
            Request::Get { bucket, key } => {
                self.check_key(&bucket, &key)?;
                self.check_epoch(client_epoch)?;
                let state = self.replica.read(&bucket, &key)?;
                let siblings = state.as_ref().map_or(0, |s| s.live_count());
                self.metrics.observe_siblings(siblings);
                Ok(Response::Value { state })
            }
            request @ (Request::Put { .. } | Request::Merge { .. } | Request::Touch { .. }) => {
                self.write(client_epoch, request)
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
                let data = self
                    .store
                    .get(&bucket, &key)
                    .map_err(store_error)?
                    .map(|r| r.state);
                let hints = self
                    .store
                    .hints_for_key(&bucket, &key)
                    .map_err(store_error)?
                    .into_iter()
                    .map(|(hint, record)| (hint.home, record.state))
                    .collect();
                Ok(Response::Inspection { data, hints })
            }
            request @ (Request::AeSpans { .. }
            | Request::AeSpanKeys { .. }
            | Request::AeTree { .. }
            | Request::AeKeys { .. }
            | Request::PurgeCheck { .. }
            | Request::Purge { .. }) => self.peer(client_epoch, request),
            Request::Layout => Ok(Response::Layout((*self.admin()?.layout()).clone())),
            Request::Found { members } => {
                // The founding node's configured buckets become the cluster's table.
                let buckets = self.view.borrow().ring.config().buckets.clone();
                self.change_layout(|layout| {
                    layout.found(&members)?;
                    layout.buckets = Some(buckets);
                    Ok(())
                })
            }
            Request::HoldsBucket { bucket } => Ok(Response::HoldsBucket {
                holds: self.holds_keys_of(&bucket),
            }),
            Request::Bucket {
                name,
                props,
                create,
                base,
            } => {
                let gossiped = self.view.borrow().ring.config().buckets.clone();
                self.change_layout(|layout| {
                    layout.expect_version(base)?;
                    let table = layout.buckets.as_ref().unwrap_or(&gossiped);
                    let default = table.props(&name).conflict;
                    if create && props.conflict != default && self.holds_keys_of(&name) {
                        return Err(LayoutError::BucketInUse {
                            bucket: name.clone(),
                            conflict: default,
                        });
                    }
                    layout.set_bucket(&name, props, create, &gossiped)
                })
            }
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
            Request::Remove { id, base } => {
                self.check_down(id, "remove")?;
                self.change_layout(|layout| {
                    layout.expect_version(base)?;
                    layout.remove(id)
                })
            }
            Request::Replace { old, new, base } => {
                self.check_down(old, "replace")?;
                self.change_layout(|layout| {
                    layout.expect_version(base)?;
                    layout.replace(old, new)
                })
            }
            Request::Abort { base } => {
                let keeper = self.admin()?;
                self.change_layout(|layout| {
                    // Read under the layout's lock: a report made after it would be of the
                    // layout this abort is judged by.
                    let report = keeper.report();
                    layout.expect_version(base)?;
                    // Only the missing switch report of a node the transfer waits for keeps
                    // the aborted transfer from settling elsewhere (see `Layout::abort`): not
                    // a node outside it, nor one removed from it, nor one that reported the
                    // switch already. That last one holds a streaming layout only if a rival
                    // of the switching one (a stage or a member's address move at the same
                    // version) took it back a phase; its report still counts elsewhere.
                    let Some(t) = &layout.transition else {
                        return Err(LayoutError::NoTransfer);
                    };
                    if t.is_removed(self.node) || !layout.involved().contains(&self.node) {
                        return Err(LayoutError::NotInvolved(self.node));
                    }
                    if t.phase == Phase::Streaming && report == Some((t.id, Step::Switched)) {
                        return Err(LayoutError::AlreadySwitched(self.node));
                    }
                    layout.abort()
                })
            }
            // Coordination waits on the network: `lane` runs it on the async path
            // (`Service::coordinate`), never here.
            Request::Coordinate(_) => Err(WireError::InvalidRequest {
                reason: "a coordinated operation cannot run on the storage path".into(),
            }),
            Request::Batch { requests } => self.batch(client_epoch, requests),
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
        // Who may hold a layout with zones or a time to live is checked against what they
        // gossip.
        let protocols = self.view.borrow().protocols.clone();
        let layout = self
            .admin()?
            .update(|layout| {
                let before = layout.clone();
                change(layout)?;
                layout.check_readers(&before, |id| protocols.get(&id).copied())
            })
            .map_err(WireError::layout)?;
        Ok(Response::Layout((*layout).clone()))
    }
}

pub(super) fn not_ready_reason(view: &ClusterView) -> String {
    if view.layout.is_founded() {
        "starting: no other member heard from yet".into()
    } else {
        "not part of a cluster yet: run `ringkv cluster init` or `ringkv cluster join`".into()
    }
}

mod batch;
mod buckets;
mod checks;
mod peers;
mod protocol;
mod routing;
#[cfg(test)]
mod tests;
mod writes;

pub use checks::{check_key, check_value};
pub use routing::{CATCH_UP, is_replica};
