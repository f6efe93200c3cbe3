//! Fault injection and the checker behind `tests/faults.rs`.
//!
//! - [`in_own_netns`]: runs a scenario inside a network namespace of its own (`unshare -n`),
//!   where nodes live on 127.0.0.2, .3, ... and the client on 127.0.0.1, so that [`Firewall`]
//!   rules can cut any of them off without touching the machine's real network.
//! - [`Workload`]: a paced, bounded load of read-modify-write set additions, the workload
//!   that makes a lost update visible (a missing element).
//! - [`History`] and [`check`]: every operation logged as ok, fail or info (timed out or in
//!   doubt), then every key read back; the result is one Jepsen-style line per scenario.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringkv::{Bucket, Error, ReadOptions, WriteOptions};
use ringkv_core::wire::{Request, Response};

use crate::{RawConnection, TestCluster};

const NETNS_ENV: &str = "RINGKV_IN_NETNS";

/// Scenarios run one at a time: they share two cores and some measure timing.
static SERIAL: Mutex<()> = Mutex::new(());

/// Returns true inside the scenario's own network namespace (the caller then runs it).
/// Outside, re-runs this test binary, filtered to `test`, under `unshare --net`, waits for it,
/// and panics if it failed; then returns false and the caller returns.
pub fn in_own_netns(test: &str) -> bool {
    if std::env::var_os(NETNS_ENV).is_some() {
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(
            matches!(up, Ok(s) if s.success()),
            "cannot bring lo up in the namespace"
        );
        return true;
    }
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(NETNS_ENV, "1")
        .output()
        .expect("running unshare (util-linux; needs root or CAP_SYS_ADMIN)");
    // Pass the scenario's own lines through (straight to stdout, past the test harness's
    // capture, so they show in every run), but not the inner harness's summary lines: the
    // outer harness reports this test once.
    let mut out = std::io::stdout().lock();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let harness = line.starts_with("running ")
            || line.starts_with("test result:")
            || line.is_empty()
            || line.ends_with(" ok")
            || line == "ok";
        if !harness {
            let _ = writeln!(
                out,
                "{}",
                line.trim_start_matches(&format!("test {test} ... "))
            );
        }
    }
    if !output.status.success() {
        let _ = out.write_all(&output.stderr);
    }
    drop(out);
    assert!(
        output.status.success(),
        "scenario {test} failed in its network namespace"
    );
    false
}

/// The address of node `i` of a cluster started with `own_addresses`.
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + i as u8)
}

/// The client's address inside a scenario's namespace.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// iptables rules in the scenario's own namespace (never the machine's).
#[derive(Debug)]
pub struct Firewall;

impl Firewall {
    /// Drops every packet from `from` to `to` (one direction).
    pub fn drop(from: Ipv4Addr, to: Ipv4Addr) {
        drop_rule(from, to, &[]);
    }

    /// Drops packets from `from` to `to` with probability `p`.
    pub fn drop_randomly(from: Ipv4Addr, to: Ipv4Addr, p: f64) {
        let p = p.to_string();
        drop_rule(
            from,
            to,
            &["-m", "statistic", "--mode", "random", "--probability", &p],
        );
    }

    /// Cuts `a` and `b` apart in both directions.
    pub fn partition(a: Ipv4Addr, b: Ipv4Addr) {
        Firewall::drop(a, b);
        Firewall::drop(b, a);
    }

    /// Removes every rule.
    pub fn heal() {
        iptables(&["-F", "OUTPUT"]);
    }
}

/// Appends an OUTPUT rule dropping packets from `from` to `to` that match `matches`.
fn drop_rule(from: Ipv4Addr, to: Ipv4Addr, matches: &[&str]) {
    let (from, to) = (from.to_string(), to.to_string());
    let mut args = vec!["-A", "OUTPUT", "-s", &from, "-d", &to];
    args.extend_from_slice(matches);
    args.extend_from_slice(&["-j", "DROP"]);
    iptables(&args);
}

fn iptables(args: &[&str]) {
    assert!(
        std::env::var_os(NETNS_ENV).is_some(),
        "iptables outside a test namespace"
    );
    let status = Command::new("iptables")
        .args(args)
        .status()
        .expect("running iptables");
    assert!(status.success(), "iptables {args:?} failed");
}

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
        let ops = self.ops();
        let window: Vec<&Op> = ops
            .iter()
            .filter(|o| o.started >= from && o.started < to)
            .collect();
        if window.is_empty() {
            return 0.0;
        }
        window.iter().filter(|o| o.outcome != Outcome::Ok).count() as f64 / window.len() as f64
    }
}

pub fn encode_set(set: &BTreeSet<u64>) -> Bytes {
    set.iter()
        .flat_map(|e| e.to_le_bytes())
        .collect::<Vec<u8>>()
        .into()
}

/// The union of the sets in every sibling (garbage bytes decode to what they can).
pub fn union(siblings: &[Bytes]) -> BTreeSet<u64> {
    siblings
        .iter()
        .flat_map(|s| {
            s.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        })
        .collect()
}

/// Adds `element` to the set at `key`: read (with its context), union the siblings, write.
pub async fn add(
    bucket: &Bucket,
    key: &str,
    element: u64,
    deadline: Duration,
    history: &History,
) -> Outcome {
    let started = Instant::now();
    let read = bucket
        .get_with(key, &ReadOptions::default().with_timeout(deadline))
        .await;
    history.timed(started, deadline);
    let read = match read {
        Ok(read) => read,
        Err(_) => {
            history.read_failures.fetch_add(1, Ordering::Relaxed);
            return Outcome::Fail; // nothing was written
        }
    };
    history
        .max_siblings
        .fetch_max(read.siblings().len(), Ordering::Relaxed);
    let mut set = union(read.siblings());
    set.insert(element);
    let started = Instant::now();
    let write = WriteOptions::default().with_timeout(deadline);
    let result = bucket
        .put_with(key, encode_set(&set), Some(read.context()), &write)
        .await;
    history.timed(started, deadline);
    match result {
        Ok(_) => Outcome::Ok,
        Err(e) if e.is_in_doubt() => Outcome::Info,
        Err(Error::Timeout { .. }) => Outcome::Info,
        Err(_) => Outcome::Fail,
    }
}

/// A paced, bounded load of set additions over `keys`.
#[derive(Clone, Debug)]
pub struct Workload {
    pub keys: Vec<String>,
    pub workers: usize,
    pub ops: usize,
    /// Operations per second, all workers together.
    pub rate: f64,
    /// Deadline of each read and each write.
    pub call_deadline: Duration,
    /// The whole load stops by then, finished or not.
    pub limit: Duration,
}

impl Workload {
    pub fn new(keys: usize, ops: usize, rate: f64) -> Workload {
        Workload {
            keys: (0..keys).map(|i| format!("set-{i}")).collect(),
            workers: 16,
            ops,
            rate,
            call_deadline: Duration::from_secs(2),
            limit: Duration::from_secs(60),
        }
    }

    /// Runs the load to the end (or its time limit) and returns the history.
    pub async fn run(self, bucket: Bucket, history: Arc<History>) {
        let next = Arc::new(AtomicUsize::new(0));
        let start = tokio::time::Instant::now();
        let this = Arc::new(self);
        let mut workers = Vec::new();
        for _ in 0..this.workers {
            let (this, bucket, history, next) =
                (this.clone(), bucket.clone(), history.clone(), next.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= this.ops || start.elapsed() > this.limit {
                        return;
                    }
                    tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / this.rate))
                        .await;
                    let key = &this.keys[i % this.keys.len()];
                    let element = i as u64 + 1;
                    let started = Instant::now();
                    let outcome = add(&bucket, key, element, this.call_deadline, &history).await;
                    history.record(Op {
                        key: key.clone(),
                        element,
                        outcome,
                        started,
                        finished: Instant::now(),
                    });
                }
            }));
        }
        for worker in workers {
            let _ = worker.await;
        }
    }
}

/// The line a scenario prints.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub name: String,
    pub attempted: usize,
    pub acknowledged: usize,
    pub lost: usize,
    pub unacknowledged_found: usize,
    pub max_siblings: usize,
    pub divergent_after_repair: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scenario {}: attempted={} acknowledged={} lost={} unacknowledged_found={} \
             max_siblings={} divergent_after_repair={}",
            self.name,
            self.attempted,
            self.acknowledged,
            self.lost,
            self.unacknowledged_found,
            self.max_siblings,
            self.divergent_after_repair
        )
    }
}

/// Reads every key of the history back (all `n` replicas answering, so the read also repairs
/// them), counts what was lost and found, then compares the home replicas' copies directly
/// until they agree or 15 s pass. Prints and returns the report.
pub async fn check(
    name: &str,
    history: &History,
    bucket: &Bucket,
    cluster: &TestCluster,
    n: u8,
) -> anyhow::Result<Report> {
    let ops = history.ops();
    let keys: BTreeSet<String> = ops.iter().map(|o| o.key.clone()).collect();
    let all = ReadOptions::default()
        .with_r(n)
        .with_timeout(Duration::from_secs(5));
    let mut finals = std::collections::HashMap::new();
    for key in &keys {
        let mut last = None;
        for _ in 0..50 {
            match bucket.get_with(key, &all).await {
                Ok(read) => {
                    history
                        .max_siblings
                        .fetch_max(read.siblings().len(), Ordering::Relaxed);
                    last = Some(union(read.siblings()));
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let Some(set) = last else {
            anyhow::bail!("{key} could not be read from {n} replicas")
        };
        finals.insert(key.clone(), set);
    }
    let mut report = Report {
        name: name.to_string(),
        attempted: ops.len(),
        ..Report::default()
    };
    for op in &ops {
        let present = finals.get(&op.key).is_some_and(|s| s.contains(&op.element));
        match op.outcome {
            Outcome::Ok => {
                report.acknowledged += 1;
                if !present {
                    report.lost += 1;
                }
            }
            Outcome::Fail | Outcome::Info => {
                if present {
                    report.unacknowledged_found += 1;
                }
            }
        }
    }
    report.max_siblings = history.max_siblings.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        report.divergent_after_repair = divergent(bucket, cluster, &keys).await?;
        if report.divergent_after_repair == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("{report}");
    Ok(report)
}

/// Keys whose home replicas (read directly, one by one) do not hold identical states.
pub async fn divergent(
    bucket: &Bucket,
    cluster: &TestCluster,
    keys: &BTreeSet<String>,
) -> anyhow::Result<usize> {
    let ring = bucket.client().ring();
    let mut connections = std::collections::HashMap::new();
    let mut count = 0;
    for key in keys {
        let mut states = Vec::new();
        for member in ring.home_replicas(bucket.name(), key.as_bytes()) {
            let Some(node) = cluster
                .nodes
                .iter()
                .find(|n| n.addr.to_string() == member.addr)
            else {
                continue;
            };
            let raw = match connections.entry(node.addr) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(RawConnection::open(node.addr).await?)
                }
            };
            let request = Request::Get {
                bucket: bucket.name().into(),
                key: Bytes::from(key.clone()),
            };
            match raw.request(request).await? {
                Ok(Response::Value { state }) => states.push(state),
                other => anyhow::bail!("unexpected {other:?}"),
            }
        }
        if states.windows(2).any(|w| w[0] != w[1]) {
            count += 1;
        }
    }
    Ok(count)
}

/// What a [`Reader`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadCheck {
    pub reads: usize,
    /// Reads that failed (no answer from `r` replicas in time).
    pub errors: usize,
    /// Reads that missed an element whose write had been acknowledged before the read began:
    /// a read-your-acknowledged-writes violation (with R + W > N, never allowed).
    pub missing: usize,
}

/// Reads keys of a running [`Workload`] while it runs, checking each read against the
/// writes acknowledged before it started. Bounded in count and in time.
#[derive(Clone, Debug)]
pub struct Reader {
    pub keys: Vec<String>,
    pub rate: f64,
    pub max_reads: usize,
    pub limit: Duration,
}

impl Reader {
    pub async fn run(self, bucket: Bucket, history: Arc<History>) -> ReadCheck {
        let mut check = ReadCheck::default();
        let start = tokio::time::Instant::now();
        let opts = ReadOptions::default().with_timeout(Duration::from_secs(2));
        for i in 0..self.max_reads {
            if start.elapsed() > self.limit {
                break;
            }
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / self.rate)).await;
            // Stride through the keys so that every one is read a few times.
            let key = &self.keys[(i * 7919) % self.keys.len()];
            let before = Instant::now();
            let acknowledged = history.acknowledged_before(key, before);
            check.reads += 1;
            match bucket.get_with(key, &opts).await {
                Ok(read) => {
                    let seen = union(read.siblings());
                    if acknowledged.iter().any(|e| !seen.contains(e)) {
                        check.missing += 1;
                    }
                }
                Err(_) => check.errors += 1,
            }
        }
        check
    }
}
