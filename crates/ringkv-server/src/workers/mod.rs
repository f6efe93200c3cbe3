//! What a node does in the background, each a task that wakes every interval until the node
//! shuts down, plus the group committer that durable writes wait on.
//!
//! - [`handoff`]: hands the writes this node took as a fallback back to their home nodes.
//! - [`transfer`]: after a membership change, streams data to its new owners, then cleans up.
//! - [`antientropy`]: compares this node's data with a peer's range by range and repairs
//!   differences; its digests ([`antientropy::digest`]) also answer a peer's `AeTree` and
//!   `AeKeys` requests.
//! - [`purge`]: removes keys that hold only tombstones and expired values, once nothing can
//!   bring back what they superseded.
//! - [`commit`]: one log sync shared by every durable write waiting at that moment.
//!
//! Each worker takes the parts of the node it needs ([`crate::node::NodeParts`]): the replica,
//! the cluster view, the node's counters, an outbound connection pool.

pub mod antientropy;
pub mod commit;
pub mod handoff;
pub mod purge;
pub mod transfer;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Waits `interval`, or less if `shutdown` comes first. Returns whether to go on.
pub(crate) async fn pause(interval: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(interval) => true,
    }
}
