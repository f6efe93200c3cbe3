//! Which ring a request was routed by, and whether this node may serve it: refusing older
//! rings and rivals (`StaleRing`), catching up with a newer one before judging a copy, and
//! refusing copies of keys this node does not own (`NotOwner`, `NotReady`).

use std::time::Duration;

use ringkv_core::wire::{Request, WireError};
use ringkv_core::{NodeId, Ring, RingEpoch};
use tracing::debug;

use super::{Service, not_ready_reason};

/// How long a copy routed by a newer ring than this node's waits for the node to fetch it
/// (see [`Service::catch_up`]). Well under the SDK's request timeout: a node that cannot catch
/// up in time answers (`NotReady` if it does not own the key) rather than time its sender out.
pub const CATCH_UP: Duration = Duration::from_millis(500);

impl Service {
    /// Whether `request`, routed by `client`, should wait for [`Service::catch_up`] before it
    /// is handled: a copy without a hint routed by a newer ring than this node's. Only a ring
    /// as new as the sender's can say whether this node owns the key (`check_owner`); judged
    /// by an older one, a copy that the newer ring moved away would be taken and then
    /// cleaned up.
    pub fn behind(&self, client: RingEpoch, request: &Request) -> bool {
        let hintless = match request {
            Request::Put { hint, .. }
            | Request::Merge { hint, .. }
            | Request::Touch { hint, .. } => hint.is_none_or(|home| home == self.node),
            _ => false,
        };
        hintless && client.is_newer_than(&self.epoch())
    }

    /// Asks the layout keeper to fetch the newer layout the peers gossip, and waits (at most
    /// [`CATCH_UP`]) until this node routes by a ring at least as new as `client`. A node
    /// still behind then refuses a copy it does not own by its own ring (see `check_owner`).
    pub async fn catch_up(&self, client: RingEpoch) {
        if let Some(keeper) = &self.keeper {
            keeper.changed.notify_one();
        }
        let mut view = self.view.clone();
        let caught_up = view.wait_for(|view| !client.is_newer_than(&view.ring.epoch()));
        if tokio::time::timeout(CATCH_UP, caught_up).await.is_err() {
            debug!(%client, ours = %self.epoch(), "still behind the sender's ring");
        }
    }

    /// A client that routed by an older ring than this node's may have picked the wrong
    /// replicas, or may be reading the previous owners after a transfer switched: refuse, so
    /// that it refetches the ring and retries. A client with a newer ring than ours is served
    /// (we will catch up; what it asks of us is what the newer ring wants).
    pub(super) fn check_epoch(&self, client: RingEpoch) -> Result<(), WireError> {
        let view = self.view.borrow();
        if view.ring.members().is_empty() {
            return Err(WireError::NotReady {
                reason: not_ready_reason(&view),
            });
        }
        let ours = view.ring.epoch();
        if ours.is_newer_than(&client) || ours.is_rival_of(&client) {
            Err(WireError::StaleRing { epoch: ours })
        } else {
            Ok(())
        }
    }

    /// A copy without a hint may land only on a replica of the key: a home on either side of
    /// a transfer under way. Elsewhere it is refused, and the sender re-plans: with
    /// `NotOwner` when it routed by this node's own ring (with an older one, `check_epoch`
    /// already answered `StaleRing`), and with `NotReady` when it routed by a newer one
    /// this node could not fetch in time (`Service::catch_up`). Taken, such a copy would be
    /// deleted by this node's clean-up, which judges by the node's own ring.
    pub(super) fn check_owner(
        &self,
        client: RingEpoch,
        bucket: &str,
        key: &[u8],
    ) -> Result<(), WireError> {
        let view = self.view.borrow();
        let ours = view.ring.epoch();
        if is_replica(&view.ring, self.node, bucket, key) {
            Ok(())
        } else if client.is_newer_than(&ours) {
            Err(WireError::NotReady {
                reason: format!(
                    "this node routes by ring {ours}, older than the sender's {client}, and \
                     owns the key on neither side of it; try again once it has caught up"
                ),
            })
        } else {
            Err(WireError::NotOwner { epoch: ours })
        }
    }

    /// Anti-entropy compares ranges of one ring: both sides must hold the same one.
    pub(super) fn check_same_ring(&self, client: RingEpoch) -> Result<(), WireError> {
        let ours = self.view.borrow().ring.epoch();
        if client == ours {
            Ok(())
        } else {
            Err(WireError::StaleRing { epoch: ours })
        }
    }
}

/// Whether `node` may hold a copy of `key` under `ring`: a home under the current members, or
/// on either side of a transfer under way. What a copy without a hint is judged by, whoever
/// sends it (a peer's `Merge`, an anti-entropy pull): this node's clean-up deletes what is not.
pub fn is_replica(ring: &Ring, node: NodeId, bucket: &str, key: &[u8]) -> bool {
    // The common case first, on every replica write: a home under the current ring.
    if ring.is_home_replica(node, bucket, key) {
        return true;
    }
    let route = ring.route(bucket, key);
    let n = route.n;
    route
        .preference
        .take(n)
        .chain(route.extra_homes)
        .any(|m| m.id == node)
}
