//! Preference lists: the token table of one member list and the clockwise walk over it.
//!
//! A [`TokenTable`] holds every token of a member list sorted by position, each with the index
//! of its member. A [`PreferenceList`] walks it from a key's position, yielding each member the
//! first time one of its tokens is met; it is lazy, because a request usually needs only the
//! first `n` members and the walk of a large ring is long. The members met so far are kept in
//! a small list that turns into a bitmap once a walk goes far into a large ring's fallbacks.

use super::RingError;
use crate::hash::Position;
use crate::node::Member;

/// The tokens of one member list, sorted by position.
#[derive(Clone, Debug, Default)]
pub(super) struct TokenTable {
    /// `(position, index into the member list)`, sorted by position then member id.
    pub(super) tokens: Vec<(Position, u32)>,
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
        Ok(TokenTable { tokens })
    }

    pub(super) fn walk<'a>(
        &'a self,
        members: &'a [Member],
        position: Position,
    ) -> PreferenceList<'a> {
        let start = self.tokens.partition_point(|(p, _)| *p < position);
        PreferenceList {
            tokens: &self.tokens,
            members,
            next: start,
            walked: 0,
            seen: Seen::default(),
        }
    }

    /// The distinct member indexes met walking from token `start`, with the token index where
    /// each was met.
    pub(super) fn walk_indexes(
        &self,
        members: usize,
        start: usize,
    ) -> impl Iterator<Item = (u32, usize)> + '_ {
        let mut seen = Seen::default();
        let len = self.tokens.len();
        (0..len).filter_map(move |step| {
            if seen.len() >= members {
                return None;
            }
            let at = (start + step) % len;
            let index = self.tokens[at].1;
            seen.insert(index).then_some((index, at))
        })
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.tokens.capacity() * std::mem::size_of::<(Position, u32)>()
    }
}

/// The distinct members met walking clockwise from a position. See
/// [`Ring::preference_list`](super::Ring::preference_list).
#[derive(Clone, Debug)]
pub struct PreferenceList<'a> {
    tokens: &'a [(Position, u32)],
    members: &'a [Member],
    /// Index of the next token to look at (modulo the token count).
    next: usize,
    /// Tokens looked at so far; the walk ends after one full turn.
    walked: usize,
    seen: Seen,
}

impl<'a> Iterator for PreferenceList<'a> {
    type Item = &'a Member;

    fn next(&mut self) -> Option<&'a Member> {
        while self.walked < self.tokens.len() && self.seen.len() < self.members.len() {
            let (_, index) = self.tokens[self.next % self.tokens.len()];
            self.next += 1;
            self.walked += 1;
            if self.seen.insert(index) {
                return Some(&self.members[index as usize]);
            }
        }
        None
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
