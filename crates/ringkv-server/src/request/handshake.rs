//! The handshake that opens every connection: `Hello` → `Welcome` (with a challenge if the
//! node has a cluster secret), then, if the node requires authentication, `Auth` →
//! `Authenticated`. What a connection proves here is its role (see `node::security`): a node,
//! a client, or refused.
//!
//! Until the handshake is complete the connection loop reads frames of at most
//! `PRE_AUTH_MAX_FRAME_LEN` and gives the whole handshake the handshake timeout: a peer that
//! has proven nothing gets little of the node.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use ringkv_core::auth::{CHALLENGE_LEN, Role};
use ringkv_core::wire::{Auth, ClientFrame, ServerFrame, Welcome, WireError};

use crate::node::security::Security;
use crate::ops::metrics::Metrics;
use crate::request::server::{Endpoint, ServerFramed};

/// A connection whose handshake is complete.
pub(crate) struct Handshake {
    /// What the connection may do (see `security::permitted`).
    pub(crate) role: Role,
    /// The challenge sent in the `Welcome`, if the node authenticates connections.
    pub(crate) challenge: Option<Bytes>,
    /// The client library and version the peer named in its `Hello`.
    pub(crate) agent: String,
    /// The protocol version the connection negotiated (see `ringkv_core::wire::protocol`).
    pub(crate) protocol_version: u32,
}

/// Why a handshake failed: the reason counted in the metrics, and the error frame to send.
pub(crate) struct Refusal {
    pub(crate) reason: &'static str,
    pub(crate) error: Option<WireError>,
}

impl Refusal {
    fn new(reason: &'static str, error: WireError) -> Refusal {
        Refusal {
            reason,
            error: Some(error),
        }
    }

    /// The peer closed the connection: nothing to answer.
    fn closed() -> Refusal {
        Refusal {
            reason: "closed",
            error: None,
        }
    }

    /// A frame that did not decode (or the peer that left mid-frame: `closed`).
    pub(crate) fn malformed(e: &ringkv_core::wire::CodecError) -> Refusal {
        match e {
            ringkv_core::wire::CodecError::Io(_) => Refusal::closed(),
            _ => Refusal {
                reason: "malformed",
                error: e.to_wire(),
            },
        }
    }
}

/// Counts `refusal` in the metrics, unless the peer simply left (a port probe, a reset).
pub(crate) fn refuse(metrics: &Metrics, refusal: &Refusal) {
    if refusal.reason != "closed" {
        metrics.connection_refused(refusal.reason);
    }
}

/// The role `auth` proves over `challenge` (empty: there is nothing left to prove on this
/// connection, so no proof holds).
pub(crate) fn authenticate(
    security: &Security,
    challenge: &[u8],
    auth: &Auth,
) -> Result<Role, Refusal> {
    if !challenge.is_empty() && security.verify(auth.role, challenge, &auth.proof) {
        return Ok(auth.role);
    }
    let error = WireError::Unauthenticated {
        reason: format!("the {:?} credential was not accepted", auth.role),
    };
    Err(Refusal::new("unauthenticated", error))
}

/// `Hello` → `Welcome` (with a challenge if the node has a cluster secret), then, if the node
/// requires authentication, `Auth` → `Authenticated`.
pub(crate) async fn handshake(
    framed: &mut ServerFramed,
    endpoint: &Endpoint,
) -> Result<Handshake, Refusal> {
    let hello = match framed.next().await {
        None => return Err(Refusal::closed()),
        Some(Err(e)) => return Err(Refusal::malformed(&e)),
        Some(Ok(ClientFrame::Hello(hello))) => hello,
        Some(Ok(_)) => return Err(Refusal::new("malformed", WireError::HandshakeRequired)),
    };
    let speaks = endpoint.protocol;
    let offered = hello.range();
    let Some(protocol_version) = speaks.negotiate(offered) else {
        let error = WireError::ProtocolVersion {
            supported: speaks.max,
            received: offered.max,
            min_supported: speaks.min,
            received_min: offered.min,
        };
        return Err(Refusal::new("protocol_version", error));
    };
    let security = &endpoint.security;
    let challenge = security
        .challenges()
        .then(|| Bytes::from(rand::random::<[u8; CHALLENGE_LEN]>().to_vec()));
    let welcome = Welcome {
        protocol_version,
        node: endpoint.service.node(),
        epoch: endpoint.service.epoch(),
        challenge: challenge.clone(),
        auth_required: security.requires_auth(),
    };
    if framed.send(ServerFrame::Welcome(welcome)).await.is_err() {
        return Err(Refusal::closed());
    }
    let role = match security.anonymous_role() {
        Some(role) => role,
        // Only a node with a cluster secret requires proofs, so there is a challenge.
        None => {
            let auth = match framed.next().await {
                Some(Ok(ClientFrame::Auth(auth))) => auth,
                Some(Ok(_)) => {
                    let error = WireError::Unauthenticated {
                        reason: "this node requires a client token or the cluster secret".into(),
                    };
                    return Err(Refusal::new("unauthenticated", error));
                }
                Some(Err(e)) => return Err(Refusal::malformed(&e)),
                None => return Err(Refusal::closed()),
            };
            let role = authenticate(security, challenge.as_deref().unwrap_or_default(), &auth)?;
            if framed.send(ServerFrame::Authenticated(role)).await.is_err() {
                return Err(Refusal::closed());
            }
            role
        }
    };
    Ok(Handshake {
        role,
        challenge,
        agent: hello.agent,
        protocol_version,
    })
}
