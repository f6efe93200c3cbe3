//! Test support: real `ringkvd` processes on loopback, and a raw protocol connection.
//!
//! [`TestCluster`] starts N `ringkvd` processes on free loopback ports, each with its own data
//! directory in one temporary folder, and kills every one of them when dropped (also when a
//! test panics, in which case the folder and the node logs are kept and their path printed).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ringkv::{Client, ClientConfig};
use ringkv_core::auth::{Role, Secret};
use ringkv_core::wire::{Request, Response};
use ringkv_core::{Change, Layout, RingEpoch};

/// How long a node gets to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `ringkvd` binary: `$RINGKVD_BIN`, or the one cargo built next to this test binary.
pub fn ringkvd_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGKVD_BIN") {
        return PathBuf::from(path);
    }
    workspace_bin("ringkvd")
}

/// A binary of the workspace, as cargo built it next to this test binary (build the
/// workspace first: `cargo test -p ringkv-tests` alone does not build other packages' bins).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir layout");
    profile_dir.join(name)
}

/// A loopback port free for both TCP and UDP (ringkvd uses both on one port), and never
/// handed out before by this process: the kernel may offer a just-released port again, and
/// two nodes given one address would make a cluster that silently misses a member.
///
/// Ports come from below the kernel's ephemeral range (32768 and up): while a test has a node
/// down, an outgoing connection could otherwise be given that node's port as its local port,
/// and the node could not bind it again when it restarts.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    // Test binaries run one after another: start each one somewhere else in the range.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let start = (nanos ^ std::process::id()) % u32::from(SPAN);
    for step in 0..u32::from(SPAN) {
        let port = FIRST + ((start + step) % u32::from(SPAN)) as u16;
        if given.contains(&port) {
            continue;
        }
        let Ok(_tcp) = TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port for tcp and udp");
}

/// Settings for a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub nodes: usize,
    /// TOML appended to every node's config (e.g. a `[cluster.buckets.named.x]` table).
    pub extra_toml: String,
    /// Give node `i` the address 127.0.0.`i + 2` (port 7400) instead of 127.0.0.1 and a free
    /// port: inside a test's own network namespace, so that firewall rules can tell nodes and
    /// the client (127.0.0.1) apart.
    pub own_addresses: bool,
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

/// A CA, a certificate for every node (for 127.0.0.1) and one for clients, as PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca: PathBuf,
    /// The nodes' certificate and key, also presented when they connect to each other.
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
    /// A client's certificate and key, signed by the same CA.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Require client certificates (mutual TLS).
    pub mutual: bool,
}

impl TlsFiles {
    /// Makes a new CA and certificates in `dir`.
    pub fn generate(dir: &Path, mutual: bool) -> anyhow::Result<TlsFiles> {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
        };
        std::fs::create_dir_all(dir)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let issue = |name: &str| -> anyhow::Result<(String, String)> {
            let mut params = CertificateParams::new(vec![name.to_string()])?;
            params
                .subject_alt_names
                .push(SanType::IpAddress([127, 0, 0, 1].into()));
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca, &ca_key)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            node_cert: dir.join("node.pem"),
            node_key: dir.join("node.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            mutual,
        };
        std::fs::write(&files.ca, ca.pem())?;
        let (cert, key) = issue("ringkv-node")?;
        std::fs::write(&files.node_cert, cert)?;
        std::fs::write(&files.node_key, key)?;
        let (cert, key) = issue("ringkv-client")?;
        std::fs::write(&files.client_cert, cert)?;
        std::fs::write(&files.client_key, key)?;
        Ok(files)
    }

    /// A client's TLS: trusting the CA, presenting the client certificate.
    pub fn client(&self) -> anyhow::Result<ringkv::ClientTls> {
        Ok(ringkv::ClientTls::from_files(
            &self.ca,
            Some((&self.client_cert, &self.client_key)),
            None,
        )?)
    }

    fn toml(&self) -> String {
        let mut out = format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\n",
            self.node_cert.display(),
            self.node_key.display(),
            self.ca.display()
        );
        if self.mutual {
            out.push_str(&format!("client_ca_file = \"{}\"\n", self.ca.display()));
        }
        out
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            nodes: 3,
            extra_toml: String::new(),
            own_addresses: false,
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
    pub addr: SocketAddr,
    /// The admin HTTP endpoint, with `ClusterSpec::admin`.
    pub admin: Option<SocketAddr>,
    pub dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
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
        let admin_line = admin.map_or(String::new(), |a| format!("admin_listen = \"{a}\"\n"));
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
        })
    }
}

/// N real nodes on loopback. See the module docs.
#[derive(Debug)]
pub struct TestCluster {
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

    /// Node `i` as a member would list it: its id, address and configured weight (tokens
    /// are the allocator's business). Waits for it to answer.
    pub async fn member_of(&self, i: usize) -> anyhow::Result<ringkv_core::Member> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let answer = match self.raw(self.nodes[i].addr).await {
                Ok(mut raw) => raw.request(Request::Stats).await.ok(),
                Err(_) => None,
            };
            if let Some(Ok(Response::Stats(stats))) = answer {
                return Ok(ringkv_core::Member {
                    id: stats.node,
                    addr: self.nodes[i].addr.to_string(),
                    weight: stats.weight,
                    tokens: Vec::new(),
                });
            }
            if Instant::now() > deadline {
                bail!(
                    "node {i} did not answer (log {})",
                    self.nodes[i].log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a membership request to node `i` and returns the layout it answers with.
    pub async fn admin(&self, i: usize, request: Request) -> anyhow::Result<Layout> {
        let mut raw = self.raw(self.nodes[i].addr).await?;
        match raw.request(request).await? {
            Ok(Response::Layout(layout)) => Ok(layout),
            other => bail!("unexpected answer to a membership request: {other:?}"),
        }
    }

    /// Stages `change` on node `via` (based on the layout it holds now).
    pub async fn stage(&self, via: usize, change: Change) -> anyhow::Result<Layout> {
        let base = self.admin(via, Request::Layout).await?.version;
        self.admin(via, Request::Stage { change, base }).await
    }

    /// Commits what is staged on node `via`.
    pub async fn commit(&self, via: usize) -> anyhow::Result<Layout> {
        let base = self.admin(via, Request::Layout).await?.version;
        self.admin(via, Request::Commit { base }).await
    }

    /// Stages the join of node `i` (running, known by gossip) with `weight`, through `via`.
    pub async fn stage_join(&self, via: usize, i: usize, weight: u32) -> anyhow::Result<Layout> {
        let member = self.member_of(i).await?;
        self.stage(
            via,
            Change::Join {
                id: member.id,
                addr: member.addr,
                weight,
            },
        )
        .await
    }

    /// Waits (up to `timeout`) until every running node holds the same layout, with no
    /// transfer under way, and returns it.
    pub async fn wait_settled(&self, timeout: Duration) -> anyhow::Result<Layout> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut layouts = Vec::new();
            for i in (0..self.nodes.len()).filter(|&i| self.is_running(i)) {
                if let Ok(layout) = self.admin(i, Request::Layout).await {
                    layouts.push(layout);
                }
            }
            let settled = layouts.len() == self.running()
                && layouts
                    .iter()
                    .all(|l| l == &layouts[0] && l.transition.is_none());
            if settled {
                return Ok(layouts.swap_remove(0));
            }
            if Instant::now() > deadline {
                let seen: Vec<_> = layouts
                    .iter()
                    .map(|l| (l.version, l.transition.as_ref().map(|t| t.phase)))
                    .collect();
                bail!(
                    "the cluster did not settle within {timeout:?}: {seen:?}\n{}",
                    self.log_tails(12)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    /// Starts one more node like `start_node`, but with `cluster_secret` as its secret.
    pub fn start_node_with_secret(&mut self, cluster_secret: &str) -> anyhow::Result<usize> {
        let mut spec = self.spec.clone();
        spec.cluster_secret = Some(cluster_secret.to_string());
        self.start_node_as(&spec)
    }

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

    pub async fn client(&self) -> anyhow::Result<Client> {
        self.client_with(ClientConfig::default()).await
    }

    /// Waits until a client asking each running node sees `members` members, all alive on
    /// the running nodes, and the same ring epoch everywhere.
    pub async fn wait_converged(&self, members: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.ring_views().await {
                Ok(views)
                    if views.iter().all(|(epoch, n, alive)| {
                        *n == members && *alive == self.running() && *epoch == views[0].0
                    }) =>
                {
                    return Ok(());
                }
                Ok(views) if Instant::now() > deadline => {
                    bail!(
                        "cluster did not converge on {members} members: {views:?} (logs in {})",
                        self.path().display()
                    )
                }
                Err(e) if Instant::now() > deadline => {
                    bail!(
                        "cluster did not start: {e:#} (logs in {})",
                        self.path().display()
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Each running node's (ring epoch, member count, alive count).
    pub async fn ring_views(&self) -> anyhow::Result<Vec<(RingEpoch, usize, usize)>> {
        let mut views = Vec::new();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let mut raw = self.raw(node.addr).await?;
            match raw.request(Request::Ring).await? {
                Ok(Response::Ring(snapshot)) => {
                    let ring = ringkv_core::Ring::new(snapshot.config)?;
                    views.push((ring.epoch(), ring.members().len(), snapshot.alive.len()));
                }
                other => bail!("unexpected ring answer {other:?}"),
            }
        }
        Ok(views)
    }

    /// The index in `nodes` of the member with id `id` in `client`'s ring.
    pub fn index_of(&self, client: &Client, id: ringkv::NodeId) -> Option<usize> {
        let ring = client.ring();
        let addr = &ring.member(id)?.addr;
        self.nodes.iter().position(|n| &n.addr.to_string() == addr)
    }

    /// The indexes in `nodes` of `key`'s home replicas in the default bucket.
    pub fn homes_of(&self, client: &Client, key: &str) -> Vec<usize> {
        let ring = client.ring();
        ring.home_replicas(ringkv::DEFAULT_BUCKET, key.as_bytes())
            .iter()
            .filter_map(|m| self.index_of(client, m.id))
            .collect()
    }

    /// Up to `count` keys named `prefix-N` whose home replicas include node `i`.
    pub fn keys_homed_on(
        &self,
        client: &Client,
        i: usize,
        prefix: &str,
        count: usize,
    ) -> Vec<String> {
        (0..count * 20)
            .map(|n| format!("{prefix}-{n}"))
            .filter(|k| self.homes_of(client, k).contains(&i))
            .take(count)
            .collect()
    }

    /// Whether node `i` is started (and not killed or terminated).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    fn running(&self) -> usize {
        self.nodes.iter().filter(|n| n.child.is_some()).count()
    }

    /// Starts one more node, seeded with the existing ones, joins it (weight 1) and waits
    /// until the change has settled and every node sees it.
    pub async fn add_node(&mut self) -> anyhow::Result<usize> {
        let i = self.start_node()?;
        self.stage_join(0, i, 1).await?;
        self.commit(0).await?;
        self.wait_settled(START_TIMEOUT).await?;
        self.wait_converged(self.nodes.len()).await?;
        Ok(i)
    }

    /// Starts one more node, seeded with the existing ones, without making it a member.
    pub fn start_node(&mut self) -> anyhow::Result<usize> {
        self.start_node_as(&self.spec.clone())
    }

    /// Starts one more node like `start_node`, configured by `spec` instead of the cluster's.
    fn start_node_as(&mut self, spec: &ClusterSpec) -> anyhow::Result<usize> {
        let i = self.nodes.len();
        let addr = node_addr(spec, i);
        let seeds: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
        let root = self.path().to_path_buf();
        let node = Node::configure(&root, i, addr, &seeds, &self.cluster_name, spec)?;
        self.nodes.push(node);
        self.spawn(i)?;
        Ok(i)
    }

    /// SIGSTOP node `i`: it keeps its sockets but answers nothing.
    /// SIGSTOP node `i`, and wait until every thread of it has stopped: kill(2) returns
    /// before a thread running on another CPU is interrupted (in a VM that can take long
    /// enough for it to answer one more request).
    pub fn pause(&self, i: usize) {
        if let Some(child) = &self.nodes[i].child {
            signal(child, libc::SIGSTOP);
            let deadline = Instant::now() + Duration::from_secs(2);
            while !all_threads_stopped(child.id()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// SIGCONT node `i`.
    pub fn resume(&self, i: usize) {
        if let Some(child) = &self.nodes[i].child {
            signal(child, libc::SIGCONT);
        }
    }

    /// kill -9 node `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM node `i` and wait (up to `timeout`) for it to exit.
    pub fn terminate(&mut self, i: usize, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.nodes[i].child.take().context("node not running")?;
        signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {i} did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `i` again on its address and data directory, and waits for it to answer.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.spawn(i)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while self.raw(self.nodes[i].addr).await.is_err() {
            if Instant::now() > deadline {
                bail!(
                    "node {i} did not come back (log {})",
                    self.nodes[i].log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Every running node's counters (`Request::Stats`).
    pub async fn stats(&self) -> anyhow::Result<Vec<ringkv_core::wire::NodeStats>> {
        let mut out = Vec::new();
        for i in (0..self.nodes.len()).filter(|&i| self.is_running(i)) {
            let mut raw = self.raw(self.nodes[i].addr).await?;
            match raw.request(Request::Stats).await? {
                Ok(Response::Stats(stats)) => out.push(stats),
                other => bail!("unexpected answer to Stats: {other:?}"),
            }
        }
        Ok(out)
    }

    /// Node `i`'s own copy of `key` in `bucket`, hints aside (`Request::Inspect`: not a client
    /// read, so it merges and repairs nothing).
    pub async fn copy_on(
        &self,
        i: usize,
        bucket: &str,
        key: &str,
    ) -> anyhow::Result<Option<ringkv_core::SiblingSet>> {
        let mut raw = self.raw(self.nodes[i].addr).await?;
        let request = Request::Inspect {
            bucket: bucket.into(),
            key: key.to_string().into_bytes().into(),
        };
        match raw.request(request).await? {
            Ok(Response::Inspection { data, .. }) => Ok(data),
            other => bail!("unexpected answer to Inspect: {other:?}"),
        }
    }

    /// Where `keys` of `bucket` sit compared with `ring`, asking every running member for its
    /// own copy (hints aside): how many home copies are missing, and how many copies remain on
    /// running members that are not homes of their key.
    pub async fn placement(
        &self,
        ring: &ringkv_core::Ring,
        bucket: &str,
        keys: &[String],
    ) -> anyhow::Result<Placement> {
        let mut placement = Placement::default();
        let mut connections = std::collections::HashMap::new();
        for member in ring.members() {
            let Some(node) = self
                .nodes
                .iter()
                .find(|n| n.addr.to_string() == member.addr && n.child.is_some())
            else {
                continue;
            };
            connections.insert(member.id, self.raw(node.addr).await?);
        }
        for key in keys {
            let homes: Vec<ringkv::NodeId> = ring
                .home_replicas(bucket, key.as_bytes())
                .iter()
                .map(|m| m.id)
                .collect();
            for (id, raw) in connections.iter_mut() {
                let request = Request::Inspect {
                    bucket: bucket.into(),
                    key: key.clone().into_bytes().into(),
                };
                let holds = match raw.request(request).await? {
                    Ok(Response::Inspection { data, .. }) => data.is_some(),
                    other => bail!("unexpected answer to Inspect: {other:?}"),
                };
                match (homes.contains(id), holds) {
                    (true, false) => placement.missing_on_homes += 1,
                    (false, true) => placement.left_elsewhere += 1,
                    _ => {}
                }
            }
        }
        Ok(placement)
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

    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("."))
    }
}

/// Whether every thread of `pid` is stopped (state `T` in `/proc/<pid>/task/*/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.filter_map(Result::ok).all(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // The state follows the command name, which ends at the last `)`.
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_none_or(|state| state == "T" || state == "t")
    })
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this process spawned and has not reaped yet.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
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

/// `GET path` from an HTTP server at `addr` (the admin endpoint): its status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    http_request(addr, "GET", path)
}

/// `POST path` with an empty body; see [`http_get`].
pub fn http_post(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    http_request(addr, "POST", path)
}

fn http_request(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .context("an HTTP answer without a blank line")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("an HTTP status line")?;
    Ok((status, body.to_string()))
}

/// See [`TestCluster::placement`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub missing_on_homes: usize,
    pub left_elsewhere: usize,
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub use raw::RawConnection;

pub mod faults;

mod raw {
    //! A bare protocol connection, for reading one node directly and for hostile input.

    use std::net::SocketAddr;

    use futures::{SinkExt, StreamExt};
    use ringkv::ClientTls;
    use ringkv::stream::BoxedStream;
    use ringkv_core::RingEpoch;
    use ringkv_core::auth::{Role, Secret};
    use ringkv_core::wire::{
        Auth, ClientFrame, FrameCodec, Hello, PROTOCOL_VERSION, Request, RequestFrame, Response,
        ServerFrame, WireError,
    };
    use tokio::net::TcpStream;
    use tokio_util::codec::Framed;

    /// One handshaken connection to one node.
    pub struct RawConnection {
        framed: Framed<BoxedStream, FrameCodec<ServerFrame, ClientFrame>>,
        next_id: u64,
        pub epoch: RingEpoch,
    }

    impl std::fmt::Debug for RawConnection {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RawConnection")
                .field("next_id", &self.next_id)
                .field("epoch", &self.epoch)
                .finish_non_exhaustive()
        }
    }

    impl RawConnection {
        /// Connects and completes the handshake, giving up after two seconds (a firewalled
        /// node would otherwise keep a connect hanging for minutes of SYN retries).
        pub async fn open(addr: SocketAddr) -> anyhow::Result<RawConnection> {
            RawConnection::open_as(addr, None).await
        }

        /// As `open`, proving `credential` (a role and its secret) if the node challenges.
        pub async fn open_as(
            addr: SocketAddr,
            credential: Option<(Role, Secret)>,
        ) -> anyhow::Result<RawConnection> {
            RawConnection::open_with(addr, credential, None).await
        }

        /// As `open_as`, over TLS if `tls` is given.
        pub async fn open_with(
            addr: SocketAddr,
            credential: Option<(Role, Secret)>,
            tls: Option<&ClientTls>,
        ) -> anyhow::Result<RawConnection> {
            let connect = async {
                let tcp = TcpStream::connect(addr).await?;
                let stream: BoxedStream = match tls {
                    Some(tls) => tls.connect(&addr.to_string(), tcp).await?,
                    None => Box::new(tcp),
                };
                let mut framed = Framed::new(stream, FrameCodec::new());
                let hello = Hello {
                    protocol_version: PROTOCOL_VERSION,
                    agent: "test".into(),
                };
                framed.send(ClientFrame::Hello(hello)).await?;
                let welcome = match framed.next().await {
                    Some(Ok(ServerFrame::Welcome(w))) => w,
                    other => anyhow::bail!("bad handshake answer: {other:?}"),
                };
                if let (Some(challenge), Some((role, secret))) = (&welcome.challenge, credential) {
                    let proof = ringkv_core::auth::proof(&secret, role, challenge).into();
                    framed.send(ClientFrame::Auth(Auth { role, proof })).await?;
                    match framed.next().await {
                        Some(Ok(ServerFrame::Authenticated(_))) => {}
                        other => anyhow::bail!("authentication refused: {other:?}"),
                    }
                }
                Ok(RawConnection {
                    framed,
                    next_id: 1,
                    epoch: welcome.epoch,
                })
            };
            tokio::time::timeout(std::time::Duration::from_secs(2), connect)
                .await
                .map_err(|_| anyhow::anyhow!("no handshake from {addr} within 2 s"))?
        }

        /// Sends one request with this connection's epoch (the node's own, from the welcome).
        pub async fn request(
            &mut self,
            body: Request,
        ) -> anyhow::Result<Result<Response, WireError>> {
            let id = self.next_id;
            self.next_id += 1;
            self.framed
                .send(ClientFrame::Request(RequestFrame {
                    id,
                    epoch: self.epoch,
                    body,
                }))
                .await?;
            match self.framed.next().await {
                Some(Ok(ServerFrame::Response(r))) if r.id == id => Ok(r.body),
                other => anyhow::bail!("unexpected frame {other:?}"),
            }
        }
    }
}

/// Waits until a read of `n` replicas succeeds through `client`: every node is back and the
/// client trusts it again (a node it saw fail is only used after a successful probe).
pub async fn until_replicas_answer(client: &Client, n: u8) -> anyhow::Result<()> {
    let all = ringkv::ReadOptions::default().with_r(n);
    let ok = eventually(Duration::from_secs(20), || async {
        client
            .get_with("__until_replicas_answer__", &all)
            .await
            .is_ok()
    })
    .await;
    anyhow::ensure!(ok, "{n} replicas did not all answer within 20 s");
    Ok(())
}
