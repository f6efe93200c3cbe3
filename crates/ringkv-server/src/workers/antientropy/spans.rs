//! Anti-entropy by spans: what two nodes compare, computed from the store's digest index
//! (`storage::digests`) and the ring alone, so that both sides of an exchange, and a peer
//! answering `AeSpans` and `AeSpanKeys`, compute the same thing.
//!
//! A *span* is an arc of the ring, positions `lo..=hi` (never wrapping), inside one fragment
//! ([`Ring::fragment_ends`]): every key of a span has the same preference list, under the
//! current members and, during a transfer, the previous ones. So which keys two nodes both hold
//! in a span depends only on the keys' replica count, their class: a span's summary is the
//! tables' summary over the classes whose home replicas include both nodes (and, during a
//! transfer, are the same under both member lists: keys in transit are the transfer's
//! business, as in `digest`).
//!
//! The key lists are exact: each key is checked against its own bucket's homes. A summary
//! that counts a key its list then leaves out (a bucket whose replica count changes with the
//! transfer under way) only costs a comparison, never a repair.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use ringkv_core::hash::Position;
use ringkv_core::ring::PreferenceList;
use ringkv_core::{NodeId, Ring};

use super::digest::shared_range;
use crate::storage::digests::{Classes, Summary, for_each_entry, summarize};
use crate::storage::{DataKey, Store, StoreError};

/// An arc of the ring: positions `lo..=hi`.
pub type Span = (Position, Position);

/// Keys with the digests of their states: `(bucket, key, state digest)`, sorted.
pub type KeyList = Vec<(String, Bytes, u64)>;

/// The fragments of `ring` in which `me` and `peer` share some class, as spans (the fragment
/// that wraps around is two), in ring order.
pub fn shared_fragments(ring: &Ring, me: NodeId, peer: NodeId) -> Vec<Span> {
    shared_by_peer(ring, me).remove(&peer).unwrap_or_default()
}

/// For every other node, the fragments of `ring` in which it and `me` share some class, as in
/// [`shared_fragments`]: one walk of the ring for all peers.
pub fn shared_by_peer(ring: &Ring, me: NodeId) -> BTreeMap<NodeId, Vec<Span>> {
    let mut shared: BTreeMap<NodeId, Vec<Span>> = BTreeMap::new();
    let classes = Classes::of(&ring.config().buckets).all();
    for span in fragments(ring) {
        let mut peers: Vec<NodeId> = Vec::new();
        for &n in &classes {
            let now = homes(Some(ring.preference_list_at(span.0)), n);
            if !now.contains(&me) || !stays(ring, span.0, n, &now) {
                continue;
            }
            peers.extend(now.into_iter().filter(|id| *id != me));
        }
        peers.sort_unstable();
        peers.dedup();
        for peer in peers {
            shared.entry(peer).or_default().push(span);
        }
    }
    shared
}

/// Every fragment of `ring` as spans, in ring order (the one that wraps around is two).
fn fragments(ring: &Ring) -> Vec<Span> {
    let ends = ring.fragment_ends();
    let (Some(&first), Some(&last)) = (ends.first(), ends.last()) else {
        return Vec::new();
    };
    let mut spans = vec![(0, first)];
    spans.extend(ends.windows(2).map(|w| (w[0] + 1, w[1])));
    if last < Position::MAX {
        spans.push((last + 1, Position::MAX));
    }
    spans
}

/// The first `n` members of `list`, sorted by id.
fn homes(list: Option<PreferenceList<'_>>, n: u8) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = list
        .map(|l| l.take(usize::from(n)).map(|m| m.id).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Whether the homes `now` of class `n` at `position` are those of the previous members too
/// (always, without a transfer).
fn stays(ring: &Ring, position: Position, n: u8, now: &[NodeId]) -> bool {
    ring.transition().is_none() || homes(ring.previous_preference_list_at(position), n) == now
}

/// Whether the spans are in ring order without overlaps and each lies inside one fragment
/// of `ring` (as a peer's must).
pub fn check_spans(ring: &Ring, spans: &[Span]) -> Result<(), String> {
    let ends = ring.fragment_ends();
    // Fragment index of a position: the wrapping fragment counts as two, 0 and `ends.len()`.
    let index = |p: Position| ends.partition_point(|e| *e < p);
    let mut previous: Option<Position> = None;
    for &(lo, hi) in spans {
        if lo > hi {
            return Err(format!("span {lo:#x}..={hi:#x} is empty"));
        }
        if previous.is_some_and(|p| lo <= p) {
            return Err(format!(
                "span {lo:#x}..={hi:#x} overlaps or precedes the one before it"
            ));
        }
        if index(lo) != index(hi) {
            return Err(format!(
                "span {lo:#x}..={hi:#x} crosses a fragment of the ring"
            ));
        }
        previous = Some(hi);
    }
    Ok(())
}

/// The classes whose keys at `position` both `me` and `peer` are home replicas of, under the
/// current members and unchanged from the previous ones.
fn shared_classes(
    ring: &Ring,
    classes: &[u8],
    me: NodeId,
    peer: NodeId,
    position: Position,
) -> Vec<u8> {
    classes
        .iter()
        .copied()
        .filter(|&n| {
            let now = homes(Some(ring.preference_list_at(position)), n);
            now.contains(&me) && now.contains(&peer) && stays(ring, position, n, &now)
        })
        .collect()
}

/// The summary of each span over the keys this node stores there that `peer` also holds.
pub fn summaries(
    store: &Arc<dyn Store>,
    ring: &Ring,
    me: NodeId,
    peer: NodeId,
    spans: &[Span],
) -> Result<Vec<Summary>, StoreError> {
    let classes = Classes::of(&ring.config().buckets).all();
    spans
        .iter()
        .map(|&(lo, hi)| {
            let shared = shared_classes(ring, &classes, me, peer, lo);
            summarize(store.as_ref(), lo, hi, &shared)
        })
        .collect()
}

/// `(bucket, key, state digest)` of every key in the first spans of `spans` this node stores
/// of which both it and `peer` are home replicas (see `digest::shared_range`), sorted, with
/// how many spans they cover: at least one, and no more once the keys listed pass
/// `max_bytes`.
pub fn keys(
    store: &Arc<dyn Store>,
    ring: &Ring,
    me: NodeId,
    peer: NodeId,
    spans: &[Span],
    max_bytes: usize,
) -> Result<(KeyList, usize), StoreError> {
    let mut out = Vec::new();
    let (mut bytes, mut listed) = (0, 0);
    for &(lo, hi) in spans {
        if listed > 0 && bytes >= max_bytes {
            break;
        }
        for_each_entry(store.as_ref(), lo, hi, |entry| {
            let key = DataKey {
                bucket: entry.bucket,
                key: entry.key,
            };
            if shared_range(ring, me, peer, &key).is_some() {
                bytes += key.bucket.len() + key.key.len() + 12;
                out.push((key.bucket, Bytes::from(key.key), entry.digest));
            }
            Ok(())
        })?;
        listed += 1;
    }
    out.sort();
    out.dedup();
    Ok((out, listed))
}

/// `span` cut into at most `parts` spans of about equal width.
pub fn split(span: Span, parts: u64) -> Vec<Span> {
    let (lo, hi) = span;
    let width = u128::from(hi - lo) + 1;
    let parts = u128::from(parts.max(1)).min(width);
    let step = width / parts;
    (0..parts)
        .map(|i| {
            let start = u128::from(lo) + i * step;
            let end = if i + 1 == parts {
                u128::from(hi)
            } else {
                start + step - 1
            };
            // Both lie within lo..=hi, so they fit.
            (start as u64, end as u64)
        })
        .collect()
}

#[cfg(test)]
mod tests;
