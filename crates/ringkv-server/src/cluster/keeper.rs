//! The cluster layout this node holds ([`Keeper`]) and what it knows of the cluster at one
//! moment ([`ClusterView`]), with the purge reports it gossips and hears ([`PurgeReport`]).
//!
//! The layout is persisted in the store, so a restarted node routes by it at once. The keeper
//! is shared by the request handlers (operator commands), the transfer worker (progress
//! reports) and the gossip refresh loop (adopting a newer layout, publishing this node's).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use ringkv_core::{Layout, LayoutError, NodeId, Ring, Step};
use tokio::sync::Notify;
use tracing::info;

use crate::cluster::PurgeReport;
use crate::cluster::address::Twin;
use crate::request::replica::HintAges;
use crate::storage::Store;
use crate::storage::records;

/// The store record holding the layout.
const LAYOUT_RECORD: &str = "layout";
/// The store record holding this node's last transfer report (`Step` for a transition id).
const REPORT_RECORD: &str = "transfer-report";
/// The store record holding the ring version this node last cleaned up after.
const CLEANED_RECORD: &str = "cleaned-ring-version";

/// What a node knows of the cluster at one moment.
#[derive(Debug)]
pub struct ClusterView {
    pub ring: Arc<Ring>,
    pub layout: Arc<Layout>,
    /// Members this node's failure detector considers alive (itself included), sorted.
    pub alive: Vec<NodeId>,
    /// Whether the view is worth handing to clients. False while the node belongs to no
    /// cluster, and, for at most [`READY_GRACE`] after start, while it knows other members but
    /// has not yet heard any of them alive: its failure detector would report them all dead,
    /// and a client that believed it would stop using them.
    pub ready: bool,
    /// Every node gossip has heard of, with the newest protocol it gossips (`None` from a
    /// release before zones): whether a layout with zones may reach it.
    pub protocols: BTreeMap<NodeId, Option<u32>>,
}

impl ClusterView {
    /// A view holding only `ring`, everyone alive: for tests.
    pub fn fixed(ring: Ring) -> ClusterView {
        let alive: Vec<NodeId> = ring.members().iter().map(|m| m.id).collect();
        ClusterView {
            layout: Arc::new(Layout {
                version: 1,
                ring_version: ring.config().version,
                members: ring.members().to_vec(),
                transition: ring.transition().cloned(),
                ..Layout::default()
            }),
            protocols: alive
                .iter()
                .map(|id| (*id, Some(ringkv_core::wire::PROTOCOL_VERSION)))
                .collect(),
            ring: Arc::new(ring),
            alive,
            ready: true,
        }
    }

    /// Whether `node` is leaving the ring or has left it: the cluster has members and `node`
    /// is not one of them (during a transfer, the members it moves to). Such a node takes no
    /// hints and places the ones it holds before its part of the transfer is done.
    pub fn is_leaving(&self, node: NodeId) -> bool {
        let members = self.ring.members();
        !members.is_empty() && !members.iter().any(|m| m.id == node)
    }
}

/// The layout this node holds, and the operations that change it. Shared by the request
/// handlers (operator commands), the transfer worker (progress reports) and the refresh loop.
#[derive(Debug)]
pub struct Keeper {
    store: Arc<dyn Store>,
    /// The layout and its rank. The rank digests the whole layout (every token), so it is
    /// computed once per layout here, not on every gossip tick.
    held: Mutex<Held>,
    /// This node's transfer report: the transition id and the step reached.
    report: Mutex<Option<(u64, Step)>>,
    /// The highest layout rank gossip last showed a peer holding (`None`: no peer heard).
    heard: Mutex<Option<(u64, u64)>>,
    /// The other live processes gossiping under this node's id (see `cluster::address`):
    /// normally none.
    twins: Mutex<Vec<Twin>>,
    /// What this node gossips for purging: the oldest hint it holds (set by handoff) and
    /// the ring version it cleaned up after (set, and persisted, by the transfer worker).
    purge: Mutex<PurgeReport>,
    /// What the live peers gossip for purging, as of the last gossip tick.
    heard_purge: Mutex<BTreeMap<NodeId, PurgeReport>>,
    /// The ages of this node's hints, whose oldest every report includes (a hint written
    /// since the last handoff round counts at once).
    hint_ages: OnceLock<Arc<HintAges>>,
    /// Wakes the refresh loop after a local change, so it is gossiped at once.
    pub(crate) changed: Notify,
}

impl Keeper {
    pub(crate) fn load(store: Arc<dyn Store>, tokens_per_weight: u32) -> Keeper {
        let layout = records::load::<Layout>(store.as_ref(), LAYOUT_RECORD)
            .unwrap_or_else(|| Layout::empty(tokens_per_weight));
        if layout.is_founded() {
            info!(
                version = layout.version,
                members = layout.members.len(),
                "loaded the cluster layout"
            );
        }
        let report = records::load::<(u64, Step)>(store.as_ref(), REPORT_RECORD);
        let cleaned = records::load::<u64>(store.as_ref(), CLEANED_RECORD).unwrap_or(0);
        Keeper {
            store,
            held: Mutex::new(Held::new(layout)),
            report: Mutex::new(report),
            heard: Mutex::new(None),
            twins: Mutex::new(Vec::new()),
            purge: Mutex::new(PurgeReport {
                hints_since_ms: 0,
                cleaned,
            }),
            heard_purge: Mutex::new(BTreeMap::new()),
            hint_ages: OnceLock::new(),
            changed: Notify::new(),
        }
    }

    /// The layout `store` holds, if any, without loading a keeper (start-up checks).
    pub(crate) fn stored(store: &dyn Store) -> Option<Layout> {
        records::load::<Layout>(store, LAYOUT_RECORD)
    }

    /// A keeper for a node that is not running gossip (tests of the request handlers).
    pub fn detached(store: Arc<dyn Store>, layout: Layout) -> Keeper {
        Keeper {
            store,
            held: Mutex::new(Held::new(layout)),
            report: Mutex::new(None),
            heard: Mutex::new(None),
            twins: Mutex::new(Vec::new()),
            purge: Mutex::new(PurgeReport::default()),
            heard_purge: Mutex::new(BTreeMap::new()),
            hint_ages: OnceLock::new(),
            changed: Notify::new(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn layout(&self) -> Arc<Layout> {
        self.held().layout.clone()
    }

    /// The layout's `(version, digest)`: what gossip says of it.
    pub fn rank(&self) -> (u64, u64) {
        self.held().rank
    }

    /// Applies an operator's change to the layout, persists it and has it gossiped.
    pub fn update(
        &self,
        change: impl FnOnce(&mut Layout) -> Result<(), LayoutError>,
    ) -> Result<Arc<Layout>, LayoutError> {
        let mut guard = self.held();
        let mut next = (*guard.layout).clone();
        change(&mut next)?;
        records::save(self.store.as_ref(), LAYOUT_RECORD, &next);
        *guard = Held::new(next);
        let next = guard.layout.clone();
        drop(guard);
        self.changed.notify_one();
        Ok(next)
    }

    /// Replaces the layout with `layout` if it ranks higher. Returns whether it did.
    pub(crate) fn adopt(&self, layout: Layout) -> bool {
        let offered = Held::new(layout);
        let mut guard = self.held();
        if offered.rank <= guard.rank {
            return false;
        }
        records::save(self.store.as_ref(), LAYOUT_RECORD, &*offered.layout);
        *guard = offered;
        true
    }

    /// Records the highest layout rank gossip shows a peer holding.
    pub(crate) fn set_heard(&self, rank: Option<(u64, u64)>) {
        *self.heard.lock().unwrap_or_else(|p| p.into_inner()) = rank;
    }

    /// Records the other live processes gossiping under this node's id.
    pub(crate) fn set_twins(&self, twins: Vec<Twin>) {
        *self.twins.lock().unwrap_or_else(|p| p.into_inner()) = twins;
    }

    /// The other live processes gossiping under this node's id.
    pub fn twins(&self) -> Vec<Twin> {
        self.twins.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether this node holds a layout at least as new as any peer gossips: a change it
    /// makes on its own (not an operator's, which names its base) is then based on the
    /// cluster's layout, not on one it has yet to catch up with, and cannot become a rival
    /// of a newer layout it never saw.
    pub fn caught_up(&self) -> bool {
        let heard = *self.heard.lock().unwrap_or_else(|p| p.into_inner());
        heard.is_some_and(|h| self.rank() >= h)
    }

    /// This node's last transfer report.
    pub fn report(&self) -> Option<(u64, Step)> {
        *self.report.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records (persistently) that this node reached `step` of transition `id`.
    pub fn set_report(&self, id: u64, step: Step) {
        let mut guard = self.report.lock().unwrap_or_else(|p| p.into_inner());
        // Ids are digests, not ordered: a report for another transfer is simply replaced.
        if matches!(*guard, Some((held, reached)) if held == id && reached >= step) {
            return;
        }
        *guard = Some((id, step));
        records::save(self.store.as_ref(), REPORT_RECORD, &(id, step));
        drop(guard);
        self.changed.notify_one();
    }
}

impl Keeper {
    fn purge(&self) -> std::sync::MutexGuard<'_, PurgeReport> {
        self.purge.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This node's purge report: the last handoff round's finding and the replica's hint
    /// ages, whichever is older.
    pub fn purge_report(&self) -> PurgeReport {
        let mut report = *self.purge();
        if let Some(oldest) = self.hint_ages.get().and_then(|ages| ages.oldest()) {
            report.hints_since_ms = report.hints_since_ms.min(oldest);
        }
        report
    }

    /// Includes the replica's hint ages in every purge report from now on.
    pub fn watch_hint_ages(&self, ages: Arc<HintAges>) {
        let _ = self.hint_ages.set(ages);
    }

    /// Records that no hint this node holds is older than `since_ms` (a handoff round's
    /// finding).
    pub fn set_hints_since(&self, since_ms: u64) {
        self.purge().hints_since_ms = since_ms;
    }

    /// The ring version this node last cleaned up after.
    pub fn cleaned(&self) -> u64 {
        self.purge().cleaned
    }

    /// Records (persistently) that this node cleaned up after ring version `version`.
    pub fn set_cleaned(&self, version: u64) {
        records::save(self.store.as_ref(), CLEANED_RECORD, &version);
        self.purge().cleaned = version;
        self.changed.notify_one();
    }

    /// Records what the live peers gossip for purging.
    pub(crate) fn set_heard_purge(&self, reports: BTreeMap<NodeId, PurgeReport>) {
        *self.heard_purge.lock().unwrap_or_else(|p| p.into_inner()) = reports;
    }

    /// Every purge report this node knows of, its own included: the live peers' as gossip
    /// last showed them.
    pub fn purge_reports(&self, me: NodeId) -> BTreeMap<NodeId, PurgeReport> {
        let mut reports = self
            .heard_purge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        reports.insert(me, self.purge_report());
        reports
    }
}

/// A layout with its rank, computed once.
#[derive(Debug)]
struct Held {
    layout: Arc<Layout>,
    rank: (u64, u64),
}

impl Held {
    fn new(layout: Layout) -> Held {
        Held {
            rank: layout.rank(),
            layout: Arc::new(layout),
        }
    }
}
