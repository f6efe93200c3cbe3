//! `ringkvd`, the ringkv storage node, as a library.
//!
//! A node is thin on purpose: clients route, coordinate quorums and repair; a node stores
//! versioned blobs and gossips membership. Its parts, one folder each:
//!
//! - [`request`]: the request path. The connection loop ([`request::server`]), the handshake,
//!   where each request runs ([`request::lane`]), dispatch and validation
//!   ([`request::service`]), the replica's read-modify-write, where dots are minted
//!   ([`request::replica`]), and proxy mode ([`request::proxy`]).
//! - [`storage`]: the [`storage::Store`] interface, on RocksDB or in memory, and the node's
//!   own small records.
//! - [`workers`]: what a node does in the background: hinted handoff, streaming after a
//!   membership change, anti-entropy, and the group commit of durable writes.
//! - [`cluster`]: the layout this node holds, spread by gossip (chitchat) and turned into the
//!   ring; signed gossip.
//! - [`node`]: a whole node wired together ([`node::NodeParts`]): security, TLS, the outbound
//!   connections and proxy mode handed to the server loop and the workers; `node::run` starts
//!   and stops a node (needs the `rocksdb` feature, on by default).
//! - [`ops`]: what operators touch: configuration, the admin HTTP endpoint, metrics and the
//!   node's counters.
//! - [`clock`]: the node's wall clock, which decides expiry.
//! - [`error`]: the errors of start-up and of the workers' calls to peers.
//! - [`fuzz`]: the fuzz targets' bodies, replayed on the corpus by the test suite.

pub mod clock;
pub mod cluster;
pub mod error;
pub mod fuzz;
pub mod node;
pub mod ops;
pub mod request;
pub mod storage;
pub mod workers;

pub use error::{Error, Result};
pub use ops::config::{self, Args, Config};
