//! An in-memory [`Store`] for tests and simulation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ringkv_core::{NodeId, SiblingSet};

use super::digests::{Digests, IndexEntry, Recorded, index_key};
use super::expiry::{Reclaimed, strip_record};
use super::{
    DataKey, HintKey, Record, Store, StoreError, decode_record, decode_state, encode_record,
    hint_prefix, storage_key,
};

/// A store in a hash map. States are kept encoded, as on disk, so that encoding bugs show up
/// in tests that use it.
#[derive(Debug)]
pub struct MemoryStore {
    node_id: NodeId,
    /// Short critical sections only (a map lookup or insert); never held across an await.
    data: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Same locking discipline as `data`.
    meta: Mutex<HashMap<String, Vec<u8>>>,
    /// Ordered, like the RocksDB column family, so scans and prefixes behave the same.
    hints: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Anti-entropy's digest index (see `storage::digests`), ordered as in RocksDB; written
    /// under the `data` lock, so that the two never disagree.
    index: Mutex<BTreeMap<Vec<u8>, [u8; 9]>>,
    digests: Digests,
    /// Syncs asked for (`sync`): a memory store has no disk, but tests check that durable
    /// writes ask for one.
    syncs: AtomicU64,
    reclaimed: Reclaimed,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Engine("poisoned".into())
}

impl MemoryStore {
    pub fn new(node_id: NodeId) -> MemoryStore {
        MemoryStore {
            node_id,
            data: Mutex::new(BTreeMap::new()),
            meta: Mutex::new(HashMap::new()),
            hints: Mutex::new(BTreeMap::new()),
            index: Mutex::new(BTreeMap::new()),
            digests: Digests::new(Recorded::default()),
            syncs: AtomicU64::new(0),
            reclaimed: Reclaimed::default(),
        }
    }

    /// How many syncs were asked for so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

impl Store for MemoryStore {
    fn node_id(&self) -> NodeId {
        self.node_id
    }

    fn reclaimed(&self) -> &Reclaimed {
        &self.reclaimed
    }

    /// What RocksDB's compaction filter does, over every record at once.
    fn compact(&self) -> Result<(), StoreError> {
        let now = crate::clock::now_ms();
        for map in [&self.data, &self.hints] {
            let mut map = map.lock().map_err(poisoned)?;
            for value in map.values_mut() {
                if let Some(stripped) = strip_record(value, now, &self.reclaimed) {
                    *value = stripped;
                }
            }
        }
        Ok(())
    }

    fn get(&self, bucket: &str, key: &[u8]) -> Result<Option<Record>, StoreError> {
        let data = self
            .data
            .lock()
            .map_err(|_| StoreError::Engine("poisoned".into()))?;
        data.get(&storage_key(bucket, key))
            .map(|b| decode_record(b))
            .transpose()
    }

    fn put(&self, bucket: &str, key: &[u8], record: &Record) -> Result<(), StoreError> {
        let filing = self.digests.filing();
        let entry = IndexEntry::new(bucket, key, &record.state, filing.class_of(bucket));
        let _stripe = self.digests.stripe(entry.position);
        let mut data = self.data.lock().map_err(poisoned)?;
        let mut index = self.index.lock().map_err(poisoned)?;
        let old = index
            .insert(entry.index_key(), entry.value())
            .map(|value| IndexEntry::decode(&entry.index_key(), &value))
            .transpose()?;
        data.insert(storage_key(bucket, key), encode_record(record));
        self.digests.replace(old.as_ref(), Some(&entry));
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn delete(&self, bucket: &str, key: &[u8]) -> Result<(), StoreError> {
        let position = ringkv_core::hash::key_position(bucket.as_bytes(), key);
        let _stripe = self.digests.stripe(position);
        let mut data = self.data.lock().map_err(poisoned)?;
        let mut index = self.index.lock().map_err(poisoned)?;
        let stored = index_key(position, bucket, key);
        let old = index
            .remove(&stored)
            .map(|value| IndexEntry::decode(&stored, &value))
            .transpose()?;
        data.remove(&storage_key(bucket, key));
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
        use std::ops::Bound;
        let index = self.index.lock().map_err(poisoned)?;
        let start = match after {
            Some(entry) => Bound::Excluded(entry.index_key()),
            None => Bound::Included(lo.to_be_bytes().to_vec()),
        };
        index
            .range((start, Bound::Unbounded))
            .map(|(k, v)| IndexEntry::decode(k, v))
            .take_while(|entry| !matches!(entry, Ok(e) if e.position > hi))
            .take(limit)
            .collect()
    }

    fn index_entry(&self, bucket: &str, key: &[u8]) -> Result<Option<IndexEntry>, StoreError> {
        let stored = index_key(
            ringkv_core::hash::key_position(bucket.as_bytes(), key),
            bucket,
            key,
        );
        let index = self.index.lock().map_err(poisoned)?;
        index
            .get(&stored)
            .map(|value| IndexEntry::decode(&stored, value))
            .transpose()
    }

    fn put_index_entry(&self, entry: &IndexEntry) -> Result<(), StoreError> {
        self.index
            .lock()
            .map_err(poisoned)?
            .insert(entry.index_key(), entry.value());
        Ok(())
    }

    fn scan(
        &self,
        after: Option<&DataKey>,
        limit: usize,
    ) -> Result<Vec<(DataKey, SiblingSet, usize)>, StoreError> {
        use std::ops::Bound;
        let data = self.data.lock().map_err(poisoned)?;
        let start = match after {
            Some(k) => Bound::Excluded(k.encode()),
            None => Bound::Unbounded,
        };
        data.range((start, Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| Ok((DataKey::decode(k)?, decode_state(v)?, k.len() + v.len())))
            .collect()
    }

    fn estimate(&self) -> Result<(u64, u64), StoreError> {
        let data = self.data.lock().map_err(poisoned)?;
        let bytes = data.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        Ok((data.len() as u64, bytes))
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn put_hint(&self, hint: &HintKey, record: &Record) -> Result<(), StoreError> {
        self.hints
            .lock()
            .map_err(poisoned)?
            .insert(hint.encode(), encode_record(record));
        Ok(())
    }

    fn get_hint(&self, hint: &HintKey) -> Result<Option<Record>, StoreError> {
        let hints = self.hints.lock().map_err(poisoned)?;
        hints
            .get(&hint.encode())
            .map(|b| decode_record(b))
            .transpose()
    }

    fn hints_for_key(
        &self,
        bucket: &str,
        key: &[u8],
    ) -> Result<Vec<(HintKey, Record)>, StoreError> {
        let prefix = hint_prefix(bucket, key);
        let hints = self.hints.lock().map_err(poisoned)?;
        hints
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| Ok((HintKey::decode(k)?, decode_record(v)?)))
            .collect()
    }

    fn delete_hint(&self, hint: &HintKey) -> Result<(), StoreError> {
        self.hints.lock().map_err(poisoned)?.remove(&hint.encode());
        Ok(())
    }

    fn scan_hints(
        &self,
        after: Option<&HintKey>,
        limit: usize,
    ) -> Result<Vec<(HintKey, SiblingSet)>, StoreError> {
        use std::ops::Bound;
        let hints = self.hints.lock().map_err(poisoned)?;
        let start = match after {
            Some(h) => Bound::Excluded(h.encode()),
            None => Bound::Unbounded,
        };
        hints
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| Ok((HintKey::decode(k)?, decode_state(v)?)))
            .collect()
    }

    fn hint_count(&self) -> Result<u64, StoreError> {
        Ok(self.hints.lock().map_err(poisoned)?.len() as u64)
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let meta = self
            .meta
            .lock()
            .map_err(|_| StoreError::Engine("poisoned".into()))?;
        Ok(meta.get(name).cloned())
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut meta = self
            .meta
            .lock()
            .map_err(|_| StoreError::Engine("poisoned".into()))?;
        meta.insert(name.to_string(), value.to_vec());
        Ok(())
    }
}
