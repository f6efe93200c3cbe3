//! Finding what two replicas hold differently, by descending the ring's spans: the first
//! level is the fragments both nodes share; a span whose summaries differ is cut into
//! [`FANOUT`] spans and compared again, until a differing span holds at most [`LEAF_KEYS`]
//! keys on either side, whose key lists are then compared. So an exchange between equal
//! replicas costs one summary per shared fragment, and each difference about
//! `FANOUT` summaries per level it descends plus one short key list, whatever the stores hold.

use std::collections::BTreeMap;

use bytes::Bytes;
use ringkv_core::wire::MAX_AE_SPANS;

use super::spans::{KeyList, Span, split};
use crate::error::Result;
use crate::storage::digests::Summary;

/// How many spans a differing span is cut into.
pub const FANOUT: u64 = 32;
/// A differing span with at most this many keys on each side has its keys listed.
pub const LEAF_KEYS: u64 = 64;
/// Levels below the fragments before keys are listed anyway (32^12 covers any fragment).
const MAX_LEVELS: usize = 12;
/// At most this many spans are compared in one exchange (whatever a peer answers): the spans
/// a level would add beyond it wait for the next exchange.
pub const MAX_SPANS_PER_EXCHANGE: usize = 65_536;

/// The keys of a side: `(bucket, key)` to the digest of its state.
pub type KeyDigests = BTreeMap<(String, Bytes), u64>;

/// One side of a comparison: this node's store, or a peer's over the network.
pub(crate) trait Side {
    /// The summary of each span, in order: exactly one per span.
    async fn summaries(&self, spans: &[Span]) -> Result<Vec<Summary>>;
    /// The keys of the first spans (at least one) with their state digests, and how many
    /// spans they cover.
    async fn keys(&self, spans: &[Span]) -> Result<(KeyList, usize)>;
}

/// What a comparison found.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Our keys in the spans whose keys were listed.
    pub ours: KeyDigests,
    /// The peer's keys in those spans.
    pub theirs: KeyDigests,
    /// The fragments whose summaries differed.
    pub fragments_differing: usize,
    /// Spans whose summaries were compared, over every level.
    pub spans_compared: usize,
}

impl Comparison {
    /// The keys that differ (in state, or held by one side only), sorted.
    pub fn differing(&self) -> Vec<(String, Bytes)> {
        let mut keys: Vec<(String, Bytes)> = self
            .ours
            .iter()
            .filter(|(k, d)| self.theirs.get(*k) != Some(d))
            .map(|(k, _)| k.clone())
            .chain(
                self.theirs
                    .keys()
                    .filter(|k| !self.ours.contains_key(*k))
                    .cloned(),
            )
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// Compares `ours` and `theirs` over `fragments` (in ring order), until it has found
/// `enough` differing keys: see the module docs.
pub(crate) async fn compare(
    ours: &impl Side,
    theirs: &impl Side,
    fragments: Vec<Span>,
    enough: usize,
) -> Result<Comparison> {
    let mut found = Comparison::default();
    let mut level = fragments;
    level.truncate(MAX_SPANS_PER_EXCHANGE);
    let mut leaves: Vec<Span> = Vec::new();
    for depth in 0..=MAX_LEVELS {
        if level.is_empty() {
            break;
        }
        let (a, b) = (
            summaries(ours, &level).await?,
            summaries(theirs, &level).await?,
        );
        found.spans_compared += level.len();
        let room = MAX_SPANS_PER_EXCHANGE.saturating_sub(found.spans_compared);
        let mut next = Vec::new();
        for ((span, a), b) in level.iter().zip(&a).zip(&b) {
            if a.hash == b.hash {
                continue;
            }
            if depth == 0 {
                found.fragments_differing += 1;
            }
            let small = a.keys.max(b.keys) <= LEAF_KEYS;
            if small || depth == MAX_LEVELS || span.0 == span.1 {
                leaves.push(*span);
            } else if next.len() + FANOUT as usize <= room {
                next.extend(split(*span, FANOUT));
            }
            // Else: past the exchange's budget, the span waits for the next exchange.
        }
        level = next;
    }
    leaves.sort_unstable();
    let mut rest: &[Span] = &leaves;
    while !rest.is_empty() && found.differing().len() < enough {
        let chunk = &rest[..rest.len().min(MAX_AE_SPANS)];
        let (b, listed) = theirs.keys(chunk).await?;
        let listed = listed.clamp(1, chunk.len());
        let (a, _) = ours.keys(&chunk[..listed]).await?;
        found
            .ours
            .extend(a.into_iter().map(|(b, k, d)| ((b, k), d)));
        found
            .theirs
            .extend(b.into_iter().map(|(b, k, d)| ((b, k), d)));
        rest = &rest[listed..];
    }
    Ok(found)
}

/// The summaries of `spans` on `side`, asked at most [`MAX_AE_SPANS`] at a time.
async fn summaries(side: &impl Side, spans: &[Span]) -> Result<Vec<Summary>> {
    let mut out = Vec::with_capacity(spans.len());
    for chunk in spans.chunks(MAX_AE_SPANS) {
        out.extend(side.summaries(chunk).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::workers::antientropy::spans::KeyList;

    /// A side whose every summary differs and claims more keys than any store holds: a
    /// broken or hostile peer.
    struct Liar(AtomicU64);

    impl Side for Liar {
        async fn summaries(&self, spans: &[Span]) -> Result<Vec<Summary>> {
            Ok(spans
                .iter()
                .map(|_| Summary {
                    hash: self.0.fetch_add(1, Ordering::Relaxed),
                    keys: u64::MAX,
                })
                .collect())
        }

        async fn keys(&self, spans: &[Span]) -> Result<(KeyList, usize)> {
            // Claims to cover more spans than it was asked: clamped.
            Ok((Vec::new(), spans.len() + 5))
        }
    }

    struct Empty;

    impl Side for Empty {
        async fn summaries(&self, spans: &[Span]) -> Result<Vec<Summary>> {
            Ok(vec![Summary::default(); spans.len()])
        }

        async fn keys(&self, spans: &[Span]) -> Result<(KeyList, usize)> {
            Ok((Vec::new(), spans.len()))
        }
    }

    #[tokio::test]
    async fn a_peer_cannot_make_an_exchange_unbounded() {
        let fragments: Vec<Span> = (0..256u64)
            .map(|i| (i << 40, (i << 40) + (1 << 39)))
            .collect();
        let found = compare(&Empty, &Liar(AtomicU64::new(1)), fragments, usize::MAX)
            .await
            .expect("compare");
        assert!(
            found.spans_compared <= MAX_SPANS_PER_EXCHANGE,
            "{}",
            found.spans_compared
        );
        assert_eq!(found.fragments_differing, 256);
        assert!(found.differing().is_empty());
    }
}
