//! A full disk.
//!
//! A write that finds the disk full fails with [`StoreError::Full`], and RocksDB then refuses
//! every later write until it is reopened (its background error is sticky, and its own
//! recovery waits for far more free space than a small disk ever has). So the store keeps
//! serving reads and refuses writes at once, and every [`RECOVERY_INTERVAL`] a write checks
//! whether space was freed (it can write a probe file); if so the store switches reads to a
//! read-only instance, closes the writable one and reopens it (RocksDB replays its log, so
//! every acknowledged write is kept), and writes resume.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use rocksdb::DB;
use tracing::{info, warn};

use super::{RocksStore, open_db};
use crate::storage::{StoreError, digests};

/// How often writes refused for a full disk check whether space was freed.
pub(super) const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// The free space (bytes) a recovery needs: a probe file this large must fit.
const RECOVERY_PROBE: usize = 256 * 1024;

impl RocksStore {
    /// Runs one write. While the disk is full it is refused at once, unless a recovery is
    /// due and succeeds; a write that finds the disk full marks it so.
    pub(super) fn write_with(
        &self,
        op: impl FnOnce(&DB) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if self.full.load(Ordering::Acquire) {
            self.recover()?;
        }
        let result = op(&self.db());
        if matches!(result, Err(StoreError::Full)) && !self.full.swap(true, Ordering::AcqRel) {
            warn!(
                dir = %self.dir.display(),
                "the data disk is full: writes are refused until space is freed"
            );
            *self
                .last_recovery
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        }
        result
    }

    /// Tries to leave the full-disk state, at most once per [`RECOVERY_INTERVAL`].
    fn recover(&self) -> Result<(), StoreError> {
        let mut last = self
            .last_recovery
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !self.full.load(Ordering::Acquire) {
            return Ok(()); // Another write recovered while this one waited.
        }
        if last.elapsed() < RECOVERY_INTERVAL {
            return Err(StoreError::Full);
        }
        *last = Instant::now();
        if !has_room(&self.dir) {
            return Err(StoreError::Full);
        }
        // The tables are rebuilt from the reopened store's entries: a write whose call
        // failed with the disk may still have reached its log.
        match self.reopen().and_then(|()| {
            self.digests.clear();
            digests::rebuild(self).map(|_| ())
        }) {
            Ok(()) => {
                self.full.store(false, Ordering::Release);
                info!(dir = %self.dir.display(), "space was freed: writes resume");
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "reopening the store after a full disk failed; will retry");
                Err(StoreError::Full)
            }
        }
    }

    /// Closes and reopens the writable instance; reads go to a read-only one meanwhile (and
    /// stay there if the reopen fails).
    fn reopen(&self) -> Result<(), StoreError> {
        let read_only = Arc::new(open_db(&self.dir, &self.cache, &self.reclaimed, true)?);
        let mut old = std::mem::replace(
            &mut *self.db.write().unwrap_or_else(PoisonError::into_inner),
            read_only,
        );
        // Requests that took the old instance before the swap finish with it first.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Arc::try_unwrap(old) {
                Ok(db) => {
                    drop(db);
                    break;
                }
                Err(still) if Instant::now() < deadline => {
                    old = still;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(still) => {
                    *self.db.write().unwrap_or_else(PoisonError::into_inner) = still;
                    return Err(StoreError::Engine(
                        "the store stayed in use; it was not reopened".into(),
                    ));
                }
            }
        }
        let writable = Arc::new(open_db(&self.dir, &self.cache, &self.reclaimed, false)?);
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = writable;
        Ok(())
    }
}

/// Whether a probe file of [`RECOVERY_PROBE`] bytes fits in `dir` (it is removed again).
fn has_room(dir: &Path) -> bool {
    let probe = dir.join(".space-probe");
    let fits = std::fs::write(&probe, vec![0u8; RECOVERY_PROBE]).is_ok();
    let _ = std::fs::remove_file(&probe);
    fits
}
