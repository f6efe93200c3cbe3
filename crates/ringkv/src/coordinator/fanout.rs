//! Sending to replicas: one request to one target ([`send`]), or to several in parallel
//! ([`Fanout`]).
//!
//! Every request of a call goes through [`send`]: it is bounded by `request_timeout`, its
//! outcome feeds the failure detector, and a newer ring epoch on its answer triggers a ring
//! refetch, whether or not the call is still waiting for it.
//!
//! A [`Fanout`] is how reads, writes and read repair talk to several replicas at once: the
//! requests run concurrently, answers come out in the order they arrive, and the caller stops
//! taking them as soon as its quorum is decided. What becomes of the requests still in flight
//! then is the one thing that differs, and each fan-out says it up front ([`Leftovers`]): a
//! read hands its fan-out to read repair, which waits for the late answers until the call's
//! deadline and then drops them; a write's merges run to completion in the background, even
//! when the caller stopped waiting, because every target should hold the write, not only the
//! first `W`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ringkv_core::RingEpoch;
use ringkv_core::wire::{Request, Response};
use tokio::time::Instant;

use super::plan::Target;
use crate::error::{Error, NodeError, Result};
use crate::inner::Inner;
use crate::ring_cache;

/// What one target answered: the response and the node's ring epoch, or the failure.
pub(super) type Answer = (Target, Result<(Response, RingEpoch)>);

/// One request under way.
type InFlight = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// Sends one request to one target, within `request_timeout`, and feeds the outcome to the
/// failure detector (and a newer epoch to the ring cache).
pub(super) fn send(
    inner: &Arc<Inner>,
    target: Target,
    epoch: RingEpoch,
    body: Request,
) -> InFlight {
    let inner = inner.clone();
    Box::pin(async move {
        let call = inner.pool.call_node(
            target.member.id,
            &target.member.addr,
            inner.config.connect_timeout,
            epoch,
            body,
        );
        let result = match tokio::time::timeout(inner.config.request_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout { in_doubt: true }),
        };
        inner
            .health
            .record(target.member.id, result.as_ref().map(|_| ()));
        if let Ok((_, seen)) = &result {
            ring_cache::note_epoch(&inner, *seen);
        }
        (target, result)
    })
}

/// A failure of `target`, for a quorum error's list.
pub(super) fn node_error(target: &Target, error: Error) -> NodeError {
    NodeError::new(target.member.id, error)
}

/// What becomes of a [`Fanout`]'s requests still in flight when it is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Leftovers {
    /// They are abandoned: late answers to reads and repairs matter only until the call's
    /// deadline, and whoever holds the fan-out waits for them that long itself.
    Abandon,
    /// They run to completion on a task of their own: a write's merges, so that every target
    /// gets the write, not only the first `W` to acknowledge it.
    Finish,
}

/// Requests to several targets in parallel, their answers taken as they arrive.
///
/// The requests make progress while the holder waits on [`Fanout::next`] (or, for
/// [`Leftovers::Finish`], on a spawned task once the fan-out is dropped); sending more while
/// others are under way (a spare replacing a failed target) is fine.
pub(super) struct Fanout {
    inner: Arc<Inner>,
    epoch: RingEpoch,
    in_flight: FuturesUnordered<InFlight>,
    leftovers: Leftovers,
}

impl Fanout {
    /// An empty fan-out whose requests carry `epoch` (the ring the call's plan was made by).
    pub(super) fn new(inner: &Arc<Inner>, epoch: RingEpoch, leftovers: Leftovers) -> Fanout {
        Fanout {
            inner: inner.clone(),
            epoch,
            in_flight: FuturesUnordered::new(),
            leftovers,
        }
    }

    /// Sends `body` to `target`, alongside the requests already under way.
    pub(super) fn send(&mut self, target: Target, body: Request) {
        self.in_flight
            .push(send(&self.inner, target, self.epoch, body));
    }

    /// The next answer to arrive; `None` once every request has been answered.
    pub(super) async fn next(&mut self) -> Option<Answer> {
        self.in_flight.next().await
    }

    /// As [`Fanout::next`], but `None` also once `deadline` has passed.
    pub(super) async fn next_until(&mut self, deadline: Instant) -> Option<Answer> {
        tokio::time::timeout_at(deadline, self.in_flight.next())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        if self.leftovers == Leftovers::Abandon || self.in_flight.is_empty() {
            return;
        }
        let mut rest = std::mem::take(&mut self.in_flight);
        // Dropped outside a runtime (only when the runtime itself is going away) the requests
        // could not complete anyway.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { while rest.next().await.is_some() {} });
        }
    }
}
