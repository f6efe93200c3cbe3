//! Actors, dots and version vectors: the causal bookkeeping under every sibling set.
//!
//! # Why an actor is not just a node
//!
//! A dot names one write as "the `counter`-th write of `actor` on this key", and a version
//! vector is a max-map: `covers((A, 17))` is `vv[A] >= 17`, so it also claims `(A, 1)` to
//! `(A, 16)`. That is only true if `A` numbers its writes on the key 1, 2, 3, ... and never
//! gives one number twice. A node cannot promise that for ever under one name: it forgets keys
//! (a delivered hint, a cleaned-up copy), loses the tail of its log in a power cut, or is
//! restored from a checkpoint, and afterwards it no longer knows which counters it used. So a
//! node stamps under *actors*: its id plus an epoch. It continues an actor on a key only while
//! it provably remembers that actor's last dot there, and otherwise takes a fresh epoch, which
//! no state anywhere has seen (the server's `request::actors` says how). Epoch 0 is the actor
//! stores made before epochs existed used: the node id alone, encoded as before.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::node::NodeId;

/// Who numbers a sequence of dots: a node under one of its epochs. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Actor {
    /// The node that stamps under this actor.
    pub node: NodeId,
    /// Which of the node's sequences; 0 for the one stores made before epochs existed.
    pub epoch: u64,
}

impl Actor {
    /// The actor of dots made before epochs existed (and of client-made `lww` dots).
    pub fn legacy(node: NodeId) -> Actor {
        Actor { node, epoch: 0 }
    }
}

impl From<NodeId> for Actor {
    fn from(node: NodeId) -> Actor {
        Actor::legacy(node)
    }
}

impl fmt::Display for Actor {
    /// The node id, then `.epoch` in hex unless it is the legacy epoch 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch == 0 {
            write!(f, "{}", self.node)
        } else {
            write!(f, "{}.{:x}", self.node, self.epoch)
        }
    }
}

/// Epoch 0 is the bare node id (the form every earlier version wrote, so their stores and
/// contexts still decode); any other epoch is the pair `[node, epoch]`.
impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.epoch == 0 {
            serializer.serialize_u64(self.node.0)
        } else {
            (self.node.0, self.epoch).serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Actor, D::Error> {
        struct ActorVisitor;

        impl<'de> Visitor<'de> for ActorVisitor {
            type Value = Actor;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node id or a [node id, epoch] pair")
            }

            fn visit_u64<E: de::Error>(self, node: u64) -> Result<Actor, E> {
                Ok(Actor::legacy(NodeId(node)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Actor, A::Error> {
                let node: u64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let epoch: u64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                if epoch == 0 {
                    // Epoch 0 has one form only, or two encodings of one actor would differ.
                    return Err(de::Error::custom("epoch 0 is written as a bare node id"));
                }
                Ok(Actor {
                    node: NodeId(node),
                    epoch,
                })
            }
        }

        deserializer.deserialize_any(ActorVisitor)
    }
}

/// One write event: the `counter`-th write stamped by `actor` on a given key.
///
/// Only servers make dots for `siblings` buckets (see
/// [`crate::siblings::SiblingSet::stamp`]), so a version vector holds entries for servers'
/// actors, never one per client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The actor that stamped the write. Encoded under its old name `node`, which a legacy
    /// actor's encoding (a bare node id) keeps byte for byte.
    #[serde(rename = "node")]
    pub actor: Actor,
    /// Where the write falls in that actor's sequence of writes to the key, from 1.
    pub counter: u64,
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.actor, self.counter)
    }
}

/// For each actor, the highest counter of that actor's dots that a state has seen.
///
/// Because an actor's dots on one key are numbered 1, 2, 3, ... by that actor alone, "has seen
/// counter 5" means "has seen dots 1 to 5": the vector summarises a whole causal history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionVector(BTreeMap<Actor, u64>);

impl VersionVector {
    /// An empty vector: the history of a key never written.
    pub fn new() -> VersionVector {
        VersionVector::default()
    }

    /// The highest counter seen from `actor` (0 if none).
    pub fn get(&self, actor: Actor) -> u64 {
        self.0.get(&actor).copied().unwrap_or(0)
    }

    /// Whether the history this vector summarises includes `dot`.
    pub fn covers(&self, dot: Dot) -> bool {
        self.get(dot.actor) >= dot.counter
    }

    /// Whether this vector has seen everything `other` has.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other
            .0
            .iter()
            .all(|(&actor, &counter)| self.get(actor) >= counter)
    }

    /// Raises every entry to at least `other`'s (the pointwise maximum).
    pub fn merge(&mut self, other: &VersionVector) {
        for (&actor, &counter) in &other.0 {
            self.observe(Dot { actor, counter });
        }
    }

    /// Records that `dot` has been seen.
    pub fn observe(&mut self, dot: Dot) {
        let entry = self.0.entry(dot.actor).or_insert(0);
        *entry = (*entry).max(dot.counter);
    }

    /// Whether the vector has seen no dot at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of actors with an entry.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Keeps only the entries of the actors `keep` accepts: a pruned vector (see the
    /// server's purge rule, which alone makes forgetting history safe).
    pub fn retain(&mut self, mut keep: impl FnMut(Actor) -> bool) {
        self.0.retain(|&actor, _| keep(actor));
    }

    /// Each entry as `(actor, highest counter seen)`, in actor order.
    pub fn iter(&self) -> impl Iterator<Item = (Actor, u64)> + '_ {
        self.0.iter().map(|(&a, &c)| (a, c))
    }
}

impl FromIterator<(Actor, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (Actor, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (actor, counter) in iter {
            vv.observe(Dot { actor, counter });
        }
        vv
    }
}

/// Entries of legacy actors (epoch 0), as tests and older contexts name them.
impl FromIterator<(NodeId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (NodeId, u64)>>(iter: I) -> Self {
        iter.into_iter()
            .map(|(node, counter)| (Actor::legacy(node), counter))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> Vec<u8> {
        let mut bytes = Vec::new();
        ciborium::into_writer(value, &mut bytes).expect("encode");
        let _: T = ciborium::from_reader(bytes.as_slice()).expect("decode");
        bytes
    }

    #[test]
    fn a_legacy_actor_keeps_the_bytes_earlier_versions_wrote() {
        // Before epochs, a vector was a CBOR map from a bare node id to a counter.
        let old: BTreeMap<u64, u64> = [(7, 3), (9, 1)].into();
        let mut old_bytes = Vec::new();
        ciborium::into_writer(&old, &mut old_bytes).expect("encode");
        let vv: VersionVector = ciborium::from_reader(old_bytes.as_slice()).expect("decode");
        assert_eq!(vv.get(Actor::legacy(NodeId(7))), 3);
        assert_eq!(
            round_trip(&vv),
            old_bytes,
            "legacy entries re-encode byte for byte"
        );
    }

    #[test]
    fn epochs_round_trip_and_are_distinct_actors() {
        let a = Actor {
            node: NodeId(7),
            epoch: 0xfeed,
        };
        let vv: VersionVector = [(a, 2), (Actor::legacy(NodeId(7)), 5)]
            .into_iter()
            .collect();
        let bytes = round_trip(&vv);
        let back: VersionVector = ciborium::from_reader(bytes.as_slice()).expect("decode");
        assert_eq!(back, vv);
        assert!(
            !vv.covers(Dot {
                actor: a,
                counter: 3
            }),
            "epochs do not share counters"
        );
        assert_eq!(a.to_string(), "0000000000000007.feed");
    }

    #[test]
    fn malformed_actors_are_refused() {
        for bad in [
            vec![0x82, 0x07, 0x00],       // [7, 0]: epoch 0 has one form only
            vec![0x81, 0x07],             // [7]
            vec![0x83, 0x07, 0x01, 0x01], // [7, 1, 1]
            vec![0x20],                   // -1
        ] {
            assert!(
                ciborium::from_reader::<Actor, _>(bad.as_slice()).is_err(),
                "{bad:?}"
            );
        }
    }
}
