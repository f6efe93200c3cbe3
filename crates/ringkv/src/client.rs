//! The public client: [`Client`], [`ClientBuilder`], [`Bucket`] and [`ClientStats`].
//!
//! A thin handle: every call turns its arguments into bytes and options and hands them, with
//! the client's shared state (`inner`), to the `coordinator`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use ringkv_core::{Context, DEFAULT_BUCKET, NodeId, Ring, RingEpoch};

use crate::coordinator;
use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::metrics::Latency;
use crate::options::{ClientConfig, ContextKey, ReadOptions, WriteOptions};
use crate::ring_cache;
use crate::value::{Value, WriteReceipt};

/// A ringkv client: routes each key to its replicas and coordinates the quorum itself.
///
/// Cheap to clone (an `Arc`): share one per process across tasks. It keeps one multiplexed
/// connection per node and refreshes the ring in the background until the last clone is
/// dropped.
///
/// ```no_run
/// # async fn demo() -> ringkv::Result<()> {
/// let client = ringkv::Client::builder().seeds(["127.0.0.1:7400"]).build().await?;
/// client.put("greeting", "hello", None).await?;
/// let read = client.get("greeting").await?;
/// assert_eq!(read.value().map(|v| &v[..]), Some(&b"hello"[..]));
/// client.put("greeting", "hello again", Some(read.context())).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Counters of what a client has done, for tests, dashboards and curiosity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Replicas sent a merged state because their copy was stale.
    pub read_repairs: u64,
    /// Reads that asked every target, not only `R`, so that read repair could compare them
    /// all: the sampled ones (`ClientConfig::read_repair_chance`), those whose answers
    /// disagreed, and those that must (`ReadOptions::every_replica`).
    pub full_reads: u64,
    /// Requests reads sent to one more target because those asked were late
    /// (`ClientConfig::speculative_retry`).
    pub speculative_reads: u64,
    /// Keys `get_many` read in a batch (one frame per node) and did not have to read again
    /// on their own.
    pub batched_reads: u64,
    /// Times the ring was (re)fetched.
    pub ring_refreshes: u64,
    /// Reads that returned more siblings than `ClientConfig::sibling_warning`.
    pub sibling_warnings: u64,
    /// Nodes this client currently skips because requests to them failed.
    pub nodes_marked_down: usize,
    /// Reads (`get`) made, successful or not.
    pub gets: u64,
    /// Writes (`put`, `delete`) made, successful or not.
    pub writes: u64,
    /// Reads and writes that failed (after their retries).
    pub errors: u64,
    /// Attempts repeated within a call's deadline after a retryable failure.
    pub retries: u64,
    /// Writes a fallback acknowledged in place of a home replica (a sloppy quorum): each one
    /// leaves a hint that handoff must still deliver.
    pub sloppy_writes: u64,
    /// Fallback acknowledgements in all (a write may have several).
    pub fallback_acks: u64,
    /// Copies a write's background part sent to a spare (with a hint) after the call had
    /// returned, because a target failed: a write keeps going until `n` nodes hold it.
    pub background_spares: u64,
    /// Copies a write's background part could not place anywhere (no spare left, or the
    /// deadline passed): the write has fewer than `n` copies until anti-entropy or read
    /// repair makes up for it.
    pub copies_short: u64,
    /// Latency percentiles of successful reads.
    pub get_latency: Latency,
    /// Latency percentiles of successful writes.
    pub write_latency: Latency,
}

/// Builds a [`Client`]: `Client::builder().seeds([...]).build().await`.
#[derive(Debug, Default)]
pub struct ClientBuilder {
    seeds: Vec<String>,
    config: ClientConfig,
}

impl ClientBuilder {
    /// Addresses (`host:port`) of any nodes of the cluster; the client learns the rest.
    pub fn seeds<I, S>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.seeds.extend(seeds.into_iter().map(Into::into));
        self
    }

    /// Everything else a client can be configured with (quorums, timeouts, TLS, a
    /// credential); replaces what `r`, `w` and `timeout` set before it.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// Default read quorum for this client's calls.
    pub fn r(mut self, r: u8) -> Self {
        self.config.r = Some(r);
        self
    }

    /// Default write quorum for this client's calls.
    pub fn w(mut self, w: u8) -> Self {
        self.config.w = Some(w);
        self
    }

    /// Default deadline of each call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Fetches the ring from the seeds and returns a ready client.
    pub async fn build(self) -> Result<Client> {
        if self.seeds.is_empty() {
            return Err(Error::InvalidArgument(
                "at least one seed address is required".into(),
            ));
        }
        let quorums = [
            ("r", self.config.r),
            ("w", self.config.w),
            ("pr", self.config.pr),
            ("pw", self.config.pw),
        ];
        for (name, value) in quorums {
            if value == Some(0) {
                return Err(Error::InvalidArgument(format!("{name} must be at least 1")));
            }
        }
        let inner = Arc::new(Inner::new(self.seeds, self.config));
        inner
            .ring
            .refresh(
                &inner.pool,
                inner.config.connect_timeout,
                RingEpoch::default(),
            )
            .await?;
        tokio::spawn(ring_cache::refresh_periodically(Arc::downgrade(&inner)));
        Ok(Client { inner })
    }
}

impl Client {
    /// Starts configuring a client; [`ClientBuilder::build`] connects it.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A handle on a named bucket; the client's own methods use the default bucket.
    pub fn bucket(&self, name: impl Into<String>) -> Bucket {
        Bucket {
            client: self.clone(),
            name: Arc::from(name.into()),
        }
    }

    fn default_bucket(&self) -> Bucket {
        self.bucket(DEFAULT_BUCKET)
    }

    /// Reads `key` from the default bucket with the client's default quorum.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Value> {
        self.default_bucket().get(key).await
    }

    /// As [`Client::get`], with this call's own quorum or deadline.
    pub async fn get_with(&self, key: impl AsRef<[u8]>, opts: &ReadOptions) -> Result<Value> {
        self.default_bucket().get_with(key, opts).await
    }

    /// Reads many keys of the default bucket at once: one frame per node for all of them,
    /// not one per key. One result per key, in order; a key that fails does not fail the
    /// others. Each result is what [`Client::get`] would have returned.
    pub async fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<Result<Value>> {
        self.default_bucket().get_many(keys).await
    }

    /// As [`Client::get_many`], with the reads' own quorum or deadline (one for the whole
    /// call).
    pub async fn get_many_with<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        opts: &ReadOptions,
    ) -> Vec<Result<Value>> {
        self.default_bucket().get_many_with(keys, opts).await
    }

    /// Writes `value` to `key` in the default bucket. `context` is what the writer read
    /// (`None` for a key it believes new): the write replaces exactly that.
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
    ) -> Result<WriteReceipt> {
        self.default_bucket().put(key, value, context).await
    }

    /// As [`Client::put`], with this call's own quorum, durability, deadline or overwrite.
    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
        opts: &WriteOptions,
    ) -> Result<WriteReceipt> {
        self.default_bucket()
            .put_with(key, value, context, opts)
            .await
    }

    /// Deletes `key` from the default bucket. With a context, only what that read saw is
    /// deleted (a concurrent write survives), and the delete is accepted however many home
    /// replicas are down (sloppy quorum). Without one, the client first reads `r` *home*
    /// replicas strictly and deletes what they hold, so that the delete covers every write a
    /// write quorum acknowledged; it fails with [`Error::Unavailable`](crate::Error) when
    /// fewer than `r` home replicas are up (a delete stamped by a fallback that never saw
    /// the key would delete nothing, and the value would read back once the homes return).
    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
    ) -> Result<WriteReceipt> {
        self.default_bucket().delete(key, context).await
    }

    /// As [`Client::delete`], with this call's own quorum, durability or deadline.
    pub async fn delete_with(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
        opts: &WriteOptions,
    ) -> Result<WriteReceipt> {
        self.default_bucket().delete_with(key, context, opts).await
    }

    /// The ring this client currently routes by.
    pub fn ring(&self) -> Arc<Ring> {
        self.inner.ring.current().ring.clone()
    }

    /// The members the servers' gossip reported alive with the last ring fetch.
    pub fn alive_nodes(&self) -> Vec<NodeId> {
        let mut alive: Vec<NodeId> = self.inner.ring.current().alive.iter().copied().collect();
        alive.sort_unstable();
        alive
    }

    /// Refetches the ring now.
    pub async fn refresh_ring(&self) -> Result<()> {
        self.inner
            .ring
            .refresh(
                &self.inner.pool,
                self.inner.config.connect_timeout,
                RingEpoch::default(),
            )
            .await
    }

    /// The `context` of a read of `bucket`/`key` as opaque bytes to hand to the application
    /// (a cookie, a form field): sealed for that key with the client's context key if it has
    /// one ([`ClientConfig::context_key`]).
    pub fn context_to_bytes(&self, bucket: &str, key: &[u8], context: &Context) -> Vec<u8> {
        ContextKey::encode(self.inner.config.context_key.as_ref(), bucket, key, context)
    }

    /// Parses bytes made by [`Client::context_to_bytes`] for a write of `bucket`/`key`. With
    /// a context key, bytes that were altered, sealed with another key or for another key, or
    /// not sealed are refused ([`Error::InvalidArgument`]): a forged context could claim
    /// writes it never saw, and a write with it would drop them.
    pub fn context_from_bytes(&self, bucket: &str, key: &[u8], bytes: &[u8]) -> Result<Context> {
        ContextKey::decode(self.inner.config.context_key.as_ref(), bucket, key, bytes)
    }

    /// What this client has done so far (see [`ClientStats`]); cheap enough to poll.
    pub fn stats(&self) -> ClientStats {
        let s = &self.inner.stats;
        ClientStats {
            read_repairs: s.read_repairs.load(Ordering::Relaxed),
            full_reads: s.full_reads.load(Ordering::Relaxed),
            batched_reads: s.batched_reads.load(Ordering::Relaxed),
            speculative_reads: s.speculative_reads.load(Ordering::Relaxed),
            ring_refreshes: self.inner.ring.refresh_count(),
            sibling_warnings: s.sibling_warnings.load(Ordering::Relaxed),
            nodes_marked_down: self.inner.health.down_count(),
            gets: s.gets.load(Ordering::Relaxed),
            writes: s.writes.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            sloppy_writes: s.sloppy_writes.load(Ordering::Relaxed),
            fallback_acks: s.fallback_acks.load(Ordering::Relaxed),
            background_spares: s.background_spares.load(Ordering::Relaxed),
            copies_short: s.copies_short.load(Ordering::Relaxed),
            get_latency: s.get_latency(),
            write_latency: s.write_latency(),
        }
    }

    /// Waits, up to `timeout`, for the work calls left running when they returned: the
    /// copies of a write beyond its `w` acknowledgements, and read repairs. A process about
    /// to exit calls it, or those copies are dropped with it (anti-entropy would restore
    /// them later). Returns whether everything finished in time: the work of calls made
    /// meanwhile counts too. Several flushes may wait at once.
    pub async fn flush(&self, timeout: Duration) -> bool {
        // Polled: the tracker's own `wait` needs it closed, which one flush timing out and
        // reopening it would undo for another still waiting.
        let background = &self.inner.background;
        let deadline = tokio::time::Instant::now() + timeout;
        while !background.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Closes this client's connections now (they also close when the last clone is dropped).
    pub fn close(&self) {
        self.inner.pool.clear();
    }
}

/// The same operations as [`Client`], on a named bucket. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Bucket {
    client: Client,
    name: Arc<str>,
}

impl Bucket {
    /// The bucket's name, as the ring's bucket settings know it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client this bucket handle belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads `key` with the client's default quorum (see [`Client::get`]).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Value> {
        self.get_with(key, &ReadOptions::default()).await
    }

    /// Reads `key` with this call's own options.
    pub async fn get_with(&self, key: impl AsRef<[u8]>, opts: &ReadOptions) -> Result<Value> {
        let key = Bytes::copy_from_slice(key.as_ref());
        coordinator::get(&self.client.inner, &self.name, key, opts).await
    }

    /// Reads many keys at once (see [`Client::get_many`]).
    pub async fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<Result<Value>> {
        self.get_many_with(keys, &ReadOptions::default()).await
    }

    /// Reads many keys at once with the reads' own options (see [`Client::get_many`]).
    pub async fn get_many_with<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        opts: &ReadOptions,
    ) -> Vec<Result<Value>> {
        let keys = keys
            .into_iter()
            .map(|k| Bytes::copy_from_slice(k.as_ref()))
            .collect();
        coordinator::get_many(&self.client.inner, &self.name, keys, opts).await
    }

    /// Writes `value` to `key` (see [`Client::put`] for what `context` means).
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
    ) -> Result<WriteReceipt> {
        self.put_with(key, value, context, &WriteOptions::default())
            .await
    }

    /// Writes `value` to `key` with this call's own options.
    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
        opts: &WriteOptions,
    ) -> Result<WriteReceipt> {
        let key = Bytes::copy_from_slice(key.as_ref());
        coordinator::write(
            &self.client.inner,
            &self.name,
            key,
            Some(value.into()),
            context,
            opts,
        )
        .await
    }

    /// Deletes `key` (see [`Client::delete`] for what `context` means).
    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
    ) -> Result<WriteReceipt> {
        self.delete_with(key, context, &WriteOptions::default())
            .await
    }

    /// Deletes `key` with this call's own options.
    pub async fn delete_with(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
        opts: &WriteOptions,
    ) -> Result<WriteReceipt> {
        let key = Bytes::copy_from_slice(key.as_ref());
        coordinator::write(&self.client.inner, &self.name, key, None, context, opts).await
    }
}
