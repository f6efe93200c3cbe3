//! RocksDB's compaction filter for expiry: as it compacts the `data` and `hints` column
//! families, the engine strips the values of expired siblings (see `storage::expiry`), so
//! reclaiming needs no scan of the store.
//!
//! A factory makes one filter per compaction run, and each filter is used by that run's
//! thread alone: the filter keeps the record it changed until RocksDB has copied it.

use std::ffi::CStr;
use std::sync::Arc;

use rocksdb::compaction_filter::{CompactionFilter, Decision};
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};

use crate::storage::expiry::{Reclaimed, strip_record};

const NAME: &CStr = c"ringkv-expiry";

/// Makes an [`ExpiryFilter`] for each compaction run.
#[derive(Debug)]
pub struct ExpiryFilters {
    reclaimed: Arc<Reclaimed>,
}

impl ExpiryFilters {
    /// Filters that count what they reclaim in `reclaimed`.
    pub fn new(reclaimed: Arc<Reclaimed>) -> ExpiryFilters {
        ExpiryFilters { reclaimed }
    }
}

impl CompactionFilterFactory for ExpiryFilters {
    type Filter = ExpiryFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> ExpiryFilter {
        ExpiryFilter {
            reclaimed: self.reclaimed.clone(),
            now_ms: crate::clock::now_ms(),
            changed: Vec::new(),
        }
    }

    fn name(&self) -> &CStr {
        NAME
    }
}

/// One compaction run's filter.
#[derive(Debug)]
pub struct ExpiryFilter {
    reclaimed: Arc<Reclaimed>,
    /// This node's clock when the run started: a value that expires during a long run is
    /// reclaimed by the next one.
    now_ms: u64,
    /// The last record changed, kept until RocksDB has copied it.
    changed: Vec<u8>,
}

impl CompactionFilter for ExpiryFilter {
    // The one unsafe block of the server: the `rocksdb` crate's filter API can only hand a
    // changed value back as a `'static` slice.
    #[allow(unsafe_code)]
    fn filter(&mut self, _level: u32, _key: &[u8], value: &[u8]) -> Decision {
        let Some(stripped) = strip_record(value, self.now_ms, &self.reclaimed) else {
            return Decision::Keep;
        };
        self.changed = stripped;
        // SAFETY: `Decision::Change` asks for a `'static` slice, but RocksDB copies the new
        // value before this call returns to it (its C API: `new_value->assign(...)`), and
        // `self.changed` is not touched again until the next call on this run's thread.
        let slice: &'static [u8] =
            unsafe { std::slice::from_raw_parts(self.changed.as_ptr(), self.changed.len()) };
        Decision::Change(slice)
    }

    fn name(&self) -> &CStr {
        NAME
    }
}
