//! The sections of a node's configuration beside its identity and addresses: storage,
//! limits, gossip, hinted handoff, transfers, anti-entropy, cluster settings, security and
//! TLS, each with its defaults. [`super::Config`] holds one of each.

use std::path::PathBuf;
use std::time::Duration;

use ringkv_core::Buckets;
use ringkv_core::ring::DEFAULT_TOKENS_PER_WEIGHT;
use serde::{Deserialize, Serialize};

/// TLS for every connection to and from this node (client and node-to-node; gossip is UDP
/// and authenticated by the cluster secret instead). Off unless `cert_file` is set; then
/// `key_file` and `ca_file` are needed too. PEM files.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// This node's certificate chain, presented to clients and to the nodes it connects to.
    pub cert_file: Option<PathBuf>,
    /// Its private key.
    pub key_file: Option<PathBuf>,
    /// The CA that signed the nodes' certificates: checks the nodes this node connects to.
    pub ca_file: Option<PathBuf>,
    /// Mutual TLS: every connection must present a certificate signed by this CA.
    pub client_ca_file: Option<PathBuf>,
    /// Check other nodes' certificates against this name rather than their IP address.
    pub server_name: Option<String>,
}

/// Who may talk to this node. Secrets live in files (mode 0600, owned by the node's user),
/// never in this configuration, so that printing or shipping the configuration leaks nothing.
/// See the README's threat model for what this protects and what it does not.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Security {
    /// A file holding the cluster secret, the same on every node. When set, gossip datagrams
    /// carry a MAC made with it (others are dropped), and connections prove it to act as a
    /// node (anti-entropy, membership changes: also `ringkv cluster ...`). Unset: the cluster
    /// trusts its network.
    pub cluster_secret_file: Option<PathBuf>,
    /// A file of client tokens, one per line (`#` starts a comment). When set, every
    /// connection must prove a token or the cluster secret before its first request;
    /// unset, connections that prove nothing act as clients. Needs `cluster_secret_file`.
    pub client_tokens_file: Option<PathBuf>,
}

/// How the node's RocksDB store writes and caches.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// When an acknowledged write is on disk. `os`: in RocksDB's write-ahead log in the OS
    /// page cache, so it survives the process crashing but not the machine losing power
    /// (replication covers that, as in Dynamo). `fsync`: the log is synced before every
    /// acknowledgement; concurrent writes share one sync (RocksDB's group commit).
    pub durability: Durability,
    /// RocksDB's block cache, in MiB: the bound on the memory reads cache data in.
    pub block_cache_mb: usize,
    /// Where `POST /checkpoint` on the admin port writes backups, one directory each; unset:
    /// next to the data directory, as `<data_dir>.checkpoints`. It must be on the same
    /// filesystem as the data for the checkpoint to be hard links rather than copies.
    pub checkpoint_dir: Option<PathBuf>,
}

/// See [`Storage::durability`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Os,
    Fsync,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            durability: Durability::Os,
            block_cache_mb: 64,
            checkpoint_dir: None,
        }
    }
}

/// Anti-entropy: replicas comparing their data range by range (see `antientropy.rs`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AntiEntropy {
    /// How often this node runs one exchange with the next peer; 0 disables anti-entropy.
    /// Each exchange scans the node's data, so this is seconds, not milliseconds, in
    /// production.
    pub interval_ms: u64,
    /// Keys repaired per second at most, so that repairs leave room for client traffic.
    pub max_keys_per_sec: u64,
}

impl Default for AntiEntropy {
    fn default() -> Self {
        AntiEntropy {
            interval_ms: 30_000,
            max_keys_per_sec: 1_000,
        }
    }
}

/// Purging: removing keys that hold only tombstones and expired values, once nothing can
/// bring back what they superseded (see `workers::purge`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Purge {
    /// How often this node walks its keys for dead ones it coordinates the purge of; 0
    /// disables purging (tombstones and expired versions are then kept for ever).
    pub interval_ms: u64,
    /// How long a dead key waits before its purge starts, and again after every home was
    /// seen holding it, before it is removed. It must exceed the longest a request may
    /// take with its retries plus the clock skew tolerated between nodes: a copy of an
    /// older write still in flight after it would come back.
    pub delay_secs: u64,
    /// Keys checked or purged per second at most, so that purging leaves room for client
    /// traffic.
    pub max_keys_per_sec: u64,
    /// A live key's version vector is pruned, by the same rule, once it names more than
    /// this many actors that no version was stamped by (each node that forgot the key or
    /// crashed adds one: see `request::actors`); 0 never prunes.
    pub prune_above: usize,
}

impl Default for Purge {
    fn default() -> Self {
        Purge {
            interval_ms: 60_000,
            delay_secs: 3_600,
            max_keys_per_sec: 5_000,
            prune_above: 8,
        }
    }
}

/// Streaming data to new owners after a membership change.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Transfer {
    /// How often the node checks whether a transfer or a clean-up is due.
    pub interval_ms: u64,
    /// Keys read from the store per step (bounds the memory a transfer holds).
    pub batch: usize,
    /// Copies sent at once to new owners.
    pub max_in_flight: usize,
    /// Keys streamed per second at most, so that a transfer leaves room for client traffic;
    /// 0: unlimited.
    pub max_keys_per_sec: u64,
}

impl Default for Transfer {
    fn default() -> Self {
        Transfer {
            interval_ms: 200,
            batch: 256,
            max_in_flight: 32,
            max_keys_per_sec: 0,
        }
    }
}

/// Hinted handoff: how often the hint queue is drained to home nodes that are back.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Handoff {
    pub interval_ms: u64,
    /// Hints sent at once to home nodes (a bound on the memory and connections a drain uses).
    pub max_in_flight: usize,
    /// A hint whose home node has been unreachable this long (by the newest write it holds)
    /// is handed to anti-entropy: copied to the key's live home replicas, then deleted. The
    /// home gets it from them by anti-entropy when it returns. Never dropped otherwise.
    pub max_hint_age_secs: u64,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff {
            interval_ms: 500,
            max_in_flight: 32,
            max_hint_age_secs: 3 * 3600,
        }
    }
}

/// Bounds on what one peer can make this node do.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open connections at most; one more gets an `Overloaded` error frame and is closed.
    pub max_connections: usize,
    /// Requests being processed per connection; beyond it the node stops reading from that
    /// connection (back-pressure) until one finishes.
    pub max_in_flight_per_connection: usize,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// A connection that has not completed its handshake (`Hello`, and `Auth` when the node
    /// requires it) by then is closed.
    pub handshake_timeout_ms: u64,
    /// A connection with no request in flight that sends nothing for this long is closed
    /// (clients reconnect on their next request); 0: never.
    pub idle_timeout_ms: u64,
    /// Bytes of hints this node keeps for unreachable nodes. Beyond it new hints are refused
    /// (`Overloaded`: the writer uses another node) and the handoff worker hands the hints of
    /// down nodes to anti-entropy (see `handoff.rs`) until the queue is back under it.
    pub max_hint_queue_bytes: u64,
    /// How far ahead of this node's clock a client's `lww` write may be timestamped: one
    /// further ahead is refused (`ClockAhead`), since it would win over every later write of
    /// the key until real time caught up. Copies between nodes are never checked.
    pub max_clock_ahead_ms: u64,
}

/// Gossip timing.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gossip {
    pub interval_ms: u64,
    /// How long a dead node stays in the ring before gossip forgets it. Temporary failures
    /// must not change the ring, so this is long; operators remove dead nodes explicitly.
    pub dead_node_grace_secs: u64,
}

/// Cluster-wide settings this node proposes. Every node gossips its own; all nodes and clients
/// use the proposal with the highest `version` (ties: the lowest node id), so an operator
/// changes a bucket by raising `version` on any one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    pub version: u64,
    pub tokens_per_weight: u32,
    pub buckets: Buckets,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_in_flight_per_connection: 128,
            max_key_bytes: 64 * 1024,
            max_value_bytes: 4 * 1024 * 1024,
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 60_000,
            max_hint_queue_bytes: 1 << 30,
            max_clock_ahead_ms: 30_000,
        }
    }
}

impl Default for Gossip {
    fn default() -> Self {
        Gossip {
            interval_ms: 200,
            dead_node_grace_secs: 7 * 24 * 3600,
        }
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            version: 0,
            tokens_per_weight: DEFAULT_TOKENS_PER_WEIGHT,
            buckets: Buckets::default(),
        }
    }
}

impl Gossip {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}
