//! The frames of a connection: the handshake (`Hello`, `Welcome`, `Auth`) and the envelopes
//! that carry requests and responses.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Request, Response};
use crate::auth::Role;
use crate::node::NodeId;
use crate::ring::RingEpoch;
use crate::wire::error::WireError;
use crate::wire::protocol::ProtocolRange;

/// The first frame on every connection, from the side that connected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The newest protocol version the connecting side speaks ([`super::PROTOCOL_VERSION`]).
    pub protocol_version: u32,
    /// Free text for the server's logs, such as `ringkv-rust/0.1.0`.
    pub agent: String,
    /// The oldest version it speaks ([`super::MIN_PROTOCOL_VERSION`]); absent from a build
    /// that speaks only `protocol_version`. The server picks the newest version both speak,
    /// and refuses the connection if there is none rather than misread its frames.
    #[serde(default)]
    pub min_version: Option<u32>,
}

impl Hello {
    /// A `Hello` offering `range`, from `agent`.
    pub fn new(range: ProtocolRange, agent: impl Into<String>) -> Hello {
        Hello {
            protocol_version: range.max,
            agent: agent.into(),
            min_version: Some(range.min),
        }
    }

    /// The versions the connecting side speaks.
    pub fn range(&self) -> ProtocolRange {
        ProtocolRange::stated(self.min_version.unwrap_or(0), self.protocol_version)
    }
}

/// The server's answer to a [`Hello`] it accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the connection speaks from now on: the newest both sides speak.
    pub protocol_version: u32,
    /// The answering node's id, so that the peer knows which member it reached.
    pub node: NodeId,
    /// The node's ring epoch, so that a client can tell at once whether its ring is current.
    pub epoch: RingEpoch,
    /// Set when the node authenticates connections (it has a cluster secret): fresh random
    /// bytes the peer's [`Auth`] proof must be made over (see [`crate::auth`]).
    #[serde(default)]
    pub challenge: Option<Bytes>,
    /// Whether this connection must authenticate before its first request. When false (no
    /// client tokens), an unauthenticated connection acts as a [`Role::Client`].
    #[serde(default)]
    pub auth_required: bool,
}

/// A connection's proof of a credential, sent after the [`Welcome`] that carried a challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// The role the connection asks for; the proof is bound to it, so a client token cannot
    /// be made to pass for the cluster secret.
    pub role: Role,
    /// [`crate::auth::proof`] of the cluster secret (`Node`) or a client token (`Client`).
    pub proof: Bytes,
}

/// Frames a client (or a peer acting as one) sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The handshake's opening, always the first frame.
    Hello(Hello),
    /// The proof of a credential, when the node's `Welcome` carried a challenge.
    Auth(Auth),
    /// A request, once the handshake (and authentication, if required) is complete.
    Request(RequestFrame),
}

/// Frames a server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The node accepts the `Hello`: the handshake's answer.
    Welcome(Welcome),
    /// The [`Auth`] was accepted; the connection now acts in this role.
    Authenticated(Role),
    /// The answer to one request, matched to it by id.
    Response(ResponseFrame),
    /// The connection is unusable (bad handshake, unparseable frame); it closes after this.
    Fatal(WireError),
}

/// A request with the id its response will carry and the ring epoch the client routed by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Chosen by the client, unique among its requests in flight on the connection: the
    /// response carries it back, since responses may come in any order.
    pub id: u64,
    /// The epoch of the ring the client routed the request by, so that the node can refuse
    /// a request sent to it by a ring that is out of date.
    pub epoch: RingEpoch,
    /// What the node is asked to do.
    pub body: Request,
}

/// The answer to the request with the same id, with the ring epoch of the answering node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseFrame {
    /// The id of the request this answers.
    pub id: u64,
    /// The answering node's ring epoch: a client that sees a newer one than its own
    /// refetches the ring.
    pub epoch: RingEpoch,
    /// The answer, or the error the node reports for this request alone.
    pub body: Result<Response, WireError>,
}
