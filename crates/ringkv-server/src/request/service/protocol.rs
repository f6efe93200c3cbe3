//! What a connection's protocol version allows it to be handed.

use ringkv_core::wire::{Request, WireError, ZONES_PROTOCOL_VERSION};
use ringkv_core::{Change, Member};

use super::Service;

impl Service {
    /// Refuses to hand a ring or layout with zones over a connection that negotiated a
    /// protocol older than zones (see `ZONES_PROTOCOL_VERSION`): the peer would drop the
    /// labels and place keys elsewhere, or gossip the layout on without them.
    pub(crate) fn protocol_refusal(&self, version: u32, request: &Request) -> Option<WireError> {
        if version >= ZONES_PROTOCOL_VERSION {
            return None;
        }
        let zoned = |members: &[Member]| members.iter().any(|m| !m.zone.is_empty());
        let has_zones = match request {
            Request::Ring => {
                let view = self.view.borrow();
                zoned(view.ring.members())
                    || view.ring.transition().is_some_and(|t| zoned(&t.previous))
            }
            Request::Layout => self.keeper.as_ref().is_some_and(|keeper| {
                let layout = keeper.layout();
                zoned(&layout.members)
                    || layout
                        .transition
                        .as_ref()
                        .is_some_and(|t| zoned(&t.previous))
                    || layout.staged.iter().any(|c| {
                        matches!(c, Change::Zone { .. })
                            || matches!(c, Change::Join { zone, .. } if !zone.is_empty())
                    })
            }),
            _ => false,
        };
        has_zones.then(|| WireError::InvalidRequest {
            reason: format!(
                "this cluster places replicas by zone, which needs protocol \
                 {ZONES_PROTOCOL_VERSION}; this connection speaks {version}: upgrade this \
                 process"
            ),
        })
    }
}
