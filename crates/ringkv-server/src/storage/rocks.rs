//! The RocksDB [`Store`].

use std::path::Path;

use ringkv_core::{NodeId, SiblingSet};
use rocksdb::{ColumnFamilyDescriptor, DB, DBCompressionType, Options};

use super::{
    DataKey, HintKey, Store, StoreError, decode_state, encode_state, hint_prefix, storage_key,
};

const CF_DATA: &str = "data";
const CF_META: &str = "meta";
const CF_HINTS: &str = "hints";
const META_NODE_ID: &[u8] = b"node_id";
const META_FORMAT: &[u8] = b"format";
/// The layout version of the whole store (column families and key encoding).
const STORE_FORMAT: u8 = 1;

/// A store on RocksDB. See the module docs of `storage` for the layout.
pub struct RocksStore {
    db: DB,
    node_id: NodeId,
    /// How every data and hint write is made: unsynced (durable writes wait for the group
    /// committer's `sync`), and never throttled.
    write: rocksdb::WriteOptions,
}

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
        RocksStore::open_with(dir, &crate::config::Storage::default())
    }

    /// Opens (or creates) the store in `dir`. A new store gets a new random node id.
    pub fn open_with(
        dir: &Path,
        settings: &crate::config::Storage,
    ) -> Result<RocksStore, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(DBCompressionType::Lz4);
        options.set_keep_log_file_num(4);
        // One cache for every column family, so the bound is the node's, not per family.
        let cache = rocksdb::Cache::new_lru_cache(settings.block_cache_mb.max(1) << 20);
        let cfs = [CF_DATA, CF_META, CF_HINTS].map(|name| {
            let mut cf = Options::default();
            cf.set_compression_type(DBCompressionType::Lz4);
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            // Point lookups dominate: a bloom filter per table skips the tables without the
            // key, and keeping filters and indexes in the cache keeps the memory bound true.
            table.set_bloom_filter(10.0, false);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            cf.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(name, cf)
        });
        let db = DB::open_cf_descriptors(&options, dir, cfs).map_err(engine)?;
        let node_id = Self::identity(&db)?;
        let mut write = rocksdb::WriteOptions::default();
        // Writes run on the node's async threads (see `server::execute`): fail fast with
        // `Stalled` rather than sleep there when RocksDB throttles writes.
        write.set_no_slowdown(true);
        Ok(RocksStore { db, node_id, write })
    }

    /// Reads the node id and format, creating them on first start.
    fn identity(db: &DB) -> Result<NodeId, StoreError> {
        let meta = cf(db, CF_META)?;
        match db.get_cf(meta, META_FORMAT).map_err(engine)? {
            None => {}
            Some(v) if v.as_slice() == [STORE_FORMAT] => {}
            Some(v) => {
                return Err(StoreError::Corrupt(format!(
                    "data directory has store format {v:?}; this build reads format {STORE_FORMAT}"
                )));
            }
        }
        if let Some(bytes) = db.get_cf(meta, META_NODE_ID).map_err(engine)? {
            let array: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("node id is not 8 bytes".into()))?;
            return Ok(NodeId(u64::from_be_bytes(array)));
        }
        // Zero is reserved so that "no node" can never match a real one.
        let id = NodeId(rand::random::<u64>().max(1));
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(meta, META_FORMAT, [STORE_FORMAT]);
        batch.put_cf(meta, META_NODE_ID, id.0.to_be_bytes());
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        db.write_opt(batch, &sync).map_err(engine)?;
        Ok(id)
    }
}

impl Store for RocksStore {
    fn node_id(&self) -> NodeId {
        self.node_id
    }

    fn get(&self, bucket: &str, key: &[u8]) -> Result<Option<SiblingSet>, StoreError> {
        let data = cf(&self.db, CF_DATA)?;
        self.db
            .get_pinned_cf(data, storage_key(bucket, key))
            .map_err(engine)?
            .map(|bytes| decode_state(&bytes))
            .transpose()
    }

    fn put(&self, bucket: &str, key: &[u8], state: &SiblingSet) -> Result<(), StoreError> {
        let data = cf(&self.db, CF_DATA)?;
        self.db
            .put_cf_opt(
                data,
                storage_key(bucket, key),
                encode_state(state),
                &self.write,
            )
            .map_err(engine)
    }

    fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(dir))
            .map_err(engine)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(engine)
    }

    fn delete(&self, bucket: &str, key: &[u8]) -> Result<(), StoreError> {
        let data = cf(&self.db, CF_DATA)?;
        self.db
            .delete_cf_opt(data, storage_key(bucket, key), &self.write)
            .map_err(engine)
    }

    fn scan(
        &self,
        after: Option<&DataKey>,
        limit: usize,
    ) -> Result<Vec<(DataKey, SiblingSet, usize)>, StoreError> {
        let data = cf(&self.db, CF_DATA)?;
        let start = after.map(DataKey::encode);
        let mode = match &start {
            Some(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.db.iterator_cf(data, mode) {
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
        let data = cf(&self.db, CF_DATA)?;
        let property = |name: &str| {
            self.db
                .property_int_value_cf(data, name)
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
        let property = |name: &str| {
            self.db
                .property_int_value(name)
                .map(|v| v.unwrap_or(0))
                .map_err(engine)
        };
        Ok(super::EngineStats {
            write_stopped: property("rocksdb.is-write-stopped")? != 0,
            delayed_write_rate: property("rocksdb.actual-delayed-write-rate")?,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(engine)?;
        for name in [CF_DATA, CF_META, CF_HINTS] {
            self.db.flush_cf(cf(&self.db, name)?).map_err(engine)?;
        }
        Ok(())
    }

    fn put_hint(&self, hint: &HintKey, state: &SiblingSet) -> Result<(), StoreError> {
        let hints = cf(&self.db, CF_HINTS)?;
        self.db
            .put_cf_opt(hints, hint.encode(), encode_state(state), &self.write)
            .map_err(engine)
    }

    fn get_hint(&self, hint: &HintKey) -> Result<Option<SiblingSet>, StoreError> {
        let hints = cf(&self.db, CF_HINTS)?;
        self.db
            .get_pinned_cf(hints, hint.encode())
            .map_err(engine)?
            .map(|bytes| decode_state(&bytes))
            .transpose()
    }

    fn hints_for_key(
        &self,
        bucket: &str,
        key: &[u8],
    ) -> Result<Vec<(HintKey, SiblingSet)>, StoreError> {
        let prefix = hint_prefix(bucket, key);
        let hints = cf(&self.db, CF_HINTS)?;
        let mut out = Vec::new();
        let mode = rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(hints, mode) {
            let (k, v) = item.map_err(engine)?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((HintKey::decode(&k)?, decode_state(&v)?));
        }
        Ok(out)
    }

    fn delete_hint(&self, hint: &HintKey) -> Result<(), StoreError> {
        let hints = cf(&self.db, CF_HINTS)?;
        self.db
            .delete_cf_opt(hints, hint.encode(), &self.write)
            .map_err(engine)
    }

    fn scan_hints(
        &self,
        after: Option<&HintKey>,
        limit: usize,
    ) -> Result<Vec<(HintKey, SiblingSet)>, StoreError> {
        let hints = cf(&self.db, CF_HINTS)?;
        let start = after.map(HintKey::encode);
        let mode = match &start {
            Some(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.db.iterator_cf(hints, mode) {
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
        let hints = cf(&self.db, CF_HINTS)?;
        let mut count = 0;
        for item in self.db.iterator_cf(hints, rocksdb::IteratorMode::Start) {
            item.map_err(engine)?;
            count += 1;
        }
        Ok(count)
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(cf(&self.db, CF_META)?, meta_key(name))
            .map_err(engine)
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        self.db
            .put_cf_opt(cf(&self.db, CF_META)?, meta_key(name), value, &sync)
            .map_err(engine)
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
