//! Anti-entropy: replicas compare what they hold, range by range, and repair the differences.
//!
//! Hinted handoff and read repair fix what they see; a copy lost on disk, a hint that could
//! not be kept, or a key nobody reads stays wrong until something compares the replicas
//! themselves. Every `anti_entropy.interval_ms` a node picks the next live member it shares
//! ranges with (round robin) and runs one exchange:
//!
//! 1. **Trees.** Each side hashes, for every range of the ring, the keys it stores there that
//!    *both* nodes are home replicas of ([`digest::tree`]): equal ranges are skipped whole.
//! 2. **Keys.** For the ranges that differ, each side lists `(bucket, key, state digest)`.
//! 3. **Repair.** Every key whose digests differ, or that one side lacks, is sent both ways
//!    with `Merge`: ours to the peer, the peer's (fetched with `Inspect`) merged here. `Merge`
//!    is idempotent and commutative, so a repair can never lose an update, and one exchange
//!    makes both copies equal.
//!
//! Exchanges run between nodes on the same ring epoch, so both sides compute the same ranges.
//! During a transfer they compare only the keys not in transit (whose homes are the same
//! under both rings, see `digest`): moving keys are the transfer's business, and the rest
//! of the data keeps its repairs while a long transfer runs.
//! Repairs are rate-limited by `anti_entropy.max_keys_per_sec` and bounded per exchange.
//!
//! The trees are computed by scanning the store at each exchange: O(data) per exchange,
//! which the interval keeps affordable for the sizes this project tests. Keeping the leaf
//! hashes up to date on every write (as Riak's hashtrees do) is the next step for large
//! stores.

pub mod digest;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkv::transport::{Pool, Request, Response};
use ringkv_core::wire::WireError;
use ringkv_core::{NodeId, RingEpoch, SiblingSet};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::cluster::ClusterView;
use crate::error::{Error, Result};
use crate::node::NodeParts;
use crate::ops::config::{AntiEntropy, Limits};
use crate::ops::counters::NodeCounters;
use crate::request::Replica;
use crate::request::service::{check_key, check_value};

/// At most this many keys are repaired per exchange; the rest wait for the next one.
const MAX_REPAIRS_PER_EXCHANGE: usize = 10_000;
/// How long a peer gets to answer one anti-entropy request (a tree is a full scan).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

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
        if config.interval_ms == 0 {
            return; // Disabled.
        }
        let interval = Duration::from_millis(config.interval_ms);
        let mut round = 0usize;
        let me = parts.me;
        loop {
            if !super::pause(interval, &shutdown).await {
                return;
            }
            let view = parts.view.borrow().clone();
            if !view.ready {
                continue;
            }
            let peers: Vec<(NodeId, String)> = view
                .ring
                .members()
                .iter()
                .filter(|m| m.id != me && view.alive.contains(&m.id))
                .map(|m| (m.id, m.addr.clone()))
                .collect();
            if peers.is_empty() {
                continue;
            }
            let (peer, addr) = &peers[round % peers.len()];
            round = round.wrapping_add(1);
            let exchange = Exchange {
                parts: &parts,
                view: &view,
                epoch: view.ring.epoch(),
                peer: *peer,
                addr,
                config: &config,
                shutdown: &shutdown,
            };
            match exchange.run().await {
                Ok(0) => debug!(peer = %peer, "anti-entropy: replicas agree"),
                Ok(repaired) => info!(peer = %peer, repaired, "anti-entropy repaired keys"),
                Err(e) => debug!(peer = %peer, error = %e, "anti-entropy exchange failed"),
            }
        }
    })
}

/// One exchange with one peer. See the module docs.
struct Exchange<'a> {
    parts: &'a Parts,
    /// The view the exchange started on: both sides compare ranges of this ring.
    view: &'a Arc<ClusterView>,
    epoch: RingEpoch,
    peer: NodeId,
    addr: &'a str,
    config: &'a AntiEntropy,
    shutdown: &'a CancellationToken,
}

impl Exchange<'_> {
    /// Returns how many keys it repaired.
    async fn run(&self) -> Result<usize> {
        let (peer, me) = (self.peer, self.parts.me);
        let (store, ring) = (self.parts.replica.store().clone(), self.view.ring.clone());
        let mine: BTreeMap<u64, u64> =
            tokio::task::spawn_blocking(move || digest::tree(&store, &ring, me, peer))
                .await??
                .into_iter()
                .collect();
        let theirs: BTreeMap<u64, u64> = match self.call(Request::AeTree { peer: me }).await? {
            Response::AeTree { ranges } => ranges.into_iter().collect(),
            other => return Err(self.unexpected("AeTree", &other)),
        };
        let mut differing: Vec<u64> = mine
            .iter()
            .filter(|(r, h)| theirs.get(r) != Some(h))
            .map(|(r, _)| *r)
            .chain(theirs.keys().filter(|r| !mine.contains_key(r)).copied())
            .collect();
        differing.sort_unstable();
        differing.dedup();
        if differing.is_empty() {
            self.parts.counters.anti_entropy_exchange(0, 0);
            return Ok(0);
        }

        let (store, ring) = (self.parts.replica.store().clone(), self.view.ring.clone());
        let ranges = differing.clone();
        let mine: BTreeMap<(String, Bytes), u64> =
            tokio::task::spawn_blocking(move || digest::keys(&store, &ring, me, peer, &ranges))
                .await??
                .into_iter()
                .map(|(b, k, d)| ((b, k), d))
                .collect();
        let request = Request::AeKeys {
            peer: me,
            ranges: differing.clone(),
        };
        let theirs: BTreeMap<(String, Bytes), u64> = match self.call(request).await? {
            Response::AeKeys { keys } => keys.into_iter().map(|(b, k, d)| ((b, k), d)).collect(),
            other => return Err(self.unexpected("AeKeys", &other)),
        };
        let mut stale: Vec<&(String, Bytes)> = mine
            .iter()
            .filter(|(k, d)| theirs.get(*k) != Some(d))
            .map(|(k, _)| k)
            .chain(theirs.keys().filter(|k| !mine.contains_key(*k)))
            .collect();
        stale.sort();
        stale.dedup();

        let started = Instant::now();
        let mut repaired = 0;
        for (bucket, key) in stale.into_iter().take(MAX_REPAIRS_PER_EXCHANGE) {
            if self.shutdown.is_cancelled() {
                break;
            }
            if mine.contains_key(&(bucket.clone(), key.clone())) {
                self.push(bucket, key).await?;
            }
            if theirs.contains_key(&(bucket.clone(), key.clone())) {
                self.pull(bucket, key).await?;
            }
            repaired += 1;
            self.throttle(repaired, started).await;
        }
        self.parts
            .counters
            .anti_entropy_exchange(differing.len() as u64, repaired as u64);
        Ok(repaired)
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
        let (replica, view, epoch) = (
            self.parts.replica.clone(),
            self.parts.view.clone(),
            self.epoch,
        );
        let limits = self.parts.limits.clone();
        let (bucket, key) = (bucket.to_string(), key.clone());
        let merged = tokio::task::spawn_blocking(move || {
            // Checked as a peer's `Merge` routed by this exchange's ring would be: within the
            // node's limits, and refused once the node has moved to a newer ring (the
            // exchange's ranges no longer hold).
            check_key(&limits, &bucket, &key)?;
            for sibling in state.siblings() {
                check_value(&limits, sibling.value.as_ref())?;
            }
            let ours = view.borrow().ring.epoch();
            if epoch < ours {
                return Err(WireError::StaleRing { epoch: ours });
            }
            replica.merge(&bucket, &key, &state)
        })
        .await?;
        merged.map_err(|e| Error::Merge {
            peer: self.addr.to_string(),
            source: e,
        })
    }

    async fn throttle(&self, repaired: usize, since: Instant) {
        let rate = self.config.max_keys_per_sec;
        if rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(repaired as f64 / rate as f64);
        let spent = since.elapsed();
        if due > spent {
            tokio::time::sleep(due - spent).await;
        }
    }
}
