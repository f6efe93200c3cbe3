//! Membership through a [`TestCluster`]: staging and committing changes, and waiting until
//! every node agrees on the result.
//!
//! The requests go to one node over a raw connection that proves the cluster secret, as
//! `ringkv cluster ...` would send them. The waits poll every running node with a deadline
//! and, when it passes, fail with what each node saw (and the tail of the node logs).

use std::time::{Duration, Instant};

use anyhow::bail;
use ringkv_core::wire::{Request, Response, WireError};
use ringkv_core::{Change, Layout, LayoutError, RingEpoch};

use super::{START_TIMEOUT, TestCluster};

impl TestCluster {
    /// Node `i` as a member would list it: its id, address, configured weight and zone
    /// (tokens are the allocator's business). Waits for it to answer.
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
                    zone: stats.zone,
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

    /// Sends a membership request to node `i` and returns the layout it answers with; again
    /// while the node has not yet heard by gossip of a node the request names (as `ringkv
    /// cluster` does).
    pub async fn admin(&self, i: usize, request: Request) -> anyhow::Result<Layout> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut raw = self.raw(self.nodes[i].addr).await?;
        loop {
            match raw.request(request.clone()).await? {
                Ok(Response::Layout(layout)) => return Ok(layout),
                Err(WireError::Layout {
                    error:
                        Some(LayoutError::ZonesUnheard { .. } | LayoutError::ExpiryUnheard { .. }),
                    ..
                }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => bail!("unexpected answer to a membership request: {other:?}"),
            }
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
                zone: member.zone,
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
}
