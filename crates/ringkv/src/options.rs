//! Client configuration and per-call options.
//!
//! Consistency is tunable per client and per call. `r` and `w` default to the bucket's
//! properties (which every client gets from the servers with the ring); a client default set
//! here overrides those, and a per-call option overrides both. `R + W > N` gives
//! read-your-writes in the absence of failures; `R = W = 1` the fastest, most available store.

use std::time::Duration;

/// How a [`crate::Client`] behaves unless a call says otherwise.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Read quorum for every call; `None`: the bucket's `r`.
    pub r: Option<u8>,
    /// Write quorum for every call; `None`: the bucket's `w`.
    pub w: Option<u8>,
    /// Deadline of a whole operation (all its round trips).
    pub timeout: Duration,
    /// Deadline to open a connection and complete the handshake.
    pub connect_timeout: Duration,
    /// How often the ring and liveness are refetched in the background (a response carrying a
    /// new ring epoch triggers a refetch at once).
    pub ring_refresh_interval: Duration,
    /// Repair stale replicas in the background after reads.
    pub read_repair: bool,
    /// Reads returning more live siblings than this are logged and counted: the application
    /// is probably not resolving them.
    pub sibling_warning: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            r: None,
            w: None,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            ring_refresh_interval: Duration::from_secs(5),
            read_repair: true,
            sibling_warning: 10,
        }
    }
}

impl ClientConfig {
    pub fn with_r(mut self, r: u8) -> Self {
        self.r = Some(r);
        self
    }

    pub fn with_w(mut self, w: u8) -> Self {
        self.w = Some(w);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn with_ring_refresh_interval(mut self, interval: Duration) -> Self {
        self.ring_refresh_interval = interval;
        self
    }

    pub fn with_read_repair(mut self, enabled: bool) -> Self {
        self.read_repair = enabled;
        self
    }

    pub fn with_sibling_warning(mut self, siblings: usize) -> Self {
        self.sibling_warning = siblings;
        self
    }
}

/// Options of one read.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ReadOptions {
    pub r: Option<u8>,
    pub timeout: Option<Duration>,
}

impl ReadOptions {
    pub fn with_r(mut self, r: u8) -> Self {
        self.r = Some(r);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Options of one write (put or delete).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct WriteOptions {
    pub w: Option<u8>,
    pub timeout: Option<Duration>,
    /// Replace every sibling the coordinating replica holds, whatever the context says. For
    /// callers who really mean "this is the value now" and accept losing concurrent updates.
    pub overwrite: bool,
}

impl WriteOptions {
    pub fn with_w(mut self, w: u8) -> Self {
        self.w = Some(w);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}
