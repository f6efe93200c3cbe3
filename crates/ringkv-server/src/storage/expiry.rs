//! Reclaiming expired values: the bytes of values whose expiry has passed are dropped, and
//! nothing else is.
//!
//! An expired sibling keeps its dot, its expiry and the record's version vector (see
//! `ringkv_core::siblings`, "Expiry"): dropping the whole record would let a stale replica's
//! older value merge back. Records themselves go only through the write path.
//!
//! Values are reclaimed in two places: the replica strips a key's expired values whenever it
//! writes the key anyway, and the storage engine strips the rest as it compacts
//! ([`strip_record`] is RocksDB's compaction filter), so no scan of the store is needed.

use std::sync::atomic::{AtomicU64, Ordering};

use ringkv_core::SiblingSet;

use super::{decode_record, encode_record};

/// What reclaiming expired values freed on this node since it started, for `/metrics`.
#[derive(Debug, Default)]
pub struct Reclaimed {
    /// Expired values whose bytes were dropped.
    pub values: AtomicU64,
    /// The bytes they held.
    pub bytes: AtomicU64,
}

impl Reclaimed {
    /// Counts `values` values of `bytes` bytes reclaimed.
    pub fn add(&self, values: u64, bytes: u64) {
        if values > 0 {
            self.values.fetch_add(values, Ordering::Relaxed);
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// `(values, bytes)` reclaimed so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.values.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Strips the values of `state` expired at `now_ms`, counting them in `reclaimed`. Returns
/// whether it dropped any.
pub fn strip(state: &mut SiblingSet, now_ms: u64, reclaimed: &Reclaimed) -> bool {
    if !state.holds_expired(now_ms) {
        return false;
    }
    let values = state
        .siblings()
        .iter()
        .filter(|s| s.value.is_some() && s.expired_at(now_ms))
        .count() as u64;
    let bytes = state.strip_expired(now_ms) as u64;
    reclaimed.add(values, bytes);
    true
}

/// A stored record (its encoded bytes) with its expired values stripped at `now_ms`, or
/// `None` if it holds none, or cannot be read (it is then left as it is: the read path
/// reports it). Cheap for the records that never expire: their encoding has no expiry field
/// at all, which is checked before decoding.
pub fn strip_record(bytes: &[u8], now_ms: u64, reclaimed: &Reclaimed) -> Option<Vec<u8>> {
    const FIELD: &[u8] = b"expires_ms";
    if !bytes.windows(FIELD.len()).any(|w| w == FIELD) {
        return None;
    }
    let mut record = decode_record(bytes).ok()?;
    strip(&mut record.state, now_ms, reclaimed).then(|| encode_record(&record))
}
