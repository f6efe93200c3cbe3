//! Membership changes under way: the transfer phases and where a key's requests go meanwhile.
//!
//! A commit does not move data at once. Until every node has streamed the keys it no longer
//! owns, the ring keeps the previous members beside the new ones ([`Transition`]), and
//! [`Ring::route`] decides, phase by phase ([`Phase`]), which preference list reads use and
//! which extra home replicas a write must reach so that nothing written during the transfer is
//! left only on nodes that are about to drop it.

use serde::{Deserialize, Serialize};

use super::{PreferenceList, Ring};
use crate::hash::{Position, digest, key_position};
use crate::node::{Member, NodeId};

/// Where a membership change stands. See the module docs and `ARCHITECTURE.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nodes stream the keys they no longer own to their new homes. Reads use the previous
    /// preference lists, which still hold everything; writes reach the homes of both.
    Streaming,
    /// Every node has streamed. Reads use the new preference lists; writes still reach both,
    /// because clients still in `Streaming` may read the previous lists until every node has
    /// moved on (nodes refuse their requests from now on).
    Switching,
}

/// A membership change being applied: the members before it, and how far it has got.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transition {
    /// Names this transfer; nodes report progress against it. A digest of what the transfer
    /// moves (see [`Transition::id_for`]): two commits racing on two nodes give two ids, so a
    /// report made for the layout that lost the race never counts for the one that won.
    pub id: u64,
    /// How far the transfer has got, which decides the preference list reads use.
    pub phase: Phase,
    /// The members before the change, with their tokens: they still hold the data that has
    /// not been streamed yet, so reads (while streaming) and writes must still reach them.
    pub previous: Vec<Member>,
    /// Members declared down for good (`ringkv cluster remove`): the transfer neither waits
    /// for their reports nor sends them copies, and the surviving previous home replicas of
    /// each of their keys stream the key in their place. Absent from older layouts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<NodeId>,
    /// The bucket table before the change, when the change is of a bucket's `n` (`ringkv
    /// bucket set`): the previous preference lists take that many homes. `None`: the same
    /// table on both sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_buckets: Option<crate::bucket::Buckets>,
}

impl Transition {
    /// The id of a transfer committed at `ring_version` from `previous` to `members`, with
    /// `removed` declared down: a digest of all four.
    pub fn id_for(
        ring_version: u64,
        previous: &[Member],
        members: &[Member],
        removed: &[NodeId],
    ) -> u64 {
        let mut bytes = Vec::new();
        // Encoding plain values into a Vec cannot fail; were it to, the ring version alone
        // still names the transfer.
        let _ = ciborium::into_writer(&(ring_version, previous, members, removed), &mut bytes);
        digest(&bytes)
    }

    /// Whether `node` was declared down for good in this transfer.
    pub fn is_removed(&self, node: NodeId) -> bool {
        self.removed.contains(&node)
    }
}

/// Where one key's requests go. See [`Ring::route`].
#[derive(Debug)]
pub struct Route<'a> {
    /// The preference list reads use (and writes, first).
    pub preference: PreferenceList<'a>,
    /// How many homes under the previous ring are none under the current one (and so are
    /// cleaned up once the ring settles). A write needs that many acknowledgements on top of
    /// its quorum (or `extra_homes.len()`, if more), so that at least `w` come from homes
    /// that keep the key: when a bucket's `n` is lowered, nobody streams what reaches a
    /// dropped home after its streaming pass.
    pub leaving: usize,
    /// How many of `preference`'s first members are the key's homes: the bucket's `n` under
    /// the ring reads use (a transfer that changes `n` has one on each side).
    pub n: usize,
    /// During a transfer: the home replicas under the other ring that are not homes under the
    /// reading one. A write must reach them too, on top of its quorum.
    pub extra_homes: Vec<&'a Member>,
}

impl Ring {
    /// The transfer under way, if any.
    pub fn transition(&self) -> Option<&Transition> {
        self.config.transition.as_ref()
    }

    /// The preference list under the previous members, during a transfer.
    pub fn previous_preference_list(
        &self,
        bucket: &[u8],
        key: &[u8],
    ) -> Option<PreferenceList<'_>> {
        let (table, transition) = (self.previous.as_ref()?, self.config.transition.as_ref()?);
        Some(table.walk(&transition.previous, key_position(bucket, key)))
    }

    /// The preference list under the previous members of whatever sits at `position`,
    /// during a transfer.
    pub fn previous_preference_list_at(&self, position: Position) -> Option<PreferenceList<'_>> {
        let (table, transition) = (self.previous.as_ref()?, self.config.transition.as_ref()?);
        Some(table.walk(&transition.previous, position))
    }

    /// The ends of the ring's *fragments*, sorted, without repeats: every token of the current
    /// members and, during a transfer, of the previous ones. A fragment runs from just after
    /// one end to the next (the first wraps around from the last end), and every position in
    /// it has the same preference list under both member lists: anti-entropy compares
    /// replicas fragment by fragment. Empty on an empty ring.
    pub fn fragment_ends(&self) -> Vec<Position> {
        let mut ends: Vec<Position> = self.current.tokens.iter().map(|(p, _)| *p).collect();
        if let Some(previous) = &self.previous {
            ends.extend(previous.tokens.iter().map(|(p, _)| *p));
        }
        ends.sort_unstable();
        ends.dedup();
        ends
    }

    /// Where requests for `key` go: the preference list reads use (the previous one while a
    /// transfer is streaming, else the current one) and the homes a write must reach besides.
    pub fn route(&self, bucket: &str, key: &[u8]) -> Route<'_> {
        let n_now = usize::from(self.bucket(bucket).n);
        let current = self.preference_list(bucket.as_bytes(), key);
        let Some(previous) = self.previous_preference_list(bucket.as_bytes(), key) else {
            return Route {
                preference: current,
                n: n_now,
                extra_homes: Vec::new(),
                leaving: 0,
            };
        };
        let n_before = usize::from(self.previous_bucket(bucket).n);
        let streaming = self
            .transition()
            .is_some_and(|t| t.phase == Phase::Streaming);
        let ((reading, n), (other, n_other)) = if streaming {
            ((previous, n_before), (current, n_now))
        } else {
            ((current, n_now), (previous, n_before))
        };
        let homes: Vec<NodeId> = reading.clone().take(n).map(|m| m.id).collect();
        let others: Vec<&Member> = other.take(n_other).collect();
        // Homes under the previous ring that are none under the current one, whatever the
        // phase: the ones clean-up empties once the ring settles.
        let (previous_homes, current_homes): (Vec<NodeId>, Vec<NodeId>) = {
            let others: Vec<NodeId> = others.iter().map(|m| m.id).collect();
            if streaming {
                (homes.clone(), others)
            } else {
                (others, homes.clone())
            }
        };
        // A member declared removed never acknowledges anything: not counted.
        let removed = |id: &NodeId| self.transition().is_some_and(|t| t.is_removed(*id));
        let leaving = previous_homes
            .iter()
            .filter(|id| !current_homes.contains(id) && !removed(id))
            .count();
        let extra_homes = others
            .into_iter()
            .filter(|m| !homes.contains(&m.id))
            .collect();
        Route {
            preference: reading,
            n,
            extra_homes,
            leaving,
        }
    }

    /// The properties `bucket` had before the transfer under way (its current ones when the
    /// transfer did not change them, or without a transfer).
    pub fn previous_bucket(&self, bucket: &str) -> &crate::bucket::BucketProps {
        match self.transition().and_then(|t| t.previous_buckets.as_ref()) {
            Some(before) => before.props(bucket),
            None => self.bucket(bucket),
        }
    }

    /// The properties of `bucket` on the side reads use now (the previous ones while a
    /// transfer that changes them is streaming, else the current ones): where requests take
    /// their default `r` and `w`, which were chosen for that side's `n`. A change of `n` may
    /// lower `r` with it, and the new `r` over the previous, longer lists could miss a write.
    pub fn reading_bucket(&self, bucket: &str) -> &crate::bucket::BucketProps {
        let streaming = self
            .transition()
            .is_some_and(|t| t.phase == Phase::Streaming);
        if streaming {
            self.previous_bucket(bucket)
        } else {
            self.bucket(bucket)
        }
    }

    /// The home replicas of `key` under the previous members (empty without a transfer).
    pub fn previous_home_replicas(&self, bucket: &str, key: &[u8]) -> Vec<&Member> {
        let n = usize::from(self.previous_bucket(bucket).n);
        self.previous_preference_list(bucket.as_bytes(), key)
            .map(|list| list.take(n).collect())
            .unwrap_or_default()
    }
}
