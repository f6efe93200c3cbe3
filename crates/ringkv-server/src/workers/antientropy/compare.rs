//! Finding what two replicas hold differently, by descending the ring's spans: the first
//! level is the fragments both nodes share; a span whose summaries differ is cut into
//! [`FANOUT`] spans and compared again, until a differing span holds at most [`LEAF_KEYS`]
//! keys on either side, whose key lists are then compared. So an exchange between equal
//! replicas costs one summary per shared fragment, and each difference about
//! `FANOUT` summaries per level it descends plus one short key list, whatever the stores hold.

use std::collections::BTreeMap;

use bytes::Bytes;
use ringkv_core::wire::MAX_AE_SPANS;

use super::spans::{Span, split};
use crate::error::Result;
use crate::storage::digests::Summary;

/// How many spans a differing span is cut into.
pub const FANOUT: u64 = 32;
/// A differing span with at most this many keys on each side has its keys listed.
pub const LEAF_KEYS: u64 = 64;
/// Levels below the fragments before keys are listed anyway (32^12 covers any fragment).
const MAX_LEVELS: usize = 12;

/// The keys of a side: `(bucket, key)` to the digest of its state.
pub type KeyDigests = BTreeMap<(String, Bytes), u64>;

/// One side of a comparison: this node's store, or a peer's over the network.
pub(crate) trait Side {
    /// The summary of each span, in order: exactly one per span.
    async fn summaries(&self, spans: &[Span]) -> Result<Vec<Summary>>;
    /// The keys of the spans with their state digests.
    async fn keys(&self, spans: &[Span]) -> Result<Vec<(String, Bytes, u64)>>;
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

/// Compares `ours` and `theirs` over `fragments`: see the module docs.
pub(crate) async fn compare(
    ours: &impl Side,
    theirs: &impl Side,
    fragments: Vec<Span>,
) -> Result<Comparison> {
    let mut found = Comparison::default();
    let mut level = fragments;
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
            } else {
                next.extend(split(*span, FANOUT));
            }
        }
        level = next;
    }
    leaves.extend(level);
    for chunk in leaves.chunks(MAX_AE_SPANS) {
        let (a, b) = (ours.keys(chunk).await?, theirs.keys(chunk).await?);
        found
            .ours
            .extend(a.into_iter().map(|(b, k, d)| ((b, k), d)));
        found
            .theirs
            .extend(b.into_iter().map(|(b, k, d)| ((b, k), d)));
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
