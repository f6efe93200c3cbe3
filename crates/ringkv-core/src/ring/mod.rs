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
//!
//! # Where the code is
//!
//! This file holds the [`RingConfig`] and the [`Ring`] computed from it. The ring epoch and
//! the digest behind it are in `epoch.rs`, transfers and [`Ring::route`] in `transition.rs`,
//! and the token table with the preference-list walk in `preference.rs`.

use serde::{Deserialize, Serialize};

use crate::bucket::{BucketProps, Buckets, ConflictPolicy};
use crate::hash::{Position, key_position};
use crate::node::{Member, NodeId};

mod epoch;
mod preference;
mod transition;

pub use epoch::RingEpoch;
use epoch::epoch_of;
pub use preference::PreferenceList;
use preference::TokenTable;
pub use transition::{Phase, Route, Transition};

/// Tokens per unit of weight the allocator hands out unless the cluster says otherwise.
pub const DEFAULT_TOKENS_PER_WEIGHT: u32 = 16;

/// Everything a ring is computed from. This is what servers hold and clients fetch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingConfig {
    /// The version of the layout the ring was made from ([`crate::Layout::version`]): it
    /// grows with every change of the layout, so "newer ring" and "newer layout" agree.
    pub version: u64,
    /// The members keys are placed on (the new members during a transfer), in any order: the
    /// ring sorts them by id.
    pub members: Vec<Member>,
    /// The membership change being applied, if any: it keeps the previous members on the
    /// ring until their data has been streamed to the new owners.
    pub transition: Option<Transition>,
    /// Every bucket's `n`, default quorums and conflict policy. They are part of the config
    /// because they change where keys live and how their versions merge, which every client
    /// and server must agree on.
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

    /// The epoch that names this ring. Requests carry it, so that a node can tell a client
    /// that routed by an older ring to refetch.
    pub fn epoch(&self) -> RingEpoch {
        self.epoch
    }

    /// The config this ring was computed from, members sorted by id: what a node hands to a
    /// client that fetches the ring.
    pub fn config(&self) -> &RingConfig {
        &self.config
    }

    /// Members sorted by id (the new members during a transfer).
    pub fn members(&self) -> &[Member] {
        &self.config.members
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

    /// The properties of `bucket` (those of the default entry if it has none of its own): its
    /// replica count `n`, default quorums and conflict policy.
    pub fn bucket(&self, bucket: &str) -> &BucketProps {
        self.config.buckets.props(bucket)
    }

    /// How concurrent writes to `bucket` are resolved: the policy every merge of that bucket's
    /// states must use, so that all replicas keep the same siblings.
    pub fn conflict_policy(&self, bucket: &str) -> ConflictPolicy {
        self.bucket(bucket).conflict
    }

    /// The zones of the current members, sorted, without repeats (`""` stands for members
    /// without a label). One zone means placement ignores zones.
    pub fn zones(&self) -> Vec<&str> {
        let mut zones: Vec<&str> = self
            .config
            .members
            .iter()
            .map(|m| m.zone.as_str())
            .collect();
        zones.sort_unstable();
        zones.dedup();
        zones
    }

    /// How many tokens the current members hold together (the previous members' are not
    /// counted): a measure of the ring's size for stats and benchmarks.
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

    /// The home replicas of `key` under the current members: the first `n` distinct members
    /// of its preference list (fewer when the ring has fewer members).
    pub fn home_replicas(&self, bucket: &str, key: &[u8]) -> Vec<&Member> {
        let n = usize::from(self.bucket(bucket).n);
        self.preference_list(bucket.as_bytes(), key)
            .take(n)
            .collect()
    }

    /// Each current member's share of its zone's ring: of the keys whose copy in its zone
    /// is the zone's first, the part it holds (0.0 to 1.0, summing to 1.0 over each zone; a
    /// ring without zones is one zone, so this is the share as first home replica). In
    /// member order. What the allocator balances by weight.
    pub fn ownership(&self) -> Vec<(NodeId, f64)> {
        let members = &self.config.members;
        let tokens = &self.current.tokens;
        let zone_of: Vec<&str> = members.iter().map(|m| m.zone.as_str()).collect();
        let mut owned = vec![0u128; members.len()];
        // Per zone, each token owns the arc back to the zone's previous token.
        let mut last: std::collections::BTreeMap<&str, Position> = Default::default();
        for &(position, index) in tokens.iter().rev() {
            last.entry(zone_of[index as usize]).or_insert(position);
        }
        let mut alone: std::collections::BTreeMap<&str, usize> = Default::default();
        for &(_, index) in tokens {
            *alone.entry(zone_of[index as usize]).or_default() += 1;
        }
        for &(position, index) in tokens {
            let zone = zone_of[index as usize];
            let previous = last.insert(zone, position).unwrap_or(position);
            owned[index as usize] += arc(previous, position, alone.get(zone) == Some(&1));
        }
        shares(members, owned)
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
            let arc = arc(previous, position, tokens.len() == 1);
            for index in self.current.indexes_from(i).take(n) {
                owned[index as usize] += arc;
            }
        }
        shares(members, owned)
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

/// The arc a token at `position` owns after the token at `previous`; a token `alone` on its
/// ring owns all of it (its arc would compute as 0).
fn arc(previous: Position, position: Position, alone: bool) -> u128 {
    if alone {
        1u128 << 64
    } else {
        u128::from(position.wrapping_sub(previous))
    }
}

/// Arcs owned per member (in member order) as shares of the ring.
fn shares(members: &[Member], owned: Vec<u128>) -> Vec<(NodeId, f64)> {
    let total = (1u128 << 64) as f64;
    members
        .iter()
        .zip(owned)
        .map(|(m, o)| (m.id, o as f64 / total))
        .collect()
}

fn find(members: &[Member], id: NodeId) -> Option<&Member> {
    members
        .binary_search_by_key(&id, |m| m.id)
        .ok()
        .map(|i| &members[i])
}

#[cfg(test)]
mod tests;
