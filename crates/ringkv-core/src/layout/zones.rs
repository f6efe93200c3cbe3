//! Zones in the layout: all members labelled or none, and only processes that know zones
//! hold a layout with them (and, by the same rule, a bucket table with a time to live only
//! processes that know expiry).

use std::collections::BTreeSet;

use super::{Change, Layout, LayoutError};
use crate::node::NodeId;
use crate::wire::{EXPIRY_PROTOCOL_VERSION, ZONES_PROTOCOL_VERSION};

impl Layout {
    /// Whether any member, previous member or staged change names a zone: such a layout is
    /// never handed to a process older than [`ZONES_PROTOCOL_VERSION`], which would drop the
    /// labels.
    pub fn has_zones(&self) -> bool {
        let labelled = |m: &crate::node::Member| !m.zone.is_empty();
        self.members.iter().any(labelled)
            || self
                .transition
                .as_ref()
                .is_some_and(|t| t.previous.iter().any(labelled))
            || self.staged.iter().any(|c| match c {
                Change::Zone { .. } => true,
                Change::Join { zone, .. } => !zone.is_empty(),
                _ => false,
            })
    }

    /// The nodes that will hold this layout and act on it: members, previous members not
    /// removed, and nodes whose join is staged.
    fn holders(&self) -> BTreeSet<NodeId> {
        let mut holders: BTreeSet<NodeId> = self.members.iter().map(|m| m.id).collect();
        if let Some(t) = &self.transition {
            holders.extend(
                t.previous
                    .iter()
                    .map(|m| m.id)
                    .filter(|id| !t.is_removed(*id)),
            );
        }
        holders.extend(self.staged.iter().filter_map(|c| match c {
            Change::Join { id, .. } => Some(*id),
            _ => None,
        }));
        holders
    }

    /// Refuses this layout, made from `before` by an operator's change, if it has zones and
    /// would reach a process that does not know them: when it brings zones in, every holder
    /// must speak [`ZONES_PROTOCOL_VERSION`]; when it had them, every holder it adds must.
    /// `speaks` is what gossip says of a node: `None` if it has not heard of it (yet: a node
    /// just started), `Some(None)` if it gossips no protocol (a release before zones), else
    /// the newest protocol it speaks. Removals and aborts add nobody, so they are never
    /// refused.
    pub fn check_zone_readers(
        &self,
        before: &Layout,
        speaks: impl Fn(NodeId) -> Option<Option<u32>>,
    ) -> Result<(), LayoutError> {
        let newcomers = self.newcomers(before, Layout::has_zones);
        match first_unable(newcomers, ZONES_PROTOCOL_VERSION, speaks) {
            None => Ok(()),
            Some((node, None)) => Err(LayoutError::ZonesUnheard { node }),
            Some((node, Some(speaks))) => Err(LayoutError::ZonesUnknown { node, speaks }),
        }
    }

    /// The holders of this layout that must speak the protocol of a feature `has` says it
    /// uses: none without it, all when `before` did not use it, else those it adds.
    fn newcomers(&self, before: &Layout, has: impl Fn(&Layout) -> bool) -> Vec<NodeId> {
        if !has(self) {
            return Vec::new();
        }
        let known = if has(before) {
            before.holders()
        } else {
            BTreeSet::new()
        };
        self.holders().difference(&known).copied().collect()
    }

    /// Whether the bucket table (or, during a transfer, the previous one) gives some bucket
    /// a default time to live: such a layout is never handed to a process older than
    /// [`EXPIRY_PROTOCOL_VERSION`], which would refuse the table or keep values for ever.
    pub fn has_expiry(&self) -> bool {
        self.buckets.as_ref().is_some_and(|b| b.has_expiry())
            || self
                .transition
                .as_ref()
                .and_then(|t| t.previous_buckets.as_ref())
                .is_some_and(|b| b.has_expiry())
    }

    /// Every check of who may hold this layout, made from `before` by an operator's change:
    /// [`Layout::check_zone_readers`], and the same rule for a bucket's time to live (every
    /// holder must speak [`EXPIRY_PROTOCOL_VERSION`] when the change brings one in, every
    /// holder it adds when there was one).
    pub fn check_readers(
        &self,
        before: &Layout,
        speaks: impl Fn(NodeId) -> Option<Option<u32>>,
    ) -> Result<(), LayoutError> {
        self.check_zone_readers(before, &speaks)?;
        let newcomers = self.newcomers(before, Layout::has_expiry);
        match first_unable(newcomers, EXPIRY_PROTOCOL_VERSION, speaks) {
            None => Ok(()),
            Some((node, None)) => Err(LayoutError::ExpiryUnheard { node }),
            Some((node, Some(speaks))) => Err(LayoutError::ExpiryUnknown { node, speaks }),
        }
    }

    /// Refuses members of which some have a zone and some none: an unlabelled member would
    /// make a zone of its own, holding a copy of most keys (with `n` at least the zones, of
    /// every key its zone's walk meets first), which is never what was meant.
    pub(super) fn check_zones_complete(members: &[crate::node::Member]) -> Result<(), LayoutError> {
        let unlabelled: Vec<NodeId> = members
            .iter()
            .filter(|m| m.zone.is_empty())
            .map(|m| m.id)
            .collect();
        if unlabelled.is_empty() || unlabelled.len() == members.len() {
            return Ok(());
        }
        Err(LayoutError::ZonesIncomplete { unlabelled })
    }
}

/// The first of `nodes` not known to speak `needs`: `(node, None)` if gossip has not heard
/// of it, `(node, Some(what it gossips))` if it speaks less (`None` inside: no protocol, a
/// release before zones).
fn first_unable(
    nodes: Vec<NodeId>,
    needs: u32,
    speaks: impl Fn(NodeId) -> Option<Option<u32>>,
) -> Option<(NodeId, Option<Option<u32>>)> {
    nodes.into_iter().find_map(|id| match speaks(id) {
        None => Some((id, None)),
        Some(version) if version.is_none_or(|v| v < needs) => Some((id, Some(version))),
        Some(_) => None,
    })
}
