//! The state all clones of one [`Client`](crate::Client) share: configuration, ring cache,
//! connections, failure detector, counters.
//!
//! It sits between the public handle and the code that works on it, so that neither imports
//! the other: `client` builds an `Arc<Inner>` and hands it to the `coordinator` for each call;
//! the coordinator, the failure detector's probes (`health::probe`) and the ring's refetches
//! (`ring_cache::note_epoch`, `ring_cache::refresh_periodically`) take it as an argument.
//! Background tasks hold an `Arc` (or, for the periodic refresh, a `Weak`) of it, so a
//! client's state lives until its last clone and its last background task are gone.

use std::sync::atomic::{AtomicU64, Ordering};

use ringkv_core::{Actor, Dot, NodeId};

use crate::health::Health;
use crate::latency::Latencies;
use crate::metrics::Stats;
use crate::options::ClientConfig;
use crate::ring_cache::RingCache;
use crate::transport::Pool;

/// One client's shared state; see the module docs.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) ring: RingCache,
    pub(crate) pool: Pool,
    pub(crate) health: Health,
    /// How fast replicas answer reads: whom a read asks first, and when it asks one more.
    pub(crate) latencies: Latencies,
    pub(crate) stats: Stats,
    /// The work a call leaves running when it returns: a write's copies beyond `w`, a read's
    /// repairs. [`Client::flush`](crate::Client::flush) waits for it, so that a short-lived
    /// process (the CLI) does not drop the third copy of every write it makes.
    pub(crate) background: tokio_util::task::TaskTracker,
    /// The actor this client names its `lww` writes with (a random id, never a node's).
    lww_actor: NodeId,
    /// The counter of this client's last `lww` dot: every write gets a new one.
    lww_counter: AtomicU64,
}

impl Inner {
    /// A client's state before its first ring fetch.
    pub(crate) fn new(seeds: Vec<String>, config: ClientConfig) -> Inner {
        Inner {
            ring: RingCache::new(seeds),
            pool: Pool::with_options(config.connect.clone()),
            latencies: Latencies::new(config.speculative_retry),
            config,
            health: Health::default(),
            stats: Stats::default(),
            background: tokio_util::task::TaskTracker::new(),
            lww_actor: NodeId(crate::random::next_u64().max(1)),
            lww_counter: AtomicU64::new(0),
        }
    }

    /// The dot of this client's next `lww` write: built by the client, since `lww` writes are
    /// not stamped by a replica.
    pub(crate) fn next_lww_dot(&self) -> Dot {
        Dot {
            actor: Actor::legacy(self.lww_actor),
            counter: self.lww_counter.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }
}
