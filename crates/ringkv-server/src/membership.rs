//! Cluster membership by gossip (chitchat), turned into a [`Ring`].
//!
//! Each node gossips a few keys about itself: its data address, weight and status, and the
//! cluster settings it proposes (bucket table, tokens per weight). From the gossiped state
//! every node derives the same [`RingConfig`]:
//!
//! - members: every node gossip knows of, alive or not (a node that stops answering keeps its
//!   place; the sloppy quorum routes around it), plus every member this node has seen before
//!   and persisted in its store. A restarted node appears under a new gossip generation; only
//!   its newest generation counts. Persisting the members means a node that restarts knows
//!   the whole ring at once, instead of serving a ring of one until gossip catches up (a
//!   client that fetched that ring would route every key to the wrong place).
//! - settings: the proposal with the highest `version`, ties broken by the lowest node id.
//!
//! Liveness comes from chitchat's phi-accrual failure detector and travels beside the ring,
//! never inside it: a crash must not move data.
//!
//! [`spawn_membership`] starts gossip and a task that recomputes the [`ClusterView`] every
//! gossip interval and publishes it on a `watch` channel when it changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use chitchat::transport::UdpTransport;
use chitchat::{Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use ringkv_core::{Member, MemberStatus, NodeId, Ring, RingConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{ClusterSettings, Config};
use crate::storage::Store;

const KEY_ADDR: &str = "addr";
const KEY_WEIGHT: &str = "weight";
const KEY_STATUS: &str = "status";
const KEY_CLUSTER: &str = "cluster";

/// The store record holding the members this node has seen (format byte, then CBOR).
const MEMBERS_RECORD: &str = "members";
const MEMBERS_FORMAT: u8 = 1;

/// How long a restarted node waits to hear a peer before it reports its (pessimistic) view of
/// liveness anyway: long enough for a few gossip rounds, short enough for a node that really
/// is the last one up.
pub const READY_GRACE: Duration = Duration::from_secs(5);

/// What a node knows of the cluster at one moment.
#[derive(Debug)]
pub struct ClusterView {
    pub ring: Arc<Ring>,
    /// Members this node's failure detector considers alive (itself included), sorted.
    pub alive: Vec<NodeId>,
    /// Whether the view is worth handing to clients. False while a node that was given seeds
    /// knows no member but itself, and, for at most [`READY_GRACE`] after start, while it knows
    /// other members but has not yet heard any of them alive: its failure detector would
    /// report them all dead, and a client that believed it would stop using them.
    pub ready: bool,
}

impl ClusterView {
    /// A view holding only `ring`, everyone alive: for tests.
    pub fn fixed(ring: Ring) -> ClusterView {
        let alive = ring.members().iter().map(|m| m.id).collect();
        ClusterView {
            ring: Arc::new(ring),
            alive,
            ready: true,
        }
    }
}

/// The running membership component.
pub struct MembershipHandle {
    view: watch::Receiver<Arc<ClusterView>>,
    chitchat: ChitchatHandle,
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
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
/// current (and the members it has seen persisted in `store`).
pub async fn spawn_membership(
    config: &Config,
    store: Arc<dyn Store>,
) -> anyhow::Result<MembershipHandle> {
    let id = store.node_id();
    let known = load_members(store.as_ref());
    let generation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let advertised = config.advertised();
    let chitchat_id = ChitchatId::new(id.to_string(), generation, advertised);
    let chitchat_config = ChitchatConfig {
        chitchat_id,
        cluster_id: config.cluster_name.clone(),
        gossip_interval: config.gossip.interval(),
        listen_addr: config.listen,
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
    let settings = toml::to_string(&config.cluster).context("encoding cluster settings")?;
    let keys = vec![
        (KEY_ADDR.to_string(), advertised.to_string()),
        (KEY_WEIGHT.to_string(), config.weight.to_string()),
        (KEY_STATUS.to_string(), "active".to_string()),
        (KEY_CLUSTER.to_string(), settings),
    ];
    let chitchat = chitchat::spawn_chitchat(chitchat_config, keys, &UdpTransport)
        .await
        .with_context(|| format!("starting gossip on udp {}", config.listen))?;

    let has_seeds = !config.seeds.is_empty();
    let started = tokio::time::Instant::now();
    let initial = {
        let guard = chitchat.chitchat();
        let state = guard.lock().await;
        view_of(&state, None, &known, Readiness { has_seeds, started }).unwrap_or_else(|| {
            Arc::new(ClusterView {
                ring: Arc::new(Ring::empty()),
                alive: vec![],
                ready: false,
            })
        })
    };
    let (tx, rx) = watch::channel(initial);
    let stop = CancellationToken::new();
    let task = tokio::spawn(refresh_loop(
        chitchat.chitchat(),
        tx,
        Refresh {
            interval: config.gossip.interval(),
            store,
            known,
            readiness: Readiness { has_seeds, started },
        },
        stop.clone(),
    ));
    Ok(MembershipHandle {
        view: rx,
        chitchat,
        task,
        stop,
    })
}

/// What the refresh loop needs besides gossip.
struct Refresh {
    interval: Duration,
    store: Arc<dyn Store>,
    /// Members seen before (persisted), by id.
    known: BTreeMap<NodeId, Member>,
    readiness: Readiness,
}

/// What decides whether a view is ready (see [`ClusterView::ready`]).
#[derive(Clone, Copy, Debug)]
struct Readiness {
    has_seeds: bool,
    started: tokio::time::Instant,
}

impl Readiness {
    fn ready(&self, me: Option<NodeId>, members: &[Member], alive: &[NodeId]) -> bool {
        let others_known = members.iter().any(|m| Some(m.id) != me);
        if !others_known {
            return !self.has_seeds;
        }
        alive.iter().any(|id| Some(*id) != me) || self.started.elapsed() > READY_GRACE
    }
}

/// Recomputes the view every `interval` and publishes it when it changed.
async fn refresh_loop(
    chitchat: Arc<tokio::sync::Mutex<Chitchat>>,
    tx: watch::Sender<Arc<ClusterView>>,
    mut refresh: Refresh,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(refresh.interval);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let current = tx.borrow().clone();
        let next = {
            let state = chitchat.lock().await;
            view_of(&state, Some(&current), &refresh.known, refresh.readiness)
        };
        if let Some(next) = next {
            if next.ring.epoch() != current.ring.epoch() {
                info!(
                    epoch = %next.ring.epoch(),
                    members = next.ring.members().len(),
                    "ring changed"
                );
                refresh.known = next
                    .ring
                    .members()
                    .iter()
                    .map(|m| (m.id, m.clone()))
                    .collect();
                save_members(refresh.store.as_ref(), next.ring.members());
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
    }
}

/// The view gossip (and the `known` members) describe, or `None` if it equals `current` (or
/// cannot make a ring).
fn view_of(
    chitchat: &Chitchat,
    current: Option<&ClusterView>,
    known: &BTreeMap<NodeId, Member>,
    readiness: Readiness,
) -> Option<Arc<ClusterView>> {
    // Newest generation of each node id.
    let mut newest: BTreeMap<NodeId, (&ChitchatId, &chitchat::NodeState)> = BTreeMap::new();
    for (cid, state) in chitchat.node_states() {
        let Ok(id) = cid.node_id.parse::<NodeId>() else {
            warn!(node = %cid.node_id, "ignoring a gossip member whose id is not a ringkv node id");
            continue;
        };
        match newest.get(&id) {
            Some((seen, _)) if seen.generation_id >= cid.generation_id => {}
            _ => {
                newest.insert(id, (cid, state));
            }
        }
    }
    let mut members = Vec::with_capacity(newest.len());
    let mut proposals: Vec<(u64, NodeId, ClusterSettings)> = Vec::new();
    for (&id, (_, state)) in &newest {
        let (Some(addr), Some(weight)) = (state.get(KEY_ADDR), state.get(KEY_WEIGHT)) else {
            continue; // Its keys have not reached us yet.
        };
        let (Ok(addr), Ok(weight)) = (addr.parse::<SocketAddr>(), weight.parse::<u32>()) else {
            warn!(node = %id, "ignoring a member with an unparseable address or weight");
            continue;
        };
        if weight == 0 {
            warn!(node = %id, "ignoring a member with weight 0");
            continue;
        }
        members.push(Member {
            id,
            addr: addr.to_string(),
            weight,
            status: MemberStatus::Active,
        });
        if let Some(text) = state.get(KEY_CLUSTER) {
            match toml::from_str::<ClusterSettings>(text) {
                Ok(settings) => proposals.push((settings.version, id, settings)),
                Err(e) => warn!(node = %id, error = %e, "ignoring unparseable cluster settings"),
            }
        }
    }
    // Members seen before and not (yet) in gossip keep their place.
    for (id, member) in known {
        if !newest.contains_key(id) {
            members.push(member.clone());
        }
    }
    // Highest version wins; among equal versions, the lowest node id.
    proposals.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let settings = proposals
        .into_iter()
        .next()
        .map(|p| p.2)
        .unwrap_or_default();
    let config = RingConfig {
        members,
        buckets: settings.buckets,
        vnodes_per_weight: settings.vnodes_per_weight,
    };
    let mut alive: Vec<NodeId> = chitchat
        .live_nodes()
        .filter_map(|cid| cid.node_id.parse::<NodeId>().ok())
        .filter(|id| config.members.iter().any(|m| m.id == *id))
        .collect();
    alive.sort_unstable();
    alive.dedup();

    let me = chitchat.self_chitchat_id().node_id.parse::<NodeId>().ok();
    let ready = readiness.ready(me, &config.members, &alive);
    if let Some(current) = current {
        let mut sorted = config.clone();
        sorted.members.sort_by_key(|m| m.id);
        if &sorted == current.ring.config() && alive == current.alive && ready == current.ready {
            return None;
        }
    }
    match Ring::new(config) {
        Ok(ring) => Some(Arc::new(ClusterView {
            ring: Arc::new(ring),
            alive,
            ready,
        })),
        Err(e) => {
            warn!(error = %e, "gossiped membership does not make a valid ring; keeping the last one");
            None
        }
    }
}

/// The members persisted by an earlier run, by id (none if there are none or they are unreadable).
fn load_members(store: &dyn Store) -> BTreeMap<NodeId, Member> {
    let bytes = match store.get_meta(MEMBERS_RECORD) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return BTreeMap::new(),
        Err(e) => {
            warn!(error = %e, "cannot read the members seen before; starting from gossip alone");
            return BTreeMap::new();
        }
    };
    let members: Result<Vec<Member>, String> = match bytes.split_first() {
        Some((&MEMBERS_FORMAT, body)) => ciborium::from_reader(body).map_err(|e| e.to_string()),
        _ => Err("unknown format".into()),
    };
    match members {
        Ok(members) => {
            info!(members = members.len(), "loaded the members seen before");
            members.into_iter().map(|m| (m.id, m)).collect()
        }
        Err(e) => {
            warn!(error = %e, "ignoring an unreadable members record");
            BTreeMap::new()
        }
    }
}

fn save_members(store: &dyn Store, members: &[Member]) {
    let mut bytes = vec![MEMBERS_FORMAT];
    if ciborium::into_writer(&members, &mut bytes).is_err() {
        return;
    }
    if let Err(e) = store.put_meta(MEMBERS_RECORD, &bytes) {
        warn!(error = %e, "cannot persist the members; a restart will wait for gossip");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64) -> Member {
        Member {
            id: NodeId(id),
            addr: format!("127.0.0.1:{id}"),
            weight: 1,
            status: MemberStatus::Active,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_hands_out_its_view_only_once_it_has_heard_the_cluster() {
        let me = Some(NodeId(1));
        let alone = [member(1)];
        let three = [member(1), member(2), member(3)];
        let lone = Readiness {
            has_seeds: false,
            started: tokio::time::Instant::now(),
        };
        assert!(
            lone.ready(me, &alone, &[NodeId(1)]),
            "a node started alone on purpose"
        );
        let joining = Readiness {
            has_seeds: true,
            started: tokio::time::Instant::now(),
        };
        assert!(
            !joining.ready(me, &alone, &[NodeId(1)]),
            "seeds given, nobody heard"
        );
        assert!(
            !joining.ready(me, &three, &[NodeId(1)]),
            "members known, none heard alive"
        );
        assert!(joining.ready(me, &three, &[NodeId(1), NodeId(3)]));
        tokio::time::advance(READY_GRACE + Duration::from_millis(1)).await;
        assert!(
            joining.ready(me, &three, &[NodeId(1)]),
            "the last node up answers after the grace"
        );
        assert!(
            !joining.ready(me, &alone, &[NodeId(1)]),
            "but never with a ring of itself alone"
        );
    }
}
