//! Node configuration: defaults in code, then a TOML file, then environment variables, then
//! command-line flags (each later source overrides the earlier ones), layered by figment.
//!
//! `ringkvd.example.toml` at the repository root documents every setting. Every setting can
//! come from the environment, by one rule: `RINGKVD_<SECTION>__<KEY>` sets `key` of
//! `[section]` (`RINGKVD_STORAGE__BLOCK_CACHE_MB=512`, `RINGKVD_CLUSTER__BUCKETS__DEFAULT__N=5`),
//! the value read as TOML (a number, `true`, `["a", "b"]`) or else as a string. The top-level
//! settings, and the common ones of sections, have flags, each with its variable
//! `RINGKVD_<FLAG>` (`RINGKVD_LISTEN`, `RINGKVD_DURABILITY`; see `ringkvd --help`), which clap
//! reads with the flag. A `RINGKVD_<SECTION>__<KEY>` variable naming no setting is refused,
//! as a typo in the file is; a variable of neither form is not a setting, and is ignored.
//! Keys are read in lower case: a named bucket with capitals is set in the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use ringkv_core::node::split_host_port;
use ringkv_core::wire::ProtocolRange;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod address;
mod args;
mod sections;

pub use address::Addresses;
pub use args::{Args, LogFormat};
pub use sections::{
    AntiEntropy, ClusterSettings, Durability, Gossip, Handoff, Limits, Purge, Security, Storage,
    Tls, Transfer,
};

/// The prefix of the environment variables that set settings.
const ENV_PREFIX: &str = "RINGKVD_";
/// What separates a section from its key in a variable's name.
const ENV_SPLIT: &str = "__";

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
    /// This node's failure domain (a rack, a room, a cloud availability zone): letters,
    /// digits, `-`, `_`, `.`. Used when it joins; a key's replicas are placed in as many
    /// distinct zones as the cluster has. Changing it later takes `ringkv cluster zone`: the
    /// zone in force is the layout's (a node whose setting differs says so in its log).
    pub zone: String,
    /// Where the admin HTTP endpoint listens (`/health`, `/ready`, `/metrics`, `/checkpoint`);
    /// none: off. Bind it to a private address: its GETs are not authenticated (with a cluster
    /// secret, `POST /checkpoint` takes the admin token).
    pub admin_listen: Option<String>,
    pub storage: Storage,
    pub limits: Limits,
    pub gossip: Gossip,
    pub handoff: Handoff,
    pub transfer: Transfer,
    pub anti_entropy: AntiEntropy,
    pub purge: Purge,
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
            zone: String::new(),
            admin_listen: None,
            storage: Storage::default(),
            limits: Limits::default(),
            gossip: Gossip::default(),
            handoff: Handoff::default(),
            transfer: Transfer::default(),
            anti_entropy: AntiEntropy::default(),
            purge: Purge::default(),
            cluster: ClusterSettings::default(),
            security: Security::default(),
            tls: Tls::default(),
        }
    }
}

impl Config {
    /// Defaults, overridden by the file named in `args` (if any), overridden by the
    /// environment, overridden by `args` (flags, and their variables). The result is
    /// validated.
    pub fn load(args: &Args) -> Result<Config> {
        let mut layers = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &args.config {
            // Read here (a pipe or `/dev/stdin` is a file too), with the I/O error as it is.
            let text = std::fs::read_to_string(path).map_err(|source| Error::File {
                action: "reading the config file",
                path: path.clone(),
                source,
            })?;
            layers = layers.merge(Toml::string(&text));
        }
        let env = Env::prefixed(ENV_PREFIX)
            .filter(|key| key.as_str().contains(ENV_SPLIT))
            .split(ENV_SPLIT);
        let mut config: Config = layers
            .merge(env)
            .merge(Serialized::defaults(args.settings()))
            .extract()
            .map_err(|e| {
                let key = e.path.join(".");
                Error::config(key, format!("configuration: {e}"))
            })?;
        // Paths from flags as given, byte for byte (the table above holds them as text).
        args.set_paths(&mut config);
        config.restored = args.restored;
        if let Some(max) = args.test_protocol_max {
            config.protocol = ProtocolRange::new(config.protocol.min, max).ok_or_else(|| {
                Error::config(
                    "test_protocol_max",
                    format!("--test-protocol-max {max} is below {}", config.protocol.min),
                )
            })?;
        }
        config.seeds.retain(|s| !s.is_empty());
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
        ringkv_core::node::validate_zone(&self.zone).map_err(|e| Error::config("zone", e))?;
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
