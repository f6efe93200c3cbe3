//! What the background workers (hinted handoff, transfer, anti-entropy) share: each is a task
//! that wakes every interval until the node shuts down.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Waits `interval`, or less if `shutdown` comes first. Returns whether to go on.
pub(crate) async fn pause(interval: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(interval) => true,
    }
}
