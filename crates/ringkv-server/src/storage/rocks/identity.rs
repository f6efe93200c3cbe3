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
/// 6: the `digests` column family indexes every key for anti-entropy; opening a format-5 store
/// builds it from the data ([`super::index::build`]) before this byte is rewritten, so a
/// crash during the build builds it again. A build of format 5 would write keys without
/// their entries, so it must refuse it.
const STORE_FORMAT: u8 = 6;

/// The store formats this build opens: the current one and those it migrates from.
const OPENS_FORMATS: [u8; 6] = [1, 2, 3, 4, 5, STORE_FORMAT];

/// A store's identity, and whether it must be migrated before it is used.
pub(super) struct Identity {
    pub node_id: NodeId,
    /// The older format the store has: the caller migrates it, then calls
    /// [`finish_migration`].
    pub migrate_from: Option<u8>,
}

/// Reads the node id and format, creating them on first start.
pub(super) fn identity(db: &DB) -> Result<Identity, StoreError> {
    let meta = cf(db, CF_META)?;
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    let mut migrate_from = None;
    match db.get_cf(meta, META_FORMAT).map_err(engine)? {
        None => {}
        Some(v) if v.as_slice() == [STORE_FORMAT] => {}
        Some(v) if v.len() == 1 && OPENS_FORMATS.contains(&v[0]) => {
            info!(
                from = v[0],
                to = STORE_FORMAT,
                "migrating the store's format"
            );
            migrate_from = Some(v[0]);
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
        return Ok(Identity {
            node_id: NodeId(u64::from_be_bytes(array)),
            migrate_from,
        });
    }
    // Zero is reserved so that "no node" can never match a real one.
    let id = NodeId(rand::random::<u64>().max(1));
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(meta, META_FORMAT, [STORE_FORMAT]);
    batch.put_cf(meta, META_NODE_ID, id.0.to_be_bytes());
    db.write_opt(batch, &sync).map_err(engine)?;
    Ok(Identity {
        node_id: id,
        migrate_from: None,
    })
}

/// Records that the store now has the current format, once its migration is complete.
pub(super) fn finish_migration(db: &DB) -> Result<(), StoreError> {
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    db.put_cf_opt(cf(db, CF_META)?, META_FORMAT, [STORE_FORMAT], &sync)
        .map_err(engine)
}
