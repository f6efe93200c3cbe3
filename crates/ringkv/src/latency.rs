//! How fast the client's replicas answer its reads, as the read path needs it: which of a
//! read's targets to ask first, and when to ask one more.
//!
//! A read asks only `R` of its `N` targets (`coordinator::read`). Which `R` matters twice:
//! a slow node in the set makes every read slow, and asking the same fast node for every key
//! would pile the load on it. So the targets keep their preference order (which spreads keys
//! over the replicas) except that a node much slower than the fastest of the set is moved
//! after the others: a badness threshold, as Cassandra's dynamic snitch has, not a strict
//! fastest-first order that would drift with noise.
//!
//! When the asked targets have not all answered after a delay learned from recent answers
//! (a percentile of the last [`WINDOW`] replica answers; [`SpeculativeRetry`]), the read asks
//! the next target too: a speculative retry, which turns one slow node's stall into one more
//! request instead of a slow read.
//!
//! Times are tokio's, so a simulation with a paused clock sees the same figures every run.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ringkv_core::NodeId;

/// When a read asks one more of its targets than `R` (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SpeculativeRetry {
    /// When the answers are later than this percentile (0 to 100) of recent replica answers.
    Percentile(f64),
    /// After a fixed delay.
    After(Duration),
    /// Never: a read asks one more target only when one of those asked fails.
    Never,
}

impl Default for SpeculativeRetry {
    /// The 99th percentile: one read in a hundred may send one more request.
    fn default() -> Self {
        SpeculativeRetry::Percentile(99.0)
    }
}

/// Replica answers the percentile is taken over.
pub const WINDOW: usize = 1024;
/// The percentile is recomputed after this many new answers.
const RECOMPUTE_EVERY: usize = 64;
/// Before the window holds this many answers, the speculative delay is [`UNLEARNED_DELAY`].
const LEARNED_AFTER: usize = 64;
/// The speculative delay before any has been learned.
const UNLEARNED_DELAY: Duration = Duration::from_millis(20);
/// The weight of a new answer in a node's moving average.
const SMOOTHING: f64 = 0.1;
/// A node is "much slower" when its average is above this many times the fastest's...
const SLOW_FACTOR: f64 = 2.0;
/// ...and above the fastest's by at least this much (µs): on loopback, where answers take
/// tens of microseconds, a factor alone would reorder on noise.
const SLOW_MARGIN_US: f64 = 500.0;

/// See the module docs. Short critical sections only, never across an await.
#[derive(Debug)]
pub(crate) struct Latencies {
    policy: SpeculativeRetry,
    /// Each node's moving average of its read answers, in µs.
    nodes: Mutex<HashMap<NodeId, f64>>,
    window: Mutex<Window>,
    /// The current speculative delay in µs (`u64::MAX`: never).
    speculate_after_us: AtomicU64,
}

#[derive(Debug, Default)]
struct Window {
    samples: Vec<u64>,
    next: usize,
    since_recompute: usize,
}

impl Latencies {
    pub(crate) fn new(policy: SpeculativeRetry) -> Latencies {
        let initial = match policy {
            SpeculativeRetry::Percentile(_) => micros(UNLEARNED_DELAY),
            SpeculativeRetry::After(delay) => micros(delay),
            SpeculativeRetry::Never => u64::MAX,
        };
        Latencies {
            policy,
            nodes: Mutex::default(),
            window: Mutex::new(Window {
                samples: Vec::with_capacity(WINDOW),
                ..Window::default()
            }),
            speculate_after_us: AtomicU64::new(initial),
        }
    }

    /// Records that `node` answered a read's request after `elapsed`.
    pub(crate) fn record(&self, node: NodeId, elapsed: Duration) {
        let us = micros(elapsed);
        {
            let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            let average = nodes.entry(node).or_insert(us as f64);
            *average += SMOOTHING * (us as f64 - *average);
        }
        let SpeculativeRetry::Percentile(percentile) = self.policy else {
            return;
        };
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if window.samples.len() < WINDOW {
            window.samples.push(us);
        } else {
            let at = window.next;
            window.samples[at] = us;
        }
        window.next = (window.next + 1) % WINDOW;
        window.since_recompute += 1;
        if window.samples.len() >= LEARNED_AFTER && window.since_recompute >= RECOMPUTE_EVERY {
            window.since_recompute = 0;
            let mut sorted = window.samples.clone();
            drop(window);
            let last = sorted.len() - 1;
            let rank = ((percentile.clamp(0.0, 100.0) / 100.0) * last as f64).round() as usize;
            let (_, at, _) = sorted.select_nth_unstable(rank.min(last));
            self.speculate_after_us.store(*at, Ordering::Relaxed);
        }
    }

    /// How long a read waits for the targets it asked before it asks one more; `None`:
    /// never.
    pub(crate) fn speculate_after(&self) -> Option<Duration> {
        match self.speculate_after_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            // At least a few microseconds: a zero delay would ask every target at once.
            us => Some(Duration::from_micros(us.max(50))),
        }
    }

    /// The order to ask `nodes` in (indices into it): their own order, except that the
    /// nodes much slower than the fastest known one go last (see the module docs). Nodes
    /// never measured count as fast: asking them is how they get measured.
    pub(crate) fn order(&self, nodes: impl ExactSizeIterator<Item = NodeId>) -> Vec<usize> {
        let averages: Vec<Option<f64>> = {
            let known = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            nodes.map(|n| known.get(&n).copied()).collect()
        };
        let fastest = averages
            .iter()
            .flatten()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let slow = |average: &Option<f64>| {
            average.is_some_and(|a| a > fastest * SLOW_FACTOR && a > fastest + SLOW_MARGIN_US)
        };
        let mut order: Vec<usize> = (0..averages.len()).collect();
        // Stable: the fast keep their order, and so do the slow after them.
        order.sort_by_key(|&i| slow(&averages[i]));
        order
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_much_slower_node_is_asked_last_and_the_others_keep_their_order() {
        let latencies = Latencies::new(SpeculativeRetry::default());
        for _ in 0..20 {
            latencies.record(NodeId(1), Duration::from_millis(5));
            latencies.record(NodeId(2), Duration::from_micros(200));
            latencies.record(NodeId(3), Duration::from_micros(300));
        }
        let order = latencies.order([NodeId(1), NodeId(2), NodeId(3)].into_iter());
        assert_eq!(order, vec![1, 2, 0]);
        // Nodes within the threshold of each other keep the preference order, and a node
        // never measured counts as fast.
        let order = latencies.order([NodeId(3), NodeId(2), NodeId(9), NodeId(1)].into_iter());
        assert_eq!(order, vec![0, 1, 2, 3]);
    }

    #[test]
    fn the_speculative_delay_follows_the_percentile_of_recent_answers() {
        let latencies = Latencies::new(SpeculativeRetry::Percentile(90.0));
        assert_eq!(latencies.speculate_after(), Some(UNLEARNED_DELAY));
        for i in 0..1000u64 {
            // 0..1000 µs, each value once: the 90th percentile is about 900 µs.
            latencies.record(NodeId(1 + i % 3), Duration::from_micros(i));
        }
        let delay = latencies.speculate_after().expect("a percentile policy");
        assert!(
            (Duration::from_micros(850)..=Duration::from_micros(950)).contains(&delay),
            "{delay:?}"
        );
        // The window forgets: a thousand slow answers move it up.
        for _ in 0..1000 {
            latencies.record(NodeId(1), Duration::from_millis(4));
        }
        assert_eq!(latencies.speculate_after(), Some(Duration::from_millis(4)));
    }

    #[test]
    fn fixed_and_disabled_policies_ignore_the_answers() {
        let fixed = Latencies::new(SpeculativeRetry::After(Duration::from_millis(3)));
        let never = Latencies::new(SpeculativeRetry::Never);
        for _ in 0..200 {
            fixed.record(NodeId(1), Duration::from_micros(100));
            never.record(NodeId(1), Duration::from_micros(100));
        }
        assert_eq!(fixed.speculate_after(), Some(Duration::from_millis(3)));
        assert_eq!(never.speculate_after(), None);
    }
}
