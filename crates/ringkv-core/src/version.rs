//! Dots and version vectors: the causal bookkeeping under every sibling set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::node::NodeId;

/// One write event: the `counter`-th write stamped by `node` on a given key.
///
/// Only servers make dots (see [`crate::siblings::SiblingSet::stamp`]), so a version vector
/// holds one entry per server that ever stamped the key, never one per client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The server that stamped the write.
    pub node: NodeId,
    /// Where the write falls in that server's sequence of writes to the key, from 1.
    pub counter: u64,
}

/// For each node, the highest counter of that node's dots that a state has seen.
///
/// Because a node's dots on one key are numbered 1, 2, 3, ... by that node alone, "has seen
/// counter 5" means "has seen dots 1 to 5": the vector summarises a whole causal history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionVector(BTreeMap<NodeId, u64>);

impl VersionVector {
    /// An empty vector: the history of a key never written.
    pub fn new() -> VersionVector {
        VersionVector::default()
    }

    /// The highest counter seen from `node` (0 if none).
    pub fn get(&self, node: NodeId) -> u64 {
        self.0.get(&node).copied().unwrap_or(0)
    }

    /// Whether the history this vector summarises includes `dot`.
    pub fn covers(&self, dot: Dot) -> bool {
        self.get(dot.node) >= dot.counter
    }

    /// Whether this vector has seen everything `other` has.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other
            .0
            .iter()
            .all(|(&node, &counter)| self.get(node) >= counter)
    }

    /// Raises every entry to at least `other`'s (the pointwise maximum).
    pub fn merge(&mut self, other: &VersionVector) {
        for (&node, &counter) in &other.0 {
            self.observe(Dot { node, counter });
        }
    }

    /// Records that `dot` has been seen.
    pub fn observe(&mut self, dot: Dot) {
        let entry = self.0.entry(dot.node).or_insert(0);
        *entry = (*entry).max(dot.counter);
    }

    /// Whether the vector has seen no dot at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of nodes with an entry.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Each entry as `(node, highest counter seen)`, in node order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.0.iter().map(|(&n, &c)| (n, c))
    }
}

impl FromIterator<(NodeId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (NodeId, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (node, counter) in iter {
            vv.observe(Dot { node, counter });
        }
        vv
    }
}
