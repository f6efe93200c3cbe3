//! Node-level records kept in the store's `meta` column family: the cluster layout, this
//! node's transfer report, where an interrupted transfer stopped, the ring version last
//! cleaned up after. Each is a format byte then CBOR; one that cannot be read is logged and
//! treated as absent (each has a safe default: start over, or wait for gossip).

use tracing::warn;

use crate::storage::{Store, StoreError};

/// The format byte in front of every record.
const FORMAT: u8 = 1;

/// A record persisted by an earlier run (none if absent or unreadable: logged, not fatal).
pub(crate) fn load<T: serde::de::DeserializeOwned>(store: &dyn Store, name: &str) -> Option<T> {
    let bytes = match store.get_meta(name) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return None,
        Err(e) => {
            warn!(record = name, error = %e, "cannot read a persisted record");
            return None;
        }
    };
    match bytes.split_first() {
        Some((&FORMAT, body)) => match ciborium::from_reader(body) {
            Ok(value) => Some(value),
            Err(e) => {
                warn!(record = name, error = %e, "ignoring an unreadable record");
                None
            }
        },
        _ => {
            warn!(record = name, "ignoring a record of an unknown format");
            None
        }
    }
}

/// Persists a record (synced: records are rare and must survive a crash). A failure is
/// logged: the record's safe default applies after a restart.
pub(crate) fn save<T: serde::Serialize>(store: &dyn Store, name: &str, value: &T) {
    if let Err(e) = self::store(store, name, value) {
        warn!(record = name, error = %e, "cannot persist a record");
    }
}

/// Persists a record, synced, for a caller that must know it is on disk.
pub(crate) fn store<T: serde::Serialize>(
    store: &dyn Store,
    name: &str,
    value: &T,
) -> Result<(), StoreError> {
    let mut bytes = vec![FORMAT];
    ciborium::into_writer(value, &mut bytes)
        .map_err(|e| StoreError::Engine(format!("encoding the record {name}: {e}")))?;
    store.put_meta(name, &bytes)
}
