//! Client configuration and per-call options.
//!
//! Consistency is tunable per client and per call. `r` and `w` default to the bucket's
//! properties (which every client gets from the servers with the ring); a client default set
//! here overrides those, and a per-call option overrides both. `R + W > N` gives
//! read-your-writes in the absence of failures; `R = W = 1` the fastest, most available store.
//!
//! `r` and `w` count *sloppy* acknowledgements: a fallback node standing in for an unreachable
//! home replica counts. `pr` and `pw` ask for a *strict* quorum instead: only home replicas
//! are asked and counted, and a call fails fast with `Unavailable` when too few are up.

use std::time::Duration;

use ringkv_core::Context;

use crate::error::{Error, Result};
pub use crate::latency::SpeculativeRetry;
#[cfg(feature = "tls")]
use crate::transport::ClientTls;
use crate::transport::{ConnectOptions, Credential};

/// How a [`crate::Client`] behaves unless a call says otherwise.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Read quorum for every call; `None`: the bucket's `r`.
    pub r: Option<u8>,
    /// Write quorum for every call; `None`: the bucket's `w`.
    pub w: Option<u8>,
    /// Strict read quorum (home replicas only) for every call; `None`: sloppy reads.
    pub pr: Option<u8>,
    /// Strict write quorum (home replicas only) for every call; `None`: sloppy writes.
    pub pw: Option<u8>,
    /// Durable write quorum for every call: this many replicas must have synced the write to
    /// disk before it is acknowledged; `None`: as the nodes' `storage.durability` says.
    pub dw: Option<u8>,
    /// Deadline of a whole operation (all its round trips and retries).
    pub timeout: Duration,
    /// How long one request to one node may take before the node is considered slow, marked
    /// down, and (for the coordinating step of a write) replaced by the next target.
    pub request_timeout: Duration,
    /// Times a failed call is tried again (errors that may pass only), with jittered
    /// exponential back-off, within the call's deadline.
    pub retries: u32,
    /// Deadline to open a connection and complete the handshake.
    pub connect_timeout: Duration,
    /// How often the ring and liveness are refetched in the background (a response carrying a
    /// new ring epoch triggers a refetch at once).
    pub ring_refresh_interval: Duration,
    /// Repair stale replicas in the background after reads: always when the answers a read
    /// got disagree, and on a sample of the others ([`ClientConfig::read_repair_chance`]).
    pub read_repair: bool,
    /// The share of reads (0 to 1) that ask every target, not only `R`, so that read repair
    /// also compares the replicas not needed for the answer. A read whose answers disagree
    /// asks the rest in the background and repairs them whatever this says. Higher: replicas
    /// that missed writes converge sooner through reads alone (anti-entropy catches the rest
    /// within its interval); lower: fewer requests per read.
    pub read_repair_chance: f64,
    /// When a read asks one more target than `R` because those asked are late (see
    /// [`SpeculativeRetry`]).
    pub speculative_retry: SpeculativeRetry,
    /// Reads returning more live siblings than this are logged and counted: the application
    /// is probably not resolving them.
    pub sibling_warning: usize,
    /// How connections to nodes are opened: the credential proven to nodes that
    /// authenticate, TLS, the local address, or a simulation's dialer.
    pub connect: ConnectOptions,
    /// The application's key for sealing contexts that leave the service (cookies, forms):
    /// with one, [`crate::Client::context_to_bytes`] seals and
    /// [`crate::Client::context_from_bytes`] refuses anything altered or unsealed.
    pub context_key: Option<ContextKey>,
    /// Added to this client's wall clock for the timestamps of its `lww` writes: a test's
    /// stand-in for a client whose clock is off. Leave it at 0.
    #[doc(hidden)]
    pub clock_offset_ms: i64,
}

/// The key an application seals its contexts with (see [`ClientConfig::context_key`]). Its
/// `Debug` prints `<redacted>`.
///
/// ```
/// use ringkv::{ClientConfig, ContextKey};
///
/// assert!(ContextKey::new(Vec::new()).is_none(), "an empty key seals nothing");
/// let key = ContextKey::new(b"32 bytes from the app's secrets".to_vec()).unwrap();
/// assert_eq!(format!("{key:?}"), "ContextKey(<redacted>)");
/// let config = ClientConfig::default().with_context_key(key).with_r(2);
/// assert!(config.context_key.is_some());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ContextKey(Vec<u8>);

impl ContextKey {
    /// A key from its bytes; `None` if there are none (an empty key seals nothing).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<ContextKey> {
        let bytes = bytes.into();
        (!bytes.is_empty()).then_some(ContextKey(bytes))
    }

    /// `context` of `bucket`/`key` as opaque bytes, sealed for that key with `seal` if given.
    pub(crate) fn encode(
        seal: Option<&ContextKey>,
        bucket: &str,
        key: &[u8],
        context: &Context,
    ) -> Vec<u8> {
        match seal {
            Some(secret) => context.to_sealed_bytes(&secret.0, bucket, key),
            None => context.to_bytes(),
        }
    }

    /// Parses bytes made by [`ContextKey::encode`] with the same `seal` for `bucket`/`key`.
    /// With a seal, bytes that were altered, sealed with another secret or for another key,
    /// or not sealed are refused: a forged context could claim writes it never saw, and a
    /// write with it would drop them.
    pub(crate) fn decode(
        seal: Option<&ContextKey>,
        bucket: &str,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<Context> {
        let parsed = match seal {
            Some(secret) => Context::from_sealed_bytes(bytes, &secret.0, bucket, key),
            None => Context::from_bytes(bytes),
        };
        parsed.map_err(|e| Error::InvalidArgument(format!("context: {e}")))
    }
}

impl std::fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextKey(<redacted>)")
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            r: None,
            w: None,
            pr: None,
            pw: None,
            dw: None,
            timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(1),
            retries: 2,
            connect_timeout: Duration::from_secs(1),
            ring_refresh_interval: Duration::from_secs(2),
            read_repair: true,
            read_repair_chance: 0.1,
            speculative_retry: SpeculativeRetry::default(),
            sibling_warning: 10,
            connect: ConnectOptions::default(),
            context_key: None,
            clock_offset_ms: 0,
        }
    }
}

impl ClientConfig {
    /// Connect with TLS (see [`ClientTls::from_files`]).
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.connect.tls = Some(tls);
        self
    }

    /// Authenticate with `credential` (a client token, see [`Credential::token`]).
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.connect.credential = Some(credential);
        self
    }

    /// Seal contexts with `key` (see [`ClientConfig::context_key`]).
    pub fn with_context_key(mut self, key: ContextKey) -> Self {
        self.context_key = Some(key);
        self
    }

    /// Sets [`ClientConfig::r`].
    pub fn with_r(mut self, r: u8) -> Self {
        self.r = Some(r);
        self
    }

    /// Sets [`ClientConfig::w`].
    pub fn with_w(mut self, w: u8) -> Self {
        self.w = Some(w);
        self
    }

    /// Sets [`ClientConfig::pr`].
    pub fn with_pr(mut self, pr: u8) -> Self {
        self.pr = Some(pr);
        self
    }

    /// Sets [`ClientConfig::pw`].
    pub fn with_pw(mut self, pw: u8) -> Self {
        self.pw = Some(pw);
        self
    }

    /// Sets [`ClientConfig::dw`].
    pub fn with_dw(mut self, dw: u8) -> Self {
        self.dw = Some(dw);
        self
    }

    /// Sets [`ClientConfig::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::request_timeout`].
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::retries`].
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets [`ClientConfig::connect_timeout`].
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::ring_refresh_interval`].
    pub fn with_ring_refresh_interval(mut self, interval: Duration) -> Self {
        self.ring_refresh_interval = interval;
        self
    }

    /// Sets [`ClientConfig::read_repair`].
    pub fn with_read_repair(mut self, enabled: bool) -> Self {
        self.read_repair = enabled;
        self
    }

    /// Sets [`ClientConfig::read_repair_chance`] (clamped to 0..=1).
    pub fn with_read_repair_chance(mut self, chance: f64) -> Self {
        self.read_repair_chance = if chance.is_nan() {
            0.0
        } else {
            chance.clamp(0.0, 1.0)
        };
        self
    }

    /// Sets [`ClientConfig::speculative_retry`].
    pub fn with_speculative_retry(mut self, policy: SpeculativeRetry) -> Self {
        self.speculative_retry = policy;
        self
    }

    /// Sets [`ClientConfig::sibling_warning`].
    pub fn with_sibling_warning(mut self, siblings: usize) -> Self {
        self.sibling_warning = siblings;
        self
    }

    /// Sets [`ClientConfig::connect`] whole (the address to leave from, a simulation's
    /// dialer...).
    pub fn with_connect(mut self, connect: ConnectOptions) -> Self {
        self.connect = connect;
        self
    }
}

/// Options of one read.
///
/// ```
/// use std::time::Duration;
/// use ringkv::ReadOptions;
///
/// // Wait for all three replicas, and keep a session alive for 30 more minutes.
/// let opts = ReadOptions::default()
///     .with_r(3)
///     .with_touch(Duration::from_secs(1800))
///     .with_timeout(Duration::from_millis(250));
/// assert_eq!(opts.r, Some(3));
/// assert_eq!(opts.pr, None); // the client's default, else the bucket's
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Answers to wait for, fallbacks' included; `None`: the client's default, else the
    /// bucket's.
    pub r: Option<u8>,
    /// Strict: this many home replicas must answer (fallbacks are not asked).
    pub pr: Option<u8>,
    /// Deadline of this read; `None`: the client's [`ClientConfig::timeout`].
    pub timeout: Option<Duration>,
    /// Sliding expiry: after reading, extend the life of the values read to this long from
    /// now (by the servers' clocks), without rewriting them and without a new version. The
    /// extension is a write that needs `w` acknowledgements (the read fails with `Quorum`
    /// otherwise); a value that expired meanwhile is not brought back. Values written
    /// without a time to live never expire and stay so.
    pub touch: Option<Duration>,
    /// Ask every target, not only `R`: the read still returns the first `R` answers, and
    /// read repair then compares every replica's copy. Reads made before a blind delete or
    /// overwrite, and reads with `touch`, always do: they write back what they read, and
    /// their repair brings every replica to it.
    pub every_replica: bool,
}

impl ReadOptions {
    /// Sets [`ReadOptions::every_replica`].
    pub fn with_every_replica(mut self) -> Self {
        self.every_replica = true;
        self
    }

    /// Sets [`ReadOptions::touch`].
    pub fn with_touch(mut self, ttl: Duration) -> Self {
        self.touch = Some(ttl);
        self
    }

    /// Sets [`ReadOptions::r`].
    pub fn with_r(mut self, r: u8) -> Self {
        self.r = Some(r);
        self
    }

    /// Sets [`ReadOptions::pr`].
    pub fn with_pr(mut self, pr: u8) -> Self {
        self.pr = Some(pr);
        self
    }

    /// Sets [`ReadOptions::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Options of one write (put or delete).
///
/// ```
/// use std::time::Duration;
/// use ringkv::WriteOptions;
///
/// // Acknowledged by two replicas, one of them synced to disk; expires in an hour.
/// let opts = WriteOptions::default()
///     .with_w(2)
///     .with_dw(1)
///     .with_ttl(Duration::from_secs(3600));
/// assert_eq!((opts.w, opts.dw), (Some(2), Some(1)));
/// assert!(!opts.overwrite, "concurrent updates are kept unless asked otherwise");
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Acknowledgements to wait for, fallbacks' included; `None`: the client's default, else
    /// the bucket's.
    pub w: Option<u8>,
    /// Strict: this many home replicas must acknowledge (fallbacks are not used).
    pub pw: Option<u8>,
    /// Durable: this many replicas must have synced the write to disk before the call
    /// returns (every replica written syncs; the call waits for `max(w, dw)`).
    pub dw: Option<u8>,
    /// Deadline of this write; `None`: the client's [`ClientConfig::timeout`].
    pub timeout: Option<Duration>,
    /// Replace every sibling the coordinating replica holds, whatever the context says. For
    /// callers who really mean "this is the value now" and accept losing concurrent updates.
    /// Without a context, the client first reads `r` home replicas strictly, as a delete
    /// without a context does (see `Client::delete`), and fails with `Unavailable` when it
    /// cannot: stamped where the key's history is missing, an overwrite would replace nothing.
    pub overwrite: bool,
    /// The value expires this long after it is written (by the stamping server's clock),
    /// then reads as absent on every replica; `None`: the bucket's default time to live, if
    /// it has one, else never. Sub-millisecond parts are rounded down, to at least 1 ms.
    /// Ignored by deletes. Needs every node at protocol 9 (a write to an older node fails).
    pub ttl: Option<Duration>,
}

impl WriteOptions {
    /// Sets [`WriteOptions::ttl`].
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets [`WriteOptions::w`].
    pub fn with_w(mut self, w: u8) -> Self {
        self.w = Some(w);
        self
    }

    /// Sets [`WriteOptions::pw`].
    pub fn with_pw(mut self, pw: u8) -> Self {
        self.pw = Some(pw);
        self
    }

    /// Sets [`WriteOptions::dw`].
    pub fn with_dw(mut self, dw: u8) -> Self {
        self.dw = Some(dw);
        self
    }

    /// Sets [`WriteOptions::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets [`WriteOptions::overwrite`].
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}
