//! Layout changes that move no member: a member's address, and the bucket table.

use super::{Change, Layout, LayoutError};
use crate::bucket::{BucketProps, Buckets};
use crate::claim::ClaimError;
use crate::node::NodeId;

impl Layout {
    /// Moves member `id` to `addr` (a node restarted with its data directory at a new
    /// address: a rescheduled pod, a replaced NIC). Only the address changes: tokens, the
    /// transfer under way (its id included, so reports made before still count) and staged
    /// changes keep their meaning, and every list naming the member (the members, the
    /// transfer's previous members, a staged join) names the new address. Returns whether
    /// anything changed; the version moves only if it did, so that clients refetch the ring.
    ///
    /// The node does this itself, and only once nothing answers at the old address under its
    /// id (see the server's `cluster::address`): two processes of one id must never both serve.
    pub fn readdress(&mut self, id: NodeId, addr: &str) -> Result<bool, LayoutError> {
        if !self.is_founded() {
            return Err(LayoutError::NotFounded);
        }
        if crate::node::split_host_port(addr).is_none() {
            return Err(LayoutError::BadAddress(addr.to_string()));
        }
        let previous = self
            .transition
            .iter_mut()
            .flat_map(|t| t.previous.iter_mut());
        let mut named = false;
        let mut changed = false;
        for member in self.members.iter_mut().chain(previous) {
            if member.id == id {
                named = true;
                if member.addr != addr {
                    member.addr = addr.to_string();
                    changed = true;
                }
            }
        }
        for change in &mut self.staged {
            if let Change::Join {
                id: joining,
                addr: staged,
                ..
            } = change
                && *joining == id
            {
                named = true;
                if staged != addr {
                    *staged = addr.to_string();
                    changed = true;
                }
            }
        }
        if !named {
            return Err(ClaimError::NotMember(id).into());
        }
        if changed {
            self.version += 1;
        }
        Ok(changed)
    }

    /// Creates bucket `name` (`create`) or changes it, with `props`; `gossiped` is the table
    /// in force while this layout holds none (see [`Layout::buckets`]). Quorum defaults (`r`,
    /// `w`) change at once. A new `n` is a planned transfer, like a join: every node streams
    /// the bucket's keys to the homes the new `n` gives them (a replica added by raising `n`
    /// serves no read until the transfer has switched), and clean-up drops the copies a
    /// lowered `n` no longer homes. The conflict policy of a bucket never changes: replicas
    /// written under one policy cannot be merged under the other.
    pub fn set_bucket(
        &mut self,
        name: &str,
        props: BucketProps,
        create: bool,
        gossiped: &Buckets,
    ) -> Result<(), LayoutError> {
        if !self.is_founded() {
            return Err(LayoutError::NotFounded);
        }
        let bad = |reason: String| LayoutError::BadBucket {
            bucket: name.to_string(),
            reason,
        };
        if name.is_empty() || name.len() > 255 {
            return Err(bad("a bucket name is 1 to 255 bytes".into()));
        }
        props.validate().map_err(bad)?;
        let before = self.buckets.clone().unwrap_or_else(|| gossiped.clone());
        let existing = before.named.get(name).copied();
        match (create, existing) {
            (true, Some(_)) => return Err(LayoutError::BucketExists(name.to_string())),
            (false, None) => return Err(LayoutError::NoSuchBucket(name.to_string())),
            _ => {}
        }
        let effective = *before.props(name);
        // A bucket created with another policy than the default's must hold no keys yet:
        // the node taking the request checks its own store (see the server's service).
        if existing.is_some() && effective.conflict != props.conflict {
            return Err(LayoutError::ConflictImmutable {
                bucket: name.to_string(),
                is: effective.conflict,
                asked: props.conflict,
            });
        }
        if effective.n != props.n
            && let Some(t) = &self.transition
        {
            return Err(LayoutError::TransferUnderWay(t.id));
        }
        let mut after = before.clone();
        after.named.insert(name.to_string(), props);
        self.buckets = Some(after);
        if effective.n != props.n {
            self.open_transfer(self.members.clone(), Vec::new(), Some(before));
        } else {
            self.version += 1;
        }
        Ok(())
    }
}
