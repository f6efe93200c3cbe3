//! The figures of one anti-entropy comparison between two replicas holding the same keys, some
//! of them different, by spans over the digest index against the whole-store scan that came
//! before it (`digest::tree` and `digest::keys`, which peers of protocol 11 still ask for).
//!
//! Ignored in the test run (it loads two RocksDB stores); run it with
//! `RINGKV_AE_KEYS=1000000 cargo test --workspace --lib ae_exchange_figures -- --ignored
//! --nocapture`. Both sides run in this process one after the other, so a time is what the
//! two nodes compute together, without the network's round trips; bytes are the encoded
//! questions and answers one node sends the other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use ringkv::transport::{Request, Response};
use ringkv_core::{NodeId, Ring, SiblingSet, VersionVector};

use super::compare::{Side, compare};
use super::sides::{Local, encoded_len};
use super::spans::{self, KeyList, Span};
use super::test_ring;
use super::{compare::Comparison, digest};
use crate::error::Result;
use crate::storage::digests::{Classes, Summary, settle_classes};
use crate::storage::{Record, RocksStore, Store};

/// The peer's side, computed here from its store, counting what would cross the wire.
struct Far {
    local: Local,
    bytes: AtomicU64,
}

impl Far {
    fn count(&self, request: &Request, response: &Response) {
        let bytes = encoded_len(request) + encoded_len(response);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Side for Far {
    async fn summaries(&self, asked: &[Span]) -> Result<Vec<Summary>> {
        let got = self.local.summaries(asked).await?;
        self.count(
            &Request::AeSpans {
                peer: self.local.peer,
                spans: asked.to_vec(),
            },
            &Response::AeSpans {
                summaries: got.iter().map(|s| (s.hash, s.keys)).collect(),
            },
        );
        Ok(got)
    }

    async fn keys(&self, asked: &[Span]) -> Result<(KeyList, usize)> {
        let (keys, listed) = self.local.keys(asked).await?;
        let response = Response::AeSpanKeys {
            keys,
            listed: listed as u32,
        };
        self.count(
            &Request::AeSpanKeys {
                peer: self.local.peer,
                spans: asked.to_vec(),
            },
            &response,
        );
        match response {
            Response::AeSpanKeys { keys, .. } => Ok((keys, listed)),
            _ => unreachable!("built above"),
        }
    }
}

fn record(node: u64, context: &VersionVector, value: &str) -> Record {
    let mut state = SiblingSet::new();
    state
        .stamp(
            NodeId(node).into(),
            context,
            Some(Bytes::copy_from_slice(value.as_bytes())),
            1,
            None,
        )
        .expect("stamp");
    Record::new(state)
}

/// The whole-store comparison of protocol 11: both trees, then the keys of differing ranges.
fn legacy(a: &Arc<dyn Store>, b: &Arc<dyn Store>, ring: &Ring) -> (usize, u64) {
    let (me, peer) = (NodeId(1), NodeId(2));
    let ours = digest::tree(a, ring, me, peer).expect("tree");
    let theirs = digest::tree(b, ring, peer, me).expect("tree");
    let mut bytes = encoded_len(&Request::AeTree { peer: me })
        + encoded_len(&Response::AeTree {
            ranges: theirs.clone(),
        });
    let differing: Vec<u64> = ours
        .iter()
        .zip(&theirs)
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.0)
        .collect();
    assert_eq!(ours.len(), theirs.len(), "same ranges on both sides");
    if differing.is_empty() {
        return (0, bytes);
    }
    let mine = digest::keys(a, ring, me, peer, &differing).expect("keys");
    let other = digest::keys(b, ring, peer, me, &differing).expect("keys");
    bytes += encoded_len(&Request::AeKeys {
        peer: me,
        ranges: differing,
    }) + encoded_len(&Response::AeKeys {
        keys: other.clone(),
    });
    let stale = mine.iter().zip(&other).filter(|(x, y)| x != y).count();
    (stale, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads two stores of a million keys: run by hand for the figures"]
async fn ae_exchange_figures() {
    let total: usize = std::env::var("RINGKV_AE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let ring = Arc::new(test_ring::ring(&[1, 2, 3], None));
    let classes = Classes::of(&ring.config().buckets);
    let dirs = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a: Arc<dyn Store> = Arc::new(RocksStore::open(dirs.0.path()).expect("open"));
    let b: Arc<dyn Store> = Arc::new(RocksStore::open(dirs.1.path()).expect("open"));
    let started = Instant::now();
    for store in [&a, &b] {
        settle_classes(store.as_ref(), classes.clone()).expect("classes");
        for i in 0..total {
            let key = format!("session-{i:08}");
            let value = format!("{{\"user\":{i},\"cart\":[1,2,3]}}");
            store
                .put(
                    "default",
                    key.as_bytes(),
                    &record(1, &VersionVector::new(), &value),
                )
                .expect("put");
        }
        store.flush().expect("flush");
        store.compact().expect("compact");
    }
    println!(
        "loaded {total} keys into each of two stores in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    println!("| keys differing | method | time (ms) | bytes | differences found |");
    println!("|---:|---|---:|---:|---:|");
    let mut changed = 0usize;
    for differing in [0usize, 100, 10_000] {
        // Store b gets a newer version of `differing` keys, each scenario adding to the last
        // (a stride coprime with the total picks distinct keys).
        while changed < differing {
            let key = format!("session-{:08}", (changed * 7919) % total);
            let old = b
                .get("default", key.as_bytes())
                .expect("get")
                .expect("held");
            b.put(
                "default",
                key.as_bytes(),
                &record(2, old.state.version_vector(), "newer"),
            )
            .expect("put");
            changed += 1;
        }
        let ours = Local {
            store: a.clone(),
            ring: ring.clone(),
            me: NodeId(1),
            peer: NodeId(2),
        };
        let theirs = Far {
            local: Local {
                store: b.clone(),
                ring: ring.clone(),
                me: NodeId(2),
                peer: NodeId(1),
            },
            bytes: AtomicU64::new(0),
        };
        let clock = Instant::now();
        let fragments = spans::shared_fragments(&ring, NodeId(1), NodeId(2));
        let found: Comparison = compare(&ours, &theirs, fragments, usize::MAX)
            .await
            .expect("compare");
        let spans_ms = clock.elapsed().as_secs_f64() * 1000.0;
        let spans_bytes = theirs.bytes.load(Ordering::Relaxed);
        assert_eq!(
            found.differing().len(),
            differing,
            "spans find every difference"
        );
        println!(
            "| {differing} | spans (protocol 12) | {spans_ms:.1} | {spans_bytes} | {} |",
            found.differing().len()
        );
        let clock = Instant::now();
        let (a2, b2, r2) = (a.clone(), b.clone(), ring.clone());
        let (stale, bytes) = tokio::task::spawn_blocking(move || legacy(&a2, &b2, &r2))
            .await
            .expect("legacy");
        let legacy_ms = clock.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(stale, differing, "the scan finds them too");
        println!("| {differing} | full scan (protocol 11) | {legacy_ms:.1} | {bytes} | {stale} |");
    }
}
