//! `ringkvd`, the ringkv storage node, as a library.
//!
//! A node is thin on purpose: clients route, coordinate quorums and repair; a node stores
//! versioned blobs and gossips membership.
//!
//! - [`config`]: settings from defaults, a TOML file, environment and flags.
//! - [`storage`]: the [`storage::Store`] interface, on RocksDB or in memory.
//! - [`service`]: what a node does with one request (stamp, merge, read), without I/O.
//! - [`membership`]: the cluster layout, spread by gossip (chitchat), turned into the ring.
//! - [`handoff`]: delivering hints to their home nodes once they are back.
//! - [`transfer`]: streaming data to new owners after a membership change, then cleaning up.
//! - [`antientropy`]: replicas comparing their data range by range, repairing differences.
//! - [`proxy`]: proxy mode, the node coordinating a thin client's quorum with the SDK's code.
//! - [`commit`]: group commit, one log sync for every durable write waiting at once.
//! - [`security`] and [`signed_gossip`]: the cluster secret and client tokens: who may
//!   connect, gossip and ask what.
//! - [`tls`]: TLS for incoming and outgoing connections (rustls).
//! - [`server`]: connections, multiplexing, limits, authentication, graceful shutdown.
//! - `node`: a whole node, every part above started and stopped in order (needs the
//!   `rocksdb` feature, on by default).
//! - [`fuzz`]: the fuzz targets' bodies, replayed on the corpus by the test suite.
//! - [`admin`] and [`metrics`]: `/health`, `/ready` and Prometheus `/metrics` over HTTP.

pub mod admin;
pub mod antientropy;
pub mod commit;
pub mod config;
pub mod fuzz;
pub mod handoff;
pub mod membership;
pub mod metrics;
#[cfg(feature = "rocksdb")]
pub mod node;
pub mod proxy;
mod records;
pub mod security;
pub mod server;
pub mod service;
pub mod signed_gossip;
pub mod storage;
pub mod tls;
pub mod transfer;
mod worker;

pub use config::{Args, Config};
