//! What a connection's protocol version allows it to be handed.

use ringkv_core::wire::{
    BATCH_PROTOCOL_VERSION, EXPIRY_PROTOCOL_VERSION, Request, Response, WireError,
    ZONES_PROTOCOL_VERSION,
};

use super::Service;

impl Service {
    /// Refuses to hand a ring or layout with zones over a connection that negotiated a
    /// protocol older than zones (see `ZONES_PROTOCOL_VERSION`): the peer would drop the
    /// labels and place keys elsewhere, or gossip the layout on without them. Likewise one
    /// whose bucket table has a time to live to a connection older than expiry.
    /// A batch is refused over a connection older than batches: its answers would bypass
    /// what [`Service::guard_answer`] checks of a lone answer.
    pub(crate) fn protocol_refusal(&self, version: u32, request: &Request) -> Option<WireError> {
        if matches!(request, Request::Batch { .. }) && version < BATCH_PROTOCOL_VERSION {
            return Some(WireError::InvalidRequest {
                reason: format!(
                    "a batch needs protocol {BATCH_PROTOCOL_VERSION}; this connection speaks \
                     {version}"
                ),
            });
        }
        if version >= EXPIRY_PROTOCOL_VERSION {
            return None;
        }
        let (zones, expiry) = match request {
            // The ring a client is handed is the view's, made from the layout it holds.
            Request::Ring => {
                let view = self.view.borrow();
                (view.layout.has_zones(), view.layout.has_expiry())
            }
            Request::Layout => self.keeper.as_ref().map_or((false, false), |k| {
                let layout = k.layout();
                (layout.has_zones(), layout.has_expiry())
            }),
            _ => (false, false),
        };
        let (feature, needs) = if zones && version < ZONES_PROTOCOL_VERSION {
            ("places replicas by zone", ZONES_PROTOCOL_VERSION)
        } else if expiry {
            ("gives a bucket a time to live", EXPIRY_PROTOCOL_VERSION)
        } else {
            return None;
        };
        Some(WireError::InvalidRequest {
            reason: format!(
                "this cluster {feature}, which needs protocol {needs}; this connection speaks \
                 {version}: upgrade this process"
            ),
        })
    }

    /// Refuses to hand a state that expires to a connection older than expiry (see
    /// `EXPIRY_PROTOCOL_VERSION`): the peer would drop the expiry, keep the value for ever
    /// and pass it on. The request is answered with an error instead.
    pub(crate) fn guard_answer(
        &self,
        version: u32,
        answer: Result<Response, WireError>,
    ) -> Result<Response, WireError> {
        if version >= EXPIRY_PROTOCOL_VERSION {
            return answer;
        }
        let expiring = match &answer {
            Ok(Response::Value { state: Some(state) } | Response::Stamped { state, .. }) => {
                state.has_expiry()
            }
            Ok(Response::Inspection { data, hints }) => {
                data.as_ref().is_some_and(|s| s.has_expiry())
                    || hints.iter().any(|(_, s)| s.has_expiry())
            }
            _ => false,
        };
        if !expiring {
            return answer;
        }
        Err(WireError::InvalidRequest {
            reason: format!(
                "the key holds a value that expires, which needs protocol \
                 {EXPIRY_PROTOCOL_VERSION}; this connection speaks {version}: upgrade this process"
            ),
        })
    }

    /// Refuses a new write that expires until every member is known (by gossip) to speak
    /// `EXPIRY_PROTOCOL_VERSION`: copies, hints, read repairs and anti-entropy would hand
    /// it to an older one, which keeps it for ever. Not yet heard of is "not yet" (a node
    /// just started, a moment later it is known), which does not make clients take this
    /// node for down.
    pub(crate) fn check_expiry_readers(&self) -> Result<(), WireError> {
        let view = self.view.borrow();
        for member in view.ring.all_members() {
            if member.id == self.node {
                continue;
            }
            match view.protocols.get(&member.id) {
                Some(Some(v)) if *v >= EXPIRY_PROTOCOL_VERSION => {}
                None => {
                    return Err(WireError::NotYet {
                        reason: format!(
                            "node {} has not said by gossip which protocol it speaks; a write \
                             that expires waits until every member is known to speak \
                             {EXPIRY_PROTOCOL_VERSION}",
                            member.id
                        ),
                    });
                }
                Some(speaks) => {
                    return Err(WireError::InvalidRequest {
                        reason: format!(
                            "node {} speaks protocol {}, and a write that expires needs every \
                             member at {EXPIRY_PROTOCOL_VERSION}: finish upgrading first",
                            member.id,
                            speaks.map_or_else(|| "7 or older".to_string(), |v| v.to_string())
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
