//! Why a layout operation was refused.

use serde::{Deserialize, Serialize};

use crate::bucket::ConflictPolicy;
use crate::claim::ClaimError;
use crate::node::NodeId;

/// Why a layout operation was refused. It crosses the wire inside `WireError::Layout`, so a
/// variant is only ever added (an older build reads an unknown one as no facts, see
/// `wire::protocol::lenient`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum LayoutError {
    /// The token allocator refused the change (an unknown node, a weight of 0, the last
    /// member leaving...).
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// A change for this node is already staged; staged changes must be cleared before
    /// another change to the same node is staged.
    #[error("a change for node {0} is already staged; `cluster clear` first")]
    AlreadyStaged(NodeId),
    /// A commit or a clear found no staged change to act on.
    #[error("nothing is staged")]
    NothingStaged,
    /// The node holds no cluster yet, so there is no membership to change.
    #[error("this node is not part of a cluster yet: `ringkv cluster init` founds one")]
    NotFounded,
    /// A commit while the previous change is still being transferred (this transfer id):
    /// one transfer at a time keeps every key's data on at most two member lists.
    #[error(
        "a transfer is under way (transfer {0:016x}); wait for it to finish, or `ringkv cluster \
         remove` a member that is down for good, or `ringkv cluster abort` it"
    )]
    TransferUnderWay(u64),
    /// `abort` with no transfer under way.
    #[error("no transfer is under way")]
    NoTransfer,
    /// An abort sent to a node that takes no part in the transfer (see [`Layout::abort`]).
    #[error("node {0} takes no part in the transfer; send the abort to one of its members")]
    NotInvolved(NodeId),
    /// An abort sent to a node that has reported the transfer's switch already, although the
    /// layout it holds is still streaming (a rival layout took it back a phase): the switch
    /// may be settling elsewhere on the strength of that report.
    #[error(
        "node {0} has switched to the transfer's new ring already; send the abort to a member \
         that has not, or let the transfer finish"
    )]
    AlreadySwitched(NodeId),
    /// `remove` of a node the transfer under way already treats as removed.
    #[error("node {0} is already removed")]
    AlreadyRemoved(NodeId),
    /// A node that already belongs to a cluster (at this layout version) was asked to found
    /// another.
    #[error("the cluster already exists (layout version {0})")]
    AlreadyFounded(u64),
    /// `remove` or `replace` (the `operation`) of a member the node's failure detector sees
    /// alive: those are for a member that is down for good; `leave` hands a live one's data
    /// over.
    #[error(
        "node {node} is alive: `ringkv cluster leave {node}` hands its data over; `{operation}` \
         is for a member that is down for good"
    )]
    Alive {
        /// The member.
        node: NodeId,
        /// The operation refused.
        operation: String,
    },
    /// A bucket setting that cannot be (a bad name, `r` or `w` above `n`...).
    #[error("bucket {bucket:?}: {reason}")]
    BadBucket {
        /// The bucket.
        bucket: String,
        /// What is wrong.
        reason: String,
    },
    /// `bucket create` of a bucket that exists.
    #[error("bucket {0:?} exists already: `ringkv bucket set` changes it")]
    BucketExists(String),
    /// `bucket set` of a bucket never created.
    #[error("there is no bucket {0:?}: `ringkv bucket create` makes one")]
    NoSuchBucket(String),
    /// A change of a bucket's conflict policy: the replicas its keys have were written under
    /// one policy and cannot be merged under the other.
    #[error(
        "bucket {bucket:?} resolves conflicts by {is:?}; its keys were written that way and \
         cannot be merged as {asked:?}: create another bucket and copy the data over"
    )]
    ConflictImmutable {
        /// The bucket.
        bucket: String,
        /// Its policy.
        is: ConflictPolicy,
        /// The policy asked for.
        asked: ConflictPolicy,
    },
    /// `bucket create` with another conflict policy than the default's, of a bucket that
    /// already holds keys (written under the default's).
    #[error(
        "bucket {bucket:?} already holds keys, written as {conflict:?} (the default): it cannot \
         be created with another conflict policy; choose a new name"
    )]
    BucketInUse {
        /// The bucket.
        bucket: String,
        /// The policy its keys were written under.
        conflict: ConflictPolicy,
    },
    /// `readdress` to an address that is not `host:port`.
    #[error("{0:?} is not a host:port address")]
    BadAddress(String),
    /// A zone label that is not one (see [`crate::node::validate_zone`]).
    #[error("{0}")]
    BadZone(String),
    /// The change would hand a layout with zones to a node that does not know them (see
    /// [`Layout::check_zone_readers`](crate::Layout::check_zone_readers)).
    #[error(
        "node {node} {} and zones need protocol {}: upgrade it first (a rolling restart), or \
         remove it if it is gone for good",
        .speaks.map_or("runs a release that does not say its protocol".to_string(), |v| format!("speaks protocol {v}")),
        crate::wire::ZONES_PROTOCOL_VERSION
    )]
    ZonesUnknown {
        /// The node.
        node: NodeId,
        /// The newest protocol it gossips, if any.
        speaks: Option<u32>,
    },
    /// The change would hand a layout with zones to a node gossip has not heard from yet, so
    /// whether it knows zones is unknown: a moment later it is known.
    #[error(
        "node {node} has not said by gossip which protocol it speaks (a node just started, or a \
         release before zones), so whether it knows zones is unknown: try again in a moment, \
         and if it persists, upgrade it"
    )]
    ZonesUnheard {
        /// The node.
        node: NodeId,
    },
    /// The change would hand a layout whose bucket table has a default time to live to a
    /// node that does not know expiry (see `Layout::check_readers`).
    #[error(
        "node {node} {} and a bucket's time to live needs protocol {}: upgrade it first (a \
         rolling restart), or remove it if it is gone for good",
        .speaks.map_or("runs a release that does not say its protocol".to_string(), |v| format!("speaks protocol {v}")),
        crate::wire::EXPIRY_PROTOCOL_VERSION
    )]
    ExpiryUnknown {
        /// The node.
        node: NodeId,
        /// The newest protocol it gossips, if any.
        speaks: Option<u32>,
    },
    /// As [`LayoutError::ExpiryUnknown`], for a node gossip has not heard from yet: try
    /// again in a moment.
    #[error(
        "node {node} has not said by gossip which protocol it speaks, so whether it knows \
         expiry is unknown: try again in a moment, and if it persists, upgrade it"
    )]
    ExpiryUnheard {
        /// The node.
        node: NodeId,
    },
    /// Some members would have a zone and some none (see `Layout::commit`).
    #[error(
        "zones are for every member or none: {} member(s) have none ({}); `ringkv cluster zone` \
         labels them",
        .unlabelled.len(),
        .unlabelled.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    ZonesIncomplete {
        /// The members without a zone.
        unlabelled: Vec<NodeId>,
    },
    /// The operation was based on a layout the node no longer holds (another operator's
    /// change, or a transfer phase, came in between), so what the operator looked at is not
    /// what the operation would change.
    #[error("the layout changed meanwhile (version {actual}, expected {expected}); look again")]
    Moved {
        /// The layout version the operation was based on.
        expected: u64,
        /// The layout version the node holds.
        actual: u64,
    },
}
