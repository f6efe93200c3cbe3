//! Changing a running [`TestCluster`]: nodes added, paused, killed, terminated and restarted.
//!
//! These are the faults an end-to-end test injects from outside the nodes: a paused node
//! (SIGSTOP) keeps its sockets and answers nothing, a killed one (SIGKILL) stops at once
//! without any chance to clean up, a terminated one (SIGTERM) shuts down gracefully, and a
//! restarted one comes back on its own address and data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{ClusterSpec, Node, START_TIMEOUT, TestCluster, node_addr};
use crate::process::{all_threads_stopped, signal};

impl TestCluster {
    /// Starts one more node like `start_node`, but with `cluster_secret` as its secret.
    pub fn start_node_with_secret(&mut self, cluster_secret: &str) -> anyhow::Result<usize> {
        let mut spec = self.spec.clone();
        spec.cluster_secret = Some(cluster_secret.to_string());
        self.start_node_as(&spec)
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

    /// SIGSTOP node `i` (it keeps its sockets but answers nothing), and wait until every
    /// thread of it has stopped: kill(2) returns before a thread running on another CPU is
    /// interrupted (in a VM that can take long enough for it to answer one more request).
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

    /// Starts node `i` again on its data directory but listening at `listen` and advertising
    /// `advertise` (a name, say) if given (a rescheduled pod, a new NIC), and waits for it to
    /// answer there.
    pub async fn restart_at(
        &mut self,
        i: usize,
        listen: SocketAddr,
        advertise: Option<&str>,
    ) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let config = std::fs::read_to_string(&node.config)?;
        let old = format!("listen = \"{}\"", node.addr);
        anyhow::ensure!(
            config.contains(&old),
            "no {old} in {}",
            node.config.display()
        );
        let mut new = format!("listen = \"{listen}\"");
        if let Some(name) = advertise {
            new.push_str(&format!("\nadvertise = \"{name}\""));
        }
        let config: Vec<&str> = config
            .lines()
            .filter(|l| !l.starts_with("advertise = "))
            .collect();
        std::fs::write(&node.config, config.join("\n").replace(&old, &new) + "\n")?;
        node.addr = listen;
        self.restart(i).await
    }

    /// Copies node `i`'s data directory (stopped, so the copy is consistent) aside, for
    /// [`TestCluster::start_on_copy`].
    pub fn snapshot_data(&self, i: usize) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(
            !self.is_running(i),
            "copy node {i}'s data only while it is stopped"
        );
        let to = self
            .path()
            .join(format!("snapshot-{i}-{}", self.nodes.len()));
        copy_dir(&self.nodes[i].dir.join("data"), &to)?;
        Ok(to)
    }

    /// Starts one more process, at `addr`, on a copy of `snapshot` (see
    /// [`TestCluster::snapshot_data`]), without waiting for it to answer: a copied data
    /// directory started a second time.
    pub fn start_on_copy(&mut self, snapshot: &Path, addr: SocketAddr) -> anyhow::Result<usize> {
        let j = self.nodes.len();
        let seeds: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
        let root = self.path().to_path_buf();
        let spec = self.spec.clone();
        let node = Node::configure(&root, j, addr, &seeds, &self.cluster_name, &spec)?;
        copy_dir(snapshot, &node.dir.join("data"))?;
        self.nodes.push(node);
        self.spawn(j)?;
        Ok(j)
    }

    /// Waits up to `timeout` for node `i`'s process to exit by itself; its status if it did.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let child = self.nodes[i].child.as_mut().context("node not running")?;
        loop {
            if let Some(status) = child.try_wait()? {
                self.nodes[i].child = None;
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sets an environment variable for node `i`'s next start (a restart picks it up).
    pub fn set_env(&mut self, i: usize, key: &str, value: &str) {
        let env = &mut self.nodes[i].env;
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value.to_string()));
    }

    /// Node `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }
}

/// Copies directory `from` (recursively) to `to`.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
