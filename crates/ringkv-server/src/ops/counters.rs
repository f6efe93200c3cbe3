//! The node's own counters: what the background workers and the replica have done since the
//! node started.
//!
//! One [`NodeCounters`] per node, shared (`Arc`) by the replica (hints taken and delivered), the
//! handoff worker (hint bytes, hints converted), the transfer worker (its progress) and
//! anti-entropy (exchanges, ranges, repairs). Each updates its own figures directly; `Stats`
//! and `/metrics` read them all through [`NodeCounters::snapshot`], so there is one source of
//! truth for each figure.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ringkv_core::wire::{AntiEntropyStats, TransferStats};

/// Counters updated by the parts of a node that do work in the background.
///
/// Plain atomics with relaxed ordering: each figure is a count read for reports, never used to
/// synchronise anything.
#[derive(Debug, Default)]
pub struct NodeCounters {
    /// Hints deleted after their home node acknowledged them.
    pub hints_delivered: AtomicU64,
    /// Hints handed to anti-entropy (too old, or the queue too full) since start.
    pub hints_converted: AtomicU64,
    /// Bytes of hints held, as the last handoff round measured them plus hints taken since.
    /// The replica refuses new hints while this is over `limits.max_hint_queue_bytes`.
    pub hint_bytes: AtomicU64,
    /// Keys whose dead state this node deleted in a purge.
    pub purged_keys: AtomicU64,
    /// Keys whose version vector a purge pruned here.
    pub pruned_keys: AtomicU64,
    /// Anti-entropy exchanges completed.
    pub ae_exchanges: AtomicU64,
    /// Ring fragments anti-entropy found different on a peer.
    pub ae_ranges_differing: AtomicU64,
    /// Keys anti-entropy repaired.
    pub ae_keys_repaired: AtomicU64,
    /// Bytes anti-entropy exchanged to find differences.
    pub ae_bytes: AtomicU64,
    /// Progress of this node's transfer, written by the transfer worker. A mutex, not atomics:
    /// the figures of one report belong together. Held only to copy them in or out.
    transfer: Mutex<Option<TransferStats>>,
}

/// The counters' values at one moment, as `Stats` answers them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// See [`NodeCounters::hints_delivered`].
    pub hints_delivered: u64,
    /// See [`NodeCounters::hints_converted`].
    pub hints_converted: u64,
    /// See [`NodeCounters::hint_bytes`].
    pub hint_bytes: u64,
    /// See [`NodeCounters::purged_keys`].
    pub purged_keys: u64,
    /// See [`NodeCounters::pruned_keys`].
    pub pruned_keys: u64,
    /// The anti-entropy figures.
    pub anti_entropy: AntiEntropyStats,
    /// The transfer worker's last recorded progress.
    pub transfer: Option<TransferStats>,
}

impl NodeCounters {
    /// Counts one finished anti-entropy exchange.
    pub fn anti_entropy_exchange(&self, ranges_differing: u64, keys_repaired: u64, bytes: u64) {
        self.ae_exchanges.fetch_add(1, Ordering::Relaxed);
        self.ae_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.ae_ranges_differing
            .fetch_add(ranges_differing, Ordering::Relaxed);
        self.ae_keys_repaired
            .fetch_add(keys_repaired, Ordering::Relaxed);
    }

    /// Records the transfer worker's progress.
    pub fn transfer_progress(&self, stats: TransferStats) {
        *self.transfer.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
    }

    /// The transfer worker's last recorded progress.
    pub fn transfer(&self) -> Option<TransferStats> {
        self.transfer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every counter's current value.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            hints_delivered: self.hints_delivered.load(Ordering::Relaxed),
            hints_converted: self.hints_converted.load(Ordering::Relaxed),
            hint_bytes: self.hint_bytes.load(Ordering::Relaxed),
            purged_keys: self.purged_keys.load(Ordering::Relaxed),
            pruned_keys: self.pruned_keys.load(Ordering::Relaxed),
            anti_entropy: AntiEntropyStats {
                exchanges: self.ae_exchanges.load(Ordering::Relaxed),
                ranges_differing: self.ae_ranges_differing.load(Ordering::Relaxed),
                keys_repaired: self.ae_keys_repaired.load(Ordering::Relaxed),
                bytes: self.ae_bytes.load(Ordering::Relaxed),
            },
            transfer: self.transfer(),
        }
    }
}
