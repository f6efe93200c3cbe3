//! Purging: removing keys that hold nothing but tombstones and expired values.
//!
//! A dead state cannot simply be dropped: its version vector is what stops an older copy of
//! the key, still held somewhere, from coming back when it merges in (a replica that missed
//! the delete, a hint, a stream, a write in flight). So a key is purged only once nothing
//! can hold such a copy any more:
//!
//! 1. its state has held no live value for `purge.delay_secs` (a request, with its retries,
//!    that began before the delete has ended by then);
//! 2. every home replica of the key holds exactly that dead state (same version vector), so
//!    no home holds an older copy. The ring must be settled (no transfer under way, which
//!    is also when a pending layout would move the key), so the homes are the only copies
//!    outside hints;
//! 3. after `purge.delay_secs` more, counted from the moment step 2 was seen (a read that
//!    found an older copy before then has finished repairing by now), every member gossips
//!    that it holds no hint whose content is older than that moment, nor delivered one
//!    lately (`PurgeReport::hints_since_ms`; see `request::replica::HintAges`), and that
//!    it has cleaned up after the current ring (no copy left over from an earlier
//!    layout, which a later one could make a home again). A member not heard from blocks
//!    every purge;
//! 4. then the state is deleted on every home, each only if it still is that dead state
//!    (`Replica::purge`, under the key's lock: a write that landed meanwhile keeps it).
//!
//! The same rule prunes a live key's version vector of the actors no version was stamped by
//! (`purge.prune_above`, checked by the state's vector and dots alike): once no copy
//! anywhere can hold a version those entries cover, the entries protect nothing, and each
//! node that forgot the key or crashed added one (see `request::actors`).
//!
//! This is Garage's rule for its tombstones (every node of the current layout holds it, and
//! a delay), with the hints Garage does not have. Only the key's first home coordinates its
//! purge, so a key costs one check per pass however many replicas it has. A home that missed
//! the final delete keeps its dead copy; anti-entropy brings it back to the others and the
//! next passes purge it again, so the cluster converges.
//!
//! What this cannot see is documented for operators: a checkpoint older than the delay
//! restored in place, or a removed node started again with its old data, brings back what
//! was purged since.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ringkv::transport::{Pool, Request, Response};
use ringkv_core::wire::{MAX_PURGE_KEYS, PurgeKey};
use ringkv_core::{NodeId, Ring, RingEpoch, SiblingSet};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock;
use crate::cluster::{ClusterView, Keeper, PurgeReport};
use crate::error::Result;
use crate::node::NodeParts;
use crate::ops::config::Purge;
use crate::request::Replica;
use crate::storage::DataKey;

/// Keys read from the store per step of a pass.
const PURGE_BATCH: usize = 256;
/// Keys remembered between passes as seen dead on every home, at most: beyond it, the
/// others wait for a later pass.
const MAX_CANDIDATES: usize = 200_000;
/// How long a peer gets to accept a connection and to answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no purge may complete now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// A transfer is under way: the key's homes are changing.
    Transfer,
    /// A member gossips no purge report: down, starting, or a release before purging.
    Unheard(NodeId),
    /// A member has not cleaned up after the current ring yet.
    CleanUp(NodeId),
}

/// How far the members' reports let purges go: a key seen dead on all its homes at `t` may
/// be purged once `t + delay` is at most the returned instant. Every member must have
/// cleaned up after the current ring; the instant is the oldest of their hint watermarks
/// (and `now_ms`).
pub fn horizon(
    ring: &Ring,
    reports: &BTreeMap<NodeId, PurgeReport>,
    now_ms: u64,
) -> std::result::Result<u64, Blocked> {
    if ring.transition().is_some() {
        return Err(Blocked::Transfer);
    }
    let version = ring.config().version;
    let mut horizon = now_ms;
    for member in ring.members() {
        let report = reports.get(&member.id).ok_or(Blocked::Unheard(member.id))?;
        if report.cleaned < version {
            return Err(Blocked::CleanUp(member.id));
        }
        horizon = horizon.min(report.hints_since_ms);
    }
    Ok(horizon)
}

/// A key seen dead, as this state, on every home at `checked_ms`.
#[derive(Debug)]
struct Candidate {
    state: PurgeKey,
    checked_ms: u64,
}

/// What the worker uses of the node.
struct Worker {
    me: NodeId,
    replica: Arc<Replica>,
    view: watch::Receiver<Arc<ClusterView>>,
    keeper: Arc<Keeper>,
    pool: Pool,
    config: Purge,
    /// Keys seen dead on every home, under the ring of `epoch`.
    candidates: HashMap<DataKey, Candidate>,
    epoch: RingEpoch,
}

/// What one pass did.
#[derive(Debug, Default)]
struct Pass {
    checked: u64,
    purged: u64,
}

/// Starts the worker for the node `parts` make up; it stops when `shutdown` is cancelled. A
/// node without membership has nothing to purge with: the worker ends.
pub fn spawn_purge(
    parts: &NodeParts,
    config: Purge,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let keeper = parts.keeper.clone();
    let (me, replica, view, pool) = (
        parts.id,
        parts.replica.clone(),
        parts.view.clone(),
        parts.pool(),
    );
    tokio::spawn(async move {
        let Some(keeper) = keeper else {
            return;
        };
        if config.interval_ms == 0 {
            return; // Disabled.
        }
        // A delivered hint's age counts for as long as a key waits after its check.
        replica
            .hint_ages()
            .set_grace(config.delay_secs.saturating_mul(1000));
        let interval = Duration::from_millis(config.interval_ms);
        let mut worker = Worker {
            me,
            replica,
            view,
            keeper,
            pool,
            config,
            candidates: HashMap::new(),
            epoch: RingEpoch::default(),
        };
        loop {
            if !super::pause(interval, &shutdown).await {
                return;
            }
            match worker.pass(&shutdown).await {
                Ok(Pass { purged: 0, checked }) => debug!(checked, "purge pass"),
                Ok(Pass { purged, checked }) => {
                    info!(purged, checked, "purged dead keys, pruned version vectors")
                }
                Err(e) => warn!(error = %e, "purge pass failed; will retry"),
            }
        }
    })
}

impl Worker {
    /// Walks the store once: checks the dead keys this node coordinates on their homes, and
    /// purges those checked long enough ago.
    async fn pass(&mut self, shutdown: &CancellationToken) -> Result<Pass> {
        let view = self.view.borrow().clone();
        let mut pass = Pass::default();
        // A layout from before the bucket table was in it changes `n` by gossip alone,
        // with no transfer and no clean-up to wait for: such a cluster purges nothing until
        // its first `ringkv bucket` command moves the table into the layout.
        if !view.ready || view.ring.transition().is_some() || view.layout.buckets.is_none() {
            self.candidates.clear();
            return Ok(pass);
        }
        if view.ring.epoch() != self.epoch {
            // Checked under another ring: the homes may differ.
            self.candidates.clear();
            self.epoch = view.ring.epoch();
        }
        let delay_ms = self.config.delay_secs.saturating_mul(1000);
        let started = Instant::now();
        let mut after: Option<DataKey> = None;
        loop {
            if shutdown.is_cancelled() || self.view.borrow().ring.epoch() != self.epoch {
                return Ok(pass);
            }
            let store = self.replica.store().clone();
            let cursor = after.clone();
            let batch =
                tokio::task::spawn_blocking(move || store.scan(cursor.as_ref(), PURGE_BATCH))
                    .await??;
            let Some((last, _, _)) = batch.last() else {
                return Ok(pass);
            };
            after = Some(last.clone());
            let now = clock::now_ms();
            let horizon = horizon(&view.ring, &self.keeper.purge_reports(self.me), now);
            if let Err(blocked) = horizon {
                debug!(?blocked, "no purge completes for now");
            }
            let (mut check, mut purge) = (Vec::new(), Vec::new());
            for (key, state, _) in batch {
                match self.judge(&view.ring, &key, &state, now, delay_ms, horizon) {
                    Verdict::Check(prune) => check.push(purge_key(key, &state, prune)),
                    Verdict::Purge(prune) => purge.push(purge_key(key, &state, prune)),
                    Verdict::Wait => {}
                    Verdict::Alive => {
                        self.candidates.remove(&key);
                    }
                }
            }
            pass.checked += check.len() as u64;
            self.check(&view, check).await;
            pass.purged += self.purge(&view, purge).await?;
            self.throttle(pass.checked + pass.purged, started).await;
        }
    }

    /// What to do with one stored key now.
    fn judge(
        &self,
        ring: &Ring,
        key: &DataKey,
        state: &SiblingSet,
        now_ms: u64,
        delay_ms: u64,
        horizon: std::result::Result<u64, Blocked>,
    ) -> Verdict {
        let prune = match state.dead_since(now_ms) {
            Some(since) if since.saturating_add(delay_ms) > now_ms => return Verdict::Wait,
            Some(_) => false,
            None => {
                let above = self.config.prune_above;
                if above == 0 || state.prunable_actors() <= above {
                    return Verdict::Alive;
                }
                // A key written lately may still have writes in flight that its history
                // covers: like a dead one, it waits the delay first.
                let newest = state.siblings().iter().map(|s| s.timestamp_ms).max();
                if newest.unwrap_or(0).saturating_add(delay_ms) > now_ms {
                    return Verdict::Wait;
                }
                true
            }
        };
        let first = ring
            .home_replicas(&key.bucket, &key.key)
            .first()
            .map(|m| m.id);
        if first != Some(self.me) {
            return Verdict::Wait; // Its first home coordinates its purge.
        }
        match self.candidates.get(key) {
            Some(c) if c.state.prune == prune && c.state.matches(state, now_ms) => match horizon {
                Ok(h) if c.checked_ms.saturating_add(delay_ms) <= h => Verdict::Purge(prune),
                _ => Verdict::Wait,
            },
            _ if self.candidates.len() >= MAX_CANDIDATES => Verdict::Wait,
            _ => Verdict::Check(prune),
        }
    }

    /// Asks every other home whether it holds each key's dead state; those all hold become
    /// candidates, seen now.
    async fn check(&mut self, view: &ClusterView, keys: Vec<PurgeKey>) {
        if keys.is_empty() {
            return;
        }
        let held = self
            .ask(view, &keys, |keys| Request::PurgeCheck { keys })
            .await;
        // After every answer: a hint made before the homes held the state is older than this.
        let checked_ms = clock::now_ms();
        for (key, all) in keys.into_iter().zip(held) {
            if all {
                let stored = DataKey {
                    bucket: key.bucket.clone(),
                    key: key.key.to_vec(),
                };
                let candidate = Candidate {
                    state: key,
                    checked_ms,
                };
                self.candidates.insert(stored, candidate);
            }
        }
    }

    /// Deletes each key's dead state on its other homes, then here. Returns how many this
    /// node deleted.
    async fn purge(&mut self, view: &ClusterView, keys: Vec<PurgeKey>) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        // Whatever the others answer: a home that keeps its copy sends it back through
        // anti-entropy, and a later pass purges it again.
        self.ask(view, &keys, |keys| Request::Purge { keys }).await;
        let (replica, epoch) = (self.replica.clone(), self.epoch);
        let local = keys.clone();
        let gone = tokio::task::spawn_blocking(move || {
            let mut gone = 0;
            for k in &local {
                if replica.purge(k, epoch)? {
                    gone += 1;
                }
            }
            Ok::<u64, crate::storage::StoreError>(gone)
        })
        .await??;
        for k in keys {
            self.candidates.remove(&DataKey {
                bucket: k.bucket,
                key: k.key.to_vec(),
            });
        }
        Ok(gone)
    }

    /// Sends `request` for `keys` to every other home of each, in batches per peer, and
    /// returns per key whether every one of them answered `true`.
    async fn ask(
        &self,
        view: &ClusterView,
        keys: &[PurgeKey],
        request: impl Fn(Vec<PurgeKey>) -> Request,
    ) -> Vec<bool> {
        let mut all = vec![true; keys.len()];
        let mut per_peer: BTreeMap<NodeId, (String, Vec<usize>)> = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            for home in view.ring.home_replicas(&key.bucket, &key.key) {
                if home.id != self.me {
                    per_peer
                        .entry(home.id)
                        .or_insert_with(|| (home.addr.clone(), Vec::new()))
                        .1
                        .push(i);
                }
            }
        }
        for (peer, (addr, indices)) in per_peer {
            for chunk in indices.chunks(MAX_PURGE_KEYS) {
                let batch: Vec<PurgeKey> = chunk.iter().map(|&i| keys[i].clone()).collect();
                let answers = self.call(peer, &addr, request(batch)).await;
                for (n, &i) in chunk.iter().enumerate() {
                    all[i] &= answers.as_ref().is_some_and(|a| a.get(n) == Some(&true));
                }
            }
        }
        all
    }

    /// One request to a peer; its per-key answers, or `None` if it gave none.
    async fn call(&self, peer: NodeId, addr: &str, request: Request) -> Option<Vec<bool>> {
        let kind = request.kind();
        let call = self
            .pool
            .call_node(peer, addr, CALL_TIMEOUT, self.epoch, request);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok((Response::PurgeChecked { held: answers }, _)))
            | Ok(Ok((Response::Purged { purged: answers }, _))) => Some(answers),
            Ok(Ok((other, _))) => {
                warn!(peer = %peer, request = kind, answer = other.kind(), "unexpected answer to a purge");
                None
            }
            Ok(Err(e)) => {
                debug!(peer = %peer, request = kind, error = %e, "purge request failed");
                None
            }
            Err(_) => {
                debug!(peer = %peer, request = kind, "purge request timed out");
                None
            }
        }
    }

    async fn throttle(&self, done: u64, since: Instant) {
        let rate = self.config.max_keys_per_sec;
        if rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(done as f64 / rate as f64);
        let spent = since.elapsed();
        if due > spent {
            tokio::time::sleep(due - spent).await;
        }
    }
}

/// What a pass does with one stored key.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// It holds a live value and little history: nothing to purge.
    Alive,
    /// Dead, but not yet for long enough, or not this node's to coordinate, or waiting for
    /// the cluster.
    Wait,
    /// Ask its homes whether they hold its state (dead; or, `true`, live with a history to
    /// prune).
    Check(bool),
    /// Seen on every home long enough ago, and the cluster allows it: purge (or prune).
    Purge(bool),
}

fn purge_key(key: DataKey, state: &SiblingSet, prune: bool) -> PurgeKey {
    if prune {
        PurgeKey::prune(key.bucket, key.key.into(), state)
    } else {
        PurgeKey::of(key.bucket, key.key.into(), state)
    }
}

#[cfg(test)]
mod tests;
