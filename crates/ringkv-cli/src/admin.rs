//! Requests to single nodes, outside any quorum: layouts, stats, inspections.
//!
//! Membership commands must work on a cluster that does not exist yet (`cluster init`) or
//! whose ring a client could not fetch, so they do not go through the SDK's `Client` but
//! straight to the seeds over its connection [`Pool`].

use std::time::Duration;

use anyhow::{Context as _, bail};
use ringkv::transport::{ConnectOptions, Pool, Request, Response};
use ringkv_core::wire::NodeStats;
use ringkv_core::{Layout, Member, NodeId, RingEpoch};

#[derive(Debug)]
pub struct Admin {
    pool: Pool,
    seeds: Vec<String>,
    timeout: Duration,
}

impl Admin {
    pub fn new(seeds: Vec<String>, timeout: Duration, options: ConnectOptions) -> Admin {
        Admin {
            pool: Pool::with_options(options),
            seeds,
            timeout,
        }
    }

    /// Sends `request` to the node at `addr` and returns its answer; a refusal is an error
    /// carrying the node's reason.
    pub async fn call(&self, addr: &str, request: Request) -> anyhow::Result<Response> {
        let call = self
            .pool
            .call(addr, self.timeout, RingEpoch::default(), request);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((response, _))) => Ok(response),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context(addr.to_string())),
            Err(_) => bail!("{addr}: no answer within {:?}", self.timeout),
        }
    }

    pub async fn stats(&self, addr: &str) -> anyhow::Result<NodeStats> {
        match self.call(addr, Request::Stats).await? {
            Response::Stats(stats) => Ok(stats),
            other => bail!("{addr} answered stats with {other:?}"),
        }
    }

    /// The node at `addr` as a member would list it: its id, address, configured weight and
    /// zone (tokens are the allocator's business).
    pub async fn member_at(&self, addr: &str, weight: Option<u32>) -> anyhow::Result<Member> {
        let stats = self
            .stats(addr)
            .await
            .with_context(|| format!("asking {addr} who it is (is ringkvd running there?)"))?;
        Ok(Member {
            id: stats.node,
            addr: addr.to_string(),
            weight: weight.unwrap_or(stats.weight).max(1),
            tokens: Vec::new(),
            zone: stats.zone,
        })
    }

    pub async fn layout_at(&self, addr: &str) -> anyhow::Result<Layout> {
        match self.call(addr, Request::Layout).await? {
            Response::Layout(layout) => Ok(layout),
            other => bail!("{addr} answered a layout request with {other:?}"),
        }
    }

    /// The newest layout any seed holds, and the address of a seed holding it: membership
    /// changes go there, based on its version. Fails if no seed answers.
    pub async fn layout(&self) -> anyhow::Result<(Layout, String)> {
        let mut best: Option<(Layout, String)> = None;
        let mut errors = Vec::new();
        for addr in &self.seeds {
            match self.layout_at(addr).await {
                Ok(layout) => {
                    if best.as_ref().is_none_or(|(b, _)| layout.rank() > b.rank()) {
                        best = Some((layout, addr.clone()));
                    }
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        best.ok_or_else(|| anyhow::anyhow!("no seed answered: {}", errors.join("; ")))
    }

    /// Like [`Admin::layout`], but refuses a node that belongs to no cluster yet.
    pub async fn founded_layout(&self) -> anyhow::Result<(Layout, String)> {
        let (layout, addr) = self.layout().await?;
        if !layout.is_founded() {
            bail!(
                "the seeds ({}) belong to no cluster yet: `ringkv cluster init` founds one",
                self.seeds.join(",")
            );
        }
        Ok((layout, addr))
    }

    /// Finds a member by node id (hex, or an unambiguous prefix of it) or by address.
    pub fn resolve<'a>(layout: &'a Layout, node: &str) -> anyhow::Result<&'a Member> {
        // The members, then those a transfer under way still lists (a node leaving).
        let mut known: Vec<&Member> = layout.members.iter().collect();
        for m in layout.transition.iter().flat_map(|t| &t.previous) {
            if !known.iter().any(|k| k.id == m.id) {
                known.push(m);
            }
        }
        if let Some(m) = known.iter().find(|m| m.addr == node) {
            return Ok(m);
        }
        let matches: Vec<&Member> = known
            .into_iter()
            .filter(|m| !node.is_empty() && m.id.to_string().starts_with(&node.to_lowercase()))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => bail!(
                "no member is {node:?}: give a node id or an address as `ringkv status` lists them"
            ),
            _ => bail!("{node:?} matches several node ids; give more digits"),
        }
    }

    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }
}

/// The addresses of the nodes a layout involves, members first then nodes leaving.
pub fn involved_addrs(layout: &Layout) -> Vec<(NodeId, String)> {
    let mut out: Vec<(NodeId, String)> = layout
        .members
        .iter()
        .map(|m| (m.id, m.addr.clone()))
        .collect();
    if let Some(t) = &layout.transition {
        for m in &t.previous {
            if !out.iter().any(|(id, _)| *id == m.id) {
                out.push((m.id, m.addr.clone()));
            }
        }
    }
    out
}
