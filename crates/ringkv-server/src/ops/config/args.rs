//! `ringkvd`'s command line: the flags (each also an environment variable) that override the
//! configuration file.

use std::path::PathBuf;

use clap::Parser;

use super::Durability;

/// `ringkvd`'s command line. Every flag can also come from `RINGKVD_<NAME>`; every setting,
/// flag or not, from `RINGKVD_<SECTION>__<KEY>` (see `config`).
#[derive(Debug, Parser)]
#[command(name = "ringkvd", version, about = "The ringkv storage node")]
pub struct Args {
    /// TOML configuration file (see ringkvd.example.toml).
    #[arg(long, short, env = "RINGKVD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address for clients and peers (TCP) and gossip (UDP, same port).
    #[arg(long, env = "RINGKVD_LISTEN")]
    pub listen: Option<String>,
    /// Address others should use to reach this node (host:port, a name or an IP), if not
    /// --listen.
    #[arg(long, env = "RINGKVD_ADVERTISE")]
    pub advertise: Option<String>,
    /// Data directory.
    #[arg(long, env = "RINGKVD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seed nodes to join through, comma-separated host:port.
    #[arg(long, env = "RINGKVD_SEEDS", value_delimiter = ',')]
    pub seeds: Option<Vec<String>>,
    /// Cluster name; nodes only gossip within one.
    #[arg(long, env = "RINGKVD_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// This node's weight (share of the ring).
    #[arg(long, env = "RINGKVD_WEIGHT")]
    pub weight: Option<u32>,
    /// This node's failure domain (see `zone` in the config file).
    #[arg(long, env = "RINGKVD_ZONE")]
    pub zone: Option<String>,
    /// host:port of the admin HTTP endpoint (/health, /ready, /metrics).
    #[arg(long, env = "RINGKVD_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// When an acknowledged write is on disk: `os` (page cache) or `fsync`.
    #[arg(long, env = "RINGKVD_DURABILITY", value_enum)]
    pub durability: Option<Durability>,
    /// File holding the cluster secret (see `security.cluster_secret_file`).
    #[arg(long, env = "RINGKVD_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// File of client tokens, one per line (see `security.client_tokens_file`).
    #[arg(long, env = "RINGKVD_CLIENT_TOKENS_FILE")]
    pub client_tokens_file: Option<PathBuf>,
    /// This node's TLS certificate chain (PEM); turns TLS on (see `tls.cert_file`).
    #[arg(long, env = "RINGKVD_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "RINGKVD_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// The CA of the nodes' certificates (PEM).
    #[arg(long, env = "RINGKVD_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Require client certificates signed by this CA (mutual TLS).
    #[arg(long, env = "RINGKVD_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// This data directory is a restored copy (of a node stopped at the time, or a filesystem
    /// snapshot): start a new incarnation, so that no dot minted since the copy is minted
    /// again. Checkpoints from `POST /checkpoint` do not need it; it never hurts.
    #[arg(long)]
    pub restored: bool,
    /// Tests only: speak protocol versions up to this one (the next release's), to test
    /// version negotiation in a rolling upgrade. Frames do not change with it.
    #[arg(long, env = "RINGKVD_TEST_PROTOCOL_MAX", hide = true)]
    pub test_protocol_max: Option<u32>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Print the token the admin port's POST endpoints take (derived from the cluster
    /// secret; the secret itself never goes over the admin port) and exit.
    #[arg(long)]
    pub print_admin_token: bool,
    /// How logs are written to stderr: `text` for people, `json` (one object per line) for
    /// log shippers. What is logged follows `RUST_LOG` (default `info`).
    #[arg(long, env = "RINGKVD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// See [`Args::log_format`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Args {
    /// The settings the flags (and their variables) give, as a table over the configuration:
    /// the top layer of [`super::Config::load`].
    pub fn settings(&self) -> toml::Table {
        let mut top = toml::Table::new();
        let mut set = |section: Option<&str>, key: &str, value: toml::Value| {
            let table = match section {
                None => &mut top,
                Some(name) => match top
                    .entry(name)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                {
                    toml::Value::Table(table) => table,
                    _ => return,
                },
            };
            table.insert(key.to_string(), value);
        };
        let text = |v: &str| toml::Value::String(v.to_string());
        let path = |v: &PathBuf| toml::Value::String(v.display().to_string());
        if let Some(v) = &self.listen {
            set(None, "listen", text(v));
        }
        if let Some(v) = &self.advertise {
            set(None, "advertise", text(v));
        }
        if let Some(v) = &self.data_dir {
            set(None, "data_dir", path(v));
        }
        if let Some(v) = &self.seeds {
            let seeds = v.iter().map(|s| text(s)).collect();
            set(None, "seeds", toml::Value::Array(seeds));
        }
        if let Some(v) = &self.cluster_name {
            set(None, "cluster_name", text(v));
        }
        if let Some(v) = self.weight {
            set(None, "weight", toml::Value::Integer(i64::from(v)));
        }
        if let Some(v) = &self.zone {
            set(None, "zone", text(v));
        }
        if let Some(v) = &self.admin_listen {
            set(None, "admin_listen", text(v));
        }
        if let Some(v) = self.durability {
            let name = match v {
                Durability::Os => "os",
                Durability::Fsync => "fsync",
            };
            set(Some("storage"), "durability", text(name));
        }
        let files = [
            ("security", "cluster_secret_file", &self.cluster_secret_file),
            ("security", "client_tokens_file", &self.client_tokens_file),
            ("tls", "cert_file", &self.tls_cert_file),
            ("tls", "key_file", &self.tls_key_file),
            ("tls", "ca_file", &self.tls_ca_file),
            ("tls", "client_ca_file", &self.tls_client_ca_file),
        ];
        for (section, key, file) in files {
            if let Some(v) = file {
                set(Some(section), key, path(v));
            }
        }
        top
    }

    /// Puts the paths the flags give into `config` as they are: the table of
    /// [`Args::settings`] holds them as text, which a path need not be.
    pub fn set_paths(&self, config: &mut super::Config) {
        let paths = [
            (
                &self.cluster_secret_file,
                &mut config.security.cluster_secret_file,
            ),
            (
                &self.client_tokens_file,
                &mut config.security.client_tokens_file,
            ),
            (&self.tls_cert_file, &mut config.tls.cert_file),
            (&self.tls_key_file, &mut config.tls.key_file),
            (&self.tls_ca_file, &mut config.tls.ca_file),
            (&self.tls_client_ca_file, &mut config.tls.client_ca_file),
        ];
        for (flag, setting) in paths {
            if let Some(v) = flag {
                *setting = Some(v.clone());
            }
        }
        if let Some(v) = &self.data_dir {
            config.data_dir = v.clone();
        }
    }
}
