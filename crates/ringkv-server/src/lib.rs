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
//! - [`server`]: connections, multiplexing, limits, graceful shutdown.
//! - [`admin`] and [`metrics`]: `/health`, `/ready` and Prometheus `/metrics` over HTTP.

pub mod admin;
pub mod antientropy;
pub mod commit;
pub mod config;
pub mod handoff;
pub mod membership;
pub mod metrics;
pub mod proxy;
mod records;
pub mod server;
pub mod service;
pub mod storage;
pub mod transfer;
mod worker;

pub use config::{Args, Config};
