//! The retry loop around every read and write attempt.
//!
//! An attempt that fails with an error that may pass (unreachable nodes, quorum misses,
//! timeouts: [`Error::is_retryable`]) is made again after a jittered exponential back-off,
//! at most `ClientConfig::retries` more times and only while the call's deadline allows. A
//! request refused with `StaleRing` (or `NotOwner`: a misrouted copy) refetches the ring (from
//! a node at least that new) and retries at once; again if a later refusal names a newer
//! ring still, at most [`MAX_REFETCHES`] times. A retry that ends in an error other than a quorum miss or a timeout
//! (`Unavailable` or `NoRing` with nothing sent, `ContextRequired` from another coordinator, a
//! refetch that fails) never hides an earlier attempt that reached replicas (a `StaleRing`
//! refusal included: the other replicas of that attempt may have applied the write): the
//! caller gets that attempt's `Quorum` error, which says whether the write is in doubt.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ringkv_core::RingEpoch;
use ringkv_core::wire::WireError;
use tokio::time::Instant;
use tracing::debug;

use crate::error::{Error, Result};
use crate::inner::Inner;

/// Runs `op`, again after a jittered back-off while it fails with a retryable error and the
/// deadline allows, at most `retries` more times; a `StaleRing` refusal refetches the ring and
/// retries at once (again for a newer ring still, up to [`MAX_REFETCHES`]).
pub(super) async fn with_retries<T, F, Fut>(
    inner: &Arc<Inner>,
    deadline: Instant,
    op: F,
) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0u32;
    // The newest epoch a refusal named that the ring was refetched for, and how many times:
    // a ring that moves on again (two changes in a row) is refetched again, a few times.
    let mut refetched: Option<RingEpoch> = None;
    let mut refetches = 0u32;
    // The last error that says what happened at the replicas, so that a retry that ends in
    // `Unavailable` (nothing sent) cannot hide an earlier attempt that reached some of them.
    let mut informative: Option<Error> = None;
    loop {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        if let Some(newer) = stale_ring(&error)
            && refetched.is_none_or(|last| newer.is_newer_than(&last))
            && refetches < MAX_REFETCHES
        {
            debug!(%newer, "a node refused a request routed by an older ring; refetching");
            refetched = Some(newer);
            refetches += 1;
            // Other replicas of that attempt may have applied the write: whatever the retry
            // ends in, the caller must still learn that it may have been applied.
            if matches!(error, Error::Quorum { .. }) {
                informative = Some(error);
            }
            if let Err(e) = inner
                .ring
                .refresh(&inner.pool, inner.config.connect_timeout, newer)
                .await
            {
                return Err(informative.take().unwrap_or(e));
            }
            continue;
        }
        // An earlier attempt reached replicas: unless this one says as much itself (a quorum
        // miss or a timeout, whose `in_doubt` the caller marks), its error is the one to give.
        let error = match error {
            Error::Quorum { .. } | Error::Timeout { .. } => error,
            other => informative.take().unwrap_or(other),
        };
        let pause = backoff(attempt);
        // `Unavailable` comes from what the client already knows about the replicas, before
        // anything is sent; a retry milliseconds later would know the same (probes take a
        // back-off period), so the call fails fast instead, as strict mode promises.
        let unavailable = matches!(error, Error::Unavailable { .. });
        if unavailable
            || !error.is_retryable()
            || attempt >= inner.config.retries
            || Instant::now() + pause >= deadline
        {
            return Err(error);
        }
        debug!(attempt, error = %error, "retrying");
        inner.stats.retries.fetch_add(1, Ordering::Relaxed);
        if matches!(error, Error::Quorum { .. }) {
            informative = Some(error);
        }
        attempt += 1;
        tokio::time::sleep(pause).await;
    }
}

/// Ring refetches one call makes at most for refusals naming ever newer rings.
const MAX_REFETCHES: u32 = 3;

/// Back-off before retry `attempt` (0-based): 25 ms doubling, capped at 500 ms, ±50% jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(25).saturating_mul(1 << attempt.min(5));
    base.min(Duration::from_millis(500))
        .mul_f64(crate::random::jitter())
}

/// The newest ring epoch a `StaleRing` or `NotOwner` refusal in `e` named, if any: either
/// way the client's plan was wrong, and a fresh ring makes a new one.
fn stale_ring(e: &Error) -> Option<RingEpoch> {
    match e {
        Error::Server(WireError::StaleRing { epoch } | WireError::NotOwner { epoch }) => {
            Some(*epoch)
        }
        Error::Quorum { errors, .. } => errors.iter().filter_map(|n| stale_ring(&n.error)).max(),
        _ => None,
    }
}
