//! The workload: read-modify-write additions to sets, paced and bounded.
//!
//! Each operation reads a key, unions its siblings, adds one new element and writes the set
//! back with the read's context. Every element is written once, so an element missing from
//! the final state is a lost update, and one present although its write failed is an
//! unacknowledged write that took effect.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringkv::{Bucket, Error, ReadOptions, WriteOptions};

use super::{History, Op, Outcome};

/// The bytes a set is stored as: each element as 8 little-endian bytes, in order. [`union`]
/// reads them back.
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
