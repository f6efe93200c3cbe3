//! The parts of one node, wired once at start and handed to whatever needs them.
//!
//! [`NodeParts`] holds what several components share: the store, the cluster view, the
//! replica (every change to stored state), the node's counters, the layout keeper, how the
//! node reaches its peers (address, cluster secret, TLS), who may connect (security), and the
//! request metrics. The request path gets a [`Service`](crate::request::Service) and an
//! [`Endpoint`](crate::request::Endpoint) built from it; each background worker takes the
//! parts it uses and nothing else. Tests and simulations build the same parts over an
//! in-memory store.

use std::sync::Arc;

use ringkv::transport::{ConnectOptions, Pool};
use ringkv_core::NodeId;
use tokio::sync::watch;

use crate::cluster::{ClusterView, Keeper};
use crate::node::security::Security;
use crate::node::tls::NodeTls;
use crate::ops::config::{Durability, Limits};
use crate::ops::counters::NodeCounters;
use crate::ops::metrics::Metrics;
use crate::request::Replica;
use crate::request::actors::Actors;
use crate::storage::Store;

/// One node's shared parts. Cheap to clone: everything inside is shared.
#[derive(Clone, Debug)]
pub struct NodeParts {
    /// This node's id, from its store.
    pub id: NodeId,
    /// A random number drawn for this process: `Stats` reports it, so that a probe can tell
    /// this process from another one of the same node id (see `cluster::address`).
    pub instance: u64,
    /// The node's store.
    pub store: Arc<dyn Store>,
    /// The current view of the cluster; `borrow()` is cheap.
    pub view: watch::Receiver<Arc<ClusterView>>,
    /// The node's read-modify-write of stored state.
    pub replica: Arc<Replica>,
    /// What the workers and the replica count.
    pub counters: Arc<NodeCounters>,
    /// The layout and its operations; `None` for a node run without membership (tests).
    pub keeper: Option<Arc<Keeper>>,
    /// How the node connects to the others (its address, credential and TLS).
    pub outbound: ConnectOptions,
    /// The credentials the node accepts and proves.
    pub security: Arc<Security>,
    /// TLS for the node's connections, in and out (`None`: plain TCP).
    pub tls: Option<NodeTls>,
    /// The request path's metrics.
    pub metrics: Arc<Metrics>,
    /// The node's limits (sizes, connections, the hint queue's cap).
    pub limits: Limits,
    /// The weight this node was started with (reported in `Stats`).
    pub weight: u32,
    /// The zone this node was started with (reported in `Stats`, used by `cluster join`).
    pub zone: String,
    /// When writes are acknowledged: `fsync` makes every write wait for the log sync.
    pub durability: Durability,
    /// The node's own address, through which proxy mode's coordinator fetches the ring;
    /// `None`: the node does not coordinate for thin clients.
    pub proxy_seed: Option<String>,
}

impl NodeParts {
    /// The parts of the node that owns `store`, seeing the cluster through `view`: no
    /// membership operations, no security, plain TCP, `os` durability, no proxy mode, until
    /// the `with_*` methods say otherwise.
    pub fn new(
        store: Arc<dyn Store>,
        view: watch::Receiver<Arc<ClusterView>>,
        limits: Limits,
    ) -> NodeParts {
        let counters = Arc::new(NodeCounters::default());
        let replica = Arc::new(Replica::new(
            store.clone(),
            Actors::open(store.as_ref()),
            view.clone(),
            counters.clone(),
            limits.max_hint_queue_bytes,
        ));
        NodeParts {
            id: store.node_id(),
            instance: rand::random::<u64>().max(1),
            store,
            view,
            replica,
            counters,
            keeper: None,
            outbound: ConnectOptions::default(),
            security: Arc::default(),
            tls: None,
            metrics: Arc::new(Metrics::new()),
            limits,
            weight: 1,
            zone: String::new(),
            durability: Durability::default(),
            proxy_seed: None,
        }
    }

    /// Lets the node answer and apply membership operations through `keeper`.
    pub fn with_keeper(mut self, keeper: Arc<Keeper>, weight: u32) -> NodeParts {
        keeper.watch_hint_ages(self.replica.hint_ages());
        self.keeper = Some(keeper);
        self.weight = weight;
        self
    }

    /// The zone the node was started with.
    pub fn with_zone(mut self, zone: &str) -> NodeParts {
        self.zone = zone.to_string();
        self
    }

    /// This process's instance number, drawn by the caller (it is needed before the parts).
    pub fn with_instance(mut self, instance: u64) -> NodeParts {
        self.instance = instance;
        self
    }

    /// How the node connects to the others.
    pub fn with_outbound(mut self, outbound: ConnectOptions) -> NodeParts {
        self.outbound = outbound;
        self
    }

    /// The credentials the node accepts and proves (see `node::security`).
    pub fn with_security(mut self, security: Arc<Security>) -> NodeParts {
        self.security = security;
        self
    }

    /// TLS for the node's connections, in and out.
    pub fn with_tls(mut self, tls: Option<NodeTls>) -> NodeParts {
        self.tls = tls;
        self
    }

    /// With `fsync` durability every write is acknowledged only once on disk.
    pub fn with_durability(mut self, durability: Durability) -> NodeParts {
        self.durability = durability;
        self
    }

    /// Lets the node coordinate quorums for thin clients, through its own address `seed`.
    pub fn with_proxy(mut self, seed: String) -> NodeParts {
        self.proxy_seed = Some(seed);
        self
    }

    /// A connection pool for talking to other nodes, connecting as [`NodeParts::outbound`]
    /// says.
    pub fn pool(&self) -> Pool {
        Pool::with_options(self.outbound.clone())
    }
}
