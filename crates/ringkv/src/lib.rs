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
//! - [`client`]: [`Client`], [`ClientBuilder`], [`Bucket`].
//! - [`options`]: client defaults and per-call options (R, W, timeouts, overwrite).
//! - [`value`]: [`Value`] (siblings and context) and [`WriteReceipt`].
//! - [`error`]: [`Error`], with the facts of each failure.
//! - [`proxy`]: [`ProxyClient`], a thin client whose quorums a server coordinates.
//! - [`credential`] and [`tls`]: proving a client token to nodes that require one, and TLS.
//! - [`stream`]: the byte streams under connections (TCP, TLS, a simulation's [`stream::Dialer`]).
//! - [`random`]: the SDK's randomness, seedable for simulations.
//! - `coordinator`: the quorum logic; `health`: the client's failure detector;
//!   `connection` and `pool`: multiplexed connections;
//!   `ring_cache`: the ring and its refresh.

pub mod client;
mod connection;
mod coordinator;
pub mod credential;
pub mod error;
mod health;
pub mod metrics;
pub mod options;
mod pool;
pub mod proxy;
pub mod random;
mod ring_cache;
pub mod stream;
pub mod tls;
pub mod value;
mod writer;

/// Requests to single nodes, outside any quorum (servers use it for hinted handoff).
pub mod transport {
    pub use crate::pool::{ConnectOptions, Pool};
    pub use crate::writer::write_batched;
    pub use ringkv_core::wire::{Request, Response};
}

pub use client::{Bucket, Client, ClientBuilder, ClientStats};
pub use credential::Credential;
pub use error::{Error, NodeError, Result};
pub use metrics::Latency;
pub use options::{ClientConfig, ReadOptions, WriteOptions};
pub use proxy::ProxyClient;
pub use ringkv_core::{ConflictPolicy, Context, DEFAULT_BUCKET, NodeId};
pub use tls::ClientTls;
pub use value::{Value, WriteReceipt};
