//! Fault injection and the checker behind `tests/faults/`.
//!
//! - [`in_own_netns`]: runs a scenario inside a network namespace of its own (`unshare -n`),
//!   where nodes live on 127.0.0.2, .3, ... and the client on 127.0.0.1, so that [`Firewall`]
//!   rules can cut any of them off without touching the machine's real network.
//! - [`Workload`]: a paced, bounded load of read-modify-write set additions, the workload
//!   that makes a lost update visible (a missing element).
//! - [`History`] and [`check`]: every operation logged as ok, fail or info (timed out or in
//!   doubt), then every key read back; the result is one Jepsen-style line per scenario.
//!
//! The parts: `netns.rs` (the namespace and its firewall), `workload.rs` (the load and the
//! set encoding it writes), and `check.rs` (reading everything back, and checking reads while
//! the load runs). The history every part records into is here.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod check;
mod netns;
mod workload;

pub use check::{ReadCheck, Reader, Report, check, divergent, divergent_within};
pub use netns::{CLIENT_IP, Firewall, in_own_netns, node_ip};
pub use workload::{Workload, add, encode_set, union};

/// How an operation ended, as Jepsen records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: it must be in the final state.
    Ok,
    /// Definitely not applied.
    Fail,
    /// Timed out or in doubt: it may or may not have been applied.
    Info,
}

/// One set addition and how it ended.
#[derive(Clone, Debug)]
pub struct Op {
    pub key: String,
    pub element: u64,
    pub outcome: Outcome,
    pub started: Instant,
    /// When the call returned (for an acknowledged write: from then on every read must see it).
    pub finished: Instant,
}

/// Every operation of a scenario, and what was seen on the way.
#[derive(Debug, Default)]
pub struct History {
    ops: Mutex<Vec<Op>>,
    max_siblings: AtomicUsize,
    /// Calls that took longer than their deadline plus 10%.
    pub overruns: AtomicUsize,
    /// The longest call, in microseconds.
    pub longest_call_us: AtomicU64,
    /// Reads that failed (a read is never in doubt: it either answered or did not).
    pub read_failures: AtomicUsize,
}

impl History {
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    fn timed(&self, started: Instant, deadline: Duration) {
        let took = started.elapsed();
        self.longest_call_us
            .fetch_max(took.as_micros() as u64, Ordering::Relaxed);
        if took > deadline.mul_f64(1.1) {
            self.overruns.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The elements of `key` whose writes were acknowledged before `before`.
    pub fn acknowledged_before(&self, key: &str, before: Instant) -> Vec<u64> {
        self.ops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|o| o.key == key && o.outcome == Outcome::Ok && o.finished < before)
            .map(|o| o.element)
            .collect()
    }

    /// Fraction of the operations started in `[from, to)` that did not succeed.
    pub fn error_rate_between(&self, from: Instant, to: Instant) -> f64 {
        let (ok, failed) = self.outcomes_between(from, to);
        if ok + failed == 0 {
            return 0.0;
        }
        failed as f64 / (ok + failed) as f64
    }

    /// Operations started in `[from, to)` that succeeded, and those that did not.
    pub fn outcomes_between(&self, from: Instant, to: Instant) -> (usize, usize) {
        let ops = self.ops();
        let window = ops.iter().filter(|o| o.started >= from && o.started < to);
        let (ok, failed): (Vec<&Op>, Vec<&Op>) = window.partition(|o| o.outcome == Outcome::Ok);
        (ok.len(), failed.len())
    }
}
