//! What `Stats` answers: a node's counters.

use serde::{Deserialize, Serialize};

use crate::node::NodeId;

/// A node's counters, as answered to `Stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// The node these counters are of.
    pub node: NodeId,
    /// A random number the answering process drew at start: tells two processes of one node
    /// id apart (a copied data directory started twice), which the node id alone cannot.
    #[serde(default)]
    pub instance: u64,
    /// Hinted states held for other nodes and not yet handed off.
    pub hints_pending: u64,
    /// Hints handed off (acknowledged by their home node) since this node started.
    pub hints_delivered: u64,
    /// Bytes the hints held take (as the last handoff round measured them).
    #[serde(default)]
    pub hint_bytes: u64,
    /// Hints handed to anti-entropy since this node started: their home was down longer than
    /// `handoff.max_hint_age_secs`, or the queue was over its byte cap. Each was first copied
    /// to every live home replica of its key; none is ever dropped silently.
    #[serde(default)]
    pub hints_converted: u64,
    /// Expired values whose bytes this node reclaimed since it started (by compaction, or
    /// as it rewrote their keys). Protocol 9.
    #[serde(default)]
    pub expired_values_reclaimed: u64,
    /// The bytes those values held.
    #[serde(default)]
    pub expired_bytes_reclaimed: u64,
    /// Keys whose dead state (tombstones, expired values) this node purged since it
    /// started, as a purge's coordinator or as one of the key's homes. Protocol 10.
    #[serde(default)]
    pub purged_keys: u64,
    /// Keys whose version vector a purge pruned on this node since it started (entries of
    /// actors no sibling was stamped by). Protocol 10.
    #[serde(default)]
    pub pruned_keys: u64,
    /// About how many keys the node stores (the storage engine's estimate).
    #[serde(default)]
    pub keys: u64,
    /// About how many bytes they take.
    #[serde(default)]
    pub bytes: u64,
    /// The weight the node was started with (what `cluster join` uses unless told).
    #[serde(default)]
    pub weight: u32,
    /// The zone the node was started with (what `cluster join` uses); empty for none.
    /// Protocol 8.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
    /// The transfer this node is streaming or last streamed, if any.
    #[serde(default)]
    pub transfer: Option<TransferStats>,
    /// What anti-entropy has compared and repaired since the node started.
    #[serde(default)]
    pub anti_entropy: AntiEntropyStats,
}

/// One node's progress streaming its data after a membership change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStats {
    /// The ring version of the change (the transition id).
    pub id: u64,
    /// Keys looked at so far.
    pub scanned_keys: u64,
    /// The bytes of the keys looked at so far.
    pub scanned_bytes: u64,
    /// Keys sent to new owners and acknowledged.
    pub sent_keys: u64,
    /// The bytes of the keys sent and acknowledged.
    pub sent_bytes: u64,
    /// The node's estimate of its keys when the scan started (for a progress bar).
    pub total_keys: u64,
    /// Milliseconds since the transfer started on this node (until it finished).
    pub elapsed_ms: u64,
    /// Every key has been looked at and every copy acknowledged.
    pub done: bool,
    /// Copies this node deleted after the change settled (keys it no longer owns).
    pub cleaned_keys: u64,
    /// The stream picked up where an earlier run of this node stopped (a restart mid-way).
    #[serde(default)]
    pub resumed: bool,
}

/// A node's anti-entropy counters since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AntiEntropyStats {
    /// Exchanges completed with a peer (trees compared, differences repaired).
    pub exchanges: u64,
    /// Fragments of the ring found to differ.
    pub ranges_differing: u64,
    /// Keys repaired, in either direction.
    pub keys_repaired: u64,
    /// Bytes of summaries and key lists exchanged to find the differences (the repairs'
    /// `Merge`s not counted). Since protocol version 12.
    #[serde(default)]
    pub bytes: u64,
}
