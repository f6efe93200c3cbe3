//! The ring: which nodes hold which keys.
//!
//! The ring is a pure function of its [`RingConfig`] (the member list, the bucket table and the
//! number of tokens per unit of weight): every client and every server that holds the same
//! config computes the same ring, and the config's digest is the ring's [`RingEpoch`].
//!
//! # Placement
//!
//! Member `m` owns `m.weight × vnodes_per_weight` tokens; token `i` sits at
//! [`token_position`]`(m.id, i)`. A key sits at [`key_position`]`(bucket, key)`. Its
//! *preference list* is the ring walked clockwise from that position, keeping each physical node
//! the first time it is met: the first `n` are the key's home replicas, the rest its fallbacks,
//! in order. Because tokens depend only on their own member, a join or a leave moves only the
//! keys whose preference list gains or loses that member (close to the ideal `1/members`).
//!
//! Balance is a matter of token count: a member's share varies by about `1/sqrt(tokens)`. The
//! default of 1,024 tokens per unit of weight was picked by the figures in `ring::tests`
//! (printed by `cargo test -p ringkv-core figures -- --nocapture`), on 100,000 keys, worst of 8
//! random ten-node clusters: at 256 tokens the most loaded node owned 1.16 × the mean and a
//! weight-2 node 1.84 × a weight-1 node; at 1,024, 1.10 × (1.05 × counting all three replicas)
//! and 2.0 ± 0.08. A ten-node ring of 10,240 tokens takes 160 KiB. Rings of thousands of nodes
//! will want fewer, better-placed tokens (an allocator, as Cassandra's); see ARCHITECTURE.md.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bucket::{BucketProps, Buckets, ConflictPolicy};
use crate::hash::{Position, digest, key_position, token_position};
use crate::node::{Member, MemberStatus, NodeId};

/// Tokens per unit of weight unless the cluster is configured otherwise.
pub const DEFAULT_VNODES_PER_WEIGHT: u32 = 1024;

/// The identity of a ring: a digest of its whole [`RingConfig`].
///
/// Two rings with the same epoch place every key identically. Every request carries the
/// client's epoch and every response the server's, so a difference shows up on the next call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RingEpoch(pub u64);

impl fmt::Display for RingEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Everything a ring is computed from. This is what servers gossip and clients fetch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingConfig {
    pub members: Vec<Member>,
    pub buckets: Buckets,
    pub vnodes_per_weight: u32,
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
    /// The config asks for more tokens than a ring can index.
    #[error("the ring would have more than {max} tokens", max = u32::MAX)]
    TooManyTokens,
    /// A bucket's default quorums do not fit its `n`.
    #[error("invalid bucket properties: {0}")]
    InvalidBucket(String),
    /// `vnodes_per_weight` is 0, so nobody would own anything.
    #[error("vnodes_per_weight must be at least 1")]
    NoVnodes,
}

/// A computed ring. Cheap to query, immutable; build a new one when the config changes.
#[derive(Clone, Debug)]
pub struct Ring {
    config: RingConfig,
    /// `(position, index into config.members)`, sorted by position then member id.
    tokens: Vec<(Position, u32)>,
    epoch: RingEpoch,
}

impl Ring {
    /// Computes the ring of `config`. Members are sorted by id, so the order they come in does
    /// not matter.
    pub fn new(mut config: RingConfig) -> Result<Ring, RingError> {
        config.members.sort_by_key(|m| m.id);
        for pair in config.members.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(RingError::DuplicateMember(pair[0].id));
            }
        }
        if config.vnodes_per_weight == 0 {
            return Err(RingError::NoVnodes);
        }
        config
            .buckets
            .validate()
            .map_err(RingError::InvalidBucket)?;
        let mut total: u64 = 0;
        for member in &config.members {
            if member.weight == 0 {
                return Err(RingError::ZeroWeight(member.id));
            }
            total += u64::from(member.weight) * u64::from(config.vnodes_per_weight);
        }
        if total > u64::from(u32::MAX) {
            return Err(RingError::TooManyTokens);
        }
        let mut tokens = Vec::with_capacity(total as usize);
        for (index, member) in config.members.iter().enumerate() {
            let count = member.weight * config.vnodes_per_weight;
            tokens.extend((0..count).map(|i| (token_position(member.id.0, i), index as u32)));
        }
        // Ties (two tokens on one position) are broken by member order, which is by id.
        tokens.sort_unstable();
        let epoch = epoch_of(&config);
        Ok(Ring {
            config,
            tokens,
            epoch,
        })
    }

    /// An empty ring: no members, default buckets. Clients hold it until they fetch a real one.
    pub fn empty() -> Ring {
        Ring {
            config: RingConfig {
                members: Vec::new(),
                buckets: Buckets::default(),
                vnodes_per_weight: DEFAULT_VNODES_PER_WEIGHT,
            },
            tokens: Vec::new(),
            epoch: RingEpoch(0),
        }
    }

    pub fn epoch(&self) -> RingEpoch {
        self.epoch
    }

    pub fn config(&self) -> &RingConfig {
        &self.config
    }

    /// Members sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.config.members
    }

    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.config
            .members
            .binary_search_by_key(&id, |m| m.id)
            .ok()
            .map(|i| &self.config.members[i])
    }

    pub fn bucket(&self, bucket: &str) -> &BucketProps {
        self.config.buckets.props(bucket)
    }

    pub fn conflict_policy(&self, bucket: &str) -> ConflictPolicy {
        self.bucket(bucket).conflict
    }

    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// The preference list of `key` in `bucket`: distinct members, home replicas first.
    pub fn preference_list(&self, bucket: &[u8], key: &[u8]) -> PreferenceList<'_> {
        self.preference_list_at(key_position(bucket, key))
    }

    /// The preference list of whatever sits at `position`.
    pub fn preference_list_at(&self, position: Position) -> PreferenceList<'_> {
        let start = self.tokens.partition_point(|(p, _)| *p < position);
        PreferenceList {
            ring: self,
            next: start,
            walked: 0,
            seen: Seen::default(),
        }
    }

    /// The home replicas of `key`: the first `n` distinct members of its preference list
    /// (fewer when the ring has fewer members).
    pub fn home_replicas(&self, bucket: &str, key: &[u8]) -> Vec<&Member> {
        let n = usize::from(self.bucket(bucket).n);
        self.preference_list(bucket.as_bytes(), key)
            .take(n)
            .collect()
    }

    /// Each member's share of the ring as first home replica (0.0 to 1.0, summing to 1.0 over
    /// a non-empty ring), in member order. A key at position `p` belongs to the first token at
    /// or after `p`, so a token owns the arc from the previous token (exclusive) to itself.
    pub fn ownership(&self) -> Vec<(NodeId, f64)> {
        let mut owned = vec![0u128; self.config.members.len()];
        for (i, &(position, member)) in self.tokens.iter().enumerate() {
            let previous = if i == 0 {
                self.tokens[self.tokens.len() - 1].0
            } else {
                self.tokens[i - 1].0
            };
            let arc = position.wrapping_sub(previous);
            // A single token owns the whole ring (its arc computes as 0).
            owned[member as usize] += if self.tokens.len() == 1 {
                1u128 << 64
            } else {
                u128::from(arc)
            };
        }
        let total = (1u128 << 64) as f64;
        self.config
            .members
            .iter()
            .zip(owned)
            .map(|(m, o)| (m.id, o as f64 / total))
            .collect()
    }

    /// Whether `node` is one of the home replicas of `key`.
    pub fn is_home_replica(&self, node: NodeId, bucket: &str, key: &[u8]) -> bool {
        self.home_replicas(bucket, key).iter().any(|m| m.id == node)
    }
}

/// The distinct members met walking clockwise from a position. See [`Ring::preference_list`].
#[derive(Debug)]
pub struct PreferenceList<'a> {
    ring: &'a Ring,
    /// Index of the next token to look at (modulo the token count).
    next: usize,
    /// Tokens looked at so far; the walk ends after one full turn.
    walked: usize,
    seen: Seen,
}

impl<'a> Iterator for PreferenceList<'a> {
    type Item = &'a Member;

    fn next(&mut self) -> Option<&'a Member> {
        let tokens = &self.ring.tokens;
        let members = &self.ring.config.members;
        while self.walked < tokens.len() && self.seen.len() < members.len() {
            let (_, index) = tokens[self.next % tokens.len()];
            self.next += 1;
            self.walked += 1;
            if self.seen.insert(index) {
                return Some(&members[index as usize]);
            }
        }
        None
    }
}

/// The member indexes a walk has met: a short list while it is short (the common case, `n` of 3
/// to 5), a bitmap once a walk goes on to the fallbacks of a large ring.
#[derive(Debug, Default)]
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

/// The digest of a config's canonical byte form (members sorted by id, buckets by name).
fn epoch_of(config: &RingConfig) -> RingEpoch {
    let mut bytes = Vec::with_capacity(64 + config.members.len() * 48);
    bytes.extend_from_slice(&config.vnodes_per_weight.to_be_bytes());
    for m in &config.members {
        bytes.extend_from_slice(&m.id.0.to_be_bytes());
        bytes.extend_from_slice(&(m.addr.len() as u32).to_be_bytes());
        bytes.extend_from_slice(m.addr.as_bytes());
        bytes.extend_from_slice(&m.weight.to_be_bytes());
        bytes.push(match m.status {
            MemberStatus::Active => 0,
        });
    }
    push_props(&mut bytes, &config.buckets.default);
    for (name, props) in &config.buckets.named {
        bytes.extend_from_slice(&(name.len() as u32).to_be_bytes());
        bytes.extend_from_slice(name.as_bytes());
        push_props(&mut bytes, props);
    }
    RingEpoch(digest(&bytes))
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
