//! The public client: [`Client`], [`ClientBuilder`] and [`Bucket`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ringkv_core::wire::Request;
use ringkv_core::{Context, DEFAULT_BUCKET, NodeId, Ring, RingEpoch};
use tracing::debug;

use crate::coordinator;
use crate::error::{Error, Result};
use crate::health::Health;
use crate::metrics::{Latency, Stats};
use crate::options::{ClientConfig, ReadOptions, WriteOptions};
use crate::pool::Pool;
use crate::ring_cache::RingCache;
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

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) ring: RingCache,
    pub(crate) pool: Pool,
    pub(crate) health: Health,
    pub(crate) stats: Stats,
    /// The actor this client names its `lww` writes with (a random id, never a node's).
    pub(crate) lww_actor: NodeId,
    pub(crate) lww_counter: AtomicU64,
}

/// Counters of what a client has done, for tests, dashboards and curiosity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Replicas sent a merged state because their copy was stale.
    pub read_repairs: u64,
    /// Times the ring was (re)fetched.
    pub ring_refreshes: u64,
    /// Reads that returned more siblings than `ClientConfig::sibling_warning`.
    pub sibling_warnings: u64,
    /// Nodes this client currently skips because requests to them failed.
    pub nodes_marked_down: usize,
    /// Reads (`get`) and writes (`put`, `delete`) made, and how many of them failed.
    pub gets: u64,
    pub writes: u64,
    pub errors: u64,
    /// Attempts repeated within a call's deadline after a retryable failure.
    pub retries: u64,
    /// Writes a fallback acknowledged in place of a home replica (a sloppy quorum), and the
    /// fallback acknowledgements in all.
    pub sloppy_writes: u64,
    pub fallback_acks: u64,
    /// Latency percentiles of successful reads and writes.
    pub get_latency: Latency,
    pub write_latency: Latency,
}

impl Inner {
    /// Refetches the ring in the background if a response came from a node on another ring.
    pub(crate) fn note_epoch(self: &Arc<Self>, epoch: RingEpoch) {
        if self.ring.is_stale(epoch) {
            let inner = self.clone();
            tokio::spawn(async move {
                inner
                    .refresh_ring_logged("ring refetch after a new epoch")
                    .await
            });
        }
    }

    /// Refetches the ring unless a refetch is under way; a failure is only logged (the ring
    /// in use stays, and the next trigger tries again).
    async fn refresh_ring_logged(&self, why: &'static str) {
        if let Err(e) = self
            .ring
            .refresh_once(&self.pool, self.config.connect_timeout)
            .await
        {
            debug!(error = %e, why, "ring refetch failed");
        }
    }
}

impl Inner {
    /// Pings `node` in the background; a success makes it a target again (see `health`).
    pub(crate) fn probe(self: &Arc<Self>, node: NodeId) {
        let inner = self.clone();
        tokio::spawn(async move {
            let addr = inner
                .ring
                .current()
                .ring
                .member(node)
                .map(|m| m.addr.clone());
            let Some(addr) = addr else { return };
            let epoch = inner.ring.current().ring.epoch();
            let ping = inner
                .pool
                .call(&addr, inner.config.connect_timeout, epoch, Request::Ping);
            let result = match tokio::time::timeout(inner.config.request_timeout, ping).await {
                Ok(result) => result.map(|_| ()),
                Err(_) => Err(Error::Timeout { in_doubt: false }),
            };
            debug!(node = %node, ok = result.is_ok(), "probed a node marked down");
            inner.health.record(node, result.as_ref().copied());
        });
    }
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
        let inner = Arc::new(Inner {
            ring: RingCache::new(self.seeds),
            pool: Pool::with_options(self.config.connect.clone()),
            config: self.config,
            health: Health::default(),
            stats: Stats::default(),
            lww_actor: NodeId(crate::random::next_u64().max(1)),
            lww_counter: AtomicU64::new(0),
        });
        inner
            .ring
            .refresh(
                &inner.pool,
                inner.config.connect_timeout,
                RingEpoch::default(),
            )
            .await?;
        tokio::spawn(refresh_periodically(Arc::downgrade(&inner)));
        Ok(Client { inner })
    }
}

/// Refetches the ring every `ring_refresh_interval` while any clone of the client lives.
async fn refresh_periodically(inner: std::sync::Weak<Inner>) {
    let Some(interval) = inner.upgrade().map(|i| i.config.ring_refresh_interval) else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.refresh_ring_logged("periodic ring refresh").await;
    }
}

impl Client {
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

    pub async fn get_with(&self, key: impl AsRef<[u8]>, opts: &ReadOptions) -> Result<Value> {
        self.default_bucket().get_with(key, opts).await
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
    /// deleted (a concurrent write survives); without one, every value the coordinating
    /// replica holds.
    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
    ) -> Result<WriteReceipt> {
        self.default_bucket().delete(key, context).await
    }

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

    pub fn stats(&self) -> ClientStats {
        let s = &self.inner.stats;
        ClientStats {
            read_repairs: s.read_repairs.load(Ordering::Relaxed),
            ring_refreshes: self.inner.ring.refresh_count(),
            sibling_warnings: s.sibling_warnings.load(Ordering::Relaxed),
            nodes_marked_down: self.inner.health.down_count(),
            gets: s.gets.load(Ordering::Relaxed),
            writes: s.writes.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            sloppy_writes: s.sloppy_writes.load(Ordering::Relaxed),
            fallback_acks: s.fallback_acks.load(Ordering::Relaxed),
            get_latency: s.get_latency(),
            write_latency: s.write_latency(),
        }
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
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client this bucket handle belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Value> {
        self.get_with(key, &ReadOptions::default()).await
    }

    pub async fn get_with(&self, key: impl AsRef<[u8]>, opts: &ReadOptions) -> Result<Value> {
        let key = Bytes::copy_from_slice(key.as_ref());
        coordinator::get(&self.client.inner, &self.name, key, opts).await
    }

    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
    ) -> Result<WriteReceipt> {
        self.put_with(key, value, context, &WriteOptions::default())
            .await
    }

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

    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
    ) -> Result<WriteReceipt> {
        self.delete_with(key, context, &WriteOptions::default())
            .await
    }

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
