//! What a client has done, for [`Client::stats`](crate::Client::stats): calls by kind, errors,
//! retries, sloppy-quorum writes, read repairs, and latency percentiles.
//!
//! Latencies go into HDR histograms (microseconds, 3 significant digits, 1 µs to 1 h), one
//! for reads and one for writes, each behind a std `Mutex` held only to record one value or
//! to copy the percentiles out: a few tens of nanoseconds per call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// The longest latency recorded, in microseconds (one hour); longer calls count as this.
const MAX_US: u64 = 3_600_000_000;

/// Percentiles of one kind of call, in microseconds, over every successful call so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Latency {
    /// Successful calls measured: percentiles of few calls say little.
    pub count: u64,
    /// The median.
    pub p50_us: u64,
    /// What one call in a hundred exceeds.
    pub p99_us: u64,
    /// What one call in a thousand exceeds: the tail a fan-out of many calls meets.
    pub p999_us: u64,
    /// The slowest call.
    pub max_us: u64,
}

/// A client's counters; see the module docs.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) read_repairs: AtomicU64,
    pub(crate) full_reads: AtomicU64,
    pub(crate) speculative_reads: AtomicU64,
    pub(crate) batched_reads: AtomicU64,
    pub(crate) sibling_warnings: AtomicU64,
    pub(crate) gets: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) sloppy_writes: AtomicU64,
    pub(crate) fallback_acks: AtomicU64,
    pub(crate) background_spares: AtomicU64,
    pub(crate) copies_short: AtomicU64,
    /// Short critical sections only: one `record` or one percentile read.
    get_latency: Mutex<Histogram<u64>>,
    /// Same discipline as `get_latency`.
    write_latency: Mutex<Histogram<u64>>,
}

impl Default for Stats {
    fn default() -> Stats {
        let histogram = || {
            Mutex::new(
                Histogram::new_with_bounds(1, MAX_US, 3)
                    .expect("1 µs to an hour at 3 significant digits are valid bounds"),
            )
        };
        Stats {
            read_repairs: AtomicU64::new(0),
            full_reads: AtomicU64::new(0),
            speculative_reads: AtomicU64::new(0),
            batched_reads: AtomicU64::new(0),
            sibling_warnings: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            sloppy_writes: AtomicU64::new(0),
            fallback_acks: AtomicU64::new(0),
            background_spares: AtomicU64::new(0),
            copies_short: AtomicU64::new(0),
            get_latency: histogram(),
            write_latency: histogram(),
        }
    }
}

impl Stats {
    /// Records a finished read.
    pub(crate) fn read(&self, took: Duration, ok: bool) {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.finish(&self.get_latency, took, ok);
    }

    /// Records a finished write; `fallbacks` acknowledged it (a sloppy quorum) if non-zero.
    pub(crate) fn write(&self, took: Duration, ok: bool, fallbacks: usize) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if fallbacks > 0 {
            self.sloppy_writes.fetch_add(1, Ordering::Relaxed);
            self.fallback_acks
                .fetch_add(fallbacks as u64, Ordering::Relaxed);
        }
        self.finish(&self.write_latency, took, ok);
    }

    fn finish(&self, histogram: &Mutex<Histogram<u64>>, took: Duration, ok: bool) {
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let us = (took.as_micros() as u64).clamp(1, MAX_US);
        histogram
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .saturating_record(us);
    }

    pub(crate) fn get_latency(&self) -> Latency {
        summary(&self.get_latency)
    }

    pub(crate) fn write_latency(&self) -> Latency {
        summary(&self.write_latency)
    }
}

fn summary(histogram: &Mutex<Histogram<u64>>) -> Latency {
    let h = histogram.lock().unwrap_or_else(|p| p.into_inner());
    Latency {
        count: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_what_was_recorded_and_failures_count_apart() {
        let stats = Stats::default();
        for ms in 1..=100 {
            stats.read(Duration::from_millis(ms), true);
        }
        stats.read(Duration::from_secs(5), false);
        stats.write(Duration::from_millis(3), true, 1);
        let get = stats.get_latency();
        assert_eq!(get.count, 100, "failed calls are not in the latencies");
        assert!((49_000..=51_000).contains(&get.p50_us), "{get:?}");
        assert!((98_000..=100_100).contains(&get.p99_us), "{get:?}");
        assert!(get.max_us >= 99_900, "{get:?}");
        assert_eq!(stats.gets.load(Ordering::Relaxed), 101);
        assert_eq!(stats.errors.load(Ordering::Relaxed), 1);
        assert_eq!(stats.sloppy_writes.load(Ordering::Relaxed), 1);
        assert_eq!(stats.write_latency().count, 1);
    }
}
