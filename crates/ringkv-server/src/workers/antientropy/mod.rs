//! Anti-entropy: replicas compare what they hold, span by span, and repair the differences.
//!
//! Hinted handoff and read repair fix what they see; a copy lost on disk, a hint that could
//! not be kept, or a key nobody reads stays wrong until something compares the replicas
//! themselves. Every `anti_entropy.interval_ms` a node picks the next live member it shares
//! fragments of the ring with (round robin) and runs one exchange:
//!
//! 1. **Summaries.** Both sides summarise (hash and key count), for every fragment of the ring
//!    they share, the keys both are home replicas of ([`spans`]), from the digest index their
//!    stores keep up to date on every write (`storage::digests`): no scan of the data.
//! 2. **Descent.** A span whose summaries differ is cut into 32 and compared again, until it
//!    holds few keys; then both sides list those keys with their state digests
//!    ([`compare`]). An exchange between equal replicas costs one summary per shared
//!    fragment; each difference, a few dozen summaries and a short key list.
//! 3. **Repair.** Every key whose digests differ, or that one side lacks, is sent both ways
//!    with `Merge`: ours to the peer, the peer's (fetched with `Inspect`) merged here. `Merge`
//!    is idempotent and commutative, so a repair can never lose an update, and one exchange
//!    makes both copies equal. Repairs are paced by `anti_entropy.max_keys_per_sec` and
//!    bounded per exchange.
//!
//! **Returning nodes.** A peer that comes back alive (after an outage long enough for its
//! hints to be handed to anti-entropy, or any other) is compared first, and at once rather
//! than at the next interval: its ranges get their repairs before the round robin would
//! reach it.
//!
//! Exchanges run between nodes on the same ring epoch, so both sides compute the same spans,
//! and only with peers of protocol 12 or newer (an older peer's digests are of another kind).
//! During a transfer they compare only the keys not in transit (whose homes are the same under
//! both rings): moving keys are the transfer's business, and the rest of the data keeps its
//! repairs while a long transfer runs. A node of an older release may still ask this one for
//! whole-store trees ([`digest`]), which are answered by a scan.

mod compare;
pub mod digest;
mod pace;
mod sides;
pub mod spans;

#[cfg(test)]
mod figures;
#[cfg(test)]
mod test_ring;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkv::transport::{Pool, Request, Response};
use ringkv_core::wire::ANTI_ENTROPY_PROTOCOL_VERSION;
use ringkv_core::{NodeId, RingEpoch, SiblingSet};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cluster::ClusterView;
use crate::error::{Error, Result};
use crate::node::NodeParts;
use crate::ops::config::{AntiEntropy, Limits};
use crate::ops::counters::NodeCounters;
use crate::request::Replica;
use crate::request::service::{check_key, check_value};
use crate::storage::digests::{Classes, settle_classes};
use pace::Pace;
use sides::{Local, Remote};
use spans::Span;

/// At most this many keys are repaired per exchange; the rest wait for the next one.
const MAX_REPAIRS_PER_EXCHANGE: usize = 10_000;
/// How long a peer gets to answer one anti-entropy request.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause before comparing with a peer that came back (or retrying one that refused).
const DUE_PAUSE: Duration = Duration::from_secs(1);
/// How often an exchange with a peer that came back is tried before the round robin is left
/// to reach it.
const DUE_ATTEMPTS: u32 = 5;

/// What the worker uses of the node.
struct Parts {
    me: NodeId,
    /// A peer's copy is held to this node's key and value limits, as any `Merge` is.
    limits: Limits,
    replica: Arc<Replica>,
    view: watch::Receiver<Arc<ClusterView>>,
    counters: Arc<NodeCounters>,
    pool: Pool,
}

/// Starts the worker for the node `parts` make up; it stops when `shutdown` is cancelled.
pub fn spawn_anti_entropy(
    parts: &NodeParts,
    config: AntiEntropy,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let parts = Parts {
        me: parts.id,
        limits: parts.limits.clone(),
        replica: parts.replica.clone(),
        view: parts.view.clone(),
        counters: parts.counters.clone(),
        pool: parts.pool(),
    };
    tokio::spawn(async move {
        let mut worker = Worker {
            parts,
            config,
            shared: None,
            alive: BTreeSet::new(),
            due: VecDeque::new(),
            round: 0,
        };
        worker.run(&shutdown).await;
    })
}

/// The fragments of the ring this node shares with each peer.
type SharedFragments = BTreeMap<NodeId, Vec<Span>>;

/// The worker's state between exchanges.
struct Worker {
    parts: Parts,
    config: AntiEntropy,
    /// The fragments shared with each peer, for the ring epoch they were computed for.
    shared: Option<(RingEpoch, Arc<SharedFragments>)>,
    /// The peers alive at the last look: one alive now and not then has come back.
    alive: BTreeSet<NodeId>,
    /// Peers to compare with before the round robin goes on (those that came back), with
    /// the attempts made: a peer just back may refuse at first (its ring is catching up).
    due: VecDeque<(NodeId, u32)>,
    round: usize,
}

impl Worker {
    async fn run(&mut self, shutdown: &CancellationToken) {
        if self.config.interval_ms == 0 {
            // No exchanges from this node; its index is still settled, to answer peers'.
            return self.settle_only(shutdown).await;
        }
        let interval = Duration::from_millis(self.config.interval_ms);
        let mut views = self.parts.view.clone();
        let mut next_round = Instant::now() + interval;
        let mut next_due = Instant::now();
        // The first pass looks at once: the index is settled without waiting for a change.
        let mut first = true;
        loop {
            // The round robin waits for the interval; a peer that came back (noticed as soon
            // as the view changes) is compared a second later, and the next one a second
            // after that.
            let wake = if self.due.is_empty() {
                next_round
            } else {
                next_round.min(next_due)
            };
            if !std::mem::take(&mut first) {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = views.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = tokio::time::sleep_until(wake) => {}
                }
            }
            let view = views.borrow_and_update().clone();
            if !view.ready {
                continue;
            }
            // Settled first, whatever else happens: peers' comparisons wait for it.
            if let Err(e) = self.settle(&view).await {
                warn!(error = %e, "anti-entropy could not refile its index; will retry");
                continue;
            }
            let now = Instant::now();
            if self.due.is_empty() {
                next_due = now + DUE_PAUSE;
            }
            self.notice_returns(&view);
            let round = now >= next_round;
            if round {
                next_round = now + interval;
            } else if self.due.is_empty() || now < next_due {
                continue;
            } else {
                next_due = now + DUE_PAUSE;
            }
            let Some((peer, addr, attempts)) = self.next_peer(&view, round) else {
                continue;
            };
            let shared = self.shared(&view).get(&peer).cloned().unwrap_or_default();
            let exchange = Exchange {
                parts: &self.parts,
                view: &view,
                epoch: view.ring.epoch(),
                peer,
                addr: &addr,
                config: &self.config,
                shutdown,
            };
            match exchange.run(shared).await {
                Ok(report) if report.repaired == 0 => {
                    debug!(peer = %peer, ?report, "anti-entropy: replicas agree")
                }
                Ok(report) => info!(peer = %peer, ?report, "anti-entropy repaired keys"),
                Err(e) => {
                    debug!(peer = %peer, error = %e, "anti-entropy exchange failed");
                    if let Some(attempts) = attempts.filter(|a| *a < DUE_ATTEMPTS) {
                        self.due.push_back((peer, attempts + 1));
                    }
                }
            }
        }
    }

    /// Keeps the index settled under the ring's replica counts, exchanging nothing.
    async fn settle_only(&mut self, shutdown: &CancellationToken) {
        let mut views = self.parts.view.clone();
        loop {
            let view = views.borrow_and_update().clone();
            if view.ready
                && let Err(e) = self.settle(&view).await
            {
                warn!(error = %e, "anti-entropy could not refile its index; will retry");
                if !super::pause(DUE_PAUSE, shutdown).await {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = views.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Files the index under the ring's replica counts, refiling what a change moved.
    async fn settle(&self, view: &ClusterView) -> Result<()> {
        let classes = Classes::of(&view.ring.config().buckets);
        let store = self.parts.replica.store().clone();
        if store.digests().is_settled(&classes) {
            return Ok(());
        }
        let moved =
            tokio::task::spawn_blocking(move || settle_classes(store.as_ref(), classes)).await??;
        info!(
            moved,
            "anti-entropy index refiled under the ring's replica counts"
        );
        Ok(())
    }

    /// The live members sharing fragments with this node that speak the span protocol.
    fn peers<'v>(&mut self, view: &'v ClusterView) -> Vec<&'v ringkv_core::Member> {
        let me = self.parts.me;
        let shared = self.shared(view);
        let speaks = |id: &NodeId| {
            view.protocols
                .get(id)
                .copied()
                .flatten()
                .is_some_and(|v| v >= ANTI_ENTROPY_PROTOCOL_VERSION)
        };
        view.ring
            .members()
            .iter()
            .filter(|m| m.id != me && view.alive.contains(&m.id))
            .filter(|m| shared.contains_key(&m.id) && speaks(&m.id))
            .collect()
    }

    /// Queues the peers alive now that were not at the last look: they came back.
    fn notice_returns(&mut self, view: &ClusterView) {
        let alive: BTreeSet<NodeId> = self.peers(view).iter().map(|m| m.id).collect();
        for back in alive.difference(&self.alive) {
            if !self.due.iter().any(|(id, _)| id == back) {
                self.due.push_back((*back, 0));
            }
        }
        self.alive = alive;
    }

    /// The next peer to compare with: one that came back (with the attempts made so far),
    /// else, on a `round`, the next in turn.
    fn next_peer(
        &mut self,
        view: &ClusterView,
        round: bool,
    ) -> Option<(NodeId, String, Option<u32>)> {
        let peers = self.peers(view);
        while let Some((peer, attempts)) = self.due.pop_front() {
            if let Some(m) = peers.iter().find(|m| m.id == peer) {
                return Some((m.id, m.addr.clone(), Some(attempts)));
            }
        }
        if !round {
            return None;
        }
        let m = peers.get(self.round % peers.len().max(1))?;
        self.round = self.round.wrapping_add(1);
        Some((m.id, m.addr.clone(), None))
    }

    /// The fragments shared with each peer under the view's ring (computed once per ring).
    fn shared(&mut self, view: &ClusterView) -> Arc<SharedFragments> {
        let epoch = view.ring.epoch();
        match &self.shared {
            Some((at, shared)) if *at == epoch => shared.clone(),
            _ => {
                let shared = Arc::new(spans::shared_by_peer(&view.ring, self.parts.me));
                self.shared = Some((epoch, shared.clone()));
                shared
            }
        }
    }
}

/// What one exchange did, for the log.
#[derive(Debug, Default)]
#[allow(dead_code)] // Read through `Debug`.
struct Report {
    /// Fragments compared, and those whose summaries differed.
    fragments: usize,
    differing: usize,
    /// Summaries compared, over every level.
    spans: usize,
    /// Keys listed, both sides together.
    listed: usize,
    repaired: usize,
    /// Bytes of questions and answers the comparison exchanged with the peer.
    bytes: u64,
    elapsed: Duration,
}

/// One exchange with one peer. See the module docs.
struct Exchange<'a> {
    parts: &'a Parts,
    /// The view the exchange started on: both sides compare spans of this ring.
    view: &'a Arc<ClusterView>,
    epoch: RingEpoch,
    peer: NodeId,
    addr: &'a str,
    config: &'a AntiEntropy,
    shutdown: &'a CancellationToken,
}

impl Exchange<'_> {
    /// Compares the `shared` fragments and repairs what differs.
    async fn run(&self, shared: Vec<Span>) -> Result<Report> {
        let started = Instant::now();
        let mut report = Report {
            fragments: shared.len(),
            ..Report::default()
        };
        let ours = Local {
            store: self.parts.replica.store().clone(),
            ring: self.view.ring.clone(),
            me: self.parts.me,
            peer: self.peer,
        };
        let theirs = Remote::new(self);
        let found = compare::compare(&ours, &theirs, shared, MAX_REPAIRS_PER_EXCHANGE).await?;
        report.differing = found.fragments_differing;
        report.spans = found.spans_compared;
        report.listed = found.ours.len() + found.theirs.len();
        report.bytes = theirs.bytes();

        let mut pace = Pace::new(self.config.max_keys_per_sec);
        for (bucket, key) in found.differing().into_iter().take(MAX_REPAIRS_PER_EXCHANGE) {
            if self.shutdown.is_cancelled() {
                break;
            }
            let name = (bucket, key);
            if found.ours.contains_key(&name) {
                self.push(&name.0, &name.1).await?;
            }
            if found.theirs.contains_key(&name) {
                self.pull(&name.0, &name.1).await?;
            }
            report.repaired += 1;
            pace.step().await;
        }
        report.elapsed = started.elapsed();
        self.parts.counters.anti_entropy_exchange(
            report.differing as u64,
            report.repaired as u64,
            report.bytes,
        );
        Ok(report)
    }

    async fn call(&self, request: Request) -> Result<Response> {
        let call =
            self.parts
                .pool
                .call_node(self.peer, self.addr, CALL_TIMEOUT, self.epoch, request);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok((response, _))) => Ok(response),
            Ok(Err(source)) => Err(Error::Peer {
                peer: self.addr.to_string(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                peer: self.addr.to_string(),
                after: CALL_TIMEOUT,
            }),
        }
    }

    fn unexpected(&self, request: &'static str, answer: &Response) -> Error {
        Error::UnexpectedAnswer {
            peer: self.addr.to_string(),
            request,
            answer: answer.kind(),
        }
    }

    /// Sends our copy of the key to the peer.
    async fn push(&self, bucket: &str, key: &Bytes) -> Result<()> {
        let store = self.parts.replica.store().clone();
        let (b, k) = (bucket.to_string(), key.clone());
        let Some(record) = tokio::task::spawn_blocking(move || store.get(&b, &k)).await?? else {
            return Ok(()); // Deleted meanwhile (a clean-up): nothing to offer.
        };
        let request = Request::Merge {
            bucket: bucket.to_string(),
            key: key.clone(),
            state: record.state,
            hint: None,
            sync: false,
            entry: false,
            ttl_ms: None,
        };
        match self.call(request).await? {
            Response::Merged => Ok(()),
            other => Err(self.unexpected("Merge", &other)),
        }
    }

    /// Fetches the peer's copy of the key and merges it into ours.
    async fn pull(&self, bucket: &str, key: &Bytes) -> Result<()> {
        let request = Request::Inspect {
            bucket: bucket.to_string(),
            key: key.clone(),
        };
        let state: SiblingSet = match self.call(request).await? {
            Response::Inspection {
                data: Some(state), ..
            } => state,
            Response::Inspection { data: None, .. } => return Ok(()),
            other => return Err(self.unexpected("Inspect", &other)),
        };
        let (replica, epoch) = (self.parts.replica.clone(), self.epoch);
        let limits = self.parts.limits.clone();
        let (bucket, key) = (bucket.to_string(), key.clone());
        let merged = tokio::task::spawn_blocking(move || {
            // Checked as a peer's `Merge` routed by this exchange's ring would be: within the
            // node's limits, and refused once the node has moved to a newer ring (the
            // exchange's ranges no longer hold) or where it is no replica.
            check_key(&limits, &bucket, &key)?;
            for sibling in state.siblings() {
                check_value(&limits, sibling.value.as_ref())?;
            }
            replica.merge_own_copy(epoch, &bucket, &key, &state)
        })
        .await?;
        merged.map_err(|e| Error::Merge {
            peer: self.addr.to_string(),
            source: e,
        })
    }
}
