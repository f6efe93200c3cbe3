//! Checking a scenario: the final read-back with its report, replica divergence, and reads
//! checked while the workload runs.
//!
//! [`check`] reads every key of a [`History`] back from all its replicas and counts what was
//! lost (acknowledged, yet missing) and what was found although not acknowledged;
//! [`divergent`] compares the home replicas' copies directly. A [`Reader`] checks during the
//! load that every read sees the writes acknowledged before it began.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringkv::{Bucket, ReadOptions};
use ringkv_core::wire::{Request, Response};

use super::{History, Outcome, union};
use crate::{RawConnection, TestCluster};

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
    report.divergent_after_repair =
        divergent_within(bucket, cluster, &keys, Duration::from_secs(15)).await?;
    println!("{report}");
    Ok(report)
}

/// [`divergent`], again every 250 ms until it is 0 or `within` has passed: the repairs a
/// final read set off run in the background.
pub async fn divergent_within(
    bucket: &Bucket,
    cluster: &TestCluster,
    keys: &BTreeSet<String>,
    within: Duration,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        let count = divergent(bucket, cluster, keys).await?;
        if count == 0 || Instant::now() > deadline {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
