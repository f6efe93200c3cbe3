//! The RocksDB [`Store`].
//!
//! A full disk is survived without losing a write: see [`full_disk`].

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use ringkv_core::{NodeId, SiblingSet};
use rocksdb::{ColumnFamilyDescriptor, DB, DBCompressionType, Options};
use tracing::info;

use super::digests::{self, Digests, IndexEntry, index_key};
use super::expiry::Reclaimed;
use super::{
    DataKey, HintKey, Record, Store, StoreError, decode_record, decode_state, encode_record,
    hint_prefix, storage_key,
};

const CF_DATA: &str = "data";
const CF_META: &str = "meta";
const CF_HINTS: &str = "hints";
const CF_DIGESTS: &str = "digests";

/// A store on RocksDB. See the module docs of `storage` for the layout.
pub struct RocksStore {
    /// The database. Replaced only by the recovery from a full disk (see the module docs).
    db: RwLock<Arc<DB>>,
    dir: PathBuf,
    /// One block cache for every instance and column family.
    cache: rocksdb::Cache,
    node_id: NodeId,
    /// How every data and hint write is made: unsynced (durable writes wait for the group
    /// committer's `sync`), and never throttled.
    write: rocksdb::WriteOptions,
    /// Set when a write found the disk full, until the store recovered.
    full: AtomicBool,
    /// When recovery was last tried; held while trying, so one write tries at a time.
    last_recovery: Mutex<Instant>,
    /// What the compaction filter and the write path reclaimed; shared with the filters.
    reclaimed: Arc<Reclaimed>,
    /// Anti-entropy's tables over the `digests` column family.
    digests: Digests,
}

mod expiry_filter;
mod full_disk;
mod identity;
mod index;

use expiry_filter::ExpiryFilters;

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Opens (or creates) the store in `dir` with the default settings.
    pub fn open(dir: &Path) -> Result<RocksStore, StoreError> {
        RocksStore::open_with(dir, &crate::ops::config::Storage::default())
    }

    /// Opens (or creates) the store in `dir`. A new store gets a new random node id.
    pub fn open_with(
        dir: &Path,
        settings: &crate::ops::config::Storage,
    ) -> Result<RocksStore, StoreError> {
        // One cache for every column family, so the bound is the node's, not per family.
        let cache = rocksdb::Cache::new_lru_cache(settings.block_cache_mb.max(1) << 20);
        let reclaimed = Arc::new(Reclaimed::default());
        let db = open_db(dir, &cache, &reclaimed, false)?;
        let identity = identity::identity(&db)?;
        let recorded = digests::recorded_classes(
            db.get_cf(cf(&db, CF_META)?, meta_key(digests::CLASSES_RECORD))
                .map_err(engine)?,
        )?;
        if identity.migrate_from.is_some() {
            index::build(&db, &recorded.classes)?;
            identity::finish_migration(&db)?;
        }
        let node_id = identity.node_id;
        let mut write = rocksdb::WriteOptions::default();
        // Writes run on the node's async threads (see `server::execute`): fail fast with
        // `Stalled` rather than sleep there when RocksDB throttles writes.
        write.set_no_slowdown(true);
        let store = RocksStore {
            db: RwLock::new(Arc::new(db)),
            dir: dir.to_path_buf(),
            cache,
            node_id,
            write,
            full: AtomicBool::new(false),
            last_recovery: Mutex::new(Instant::now()),
            reclaimed,
            digests: Digests::new(recorded),
        };
        let keys = digests::rebuild(&store)?;
        info!(keys, "anti-entropy tables built");
        Ok(store)
    }

    /// The current database instance.
    fn db(&self) -> Arc<DB> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Store for RocksStore {
    fn node_id(&self) -> NodeId {
        self.node_id
    }

    fn reclaimed(&self) -> &Reclaimed {
        &self.reclaimed
    }

    fn compact(&self) -> Result<(), StoreError> {
        let db = self.db();
        for name in [CF_DATA, CF_HINTS] {
            db.compact_range_cf(cf(&db, name)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    fn get(&self, bucket: &str, key: &[u8]) -> Result<Option<Record>, StoreError> {
        let db = self.db();
        let data = cf(&db, CF_DATA)?;
        db.get_pinned_cf(data, storage_key(bucket, key))
            .map_err(engine)?
            .map(|bytes| decode_record(&bytes))
            .transpose()
    }

    fn put(&self, bucket: &str, key: &[u8], record: &Record) -> Result<(), StoreError> {
        let filing = self.digests.filing();
        let entry = IndexEntry::new(bucket, key, &record.state, filing.class_of(bucket));
        let _stripe = self.digests.stripe(entry.position);
        let index_key = entry.index_key();
        let old = index::read(&self.db(), &index_key)?;
        self.write_with(|db| {
            let mut batch = rocksdb::WriteBatch::default();
            batch.put_cf(
                cf(db, CF_DATA)?,
                storage_key(bucket, key),
                encode_record(record),
            );
            if old.as_ref() != Some(&entry) {
                batch.put_cf(cf(db, CF_DIGESTS)?, &index_key, entry.value());
            }
            db.write_opt(batch, &self.write).map_err(engine)
        })?;
        self.digests.replace(old.as_ref(), Some(&entry));
        Ok(())
    }

    fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        let db = self.db();
        rocksdb::checkpoint::Checkpoint::new(&db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(dir))
            .map_err(engine)
    }

    fn sync(&self) -> Result<(), StoreError> {
        let db = self.db();
        db.flush_wal(true).map_err(engine)
    }

    fn delete(&self, bucket: &str, key: &[u8]) -> Result<(), StoreError> {
        let position = ringkv_core::hash::key_position(bucket.as_bytes(), key);
        let _stripe = self.digests.stripe(position);
        let index_key = index_key(position, bucket, key);
        let old = index::read(&self.db(), &index_key)?;
        self.write_with(|db| {
            let mut batch = rocksdb::WriteBatch::default();
            batch.delete_cf(cf(db, CF_DATA)?, storage_key(bucket, key));
            batch.delete_cf(cf(db, CF_DIGESTS)?, &index_key);
            db.write_opt(batch, &self.write).map_err(engine)
        })?;
        self.digests.replace(old.as_ref(), None);
        Ok(())
    }

    fn digests(&self) -> &Digests {
        &self.digests
    }

    fn scan_index(
        &self,
        lo: u64,
        hi: u64,
        after: Option<&IndexEntry>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        index::scan(&self.db(), lo, hi, after, limit)
    }

    fn index_entry(&self, bucket: &str, key: &[u8]) -> Result<Option<IndexEntry>, StoreError> {
        let position = ringkv_core::hash::key_position(bucket.as_bytes(), key);
        index::read(&self.db(), &index_key(position, bucket, key))
    }

    fn put_index_entry(&self, entry: &IndexEntry) -> Result<(), StoreError> {
        self.write_with(|db| {
            db.put_cf_opt(
                cf(db, CF_DIGESTS)?,
                entry.index_key(),
                entry.value(),
                &self.write,
            )
            .map_err(engine)
        })
    }

    fn scan(
        &self,
        after: Option<&DataKey>,
        limit: usize,
    ) -> Result<Vec<(DataKey, SiblingSet, usize)>, StoreError> {
        let db = self.db();
        let data = cf(&db, CF_DATA)?;
        let start = after.map(DataKey::encode);
        let mode = match &start {
            Some(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in db.iterator_cf(data, mode) {
            let (k, v) = item.map_err(engine)?;
            if start.as_deref() == Some(&k[..]) {
                continue;
            }
            if out.len() == limit {
                break;
            }
            out.push((DataKey::decode(&k)?, decode_state(&v)?, k.len() + v.len()));
        }
        Ok(out)
    }

    fn estimate(&self) -> Result<(u64, u64), StoreError> {
        let db = self.db();
        let data = cf(&db, CF_DATA)?;
        let property = |name: &str| {
            db.property_int_value_cf(data, name)
                .map(|v| v.unwrap_or(0))
                .map_err(engine)
        };
        let keys = property("rocksdb.estimate-num-keys")?;
        // Live SST data plus what still sits in memtables.
        let bytes = property("rocksdb.estimate-live-data-size")?
            + property("rocksdb.cur-size-all-mem-tables")?;
        Ok((keys, bytes))
    }

    fn engine_stats(&self) -> Result<super::EngineStats, StoreError> {
        let db = self.db();
        let property = |name: &str| {
            db.property_int_value(name)
                .map(|v| v.unwrap_or(0))
                .map_err(engine)
        };
        Ok(super::EngineStats {
            write_stopped: property("rocksdb.is-write-stopped")? != 0,
            delayed_write_rate: property("rocksdb.actual-delayed-write-rate")?,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        let db = self.db();
        db.flush_wal(true).map_err(engine)?;
        for name in [CF_DATA, CF_META, CF_HINTS, CF_DIGESTS] {
            db.flush_cf(cf(&db, name)?).map_err(engine)?;
        }
        Ok(())
    }

    fn put_hint(&self, hint: &HintKey, record: &Record) -> Result<(), StoreError> {
        self.write_with(|db| {
            let value = encode_record(record);
            db.put_cf_opt(cf(db, CF_HINTS)?, hint.encode(), value, &self.write)
                .map_err(engine)
        })
    }

    fn get_hint(&self, hint: &HintKey) -> Result<Option<Record>, StoreError> {
        let db = self.db();
        let hints = cf(&db, CF_HINTS)?;
        db.get_pinned_cf(hints, hint.encode())
            .map_err(engine)?
            .map(|bytes| decode_record(&bytes))
            .transpose()
    }

    fn hints_for_key(
        &self,
        bucket: &str,
        key: &[u8],
    ) -> Result<Vec<(HintKey, Record)>, StoreError> {
        let db = self.db();
        let prefix = hint_prefix(bucket, key);
        let hints = cf(&db, CF_HINTS)?;
        let mut out = Vec::new();
        let mode = rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        for item in db.iterator_cf(hints, mode) {
            let (k, v) = item.map_err(engine)?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((HintKey::decode(&k)?, decode_record(&v)?));
        }
        Ok(out)
    }

    fn delete_hint(&self, hint: &HintKey) -> Result<(), StoreError> {
        self.write_with(|db| {
            db.delete_cf_opt(cf(db, CF_HINTS)?, hint.encode(), &self.write)
                .map_err(engine)
        })
    }

    fn scan_hints(
        &self,
        after: Option<&HintKey>,
        limit: usize,
    ) -> Result<Vec<(HintKey, SiblingSet)>, StoreError> {
        let db = self.db();
        let hints = cf(&db, CF_HINTS)?;
        let start = after.map(HintKey::encode);
        let mode = match &start {
            Some(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in db.iterator_cf(hints, mode) {
            let (k, v) = item.map_err(engine)?;
            if start.as_deref() == Some(&k[..]) {
                continue;
            }
            if out.len() == limit {
                break;
            }
            out.push((HintKey::decode(&k)?, decode_state(&v)?));
        }
        Ok(out)
    }

    fn hint_count(&self) -> Result<u64, StoreError> {
        let db = self.db();
        let hints = cf(&db, CF_HINTS)?;
        let mut count = 0;
        for item in db.iterator_cf(hints, rocksdb::IteratorMode::Start) {
            item.map_err(engine)?;
            count += 1;
        }
        Ok(count)
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db();
        db.get_cf(cf(&db, CF_META)?, meta_key(name)).map_err(engine)
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        self.write_with(|db| {
            db.put_cf_opt(cf(db, CF_META)?, meta_key(name), value, &sync)
                .map_err(engine)
        })
    }
}

/// Opens the database in `dir`, writable or read-only, with `cache` for every column family.
fn open_db(
    dir: &Path,
    cache: &rocksdb::Cache,
    reclaimed: &Arc<Reclaimed>,
    read_only: bool,
) -> Result<DB, StoreError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_keep_log_file_num(4);
    let cfs = [CF_DATA, CF_META, CF_HINTS, CF_DIGESTS].map(|name| {
        let mut cf = Options::default();
        cf.set_compression_type(DBCompressionType::Lz4);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(cache);
        // Point lookups dominate: a bloom filter per table skips the tables without the
        // key, and keeping filters and indexes in the cache keeps the memory bound true.
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        cf.set_block_based_table_factory(&table);
        if name == CF_DATA || name == CF_HINTS {
            cf.set_compaction_filter_factory(ExpiryFilters::new(reclaimed.clone()));
        }
        ColumnFamilyDescriptor::new(name, cf)
    });
    if read_only {
        DB::open_cf_descriptors_read_only(&options, dir, cfs, false).map_err(engine)
    } else {
        DB::open_cf_descriptors(&options, dir, cfs).map_err(engine)
    }
}

/// Records written through `put_meta` live under `record/` so they can never collide with the
/// store's own `node_id` and `format` entries.
fn meta_key(name: &str) -> Vec<u8> {
    [b"record/".as_slice(), name.as_bytes()].concat()
}

fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::Engine(format!("column family {name} missing")))
}

/// Classifies a RocksDB error: a full disk is its own kind, so that writes can say so.
fn engine(e: rocksdb::Error) -> StoreError {
    if e.kind() == rocksdb::ErrorKind::Incomplete {
        // Only `no_slowdown` writes end this way: RocksDB would have delayed them.
        return StoreError::Stalled;
    }
    let text = e.into_string();
    if text.contains("No space left") || text.contains("ENOSPC") {
        StoreError::Full
    } else {
        StoreError::Engine(text)
    }
}
