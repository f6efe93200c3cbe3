//! The token allocator: where a member's tokens go when it joins, leaves or changes weight.
//!
//! Every member should own a share of the ring proportional to its weight, and a change should
//! move no more data than it must. Random tokens get there only by sheer numbers (a share
//! varies by about `1/sqrt(tokens)`), which a ring of thousands of nodes cannot afford. The
//! allocator gets there by construction, in the spirit of Cassandra's token allocation:
//!
//! - **Join** (or a weight increase): the newcomer gets `weight × tokens_per_weight` tokens.
//!   Each one takes an equal slice of the newcomer's target share from the member that most
//!   exceeds its own target, cut from the start of that member's largest arc. Only keys in
//!   those slices change their first replica, and every one of them moves to the newcomer.
//! - **Leave** (or a weight decrease): the member's tokens (its largest arcs first, for a
//!   decrease) are handed whole, one by one, to the member furthest below its target. Only the
//!   keys of the tokens handed over change their first replica.
//!
//! - **Zones**: each zone's tokens are allocated as a ring of their own: a member joins,
//!   leaves and changes weight among the members of its zone only, and a member moved to
//!   another zone leaves its old zone and joins the new one. The preference list takes one
//!   member of each zone before a second of any ([`crate::ring`]), so what a member stores is
//!   its share of its zone's ring, and balancing each zone on its own balances the whole. A
//!   cluster without labels is one zone, allocated exactly as before zones existed.
//!
//! The first member of a cluster (or of a zone) spreads its tokens evenly from a position
//! derived from its id.
//! The allocator is deterministic: the same member list and change give the same tokens, so
//! `cluster plan` shows exactly what `cluster commit` will do.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::hash::{Position, token_position};
use crate::node::{Member, NodeId};

/// The whole ring, as an integer: arcs and shares are measured in positions.
const RING: u128 = 1 << 64;

/// How many tokens either side of a new token the allocator keeps free of the newcomer's own,
/// when it can: the replica count of the default bucket.
const SPREAD: usize = 3;

/// Why a change cannot be allocated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ClaimError {
    /// The joining node is a member already, or a new cluster lists one node twice: a member
    /// list holds each id once, or the ring could not tell the two members' tokens apart.
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    /// The node asked to leave or to change weight is not in the member list.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// A weight of 0 was asked for. A member of weight 0 would own no tokens and yet be
    /// listed; leaving is how a node gives up its share.
    #[error("weights start at 1")]
    ZeroWeight,
    /// The only member was asked to leave: there would be no node left to hand its data to.
    #[error("node {0} is the last member; a cluster cannot be left empty")]
    LastMember(NodeId),
    /// A member was asked to move to the zone it is in: nothing would change, and a staged
    /// no-op would still open a transfer.
    #[error("node {id} is in zone {zone:?} already")]
    SameZone {
        /// The member.
        id: NodeId,
        /// Its zone.
        zone: String,
    },
}

/// A new cluster of `members` (their weights and zones; tokens ignored): each zone founded on
/// its own (see [`found_zone`]).
pub fn found(members: &[Member], tokens_per_weight: u32) -> Result<Vec<Member>, ClaimError> {
    let mut ids: Vec<NodeId> = members.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(ClaimError::AlreadyMember(pair[0]));
    }
    let mut zones: BTreeMap<&str, Vec<Member>> = BTreeMap::new();
    for m in members {
        zones.entry(m.zone.as_str()).or_default().push(m.clone());
    }
    let mut founded = Vec::with_capacity(members.len());
    for zone in zones.values() {
        founded.extend(found_zone(zone, tokens_per_weight)?);
    }
    founded.sort_by_key(|m| m.id);
    Ok(founded)
}

/// The members of one zone founded: `weight × tokens_per_weight` tokens each, on evenly
/// spaced positions dealt out so that every member owns exactly its share and any few
/// consecutive tokens belong to distinct members.
fn found_zone(members: &[Member], tokens_per_weight: u32) -> Result<Vec<Member>, ClaimError> {
    let mut members = members.to_vec();
    members.sort_by_key(|m| m.id);
    for pair in members.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(ClaimError::AlreadyMember(pair[0].id));
        }
    }
    let mut remaining = Vec::with_capacity(members.len());
    for m in &members {
        if m.weight == 0 {
            return Err(ClaimError::ZeroWeight);
        }
        remaining.push(m.weight * tokens_per_weight.max(1));
    }
    let total: u32 = remaining.iter().sum();
    let Some(first) = members.first() else {
        return Ok(Vec::new());
    };
    // Deal the slots like cards: each to the member with the most tokens still to place
    // (ties by a hash of id and that count, so no member is always first), never to one of
    // the last `SPREAD - 1` owners when another can take it, so that consecutive replicas are
    // distinct. A heap keeps this O(slots × log members): a 10,000-node ring founds at once.
    let start = token_position(first.id.0, 0);
    let step = RING / u128::from(total);
    let priority = |members: &[Member], i: usize, left: u32| {
        (left, token_position(members[i].id.0, left), Reverse(i))
    };
    let mut heap: BinaryHeap<(u32, Position, Reverse<usize>)> = (0..members.len())
        .map(|i| priority(&members, i, remaining[i]))
        .collect();
    let mut recent: Vec<usize> = Vec::new();
    let mut skipped = Vec::with_capacity(SPREAD);
    for m in &mut members {
        m.tokens.clear();
    }
    for slot in 0..total {
        // The best member not dealt one of the last few slots, or failing that the best.
        let mut chosen = None;
        while let Some(top) = heap.pop() {
            if recent.contains(&top.2.0) && skipped.len() < SPREAD {
                skipped.push(top);
                continue;
            }
            chosen = Some(top);
            break;
        }
        let chosen = match chosen {
            Some(c) => {
                heap.extend(skipped.drain(..));
                c
            }
            None => {
                // Only recent owners are left: take the best of them.
                skipped.sort();
                let Some(best) = skipped.pop() else {
                    break;
                };
                heap.extend(skipped.drain(..));
                best
            }
        };
        let index = chosen.2.0;
        remaining[index] -= 1;
        if remaining[index] > 0 {
            heap.push(priority(&members, index, remaining[index]));
        }
        let position = start.wrapping_add((step * u128::from(slot)) as u64);
        members[index].tokens.push(position);
        recent.push(index);
        if recent.len() >= SPREAD {
            recent.remove(0);
        }
    }
    Ok(members)
}

/// The members after `joining` (with its `weight` and zone; its tokens are ignored) joins
/// `members`: it takes its tokens from the members of its zone, or founds the zone.
pub fn join(
    members: &[Member],
    joining: Member,
    tokens_per_weight: u32,
) -> Result<Vec<Member>, ClaimError> {
    if joining.weight == 0 {
        return Err(ClaimError::ZeroWeight);
    }
    if members.iter().any(|m| m.id == joining.id) {
        return Err(ClaimError::AlreadyMember(joining.id));
    }
    let (zone, others) = split_zone(members, &joining.zone);
    let count = joining.weight * tokens_per_weight.max(1);
    let mut allocation = Allocation::new(&zone);
    let index = allocation.push(Member {
        tokens: Vec::new(),
        ..joining
    });
    allocation.add_tokens(index, count);
    Ok(merge(allocation.finish(), others))
}

/// The members after `leaving` leaves, its tokens handed to the others of its zone (or gone
/// with it, when it was the zone's last member).
pub fn leave(members: &[Member], leaving: NodeId) -> Result<Vec<Member>, ClaimError> {
    let member = find(members, leaving)?;
    if members.len() == 1 {
        return Err(ClaimError::LastMember(leaving));
    }
    let (zone, others) = split_zone(members, &member.zone);
    if zone.len() == 1 {
        return Ok(merge(Vec::new(), others));
    }
    let mut allocation = Allocation::new(&zone);
    let index = allocation.index_of(leaving)?;
    allocation.members[index].weight = 0;
    let all = allocation.members[index].tokens.clone();
    allocation.give_away(index, all);
    Ok(merge(allocation.finish(), others))
}

/// The members after `id`'s weight becomes `weight`: tokens added or handed away to match,
/// within its zone.
pub fn reweight(
    members: &[Member],
    id: NodeId,
    weight: u32,
    tokens_per_weight: u32,
) -> Result<Vec<Member>, ClaimError> {
    if weight == 0 {
        return Err(ClaimError::ZeroWeight);
    }
    let (zone, others) = split_zone(members, &find(members, id)?.zone);
    let mut allocation = Allocation::new(&zone);
    let index = allocation.index_of(id)?;
    allocation.members[index].weight = weight;
    let want = (weight * tokens_per_weight.max(1)) as usize;
    let have = allocation.members[index].tokens.len();
    if want > have {
        allocation.add_tokens(index, (want - have) as u32);
    } else if want < have {
        // Hand away arcs worth the share it no longer should own, the largest that fit first:
        // the share follows the weight even when the token count cannot exactly.
        let target = allocation.targets()[index];
        let mut excess = allocation.owned[index].saturating_sub(target);
        let mut tokens = allocation.members[index].tokens.clone();
        tokens.sort_by_key(|&p| std::cmp::Reverse(allocation.arc(p)));
        let mut handed = Vec::new();
        for p in tokens {
            let arc = allocation.arc(p);
            if arc <= excess + arc / 2 && handed.len() + 1 < have {
                excess = excess.saturating_sub(arc);
                handed.push(p);
            }
        }
        allocation.give_away(index, handed);
    }
    Ok(merge(allocation.finish(), others))
}

/// The members after `id` moves to `zone`: it leaves its old zone (its tokens handed to the
/// members staying there) and joins the new one with new tokens. Every key it held moves,
/// which is the price of a zone change; turning zones on moves most of the ring.
pub fn rezone(
    members: &[Member],
    id: NodeId,
    zone: &str,
    tokens_per_weight: u32,
) -> Result<Vec<Member>, ClaimError> {
    let member = find(members, id)?;
    if member.zone == zone {
        return Err(ClaimError::SameZone {
            id,
            zone: zone.to_string(),
        });
    }
    let moved = Member {
        zone: zone.to_string(),
        tokens: Vec::new(),
        ..member.clone()
    };
    if members.len() == 1 {
        return found(&[moved], tokens_per_weight);
    }
    join(&leave(members, id)?, moved, tokens_per_weight)
}

fn find(members: &[Member], id: NodeId) -> Result<&Member, ClaimError> {
    members
        .iter()
        .find(|m| m.id == id)
        .ok_or(ClaimError::NotMember(id))
}

/// The members of `zone`, and the others.
fn split_zone(members: &[Member], zone: &str) -> (Vec<Member>, Vec<Member>) {
    members.iter().cloned().partition(|m| m.zone == zone)
}

/// One member list of two, sorted by id.
fn merge(mut zone: Vec<Member>, others: Vec<Member>) -> Vec<Member> {
    zone.extend(others);
    zone.sort_by_key(|m| m.id);
    zone
}

/// A member list being changed: who owns each token, and how much of the ring each member owns.
struct Allocation {
    members: Vec<Member>,
    owner: BTreeMap<Position, usize>,
    owned: Vec<u128>,
}

impl Allocation {
    fn new(members: &[Member]) -> Allocation {
        let mut members = members.to_vec();
        members.sort_by_key(|m| m.id);
        let mut owner = BTreeMap::new();
        for (index, m) in members.iter().enumerate() {
            for &t in &m.tokens {
                // A position claimed twice keeps its lowest-id owner, as the ring does.
                owner.entry(t).or_insert(index);
            }
        }
        let mut owned = vec![0; members.len()];
        let mut previous = owner.iter().next_back().map(|(&p, _)| p);
        for (&p, &i) in &owner {
            owned[i] += match previous {
                Some(q) if q != p => u128::from(p.wrapping_sub(q)),
                _ => RING,
            };
            previous = Some(p);
        }
        Allocation {
            owned,
            members,
            owner,
        }
    }

    fn index_of(&self, id: NodeId) -> Result<usize, ClaimError> {
        self.members
            .iter()
            .position(|m| m.id == id)
            .ok_or(ClaimError::NotMember(id))
    }

    fn push(&mut self, member: Member) -> usize {
        self.members.push(member);
        self.owned.push(0);
        self.members.len() - 1
    }

    /// The arc the token at `position` owns: from the previous token (exclusive) to itself.
    fn arc(&self, position: Position) -> u128 {
        let previous = self
            .owner
            .range(..position)
            .next_back()
            .or_else(|| self.owner.iter().next_back())
            .map(|(&p, _)| p);
        match previous {
            Some(p) if p != position => u128::from(position.wrapping_sub(p)),
            _ => RING,
        }
    }

    fn previous(&self, position: Position) -> Position {
        self.owner
            .range(..position)
            .next_back()
            .or_else(|| self.owner.iter().next_back())
            .map_or(position, |(&p, _)| p)
    }

    /// Whether member `index` owns one of the tokens within [`SPREAD`] places of `position`.
    fn near(&self, position: Position, index: usize) -> bool {
        let after = self.owner.range(position..).chain(self.owner.iter());
        let before = self
            .owner
            .range(..position)
            .rev()
            .chain(self.owner.iter().rev());
        after
            .take(SPREAD)
            .chain(before.take(SPREAD))
            .any(|(_, &i)| i == index)
    }

    /// Each member's fair share of the ring by weight.
    fn targets(&self) -> Vec<u128> {
        let total: u128 = self.members.iter().map(|m| u128::from(m.weight)).sum();
        self.members
            .iter()
            .map(|m| {
                (RING * u128::from(m.weight))
                    .checked_div(total)
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Gives `index` `count` new tokens, each cut from the most over-served member.
    fn add_tokens(&mut self, index: usize, count: u32) {
        if count == 0 {
            return;
        }
        if self.owner.is_empty() {
            let alone = Member {
                weight: 1,
                ..self.members[index].clone()
            };
            let founded = found_zone(&[alone], count);
            if let Ok(Some(member)) = founded.map(|mut m| m.pop()) {
                for &p in &member.tokens {
                    self.owner.insert(p, index);
                }
                self.members[index].tokens = member.tokens;
                self.owned[index] = RING;
            }
            return;
        }
        let targets = self.targets();
        let wanted = targets[index].saturating_sub(self.owned[index]);
        let slice = (wanted / u128::from(count)).max(1);
        for _ in 0..count {
            let Some(donor) = (0..self.members.len())
                .filter(|&i| i != index && !self.members[i].tokens.is_empty())
                .max_by_key(|&i| (self.owned[i] as i128 - targets[i] as i128, i))
            else {
                return;
            };
            // The largest arc, preferring those where the newcomer would not sit within `n`
            // tokens of one of its own: there, the `n` replicas of every range stay distinct
            // nodes, and what each node stores follows what it owns.
            let Some(&largest) = self.members[donor]
                .tokens
                .iter()
                .max_by_key(|&&p| (!self.near(p, index), self.arc(p), p))
            else {
                return;
            };
            let arc = self.arc(largest);
            // Leave the donor's token at least a sliver, so that it still marks its place.
            let take = slice.min(arc - arc / 16);
            if take == 0 {
                return; // The donor's arcs are single positions: nothing left to cut.
            }
            let position = self.previous(largest).wrapping_add(take as u64);
            self.owner.insert(position, index);
            self.members[index].tokens.push(position);
            self.owned[donor] -= take;
            self.owned[index] += take;
        }
    }

    /// Hands `tokens` of member `index` one by one to the member furthest below its target.
    fn give_away(&mut self, index: usize, tokens: Vec<Position>) {
        let targets = self.targets();
        for position in tokens {
            // Furthest below target, preferring members without a token nearby (see `near`).
            let Some(receiver) = (0..self.members.len())
                .filter(|&i| i != index && self.members[i].weight > 0)
                .max_by_key(|&i| {
                    let deficit = targets[i] as i128 - self.owned[i] as i128;
                    (deficit > 0 && !self.near(position, i), deficit, i)
                })
            else {
                return;
            };
            let arc = self.arc(position);
            self.owner.insert(position, receiver);
            self.members[index].tokens.retain(|&p| p != position);
            self.members[receiver].tokens.push(position);
            self.owned[index] -= arc;
            self.owned[receiver] += arc;
        }
    }

    /// The member list: members left without weight dropped, tokens sorted.
    fn finish(self) -> Vec<Member> {
        let mut members: Vec<Member> = self
            .members
            .into_iter()
            .filter(|m| m.weight > 0 && !m.tokens.is_empty())
            .collect();
        for m in &mut members {
            m.tokens.sort_unstable();
        }
        members
    }
}

#[cfg(test)]
mod tests;
