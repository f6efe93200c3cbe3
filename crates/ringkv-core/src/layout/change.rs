//! What operators stage ([`Change`]) and what nodes report of a transfer ([`Step`]).

use serde::{Deserialize, Serialize};

use crate::node::NodeId;

/// One staged membership change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A running node becomes a member with this weight.
    Join {
        /// The joining node's id, which it created on its first start.
        id: NodeId,
        /// The `host:port` clients will reach it on, as the ring will list it.
        addr: String,
        /// Its relative capacity (see [`Member::weight`]).
        weight: u32,
        /// Its failure domain (see [`Member::zone`]); empty for none.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        zone: String,
    },
    /// A member hands its data to the others and leaves.
    Leave {
        /// The leaving member.
        id: NodeId,
    },
    /// A member's weight changes (its share of the ring follows).
    Weight {
        /// The member whose weight changes.
        id: NodeId,
        /// Its new weight, at least 1.
        weight: u32,
    },
    /// A member moves to another zone: it leaves its old zone's ring and joins the new one's
    /// (see [`claim::rezone`]). Labelling the members of a cluster without zones is a set of
    /// these, committed at once.
    Zone {
        /// The member whose zone changes.
        id: NodeId,
        /// Its new zone; empty for none.
        zone: String,
    },
}

impl Change {
    /// The node the change is about. At most one change per node may be staged, so that
    /// the plan never depends on which of two changes to one node comes first.
    pub fn node(&self) -> NodeId {
        match self {
            Change::Join { id, .. }
            | Change::Leave { id }
            | Change::Weight { id, .. }
            | Change::Zone { id, .. } => *id,
        }
    }
}

/// How far one node has got with the transfer of transition `id`, as it reports in gossip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Step {
    /// It has streamed every key it no longer owns to the new owners, and they acknowledged.
    Streamed,
    /// It routes by the new preference lists and refuses requests routed by the old ones.
    Switched,
}
