//! A store's identity and format: the node id created on first start, and the format byte
//! that keeps a build from opening a store it would misread.

use ringkv_core::NodeId;
use rocksdb::DB;
use tracing::info;

use super::{CF_META, cf, engine};
use crate::storage::StoreError;

const META_NODE_ID: &[u8] = b"node_id";
const META_FORMAT: &[u8] = b"format";
/// The layout version of the whole store (column families, key encoding, record formats).
/// 2 added [`Record`](crate::storage::Record)'s marker; a format-1 store is migrated by rewriting this byte, since
/// its values still read (as records with no marker).
/// 3: the layout record may carry the bucket table (and a transfer its previous one); a
/// format-2 store is migrated by rewriting this byte (its layout reads as having none). A
/// build of format 2 would drop the table unread, so it must refuse a format-3 store.
/// 4: the layout's members (and staged joins) may carry a zone, and a `zone` change may be
/// staged; a format-3 store is migrated by rewriting this byte (its members have none). A
/// build of format 3 would drop the zones, and place keys elsewhere, so it must refuse it.
/// 5: siblings may carry an expiry, and the engine's compaction strips expired values; a
/// format-4 store is migrated by rewriting this byte (its siblings have none). A build of
/// format 4 would read expiring values as never expiring, so it must refuse it.
const STORE_FORMAT: u8 = 5;

/// The store formats this build opens: the current one and those it migrates from.
const OPENS_FORMATS: [u8; 5] = [1, 2, 3, 4, STORE_FORMAT];

/// Reads the node id and format, creating them on first start.
pub(super) fn identity(db: &DB) -> Result<NodeId, StoreError> {
    let meta = cf(db, CF_META)?;
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    match db.get_cf(meta, META_FORMAT).map_err(engine)? {
        None => {}
        Some(v) if v.as_slice() == [STORE_FORMAT] => {}
        Some(v) if v.len() == 1 && OPENS_FORMATS.contains(&v[0]) => {
            info!(
                from = v[0],
                to = STORE_FORMAT,
                "migrating the store's format"
            );
            db.put_cf_opt(meta, META_FORMAT, [STORE_FORMAT], &sync)
                .map_err(engine)?;
        }
        Some(v) if v.len() == 1 && v[0] > STORE_FORMAT => {
            return Err(StoreError::NewerFormat {
                found: v[0],
                reads: OPENS_FORMATS.to_vec(),
            });
        }
        Some(v) => {
            return Err(StoreError::Corrupt(format!(
                "data directory has store format {v:?}; this build reads formats \
                 {OPENS_FORMATS:?}"
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
    db.write_opt(batch, &sync).map_err(engine)?;
    Ok(id)
}
