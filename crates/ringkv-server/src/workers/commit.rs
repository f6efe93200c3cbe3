//! Group commit: one sync of the store's log for all the durable writes waiting at once.
//!
//! A durable write (the node's `storage.durability = "fsync"`, or a request with `sync`, the
//! SDK's `dw`) is written like any other, unsynced, on the connection's task, and then waits
//! here. One syncer thread repeatedly takes the newest write waiting, syncs the log once (an
//! `fdatasync` of RocksDB's WAL), and releases every write that had finished before that sync
//! began. Under concurrency a single sync covers many writes; alone, a write costs one sync
//! and no more, and no request ever blocks an async thread on the disk.
//!
//! Why it is correct: a write draws its ticket after it is in the log; the syncer reads the
//! highest ticket drawn before it starts syncing, so every write it releases was in the log
//! when the sync began.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::storage::StoreError;

/// How long the idle syncer sleeps before checking whether its owner is gone.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What the syncer has done so far.
#[derive(Clone, Debug, Default)]
struct Progress {
    /// Every write with a ticket up to this one is on disk.
    synced: u64,
    /// The last failed sync: the highest ticket it was for, and why (those writes are
    /// in doubt: in the log, perhaps not on disk).
    failed: Option<(u64, String, bool)>,
    /// Syncs done, for the tests and the curious.
    syncs: u64,
}

#[derive(Debug)]
struct Shared {
    /// The highest ticket a writer is waiting for.
    wanted: Mutex<u64>,
    wake: Condvar,
    tickets: AtomicU64,
    progress: watch::Sender<Progress>,
}

/// The node's group committer. Cheap to share inside the `Service`.
#[derive(Debug)]
pub struct GroupCommit {
    shared: Arc<Shared>,
}

impl GroupCommit {
    /// Starts the syncer thread, which calls `sync` (the store's log sync) once per group. It
    /// ends once this `GroupCommit` is dropped.
    pub fn start<F>(sync: F) -> std::io::Result<GroupCommit>
    where
        F: Fn() -> Result<(), StoreError> + Send + 'static,
    {
        let (progress, _) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            wanted: Mutex::new(0),
            wake: Condvar::new(),
            tickets: AtomicU64::new(0),
            progress,
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("ringkvd-commit".into())
            .spawn(move || syncer(weak, sync))?;
        Ok(GroupCommit { shared })
    }

    /// Returns once the writes this caller has finished are on disk. Call it after the write.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let ticket = self.shared.tickets.fetch_add(1, Ordering::AcqRel) + 1;
        {
            let mut wanted = self.shared.wanted.lock().unwrap_or_else(|p| p.into_inner());
            *wanted = (*wanted).max(ticket);
        }
        self.shared.wake.notify_one();
        let mut progress = self.shared.progress.subscribe();
        let done = progress
            .wait_for(|p| p.synced >= ticket || p.failed.as_ref().is_some_and(|f| f.0 >= ticket))
            .await
            .map_err(|_| StoreError::Engine("the commit thread stopped".into()))?;
        if done.synced >= ticket {
            return Ok(());
        }
        match &done.failed {
            Some((_, _, true)) => Err(StoreError::Full),
            Some((_, reason, false)) => Err(StoreError::Engine(reason.clone())),
            None => Err(StoreError::Engine("sync failed".into())),
        }
    }

    /// Durable writes that waited for a sync since start: divided by [`GroupCommit::syncs`],
    /// the group size achieved.
    pub fn writes(&self) -> u64 {
        self.shared.tickets.load(Ordering::Acquire)
    }

    /// Syncs done since start.
    pub fn syncs(&self) -> u64 {
        self.shared.progress.borrow().syncs
    }
}

fn syncer<F>(shared: Weak<Shared>, sync: F)
where
    F: Fn() -> Result<(), StoreError>,
{
    let mut done = 0u64;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let target = {
            let mut wanted = strong.wanted.lock().unwrap_or_else(|p| p.into_inner());
            while *wanted <= done {
                let (guard, timeout) = strong
                    .wake
                    .wait_timeout(wanted, IDLE_CHECK)
                    .unwrap_or_else(|p| p.into_inner());
                wanted = guard;
                // Only this thread holds the state: the service is gone.
                if timeout.timed_out() && Arc::strong_count(&strong) == 1 {
                    return;
                }
            }
            *wanted
        };
        let result = sync();
        done = target;
        strong.progress.send_modify(|p| {
            p.syncs += 1;
            match result {
                Ok(()) => p.synced = target,
                Err(e) => {
                    warn!(error = %e, "syncing the log failed; the writes waiting are in doubt");
                    p.failed = Some((target, e.to_string(), matches!(e, StoreError::Full)));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_syncs() {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let commit = Arc::new(
            GroupCommit::start(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                // A disk sync takes a while; writers arriving meanwhile form the next group.
                std::thread::sleep(Duration::from_millis(5));
                Ok(())
            })
            .expect("syncer thread"),
        );
        let writers: Vec<_> = (0..64)
            .map(|_| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.durable().await })
            })
            .collect();
        for writer in writers {
            assert!(writer.await.expect("writer").is_ok());
        }
        let syncs = calls.load(Ordering::SeqCst);
        assert!((1..64).contains(&syncs), "64 writers took {syncs} syncs");
        assert_eq!(commit.syncs(), syncs);
        // Alone, a writer still gets its own sync.
        commit.durable().await.expect("durable");
        assert_eq!(calls.load(Ordering::SeqCst), syncs + 1);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_writers_and_a_full_disk_says_so() {
        let full = Arc::new(AtomicBool::new(true));
        let flag = full.clone();
        let commit = GroupCommit::start(move || {
            if flag.load(Ordering::SeqCst) {
                Err(StoreError::Full)
            } else {
                Ok(())
            }
        })
        .expect("syncer thread");
        assert!(matches!(commit.durable().await, Err(StoreError::Full)));
        full.store(false, Ordering::SeqCst);
        assert!(
            commit.durable().await.is_ok(),
            "writes succeed once space is back"
        );
    }
}
