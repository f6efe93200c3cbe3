//! Buckets and their properties.
//!
//! Every key lives in a bucket. A bucket's properties are cluster configuration: the servers
//! carry them with the ring, so every client computes the same replica count `n` and applies
//! the same conflict policy. `r` and `w` here are only defaults; a client may override them
//! per call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The bucket used when a caller names none.
pub const DEFAULT_BUCKET: &str = "default";

/// What happens when two writes to one key are concurrent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Keep every concurrent write as a sibling; the application merges them. Nothing is ever
    /// silently dropped.
    #[default]
    Siblings,
    /// Keep the write with the latest timestamp. One round trip per write, at the price of
    /// silently losing concurrent updates (Jepsen measured 71% loss on Riak with this policy).
    Lww,
}

/// The properties of one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BucketProps {
    /// Replicas per key: the first `n` distinct nodes of the key's preference list.
    pub n: u8,
    /// Default read quorum.
    pub r: u8,
    /// Default write quorum.
    pub w: u8,
    /// What happens to concurrent writes to a key of this bucket. Every replica must apply
    /// the same policy, which is why it is a bucket property and not a per-call option.
    pub conflict: ConflictPolicy,
    /// The time to live of a value written without one of its own, in milliseconds; `None`:
    /// values without one never expire. Absent from tables written before expiry, which
    /// therefore encode (and digest) as they did. Protocol 9.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

impl Default for BucketProps {
    fn default() -> Self {
        BucketProps {
            n: 3,
            r: 2,
            w: 2,
            conflict: ConflictPolicy::Siblings,
            ttl_ms: None,
        }
    }
}

impl BucketProps {
    /// Checks that the defaults are usable (`1 <= r, w <= n`), naming the first that is not.
    pub fn validate(&self) -> Result<(), String> {
        if self.n == 0 {
            return Err("n must be at least 1".into());
        }
        if self.ttl_ms == Some(0) {
            return Err("a time to live must be at least 1 ms".into());
        }
        for (name, value) in [("r", self.r), ("w", self.w)] {
            if value == 0 || value > self.n {
                return Err(format!(
                    "{name} = {value} must be between 1 and n = {}",
                    self.n
                ));
            }
        }
        Ok(())
    }
}

/// The bucket table: properties per named bucket, and those of every bucket not named.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Buckets {
    /// Properties of every bucket without an entry in `named`.
    pub default: BucketProps,
    /// Properties of the buckets that differ from `default`, by bucket name (sorted, so that
    /// the table has one canonical form for the ring epoch's digest).
    pub named: BTreeMap<String, BucketProps>,
}

impl Buckets {
    /// The properties of `bucket`.
    pub fn props(&self, bucket: &str) -> &BucketProps {
        self.named.get(bucket).unwrap_or(&self.default)
    }

    /// This table with every bucket whose `n` differs from what `before` gives it back at
    /// `before`'s `n`, `r` and `w` (the quorums that went with that `n`): what an aborted
    /// change of `n` goes back to. Buckets created or changed otherwise meanwhile stay.
    pub fn with_n_of(&self, before: &Buckets) -> Buckets {
        let back = |props: &mut BucketProps, old: &BucketProps| {
            if props.n != old.n {
                props.n = old.n;
                props.r = old.r;
                props.w = old.w;
            }
        };
        let mut table = self.clone();
        back(&mut table.default, &before.default);
        for (name, props) in &mut table.named {
            back(props, before.props(name));
        }
        table
    }

    /// Whether some bucket has a default time to live: such a table is held only by
    /// processes that know expiry (see `wire::EXPIRY_PROTOCOL_VERSION`).
    pub fn has_expiry(&self) -> bool {
        self.default.ttl_ms.is_some() || self.named.values().any(|p| p.ttl_ms.is_some())
    }

    /// Checks every entry, naming the bucket at fault.
    pub fn validate(&self) -> Result<(), String> {
        self.default
            .validate()
            .map_err(|e| format!("default bucket: {e}"))?;
        for (name, props) in &self.named {
            props
                .validate()
                .map_err(|e| format!("bucket {name:?}: {e}"))?;
        }
        Ok(())
    }
}
