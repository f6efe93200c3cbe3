//! An in-memory [`Store`] for tests and simulation.

use std::collections::HashMap;
use std::sync::Mutex;

use ringkv_core::{NodeId, SiblingSet};

use super::{Store, StoreError, decode_state, encode_state, storage_key};

/// A store in a hash map. States are kept encoded, as on disk, so that encoding bugs show up
/// in tests that use it.
#[derive(Debug)]
pub struct MemoryStore {
    node_id: NodeId,
    /// Short critical sections only (a map lookup or insert); never held across an await.
    data: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    /// Same locking discipline as `data`.
    meta: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new(node_id: NodeId) -> MemoryStore {
        MemoryStore {
            node_id,
            data: Mutex::new(HashMap::new()),
            meta: Mutex::new(HashMap::new()),
        }
    }
}

impl Store for MemoryStore {
    fn node_id(&self) -> NodeId {
        self.node_id
    }

    fn get(&self, bucket: &str, key: &[u8]) -> Result<Option<SiblingSet>, StoreError> {
        let data = self
            .data
            .lock()
            .map_err(|_| StoreError::Engine("poisoned".into()))?;
        data.get(&storage_key(bucket, key))
            .map(|b| decode_state(b))
            .transpose()
    }

    fn put(&self, bucket: &str, key: &[u8], state: &SiblingSet) -> Result<(), StoreError> {
        let mut data = self
            .data
            .lock()
            .map_err(|_| StoreError::Engine("poisoned".into()))?;
        data.insert(storage_key(bucket, key), encode_state(state));
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
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
