//! Preference lists: the token table of one member list and the clockwise walk over it.
//!
//! A [`TokenTable`] holds every token of a member list sorted by position, each with the index
//! of its member, and each member's zone. A [`PreferenceList`] walks it from a key's position;
//! it is lazy, because a request usually needs only the first `n` members and the walk of a
//! large ring is long. The members met so far are kept in a small list that turns into a
//! bitmap once a walk goes far into a large ring's fallbacks.
//!
//! # Zones
//!
//! Without zones (every member unlabelled, or all in one zone) the list is the members in the
//! order the walk meets them. With zones it is that order regrouped in *rounds*: first the
//! first member met of every zone, in the order they are met; then the second member met of
//! every zone that has one; and so on. So the first `n` members (the home replicas) span
//! `min(n, zones)` zones, copies beyond one per zone go to the zones met first, and the
//! fallbacks that follow the homes come first from zones holding no copy yet.
//!
//! Each zone's `k`-th member met is also what a ring of that zone's tokens alone would give as
//! its `k`-th replica. That is why the allocator balances each zone's tokens on their own
//! ([`crate::claim`]): with `n` = zones, each zone holds one copy of every key, however
//! uneven their sizes, and within a zone a member holds its share of that zone's ring.

use std::collections::VecDeque;

use super::RingError;
use crate::hash::Position;
use crate::node::Member;

/// The tokens of one member list, sorted by position, and the members' zones.
#[derive(Clone, Debug, Default)]
pub(super) struct TokenTable {
    /// `(position, index into the member list)`, sorted by position then member id.
    pub(super) tokens: Vec<(Position, u32)>,
    /// How many members the tokens belong to.
    members: usize,
    zones: Zones,
}

/// Which zone each member is in, as small numbers.
#[derive(Clone, Debug, Default)]
struct Zones {
    /// The zone number of each member, by member index; empty when there is one zone.
    of: Vec<u32>,
    /// How many members each zone has, by zone number (zones numbered in label order).
    sizes: Vec<u32>,
}

impl Zones {
    fn new(members: &[Member]) -> Zones {
        let mut labels: Vec<&str> = members.iter().map(|m| m.zone.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        if labels.len() <= 1 {
            return Zones::default();
        }
        let mut sizes = vec![0u32; labels.len()];
        let of = members
            .iter()
            .map(|m| {
                let zone = labels.binary_search(&m.zone.as_str()).unwrap_or(0);
                sizes[zone] += 1;
                zone as u32
            })
            .collect();
        Zones { of, sizes }
    }

    fn count(&self) -> usize {
        self.sizes.len().max(1)
    }
}

impl TokenTable {
    /// Sorts `members` by id, checks them, and indexes their tokens.
    pub(super) fn new(members: &mut [Member]) -> Result<TokenTable, RingError> {
        members.sort_by_key(|m| m.id);
        for pair in members.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(RingError::DuplicateMember(pair[0].id));
            }
        }
        let mut total = 0usize;
        for member in members.iter() {
            if member.weight == 0 {
                return Err(RingError::ZeroWeight(member.id));
            }
            if member.tokens.is_empty() {
                return Err(RingError::NoTokens(member.id));
            }
            total += member.tokens.len();
        }
        if total > u32::MAX as usize {
            return Err(RingError::TooManyTokens);
        }
        let mut tokens = Vec::with_capacity(total);
        for (index, member) in members.iter().enumerate() {
            tokens.extend(member.tokens.iter().map(|&p| (p, index as u32)));
        }
        // Ties (two tokens on one position) are broken by member order, which is by id.
        tokens.sort_unstable();
        Ok(TokenTable {
            tokens,
            members: members.len(),
            zones: Zones::new(members),
        })
    }

    pub(super) fn walk<'a>(
        &'a self,
        members: &'a [Member],
        position: Position,
    ) -> PreferenceList<'a> {
        PreferenceList {
            members,
            walk: self.indexes_from(self.tokens.partition_point(|(p, _)| *p < position)),
        }
    }

    /// The member indexes of the preference list that starts at token `start`.
    pub(super) fn indexes_from(&self, start: usize) -> Walk<'_> {
        Walk {
            tokens: &self.tokens,
            zones: &self.zones,
            members: self.members,
            next: start,
            walked: 0,
            seen: Seen::default(),
            rounds: None,
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.tokens.capacity() * std::mem::size_of::<(Position, u32)>()
            + (self.zones.of.capacity() + self.zones.sizes.capacity()) * 4
    }
}

/// The distinct members met walking clockwise from a position, in zone rounds when the ring
/// has zones (see the module docs). See [`Ring::preference_list`](super::Ring::preference_list).
#[derive(Clone, Debug)]
pub struct PreferenceList<'a> {
    members: &'a [Member],
    walk: Walk<'a>,
}

impl<'a> Iterator for PreferenceList<'a> {
    type Item = &'a Member;

    fn next(&mut self) -> Option<&'a Member> {
        let index = self.walk.next()?;
        self.members.get(index as usize)
    }
}

/// The walk behind a [`PreferenceList`], yielding member indexes.
#[derive(Clone, Debug)]
pub(super) struct Walk<'a> {
    tokens: &'a [(Position, u32)],
    zones: &'a Zones,
    /// How many distinct members there are to meet: the walk stops when it has met them all.
    members: usize,
    /// Index of the next token to look at (modulo the token count).
    next: usize,
    /// Tokens looked at so far; the walk ends after one full turn.
    walked: usize,
    seen: Seen,
    /// The zone rounds, once the walk has started on a ring with zones.
    rounds: Option<Rounds>,
}

/// Where a walk over a ring with zones is: which round it yields, and the members it has met
/// that belong to later rounds.
#[derive(Clone, Debug)]
struct Rounds {
    /// The round being yielded, from 1: each zone's `round`-th member met.
    round: u32,
    /// Distinct members met so far, by zone.
    met: Vec<u32>,
    /// Zones whose member for this round is still to be met.
    incomplete: usize,
    /// Members met for later rounds, in the order met: `(round, member index)`.
    later: VecDeque<(u32, u32)>,
}

impl Walk<'_> {
    /// The next member not met before, in the order of the tokens.
    fn next_met(&mut self) -> Option<u32> {
        while self.walked < self.tokens.len() && self.seen.len() < self.members {
            let (_, index) = self.tokens[self.next % self.tokens.len()];
            self.next += 1;
            self.walked += 1;
            if self.seen.insert(index) {
                return Some(index);
            }
        }
        None
    }
}

impl Iterator for Walk<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.zones.count() <= 1 {
            return self.next_met();
        }
        let sizes = &self.zones.sizes;
        let mut rounds = self.rounds.take().unwrap_or_else(|| Rounds {
            round: 1,
            met: vec![0; sizes.len()],
            incomplete: sizes.iter().filter(|&&s| s > 0).count(),
            later: VecDeque::new(),
        });
        let max_round = sizes.iter().copied().max().unwrap_or(0);
        let found = loop {
            if let Some(at) = rounds.later.iter().position(|&(r, _)| r == rounds.round) {
                break rounds.later.remove(at).map(|(_, index)| index);
            }
            if rounds.incomplete == 0 {
                if rounds.round >= max_round {
                    break None;
                }
                rounds.round += 1;
                let round = rounds.round;
                rounds.incomplete = sizes
                    .iter()
                    .zip(&rounds.met)
                    .filter(|&(&size, &met)| met < size.min(round))
                    .count();
                continue;
            }
            let Some(index) = self.next_met() else {
                // The walk met every member it could: what is left comes out round by round.
                rounds.incomplete = 0;
                continue;
            };
            let zone = self.zones.of.get(index as usize).copied().unwrap_or(0) as usize;
            let Some(met) = rounds.met.get_mut(zone) else {
                continue;
            };
            *met += 1;
            if *met == rounds.round {
                rounds.incomplete -= 1;
                break Some(index);
            }
            rounds.later.push_back((*met, index));
        };
        self.rounds = Some(rounds);
        found
    }
}

/// The member indexes a walk has met: a short list while it is short (the common case, `n` of 3
/// to 5), a bitmap once a walk goes on to the fallbacks of a large ring.
#[derive(Clone, Debug, Default)]
struct Seen {
    list: Vec<u32>,
    bits: Vec<u64>,
}

/// Beyond this many distinct members a linear scan costs more than a bitmap.
const SEEN_LIST_MAX: usize = 16;

impl Seen {
    fn len(&self) -> usize {
        self.list.len()
    }

    /// Records `index`, returning whether it is new.
    fn insert(&mut self, index: u32) -> bool {
        if self.bits.is_empty() {
            if self.list.contains(&index) {
                return false;
            }
            self.list.push(index);
            if self.list.len() > SEEN_LIST_MAX {
                let max = self.list.iter().copied().max().unwrap_or(0) as usize;
                self.bits = vec![0; max / 64 + 1];
                for &i in &self.list {
                    set_bit(&mut self.bits, i);
                }
            }
            return true;
        }
        let word = index as usize / 64;
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << (index % 64)) != 0 {
            return false;
        }
        set_bit(&mut self.bits, index);
        self.list.push(index);
        true
    }
}

fn set_bit(bits: &mut [u64], index: u32) {
    bits[index as usize / 64] |= 1 << (index % 64);
}
