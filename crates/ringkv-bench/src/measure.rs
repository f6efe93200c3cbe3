//! Latency histograms per operation, and the report YCSB prints.
//!
//! Latencies are recorded in microseconds in HdrHistogram (3 significant digits, up to one
//! minute). With a `--target` rate each one is measured from the operation's intended start,
//! not from when a late worker got round to it: the correction for coordinated omission that
//! YCSB calls "intended" latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms hold; longer ones are clamped to it.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Counts and latencies of one operation type (shared by every worker).
#[derive(Debug)]
pub struct OpStats {
    histogram: Mutex<Histogram<u64>>,
    errors: AtomicU64,
}

impl OpStats {
    fn new() -> OpStats {
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("constant histogram bounds are valid");
        OpStats {
            histogram: Mutex::new(histogram),
            errors: AtomicU64::new(0),
        }
    }

    pub fn record(&self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let mut histogram = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        let _ = histogram.record(us);
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn summary(&self) -> OpSummary {
        let histogram = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        let q = |q: f64| histogram.value_at_quantile(q);
        OpSummary {
            operations: histogram.len(),
            errors: self.errors.load(Ordering::Relaxed),
            avg_us: histogram.mean(),
            min_us: if histogram.is_empty() {
                0
            } else {
                histogram.min()
            },
            max_us: histogram.max(),
            p50_us: q(0.50),
            p95_us: q(0.95),
            p99_us: q(0.99),
            p999_us: q(0.999),
        }
    }
}

/// Statistics of every operation type of a run, by YCSB report name.
#[derive(Debug)]
pub struct Measurements {
    ops: BTreeMap<&'static str, OpStats>,
    /// Operations finished (successful or not), for the status line.
    done: AtomicU64,
}

impl Measurements {
    pub fn new(names: &[&'static str]) -> Measurements {
        Measurements {
            ops: names.iter().map(|n| (*n, OpStats::new())).collect(),
            done: AtomicU64::new(0),
        }
    }

    pub fn op(&self, name: &'static str) -> Option<&OpStats> {
        self.ops.get(name)
    }

    /// Records one finished operation.
    pub fn finish(&self, name: &'static str, latency: Duration, ok: bool) {
        if let Some(stats) = self.op(name) {
            if ok {
                stats.record(latency);
            } else {
                stats.error();
            }
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one finished batch of `count` operations: one latency, `count` done.
    pub fn finish_batch(&self, name: &'static str, latency: Duration, ok: bool, count: u64) {
        self.finish(name, latency, ok);
        self.done
            .fetch_add(count.saturating_sub(1), Ordering::Relaxed);
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn summaries(&self) -> BTreeMap<String, OpSummary> {
        self.ops
            .iter()
            .map(|(name, stats)| (name.to_string(), stats.summary()))
            .filter(|(_, s)| s.operations + s.errors > 0)
            .collect()
    }
}

/// What one operation type did.
#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    pub operations: u64,
    pub errors: u64,
    pub avg_us: f64,
    pub min_us: u64,
    pub max_us: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

/// CPU time the client and the servers spent during a run.
#[derive(Debug, Clone, Serialize)]
pub struct CpuSummary {
    pub client_ms: f64,
    pub servers_ms: f64,
    /// (client + servers) / successful operations.
    pub per_op_us: f64,
}

impl CpuSummary {
    /// CPU time spent by the client and the servers over a run of `operations` successful
    /// operations.
    pub fn new(client: Duration, servers: Duration, operations: u64) -> CpuSummary {
        CpuSummary {
            client_ms: client.as_secs_f64() * 1000.0,
            servers_ms: servers.as_secs_f64() * 1000.0,
            per_op_us: (client + servers).as_secs_f64() * 1e6 / operations.max(1) as f64,
        }
    }
}

impl Report {
    /// Successful operations of every type.
    pub fn successes(ops: &BTreeMap<String, OpSummary>) -> u64 {
        ops.values().map(|s| s.operations).sum()
    }
}

/// The whole run, as printed and as `--json` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub workload: String,
    pub phase: String,
    pub threads: usize,
    pub runtime_ms: f64,
    pub operations: u64,
    pub throughput: f64,
    /// Latencies measured from each operation's intended start (`--target` given).
    pub intended: bool,
    pub ops: BTreeMap<String, OpSummary>,
    pub cpu: Option<CpuSummary>,
}

impl Report {
    /// YCSB's text report: `[OVERALL], Throughput(ops/sec), ...` then one block per operation.
    pub fn to_ycsb_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "[OVERALL], RunTime(ms), {:.0}", self.runtime_ms);
        let _ = writeln!(
            out,
            "[OVERALL], Throughput(ops/sec), {:.2}",
            self.throughput
        );
        if let Some(cpu) = &self.cpu {
            let _ = writeln!(out, "[CPU], Client(ms), {:.0}", cpu.client_ms);
            let _ = writeln!(out, "[CPU], Servers(ms), {:.0}", cpu.servers_ms);
            let _ = writeln!(out, "[CPU], PerOperation(us), {:.1}", cpu.per_op_us);
        }
        for (name, op) in &self.ops {
            let rows: [(&str, String); 9] = [
                ("Operations", op.operations.to_string()),
                ("AverageLatency(us)", format!("{:.1}", op.avg_us)),
                ("MinLatency(us)", op.min_us.to_string()),
                ("MaxLatency(us)", op.max_us.to_string()),
                ("50thPercentileLatency(us)", op.p50_us.to_string()),
                ("95thPercentileLatency(us)", op.p95_us.to_string()),
                ("99thPercentileLatency(us)", op.p99_us.to_string()),
                ("99.9PercentileLatency(us)", op.p999_us.to_string()),
                ("Return=OK", op.operations.to_string()),
            ];
            for (label, value) in rows {
                let _ = writeln!(out, "[{name}], {label}, {value}");
            }
            if op.errors > 0 {
                let _ = writeln!(out, "[{name}], Return=ERROR, {}", op.errors);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_ycsbs_lines() {
        let m = Measurements::new(&["READ", "UPDATE"]);
        for us in 1..=1000 {
            m.finish("READ", Duration::from_micros(us), true);
        }
        m.finish("UPDATE", Duration::from_micros(5), false);
        let summaries = m.summaries();
        let read = &summaries["READ"];
        assert_eq!(read.operations, 1000);
        assert!((495..=505).contains(&read.p50_us), "{}", read.p50_us);
        assert!((985..=1000).contains(&read.p99_us), "{}", read.p99_us);
        assert_eq!(summaries["UPDATE"].errors, 1);
        let report = Report {
            target: "t".into(),
            workload: "w".into(),
            phase: "run".into(),
            threads: 1,
            runtime_ms: 1000.0,
            operations: 1001,
            throughput: 1001.0,
            intended: false,
            ops: summaries,
            cpu: None,
        };
        let text = report.to_ycsb_text();
        assert!(text.contains("[OVERALL], Throughput(ops/sec), 1001.00"));
        assert!(text.contains("[READ], 99thPercentileLatency(us), "));
        assert!(text.contains("[UPDATE], Return=ERROR, 1"));
        assert_eq!(m.done(), 1001);
    }
}
