//! Web sessions on ringkv: a [`tower_sessions_core::SessionStore`] for axum and any tower
//! service that uses `tower-sessions`.
//!
//! ```no_run
//! # async fn app() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use ringkv_sessions::RingkvStore;
//! use tower_sessions::{Expiry, SessionManagerLayer};
//!
//! let client = ringkv::Client::builder().seeds(["127.0.0.1:7401"]).build().await?;
//! // Each request that reads the session extends its life by 30 minutes (a touch: the
//! // session is not rewritten); an unused session expires on every replica.
//! let store = RingkvStore::new(client.bucket("sessions"))
//!     .with_sliding_expiry(Duration::from_secs(1800));
//! let sessions = SessionManagerLayer::new(store)
//!     .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)));
//! let app: axum::Router = axum::Router::new().layer(sessions);
//! # Ok(()) }
//! ```
//!
//! # What the store does
//!
//! - **Expiry is ringkv's.** A session is saved with a time to live up to its `expiry_date`;
//!   once that passes it reads as absent on every replica, and the cluster reclaims and
//!   eventually purges it. Nothing scans for expired sessions.
//! - **Sliding expiry** ([`RingkvStore::with_sliding_expiry`]): every load extends the
//!   session's life with a touch, a small replicated write of a new expiry (no rewrite of
//!   the data). `tower-sessions` saves a session only when it changed, so without it a
//!   session read on every request but never modified would expire on time.
//! - **Concurrent saves.** Two requests of one session on two app servers may save at once.
//!   A save supersedes every version the node that stamps it holds (last writer wins per
//!   session, by default); versions written concurrently elsewhere come back as siblings,
//!   which a load resolves with the [`Resolver`]: by default the most recently saved (by the
//!   saving process's clock), or the application's own merge ([`RingkvStore::with_resolver`]),
//!   such as the union of two carts.
//! - **Ids.** `create` checks that a new id is not taken before it writes (ids are 128
//!   random bits: a collision between two concurrent creates is not guarded against).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ringkv::{Bucket, ReadOptions, WriteOptions};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{Error, Result, SessionStore};
use tracing::warn;

/// Merges the versions of one session saved concurrently (at least two) into the one to
/// keep. Each comes with the time its saver's clock gave it, in milliseconds since the Unix
/// epoch.
pub type Resolver = Arc<dyn Fn(Vec<(u64, Record)>) -> Record + Send + Sync>;

/// A session store on one ringkv bucket. Cheap to clone.
#[derive(Clone)]
pub struct RingkvStore {
    bucket: Bucket,
    sliding: Option<Duration>,
    resolver: Resolver,
}

impl fmt::Debug for RingkvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingkvStore")
            .field("bucket", &self.bucket.name())
            .field("sliding", &self.sliding)
            .finish_non_exhaustive()
    }
}

impl RingkvStore {
    /// Sessions in `bucket`, each kept until its own `expiry_date`, concurrent saves
    /// resolved by [`latest_saved`].
    pub fn new(bucket: Bucket) -> RingkvStore {
        RingkvStore {
            bucket,
            sliding: None,
            resolver: Arc::new(latest_saved),
        }
    }

    /// Every load extends the session's life to `ttl` from then (a touch), and the record
    /// it returns says so.
    pub fn with_sliding_expiry(mut self, ttl: Duration) -> RingkvStore {
        self.sliding = Some(ttl);
        self
    }

    /// Resolves concurrent saves of one session with `resolver` instead of keeping the
    /// latest.
    pub fn with_resolver(
        mut self,
        resolver: impl Fn(Vec<(u64, Record)>) -> Record + Send + Sync + 'static,
    ) -> RingkvStore {
        self.resolver = Arc::new(resolver);
        self
    }

    fn key(id: &Id) -> String {
        id.to_string()
    }

    /// Writes `record` with a time to live up to its expiry date (a date already passed
    /// deletes it).
    async fn write(&self, record: &Record) -> Result<()> {
        let key = Self::key(&record.id);
        let left = record.expiry_date - OffsetDateTime::now_utc();
        let Ok(ttl) = Duration::try_from(left) else {
            return self.remove(&key).await;
        };
        if ttl.is_zero() {
            return self.remove(&key).await;
        }
        let stored = Stored {
            saved_ms: now_ms(),
            record: record.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(|e| Error::Encode(e.to_string()))?;
        // Last writer wins per session: the save supersedes whatever the node that stamps
        // it holds, without a read first.
        let opts = WriteOptions::default().with_ttl(ttl).with_overwrite(true);
        self.bucket
            .put_with(&key, bytes, None, &opts)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<()> {
        // Blind: the client reads the homes first and deletes what they hold.
        self.bucket
            .delete_with(key, None, &WriteOptions::default())
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// The session's versions as read, resolved to one; `None` if it is absent.
    async fn read(&self, id: &Id, opts: &ReadOptions) -> ringkv::Result<Option<(Record, bool)>> {
        let value = self.bucket.get_with(Self::key(id), opts).await?;
        let mut versions = Vec::new();
        for bytes in value.siblings() {
            match serde_json::from_slice::<Stored>(bytes) {
                Ok(stored) => versions.push((stored.saved_ms, stored.record)),
                // Not a session this store wrote: skipped, as a session it cannot read.
                Err(e) => warn!(session = %id, error = %e, "skipping an unreadable version"),
            }
        }
        let concurrent = versions.len() > 1;
        Ok(match versions.len() {
            0 => None,
            1 => versions.pop().map(|(_, r)| (r, false)),
            _ => Some(((self.resolver)(versions), concurrent)),
        })
    }
}

#[async_trait]
impl SessionStore for RingkvStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // A fresh id until one is free: ids are random, so this almost never loops.
        for _ in 0..8 {
            if self
                .read(&record.id, &ReadOptions::default())
                .await
                .map_err(backend)?
                .is_none()
            {
                return self.write(record).await;
            }
            record.id = Id::default();
        }
        Err(Error::Backend("no free session id after 8 tries".into()))
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.write(record).await
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let opts = match self.sliding {
            Some(ttl) => ReadOptions::default().with_touch(ttl),
            None => ReadOptions::default(),
        };
        let read = match self.read(id, &opts).await {
            Ok(read) => read,
            // The touch failed (a replica refused it, or too few answered): the session
            // is still read, and keeps the life it had.
            Err(_) if self.sliding.is_some() => self
                .read(id, &ReadOptions::default())
                .await
                .map_err(backend)?,
            Err(e) => return Err(backend(e)),
        };
        let Some((mut record, concurrent)) = read else {
            return Ok(None);
        };
        if let Some(ttl) = self.sliding {
            record.expiry_date = OffsetDateTime::now_utc() + ttl;
        }
        if concurrent {
            // The resolved version replaces the concurrent ones for the next reader.
            self.write(&record).await?;
        }
        Ok(Some(record))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.remove(&Self::key(id)).await
    }
}

/// The default [`Resolver`]: the version saved last by its saver's clock (on a tie, the
/// one with more data, so that every reader picks the same).
pub fn latest_saved(versions: Vec<(u64, Record)>) -> Record {
    versions
        .into_iter()
        .max_by(|(a, ra), (b, rb)| a.cmp(b).then(ra.data.len().cmp(&rb.data.len())))
        .map(|(_, r)| r)
        .unwrap_or_else(|| Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc(),
        })
}

/// What the store writes: the session and when it was saved.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    saved_ms: u64,
    record: Record,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn backend(e: ringkv::Error) -> Error {
    Error::Backend(e.to_string())
}
