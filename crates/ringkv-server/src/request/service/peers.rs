//! Requests only peers send: anti-entropy's trees and key digests, and purging's checks
//! and deletes (see `workers::antientropy` and `workers::purge`).

use ringkv_core::wire::{
    MAX_AE_KEY_BYTES, MAX_AE_SPANS, MAX_PURGE_KEYS, PurgeKey, Request, Response, WireError,
};
use ringkv_core::{Ring, RingEpoch};

use super::Service;
use crate::request::replica::store_error;
use crate::storage::digests::Classes;
use crate::workers::antientropy::{digest, spans};

impl Service {
    /// Handles a peer's `AeSpans`, `AeSpanKeys`, `AeTree`, `AeKeys`, `PurgeCheck` or `Purge`.
    pub(super) fn peer(
        &self,
        client_epoch: RingEpoch,
        request: Request,
    ) -> Result<Response, WireError> {
        match request {
            Request::AeSpans { peer, spans } => {
                self.check_same_ring(client_epoch)?;
                let ring = self.view.borrow().ring.clone();
                self.check_spans(&ring, &spans)?;
                let summaries = spans::summaries(&self.store, &ring, self.node, peer, &spans)
                    .map_err(store_error)?
                    .into_iter()
                    .map(|s| (s.hash, s.keys))
                    .collect();
                Ok(Response::AeSpans { summaries })
            }
            Request::AeSpanKeys { peer, spans } => {
                self.check_same_ring(client_epoch)?;
                let ring = self.view.borrow().ring.clone();
                self.check_spans(&ring, &spans)?;
                let (keys, listed) = spans::keys(
                    &self.store,
                    &ring,
                    self.node,
                    peer,
                    &spans,
                    MAX_AE_KEY_BYTES,
                )
                .map_err(store_error)?;
                let listed = u32::try_from(listed).unwrap_or(u32::MAX);
                Ok(Response::AeSpanKeys { keys, listed })
            }
            // What peers older than protocol 12 ask: answered by scanning the whole store.
            Request::AeTree { peer } => {
                self.check_same_ring(client_epoch)?;
                // The ring is copied out: a scan must not hold the view's lock.
                let ring = self.view.borrow().ring.clone();
                let ranges =
                    digest::tree(&self.store, &ring, self.node, peer).map_err(store_error)?;
                Ok(Response::AeTree { ranges })
            }
            Request::AeKeys { peer, mut ranges } => {
                self.check_same_ring(client_epoch)?;
                ranges.sort_unstable();
                let ring = self.view.borrow().ring.clone();
                let keys = digest::keys(&self.store, &ring, self.node, peer, &ranges)
                    .map_err(store_error)?;
                Ok(Response::AeKeys { keys })
            }
            Request::PurgeCheck { keys } => {
                self.check_same_ring(client_epoch)?;
                self.check_purge_keys(&keys)?;
                let held = keys
                    .iter()
                    .map(|k| self.replica.purge_check(k))
                    .collect::<Result<_, _>>()?;
                Ok(Response::PurgeChecked { held })
            }
            Request::Purge { keys } => {
                self.check_same_ring(client_epoch)?;
                self.check_purge_keys(&keys)?;
                let purged = keys
                    .iter()
                    .map(|k| self.replica.purge(k, client_epoch).map_err(store_error))
                    .collect::<Result<_, _>>()?;
                Ok(Response::Purged { purged })
            }
            other => Err(WireError::InvalidRequest {
                reason: format!("{} is not a peer's request", other.kind()),
            }),
        }
    }
}

impl Service {
    fn check_purge_keys(&self, keys: &[PurgeKey]) -> Result<(), WireError> {
        if keys.len() > MAX_PURGE_KEYS {
            return Err(WireError::InvalidRequest {
                reason: format!(
                    "a purge names at most {MAX_PURGE_KEYS} keys, not {}",
                    keys.len()
                ),
            });
        }
        for k in keys {
            self.check_key(&k.bucket, &k.key)?;
        }
        Ok(())
    }
}

impl Service {
    /// A peer's spans: at most [`MAX_AE_SPANS`], in ring order, each inside one fragment of
    /// the ring; and this node's index settled under the ring's replica counts (it is refiled
    /// after a change of the bucket table, and on a store's first start).
    fn check_spans(&self, ring: &Ring, asked: &[spans::Span]) -> Result<(), WireError> {
        if asked.len() > MAX_AE_SPANS {
            return Err(WireError::InvalidRequest {
                reason: format!("{} spans, at most {MAX_AE_SPANS}", asked.len()),
            });
        }
        spans::check_spans(ring, asked).map_err(|reason| WireError::InvalidRequest { reason })?;
        if !self
            .store
            .digests()
            .is_settled(&Classes::of(&ring.config().buckets))
        {
            return Err(WireError::NotYet {
                reason: "this node's anti-entropy index is being refiled".into(),
            });
        }
        Ok(())
    }
}
