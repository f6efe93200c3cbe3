//! The messages frames carry.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod frames;
mod response;
mod stats;

pub use frames::{Auth, ClientFrame, Hello, RequestFrame, ResponseFrame, ServerFrame, Welcome};
pub use response::{Response, RingSnapshot};
pub use stats::{AntiEntropyStats, NodeStats, TransferStats};

use crate::layout::Change;
use crate::node::{Member, NodeId};
use crate::siblings::SiblingSet;
use crate::version::{Dot, VersionVector};

/// What a node is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Read the state of a key.
    Get {
        /// The bucket the key is in.
        bucket: String,
        /// The key to read.
        key: Bytes,
    },
    /// Coordinate a write: stamp a new dot under the per-key lock and return the new state,
    /// which the client then sends to the other replicas with `Merge`.
    Put {
        /// The bucket the key is in; its conflict policy decides how the write is stamped.
        bucket: String,
        /// The key written.
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

        /// Sync the result to disk before answering, whatever the node's durability setting
        /// (the caller asked for `dw`: durable acknowledgements).
        #[serde(default)]
        sync: bool,
        /// Answer as soon as the write is stamped, even if it must be synced (`sync`, or the
        /// node's `fsync` durability): the caller then confirms it with a `Merge` to this
        /// node, which waits for the sync, in parallel with the merges to the other replicas.
        /// One round of syncs instead of two in a row. The answer says whether it is pending.
        #[serde(default)]
        defer_sync: bool,
        /// The value expires this many milliseconds after the stamping node's clock says it
        /// was written (`None`: the bucket's default time to live, if it has one). Ignored
        /// for a delete. Sent only on connections of [`super::EXPIRY_PROTOCOL_VERSION`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    /// Extend the life of the writes `dots` (what a read returned) by `ttl_ms` from now on
    /// the node's clock: a sliding expiry, without a new sibling (see
    /// `SiblingSet::touch`). Answered `Touched`, or refused `Expired` if one of them has
    /// expired there. Protocol 9.
    Touch {
        /// The bucket the key is in.
        bucket: String,
        /// The key touched.
        key: Bytes,
        /// The live writes the read returned.
        dots: Vec<crate::version::Dot>,
        /// Their new time to live, from now on the node's clock.
        ttl_ms: u64,
        /// As for `Merge`: a fallback touches its hint for this home.
        #[serde(default)]
        hint: Option<NodeId>,
        /// The read's state, sent when the node answered that it lacks some of `dots`: it is
        /// merged in first (a read repair), then touched.
        #[serde(default)]
        state: Option<SiblingSet>,
    },
    /// Merge a state into the node's copy (replication, read repair, handoff).
    Merge {
        /// The bucket the key is in; its conflict policy decides how the states merge.
        bucket: String,
        /// The key whose state is merged.
        key: Bytes,
        /// The state to merge in: a coordinator's stamped state, a read's merged state, a
        /// hint or a transfer's copy.
        state: SiblingSet,
        /// Set when the node receives the state as a fallback standing in for this home
        /// replica: it keeps the state as a hint and hands it off when the home is back.
        #[serde(default)]
        hint: Option<NodeId>,

        /// Sync to disk before answering (see `Put`).
        #[serde(default)]
        sync: bool,
        /// The state is a client's new `lww` write entering the cluster, not a copy of stored
        /// state (a read repair, a hint, a transfer, anti-entropy): its timestamps come from
        /// the client's clock and are refused if too far ahead of the node's
        /// ([`super::WireError::ClockAhead`]). Copies are never refused for their timestamps:
        /// what one node accepted, every node must. Protocol 8.
        #[serde(default)]
        entry: bool,
        /// With `entry`: the new write's value expires this many milliseconds after the
        /// receiving node's clock says it arrived (each replica sets its own; merging keeps
        /// the latest). Expiry is the servers' to decide, never a client clock's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    /// The node's view of the cluster.
    Ring,
    /// Liveness probe.
    Ping,
    /// The node's counters (hints pending and delivered...).
    Stats,
    /// The node's cluster layout: members, tokens, staged changes, transfer under way.
    Layout,
    /// Found a cluster of these members (ids, addresses, weights; tokens are allocated).
    /// Refused if the node already belongs to one.
    Found {
        /// The founding members; their tokens are ignored.
        members: Vec<Member>,
    },
    /// Stage a membership change, based on layout version `base`.
    Stage {
        /// The change to stage.
        change: Change,
        /// The layout version the operator looked at: if the layout has changed since,
        /// the request is refused rather than staged against a layout nobody saw.
        base: u64,
    },
    /// Commit the staged changes, based on layout version `base`.
    Commit {
        /// The layout version whose plan the operator looked at (see `Stage`).
        base: u64,
    },
    /// Drop the staged changes, based on layout version `base`.
    Clear {
        /// The layout version whose staged changes the operator means to drop (see `Stage`).
        base: u64,
    },
    /// Declare member `id` down for good and hand its share to the others at once, the
    /// surviving replicas streaming its data (`ringkv cluster remove`; see `Layout::remove`).
    /// Refused while gossip sees the node alive: `Stage` a leave for a live node.
    Remove {
        /// The member that is down for good.
        id: NodeId,
        /// The layout version the operator looked at (see `Stage`).
        base: u64,
    },
    /// Put the running node `new` in the place of member `old`, down for good (`ringkv
    /// cluster replace`; see `Layout::replace`). Refused while gossip sees `old` alive.
    Replace {
        /// The member that is down for good.
        old: NodeId,
        /// The replacement: its id and address (weight and tokens are `old`'s).
        new: Member,
        /// The layout version the operator looked at (see `Stage`).
        base: u64,
    },
    /// End the transfer under way, nothing lost (`ringkv cluster abort`; see `Layout::abort`).
    Abort {
        /// The layout version the operator looked at (see `Stage`).
        base: u64,
    },
    /// Create (`create`) or change bucket `name` (`ringkv bucket create` / `set`; see
    /// `Layout::set_bucket`). Since protocol version 7.
    Bucket {
        /// The bucket.
        name: String,
        /// Its properties from now on.
        props: crate::bucket::BucketProps,
        /// Create it (refused if it exists) rather than change it (refused if it does not).
        create: bool,
        /// The layout version the operator looked at (see `Stage`).
        base: u64,
    },
    /// Whether this node holds any key of `bucket`, as a copy or a hint (`ringkv bucket
    /// create` asks every member before giving a bucket another conflict policy than the
    /// default's). Since protocol version 7.
    HoldsBucket {
        /// The bucket.
        bucket: String,
    },
    /// What this node holds for one key, its own copy and each hint apart (`ringkv explain`).
    /// Unlike `Get` it merges nothing and is never refused for a stale ring.
    Inspect {
        /// The bucket the key is in.
        bucket: String,
        /// The key to look up.
        key: Bytes,
    },
    /// Anti-entropy, node to node: for every range of the ring (named by the token that ends
    /// it) where this node stores keys that `peer` is also a home replica of, a hash of those
    /// keys and their states. Refused unless both rings are the same.
    AeTree {
        /// The node asking: only the keys both nodes are home replicas of are compared.
        peer: NodeId,
    },
    /// Anti-entropy: the digest of every key in `ranges` this node stores that `peer` is also
    /// a home replica of.
    AeKeys {
        /// The node asking, as in `AeTree`.
        peer: NodeId,
        /// The ranges (named by their end token) whose hashes differed in the trees.
        ranges: Vec<u64>,
    },
    /// Anti-entropy, node to node, since protocol version 12: for each span (positions
    /// `lo..=hi`, each inside one fragment of the ring, see `Ring::fragment_ends`, in ring
    /// order without overlaps), the hash
    /// and key count of the keys this node stores there that `peer` is also a home replica
    /// of. Answered with `Response::AeSpans`, in order. Refused unless both rings are the
    /// same.
    AeSpans {
        /// The node asking.
        peer: NodeId,
        /// At most [`MAX_AE_SPANS`].
        spans: Vec<(u64, u64)>,
    },
    /// Anti-entropy since protocol version 12: `(bucket, key, state digest)` of every key in
    /// the spans (as in `AeSpans`) this node stores that `peer` is also a home replica of.
    /// Answered with `Response::AeSpanKeys`, which may cover only the first spans (an answer
    /// is kept to [`MAX_AE_KEY_BYTES`] or so).
    AeSpanKeys {
        /// The node asking.
        peer: NodeId,
        /// At most [`MAX_AE_SPANS`].
        spans: Vec<(u64, u64)>,
    },
    /// Purging, node to node: for each key, whether this node's own copy holds no live value
    /// by its clock and has exactly the version vector given (see the server's
    /// `workers::purge`). Answered with `Response::PurgeChecked`, in order. Refused unless
    /// both sides route by the same ring. Since protocol version 10.
    PurgeCheck {
        /// At most [`MAX_PURGE_KEYS`].
        keys: Vec<PurgeKey>,
    },
    /// Purging: delete this node's own copy of each key that still holds no live value and
    /// still has exactly the version vector given. Answered with `Response::Purged`.
    /// Refused unless both sides route by the same ring. Since protocol version 10.
    Purge {
        /// At most [`MAX_PURGE_KEYS`].
        keys: Vec<PurgeKey>,
    },
    /// Proxy mode: coordinate this operation's quorum on the caller's behalf, as the SDK
    /// would. For thin clients that do not keep the ring (and to measure what client-side
    /// coordination saves).
    Coordinate(Coordinated),
    /// Many reads in one frame, since protocol version 13: `Get`s only, at most
    /// [`MAX_BATCH_REQUESTS`] of them. Each is handled as if it came alone and answered on
    /// its own, in order, in `Response::Batch`: one refused (a stale ring, a key too large,
    /// an answer grown too large for the frame) does not refuse the others. The SDK's
    /// `get_many` sends one per node its keys touch, instead of one frame per key.
    Batch {
        /// The requests, each a `Get`.
        requests: Vec<Request>,
    },
}

/// The most requests one `Batch` carries.
pub const MAX_BATCH_REQUESTS: usize = 1024;

/// The most keys one `PurgeCheck` or `Purge` names.
pub const MAX_PURGE_KEYS: usize = 1024;

/// The most spans one `AeSpans` or `AeSpanKeys` may name.
pub const MAX_AE_SPANS: usize = 4096;

/// About how many bytes of keys one answer to `AeSpanKeys` holds: it stops after the span
/// that passes this (well under the frame limit, keys being at most 64 KiB).
pub const MAX_AE_KEY_BYTES: usize = 4 << 20;

/// A key a purge is about, and which state it concerns: its version vector and the dots of
/// its siblings (under `lww` the vector is empty, and the dot names the write). A dead state
/// is removed whole; with `prune`, a live state's version vector loses the entries of actors
/// no sibling was stamped by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeKey {
    /// The bucket the key is in.
    pub bucket: String,
    /// The key.
    pub key: Bytes,
    /// The version vector of the state the coordinator of the purge holds.
    pub vv: VersionVector,
    /// The dots of that state's siblings, in order.
    pub dots: Vec<Dot>,
    /// Prune the state's history instead of removing a dead state.
    #[serde(default)]
    pub prune: bool,
}

impl PurgeKey {
    /// The purge key of `state`, held for `key` in `bucket`.
    pub fn of(bucket: String, key: Bytes, state: &SiblingSet) -> PurgeKey {
        PurgeKey {
            bucket,
            key,
            vv: state.version_vector().clone(),
            dots: state.siblings().iter().map(|s| s.dot).collect(),
            prune: false,
        }
    }

    /// The pruning of `state`'s history, held for `key` in `bucket`.
    pub fn prune(bucket: String, key: Bytes, state: &SiblingSet) -> PurgeKey {
        PurgeKey {
            prune: true,
            ..PurgeKey::of(bucket, key, state)
        }
    }

    /// Whether `state` is the state this names (and, unless pruning, holds no live value at
    /// `now_ms`): what a purge may act on.
    pub fn matches(&self, state: &SiblingSet, now_ms: u64) -> bool {
        state.version_vector() == &self.vv
            && state
                .siblings()
                .iter()
                .map(|s| s.dot)
                .eq(self.dots.iter().copied())
            && (self.prune || state.dead_since(now_ms).is_some())
    }
}

/// An operation a node coordinates for a thin client (`Request::Coordinate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Coordinated {
    /// A quorum read; `r: None` is the bucket's default. Answered with `Response::Read`.
    Get {
        /// The bucket the key is in.
        bucket: String,
        /// The key to read.
        key: Bytes,
        /// How many replicas must answer, if not the bucket's default.
        r: Option<u8>,
    },
    /// A quorum write (`value: None` deletes); `context` is the opaque context bytes of an
    /// earlier `Response::Read`. Answered with `Response::Written`.
    Write {
        /// The bucket the key is in.
        bucket: String,
        /// The key to write.
        key: Bytes,
        /// The new value, or `None` to delete the key.
        value: Option<Bytes>,
        /// What the writer had read, as the opaque bytes a `Read` answered with (`None`: a
        /// blind write that supersedes nothing).
        context: Option<Bytes>,
        /// How many replicas must acknowledge, if not the bucket's default.
        w: Option<u8>,
        /// Supersede every sibling, whatever the context says (see `Request::Put`).
        overwrite: bool,
        /// The value's time to live, as in `Request::Put`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
}

impl Request {
    /// The oldest protocol version that carries this request whole: a request whose
    /// meaning an older build would silently change (by dropping an expiry, see
    /// [`super::EXPIRY_PROTOCOL_VERSION`]) is never sent over an older connection.
    pub fn needs_protocol(&self) -> u32 {
        match self {
            Request::Put {
                ttl_ms: Some(_), ..
            }
            | Request::Coordinate(Coordinated::Write {
                ttl_ms: Some(_), ..
            }) => super::EXPIRY_PROTOCOL_VERSION,
            Request::Merge {
                ttl_ms: Some(_), ..
            }
            | Request::Touch { .. } => super::EXPIRY_PROTOCOL_VERSION,
            Request::Merge { state, .. } if state.has_expiry() => super::EXPIRY_PROTOCOL_VERSION,
            Request::PurgeCheck { keys } | Request::Purge { keys }
                if keys.iter().any(|k| k.prune) =>
            {
                super::PRUNE_PROTOCOL_VERSION
            }
            Request::PurgeCheck { .. } | Request::Purge { .. } => super::PURGE_PROTOCOL_VERSION,
            Request::AeSpans { .. } | Request::AeSpanKeys { .. } => {
                super::ANTI_ENTROPY_PROTOCOL_VERSION
            }
            Request::Batch { requests } => requests
                .iter()
                .map(Request::needs_protocol)
                .fold(super::BATCH_PROTOCOL_VERSION, u32::max),
            _ => super::MIN_PROTOCOL_VERSION,
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Get { .. } => "get",
            Request::Put { .. } => "put",
            Request::Merge { .. } => "merge",
            Request::Touch { .. } => "touch",
            Request::Ring => "ring",
            Request::Ping => "ping",
            Request::Stats => "stats",
            Request::Layout => "layout",
            Request::Found { .. } => "found",
            Request::Stage { .. } => "stage",
            Request::Commit { .. } => "commit",
            Request::Clear { .. } => "clear",
            Request::Remove { .. } => "remove",
            Request::Replace { .. } => "replace",
            Request::Abort { .. } => "abort",
            Request::Bucket { .. } => "bucket",
            Request::HoldsBucket { .. } => "holds-bucket",
            Request::Inspect { .. } => "inspect",
            Request::AeTree { .. } => "ae-tree",
            Request::AeKeys { .. } => "ae-keys",
            Request::AeSpans { .. } => "ae-spans",
            Request::AeSpanKeys { .. } => "ae-span-keys",
            Request::PurgeCheck { .. } => "purge-check",
            Request::Purge { .. } => "purge",
            Request::Coordinate(Coordinated::Get { .. }) => "coordinate-get",
            Request::Coordinate(Coordinated::Write { .. }) => "coordinate-write",
            Request::Batch { .. } => "batch",
        }
    }
}
