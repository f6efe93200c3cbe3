//! The client's copy of the ring and of who is alive.
//!
//! Fetched from any seed at start, refetched in the background every
//! `ClientConfig::ring_refresh_interval`, and at once when a response carries a newer ring
//! epoch than ours. A refetch asks the ring's own members first (the live cluster), then the
//! seeds, until one answers with a ring at least as new as ours (and as the epoch that
//! prompted it, if any): epochs are ordered, and a client never goes back to an older ring.
//! Concurrent triggers share one refetch.
//!
//! [`RingCache`] holds the ring and fetches it; [`note_epoch`] and [`refresh_periodically`]
//! are the two triggers that run in the background of a client.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use ringkv_core::wire::{Request, Response};
use ringkv_core::{NodeId, Ring, RingEpoch};
use tracing::{debug, info};

use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::transport::Pool;

/// A ring and the liveness that came with it.
#[derive(Debug)]
pub(crate) struct ClusterState {
    pub ring: Arc<Ring>,
    /// Members the answering server considered alive.
    pub alive: HashSet<NodeId>,
}

#[derive(Debug)]
pub(crate) struct RingCache {
    seeds: Vec<String>,
    /// Swapped whole on refresh; readers clone the `Arc` and let go at once.
    state: RwLock<Arc<ClusterState>>,
    /// Set while a refetch is under way, so that a burst of stale responses makes one.
    refreshing: AtomicBool,
    refreshes: AtomicU64,
}

impl RingCache {
    pub(crate) fn new(seeds: Vec<String>) -> RingCache {
        RingCache {
            seeds,
            state: RwLock::new(Arc::new(ClusterState {
                ring: Arc::new(Ring::empty()),
                alive: HashSet::new(),
            })),
            refreshing: AtomicBool::new(false),
            refreshes: AtomicU64::new(0),
        }
    }

    pub(crate) fn current(&self) -> Arc<ClusterState> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// Refetches unless another refetch is already running (then returns at once).
    pub(crate) async fn refresh_once(&self, pool: &Pool, timeout: Duration) -> Result<()> {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.refresh(pool, timeout, RingEpoch::default()).await;
        self.refreshing.store(false, Ordering::Release);
        result
    }

    /// Fetches the ring from the first member or seed that answers with one at least as new
    /// as ours and as `at_least`.
    pub(crate) async fn refresh(
        &self,
        pool: &Pool,
        timeout: Duration,
        at_least: RingEpoch,
    ) -> Result<()> {
        let current = self.current();
        let wanted = at_least.max(current.ring.epoch());
        let mut candidates: Vec<String> = current
            .ring
            .members()
            .iter()
            .map(|m| m.addr.clone())
            .collect();
        // Ask members believed alive first.
        candidates.sort_by_key(|addr| {
            !current
                .ring
                .members()
                .iter()
                .any(|m| &m.addr == addr && current.alive.contains(&m.id))
        });
        for seed in &self.seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let mut last_error = String::from("no seeds configured");
        // If every node answered in a protocol we do not speak, that is the error to report:
        // "could not fetch the ring" would hide a version mismatch or a wrong port.
        let mut protocol_errors: Vec<Error> = Vec::new();
        for addr in &candidates {
            let call = pool.call(addr, timeout, current.ring.epoch(), Request::Ring);
            match tokio::time::timeout(timeout, call).await {
                Ok(Ok((Response::Ring(snapshot), _))) => match Ring::new(snapshot.config) {
                    // A rival of ours (same version, another digest) is what the nodes
                    // settled on when they refuse ours: take it.
                    Ok(ring) if !wanted.is_newer_than(&ring.epoch()) => {
                        self.install(ring, snapshot.alive.into_iter().collect());
                        return Ok(());
                    }
                    Ok(ring) => {
                        last_error = format!("{addr} is behind (ring {})", ring.epoch());
                    }
                    Err(e) => last_error = format!("{addr} sent an invalid ring: {e}"),
                },
                Ok(Ok((other, _))) => last_error = format!("{addr} answered {other:?}"),
                Ok(Err(e)) => {
                    last_error = e.to_string();
                    if matches!(e, Error::Protocol(_)) {
                        protocol_errors.push(e);
                    }
                }
                Err(_) => last_error = format!("{addr} did not answer within {timeout:?}"),
            }
            debug!(addr, error = %last_error, "ring fetch failed");
        }
        if protocol_errors.len() == candidates.len()
            && let Some(e) = protocol_errors.pop()
        {
            return Err(e);
        }
        Err(Error::NoRing {
            tried: candidates,
            reason: last_error,
        })
    }

    fn install(&self, ring: Ring, alive: HashSet<NodeId>) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if state.ring.epoch() != ring.epoch() {
            info!(epoch = %ring.epoch(), members = ring.members().len(), "ring updated");
        }
        *state = Arc::new(ClusterState {
            ring: Arc::new(ring),
            alive,
        });
        self.refreshes.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether `epoch`, seen on a response, says our ring is out of date.
    pub(crate) fn is_stale(&self, epoch: RingEpoch) -> bool {
        epoch.is_newer_than(&self.current().ring.epoch())
    }
}

/// Refetches the ring in the background if `epoch`, seen on a response, is newer than ours.
pub(crate) fn note_epoch(inner: &Arc<Inner>, epoch: RingEpoch) {
    if inner.ring.is_stale(epoch) {
        let inner = inner.clone();
        tokio::spawn(async move { refresh_logged(&inner, "ring refetch after a new epoch").await });
    }
}

/// Refetches the ring every `ring_refresh_interval` while any clone of the client lives.
pub(crate) async fn refresh_periodically(inner: Weak<Inner>) {
    let Some(interval) = inner.upgrade().map(|i| i.config.ring_refresh_interval) else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        refresh_logged(&inner, "periodic ring refresh").await;
    }
}

/// Refetches the ring unless a refetch is under way; a failure is only logged (the ring in
/// use stays, and the next trigger tries again).
async fn refresh_logged(inner: &Inner, why: &'static str) {
    if let Err(e) = inner
        .ring
        .refresh_once(&inner.pool, inner.config.connect_timeout)
        .await
    {
        debug!(error = %e, why, "ring refetch failed");
    }
}
