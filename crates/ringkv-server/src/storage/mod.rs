//! Where a node keeps its sibling sets.
//!
//! [`Store`] is the interface the request handlers use; [`RocksStore`] is the real engine and
//! [`MemoryStore`] an in-memory one for tests and simulation. The same test suite
//! (`storage::tests`) runs against both.
//!
//! # On-disk format
//!
//! - Column family `data`: key = `u16 BE len(bucket) ‖ bucket ‖ key`, value = a [`Record`]:
//!   `RECORD_FORMAT (2) ‖ CBOR([SiblingSet, Minted or null])`. Values written before the
//!   marker existed are `STATE_FORMAT (1) ‖ CBOR(SiblingSet)` and still read, with no
//!   marker (which only costs the key a fresh actor on its next write here).
//! - Column family `hints`: states held for another (home) node while it is unreachable. Key
//!   = `u16 BE len(bucket) ‖ bucket ‖ u32 BE len(key) ‖ key ‖ u64 BE home node`, so all hints
//!   for one key are one prefix (merged into reads) and every hint names its home; value as in
//!   `data`.
//! - Column family `digests`: anti-entropy's index, one entry per key of `data`, written in
//!   the same batch: key = `u64 BE ring position ‖ u16 BE len(bucket) ‖ bucket ‖ key`, value
//!   = `u64 BE state digest ‖ u8 class` (see [`digests`]). Added by format 6; opening an
//!   older store builds it from `data` before the format byte is rewritten.
//! - Column family `meta`: `node_id` → `u64 BE` (created on first start), `format` → the
//!   store's format version (refusing to open a store written by an unknown future format;
//!   a format-1 store is migrated to 2 by rewriting this byte, since its records still read),
//!   and node-level records such as `members` (the ring members last seen, so that a restarted
//!   node knows the whole cluster before gossip has caught up).
//!
//! Every write goes through RocksDB's write-ahead log without an fsync per write: an
//! acknowledged write survives a crash of the process (kill -9), not a power loss of the
//! machine. Replication across nodes is what protects against losing a machine.

pub mod digests;
pub mod expiry;
mod memory;
pub(crate) mod records;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use memory::MemoryStore;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStore;

use ringkv_core::{Dot, NodeId, SiblingSet};
use serde::{Deserialize, Serialize};

/// The format byte of a bare sibling set: records written before markers existed, and the
/// canonical encoding [`encode_state`] that digests and sizes are computed over.
pub const STATE_FORMAT: u8 = 1;

/// The format byte of a [`Record`]: a sibling set and this node's marker for the key.
pub const RECORD_FORMAT: u8 = 2;

/// The last dot this node minted on a key, kept with the key's stored state and never sent to
/// another node: the proof that lets the node continue that dot's actor (see
/// `request::actors` for the rule and why it is needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minted {
    /// The dot.
    pub dot: Dot,
    /// The node's incarnation when it minted the dot; a marker of another incarnation proves
    /// nothing (a crash may have lost the stamps after it).
    pub incarnation: u64,
}

/// A key's stored state (a copy or a hint) with this node's marker for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The versions.
    pub state: SiblingSet,
    /// What this node last minted into this record, if it minted anything since the record
    /// was created (or since the marker was cleared by a stamp kept elsewhere).
    pub minted: Option<Minted>,
}

impl Record {
    /// A record with no marker: a state received from elsewhere.
    pub fn new(state: SiblingSet) -> Record {
        Record {
            state,
            minted: None,
        }
    }
}

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk is full: writes fail, reads go on.
    #[error("no space left on the data disk")]
    Full,
    /// Stored bytes that do not decode: a bug or a damaged disk, never silently skipped.
    #[error("corrupt stored state: {0}")]
    Corrupt(String),
    /// The data directory was written by a newer release, in a store format this build
    /// cannot read: run that release (or a newer one) on it. Nothing was changed.
    #[error(
        "the data directory has store format {found}, written by a newer release; this build \
         reads formats {reads:?}: run a release that reads it (downgrades are not supported)"
    )]
    NewerFormat {
        /// The format the directory records.
        found: u8,
        /// The formats this build reads.
        reads: Vec<u8>,
    },
    /// The engine would have to slow the write down (compaction is behind); the write was
    /// not applied. Writes run on the node's async threads, so they must never wait there.
    #[error("write stall: the storage engine's compaction is behind")]
    Stalled,
    /// Anything else the engine reports.
    #[error("storage engine error: {0}")]
    Engine(String),
}

/// A versioned blob store: one [`SiblingSet`] per (bucket, key).
///
/// Implementations are synchronous and thread-safe; callers serialise read-modify-write
/// sequences on one key with their own lock (see `service::KeyLocks`).
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// This store's node identity, created with the store and kept with its data, so that a
    /// wiped store comes back as a new node.
    fn node_id(&self) -> NodeId;
    fn get(&self, bucket: &str, key: &[u8]) -> Result<Option<Record>, StoreError>;
    fn put(&self, bucket: &str, key: &[u8], record: &Record) -> Result<(), StoreError>;
    /// Writes a consistent copy of the whole store to `dir` (which must not exist yet), for
    /// backups: RocksDB hard-links its immutable files, so it is quick and small at first.
    fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError::Engine(format!(
            "this store cannot make checkpoints (asked for {})",
            dir.display()
        )))
    }
    /// Puts every write made so far on disk (nothing to do for a store without one). The
    /// group committer (`commit.rs`) calls it once for many durable writes.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Removes the key's state (a copy this node no longer owns, after a transfer).
    fn delete(&self, bucket: &str, key: &[u8]) -> Result<(), StoreError>;
    /// Anti-entropy's digest tables over the stored keys ([`digests`]), which `put` and
    /// `delete` keep up to date.
    fn digests(&self) -> &digests::Digests;
    /// Up to `limit` entries of the digest index at ring positions `lo..=hi`, in order,
    /// starting after `after` (a previous batch's last entry).
    fn scan_index(
        &self,
        lo: u64,
        hi: u64,
        after: Option<&digests::IndexEntry>,
        limit: usize,
    ) -> Result<Vec<digests::IndexEntry>, StoreError>;
    /// The digest index entry of `(bucket, key)`, if the key is stored.
    fn index_entry(
        &self,
        bucket: &str,
        key: &[u8],
    ) -> Result<Option<digests::IndexEntry>, StoreError>;
    /// Rewrites one entry of the digest index (to refile it under another class), leaving
    /// the data alone. Only [`digests::settle_classes`] calls it, under the entry's stripe.
    fn put_index_entry(&self, entry: &digests::IndexEntry) -> Result<(), StoreError>;
    /// Up to `limit` keys in storage order, starting after `after` (a previous batch's last
    /// key), with their states and stored sizes in bytes.
    fn scan(
        &self,
        after: Option<&DataKey>,
        limit: usize,
    ) -> Result<Vec<(DataKey, SiblingSet, usize)>, StoreError>;
    /// About how many keys the node stores and how many bytes they take (the engine's
    /// estimates: cheap, not exact).
    fn estimate(&self) -> Result<(u64, u64), StoreError>;
    /// Whether the engine is stalling writes, for `/metrics`. Engines that never stall keep
    /// the default (no stall).
    fn engine_stats(&self) -> Result<EngineStats, StoreError> {
        Ok(EngineStats::default())
    }
    /// Makes every acknowledged write durable on disk (used at shutdown).
    fn flush(&self) -> Result<(), StoreError>;
    /// Merges nothing: stores `state` as the hint for `home` (callers merge under the key
    /// lock first).
    fn put_hint(&self, hint: &HintKey, record: &Record) -> Result<(), StoreError>;
    fn get_hint(&self, hint: &HintKey) -> Result<Option<Record>, StoreError>;
    /// Every hint held for `(bucket, key)`, whatever its home.
    fn hints_for_key(&self, bucket: &str, key: &[u8])
    -> Result<Vec<(HintKey, Record)>, StoreError>;
    fn delete_hint(&self, hint: &HintKey) -> Result<(), StoreError>;
    /// Up to `limit` hints in key order, starting after `after` (a previous batch's last key).
    fn scan_hints(
        &self,
        after: Option<&HintKey>,
        limit: usize,
    ) -> Result<Vec<(HintKey, SiblingSet)>, StoreError>;
    /// How many hints are held.
    fn hint_count(&self) -> Result<u64, StoreError>;
    /// Reads a node-level record (for example the members last seen), kept apart from data.
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes a node-level record, durably (synced) since it is rare and must survive a crash.
    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError>;
    /// What reclaiming expired values has freed in this store (see [`expiry`]).
    fn reclaimed(&self) -> &expiry::Reclaimed;
    /// Compacts the whole store now, which reclaims every expired value (tests, and an
    /// operator who wants the space back at once). Stores without compaction do nothing.
    fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Where a hint is filed: the key it is for and the home node it waits for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HintKey {
    pub bucket: String,
    pub key: Vec<u8>,
    pub home: NodeId,
}

impl HintKey {
    /// The stored form; see the module docs.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = hint_prefix(&self.bucket, &self.key);
        out.extend_from_slice(&self.home.0.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<HintKey, StoreError> {
        let corrupt = || StoreError::Corrupt("malformed hint key".into());
        let (len, rest) = bytes.split_first_chunk::<2>().ok_or_else(corrupt)?;
        let len = u16::from_be_bytes(*len) as usize;
        let bucket = rest.get(..len).ok_or_else(corrupt)?;
        let rest = &rest[len..];
        let (klen, rest) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let klen = u32::from_be_bytes(*klen) as usize;
        let key = rest.get(..klen).ok_or_else(corrupt)?;
        let home: [u8; 8] = rest[klen..].try_into().map_err(|_| corrupt())?;
        Ok(HintKey {
            bucket: String::from_utf8(bucket.to_vec()).map_err(|_| corrupt())?,
            key: key.to_vec(),
            home: NodeId(u64::from_be_bytes(home)),
        })
    }
}

/// Write stalls of the storage engine (RocksDB slows, then stops, writes when compaction
/// falls behind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub write_stopped: bool,
    /// Bytes per second writes are slowed to while a stall lasts; 0 when not stalling.
    pub delayed_write_rate: u64,
}

/// A key as stored in the `data` column family.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DataKey {
    pub bucket: String,
    pub key: Vec<u8>,
}

impl DataKey {
    pub(crate) fn encode(&self) -> Vec<u8> {
        storage_key(&self.bucket, &self.key)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<DataKey, StoreError> {
        let corrupt = || StoreError::Corrupt("malformed data key".into());
        let (len, rest) = bytes.split_first_chunk::<2>().ok_or_else(corrupt)?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(corrupt());
        }
        let (bucket, key) = rest.split_at(len);
        Ok(DataKey {
            bucket: String::from_utf8(bucket.to_vec()).map_err(|_| corrupt())?,
            key: key.to_vec(),
        })
    }
}

/// The stored prefix shared by every hint of `(bucket, key)`.
pub(crate) fn hint_prefix(bucket: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + bucket.len() + key.len());
    out.extend_from_slice(&(bucket.len() as u16).to_be_bytes());
    out.extend_from_slice(bucket.as_bytes());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The stored key of `(bucket, key)`.
pub(crate) fn storage_key(bucket: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + bucket.len() + key.len());
    // Bucket names are limited to u16::MAX bytes by the request validation.
    out.extend_from_slice(&(bucket.len() as u16).to_be_bytes());
    out.extend_from_slice(bucket.as_bytes());
    out.extend_from_slice(key);
    out
}

/// A sibling set in its canonical encoding: the format byte, then CBOR. Digests and sizes
/// are computed over it; it is also a valid stored value (a record with no marker).
pub fn encode_state(state: &SiblingSet) -> Vec<u8> {
    let mut out = vec![STATE_FORMAT];
    // Encoding into a Vec fails only on an I/O error, which a Vec never has.
    let _ = ciborium::into_writer(state, &mut out);
    out
}

/// A record as the store keeps it: see the module docs.
pub fn encode_record(record: &Record) -> Vec<u8> {
    let mut out = vec![RECORD_FORMAT];
    let _ = ciborium::into_writer(&(&record.state, &record.minted), &mut out);
    out
}

/// The inverse of [`encode_record`], reading [`encode_state`]'s form too; anything else is
/// [`StoreError::Corrupt`].
pub fn decode_record(bytes: &[u8]) -> Result<Record, StoreError> {
    let corrupt = |e: ciborium::de::Error<std::io::Error>| StoreError::Corrupt(e.to_string());
    match bytes.split_first() {
        Some((&STATE_FORMAT, body)) => ciborium::from_reader(body)
            .map(Record::new)
            .map_err(corrupt),
        Some((&RECORD_FORMAT, body)) => ciborium::from_reader(body)
            .map(|(state, minted)| Record { state, minted })
            .map_err(corrupt),
        Some((format, _)) => Err(StoreError::Corrupt(format!(
            "unknown state format {format}"
        ))),
        None => Err(StoreError::Corrupt("empty stored state".into())),
    }
}

/// The state inside a stored value (scans, which have no use for the marker).
pub fn decode_state(bytes: &[u8]) -> Result<SiblingSet, StoreError> {
    decode_record(bytes).map(|r| r.state)
}

#[cfg(test)]
mod tests;
