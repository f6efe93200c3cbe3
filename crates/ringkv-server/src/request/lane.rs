//! Where a request runs, decided in one place ([`lane`]), and running it there.
//!
//! A read (from the memtable or the block cache, or at worst one disk read) or a write that
//! need not wait for a sync is answered by the connection's own task: on this hardware handing
//! a request to another thread costs two wake-ups, more than the request itself, and removing
//! that hand-off halved a quorum get's latency. Writes are never throttled on that path (see
//! `storage::rocks`: RocksDB's `no_slowdown` turns a stall into `Overloaded`). Every other
//! request gets a task of its own: a durable write is written there and then waits for the
//! group commit, proxy mode's coordination waits on the network, and scans and membership
//! operations run on a blocking thread.

use std::sync::Arc;
use std::time::Instant;

use ringkv_core::RingEpoch;
use ringkv_core::wire::{Request, Response, WireError};
use tracing::warn;

use crate::ops::metrics::Metrics;
use crate::request::replica::store_error;
use crate::request::service::Service;

/// Where one request runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// On the connection's task, answered at once: reads, pings, the ring, unsynced writes
    /// (and a put that defers its sync: the caller's merge to this node waits for it).
    Inline,
    /// Written on a task of its own, then waits for the group commit's log sync.
    Durable,
    /// On the async path: proxy mode's coordination waits on the network.
    Coordinate,
    /// On a blocking thread: scans, statistics, membership operations.
    Blocking,
}

/// Where `request` runs on a node whose writes are all durable (`durable_writes`, the
/// `fsync` setting) or only those that ask (`sync`, the SDK's `dw`).
pub fn lane(request: &Request, durable_writes: bool) -> Lane {
    match request {
        Request::Get { .. } | Request::Ring | Request::Ping => Lane::Inline,
        Request::Put {
            defer_sync: true, ..
        } => Lane::Inline,
        Request::Put { sync, .. } | Request::Merge { sync, .. } => {
            if durable_writes || *sync {
                Lane::Durable
            } else {
                Lane::Inline
            }
        }
        // A touch is a small write: like an unsynced merge, unless every write is durable.
        // One that carries a read's state (the replica lacked it) is merged off the
        // connection's task, as large as that state may be.
        Request::Touch { state: Some(_), .. } => Lane::Blocking,
        Request::Touch { .. } if durable_writes => Lane::Durable,
        Request::Touch { .. } => Lane::Inline,
        Request::Coordinate(_) => Lane::Coordinate,
        // A batch of gets is answered on the connection's task if it is short; anything else
        // in one is refused (`Service::batch`), on a blocking thread like a long batch, and
        // never looked into here: nested batches must not cost a lane's worth each.
        Request::Batch { requests } => {
            let short = requests.len() <= MAX_INLINE_BATCH;
            if short && requests.iter().all(|r| matches!(r, Request::Get { .. })) {
                Lane::Inline
            } else {
                Lane::Blocking
            }
        }
        _ => Lane::Blocking,
    }
}

/// The most gets a batch answered on the connection's task may carry: a larger one would
/// hold up the connection's other requests (up to 1,024 disk reads), so it goes to a
/// blocking thread.
const MAX_INLINE_BATCH: usize = 64;

/// Runs an [`Lane::Inline`] request on the calling task, measured.
pub fn run_inline(
    service: &Service,
    metrics: &Metrics,
    epoch: RingEpoch,
    request: Request,
) -> Result<Response, WireError> {
    let name = request.kind();
    let started = Instant::now();
    let result = service.handle(epoch, request);
    metrics.observe(name, started.elapsed(), result.is_ok());
    result
}

/// Runs a request in `lane` (any but [`Lane::Inline`]), measured.
pub async fn run(
    service: Arc<Service>,
    metrics: &Metrics,
    lane: Lane,
    epoch: RingEpoch,
    request: Request,
) -> Result<Response, WireError> {
    let name = request.kind();
    let started = Instant::now();
    let result = match (lane, request) {
        (_, Request::Coordinate(op)) => service.coordinate(op).await,
        (Lane::Inline, request) => service.handle(epoch, request),
        (Lane::Durable, request) => handle_durable(&service, epoch, request).await,
        (Lane::Coordinate | Lane::Blocking, request) => {
            let handler = service.clone();
            tokio::task::spawn_blocking(move || handler.handle(epoch, request))
                .await
                .unwrap_or_else(|e| {
                    warn!(error = %e, "request handler failed");
                    Err(WireError::Storage {
                        reason: "the request handler failed".into(),
                    })
                })
        }
    };
    metrics.observe(name, started.elapsed(), result.is_ok());
    result
}

/// Handles a write (unsynced, on the calling thread), then waits for the group committer to
/// sync the log: one sync serves every durable write waiting at that moment. A merge that
/// changed nothing waits too: the copy it found may not be on disk yet.
pub async fn handle_durable(
    service: &Service,
    epoch: RingEpoch,
    request: Request,
) -> Result<Response, WireError> {
    let response = service.handle(epoch, request)?;
    service
        .group_commit()?
        .durable()
        .await
        .map_err(store_error)?;
    Ok(response)
}
