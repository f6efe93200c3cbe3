//! Runs a phase: workers issue operations until the count or the duration is spent.
//!
//! `--threads N` is N workers, each with one operation outstanding (YCSB's client threads),
//! on a tokio runtime. With `--target` ops/s each worker paces itself at `target / N` and
//! measures every latency from the operation's intended start, so a stall shows as the
//! latency users would have seen rather than as a pause in the schedule. With `batchsize`
//! above 1 each read asks for that many keys at once: its latency is the batch's, and it
//! counts as that many operations in the throughput (keys per second), though as one against
//! `operationcount`.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::measure::{Measurements, Report};
use crate::target::{Session, Target};
use crate::workload::{Op, Workload};

/// The load phase inserts every record; the run phase follows the operation mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Load,
    Run,
}

/// How long and how hard a phase runs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub phase: Phase,
    pub threads: usize,
    /// Operations in all (0: until `duration`; the load phase: `recordcount`).
    pub operations: u64,
    pub duration: Option<Duration>,
    /// Ops/s over all workers.
    pub target: Option<f64>,
    /// Seconds between status lines on stderr (0: none).
    pub status_interval: Duration,
    /// Stop printing errors after this many (they are all counted).
    pub max_printed_errors: u64,
}

/// What the workers share.
#[derive(Debug)]
struct Shared {
    workload: Arc<Workload>,
    measurements: Measurements,
    issued: AtomicU64,
    printed_errors: AtomicU64,
    plan: Plan,
    deadline: Option<Instant>,
}

impl Shared {
    /// Takes the next operation's slot, or `None` when the phase is over.
    fn next_slot(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        (self.plan.operations == 0 || n < self.plan.operations).then_some(n)
    }

    fn report_error(&self, op: Op, key: &str, error: &anyhow::Error) {
        if self.printed_errors.fetch_add(1, Ordering::Relaxed) < self.plan.max_printed_errors {
            eprintln!("{} {key}: {error:#}", op.report_name());
        }
    }
}

/// Runs the phase and returns its report (without CPU figures, which the caller adds).
pub async fn run(
    target: &Target,
    workload: Arc<Workload>,
    plan: Plan,
    label: (&str, &str),
) -> anyhow::Result<Report> {
    let names: Vec<&'static str> = Op::ALL.iter().map(|op| op.report_name()).collect();
    let mut sessions = Vec::with_capacity(plan.threads);
    for _ in 0..plan.threads.max(1) {
        sessions.push(target.session().await?);
    }
    let started = Instant::now();
    let shared = Arc::new(Shared {
        workload,
        measurements: Measurements::new(&names),
        issued: AtomicU64::new(0),
        printed_errors: AtomicU64::new(0),
        deadline: plan.duration.map(|d| started + d),
        plan: plan.clone(),
    });
    let per_worker_interval = plan
        .target
        .filter(|t| *t > 0.0)
        .map(|t| Duration::from_secs_f64(sessions.len() as f64 / t));
    let mut workers = Vec::new();
    for session in sessions {
        let shared = shared.clone();
        workers.push(tokio::spawn(worker(shared, session, per_worker_interval)));
    }
    let status = tokio::spawn(status_lines(shared.clone(), started));
    for worker in workers {
        worker.await?;
    }
    status.abort();
    let elapsed = started.elapsed();
    let done = shared.measurements.done();
    if !plan.status_interval.is_zero() {
        eprintln!();
    }
    Ok(Report {
        target: label.0.to_string(),
        workload: label.1.to_string(),
        phase: match plan.phase {
            Phase::Load => "load".into(),
            Phase::Run => "run".into(),
        },
        threads: plan.threads,
        runtime_ms: elapsed.as_secs_f64() * 1000.0,
        operations: done,
        throughput: done as f64 / elapsed.as_secs_f64().max(1e-9),
        intended: per_worker_interval.is_some(),
        ops: shared.measurements.summaries(),
        cpu: None,
    })
}

async fn worker(shared: Arc<Shared>, mut session: Session, interval: Option<Duration>) {
    let workload = shared.workload.clone();
    let begun = Instant::now();
    let mut own = 0u32;
    while let Some(_slot) = shared.next_slot() {
        let intended = match interval {
            Some(interval) => {
                let at = begun + interval * own;
                own = own.saturating_add(1);
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        let mut count = 1;
        let (op, result, key) = match shared.plan.phase {
            Phase::Load => {
                let Some(number) = workload.next_load() else {
                    break;
                };
                let key = workload.key(number);
                (
                    Op::Insert,
                    session.insert(&key, workload.value()).await,
                    key,
                )
            }
            Phase::Run => {
                let Some(op) = workload.next_op() else { break };
                match op {
                    Op::Read if workload.batch_size > 1 => {
                        let mut keys: Vec<String> = (0..workload.batch_size)
                            .map(|_| workload.key(workload.next_existing()))
                            .collect();
                        count = keys.len() as u64;
                        let result = session.read_many(&keys).await;
                        (op, result, keys.swap_remove(0))
                    }
                    Op::Read => {
                        let key = workload.key(workload.next_existing());
                        (op, session.read(&key).await, key)
                    }
                    Op::Update => {
                        let key = workload.key(workload.next_existing());
                        (op, session.update(&key, workload.value()).await, key)
                    }
                    Op::ReadModifyWrite => {
                        let key = workload.key(workload.next_existing());
                        let result = session.read_modify_write(&key, workload.value()).await;
                        (op, result, key)
                    }
                    Op::Insert => {
                        let number = workload.next_insert();
                        let key = workload.key(number);
                        let result = session.insert(&key, workload.value()).await;
                        // Acknowledged or not, readers may now ask for it: a failed insert
                        // shows as read errors rather than stalling every later read.
                        workload.inserted(number);
                        (op, result, key)
                    }
                }
            }
        };
        let latency = intended.elapsed();
        if let Err(error) = &result {
            shared.report_error(op, &key, error);
        }
        shared
            .measurements
            .finish_batch(op.report_name(), latency, result.is_ok(), count);
    }
}

/// Prints `  12 sec: 34567 operations; 2890.1 current ops/sec; [####      ] 41%` every
/// `status_interval` on stderr, over itself on a terminal.
async fn status_lines(shared: Arc<Shared>, started: Instant) {
    let every = shared.plan.status_interval;
    if every.is_zero() {
        return;
    }
    let total = match shared.plan.phase {
        Phase::Load => shared.workload.record_count,
        Phase::Run => shared.plan.operations,
    };
    let mut last = (started, 0u64);
    loop {
        tokio::time::sleep(every).await;
        let now = Instant::now();
        let done = shared.measurements.done();
        let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-9);
        last = (now, done);
        let elapsed = now - started;
        let fraction = match (total, shared.plan.duration) {
            (t, _) if t > 0 => done as f64 / t as f64,
            (_, Some(d)) => elapsed.as_secs_f64() / d.as_secs_f64(),
            _ => 0.0,
        }
        .clamp(0.0, 1.0);
        let filled = (fraction * 20.0).round() as usize;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{:4} sec: {done} operations; {rate:.1} current ops/sec; [{}{}] {:3.0}%",
            elapsed.as_secs(),
            "#".repeat(filled),
            " ".repeat(20 - filled),
            fraction * 100.0
        );
        let _ = err.flush();
    }
}
