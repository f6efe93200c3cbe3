//! Data streaming after a membership change, and the clean-up once it has settled.
//!
//! When a commit opens a transfer (`Phase::Streaming`), every node involved walks its `data`
//! column family in batches. For each key it no longer is a home replica of under the new
//! ring, it sends its state with `Merge` (safe to repeat) to the key's new home replicas that
//! were not homes before, and moves on only once every one of them has acknowledged. The
//! position reached is persisted after each batch, so a restarted node resumes where it
//! stopped. When the walk is complete the node reports `Step::Streamed` in gossip; once every
//! involved node has, the transfer switches reads to the new owners (see `ringkv_core::layout`).
//!
//! Copies are deleted only after the transfer has *settled* (every node routes by the new
//! ring and refuses requests routed by the old one): then each member walks its keys once more
//! and deletes those it no longer owns, each only if it did not change meanwhile. A node that
//! left the ring keeps its data until the operator wipes it. A node leaving the ring reports
//! its walk done only once it also holds no hints (handoff places them, see `handoff`): the
//! transfer's end is what tells an operator the node may be stopped.
//!
//! Throughput is bounded by `transfer.max_in_flight` copies at once and, optionally, by
//! `transfer.max_keys_per_sec`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ringkv::transport::{Pool, Request, Response};
use ringkv_core::wire::TransferStats;
use ringkv_core::{NodeId, Phase, Ring, SiblingSet, Step};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cluster::{ClusterView, Keeper};
use crate::error::{Error, Result};
use crate::node::NodeParts;
use crate::ops::config::Transfer;
use crate::ops::counters::NodeCounters;
use crate::request::Replica;
use crate::storage::{DataKey, Store, StoreError, records};

/// The store record holding where an interrupted transfer stopped.
const CURSOR_RECORD: &str = "transfer-cursor";

/// How long a new owner gets to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a failed batch waits before it is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Where a transfer stopped: the transition id and the last key fully handed over.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    id: u64,
    bucket: String,
    key: Vec<u8>,
}

/// What the worker uses of the node.
struct Parts {
    me: NodeId,
    store: Arc<dyn Store>,
    replica: Arc<Replica>,
    view: watch::Receiver<Arc<ClusterView>>,
    counters: Arc<NodeCounters>,
    pool: Pool,
}

/// Starts the worker for the node `parts` make up; it stops when `shutdown` is cancelled. A
/// node without membership (no layout keeper) has nothing to transfer: the worker ends.
pub fn spawn_transfer(
    parts: &NodeParts,
    config: Transfer,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let keeper: Option<Arc<Keeper>> = parts.keeper.clone();
    let parts = Parts {
        me: parts.id,
        store: parts.store.clone(),
        replica: parts.replica.clone(),
        view: parts.view.clone(),
        counters: parts.counters.clone(),
        pool: parts.pool(),
    };
    tokio::spawn(async move {
        let Some(keeper) = keeper else {
            return;
        };
        let interval = Duration::from_millis(config.interval_ms);
        // Read once: only this loop changes it.
        let mut cleaned: u64 = keeper.cleaned();
        let me = parts.me;
        // The transfer whose keys this node has walked, while it waits to report it streamed.
        let mut streamed: Option<u64> = None;
        loop {
            if !super::pause(interval, &shutdown).await {
                return;
            }
            let view = parts.view.borrow().clone();
            let ring = view.ring.clone();
            let mut worker = Worker {
                parts: &parts,
                config: &config,
                shutdown: &shutdown,
                view: &view,
            };
            match ring.transition() {
                Some(t) if t.phase == Phase::Streaming => {
                    let involved = ring.all_members().iter().any(|m| m.id == me);
                    // Transfer ids are digests, not ordered: only a report for this one counts.
                    let reported = matches!(keeper.report(), Some((id, _)) if id == t.id);
                    if !involved || reported {
                        continue;
                    }
                    // Walked once already: only the leaving node's hints are still to place.
                    let walked = if streamed == Some(t.id) {
                        Ok(true)
                    } else {
                        worker.stream(t.id).await
                    };
                    match walked {
                        Ok(true) if worker.holds_hints_while_leaving().await => {
                            streamed = Some(t.id);
                            debug!(
                                transition = t.id,
                                "streamed; waiting for handoff to place this leaving node's hints"
                            );
                        }
                        Ok(true) => keeper.set_report(t.id, Step::Streamed),
                        Ok(false) => {} // Interrupted: shutting down, or the ring changed.
                        Err(e) => warn!(error = %e, "transfer step failed; will retry"),
                    }
                }
                Some(_) => {}
                None => {
                    let version = ring.config().version;
                    let member = ring.members().iter().any(|m| m.id == me);
                    if !member || cleaned >= version {
                        continue;
                    }
                    debug!(version, "cleaning up the copies this node no longer owns");
                    match worker.clean_up().await {
                        Ok(true) => {
                            keeper.set_cleaned(version);
                            cleaned = version;
                        }
                        Ok(false) => {}
                        Err(e) => warn!(error = %e, "clean-up failed; will retry"),
                    }
                }
            }
        }
    })
}

struct Worker<'a> {
    parts: &'a Parts,
    config: &'a Transfer,
    shutdown: &'a CancellationToken,
    view: &'a Arc<ClusterView>,
}

impl Worker<'_> {
    /// Streams every key this node no longer owns to its new owners. Returns `Ok(true)` when
    /// the walk completed, `Ok(false)` when it stopped early (shutdown, or the ring moved on).
    async fn stream(&mut self, id: u64) -> Result<bool> {
        let ring = self.view.ring.clone();
        let me = self.parts.me;
        let mut after: Option<DataKey> =
            match records::load::<Cursor>(self.parts.store.as_ref(), CURSOR_RECORD) {
                Some(c) if c.id == id => Some(DataKey {
                    bucket: c.bucket,
                    key: c.key,
                }),
                _ => None,
            };
        let (total_keys, _) = {
            let store = self.parts.store.clone();
            tokio::task::spawn_blocking(move || store.estimate()).await??
        };
        let mut stats = TransferStats {
            id,
            total_keys,
            resumed: after.is_some(),
            ..TransferStats::default()
        };
        // Copies checked by the previous ring and not yet written would be missed by the walk.
        let replica = self.parts.replica.clone();
        tokio::task::spawn_blocking(move || replica.settle_ring_checks()).await?;
        let started = Instant::now();
        info!(
            transition = id,
            resume = after.is_some(),
            "streaming data to new owners"
        );
        loop {
            if self.interrupted(&ring) {
                return Ok(false);
            }
            let batch = self.batch(after.as_ref()).await?;
            let Some((last, _, _)) = batch.last() else {
                break;
            };
            let last = last.clone();
            let batch_started = Instant::now();
            let mut sends = FuturesUnordered::new();
            let mut sent = 0u64;
            let mut failed = None;
            for (key, state, size) in batch {
                stats.scanned_keys += 1;
                stats.scanned_bytes += size as u64;
                let owners = new_owners(&ring, me, &key);
                if owners.is_empty() {
                    continue;
                }
                sent += 1;
                stats.sent_bytes += size as u64;
                for (node, addr) in owners {
                    if sends.len() >= self.config.max_in_flight
                        && let Some(Err(e)) = sends.next().await
                    {
                        failed = Some(e);
                    }
                    sends.push(self.send(node, addr, &key, state.clone()));
                }
            }
            while let Some(result) = sends.next().await {
                if let Err(e) = result {
                    failed = Some(e);
                }
            }
            if let Some(e) = failed {
                // Nothing is lost by sending the batch again: `Merge` is idempotent.
                debug!(error = %e, "a copy was not acknowledged; retrying the batch");
                tokio::time::sleep(RETRY_PAUSE).await;
                stats.scanned_keys = stats.scanned_keys.saturating_sub(sent);
                continue;
            }
            stats.sent_keys += sent;
            stats.elapsed_ms = started.elapsed().as_millis() as u64;
            self.parts.counters.transfer_progress(stats.clone());
            records::save(
                self.parts.store.as_ref(),
                CURSOR_RECORD,
                &Cursor {
                    id,
                    bucket: last.bucket.clone(),
                    key: last.key.clone(),
                },
            );
            after = Some(last);
            self.throttle(sent, batch_started).await;
        }
        stats.done = true;
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        self.parts.counters.transfer_progress(stats.clone());
        info!(
            transition = id,
            scanned = stats.scanned_keys,
            sent = stats.sent_keys,
            bytes = stats.sent_bytes,
            ms = stats.elapsed_ms,
            "streamed everything this node no longer owns"
        );
        Ok(true)
    }

    /// Whether this node is leaving the ring and still holds hints. Its part of the transfer is
    /// not done until handoff has placed them all (a leaving node hands the hints of down homes
    /// to the key's live homes): once the transfer is done the operator may stop the node, and
    /// its hints would go with it.
    async fn holds_hints_while_leaving(&self) -> bool {
        if !self.view.is_leaving(self.parts.me) {
            return false;
        }
        let store = self.parts.store.clone();
        match tokio::task::spawn_blocking(move || store.hint_count()).await {
            Ok(Ok(count)) => count > 0,
            _ => true,
        }
    }

    /// Deletes the copies of keys this node does not own under the settled ring. Returns
    /// `Ok(true)` once a whole pass deleted every such copy.
    async fn clean_up(&self) -> Result<bool> {
        let ring = self.view.ring.clone();
        let me = self.parts.me;
        // As before streaming: a copy checked by an older ring and not yet written (a peer's
        // `Merge`, an anti-entropy pull) would land behind the walk and never be cleaned.
        let replica = self.parts.replica.clone();
        tokio::task::spawn_blocking(move || replica.settle_ring_checks()).await?;
        let mut after: Option<DataKey> = None;
        let (mut cleaned, mut kept) = (0u64, 0u64);
        loop {
            if self.interrupted(&ring) {
                return Ok(false);
            }
            let batch = self.batch(after.as_ref()).await?;
            let Some((last, _, _)) = batch.last() else {
                break;
            };
            after = Some(last.clone());
            let stale: Vec<(DataKey, SiblingSet)> = batch
                .into_iter()
                .filter(|(k, _, _)| !ring.is_home_replica(me, &k.bucket, &k.key))
                .map(|(k, s, _)| (k, s))
                .collect();
            if stale.is_empty() {
                continue;
            }
            let replica = self.parts.replica.clone();
            let candidates = stale.len() as u64;
            let judged_by = ring.epoch();
            let gone = tokio::task::spawn_blocking(move || {
                let mut gone = 0;
                for (key, state) in stale {
                    if replica.delete_if_unchanged(&key.bucket, &key.key, &state, judged_by)? {
                        gone += 1;
                    }
                }
                Ok::<u64, StoreError>(gone)
            })
            .await??;
            cleaned += gone;
            kept += candidates - gone;
        }
        if cleaned > 0 || kept > 0 {
            info!(
                deleted = cleaned,
                kept, "deleted the copies this node no longer owns"
            );
        }
        if let Some(mut stats) = self.parts.counters.transfer() {
            stats.cleaned_keys += cleaned;
            self.parts.counters.transfer_progress(stats);
        }
        // A copy that changed while it was looked at is kept, and looked at again next time:
        // the clean-up is done only once a pass found nothing to keep.
        Ok(kept == 0)
    }

    /// Whether to stop a walk: the node is shutting down, or the ring moved on (the walk
    /// starts over under the new one).
    fn interrupted(&self, ring: &Ring) -> bool {
        self.shutdown.is_cancelled() || self.parts.view.borrow().ring.epoch() != ring.epoch()
    }

    async fn batch(&self, after: Option<&DataKey>) -> Result<Vec<(DataKey, SiblingSet, usize)>> {
        let store = self.parts.store.clone();
        let after = after.cloned();
        let limit = self.config.batch;
        Ok(tokio::task::spawn_blocking(move || store.scan(after.as_ref(), limit)).await??)
    }

    fn send(
        &self,
        node: NodeId,
        addr: String,
        key: &DataKey,
        state: SiblingSet,
    ) -> impl std::future::Future<Output = Result<()>> + use<'_> {
        let pool = &self.parts.pool;
        let epoch = self.view.ring.epoch();
        // Synced: this node deletes its copy once the transfer is done, so every copy it
        // streamed must be on the new owner's disk by then (a `dw` write stays durable
        // through the move). The owner's group commit serves the copies in flight at once.
        let body = Request::Merge {
            bucket: key.bucket.clone(),
            key: key.key.clone().into(),
            state,
            hint: None,
            sync: true,
            entry: false,
            ttl_ms: None,
        };
        async move {
            match pool
                .call_node(node, &addr, CONNECT_TIMEOUT, epoch, body)
                .await
            {
                Ok((Response::Merged, _)) => Ok(()),
                Ok((other, _)) => Err(Error::UnexpectedAnswer {
                    peer: node.to_string(),
                    request: "Merge",
                    answer: other.kind(),
                }),
                Err(source) => Err(Error::Peer {
                    peer: node.to_string(),
                    source,
                }),
            }
        }
    }

    /// Sleeps as long as `max_keys_per_sec` asks for after sending `sent` keys.
    async fn throttle(&self, sent: u64, since: Instant) {
        let rate = self.config.max_keys_per_sec;
        if rate == 0 || sent == 0 {
            return;
        }
        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
        let spent = since.elapsed();
        if due > spent {
            tokio::time::sleep(due - spent).await;
        }
    }
}

/// The home replicas `key` must be sent to by `me`, never a member declared removed.
///
/// - A node that stops being a home sends to the new homes (those that were not homes
///   before; the others hold the key already). When the key loses homes (its bucket's `n`
///   was lowered), it sends to every remaining home instead: a write acknowledged only by
///   homes that leave would otherwise be deleted with them by the clean-up.
/// - When no home leaves to send it, every previous home sends its own copy to the new
///   homes (so that a write only one of them held is not dropped): one of its previous
///   homes was removed (it cannot send its share), or the key gains homes (`n` was raised).
fn new_owners(ring: &Ring, me: NodeId, key: &DataKey) -> Vec<(NodeId, String)> {
    let homes = ring.home_replicas(&key.bucket, &key.key);
    let before = ring.previous_home_replicas(&key.bucket, &key.key);
    let removed = |id: NodeId| ring.transition().is_some_and(|t| t.is_removed(id));
    let stays = homes.iter().any(|m| m.id == me);
    let unsent = before.iter().any(|m| removed(m.id)) || homes.len() > before.len();
    let survivor = before.iter().any(|m| m.id == me) && unsent;
    if stays && !survivor {
        return Vec::new();
    }
    let shrinks = homes.len() < before.len();
    homes
        .into_iter()
        .filter(|m| m.id != me && !removed(m.id))
        .filter(|m| shrinks || !before.iter().any(|b| b.id == m.id))
        .map(|m| (m.id, m.addr.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
