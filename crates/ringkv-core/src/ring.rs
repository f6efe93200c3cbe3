//! The ring: which nodes hold which keys.
//!
//! The ring is a pure function of its [`RingConfig`]: the members with their tokens, the
//! transfer under way if any, and the bucket table. Every client and every server that holds
//! the same config computes the same ring, and the config's [`RingEpoch`] names it.
//!
//! # Placement
//!
//! Each member owns the tokens the allocator gave it ([`crate::claim`]): about
//! `weight × tokens_per_weight` positions, chosen when it joined so that every member's share
//! of the ring matches its weight. A key sits at [`key_position`]`(bucket, key)`. Its
//! *preference list* is the ring walked clockwise from that position, keeping each physical
//! node the first time it is met: the first `n` are the key's home replicas, the rest its
//! fallbacks, in order.
//!
//! Tokens used to be derived from the member id (1,024 hashed positions per unit of weight).
//! That balanced by sheer numbers, and a ring of 10,000 nodes would have held 25 million
//! tokens. Allocated tokens balance by construction, so 16 per unit of weight do (the figures
//! are in `ring::tests` and `claim::tests`); the price is that tokens are state, carried in the
//! committed layout, instead of something every node can recompute alone.
//!
//! # Transfers
//!
//! While a membership change is being applied ([`Transition`]), the ring holds both the new
//! members and the previous ones. Reads go to the previous preference list until every node
//! has streamed its data to the new owners ([`Phase::Streaming`]), then to the new one
//! ([`Phase::Switching`]); writes go to the homes of both. See [`Ring::route`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bucket::{BucketProps, Buckets, ConflictPolicy};
use crate::hash::{Position, digest, key_position};
use crate::node::{Member, NodeId};

/// Tokens per unit of weight the allocator hands out unless the cluster says otherwise.
pub const DEFAULT_TOKENS_PER_WEIGHT: u32 = 16;

/// The identity of a ring, ordered: a higher epoch is a newer ring.
///
/// `version` counts committed membership changes and transfer phases; `settings` is the
/// version of the bucket settings in force; `digest` covers the whole [`RingConfig`], so two
/// rings with the same epoch place every key identically. Every request carries the client's
/// epoch and every response the server's: a node refuses a request routed by an older ring
/// (`StaleRing`), and a client that sees a newer one refetches.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RingEpoch {
    pub version: u64,
    pub settings: u64,
    pub digest: u64,
}

impl fmt::Display for RingEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v{}.{}-{:08x}",
            self.version,
            self.settings,
            self.digest >> 32
        )
    }
}

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
    /// The ring version the change was committed at; nodes report progress against it.
    pub id: u64,
    pub phase: Phase,
    pub previous: Vec<Member>,
}

/// Everything a ring is computed from. This is what servers hold and clients fetch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingConfig {
    /// Bumped by every commit and every transfer phase.
    pub version: u64,
    pub members: Vec<Member>,
    pub transition: Option<Transition>,
    pub buckets: Buckets,
    /// The version of the bucket settings in `buckets`.
    pub settings_version: u64,
}

impl RingConfig {
    /// A config with `members` at version 1, default buckets, no transfer: for tests and tools.
    pub fn of(members: Vec<Member>) -> RingConfig {
        RingConfig {
            version: 1,
            members,
            transition: None,
            buckets: Buckets::default(),
            settings_version: 0,
        }
    }
}

/// Why a [`RingConfig`] cannot make a ring.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Two members share an id: the ring could not tell their tokens apart.
    #[error("node id {0} appears twice in the member list")]
    DuplicateMember(NodeId),
    /// A member of weight 0 would own nothing and yet be listed.
    #[error("node {0} has weight 0; weights start at 1")]
    ZeroWeight(NodeId),
    /// A member without tokens would own nothing.
    #[error("node {0} has no tokens")]
    NoTokens(NodeId),
    /// The config holds more tokens than a ring can index.
    #[error("the ring would have more than {max} tokens", max = u32::MAX)]
    TooManyTokens,
    /// A bucket's default quorums do not fit its `n`.
    #[error("invalid bucket properties: {0}")]
    InvalidBucket(String),
}

/// A computed ring. Cheap to query, immutable; build a new one when the config changes.
#[derive(Clone, Debug)]
pub struct Ring {
    config: RingConfig,
    current: TokenTable,
    /// The previous members' tokens, while a transfer is under way.
    previous: Option<TokenTable>,
    epoch: RingEpoch,
}

/// Where one key's requests go. See [`Ring::route`].
#[derive(Debug)]
pub struct Route<'a> {
    /// The preference list reads use (and writes, first).
    pub preference: PreferenceList<'a>,
    /// During a transfer: the home replicas under the other ring that are not homes under the
    /// reading one. A write must reach them too, on top of its quorum.
    pub extra_homes: Vec<&'a Member>,
}

impl Ring {
    /// Computes the ring of `config`. Members are sorted by id, so the order they come in does
    /// not matter.
    pub fn new(mut config: RingConfig) -> Result<Ring, RingError> {
        config
            .buckets
            .validate()
            .map_err(RingError::InvalidBucket)?;
        let current = TokenTable::new(&mut config.members)?;
        let previous = match &mut config.transition {
            Some(t) => Some(TokenTable::new(&mut t.previous)?),
            None => None,
        };
        let epoch = epoch_of(&config);
        Ok(Ring {
            config,
            current,
            previous,
            epoch,
        })
    }

    /// An empty ring: no members, default buckets. Clients hold it until they fetch a real one.
    pub fn empty() -> Ring {
        Ring {
            config: RingConfig {
                version: 0,
                members: Vec::new(),
                transition: None,
                buckets: Buckets::default(),
                settings_version: 0,
            },
            current: TokenTable::default(),
            previous: None,
            epoch: RingEpoch::default(),
        }
    }

    pub fn epoch(&self) -> RingEpoch {
        self.epoch
    }

    pub fn config(&self) -> &RingConfig {
        &self.config
    }

    /// Members sorted by id (the new members during a transfer).
    pub fn members(&self) -> &[Member] {
        &self.config.members
    }

    /// The transfer under way, if any.
    pub fn transition(&self) -> Option<&Transition> {
        self.config.transition.as_ref()
    }

    /// Every node that holds data under this ring: the members, and during a transfer the
    /// previous members too. Sorted by id.
    pub fn all_members(&self) -> Vec<&Member> {
        let mut all: Vec<&Member> = self.config.members.iter().collect();
        if let Some(t) = &self.config.transition {
            for m in &t.previous {
                // Only the current members: `member()` would find `m` among the previous.
                if find(&self.config.members, m.id).is_none() {
                    all.push(m);
                }
            }
        }
        all.sort_by_key(|m| m.id);
        all
    }

    /// The member with this id, in the current members or (during a transfer) the previous.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        find(&self.config.members, id).or_else(|| {
            self.config
                .transition
                .as_ref()
                .and_then(|t| find(&t.previous, id))
        })
    }

    pub fn bucket(&self, bucket: &str) -> &BucketProps {
        self.config.buckets.props(bucket)
    }

    pub fn conflict_policy(&self, bucket: &str) -> ConflictPolicy {
        self.bucket(bucket).conflict
    }

    pub fn token_count(&self) -> usize {
        self.current.tokens.len()
    }

    /// The preference list of `key` in `bucket` under the current members: distinct members,
    /// home replicas first.
    pub fn preference_list(&self, bucket: &[u8], key: &[u8]) -> PreferenceList<'_> {
        self.preference_list_at(key_position(bucket, key))
    }

    /// The preference list of whatever sits at `position`, under the current members.
    pub fn preference_list_at(&self, position: Position) -> PreferenceList<'_> {
        self.current.walk(&self.config.members, position)
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

    /// Where requests for `key` go: the preference list reads use (the previous one while a
    /// transfer is streaming, else the current one) and the homes a write must reach besides.
    pub fn route(&self, bucket: &str, key: &[u8]) -> Route<'_> {
        let n = usize::from(self.bucket(bucket).n);
        let current = self.preference_list(bucket.as_bytes(), key);
        let Some(previous) = self.previous_preference_list(bucket.as_bytes(), key) else {
            return Route {
                preference: current,
                extra_homes: Vec::new(),
            };
        };
        let streaming = self
            .transition()
            .is_some_and(|t| t.phase == Phase::Streaming);
        let (reading, other) = if streaming {
            (previous, current)
        } else {
            (current, previous)
        };
        let homes: Vec<NodeId> = reading.clone().take(n).map(|m| m.id).collect();
        let extra_homes = other.take(n).filter(|m| !homes.contains(&m.id)).collect();
        Route {
            preference: reading,
            extra_homes,
        }
    }

    /// The home replicas of `key` under the current members: the first `n` distinct members
    /// of its preference list (fewer when the ring has fewer members).
    pub fn home_replicas(&self, bucket: &str, key: &[u8]) -> Vec<&Member> {
        let n = usize::from(self.bucket(bucket).n);
        self.preference_list(bucket.as_bytes(), key)
            .take(n)
            .collect()
    }

    /// The home replicas of `key` under the previous members (empty without a transfer).
    pub fn previous_home_replicas(&self, bucket: &str, key: &[u8]) -> Vec<&Member> {
        let n = usize::from(self.bucket(bucket).n);
        self.previous_preference_list(bucket.as_bytes(), key)
            .map(|list| list.take(n).collect())
            .unwrap_or_default()
    }

    /// Each current member's share of the ring as first home replica (0.0 to 1.0, summing to
    /// 1.0 over a non-empty ring), in member order.
    pub fn ownership(&self) -> Vec<(NodeId, f64)> {
        self.replica_shares(1)
    }

    /// Each current member's share of the ring counting every one of the first `n` replicas
    /// (summing to `min(n, members)`), in member order: what each member stores.
    pub fn replica_shares(&self, n: usize) -> Vec<(NodeId, f64)> {
        let members = &self.config.members;
        let tokens = &self.current.tokens;
        let mut owned = vec![0u128; members.len()];
        for (i, &(position, _)) in tokens.iter().enumerate() {
            let previous = if i == 0 {
                tokens[tokens.len() - 1].0
            } else {
                tokens[i - 1].0
            };
            // A single token owns the whole ring (its arc computes as 0).
            let arc = if tokens.len() == 1 {
                1u128 << 64
            } else {
                u128::from(position.wrapping_sub(previous))
            };
            for (index, _) in self.current.walk_indexes(members.len(), i).take(n) {
                owned[index as usize] += arc;
            }
        }
        let total = (1u128 << 64) as f64;
        members
            .iter()
            .zip(owned)
            .map(|(m, o)| (m.id, o as f64 / total))
            .collect()
    }

    /// The range of the ring `position` falls in, named by the token that ends it (the first
    /// token at or after `position`, wrapping around): every key of a range has the same
    /// preference list. `None` on an empty ring. Anti-entropy compares replicas range by range.
    pub fn range_of(&self, position: Position) -> Option<Position> {
        let tokens = &self.current.tokens;
        let at = tokens.partition_point(|(p, _)| *p < position);
        tokens.get(at).or_else(|| tokens.first()).map(|(p, _)| *p)
    }

    /// Whether `node` is one of the home replicas of `key` under the current members.
    pub fn is_home_replica(&self, node: NodeId, bucket: &str, key: &[u8]) -> bool {
        self.home_replicas(bucket, key).iter().any(|m| m.id == node)
    }

    /// How much memory the ring's own tables take (tokens and members), in bytes.
    pub fn heap_bytes(&self) -> usize {
        fn members_bytes(members: &[Member]) -> usize {
            members
                .iter()
                .map(|m| {
                    std::mem::size_of::<Member>()
                        + m.addr.capacity()
                        + m.tokens.capacity() * std::mem::size_of::<Position>()
                })
                .sum()
        }
        let tables =
            self.current.heap_bytes() + self.previous.as_ref().map_or(0, |t| t.heap_bytes());
        let previous = self
            .config
            .transition
            .as_ref()
            .map_or(0, |t| members_bytes(&t.previous));
        tables + members_bytes(&self.config.members) + previous
    }
}

fn find(members: &[Member], id: NodeId) -> Option<&Member> {
    members
        .binary_search_by_key(&id, |m| m.id)
        .ok()
        .map(|i| &members[i])
}

/// The tokens of one member list, sorted by position.
#[derive(Clone, Debug, Default)]
struct TokenTable {
    /// `(position, index into the member list)`, sorted by position then member id.
    tokens: Vec<(Position, u32)>,
}

impl TokenTable {
    /// Sorts `members` by id, checks them, and indexes their tokens.
    fn new(members: &mut [Member]) -> Result<TokenTable, RingError> {
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

    fn walk<'a>(&'a self, members: &'a [Member], position: Position) -> PreferenceList<'a> {
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
    fn walk_indexes(
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

    fn heap_bytes(&self) -> usize {
        self.tokens.capacity() * std::mem::size_of::<(Position, u32)>()
    }
}

/// The distinct members met walking clockwise from a position. See [`Ring::preference_list`].
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

/// The epoch of a config: its versions, and a digest of its canonical byte form (members
/// sorted by id, buckets by name).
fn epoch_of(config: &RingConfig) -> RingEpoch {
    fn push_members(bytes: &mut Vec<u8>, members: &[Member]) {
        bytes.extend_from_slice(&(members.len() as u64).to_be_bytes());
        for m in members {
            bytes.extend_from_slice(&m.id.0.to_be_bytes());
            bytes.extend_from_slice(&(m.addr.len() as u32).to_be_bytes());
            bytes.extend_from_slice(m.addr.as_bytes());
            bytes.extend_from_slice(&m.weight.to_be_bytes());
            bytes.extend_from_slice(&(m.tokens.len() as u32).to_be_bytes());
            for t in &m.tokens {
                bytes.extend_from_slice(&t.to_be_bytes());
            }
        }
    }
    let tokens: usize = config.members.iter().map(|m| m.tokens.len()).sum();
    let mut bytes = Vec::with_capacity(64 + config.members.len() * 48 + tokens * 8);
    bytes.extend_from_slice(&config.version.to_be_bytes());
    bytes.extend_from_slice(&config.settings_version.to_be_bytes());
    push_members(&mut bytes, &config.members);
    match &config.transition {
        None => bytes.push(0),
        Some(t) => {
            bytes.push(match t.phase {
                Phase::Streaming => 1,
                Phase::Switching => 2,
            });
            bytes.extend_from_slice(&t.id.to_be_bytes());
            push_members(&mut bytes, &t.previous);
        }
    }
    push_props(&mut bytes, &config.buckets.default);
    for (name, props) in &config.buckets.named {
        bytes.extend_from_slice(&(name.len() as u32).to_be_bytes());
        bytes.extend_from_slice(name.as_bytes());
        push_props(&mut bytes, props);
    }
    RingEpoch {
        version: config.version,
        settings: config.settings_version,
        digest: digest(&bytes),
    }
}

fn push_props(bytes: &mut Vec<u8>, props: &BucketProps) {
    bytes.extend_from_slice(&[props.n, props.r, props.w]);
    bytes.push(match props.conflict {
        ConflictPolicy::Siblings => 0,
        ConflictPolicy::Lww => 1,
    });
}

#[cfg(test)]
mod tests;
