//! The two sides of an exchange's comparison ([`compare::Side`](super::compare::Side)): this
//! node's store, and the peer asked over the network.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ringkv::transport::{Request, Response};
use ringkv_core::{NodeId, Ring};
use serde::Serialize;

use super::Exchange;
use super::compare::Side;
use super::spans::{self, KeyList, Span};
use crate::error::{Error, Result};
use crate::storage::Store;
use crate::storage::digests::Summary;

/// This node's side: its store, read on the blocking pool.
pub struct Local {
    pub store: Arc<dyn Store>,
    pub ring: Arc<Ring>,
    pub me: NodeId,
    pub peer: NodeId,
}

impl Side for Local {
    async fn summaries(&self, asked: &[Span]) -> Result<Vec<Summary>> {
        let (store, ring, me, peer) = (self.store.clone(), self.ring.clone(), self.me, self.peer);
        let asked = asked.to_vec();
        Ok(
            tokio::task::spawn_blocking(move || spans::summaries(&store, &ring, me, peer, &asked))
                .await??,
        )
    }

    async fn keys(&self, asked: &[Span]) -> Result<(KeyList, usize)> {
        let (store, ring, me, peer) = (self.store.clone(), self.ring.clone(), self.me, self.peer);
        let asked = asked.to_vec();
        Ok(tokio::task::spawn_blocking(move || {
            spans::keys(&store, &ring, me, peer, &asked, usize::MAX)
        })
        .await??)
    }
}

/// The peer's side, asked with `AeSpans` and `AeSpanKeys`; counts the bytes exchanged.
pub struct Remote<'a> {
    exchange: &'a Exchange<'a>,
    bytes: AtomicU64,
}

impl<'a> Remote<'a> {
    pub fn new(exchange: &'a Exchange<'a>) -> Remote<'a> {
        Remote {
            exchange,
            bytes: AtomicU64::new(0),
        }
    }

    /// The bytes of every question and answer so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    async fn ask(&self, request: Request) -> Result<Response> {
        self.bytes
            .fetch_add(encoded_len(&request), Ordering::Relaxed);
        let response = self.exchange.call(request).await?;
        self.bytes
            .fetch_add(encoded_len(&response), Ordering::Relaxed);
        Ok(response)
    }
}

impl Side for Remote<'_> {
    async fn summaries(&self, asked: &[Span]) -> Result<Vec<Summary>> {
        let request = Request::AeSpans {
            peer: self.exchange.parts.me,
            spans: asked.to_vec(),
        };
        match self.ask(request).await? {
            Response::AeSpans { summaries } if summaries.len() == asked.len() => Ok(summaries
                .into_iter()
                .map(|(hash, keys)| Summary { hash, keys })
                .collect()),
            Response::AeSpans { summaries } => Err(Error::Summaries {
                peer: self.exchange.addr.to_string(),
                got: summaries.len(),
                asked: asked.len(),
            }),
            other => Err(self.exchange.unexpected("AeSpans", &other)),
        }
    }

    async fn keys(&self, asked: &[Span]) -> Result<(KeyList, usize)> {
        let request = Request::AeSpanKeys {
            peer: self.exchange.parts.me,
            spans: asked.to_vec(),
        };
        match self.ask(request).await? {
            Response::AeSpanKeys { keys, listed } => Ok((keys, listed as usize)),
            other => Err(self.exchange.unexpected("AeSpanKeys", &other)),
        }
    }
}

/// The size of `value` in the wire's encoding (CBOR), without the frame's header.
pub fn encoded_len(value: &impl Serialize) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Counting cannot fail; a value that does not encode would not be sent either.
    let _ = ciborium::into_writer(value, &mut count);
    count.0
}
