//! Node identity and ring membership records.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::Position;

/// A node's identity: a random 64-bit number created on its first start and persisted in its
/// data directory.
///
/// A wiped node comes back with a new id, so the version counters it hands out (its dots) are
/// never reused: a reused counter would make new writes look like old ones already seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    /// Sixteen hex digits, the form used in logs, the CLI and gossip.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for NodeId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(NodeId)
    }
}

/// One member of the ring, as every client and server sees it.
///
/// A member's `tokens` are its places on the ring, chosen once by the token allocator
/// ([`crate::claim`]) when the member joins or its weight changes, and carried in the
/// committed cluster layout from then on: a ring is computed from the tokens, not re-derived.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The member's identity. Members are ordered by it, and it breaks the tie when two
    /// members hold a token at the same position.
    pub id: NodeId,
    /// The `host:port` clients connect to for data requests.
    pub addr: String,
    /// Relative capacity: a member of weight 2 owns twice the ring of a member of weight 1.
    pub weight: u32,
    /// Ring positions, sorted. A token owns the arc from the previous token (exclusive) to
    /// itself (inclusive).
    pub tokens: Vec<Position>,
}
