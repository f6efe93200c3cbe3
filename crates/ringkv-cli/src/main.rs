//! `ringkv`: the command-line tool.
//!
//! - [`data`]: `get`, `put`, `delete` through the SDK, with `--r`/`--w`, showing every
//!   sibling and the context (hex) to write with.
//! - [`inspect`]: `status` (the members, like `nodetool status`), `ring --key` (a key's
//!   preference list) and `explain KEY` (what every replica holds for one key, and whether a
//!   read would repair anything).
//! - [`cluster`]: staged membership changes, as in Riak: `cluster init`, `join`, `leave`,
//!   `weight`, then `plan` to see what would change and `commit` (or `clear`).
//! - [`watch`]: `handoff --watch`, the progress of data streaming and hinted handoff.
//!
//! Human-readable by default, JSON with `--json`. Every command talks to whichever of
//! `--seeds` answers; membership commands go to the seed holding the newest layout.

mod admin;
mod bucket;
mod cluster;
mod data;
mod format;
mod inspect;
mod status;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ringkv::transport::ConnectOptions;
use ringkv::{Client, ClientConfig, ClientTls, ContextKey, Credential};
use ringkv_core::auth::Secret;

use crate::admin::Admin;

#[derive(Debug, Parser)]
#[command(
    name = "ringkv",
    version,
    about = "Read, write, inspect and reshape a ringkv cluster"
)]
struct Cli {
    /// Any nodes of the cluster, comma-separated host:port.
    #[arg(
        long,
        env = "RINGKV_SEEDS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7400",
        global = true
    )]
    seeds: Vec<String>,
    /// Bucket of get/put/delete/ring/explain.
    #[arg(long, default_value = ringkv::DEFAULT_BUCKET, global = true)]
    bucket: String,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// Deadline of each call, in seconds.
    #[arg(long, default_value_t = 5.0, global = true)]
    timeout: f64,
    /// File holding the cluster secret, for clusters that have one: membership changes need
    /// it, and it also authenticates data commands.
    #[arg(long, env = "RINGKV_CLUSTER_SECRET_FILE", global = true)]
    cluster_secret_file: Option<PathBuf>,
    /// File holding a client token, for clusters that require one (data commands).
    #[arg(long, env = "RINGKV_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// File holding the application's context key (its bytes, surrounding whitespace
    /// removed): contexts are printed sealed with it, and `--context` must be sealed with it.
    #[arg(long, env = "RINGKV_CONTEXT_KEY_FILE", global = true)]
    context_key_file: Option<PathBuf>,
    /// Connect with TLS, trusting the nodes' CA in this PEM file.
    #[arg(long, env = "RINGKV_TLS_CA_FILE", global = true)]
    tls_ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM), for nodes that require one (mutual TLS).
    #[arg(
        long,
        env = "RINGKV_TLS_CERT_FILE",
        global = true,
        requires = "tls_key_file"
    )]
    tls_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "RINGKV_TLS_KEY_FILE",
        global = true,
        requires = "tls_cert_file"
    )]
    tls_key_file: Option<PathBuf>,
    /// Check the nodes' certificates against this name rather than their addresses.
    #[arg(long, env = "RINGKV_TLS_SERVER_NAME", global = true)]
    tls_server_name: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a key: every sibling (as text if it is UTF-8, else base64), and the context to
    /// write with.
    Get {
        key: String,
        #[arg(long)]
        r: Option<u8>,
        /// Write the value's bytes, as they are, to this file (`-`: standard output) instead;
        /// refused if the key has several siblings.
        #[arg(long, value_name = "PATH")]
        output: Option<std::path::PathBuf>,
    },
    /// Read several keys at once (one request per node for all of them): each key's
    /// siblings and context, or its error; fails if any key did.
    GetMany {
        #[arg(required = true)]
        keys: Vec<String>,
        #[arg(long)]
        r: Option<u8>,
    },
    /// Write a key; pass the context of a read to replace what it saw.
    Put {
        key: String,
        /// The value, as text; or give `--file`.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value's bytes from this file (`-`: standard input).
        #[arg(long, value_name = "PATH")]
        file: Option<std::path::PathBuf>,
        #[arg(long)]
        context: Option<String>,
        #[arg(long)]
        w: Option<u8>,
        /// Replace every version, whatever the context.
        #[arg(long)]
        overwrite: bool,
        /// Expire the value this long after it is written (by the servers' clocks), then it
        /// reads as absent: `90`, `90s`, `15m`, `2h`, `7d` or `500ms`.
        #[arg(long, value_parser = data::parse_ttl)]
        ttl: Option<std::time::Duration>,
    },
    /// Delete a key (what the context saw, or every version without one).
    Delete {
        key: String,
        #[arg(long)]
        context: Option<String>,
        #[arg(long)]
        w: Option<u8>,
    },
    /// The members of the cluster: state, address, load, ownership, weight.
    Status,
    /// Where a key lives: its preference list, home replicas first.
    Ring {
        #[arg(long)]
        key: String,
    },
    /// What every replica of one key holds, the hints for it, and what a read would repair.
    Explain { key: String },
    /// Staged membership changes: init, join, leave, weight, then plan and commit.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Bucket settings (n, r, w, conflict policy), held by the cluster: create, set, list.
    #[command(subcommand)]
    Bucket(bucket::BucketCommand),
    /// Progress of data streaming after a membership change, and of hinted handoff.
    Handoff {
        /// Keep watching (refreshing every second) until nothing is left to hand off.
        #[arg(long)]
        watch: bool,
        /// With --watch: stop after this many seconds even if work remains.
        #[arg(long, default_value_t = 3600.0)]
        max_wait: f64,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("ringkv: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let timeout = Duration::try_from_secs_f64(cli.timeout).context("--timeout")?;
    let credential = credential(&cli)?;
    let tls = match &cli.tls_ca_file {
        Some(ca) => {
            let identity = cli
                .tls_cert_file
                .as_deref()
                .zip(cli.tls_key_file.as_deref());
            Some(ClientTls::from_files(
                ca,
                identity,
                cli.tls_server_name.as_deref(),
            )?)
        }
        None => None,
    };
    let mut options = ConnectOptions::default();
    options.credential = credential;
    options.tls = tls;
    let admin = Admin::new(cli.seeds.clone(), timeout, options.clone());
    match cli.command {
        Command::Cluster(command) => return cluster::run(&admin, command, cli.json).await,
        Command::Bucket(command) => return bucket::run(&admin, command, cli.json).await,
        Command::Handoff { watch, max_wait } => {
            let max_wait = Duration::try_from_secs_f64(max_wait).context("--max-wait")?;
            return watch::run(&admin, watch, max_wait, cli.json).await;
        }
        _ => {}
    }
    let mut config = ClientConfig::default().with_timeout(timeout);
    config.connect = options;
    if let Some(path) = &cli.context_key_file {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the context key {}", path.display()))?;
        let key = ContextKey::new(bytes.trim_ascii().to_vec())
            .with_context(|| format!("{} holds no context key", path.display()))?;
        config.context_key = Some(key);
    }
    let client = Client::builder()
        .seeds(cli.seeds.clone())
        .config(config)
        .build()
        .await
        .context("connecting to the cluster")?;
    let bucket = client.bucket(cli.bucket.clone());
    let done = match cli.command {
        Command::Get { key, r, output } => {
            data::get(&bucket, &key, r, output.as_deref(), cli.json).await
        }
        Command::GetMany { keys, r } => data::get_many(&bucket, &keys, r, cli.json).await,
        Command::Put {
            key,
            value,
            file,
            context,
            w,
            overwrite,
            ttl,
        } => {
            let write = data::WriteArgs {
                context,
                w,
                overwrite,
                ttl,
            };
            let value = match (value, file) {
                (Some(text), _) => text.into_bytes(),
                (None, Some(path)) => data::read_value(&path)?,
                (None, None) => anyhow::bail!("give a value, or --file"),
            };
            data::put(&bucket, &key, Some(value), write, cli.json).await
        }
        Command::Delete { key, context, w } => {
            let write = data::WriteArgs {
                context,
                w,
                overwrite: false,
                ttl: None,
            };
            data::put(&bucket, &key, None, write, cli.json).await
        }
        Command::Status => status::status(&client, &admin, cli.json).await,
        Command::Ring { key } => inspect::ring(&client, &cli.bucket, &key, cli.json),
        Command::Explain { key } => {
            inspect::explain(&client, &admin, &cli.bucket, &key, cli.json).await
        }
        Command::Cluster(_) | Command::Bucket(_) | Command::Handoff { .. } => Ok(()),
    };
    // A write returns after `w` acknowledgements and its other copies are still on their
    // way; exiting now would drop them (and a read's repairs).
    client.flush(timeout).await;
    done
}

/// The credential the command proves: the cluster secret if given (it can do everything),
/// else the client token if given.
fn credential(cli: &Cli) -> anyhow::Result<Option<Credential>> {
    if let Some(path) = &cli.cluster_secret_file {
        let secret = Secret::from_file(path)
            .with_context(|| format!("reading the cluster secret {}", path.display()))?;
        return Ok(Some(Credential::cluster_secret(secret)));
    }
    match &cli.token_file {
        Some(path) => Ok(Some(Credential::token_file(path)?)),
        None => Ok(None),
    }
}
