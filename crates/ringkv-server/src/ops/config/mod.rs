//! Node configuration: defaults in code, then a TOML file, then environment variables, then
//! command-line flags (each later source overrides the earlier ones).
//!
//! `ringkvd.example.toml` at the repository root documents every setting. Each flag has an
//! environment variable `RINGKVD_<FLAG>` (e.g. `RINGKVD_LISTEN`), handled by clap.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringkv_core::Buckets;
use ringkv_core::node::split_host_port;
use ringkv_core::ring::DEFAULT_TOKENS_PER_WEIGHT;
use ringkv_core::wire::ProtocolRange;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod address;
mod args;

pub use address::Addresses;
pub use args::{Args, LogFormat};

/// Everything a node needs to run. Build it with [`Config::load`] or by hand in tests.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address for client and peer connections (TCP) and for gossip (UDP, same port):
    /// `host:port`, the host an IP or a name (resolved at start).
    pub listen: String,
    /// Address other nodes and clients should use, if not `listen` (a stable DNS name such
    /// as a StatefulSet pod's, or the address behind NAT). It is this node's member address
    /// in the layout, resolved by every client on every connect; a node started with its
    /// data directory at another address than its member address moves the member there
    /// (see `cluster::address`).
    pub advertise: Option<String>,
    /// Where RocksDB keeps this node's data and identity.
    pub data_dir: PathBuf,
    /// Gossip addresses of nodes to gossip with at start. A node becomes a member of the ring
    /// only through `ringkv cluster init` or `ringkv cluster join` + `commit`.
    pub seeds: Vec<String>,
    /// Nodes only gossip with nodes of the same cluster name.
    pub cluster_name: String,
    /// This node's share of the ring relative to others (a bigger machine, a bigger weight),
    /// used when it joins unless `cluster join --weight` says otherwise.
    pub weight: u32,
    /// Where the admin HTTP endpoint listens (`/health`, `/ready`, `/metrics`); none: off.
    /// Bind it to a private address: it is not authenticated.
    pub admin_listen: Option<String>,
    pub storage: Storage,
    pub limits: Limits,
    pub gossip: Gossip,
    pub handoff: Handoff,
    pub transfer: Transfer,
    pub anti_entropy: AntiEntropy,
    pub cluster: ClusterSettings,
    pub security: Security,
    pub tls: Tls,
    /// `--restored`: start a new incarnation even if the store says it stopped cleanly (see
    /// `request::actors`). A start-up action, never read from a file.
    #[serde(skip)]
    pub restored: bool,
    /// The protocol versions the node speaks: this build's, unless a test widens them
    /// (`--test-protocol-max`). Never read from a file.
    #[serde(skip)]
    pub protocol: ProtocolRange,
}

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

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:7400".into(),
            advertise: None,
            data_dir: PathBuf::from("./ringkv-data"),
            restored: false,
            protocol: ProtocolRange::CURRENT,
            seeds: Vec::new(),
            cluster_name: "ringkv".into(),
            weight: 1,
            admin_listen: None,
            storage: Storage::default(),
            limits: Limits::default(),
            gossip: Gossip::default(),
            handoff: Handoff::default(),
            transfer: Transfer::default(),
            anti_entropy: AntiEntropy::default(),
            cluster: ClusterSettings::default(),
            security: Security::default(),
            tls: Tls::default(),
        }
    }
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

impl Config {
    /// Defaults, overridden by the file named in `args` (if any), overridden by `args` (flags
    /// and environment variables). The result is validated.
    pub fn load(args: &Args) -> Result<Config> {
        let mut config = match &args.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = &args.listen {
            config.listen = v.clone();
        }
        if let Some(v) = &args.advertise {
            config.advertise = Some(v.clone());
        }
        if let Some(v) = &args.data_dir {
            config.data_dir = v.clone();
        }
        config.restored = args.restored;
        if let Some(max) = args.test_protocol_max {
            config.protocol = ProtocolRange::new(config.protocol.min, max).ok_or_else(|| {
                Error::config(
                    "test_protocol_max",
                    format!("--test-protocol-max {max} is below {}", config.protocol.min),
                )
            })?;
        }
        if let Some(v) = &args.seeds {
            config.seeds = v.iter().filter(|s| !s.is_empty()).cloned().collect();
        }
        if let Some(v) = &args.cluster_name {
            config.cluster_name = v.clone();
        }
        if let Some(v) = &args.admin_listen {
            config.admin_listen = Some(v.clone());
        }
        if let Some(v) = args.weight {
            config.weight = v;
        }
        if let Some(v) = args.durability {
            config.storage.durability = v;
        }
        let files = [
            (
                &args.cluster_secret_file,
                &mut config.security.cluster_secret_file,
            ),
            (
                &args.client_tokens_file,
                &mut config.security.client_tokens_file,
            ),
            (&args.tls_cert_file, &mut config.tls.cert_file),
            (&args.tls_key_file, &mut config.tls.key_file),
            (&args.tls_ca_file, &mut config.tls.ca_file),
            (&args.tls_client_ca_file, &mut config.tls.client_ca_file),
        ];
        for (flag, setting) in files {
            if let Some(v) = flag {
                *setting = Some(v.clone());
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// The file at `path` over the defaults (a setting it does not name keeps its default; a
    /// name it does not know is refused, so that a typo is not silently ignored).
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::File {
            action: "reading the config file",
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            let file = path.display().to_string();
            Error::config(file.clone(), format!("parsing config file {file}: {e}"))
        })
    }

    /// Where checkpoints (backups) go: `storage.checkpoint_dir`, or `<data_dir>.checkpoints`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.storage.checkpoint_dir.clone().unwrap_or_else(|| {
            let mut name = self.data_dir.clone().into_os_string();
            name.push(".checkpoints");
            PathBuf::from(name)
        })
    }

    /// The address peers and clients use for this node: its member address.
    pub fn advertised(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.listen)
    }

    pub fn validate(&self) -> Result<()> {
        if self.weight == 0 {
            return Err(Error::config("weight", "weight must be at least 1"));
        }
        if self.cluster.tokens_per_weight == 0 {
            return Err(Error::config(
                "cluster.tokens_per_weight",
                "cluster.tokens_per_weight must be at least 1",
            ));
        }
        if self.transfer.batch == 0 || self.transfer.max_in_flight == 0 {
            return Err(Error::config(
                "transfer.batch",
                "transfer.batch and transfer.max_in_flight must be at least 1",
            ));
        }
        let addresses = [
            ("listen", Some(&self.listen)),
            ("advertise", self.advertise.as_ref()),
            ("admin_listen", self.admin_listen.as_ref()),
        ];
        for (key, addr) in addresses {
            if let Some(addr) = addr
                && split_host_port(addr).is_none()
            {
                return Err(Error::config(
                    key,
                    format!("{key} = {addr:?}: expected host:port (an IP or a name, and a port)"),
                ));
            }
        }
        if self
            .advertised()
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_unspecified())
        {
            return Err(Error::config(
                "advertise",
                format!(
                    "listen is {} (any address): set advertise to an address peers can reach",
                    self.listen
                ),
            ));
        }
        if self.limits.max_connections == 0 || self.limits.max_in_flight_per_connection == 0 {
            return Err(Error::config(
                "limits.max_connections",
                "limits.max_connections and limits.max_in_flight_per_connection must be at least 1",
            ));
        }
        if self.limits.max_value_bytes + self.limits.max_key_bytes + 4096
            > ringkv_core::wire::MAX_FRAME_LEN
        {
            return Err(Error::config(
                "limits.max_value_bytes",
                format!(
                    "limits.max_key_bytes + limits.max_value_bytes must leave room in a {} byte \
                     frame",
                    ringkv_core::wire::MAX_FRAME_LEN
                ),
            ));
        }
        let tls = &self.tls;
        let files = [&tls.cert_file, &tls.key_file, &tls.ca_file];
        if files.iter().any(|f| f.is_some()) && !files.iter().all(|f| f.is_some()) {
            return Err(Error::config(
                "tls.cert_file",
                "tls.cert_file, tls.key_file and tls.ca_file are needed together",
            ));
        }
        if (tls.client_ca_file.is_some() || tls.server_name.is_some()) && tls.cert_file.is_none() {
            return Err(Error::config(
                "tls.cert_file",
                "tls.client_ca_file and tls.server_name need tls.cert_file",
            ));
        }
        if self.security.client_tokens_file.is_some() && self.security.cluster_secret_file.is_none()
        {
            return Err(Error::config(
                "security.client_tokens_file",
                "security.client_tokens_file needs security.cluster_secret_file: with client \
                 tokens required, nodes must prove the cluster secret to reach each other",
            ));
        }
        self.cluster
            .buckets
            .validate()
            .map_err(|e| Error::config("cluster.buckets", format!("cluster.buckets: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
