//! What a connection's protocol version allows it to be handed.

use ringkv_core::wire::{Request, WireError, ZONES_PROTOCOL_VERSION};

use super::Service;

impl Service {
    /// Refuses to hand a ring or layout with zones over a connection that negotiated a
    /// protocol older than zones (see `ZONES_PROTOCOL_VERSION`): the peer would drop the
    /// labels and place keys elsewhere, or gossip the layout on without them.
    pub(crate) fn protocol_refusal(&self, version: u32, request: &Request) -> Option<WireError> {
        if version >= ZONES_PROTOCOL_VERSION {
            return None;
        }
        let has_zones = match request {
            // The ring a client is handed is the view's, made from the layout it holds.
            Request::Ring => self.view.borrow().layout.has_zones(),
            Request::Layout => self.keeper.as_ref().is_some_and(|k| k.layout().has_zones()),
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
