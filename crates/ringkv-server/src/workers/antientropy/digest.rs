//! Anti-entropy's digests of what a node stores, over the store and the ring alone.
//!
//! The same two functions serve both sides of an exchange: the worker computes its own, and
//! the request path answers a peer's `AeTree` and `AeKeys` with them. For every range of the
//! ring (the keys between two tokens, which all share one preference list, named by the token
//! that ends it), the keys this node stores there that *both* nodes are home replicas of, each
//! key as a digest of its bucket, name and encoded state, combined by XOR (so the order of the
//! scan does not matter). That is a two-level Merkle tree: equal ranges are skipped whole.
//! During a transfer, only keys not in transit count (their homes are the same under both
//! rings).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use ringkv_core::hash::{digest, key_position};
use ringkv_core::{NodeId, Ring};

use crate::storage::{DataKey, Store, StoreError, encode_state};

/// Keys read from the store per step of a scan.
const SCAN_BATCH: usize = 1024;

/// `(range, hash)` for every range where this node stores keys `peer` is also a home of.
pub fn tree(
    store: &Arc<dyn Store>,
    ring: &Ring,
    me: NodeId,
    peer: NodeId,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let mut ranges: BTreeMap<u64, u64> = BTreeMap::new();
    shared_keys(store, ring, me, peer, |range, key, state_digest| {
        *ranges.entry(range).or_default() ^= key_digest(key, state_digest);
    })?;
    Ok(ranges.into_iter().collect())
}

/// `(bucket, key, state digest)` for every key in `ranges` this node stores that `peer` is
/// also a home of, sorted.
pub fn keys(
    store: &Arc<dyn Store>,
    ring: &Ring,
    me: NodeId,
    peer: NodeId,
    ranges: &[u64],
) -> Result<Vec<(String, Bytes, u64)>, StoreError> {
    let mut out = Vec::new();
    shared_keys(store, ring, me, peer, |range, key, state_digest| {
        if ranges.binary_search(&range).is_ok() {
            out.push((
                key.bucket.clone(),
                Bytes::from(key.key.clone()),
                state_digest,
            ));
        }
    })?;
    out.sort();
    Ok(out)
}

/// Calls `each(range, key, state digest)` for every key this node stores of which both it
/// and `peer` are home replicas under `ring`.
fn shared_keys(
    store: &Arc<dyn Store>,
    ring: &Ring,
    me: NodeId,
    peer: NodeId,
    mut each: impl FnMut(u64, &DataKey, u64),
) -> Result<(), StoreError> {
    let mut after: Option<DataKey> = None;
    loop {
        let batch = store.scan(after.as_ref(), SCAN_BATCH)?;
        let Some((last, _, _)) = batch.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (key, state, _) in &batch {
            if let Some(range) = shared_range(ring, me, peer, key) {
                each(range, key, digest(&encode_state(state)));
            }
        }
    }
}

/// The range of `key` if both `me` and `peer` are among its home replicas and, during a
/// transfer, the key is not in transit: its homes are the same under both rings. A key that
/// moves is the transfer's business (streaming, then clean-up); one that stays where it was
/// is compared as on a settled ring, so a transfer does not stop anti-entropy.
pub(super) fn shared_range(ring: &Ring, me: NodeId, peer: NodeId, key: &DataKey) -> Option<u64> {
    let homes = ring.home_replicas(&key.bucket, &key.key);
    let both = homes.iter().any(|m| m.id == me) && homes.iter().any(|m| m.id == peer);
    if !both {
        return None;
    }
    if ring.transition().is_some() {
        let before = ring.previous_home_replicas(&key.bucket, &key.key);
        let stays = before.len() == homes.len()
            && homes.iter().all(|m| before.iter().any(|b| b.id == m.id));
        if !stays {
            return None;
        }
    }
    ring.range_of(key_position(key.bucket.as_bytes(), &key.key))
}

fn key_digest(key: &DataKey, state_digest: u64) -> u64 {
    let mut bytes = Vec::with_capacity(key.bucket.len() + key.key.len() + 12);
    bytes.extend_from_slice(&(key.bucket.len() as u32).to_be_bytes());
    bytes.extend_from_slice(key.bucket.as_bytes());
    bytes.extend_from_slice(&key.key);
    bytes.extend_from_slice(&state_digest.to_be_bytes());
    digest(&bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use ringkv_core::{Member, NodeId, SiblingSet, VersionVector};

    use super::keys;
    use crate::storage::{MemoryStore, Record, Store};
    use crate::workers::antientropy::test_ring;

    /// During a transfer, anti-entropy compares the keys whose homes stay the same and leaves
    /// the ones in transit to the transfer.
    #[test]
    fn during_a_transfer_only_keys_not_in_transit_are_compared() {
        let ring = test_ring::ring(&[1, 2, 3, 4], Some(5));
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(NodeId(1)));
        let mut state = SiblingSet::new();
        state
            .stamp(
                NodeId(1).into(),
                &VersionVector::new(),
                Some(Bytes::from("v")),
                1,
                None,
            )
            .expect("stamp");
        let ids = |members: Vec<&Member>| {
            let mut ids: Vec<NodeId> = members.iter().map(|m| m.id).collect();
            ids.sort_unstable();
            ids
        };
        let (mut staying, mut moving) = (0, 0);
        for i in 0..400 {
            let key = format!("k{i}");
            let now = ids(ring.home_replicas("b", key.as_bytes()));
            let before = ids(ring.previous_home_replicas("b", key.as_bytes()));
            if !(now.contains(&NodeId(1)) && now.contains(&NodeId(2))) {
                continue;
            }
            store
                .put("b", key.as_bytes(), &Record::new(state.clone()))
                .expect("put");
            if now == before {
                staying += 1;
            } else {
                moving += 1;
            }
        }
        assert!(
            staying > 0 && moving > 0,
            "{staying} staying, {moving} moving"
        );
        let ranges: Vec<u64> = super::tree(&store, &ring, NodeId(1), NodeId(2))
            .expect("tree")
            .into_iter()
            .map(|(range, _)| range)
            .collect();
        let compared = keys(&store, &ring, NodeId(1), NodeId(2), &ranges).expect("keys");
        assert_eq!(compared.len(), staying, "only the keys not in transit");
    }
}
