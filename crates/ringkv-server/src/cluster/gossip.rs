//! Cluster membership: the committed [`Layout`], spread by gossip (chitchat), turned into a
//! [`Ring`].
//!
//! Gossip makes a node *known*; only the layout makes it a *member*. Each node gossips a few
//! small keys about itself:
//!
//! - `addr` and `weight`: where clients reach it, the weight it was started with;
//! - `layout`: the version and digest of the layout it holds. A node that sees a higher one
//!   fetches the whole layout from that peer over the data protocol (`Request::Layout`):
//!   gossip stays small however many tokens the layout carries;
//! - `transfer`: how far it has got with the transfer under way (`Step`), from which every
//!   node advances the layout's transfer phases on its own ([`Layout::advance`]);
//! - `cluster`: the bucket settings it proposes (highest `version` wins, ties by lowest id);
//! - `purge`: the age of its oldest hint and the ring it last cleaned up after
//!   ([`crate::cluster::PurgeReport`]), which purging waits on.
//!
//! The layout is persisted in the store, so a restarted node routes by it at once. Liveness
//! comes from chitchat's phi-accrual failure detector and travels beside the ring, never
//! inside it: a crash must not move data.
//!
//! [`spawn_membership`] starts gossip and a task that recomputes the [`ClusterView`] every
//! gossip interval (or at once after an operator changed the layout on this node).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::transport::UdpTransport;
use chitchat::{Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use ringkv::transport::{ConnectOptions, Pool, Request, Response};
use ringkv_core::{Layout, NodeId, Phase, Ring, Step};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cluster::blocked::BlockedTransfer;
use crate::cluster::keeper::{ClusterView, Keeper};
use crate::cluster::signed_gossip::SignedUdpTransport;
use crate::error::{Error, Result};
use crate::node::security::Security;
use crate::ops::config::{Addresses, Config};
use crate::storage::Store;

const KEY_ADDR: &str = "addr";
const KEY_WEIGHT: &str = "weight";
const KEY_CLUSTER: &str = "cluster";
const KEY_LAYOUT: &str = "layout";
const KEY_TRANSFER: &str = "transfer";
/// What a purge waits on (see [`crate::cluster::PurgeReport`]).
const KEY_PURGE: &str = "purge";
/// The newest protocol version the node speaks: what decides whether a layout with zones may
/// reach it (a release before zones gossips none).
const KEY_PROTOCOL: &str = "protocol";

/// How long a restarted node waits to hear a peer before it reports its (pessimistic) view of
/// liveness anyway: long enough for a few gossip rounds, short enough for a node that really
/// is the last one up.
pub const READY_GRACE: Duration = Duration::from_secs(5);

/// How long fetching a layout from a peer may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// The running membership component.
pub struct MembershipHandle {
    view: watch::Receiver<Arc<ClusterView>>,
    keeper: Arc<Keeper>,
    chitchat: ChitchatHandle,
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
    /// This process's gossip generation: when it started, in milliseconds.
    generation: u64,
}

impl std::fmt::Debug for MembershipHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipHandle")
            .field("view", &self.view.borrow())
            .finish_non_exhaustive()
    }
}

impl MembershipHandle {
    /// A receiver of the current view; `borrow()` is cheap.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.clone()
    }

    pub fn keeper(&self) -> Arc<Keeper> {
        self.keeper.clone()
    }

    /// This process's gossip generation (when it started, in milliseconds): of two live
    /// processes of one node id, the younger gives way (see `cluster::address`).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Stops gossiping. Peers will see this node as dead after their detection timeout.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Err(e) = self.chitchat.shutdown().await {
            warn!(error = %e, "gossip did not shut down cleanly");
        }
    }
}

/// Starts gossip for the node that owns `store`, and the task that keeps its [`ClusterView`]
/// current.
pub async fn spawn_membership(
    config: &Config,
    addresses: &Addresses,
    store: Arc<dyn Store>,
    security: &Security,
    outbound: ConnectOptions,
) -> Result<MembershipHandle> {
    let id = store.node_id();
    let keeper = Arc::new(Keeper::load(store, config.cluster.tokens_per_weight));
    let generation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let chitchat_id = ChitchatId::new(id.to_string(), generation, addresses.gossip);
    let chitchat_config = ChitchatConfig {
        chitchat_id,
        cluster_id: config.cluster_name.clone(),
        gossip_interval: config.gossip.interval(),
        listen_addr: addresses.listen,
        seed_nodes: config.seeds.clone(),
        failure_detector_config: FailureDetectorConfig {
            dead_node_grace_period: Duration::from_secs(config.gossip.dead_node_grace_secs),
            // A node is suspected after a few missed rounds rather than after chitchat's
            // default five seconds of silence: clients need to hear of a crash quickly.
            initial_interval: config.gossip.interval() * 5,
            ..FailureDetectorConfig::default()
        },
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: chitchat::ProtocolVersion::V0,
    };
    let settings = toml::to_string(&config.cluster)
        .map_err(|e| Error::config("cluster", format!("encoding cluster settings: {e}")))?;
    let keys = vec![
        (KEY_ADDR.to_string(), addresses.advertise.clone()),
        (KEY_WEIGHT.to_string(), config.weight.to_string()),
        (KEY_PROTOCOL.to_string(), config.protocol.max.to_string()),
        (KEY_CLUSTER.to_string(), settings),
        (KEY_LAYOUT.to_string(), layout_key(keeper.rank())),
        (KEY_TRANSFER.to_string(), report_key(keeper.report())),
        (KEY_PURGE.to_string(), keeper.purge_report().to_key()),
    ];
    // With a cluster secret, datagrams without its MAC are dropped: a node without the secret
    // can neither join nor speak for a member.
    let spawned = match security.cluster_secret() {
        Some(secret) => {
            let transport = SignedUdpTransport::new(secret.clone());
            chitchat::spawn_chitchat(chitchat_config, keys, &transport).await
        }
        None => chitchat::spawn_chitchat(chitchat_config, keys, &UdpTransport).await,
    };
    let chitchat = spawned.map_err(|e| Error::Gossip {
        addr: addresses.listen,
        reason: format!("{e:#}"),
    })?;

    let started = tokio::time::Instant::now();
    let refresh = Refresh {
        me: id,
        interval: config.gossip.interval(),
        keeper: keeper.clone(),
        pool: Pool::with_options(outbound),
        started,
        published: (String::new(), String::new(), String::new()),
    };
    let initial = {
        let guard = chitchat.chitchat();
        let state = guard.lock().await;
        let gossip = Gossip::read(&state);
        refresh.view_of(&gossip, &keeper.layout(), None)
    }
    .unwrap_or_else(|| {
        Arc::new(ClusterView {
            ring: Arc::new(Ring::empty()),
            layout: keeper.layout(),
            alive: vec![],
            ready: false,
            protocols: BTreeMap::new(),
        })
    });
    let (tx, rx) = watch::channel(initial);
    let stop = CancellationToken::new();
    let task = tokio::spawn(refresh_loop(chitchat.chitchat(), tx, refresh, stop.clone()));
    Ok(MembershipHandle {
        view: rx,
        keeper,
        chitchat,
        task,
        stop,
        generation,
    })
}

/// What the refresh loop needs besides gossip.
struct Refresh {
    me: NodeId,
    interval: Duration,
    keeper: Arc<Keeper>,
    /// For fetching a newer layout from the peer that has it.
    pool: Pool,
    started: tokio::time::Instant,
    /// The layout, transfer and purge keys last gossiped.
    published: (String, String, String),
}

/// Recomputes the view every `interval` (or when the keeper says the layout changed) and
/// publishes it when it changed.
async fn refresh_loop(
    chitchat: Arc<tokio::sync::Mutex<Chitchat>>,
    tx: watch::Sender<Arc<ClusterView>>,
    mut refresh: Refresh,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(refresh.interval);
    let keeper = refresh.keeper.clone();
    let mut blocked = BlockedTransfer::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
            _ = keeper.changed.notified() => {}
        }
        let (gossip, twins) = {
            let state = chitchat.lock().await;
            (Gossip::read(&state), Gossip::twins(&state))
        };
        keeper.set_twins(twins);
        refresh.catch_up(&gossip).await;
        let heard = gossip
            .peers
            .iter()
            .filter(|(id, _)| **id != refresh.me && gossip.live.contains(id))
            .filter_map(|(_, p)| p.layout)
            .max();
        keeper.set_heard(heard);
        keeper.set_heard_purge(
            gossip
                .peers
                .iter()
                .filter(|(id, _)| **id != refresh.me && gossip.live.contains(id))
                .filter_map(|(id, p)| Some((*id, p.purge?)))
                .collect(),
        );
        // Move the transfer on if every node has reported what its phase waits for. Only a
        // layout with a transfer under way can move, so only then is it copied.
        let held = keeper.layout();
        if held.transition.is_some() {
            let me = refresh.me;
            let mut layout = Layout::clone(&held);
            let advanced = layout.advance(|node| {
                if node == me {
                    keeper.report()
                } else {
                    gossip.peers.get(&node).and_then(|p| p.report)
                }
            });
            if advanced {
                info!(
                    version = layout.version,
                    ring_version = layout.ring_version,
                    phase = ?layout.transition.as_ref().map(|t| t.phase),
                    "transfer moved on"
                );
                keeper.adopt(layout);
            }
        }
        let layout = keeper.layout();
        let current = tx.borrow().clone();
        if let Some(next) = refresh.view_of(&gossip, &layout, Some(&current)) {
            if next.ring.epoch() != current.ring.epoch() {
                info!(
                    epoch = %next.ring.epoch(),
                    members = next.ring.members().len(),
                    transfer = ?next.ring.transition().map(|t| t.phase),
                    "ring changed"
                );
            }
            if next.alive != current.alive {
                info!(
                    alive = next.alive.len(),
                    members = next.ring.members().len(),
                    "liveness changed"
                );
            }
            let _ = tx.send(next);
        }
        blocked.tell(&tx.borrow());
        // Only once this node routes (and refuses) by the switched ring does it say so.
        if let Some(t) = &layout.transition
            && t.phase == Phase::Switching
            && layout.involved().contains(&refresh.me)
        {
            keeper.set_report(t.id, Step::Switched);
        }
        refresh.publish(&chitchat).await;
    }
}

impl Refresh {
    /// Fetches a newer layout from a peer that gossips one, if any.
    async fn catch_up(&self, gossip: &Gossip) {
        let mine = self.keeper.rank();
        let mut newer: Vec<(&(u64, u64), &String)> = gossip
            .peers
            .iter()
            .filter(|(id, _)| **id != self.me)
            .filter_map(|(_, p)| Some((p.layout.as_ref()?, p.addr.as_ref()?)))
            .filter(|(rank, _)| **rank > mine)
            .collect();
        newer.sort_by(|a, b| b.0.cmp(a.0));
        for (rank, addr) in newer {
            let epoch = Default::default();
            match self
                .pool
                .call(addr, FETCH_TIMEOUT, epoch, Request::Layout)
                .await
            {
                Ok((Response::Layout(layout), _)) => {
                    let version = layout.version;
                    if self.keeper.adopt(layout) {
                        info!(version, from = %addr, "adopted a newer cluster layout");
                        return;
                    }
                }
                Ok((other, _)) => debug!(from = %addr, answer = ?other, "unexpected layout answer"),
                Err(e) => debug!(from = %addr, ?rank, error = %e, "could not fetch a layout"),
            }
        }
    }

    /// Gossips this node's layout rank, transfer report and purge report if they changed.
    async fn publish(&mut self, chitchat: &tokio::sync::Mutex<Chitchat>) {
        let keys = (
            layout_key(self.keeper.rank()),
            report_key(self.keeper.report()),
            self.keeper.purge_report().to_key(),
        );
        if keys == self.published {
            return;
        }
        let mut state = chitchat.lock().await;
        let node = state.self_node_state();
        node.set(KEY_LAYOUT, keys.0.clone());
        node.set(KEY_TRANSFER, keys.1.clone());
        node.set(KEY_PURGE, keys.2.clone());
        self.published = keys;
    }

    /// The view the layout and gossip describe, or `None` if it equals `current` (or cannot
    /// make a ring).
    fn view_of(
        &self,
        gossip: &Gossip,
        layout: &Arc<Layout>,
        current: Option<&ClusterView>,
    ) -> Option<Arc<ClusterView>> {
        let settings = &gossip.settings;
        // The same layout and settings make the same ring: building one sorts every token,
        // so it happens only when either changed, not on every tick. A layout with a bucket
        // table of its own needs no gossiped settings.
        let unchanged = current.filter(|c| {
            Arc::ptr_eq(&c.layout, layout)
                && (layout.buckets.is_some()
                    || (c.ring.config().settings_version == settings.version
                        && c.ring.config().buckets == settings.buckets))
        });
        let ring = match unchanged {
            Some(c) => c.ring.clone(),
            None => {
                let config = layout.ring_config(settings.buckets.clone(), settings.version);
                match Ring::new(config) {
                    Ok(ring) => Arc::new(ring),
                    Err(e) => {
                        warn!(error = %e, "the layout does not make a valid ring; keeping the last one");
                        return None;
                    }
                }
            }
        };
        // Sorted by id (see `Ring::all_members`).
        let involved: Vec<NodeId> = ring.all_members().iter().map(|m| m.id).collect();
        let alive: Vec<NodeId> = gossip
            .live
            .iter()
            .copied()
            .filter(|id| involved.binary_search(id).is_ok())
            .collect();
        let ready = self.ready(layout, &involved, &alive);
        // Only nodes whose protocol key has arrived: gossip may deliver a node's keys in any
        // order, so one without it may be a node just started as well as a release before
        // zones, and it counts as not heard of (refused as "try again").
        let protocols: BTreeMap<NodeId, Option<u32>> = gossip
            .peers
            .iter()
            .filter(|(_, peer)| peer.protocol.is_some())
            .map(|(id, peer)| (*id, peer.protocol))
            .collect();
        if let Some(current) = current
            && current.ring.epoch() == ring.epoch()
            && current.alive == alive
            && current.ready == ready
            && current.protocols == protocols
            && Arc::ptr_eq(&current.layout, layout)
        {
            return None;
        }
        Some(Arc::new(ClusterView {
            ring,
            layout: layout.clone(),
            alive,
            ready,
            protocols,
        }))
    }

    /// See [`ClusterView::ready`].
    fn ready(&self, layout: &Layout, members: &[NodeId], alive: &[NodeId]) -> bool {
        if !layout.is_founded() {
            return false;
        }
        let others = members.iter().any(|id| *id != self.me);
        !others || alive.iter().any(|id| *id != self.me) || self.started.elapsed() > READY_GRACE
    }
}

mod state;
#[cfg(test)]
mod tests;

use state::{Gossip, layout_key, report_key};
