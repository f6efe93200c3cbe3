//! What nodes gossip about themselves (their address, layout rank, transfer report and
//! proposed settings), and the state read back from chitchat in one pass.

use std::collections::{BTreeMap, BTreeSet};

use chitchat::{Chitchat, ChitchatId};
use ringkv_core::node::split_host_port;
use ringkv_core::{NodeId, Step};
use tracing::{debug, warn};

use super::{KEY_ADDR, KEY_CLUSTER, KEY_LAYOUT, KEY_PROTOCOL, KEY_PURGE, KEY_TRANSFER};
use crate::cluster::PurgeReport;
use crate::cluster::address::Twin;
use crate::ops::config::ClusterSettings;

/// What gossip says about every node, read in one pass under the chitchat lock.
#[derive(Debug, Default)]
pub(super) struct Gossip {
    /// Per node (newest generation only): its data address, layout rank and transfer report.
    pub(super) peers: BTreeMap<NodeId, Peer>,
    pub(super) settings: ClusterSettings,
    pub(super) live: Vec<NodeId>,
}

#[derive(Debug, Default)]
pub(super) struct Peer {
    pub(super) addr: Option<String>,
    pub(super) layout: Option<(u64, u64)>,
    pub(super) report: Option<(u64, Step)>,
    /// The newest protocol it speaks; `None` from a release before zones.
    pub(super) protocol: Option<u32>,
    /// What it reports for purging; `None` from a release before purging.
    pub(super) purge: Option<PurgeReport>,
}

impl Gossip {
    pub(super) fn read(chitchat: &Chitchat) -> Gossip {
        // One state per node id: a live process's over a dead one's, then the newest. A
        // node restarted elsewhere gossips under a new generation; and a second process of
        // one id (refused by `cluster::address`, but gossiping until it finds out) must not
        // leave its dead state standing for the live one's.
        let live: BTreeSet<&ChitchatId> = chitchat.live_nodes().collect();
        let mut newest: BTreeMap<NodeId, (&ChitchatId, &chitchat::NodeState)> = BTreeMap::new();
        for (cid, state) in chitchat.node_states() {
            let Ok(id) = cid.node_id.parse::<NodeId>() else {
                warn!(node = %cid.node_id, "ignoring a gossip member whose id is not a ringkv node id");
                continue;
            };
            let rank = |c: &ChitchatId| (live.contains(c), c.generation_id);
            match newest.get(&id) {
                Some((seen, _)) if rank(seen) >= rank(cid) => {}
                _ => {
                    newest.insert(id, (cid, state));
                }
            }
        }
        let mut gossip = Gossip::default();
        let mut proposals: Vec<(u64, NodeId, ClusterSettings)> = Vec::new();
        for (&id, (_, state)) in &newest {
            let peer = Peer {
                addr: state
                    .get(KEY_ADDR)
                    .filter(|a| split_host_port(a).is_some())
                    .map(str::to_string),
                layout: state.get(KEY_LAYOUT).and_then(parse_layout_key),
                report: state.get(KEY_TRANSFER).and_then(parse_report_key),
                protocol: state.get(KEY_PROTOCOL).and_then(|v| v.parse().ok()),
                purge: state.get(KEY_PURGE).and_then(PurgeReport::parse),
            };
            gossip.peers.insert(id, peer);
            if let Some(text) = state.get(KEY_CLUSTER) {
                match toml::from_str::<ClusterSettings>(text) {
                    Ok(settings) => proposals.push((settings.version, id, settings)),
                    Err(e) => {
                        debug!(node = %id, error = %e, "ignoring unparseable cluster settings")
                    }
                }
            }
        }
        // Highest version wins; among equal versions, the lowest node id.
        proposals.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        gossip.settings = proposals
            .into_iter()
            .next()
            .map(|p| p.2)
            .unwrap_or_default();
        gossip.live = chitchat
            .live_nodes()
            .filter_map(|cid| cid.node_id.parse::<NodeId>().ok())
            .collect();
        gossip.live.sort_unstable();
        gossip.live.dedup();
        // Two live processes of one id (a copied data directory started twice, refused by
        // `cluster::address` but gossiping until it finds out): which one's report is true is
        // unknown, so neither counts, and the transfer waits until one is gone.
        let mut live_generations: BTreeMap<NodeId, usize> = BTreeMap::new();
        for cid in chitchat.live_nodes() {
            if let Ok(id) = cid.node_id.parse::<NodeId>() {
                *live_generations.entry(id).or_default() += 1;
            }
        }
        for (id, count) in live_generations {
            if count > 1
                && let Some(peer) = gossip.peers.get_mut(&id)
            {
                peer.report = None;
                peer.purge = None;
            }
        }
        gossip
    }

    /// The other live processes gossiping under this process's node id.
    pub(super) fn twins(chitchat: &Chitchat) -> Vec<Twin> {
        let me = chitchat.self_chitchat_id();
        chitchat
            .live_nodes()
            .filter(|cid| cid.node_id == me.node_id && *cid != me)
            .map(|cid| Twin {
                addr: cid.gossip_advertise_addr.to_string(),
                generation: cid.generation_id,
            })
            .collect()
    }
}

pub(super) fn layout_key((version, digest): (u64, u64)) -> String {
    format!("{version}:{digest:016x}")
}

pub(super) fn parse_layout_key(text: &str) -> Option<(u64, u64)> {
    let (version, digest) = text.split_once(':')?;
    Some((version.parse().ok()?, u64::from_str_radix(digest, 16).ok()?))
}

pub(super) fn report_key(report: Option<(u64, Step)>) -> String {
    match report {
        None => String::new(),
        Some((id, Step::Streamed)) => format!("{id}:streamed"),
        Some((id, Step::Switched)) => format!("{id}:switched"),
    }
}

pub(super) fn parse_report_key(text: &str) -> Option<(u64, Step)> {
    let (id, step) = text.split_once(':')?;
    let step = match step {
        "streamed" => Step::Streamed,
        "switched" => Step::Switched,
        _ => return None,
    };
    Some((id.parse().ok()?, step))
}
