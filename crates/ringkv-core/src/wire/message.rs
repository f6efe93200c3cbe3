//! The messages frames carry.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::WireError;
use crate::node::NodeId;
use crate::ring::{RingConfig, RingEpoch};
use crate::siblings::SiblingSet;
use crate::version::VersionVector;

/// The first frame on every connection, from the side that connected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    /// Free text for the server's logs, such as `ringkv-rust/0.1.0`.
    pub agent: String,
}

/// The server's answer to a [`Hello`] it accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol_version: u32,
    pub node: NodeId,
    pub epoch: RingEpoch,
}

/// Frames a client (or a peer acting as one) sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    Hello(Hello),
    Request(RequestFrame),
}

/// Frames a server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    Welcome(Welcome),
    Response(ResponseFrame),
    /// The connection is unusable (bad handshake, unparseable frame); it closes after this.
    Fatal(WireError),
}

/// A request with the id its response will carry and the ring epoch the client routed by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    pub id: u64,
    pub epoch: RingEpoch,
    pub body: Request,
}

/// The answer to the request with the same id, with the ring epoch of the answering node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub id: u64,
    pub epoch: RingEpoch,
    pub body: Result<Response, WireError>,
}

/// What a node is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Read the state of a key.
    Get { bucket: String, key: Bytes },
    /// Coordinate a write: stamp a new dot under the per-key lock and return the new state,
    /// which the client then sends to the other replicas with `Merge`.
    Put {
        bucket: String,
        key: Bytes,
        /// What the writer had read (`None`: a blind write that supersedes nothing).
        context: Option<VersionVector>,
        /// `None` writes a tombstone (a delete).
        value: Option<Bytes>,
        /// Supersede everything this node holds for the key, whatever the context says.
        overwrite: bool,
        /// The client's id for this write, the same on every retry of it, so that a retry
        /// stamped by another node is recognised as the same write (see `siblings`).
        #[serde(default)]
        write_id: Option<u64>,
        /// Set when every home replica is down and this node, a fallback, coordinates: it keeps
        /// the result as a hint for that home node (see `Merge`).
        #[serde(default)]
        hint: Option<NodeId>,
    },
    /// Merge a state into the node's copy (replication, read repair, handoff).
    Merge {
        bucket: String,
        key: Bytes,
        state: SiblingSet,
        /// Set when the node receives the state as a fallback standing in for this home
        /// replica: it keeps the state as a hint and hands it off when the home is back.
        #[serde(default)]
        hint: Option<NodeId>,
    },
    /// The node's view of the cluster.
    Ring,
    /// Liveness probe.
    Ping,
    /// The node's counters (hints pending and delivered...).
    Stats,
}

impl Request {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Get { .. } => "get",
            Request::Put { .. } => "put",
            Request::Merge { .. } => "merge",
            Request::Ring => "ring",
            Request::Ping => "ping",
            Request::Stats => "stats",
        }
    }
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The key's state, or `None` if the node holds nothing for it.
    Value {
        state: Option<SiblingSet>,
    },
    /// The state after a `Put` was stamped.
    Stamped {
        state: SiblingSet,
    },
    /// The merge was applied (or changed nothing).
    Merged,
    Ring(RingSnapshot),
    Pong {
        node: NodeId,
    },
    Stats(NodeStats),
}

/// A node's counters, as answered to `Stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    pub node: NodeId,
    /// Hinted states held for other nodes and not yet handed off.
    pub hints_pending: u64,
    /// Hints handed off (acknowledged by their home node) since this node started.
    pub hints_delivered: u64,
}

/// A node's view of the cluster: the ring config (members, buckets) and who is alive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingSnapshot {
    /// The node that answered.
    pub node: NodeId,
    pub config: RingConfig,
    /// Members the answering node's failure detector considers alive.
    pub alive: Vec<NodeId>,
}
