//! Anti-entropy: replicas compare what they hold, range by range, and repair the differences.
//!
//! Hinted handoff and read repair fix what they see; a copy lost on disk, a hint that could
//! not be kept, or a key nobody reads stays wrong until something compares the replicas
//! themselves. Every `anti_entropy.interval_ms` a node picks the next live member it shares
//! ranges with (round robin) and runs one exchange:
//!
//! 1. **Trees.** Each side hashes, for every range of the ring (the keys between two tokens,
//!    which all share one preference list, named by the token that ends it), the keys it
//!    stores there that *both* nodes are home replicas of, each key as a digest of its bucket,
//!    name and encoded state, combined by XOR (so the order of the scan does not matter).
//!    That is a two-level Merkle tree: equal ranges are skipped whole.
//! 2. **Keys.** For the ranges that differ, each side lists `(bucket, key, state digest)`.
//! 3. **Repair.** Every key whose digests differ, or that one side lacks, is sent both ways
//!    with `Merge`: ours to the peer, the peer's (fetched with `Inspect`) merged here. `Merge`
//!    is idempotent and commutative, so a repair can never lose an update, and one exchange
//!    makes both copies equal.
//!
//! Exchanges run only on a settled ring (no transfer under way: streaming is the mechanism
//! then) and only between nodes on the same ring epoch, so both sides compute the same ranges.
//! Repairs are rate-limited by `anti_entropy.max_keys_per_sec` and bounded per exchange.
//!
//! The trees are computed by scanning the store at each exchange: O(data) per exchange,
//! which the interval keeps affordable for the sizes this project tests. Keeping the leaf
//! hashes up to date on every write (as Riak's hashtrees do) is the next step for large
//! stores.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkv::transport::{Pool, Request, Response};
use ringkv_core::hash::{digest, key_position};
use ringkv_core::{NodeId, Ring, RingEpoch, SiblingSet};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::AntiEntropy;
use crate::service::Service;
use crate::storage::{DataKey, StoreError, encode_state};

/// Keys read from the store per step of a scan.
const SCAN_BATCH: usize = 1024;
/// At most this many keys are repaired per exchange; the rest wait for the next one.
const MAX_REPAIRS_PER_EXCHANGE: usize = 10_000;
/// How long a peer gets to answer one anti-entropy request (a tree is a full scan).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `(range, hash)` for every range where this node stores keys `peer` is also a home of.
pub fn tree(service: &Service, peer: NodeId) -> Result<Vec<(u64, u64)>, StoreError> {
    let mut ranges: BTreeMap<u64, u64> = BTreeMap::new();
    shared_keys(service, peer, |range, key, state_digest| {
        *ranges.entry(range).or_default() ^= key_digest(key, state_digest);
    })?;
    Ok(ranges.into_iter().collect())
}

/// `(bucket, key, state digest)` for every key in `ranges` this node stores that `peer` is
/// also a home of, sorted.
pub fn keys(
    service: &Service,
    peer: NodeId,
    ranges: &[u64],
) -> Result<Vec<(String, Bytes, u64)>, StoreError> {
    let mut out = Vec::new();
    shared_keys(service, peer, |range, key, state_digest| {
        if ranges.binary_search(&range).is_ok() {
            out.push((
                key.bucket.clone(),
                Bytes::from(key.key.clone()),
                state_digest,
            ));
        }
    })?;
    out.sort();
    Ok(out)
}

/// Calls `each(range, key, state digest)` for every key this node stores of which both it
/// and `peer` are home replicas under its current ring.
fn shared_keys(
    service: &Service,
    peer: NodeId,
    mut each: impl FnMut(u64, &DataKey, u64),
) -> Result<(), StoreError> {
    let ring = service.view().ring.clone();
    let me = service.node();
    let mut after: Option<DataKey> = None;
    loop {
        let batch = service.store().scan(after.as_ref(), SCAN_BATCH)?;
        let Some((last, _, _)) = batch.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (key, state, _) in &batch {
            if let Some(range) = shared_range(&ring, me, peer, key) {
                each(range, key, digest(&encode_state(state)));
            }
        }
    }
}

/// The range of `key` if both `me` and `peer` are among its home replicas.
fn shared_range(ring: &Ring, me: NodeId, peer: NodeId, key: &DataKey) -> Option<u64> {
    let homes = ring.home_replicas(&key.bucket, &key.key);
    let both = homes.iter().any(|m| m.id == me) && homes.iter().any(|m| m.id == peer);
    if !both {
        return None;
    }
    ring.range_of(key_position(key.bucket.as_bytes(), &key.key))
}

fn key_digest(key: &DataKey, state_digest: u64) -> u64 {
    let mut bytes = Vec::with_capacity(key.bucket.len() + key.key.len() + 12);
    bytes.extend_from_slice(&(key.bucket.len() as u32).to_be_bytes());
    bytes.extend_from_slice(key.bucket.as_bytes());
    bytes.extend_from_slice(&key.key);
    bytes.extend_from_slice(&state_digest.to_be_bytes());
    digest(&bytes)
}

/// Starts the worker; it stops when `shutdown` is cancelled.
pub fn spawn_anti_entropy(
    service: Arc<Service>,
    config: AntiEntropy,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if config.interval_ms == 0 {
            return; // Disabled.
        }
        let pool = service.outbound_pool();
        let interval = Duration::from_millis(config.interval_ms);
        let mut round = 0usize;
        loop {
            if !crate::worker::pause(interval, &shutdown).await {
                return;
            }
            let view = service.view();
            if !view.ready || view.ring.transition().is_some() {
                continue;
            }
            let me = service.node();
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
                service: &service,
                pool: &pool,
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
    service: &'a Arc<Service>,
    pool: &'a Pool,
    epoch: RingEpoch,
    peer: NodeId,
    addr: &'a str,
    config: &'a AntiEntropy,
    shutdown: &'a CancellationToken,
}

impl Exchange<'_> {
    /// Returns how many keys it repaired.
    async fn run(&self) -> anyhow::Result<usize> {
        let (service, peer, me) = (self.service.clone(), self.peer, self.service.node());
        let mine: BTreeMap<u64, u64> = tokio::task::spawn_blocking(move || tree(&service, peer))
            .await??
            .into_iter()
            .collect();
        let theirs: BTreeMap<u64, u64> = match self.call(Request::AeTree { peer: me }).await? {
            Response::AeTree { ranges } => ranges.into_iter().collect(),
            other => anyhow::bail!("unexpected answer to AeTree: {other:?}"),
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
            self.service.record_anti_entropy(0, 0);
            return Ok(0);
        }

        let (service, ranges) = (self.service.clone(), differing.clone());
        let mine: BTreeMap<(String, Bytes), u64> =
            tokio::task::spawn_blocking(move || keys(&service, peer, &ranges))
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
            other => anyhow::bail!("unexpected answer to AeKeys: {other:?}"),
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
        self.service
            .record_anti_entropy(differing.len() as u64, repaired as u64);
        Ok(repaired)
    }

    async fn call(&self, request: Request) -> anyhow::Result<Response> {
        let call = self.pool.call(self.addr, CALL_TIMEOUT, self.epoch, request);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok((response, _))) => Ok(response),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => anyhow::bail!("no answer within {CALL_TIMEOUT:?}"),
        }
    }

    /// Sends our copy of the key to the peer.
    async fn push(&self, bucket: &str, key: &Bytes) -> anyhow::Result<()> {
        let store = self.service.store().clone();
        let (b, k) = (bucket.to_string(), key.clone());
        let Some(state) = tokio::task::spawn_blocking(move || store.get(&b, &k)).await?? else {
            return Ok(()); // Deleted meanwhile (a clean-up): nothing to offer.
        };
        let request = Request::Merge {
            bucket: bucket.to_string(),
            key: key.clone(),
            state,
            hint: None,
            sync: false,
        };
        match self.call(request).await? {
            Response::Merged => Ok(()),
            other => anyhow::bail!("unexpected answer to Merge: {other:?}"),
        }
    }

    /// Fetches the peer's copy of the key and merges it into ours.
    async fn pull(&self, bucket: &str, key: &Bytes) -> anyhow::Result<()> {
        let request = Request::Inspect {
            bucket: bucket.to_string(),
            key: key.clone(),
        };
        let state: SiblingSet = match self.call(request).await? {
            Response::Inspection {
                data: Some(state), ..
            } => state,
            Response::Inspection { data: None, .. } => return Ok(()),
            other => anyhow::bail!("unexpected answer to Inspect: {other:?}"),
        };
        let (service, epoch) = (self.service.clone(), self.epoch);
        let merge = Request::Merge {
            bucket: bucket.to_string(),
            key: key.clone(),
            state,
            hint: None,
            sync: false,
        };
        tokio::task::spawn_blocking(move || service.handle(epoch, merge)).await??;
        Ok(())
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
