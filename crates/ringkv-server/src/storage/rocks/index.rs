//! The `digests` column family: anti-entropy's index of the stored keys (see
//! `storage::digests`), written in the same batch as the data it indexes.

use ringkv_core::hash::Position;
use rocksdb::{DB, WriteBatch};
use tracing::info;

use super::{CF_DATA, CF_DIGESTS, cf, engine};
use crate::storage::digests::{Classes, IndexEntry};
use crate::storage::{DataKey, StoreError, decode_state};

/// Entries written per batch while building the index.
const BUILD_BATCH: usize = 1024;

/// The stored entry under `index_key`, if any.
pub(super) fn read(db: &DB, index_key: &[u8]) -> Result<Option<IndexEntry>, StoreError> {
    db.get_pinned_cf(cf(db, CF_DIGESTS)?, index_key)
        .map_err(engine)?
        .map(|value| IndexEntry::decode(index_key, &value))
        .transpose()
}

/// Up to `limit` entries at positions `lo..=hi`, after `after`.
pub(super) fn scan(
    db: &DB,
    lo: Position,
    hi: Position,
    after: Option<&IndexEntry>,
    limit: usize,
) -> Result<Vec<IndexEntry>, StoreError> {
    let start = match after {
        Some(entry) => entry.index_key(),
        None => lo.to_be_bytes().to_vec(),
    };
    let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward);
    let mut out = Vec::with_capacity(limit.min(1024));
    for item in db.iterator_cf(cf(db, CF_DIGESTS)?, mode) {
        let (k, v) = item.map_err(engine)?;
        if after.is_some() && k[..] == start[..] {
            continue;
        }
        let entry = IndexEntry::decode(&k, &v)?;
        if entry.position > hi || out.len() == limit {
            break;
        }
        out.push(entry);
    }
    Ok(out)
}

/// Writes the entry of every stored key, filed under `classes` (a store of a format without
/// the index). Nothing else writes meanwhile: the store is being opened.
pub(super) fn build(db: &DB, classes: &Classes) -> Result<u64, StoreError> {
    // Allowed to slow down: the store is not serving yet.
    let write = rocksdb::WriteOptions::default();
    let (data, digests) = (cf(db, CF_DATA)?, cf(db, CF_DIGESTS)?);
    let mut batch = WriteBatch::default();
    let mut keys = 0u64;
    for item in db.iterator_cf(data, rocksdb::IteratorMode::Start) {
        let (k, v) = item.map_err(engine)?;
        let key = DataKey::decode(&k)?;
        let state = decode_state(&v)?;
        let entry = IndexEntry::new(&key.bucket, &key.key, &state, classes.class_of(&key.bucket));
        batch.put_cf(digests, entry.index_key(), entry.value());
        keys += 1;
        if batch.len() >= BUILD_BATCH {
            db.write_opt(std::mem::take(&mut batch), &write)
                .map_err(engine)?;
        }
    }
    db.write_opt(batch, &write).map_err(engine)?;
    db.flush_cf(digests).map_err(engine)?;
    info!(keys, "built the anti-entropy index of the store");
    Ok(keys)
}
