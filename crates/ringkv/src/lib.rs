//! The ringkv SDK: a smart client for the ringkv distributed key-value store.
//!
//! The ring lives here, in the client. [`Client`] fetches the cluster's ring from any seed,
//! computes each key's replicas itself, and coordinates every read and write: it sends
//! requests straight to the replicas, counts the quorum, merges what they return (keeping
//! concurrent writes as siblings) and repairs stale replicas in the background. The servers
//! only store versions and gossip membership.
//!
//! ```no_run
//! # async fn demo() -> ringkv::Result<()> {
//! use ringkv::{Client, ReadOptions};
//!
//! let client = Client::builder().seeds(["127.0.0.1:7400"]).build().await?;
//! client.put("cart:42", "apples", None).await?;
//! let cart = client.get_with("cart:42", &ReadOptions::default().with_r(3)).await?;
//! for sibling in cart.siblings() {
//!     println!("{sibling:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! The public modules:
//!
//! - [`client`]: [`Client`], [`ClientBuilder`], [`Bucket`] and [`ClientStats`].
//! - [`options`]: client defaults and per-call options (R, W, timeouts, overwrite).
//! - [`value`]: [`Value`] (siblings and context) and [`WriteReceipt`].
//! - [`error`]: [`Error`], with the facts of each failure.
//! - [`metrics`]: [`Latency`], the percentiles in [`ClientStats`].
//! - [`proxy`]: [`ProxyClient`], a thin client whose quorums a server coordinates.
//! - [`transport`]: connections to single nodes ([`transport::Pool`]), the byte streams
//!   under them, TLS ([`ClientTls`]) and credentials ([`Credential`]); also the server's and
//!   the CLI's node-to-node transport.
//!
//! Inside (private, or public but hidden from these docs):
//!
//! - `inner`: the state all clones of a client share.
//! - `coordinator`: the quorum logic: plan, fan-out, read and read repair, write, retries.
//! - `health`: the client's failure detector and its probes.
//! - `ring_cache`: the ring, its refetches and the epochs that trigger them.
//! - `random` (hidden): the SDK's randomness, which a simulation seeds per thread.

#![warn(missing_docs)]

pub mod client;
mod coordinator;
pub mod error;
mod health;
mod inner;
mod latency;
pub mod metrics;
pub mod options;
pub mod proxy;
#[doc(hidden)]
pub mod random;
mod ring_cache;
pub mod transport;
pub mod value;

/// The old path of [`transport::credential`].
#[doc(hidden)]
pub use transport::credential;
/// The old path of [`transport::stream`].
#[doc(hidden)]
pub use transport::stream;
/// The old path of [`transport::tls`].
#[cfg(feature = "tls")]
#[doc(hidden)]
pub use transport::tls;

pub use client::{Bucket, Client, ClientBuilder, ClientStats};
pub use error::{Error, NodeError, ProtocolError, Result};
pub use metrics::Latency;
pub use options::{ClientConfig, ContextKey, ReadOptions, SpeculativeRetry, WriteOptions};
pub use proxy::ProxyClient;
pub use ringkv_core::{ConflictPolicy, Context, DEFAULT_BUCKET, NodeId};
#[cfg(feature = "tls")]
pub use transport::ClientTls;
pub use transport::Credential;
pub use value::{Value, WriteReceipt};
