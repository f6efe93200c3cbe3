//! Looking into a [`TestCluster`]: where keys live and what each node holds.
//!
//! The placement helpers compute from a client's ring which nodes are a key's home replicas;
//! the others ask nodes directly (`Stats`, `Inspect`) for their counters and their own copy
//! of a key, which a client read would merge and repair instead of reporting.

use anyhow::bail;
use ringkv::Client;
use ringkv_core::wire::{Request, Response};

use super::TestCluster;

impl TestCluster {
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
}

/// See [`TestCluster::placement`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Copies missing on a running home replica of their key.
    pub missing_on_homes: usize,
    /// Copies left on running members that are not home replicas of their key.
    pub left_elsewhere: usize,
}
