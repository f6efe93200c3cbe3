//! The cluster layout: who the members are, with which tokens, the transfer under way, and the
//! changes staged for the next commit.
//!
//! Membership changes are operator actions in three steps, as in Riak: *stage* joins, leaves
//! and weight changes ([`Layout::stage`]), look at the *plan* (the members and tokens the
//! changes would give, [`Layout::plan`]), then *commit* ([`Layout::commit`]). A commit makes
//! the planned members the ring's members and opens a [`Transition`] that keeps the previous
//! ones until every node has streamed its data to the new owners.
//!
//! The layout is a value with a version. Nodes gossip `(version, digest)` and fetch a newer
//! layout from the peer that has it; a node adopts a layout when it is newer by that order, so
//! every node ends up with the same one. Two operators staging on two nodes at once produce two
//! layouts of the same version; the higher digest wins and the other change is dropped, which
//! the CLI detects by reading the layout back (staging carries the version it was based on).
//!
//! Transfer phases advance by [`Layout::advance`], a pure function of the layout and of the
//! progress nodes report in gossip: every node computes the same next layout on its own.

use serde::{Deserialize, Serialize};

use crate::bucket::Buckets;
use crate::claim::{self, ClaimError};
use crate::hash::digest;
use crate::node::{Member, NodeId};
use crate::ring::{DEFAULT_TOKENS_PER_WEIGHT, Phase, RingConfig, Transition};

/// How far an abort moves the layout version: past the two layouts the automatic advance
/// could derive from the one it replaces (see [`Layout::abort`]).
pub const ABORT_LEAP: u64 = 3;

/// The cluster layout: members and their tokens, the transfer under way, the staged changes.
/// See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Layout {
    /// Bumped by every change to the layout: a staged change, a commit, a transfer phase.
    pub version: u64,
    /// The version of the ring the members make (see [`RingConfig::version`]).
    pub ring_version: u64,
    /// The ring's members with their tokens (the new members while a transfer is under way).
    pub members: Vec<Member>,
    /// The committed change still being transferred, if any: it keeps the previous members
    /// until every node has streamed its data and switched to the new ones.
    pub transition: Option<Transition>,
    /// The changes staged for the next commit, in the order the plan applies them.
    pub staged: Vec<Change>,
    /// How many tokens the allocator gives a member per unit of weight in this cluster's
    /// changes (see [`DEFAULT_TOKENS_PER_WEIGHT`]).
    pub tokens_per_weight: u32,
    /// The bucket table: the founding node's configured buckets (a bootstrap default), then
    /// what `ringkv bucket create` and `set` made of it. Being in the committed layout, it
    /// never reverts when a node leaves and never depends on a node's config file. `None`
    /// only in a layout founded by an older release: the buckets the nodes' config files
    /// gossip apply until the first `bucket` command copies them in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Buckets>,
}

impl Default for Layout {
    fn default() -> Layout {
        Layout::empty(DEFAULT_TOKENS_PER_WEIGHT)
    }
}

impl Layout {
    /// No cluster yet: what a node holds before it founds one or hears of one.
    pub fn empty(tokens_per_weight: u32) -> Layout {
        Layout {
            version: 0,
            ring_version: 0,
            members: Vec::new(),
            transition: None,
            staged: Vec::new(),
            tokens_per_weight,
            buckets: None,
        }
    }

    /// Whether a cluster exists in this layout.
    pub fn is_founded(&self) -> bool {
        self.version > 0
    }

    /// Founds a cluster of `members` (their weights; tokens are allocated here).
    pub fn found(&mut self, members: &[Member]) -> Result<(), LayoutError> {
        if self.is_founded() {
            return Err(LayoutError::AlreadyFounded(self.version));
        }
        let founded = claim::found(members, self.tokens_per_weight)?;
        Layout::check_zones_complete(&founded)?;
        self.members = founded;
        self.version = 1;
        self.ring_version = 1;
        Ok(())
    }

    /// Refuses an operation based on another version of the layout than this one.
    pub fn expect_version(&self, expected: u64) -> Result<(), LayoutError> {
        if expected == self.version {
            Ok(())
        } else {
            Err(LayoutError::Moved {
                expected,
                actual: self.version,
            })
        }
    }

    /// Stages `change` for the next commit, after checking it against the members and the
    /// changes already staged (by planning with it).
    pub fn stage(&mut self, change: Change) -> Result<(), LayoutError> {
        if !self.is_founded() {
            return Err(LayoutError::NotFounded);
        }
        if self.staged.iter().any(|c| c.node() == change.node()) {
            return Err(LayoutError::AlreadyStaged(change.node()));
        }
        self.staged.push(change);
        if let Err(e) = self.plan() {
            self.staged.pop();
            return Err(e);
        }
        self.version += 1;
        Ok(())
    }

    /// Drops every staged change.
    pub fn clear(&mut self) -> Result<(), LayoutError> {
        if !self.is_founded() {
            return Err(LayoutError::NotFounded);
        }
        if self.staged.is_empty() {
            return Err(LayoutError::NothingStaged);
        }
        self.staged.clear();
        self.version += 1;
        Ok(())
    }

    /// The members (with their tokens) the staged changes would give, applied in order.
    pub fn plan(&self) -> Result<Vec<Member>, LayoutError> {
        let mut members = self.members.clone();
        for change in &self.staged {
            members = match change {
                Change::Join {
                    id,
                    addr,
                    weight,
                    zone,
                } => {
                    let joining = Member {
                        zone: zone.clone(),
                        ..Member::new(*id, addr.clone(), *weight)
                    };
                    if members.is_empty() {
                        claim::found(&[joining], self.tokens_per_weight)?
                    } else {
                        claim::join(&members, joining, self.tokens_per_weight)?
                    }
                }
                Change::Leave { id } => claim::leave(&members, *id)?,
                Change::Weight { id, weight } => {
                    claim::reweight(&members, *id, *weight, self.tokens_per_weight)?
                }
                Change::Zone { id, zone } => {
                    crate::node::validate_zone(zone).map_err(LayoutError::BadZone)?;
                    claim::rezone(&members, *id, zone, self.tokens_per_weight)?
                }
            };
        }
        Ok(members)
    }

    /// Makes the plan the ring and opens the transfer from the previous members.
    pub fn commit(&mut self) -> Result<(), LayoutError> {
        if !self.is_founded() {
            return Err(LayoutError::NotFounded);
        }
        if self.staged.is_empty() {
            return Err(LayoutError::NothingStaged);
        }
        if let Some(t) = &self.transition {
            return Err(LayoutError::TransferUnderWay(t.id));
        }
        let members = self.plan()?;
        Layout::check_zones_complete(&members)?;
        let previous = std::mem::replace(&mut self.members, members);
        self.open_transfer(previous, Vec::new(), None);
        self.staged.clear();
        Ok(())
    }

    /// Declares member `id` down for good and moves its share to the others at once (Riak's
    /// force-remove, Cassandra's `removenode`): the transfer neither waits for it nor sends it
    /// anything, and the surviving previous home replicas of each of its keys stream the key
    /// to its new homes (each survivor sends its own copy, so a write only one of them held
    /// is not dropped). Staged changes to `id` are dropped.
    ///
    /// Also unwedges a transfer under way that waits on `id`: the transfer is planned again
    /// without it, from the members that hold every write so far. While streaming those are
    /// the previous members (reads still go to them, and writes reach them); once switching,
    /// the new ones (every node has streamed to them, and writes reach them).
    pub fn remove(&mut self, id: NodeId) -> Result<(), LayoutError> {
        if !self.is_founded() {
            return Err(LayoutError::NotFounded);
        }
        let member = self.members.iter().any(|m| m.id == id);
        // The holders' bucket table too: a transfer of a bucket's `n` keeps its previous
        // table while streaming.
        let (holders, mut removed, holders_buckets) = match &self.transition {
            None => (self.members.clone(), Vec::new(), None),
            Some(t) if t.is_removed(id) => return Err(LayoutError::AlreadyRemoved(id)),
            Some(t) if !member && !t.previous.iter().any(|m| m.id == id) => {
                return Err(ClaimError::NotMember(id).into());
            }
            Some(t) => match t.phase {
                Phase::Streaming => (
                    t.previous.clone(),
                    t.removed.clone(),
                    t.previous_buckets.clone(),
                ),
                Phase::Switching => (self.members.clone(), t.removed.clone(), None),
            },
        };
        // A node only the previous members list is leaving already: its share has a new
        // home, and only its own part of the transfer is to be done by others.
        let members = if member || self.transition.is_none() {
            claim::leave(&self.members, id)?
        } else {
            self.members.clone()
        };
        removed.push(id);
        self.members = members;
        self.staged.retain(|c| c.node() != id);
        self.open_transfer(holders, removed, holders_buckets);
        Ok(())
    }

    /// Puts `new` (a running node with an empty disk and an id of its own) in the place of
    /// member `old`, which is down for good (Cassandra's replace, Riak's `cluster replace`
    /// after a wiped disk): `new` takes `old`'s tokens and weight, so no other key moves, and
    /// the transfer fills it from the surviving replicas of `old`'s keys as [`Layout::remove`]
    /// does. Until the transfer switches, reads go to the previous members (`new` serves no
    /// read before it is filled); writes reach `new` as an extra home from the start.
    pub fn replace(&mut self, old: NodeId, new: Member) -> Result<(), LayoutError> {
        if !self.is_founded() {
            return Err(LayoutError::NotFounded);
        }
        if let Some(t) = &self.transition {
            return Err(LayoutError::TransferUnderWay(t.id));
        }
        if self.members.iter().any(|m| m.id == new.id) {
            return Err(ClaimError::AlreadyMember(new.id).into());
        }
        let Some(slot) = self.members.iter().position(|m| m.id == old) else {
            return Err(ClaimError::NotMember(old).into());
        };
        let previous = self.members.clone();
        let replaced = &mut self.members[slot];
        replaced.id = new.id;
        replaced.addr = new.addr;
        self.staged.retain(|c| c.node() != old);
        self.open_transfer(previous, vec![old], None);
        Ok(())
    }

    /// Ends the transfer under way, nothing lost. While it is streaming, back to the members
    /// before it, by a transfer that moves nothing but what removed members held: they still
    /// hold every write (reads go to them, and every write reached them), and nobody has
    /// deleted a copy (clean-up waits for a settled ring).
    /// Once it is switching, reads go to the new members and only they are sure to hold
    /// everything, so the way back is a planned transfer from them to the previous members.
    /// Members declared removed stay removed: the way back hands their share to the others,
    /// filled by the survivors, as [`Layout::remove`] does.
    ///
    /// Every node moves a transfer on by itself ([`Layout::advance`]), so an abort may race
    /// the next phase, and the phase after it, computed elsewhere from the layout it
    /// replaces. The aborted layout's version leaps past both ([`ABORT_LEAP`]) so that it
    /// wins wherever it meets them. While streaming, neither can settle the ring anyway: the
    /// settled ring needs the switch reported by every node the transfer waits for, and the
    /// node that took the abort held this layout, still streaming, so it never did (the
    /// service lets only such a node, involved and not removed, take an abort); and the way
    /// back is itself a transfer, so nothing is cleaned up before every previous member has
    /// taken it. Once switching, the settled new ring may form elsewhere and be cleaned up
    /// after, which is harmless: the way back reads and streams from the very members that
    /// ring settles on.
    pub fn abort(&mut self) -> Result<(), LayoutError> {
        let Some(t) = &self.transition else {
            return Err(LayoutError::NoTransfer);
        };
        let mut back = t.previous.clone();
        for id in &t.removed {
            if back.iter().any(|m| m.id == *id) {
                back = claim::leave(&back, *id)?;
            }
        }
        let Some(t) = self.transition.take() else {
            return Err(LayoutError::NoTransfer);
        };
        let version = self.version + ABORT_LEAP;
        // A transfer of a bucket's `n` goes back to the `n`s before it as well, and only
        // those: a bucket created meanwhile stays, with its conflict policy.
        let now = self.buckets.clone();
        if let (Some(before), Some(table)) = (&t.previous_buckets, &mut self.buckets) {
            *table = table.with_n_of(before);
        }
        match t.phase {
            // The previous members still hold everything. Back to them through a transfer
            // of their own (which moves nothing but the removed members' share), not as a
            // settled ring at once: clean-up then waits until every one of them has taken
            // the abort, so an abort that loses a race to another layout deleted nothing.
            Phase::Streaming => {
                self.members = back;
                self.open_transfer(t.previous, t.removed, None);
            }
            // The new members (under the new table) hold everything: the way back streams
            // from them, their table on the previous side.
            Phase::Switching => {
                let holders = std::mem::replace(&mut self.members, back);
                let holders_buckets = t.previous_buckets.as_ref().and(now);
                self.open_transfer(holders, t.removed, holders_buckets);
            }
        }
        self.version = version;
        Ok(())
    }

    /// Opens a transfer from `previous` (the members holding every write) to the current
    /// members, with `removed` declared down.
    fn open_transfer(
        &mut self,
        previous: Vec<Member>,
        removed: Vec<NodeId>,
        previous_buckets: Option<Buckets>,
    ) {
        self.ring_version += 1;
        // Two changes of `n` from one base differ only in their tables: so do their ids.
        let mut id = Transition::id_for(self.ring_version, &previous, &self.members, &removed);
        if previous_buckets.is_some() {
            let mut bytes = Vec::new();
            let tables = (&previous_buckets, &self.buckets);
            let _ = ciborium::into_writer(&(id, tables), &mut bytes);
            id = digest(&bytes);
        }
        self.transition = Some(Transition {
            id,
            phase: Phase::Streaming,
            previous,
            removed,
            previous_buckets,
        });
        self.version += 1;
    }

    /// Every node the transfer involves: the members before and after. Sorted, distinct.
    pub fn involved(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.members.iter().map(|m| m.id).collect();
        if let Some(t) = &self.transition {
            ids.extend(t.previous.iter().map(|m| m.id));
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Moves the transfer on when every involved node has reported the step its phase waits
    /// for (`reported(node)`: the transition id and step it last reported). Returns whether
    /// the layout changed.
    pub fn advance(&mut self, reported: impl Fn(NodeId) -> Option<(u64, Step)>) -> bool {
        let Some(transition) = &self.transition else {
            return false;
        };
        let needed = match transition.phase {
            Phase::Streaming => Step::Streamed,
            Phase::Switching => Step::Switched,
        };
        let id = transition.id;
        let done = self
            .involved()
            .into_iter()
            .filter(|node| !transition.is_removed(*node))
            .all(|node| matches!(reported(node), Some((t, step)) if t == id && step >= needed));
        if !done {
            return false;
        }
        match transition.phase {
            Phase::Streaming => {
                if let Some(t) = &mut self.transition {
                    t.phase = Phase::Switching;
                }
            }
            Phase::Switching => self.transition = None,
        }
        self.ring_version += 1;
        self.version += 1;
        true
    }

    /// The ring config this layout gives: with its own bucket table, or, in a layout that has
    /// none yet, with `buckets` (the nodes' gossiped settings, at `settings_version`).
    pub fn ring_config(&self, buckets: Buckets, settings_version: u64) -> RingConfig {
        let (buckets, settings_version) = match &self.buckets {
            Some(own) => (own.clone(), 0),
            None => (buckets, settings_version),
        };
        RingConfig {
            // The layout's version, not `ring_version`: then "newer ring" and "newer layout"
            // are one order, and two rings of one version are rivals the layout order
            // decided between (see `RingEpoch::is_rival_of`).
            version: self.version,
            members: self.members.clone(),
            transition: self.transition.clone(),
            buckets,
            settings_version,
        }
    }

    /// A digest of the whole layout: with `version`, what nodes gossip about it.
    pub fn digest(&self) -> u64 {
        let mut bytes = Vec::new();
        // Encoding a plain struct into a Vec cannot fail; an empty digest input would only
        // make two layouts of one version compare equal, and the fetch would then find out.
        let _ = ciborium::into_writer(self, &mut bytes);
        digest(&bytes)
    }

    /// The order in which layouts replace each other: by version, then by digest.
    pub fn rank(&self) -> (u64, u64) {
        (self.version, self.digest())
    }

    /// The member with this id, if it is one (of the new members, during a transfer).
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
}

mod change;
mod error;
mod settings;
#[cfg(test)]
mod tests;
mod zones;

pub use change::{Change, Step};
pub use error::LayoutError;
