//! [`TestCluster`]: real `ringkvd` processes on loopback, started, configured and killed by
//! the test.
//!
//! [`TestCluster::start`] writes one directory and config file per node (see [`ClusterSpec`])
//! in one temporary folder, starts the nodes, waits until gossip has made them known to each
//! other and, unless told not to, founds the cluster and waits until every node sees every
//! member alive. Dropping the cluster kills every node; when the test panics (or
//! `RINGKV_KEEP_TEST_DIRS` is set) the folder and the node logs are kept and their path
//! printed.
//!
//! The methods are grouped by what a test does with them: this file starts a cluster and
//! connects to it, `lifecycle.rs` adds, pauses, kills and restarts nodes, `membership.rs`
//! drives and waits for membership changes, and `inspect.rs` looks at what each node holds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use ringkv::{Client, ClientConfig};
use ringkv_core::auth::{Role, Secret};
use ringkv_core::wire::Request;

use crate::process::{free_port, ringkvd_bin};
use crate::{RawConnection, TlsFiles};

mod inspect;
mod lifecycle;
mod membership;

pub use inspect::Placement;

/// How long a node gets to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings for a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// How many nodes `TestCluster::start` starts (and founds the cluster with).
    pub nodes: usize,
    /// TOML appended to every node's config (e.g. a `[cluster.buckets.named.x]` table).
    pub extra_toml: String,
    /// Give node `i` the address 127.0.0.`i + 2` (port 7400) instead of 127.0.0.1 and a free
    /// port: inside a test's own network namespace, so that firewall rules can tell nodes and
    /// the client (127.0.0.1) apart.
    pub own_addresses: bool,
    /// Node `i`'s zone (`zone` in its config) is `zones[i]`; nodes beyond the list, and all
    /// of them when it is empty, have none.
    pub zones: Vec<String>,
    /// Make the nodes one cluster once they run (as `ringkv cluster init` does). Off, they
    /// only gossip, members of nothing, until a test founds the cluster itself.
    pub found: bool,
    /// Give every node an admin HTTP port (`Node::admin`).
    pub admin: bool,
    /// The cluster secret every node gets (in a file, `security.cluster_secret_file`); the
    /// cluster's own requests (founding, stats) prove it.
    pub cluster_secret: Option<String>,
    /// Client tokens every node requires (`security.client_tokens_file`); `client()` proves
    /// the first.
    pub client_tokens: Vec<String>,
    /// TLS on every node, with these files (`TlsFiles::generate`); the support's own
    /// connections and `client()` use them.
    pub tls: Option<TlsFiles>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            nodes: 3,
            extra_toml: String::new(),
            own_addresses: false,
            zones: Vec::new(),
            found: true,
            admin: false,
            cluster_secret: None,
            client_tokens: Vec::new(),
            tls: None,
        }
    }
}

/// The address of node `i` in a cluster of `spec`.
fn node_addr(spec: &ClusterSpec, i: usize) -> SocketAddr {
    if spec.own_addresses {
        SocketAddr::from(([127, 0, 0, 2 + i as u8], 7400))
    } else {
        SocketAddr::from(([127, 0, 0, 1], free_port()))
    }
}

/// One `ringkvd` process (or a stopped one that can be restarted).
#[derive(Debug)]
pub struct Node {
    /// The node's data address (`listen`), also its gossip address.
    pub addr: SocketAddr,
    /// The admin HTTP endpoint, with `ClusterSpec::admin`.
    pub admin: Option<SocketAddr>,
    /// The node's own directory: its config, its log and its `data` directory.
    pub dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Environment variables the process starts with, beyond the harness's own.
    env: Vec<(String, String)>,
}

impl Node {
    /// Writes node `i`'s directory and config file.
    fn configure(
        root: &Path,
        i: usize,
        addr: SocketAddr,
        seeds: &[SocketAddr],
        cluster_name: &str,
        spec: &ClusterSpec,
    ) -> anyhow::Result<Node> {
        let dir = root.join(format!("node{i}"));
        std::fs::create_dir_all(&dir)?;
        let seeds: Vec<String> = seeds.iter().map(|a| format!("\"{a}\"")).collect();
        let config = dir.join("ringkvd.toml");
        let admin = spec.admin.then(|| SocketAddr::new(addr.ip(), free_port()));
        let mut admin_line = admin.map_or(String::new(), |a| format!("admin_listen = \"{a}\"\n"));
        if let Some(zone) = spec.zones.get(i) {
            admin_line.push_str(&format!("zone = \"{zone}\"\n"));
        }
        let mut security = String::new();
        if let Some(secret) = &spec.cluster_secret {
            let path = dir.join("cluster.secret");
            std::fs::write(&path, format!("{secret}\n"))?;
            security.push_str(&format!("cluster_secret_file = \"{}\"\n", path.display()));
        }
        if !spec.client_tokens.is_empty() {
            let path = dir.join("client.tokens");
            std::fs::write(&path, spec.client_tokens.join("\n"))?;
            security.push_str(&format!("client_tokens_file = \"{}\"\n", path.display()));
        }
        std::fs::write(
            &config,
            format!(
                "listen = \"{addr}\"\ndata_dir = \"{}\"\nseeds = [{}]\ncluster_name = \"{cluster_name}\"\n\
                 {admin_line}[gossip]\ninterval_ms = 100\n{}\n[security]\n{security}{}",
                dir.join("data").display(),
                seeds.join(", "),
                spec.extra_toml,
                spec.tls.as_ref().map_or(String::new(), TlsFiles::toml),
            ),
        )?;
        Ok(Node {
            addr,
            admin,
            log: dir.join("ringkvd.log"),
            dir,
            config,
            child: None,
            env: Vec::new(),
        })
    }
}

/// N real nodes on loopback. See the module docs.
#[derive(Debug)]
pub struct TestCluster {
    /// Every node started, in start order: a test names a node by its index here.
    pub nodes: Vec<Node>,
    dir: Option<tempfile::TempDir>,
    cluster_name: String,
    spec: ClusterSpec,
}

impl TestCluster {
    /// Starts a cluster of `spec.nodes` and waits until every node sees all of them alive.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<TestCluster> {
        let bin = ringkvd_bin();
        if !bin.exists() {
            bail!(
                "{} not found: build it with `cargo build -p ringkv-server`",
                bin.display()
            );
        }
        let dir = tempfile::Builder::new().prefix("ringkv-test-").tempdir()?;
        let addrs: Vec<SocketAddr> = (0..spec.nodes).map(|i| node_addr(&spec, i)).collect();
        let cluster_name = format!("test-{}", addrs[0].port());
        let mut nodes = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let seeds: Vec<SocketAddr> = addrs.iter().filter(|a| *a != addr).copied().collect();
            nodes.push(Node::configure(
                dir.path(),
                i,
                *addr,
                &seeds,
                &cluster_name,
                &spec,
            )?);
        }
        let mut cluster = TestCluster {
            nodes,
            dir: Some(dir),
            cluster_name,
            spec: spec.clone(),
        };
        for i in 0..spec.nodes {
            cluster.spawn(i)?;
        }
        // Gossip makes the nodes known to each other; founding makes them members.
        let mut members = Vec::new();
        for i in 0..spec.nodes {
            members.push(cluster.member_of(i).await?);
        }
        if spec.found {
            cluster
                .admin(0, Request::Found { members })
                .await
                .context("founding the cluster")?;
            cluster.wait_converged(spec.nodes).await?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let child = Command::new(ringkvd_bin())
            .arg("--config")
            .arg(&node.config)
            .env(
                "RUST_LOG",
                std::env::var("RINGKVD_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(node.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting ringkvd")?;
        node.child = Some(child);
        Ok(())
    }

    /// A raw connection to `addr` that proves the cluster secret, if the cluster has one.
    pub async fn raw(&self, addr: SocketAddr) -> anyhow::Result<RawConnection> {
        let secret = self.spec.cluster_secret.as_deref().and_then(Secret::new);
        let tls = self.spec.tls.as_ref().map(TlsFiles::client).transpose()?;
        RawConnection::open_with(addr, secret.map(|s| (Role::Node, s)), tls.as_ref()).await
    }

    /// Every node's data address, as a client's seed list.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.to_string()).collect()
    }

    /// A client seeded with every node, with the given config (proving the cluster's first
    /// client token, if it has any and the config sets no credential).
    pub async fn client_with(&self, mut config: ClientConfig) -> anyhow::Result<Client> {
        let connect = &mut config.connect;
        if connect.credential.is_none()
            && let Some(token) = self.spec.client_tokens.first()
        {
            connect.credential = Some(ringkv::Credential::token(token)?);
        }
        if connect.tls.is_none()
            && let Some(tls) = &self.spec.tls
        {
            connect.tls = Some(tls.client()?);
        }
        Ok(Client::builder()
            .seeds(self.addrs())
            .config(config)
            .build()
            .await?)
    }

    /// A client seeded with every node, with the default config (see `client_with`).
    pub async fn client(&self) -> anyhow::Result<Client> {
        self.client_with(ClientConfig::default()).await
    }

    /// Whether node `i` is started (and not killed or terminated).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    fn running(&self) -> usize {
        self.nodes.iter().filter(|n| n.child.is_some()).count()
    }

    /// The last `lines` lines of every node's log above DEBUG, for error messages: a test
    /// that fails by returning an error removes its directory, logs included.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let kept: Vec<&str> = text.lines().filter(|l| !l.contains("DEBUG")).collect();
            out.push_str(&format!("--- node {i} ({}):\n", node.addr));
            for line in &kept[kept.len().saturating_sub(lines)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The cluster's temporary folder, which holds every node's directory.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("."))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.resume(i);
            self.kill(i);
        }
        // Kept when the test panics, or always with RINGKV_KEEP_TEST_DIRS set (a test that
        // fails by returning an error drops its cluster before the harness panics).
        let keep = std::thread::panicking() || std::env::var_os("RINGKV_KEEP_TEST_DIRS").is_some();
        if keep && let Some(dir) = self.dir.take() {
            let path = dir.keep();
            eprintln!("test failed; node data and logs kept in {}", path.display());
        }
    }
}
