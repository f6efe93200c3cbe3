//! The ring epoch: the ordered name of a ring, and how a config's digest is computed.
//!
//! Every request carries the epoch the client routed by and every response the epoch of the
//! node that answered, so this is how a stale view of the cluster is noticed. The digest is
//! taken over a canonical byte form of the whole [`RingConfig`] (members sorted by id, buckets
//! by name), so that every client and server derives the same epoch from the same config
//! whatever order its parts arrived in.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Phase, RingConfig};
use crate::bucket::{BucketProps, ConflictPolicy};
use crate::hash::digest;
use crate::node::Member;

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
    /// The config's [`RingConfig::version`], the layout's version: it grows with every
    /// layout change, so it decides which of two rings is newer.
    pub version: u64,
    /// The config's [`RingConfig::settings_version`]: a change of bucket settings (`n`, say)
    /// moves keys as surely as a membership change, so it must change the epoch too.
    pub settings: u64,
    /// A digest of the whole config, so that two configs that share their versions but not
    /// their contents (two layouts committed at once) are never taken for the same ring.
    pub digest: u64,
}

impl RingEpoch {
    /// Whether a ring of this epoch replaces one of `other`'s: a higher ring version, or the
    /// same one with newer bucket settings. The digest orders nothing: two rings of one
    /// version with different digests (two commits raced) are rivals, and the one the layout
    /// order picked wins everywhere (a node answers a rival's requests with `StaleRing`).
    pub fn is_newer_than(&self, other: &RingEpoch) -> bool {
        (self.version, self.settings) > (other.version, other.settings)
    }

    /// Whether the two epochs are of rival rings: the same versions, different contents.
    pub fn is_rival_of(&self, other: &RingEpoch) -> bool {
        (self.version, self.settings) == (other.version, other.settings)
            && self.digest != other.digest
    }
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

/// The epoch of a config: its versions, and a digest of its canonical byte form (members
/// sorted by id, buckets by name).
pub(super) fn epoch_of(config: &RingConfig) -> RingEpoch {
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
        // Zones only when some member has one, so that a ring without zones keeps the epoch
        // the release before zones computes for it.
        if members.iter().any(|m| !m.zone.is_empty()) {
            bytes.push(b'z');
            for m in members {
                bytes.extend_from_slice(&(m.zone.len() as u32).to_be_bytes());
                bytes.extend_from_slice(m.zone.as_bytes());
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
            // Only when present, so that a layout without removals keeps its epoch.
            if !t.removed.is_empty() {
                bytes.push(3);
                for id in &t.removed {
                    bytes.extend_from_slice(&id.0.to_be_bytes());
                }
            }
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
