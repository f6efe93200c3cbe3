//! A whole node, wired and run.
//!
//! - [`parts`]: [`NodeParts`], what the server loop and the workers share.
//! - [`security`]: the cluster secret and client tokens: who may connect and ask what.
//! - [`tls`]: TLS for incoming and outgoing connections (rustls).
//! - `run` (with the `rocksdb` feature, on by default): the store opened, gossip joined, the
//!   background workers (handoff, transfer, anti-entropy) and the admin port started,
//!   connections served; and, on shutdown (SIGTERM, SIGINT), each stopped in the reverse
//!   order: connections drained, workers stopped, gossip left, the store flushed.

pub mod parts;
pub mod security;
pub mod tls;

pub use parts::NodeParts;
#[cfg(feature = "rocksdb")]
pub use run::run;

#[cfg(feature = "rocksdb")]
mod run;
