//! What a node answers.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::stats::NodeStats;
use crate::layout::Layout;
use crate::node::NodeId;
use crate::ring::RingConfig;
use crate::siblings::SiblingSet;

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The key's state, or `None` if the node holds nothing for it.
    Value {
        /// What the node holds for the key.
        state: Option<SiblingSet>,
    },
    /// The state after a `Put` was stamped.
    Stamped {
        /// The key's whole state after the write, which the client sends on to the other
        /// replicas.
        state: SiblingSet,
        /// The write is not on disk yet and counts as acknowledged only once a `Merge` of
        /// it to this node answers (the `Put` had `defer_sync`).
        #[serde(default)]
        pending_sync: bool,
    },
    /// The merge was applied (or changed nothing).
    Merged,
    /// The answer to `Touch`: applied, unless `missing` names writes the node has not seen
    /// (then nothing was applied; send the read's state with the touch).
    Touched {
        /// The dots the node lacks.
        #[serde(default)]
        missing: Vec<crate::version::Dot>,
    },
    /// The answer to `Ring`: the node's view of the cluster.
    Ring(RingSnapshot),
    /// The answer to `HoldsBucket`.
    HoldsBucket {
        /// Whether the node holds a key of the bucket (or could not tell: a store error).
        holds: bool,
    },
    /// The answer to `Ping`.
    Pong {
        /// The answering node, so that a probe also tells who is behind an address.
        node: NodeId,
    },
    /// The answer to `Stats`.
    Stats(NodeStats),
    /// The layout (after the change, for `Found`, `Stage`, `Commit` and `Clear`).
    Layout(Layout),
    /// The answer to `Inspect`: the node's own copy, and the hints it holds for other nodes.
    Inspection {
        /// The node's own copy of the key, if it has one.
        data: Option<SiblingSet>,
        /// The hinted states it holds for the key, each with the home node it is meant for.
        hints: Vec<(NodeId, SiblingSet)>,
    },
    /// The answer to `AeTree`: `(range, hash)` pairs, sorted by range.
    AeTree {
        /// One `(range, hash)` pair per range where the two nodes share keys.
        ranges: Vec<(u64, u64)>,
    },
    /// The answer to `AeSpans`: `(hash, key count)` per span asked, in order.
    AeSpans {
        /// One `(hash, keys)` pair per span.
        summaries: Vec<(u64, u64)>,
    },
    /// The answer to `AeSpanKeys`: `(bucket, key, digest of the state)` of the keys of the
    /// first `listed` spans asked (at least one; the rest are asked again), sorted.
    AeSpanKeys {
        /// The keys, with the digests of their states.
        keys: Vec<(String, Bytes, u64)>,
        /// How many of the spans asked (from the first) the keys cover.
        listed: u32,
    },
    /// The answer to `AeKeys`: `(bucket, key, digest of the state)`, sorted.
    AeKeys {
        /// One `(bucket, key, digest)` triple per key of the ranges asked for.
        keys: Vec<(String, Bytes, u64)>,
    },
    /// The answer to `PurgeCheck`: per key asked, in order, whether this node's copy is
    /// dead with the version vector given.
    PurgeChecked {
        /// One answer per key.
        held: Vec<bool>,
    },
    /// The answer to `Purge`: per key, in order, whether this node's copy is gone (deleted
    /// now, or not held).
    Purged {
        /// One answer per key.
        purged: Vec<bool>,
    },
    /// The answer to a coordinated get: the live siblings and the read's opaque context.
    Read {
        /// The values of the live siblings: more than one means concurrent writes.
        siblings: Vec<Bytes>,
        /// The read's causal context, to hand back with a write that replaces what was read.
        context: Bytes,
    },
    /// The answer to a coordinated write: who acknowledged it.
    Written {
        /// The home replicas that acknowledged the write.
        home: Vec<NodeId>,
        /// The fallbacks that acknowledged it, standing in for home replicas that were down.
        fallback: Vec<NodeId>,
    },
    /// The answer to `Batch`: one result per request, in order.
    Batch {
        /// What each request of the batch would have been answered alone.
        results: Vec<Result<Response, crate::wire::WireError>>,
    },
}

impl Response {
    /// A short name for errors and logs (never the payload, which may be megabytes).
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Value { .. } => "value",
            Response::Stamped { .. } => "stamped",
            Response::Merged => "merged",
            Response::Touched { .. } => "touched",
            Response::Ring(_) => "ring",
            Response::Pong { .. } => "pong",
            Response::HoldsBucket { .. } => "holds-bucket",
            Response::Stats(_) => "stats",
            Response::Layout(_) => "layout",
            Response::Inspection { .. } => "inspection",
            Response::AeTree { .. } => "ae-tree",
            Response::AeKeys { .. } => "ae-keys",
            Response::AeSpans { .. } => "ae-spans",
            Response::AeSpanKeys { .. } => "ae-span-keys",
            Response::PurgeChecked { .. } => "purge-checked",
            Response::Purged { .. } => "purged",
            Response::Read { .. } => "read",
            Response::Written { .. } => "written",
            Response::Batch { .. } => "batch",
        }
    }
}

/// A node's view of the cluster: the ring config (members, buckets) and who is alive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingSnapshot {
    /// The node that answered.
    pub node: NodeId,
    /// The config of the node's ring, from which a client computes the same ring.
    pub config: RingConfig,
    /// Members the answering node's failure detector considers alive.
    pub alive: Vec<NodeId>,
}
