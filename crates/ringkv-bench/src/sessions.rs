//! The session workload: what a web application does to its session store.
//!
//! `users` users, picked Zipfian (a few are busy, most rarely come back), each with at most
//! one session. A request of a user without a session creates one (a write with a time to
//! live); a request of a user with one reads it with a touch (sliding expiry), or, one in
//! `update_every`, updates it with the read's context. After `requests` requests a session
//! ends: a logout deletes it (`logout_share` of sessions), the others are abandoned and
//! expire on their own. A read that finds the session gone (it expired) starts over.
//!
//! ```text
//! ringkv-bench sessions --hosts 127.0.0.1:7401 --threads 16 --duration 30 --users 100000
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringkv::{Bucket, Context, ReadOptions, WriteOptions};

use crate::generator::{ScrambledZipfian, ZIPFIAN_CONSTANT};
use crate::measure::{Measurements, Report};

/// The operations reported, with YCSB-style names.
const OPS: [&str; 4] = ["CREATE", "READ-TOUCH", "UPDATE", "LOGOUT"];

/// What the run does.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    pub users: u64,
    pub threads: usize,
    pub duration: Duration,
    /// Stop once this many sessions were created (0: only the duration counts).
    pub sessions: u64,
    pub ttl: Duration,
    pub requests: u32,
    pub update_every: u32,
    pub logout_share: f64,
    pub value_len: usize,
}

/// A user's session as the application knows it.
#[derive(Debug)]
enum Slot {
    None,
    /// A worker is handling a request of this user.
    Busy,
    Live {
        key: String,
        context: Context,
        requests_left: u32,
    },
}

/// What the workers share.
struct Shared {
    plan: SessionPlan,
    bucket: Bucket,
    slots: Vec<Mutex<Slot>>,
    users: ScrambledZipfian,
    measurements: Measurements,
    created: AtomicU64,
    logged_out: AtomicU64,
    abandoned: AtomicU64,
    expired: AtomicU64,
    deadline: Instant,
}

/// What the sessions did, besides the operations' latencies.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SessionCounts {
    pub created: u64,
    pub logged_out: u64,
    pub abandoned: u64,
    /// Sessions found expired by a read while their user was still active.
    pub expired_in_use: u64,
}

/// Runs the workload against `bucket`.
pub async fn run(bucket: Bucket, plan: SessionPlan) -> anyhow::Result<(Report, SessionCounts)> {
    anyhow::ensure!(plan.users > 0, "--users must be at least 1");
    let started = Instant::now();
    let shared = Arc::new(Shared {
        users: ScrambledZipfian::new(0, plan.users - 1, ZIPFIAN_CONSTANT),
        slots: (0..plan.users).map(|_| Mutex::new(Slot::None)).collect(),
        measurements: Measurements::new(&OPS),
        created: AtomicU64::new(0),
        logged_out: AtomicU64::new(0),
        abandoned: AtomicU64::new(0),
        expired: AtomicU64::new(0),
        deadline: started + plan.duration,
        plan,
        bucket,
    });
    let workers: Vec<_> = (0..shared.plan.threads.max(1))
        .map(|_| tokio::spawn(worker(shared.clone())))
        .collect();
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed();
    let done = shared.measurements.done();
    let report = Report {
        target: "ringkv".into(),
        workload: "sessions".into(),
        phase: "run".into(),
        threads: shared.plan.threads,
        runtime_ms: elapsed.as_secs_f64() * 1000.0,
        operations: done,
        throughput: done as f64 / elapsed.as_secs_f64().max(1e-9),
        intended: false,
        ops: shared.measurements.summaries(),
        cpu: None,
    };
    let counts = SessionCounts {
        created: shared.created.load(Ordering::Relaxed),
        logged_out: shared.logged_out.load(Ordering::Relaxed),
        abandoned: shared.abandoned.load(Ordering::Relaxed),
        expired_in_use: shared.expired.load(Ordering::Relaxed),
    };
    Ok((report, counts))
}

impl Shared {
    fn slot(&self, user: u64) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[user as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn done(&self) -> bool {
        Instant::now() >= self.deadline
            || (self.plan.sessions > 0
                && self.created.load(Ordering::Relaxed) >= self.plan.sessions)
    }

    fn value(&self) -> Bytes {
        Bytes::from(vec![b's'; self.plan.value_len])
    }

    fn writes(&self) -> WriteOptions {
        WriteOptions::default().with_ttl(self.plan.ttl)
    }
}

async fn worker(shared: Arc<Shared>) {
    while !shared.done() {
        let user = shared.users.next();
        let slot = std::mem::replace(&mut *shared.slot(user), Slot::Busy);
        let next = match slot {
            // Another worker is serving this user: pick another.
            Slot::Busy => continue,
            Slot::None => create(&shared, user).await,
            Slot::Live {
                key,
                context,
                requests_left,
            } => request(&shared, key, context, requests_left).await,
        };
        *shared.slot(user) = next;
    }
}

/// A user without a session signs in.
async fn create(shared: &Shared, user: u64) -> Slot {
    let n = shared.created.fetch_add(1, Ordering::Relaxed);
    let key = format!("session:{user}:{n}");
    let started = Instant::now();
    let written = shared
        .bucket
        .put_with(&key, shared.value(), None, &shared.writes())
        .await;
    shared
        .measurements
        .finish("CREATE", started.elapsed(), written.is_ok());
    match written {
        Ok(receipt) => Slot::Live {
            key,
            context: receipt.written.context().clone(),
            requests_left: shared.plan.requests,
        },
        Err(_) => Slot::None,
    }
}

/// A request of a user with a session: read (with a touch) or update, or the session ends.
async fn request(shared: &Shared, key: String, context: Context, requests_left: u32) -> Slot {
    if requests_left == 0 {
        if rand::random_bool(shared.plan.logout_share.clamp(0.0, 1.0)) {
            let started = Instant::now();
            let deleted = shared
                .bucket
                .delete_with(&key, Some(&context), &WriteOptions::default())
                .await;
            shared
                .measurements
                .finish("LOGOUT", started.elapsed(), deleted.is_ok());
            shared.logged_out.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.abandoned.fetch_add(1, Ordering::Relaxed);
        }
        return Slot::None;
    }
    let requests_left = requests_left - 1;
    if shared.plan.update_every > 0 && rand::random_range(0..shared.plan.update_every) == 0 {
        let started = Instant::now();
        let written = shared
            .bucket
            .put_with(&key, shared.value(), Some(&context), &shared.writes())
            .await;
        shared
            .measurements
            .finish("UPDATE", started.elapsed(), written.is_ok());
        return match written {
            Ok(receipt) => Slot::Live {
                key,
                context: receipt.written.context().clone(),
                requests_left,
            },
            Err(_) => Slot::Live {
                key,
                context,
                requests_left,
            },
        };
    }
    let started = Instant::now();
    let read = shared
        .bucket
        .get_with(&key, &ReadOptions::default().with_touch(shared.plan.ttl))
        .await;
    shared
        .measurements
        .finish("READ-TOUCH", started.elapsed(), read.is_ok());
    match read {
        Ok(value) if value.is_found() => Slot::Live {
            key,
            context: value.context().clone(),
            requests_left,
        },
        Ok(_) => {
            shared.expired.fetch_add(1, Ordering::Relaxed);
            Slot::None
        }
        Err(_) => Slot::Live {
            key,
            context,
            requests_left,
        },
    }
}
