//! Hinted handoff: hand the writes this node took for unreachable nodes back to them.
//!
//! A fallback that received a `Merge` with a hint keeps the state in the `hints` column family
//! (so it survives a restart). Every `handoff.interval_ms` the worker walks the hints in
//! batches of [`HANDOFF_BATCH`]; each hint whose home node gossip shows alive is sent to it as
//! a `Merge` the home syncs before it answers, at most `handoff.max_in_flight` at once. A hint
//! is deleted only once the home node has acknowledged it, and only if it did not change meanwhile
//! ([`Replica::hint_delivered`]); a failed delivery is retried on the next round. Merging is
//! idempotent, so a delivery repeated after a crash does no harm.
//!
//! A node leaving the ring hands every hint over, those of down homes to the key's live homes,
//! and its transfer does not finish while it holds any: an operator who stops it once
//! `ringkv handoff --watch` says the transfer is done drops nothing. A node gone from the ring
//! without that (removed while down or cut off) delivers nothing it still holds: the keys its
//! hints carry may have been deleted and purged since.
//!
//! Hints follow the ring: a hint goes to its home alone only while that node is a home of
//! the key under the current ring (during a transfer, the ring the key moves to). Once a
//! layout change is moving the key away from it (or it left the ring), the hint goes to every
//! home a write of the key reaches now, this node included if it is one: the old home streams
//! the key to its new owners and deletes its copy, so a write delivered there alone would be
//! lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ringkv::transport::{Pool, Request, Response};
use ringkv_core::{Member, NodeId};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock;
use crate::cluster::{ClusterView, Keeper};
use crate::error::Result;
use crate::node::NodeParts;
use crate::ops::config::Handoff;
use crate::ops::counters::NodeCounters;
use crate::request::Replica;
use crate::storage::{HintKey, encode_state};

/// Hints read from the store per step of a round: bounds the memory one round holds.
pub const HANDOFF_BATCH: usize = 256;

/// How long a home node gets to accept a connection during handoff.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What the worker uses of the node.
struct Worker {
    me: NodeId,
    /// Where the age of the oldest hint held is published (gossiped, for purging); `None`
    /// for a node without membership.
    keeper: Option<Arc<Keeper>>,
    replica: Arc<Replica>,
    view: watch::Receiver<Arc<ClusterView>>,
    counters: Arc<NodeCounters>,
    pool: Pool,
    /// Over this many bytes of hints, hints of down homes are handed to anti-entropy.
    max_hint_queue_bytes: u64,
}

/// Starts the worker for the node `parts` make up; it stops when `shutdown` is cancelled.
pub fn spawn_handoff(
    parts: &NodeParts,
    config: Handoff,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let worker = Worker {
        me: parts.id,
        keeper: parts.keeper.clone(),
        replica: parts.replica.clone(),
        view: parts.view.clone(),
        counters: parts.counters.clone(),
        pool: parts.pool(),
        max_hint_queue_bytes: parts.limits.max_hint_queue_bytes,
    };
    tokio::spawn(async move {
        let interval = Duration::from_millis(config.interval_ms);
        let mut last_pending = 0;
        // Hints deleted by rounds whose sync has not succeeded yet.
        let mut unsynced = 0;
        loop {
            if !super::pause(interval, &shutdown).await {
                return;
            }
            let round = worker.run_round(&config, &shutdown).await;
            match round {
                Ok(Round {
                    delivered,
                    converted,
                    pending,
                    hints_since_ms,
                }) => {
                    // The hints this round deleted must stay deleted before the watermark
                    // says so: after a power loss a delivered hint would come back, and be
                    // delivered again to homes that purged its key.
                    unsynced += delivered + converted;
                    if let Some(keeper) = &worker.keeper
                        && worker.synced(unsynced).await
                    {
                        unsynced = 0;
                        keeper.set_hints_since(hints_since_ms);
                    }
                    if delivered > 0 || converted > 0 || pending != last_pending {
                        info!(delivered, converted, pending, "hinted handoff");
                    }
                    worker
                        .counters
                        .hints_converted
                        .fetch_add(converted, Ordering::Relaxed);
                    last_pending = pending;
                }
                Err(e) => warn!(error = %e, "hinted handoff round failed"),
            }
        }
    })
}

struct Round {
    delivered: u64,
    /// Hints handed to anti-entropy (copied to the key's live homes, then deleted).
    converted: u64,
    pending: u64,
    /// No hint this node holds has content older than this instant (its clock): the round's
    /// start, or the oldest hint age it saw, whichever is older (see `workers::purge`).
    hints_since_ms: u64,
}

impl Worker {
    /// Puts the round's deletions on disk if it made any. Returns whether they are.
    async fn synced(&self, deleted: u64) -> bool {
        if deleted == 0 {
            return true;
        }
        let store = self.replica.store().clone();
        match tokio::task::spawn_blocking(move || store.sync()).await {
            Ok(Ok(())) => true,
            other => {
                warn!(?other, "could not sync the hints handoff deleted");
                false
            }
        }
    }

    async fn run_round(&self, config: &Handoff, shutdown: &CancellationToken) -> Result<Round> {
        let max_in_flight = config.max_in_flight.max(1);
        let max_age_ms = config.max_hint_age_secs.saturating_mul(1000);
        // Ages this process knows reach every purge report directly (`Keeper::purge_report`);
        // the scan finds the hints it does not know the age of (written before it started).
        let mut hints_since_ms = clock::now_ms();
        let over_cap = self.counters.hint_bytes.load(Ordering::Relaxed) > self.max_hint_queue_bytes;
        let me = self.me;
        // A node leaving the ring (or gone from it) must not keep hints: it hands those of down
        // homes to the key's live homes at once rather than wait for the homes to return, and
        // its transfer is not done until it holds none (see `transfer`).
        let pool = &self.pool;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut bytes = 0u64;
        let mut converted = 0;
        let view = self.view.borrow().clone();
        let leaving = view.is_leaving(me);
        if leaving && !view.ring.all_members().iter().any(|m| m.id == me) {
            // Gone from the ring without finishing a leave (removed while it was down or cut
            // off): its hints are older than anything the members know of, and the keys they
            // carry may have been deleted and purged since. Kept, never delivered: the node
            // is to be wiped (README, "Growing and shrinking the cluster").
            let store = self.replica.store().clone();
            let held = tokio::task::spawn_blocking(move || store.hint_count()).await??;
            if held > 0 {
                warn!(
                    hints = held,
                    "this node is no longer a member: its hints are kept, not delivered; wipe it"
                );
            }
            return Ok(Round {
                delivered: 0,
                converted: 0,
                pending: held,
                hints_since_ms: 0,
            });
        }
        let addresses: HashMap<NodeId, String> = view
            .ring
            .all_members()
            .into_iter()
            .filter(|m| view.alive.contains(&m.id) && m.id != me)
            .map(|m| (m.id, m.addr.clone()))
            .collect();
        let epoch = view.ring.epoch();
        let mut delivered = 0;
        // Counted during the scan rather than by a second scan of the column family: what this
        // round saw, less what it delivered (a hint added meanwhile shows in the next round).
        let mut scanned = 0;
        let mut after: Option<HintKey> = None;
        loop {
            let store = self.replica.store().clone();
            let cursor = after.clone();
            let batch = tokio::task::spawn_blocking(move || {
                store.scan_hints(cursor.as_ref(), HANDOFF_BATCH)
            })
            .await??;
            let Some((last, _)) = batch.last() else { break };
            after = Some(last.clone());
            scanned += batch.len() as u64;
            let mut sends = FuturesUnordered::new();
            // Every hint of the batch, whether or not this round delivers it (the next round,
            // which no longer sees it, moves the watermark on) or stops early.
            for (hint, _) in &batch {
                hints_since_ms = hints_since_ms.min(self.replica.hint_age(hint));
            }
            for (hint, state) in batch {
                bytes += (encode_state(&state).len() + hint.key.len()) as u64;
                let newest = state.siblings().iter().map(|s| s.timestamp_ms).max();
                let overdue = newest.is_some_and(|t| now_ms.saturating_sub(t) > max_age_ms);
                // A leaving node places a hint on the key's other live homes when it can (a
                // home that gossip shows alive may still be unreachable from here, and the
                // transfer waits for this node's hints): the home gets it from them. Others
                // hand a hint to those homes only once it is overdue or the queue is full.
                let convert = || live_other_homes(&view, &addresses, &hint, me);
                let route = leaving
                    .then(convert)
                    .flatten()
                    .map(Route::Convert)
                    .or_else(|| destinations(&view, &addresses, &hint, me).map(Route::Deliver))
                    .or_else(|| {
                        (overdue || over_cap)
                            .then(convert)
                            .flatten()
                            .map(Route::Convert)
                    });
                let (destinations, converting) = match route {
                    Some(Route::Deliver(Destinations { remote, local })) => {
                        // This node's own copy first: the hint is deleted once the others
                        // acknowledged, so it must be here by then.
                        if local {
                            let replica = self.replica.clone();
                            let (bucket, key, copy) =
                                (hint.bucket.clone(), hint.key.clone(), state.clone());
                            // Decided on under the ring this round began with, and refused
                            // if the ring in force is another (a round may outlast a
                            // transfer): the hint is then kept for the next round.
                            let merged = tokio::task::spawn_blocking(move || {
                                replica.merge_own_copy(epoch, &bucket, &key, &copy)
                            })
                            .await;
                            if !matches!(merged, Ok(Ok(()))) {
                                warn!(?merged, "could not keep a hint for a key this node owns");
                                continue;
                            }
                        }
                        (remote, false)
                    }
                    Some(Route::Convert(homes)) => (homes, true),
                    // Nowhere to hand it to now: keep it, however old.
                    None => continue,
                };
                if shutdown.is_cancelled() {
                    break;
                }
                if sends.len() >= max_in_flight
                    && let Some((hint, state, answer, converting)) = sends.next().await
                {
                    let gone: u64 = self.settle((hint, state, answer)).await;
                    tally(gone, converting, &mut delivered, &mut converted);
                }
                // Synced: the hint is deleted once this is acknowledged, so the copy must be on
                // the home's disk by then (a `dw` write stays durable through its handoff).
                // The home's group commit serves the `max_in_flight` deliveries at once.
                let body = Request::Merge {
                    bucket: hint.bucket.clone(),
                    key: hint.key.clone().into(),
                    state: state.clone(),
                    hint: None,
                    sync: true,
                    entry: false,
                    ttl_ms: None,
                };
                sends.push(async move {
                    let mut answer = Ok((Response::Merged, epoch));
                    for (node, addr) in destinations {
                        let result = pool
                            .call_node(node, &addr, CONNECT_TIMEOUT, epoch, body.clone())
                            .await;
                        if !matches!(result, Ok((Response::Merged, _))) {
                            answer = result;
                        }
                    }
                    (hint, state, answer, converting)
                });
            }
            while let Some((hint, state, answer, converting)) = sends.next().await {
                let gone = self.settle((hint, state, answer)).await;
                tally(gone, converting, &mut delivered, &mut converted);
            }
        }
        self.counters.hint_bytes.store(bytes, Ordering::Relaxed);
        Ok(Round {
            delivered,
            converted,
            pending: scanned.saturating_sub(delivered + converted),
            hints_since_ms,
        })
    }

    /// Deletes a hint whose home node acknowledged it. Returns 1 if it is gone (a hint that
    /// changed while in flight stays, and is sent again next round).
    async fn settle(&self, (hint, state, answer): Sent) -> u64 {
        match answer {
            Ok((Response::Merged, _)) => {
                let replica = self.replica.clone();
                let home = hint.home;
                match tokio::task::spawn_blocking(move || replica.hint_delivered(&hint, &state))
                    .await
                {
                    Ok(Ok(gone)) => u64::from(gone),
                    Ok(Err(e)) => {
                        warn!(node = %home, error = %e, "could not delete a delivered hint; it will be sent again");
                        0
                    }
                    Err(e) => {
                        warn!(error = %e, "hint bookkeeping failed");
                        0
                    }
                }
            }
            Ok((other, _)) => {
                warn!(node = %hint.home, answer = other.kind(), "unexpected answer to a handoff");
                0
            }
            Err(e) => {
                debug!(node = %hint.home, error = %e, "handoff failed; will retry");
                0
            }
        }
    }
}

fn tally(gone: u64, converting: bool, delivered: &mut u64, converted: &mut u64) {
    if converting {
        *converted += gone;
    } else {
        *delivered += gone;
    }
}

/// Where a hint goes now: to its home (see [`destinations`]), or to the key's other live homes,
/// which anti-entropy then takes it from.
enum Route {
    Deliver(Destinations),
    Convert(Vec<(NodeId, String)>),
}

/// The key's live homes other than the hint's home and this node, on both sides of a transfer
/// under way (`Ring::route`): where a hint goes when it is handed to anti-entropy. `None` if
/// none of them is a home under the ring the key moves to: then it must wait. A home the key
/// is moving away from may have streamed it already and will clean its copy up, so a write
/// handed to such homes alone would be deleted with them.
fn live_other_homes(
    view: &ClusterView,
    alive_addresses: &HashMap<NodeId, String>,
    hint: &HintKey,
    me: NodeId,
) -> Option<Vec<(NodeId, String)>> {
    let route = view.ring.route(&hint.bucket, &hint.key);
    let n = route.n;
    let homes: Vec<(NodeId, String)> = route
        .preference
        .take(n)
        .chain(route.extra_homes)
        .filter(|m| m.id != hint.home && m.id != me)
        .filter_map(|m| Some((m.id, alive_addresses.get(&m.id)?.clone())))
        .collect();
    let keeping = view.ring.home_replicas(&hint.bucket, &hint.key);
    let kept = homes
        .iter()
        .any(|(id, _)| keeping.iter().any(|m| m.id == *id));
    kept.then_some(homes)
}

/// Where a hint goes now: see [`destinations`].
#[derive(Debug, PartialEq, Eq)]
struct Destinations {
    /// The nodes to send it to, with their addresses.
    remote: Vec<(NodeId, String)>,
    /// This node is one of the key's homes now: merge the hint into its own copy too.
    local: bool,
}

/// Where a hint goes: to its own home, alone, if that is a home of the key under the current
/// ring (during a transfer, the ring the key is moving to) and is alive. Otherwise (a layout
/// change is taking or took the key from it, or it left the ring) to every home a write of the
/// key reaches now (`Ring::route`: during a transfer, both rings' homes), all of them alive,
/// this node included if it is one: a home that lost the key has streamed it away and will
/// clean its copy up, so a hint delivered there alone would be lost. `None`: not now.
fn destinations(
    view: &ClusterView,
    alive_addresses: &HashMap<NodeId, String>,
    hint: &HintKey,
    me: NodeId,
) -> Option<Destinations> {
    if view.ring.members().is_empty() {
        return None; // A node we cannot place yet.
    }
    // Still a home of the key under the current ring (during a transfer, the ring the key
    // is moving to): it gets the hint when it is back, and only it. A home the key is moving
    // away from does not count: it may have streamed the key already, and will clean it up.
    if view
        .ring
        .home_replicas(&hint.bucket, &hint.key)
        .iter()
        .any(|m| m.id == hint.home)
    {
        let addr = alive_addresses.get(&hint.home)?;
        return Some(Destinations {
            remote: vec![(hint.home, addr.clone())],
            local: false,
        });
    }
    let route = view.ring.route(&hint.bucket, &hint.key);
    let n = route.n;
    let homes: Vec<&Member> = route.preference.take(n).chain(route.extra_homes).collect();
    let mut remote = Vec::with_capacity(homes.len());
    let mut local = false;
    for home in homes {
        if home.id == me {
            local = true;
        } else {
            remote.push((home.id, alive_addresses.get(&home.id)?.clone()));
        }
    }
    Some(Destinations { remote, local })
}

type Sent = (
    HintKey,
    ringkv_core::SiblingSet,
    ringkv::Result<(Response, ringkv_core::RingEpoch)>,
);

#[cfg(test)]
mod tests;
