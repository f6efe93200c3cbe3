//! The request path: from a connection's bytes to the store and back.
//!
//! - [`server`]: accepts connections (TLS first, if configured), speaks the protocol on each,
//!   bounds what is in flight, and shuts down gracefully.
//! - `handshake`: `Hello`, `Welcome`, and `Auth` when the node requires it; the role a
//!   connection proves.
//! - [`lane`]: where one request runs: on the connection's task, waiting for the group commit,
//!   on the async path (proxy mode), or on a blocking thread. One function decides.
//! - [`service`]: dispatch and validation: what a node answers to each request.
//! - [`replica`]: the replica's read-modify-write of one key under its lock: stamping (where
//!   dots are minted), merging, hints, deletes of delivered or moved copies.
//! - [`actors`]: which actor a stamp is made under, so that no dot is ever minted twice.
//! - [`proxy`]: proxy mode, the node coordinating a thin client's quorum with the SDK's code.
//!
//! A put's way through these files: `server` reads the frame and checks the connection's role;
//! `lane` sees an unsynced write and runs it inline; `service` checks the key, the value and
//! the client's ring epoch, and hands the write to `replica`, which stamps it on top of
//! everything the node holds for the key and stores it; the answer goes back through the
//! connection's writer task. A get takes the same way and ends in `Replica::read`.

pub mod actors;
mod handshake;
pub mod lane;
pub mod proxy;
pub mod replica;
pub mod server;
pub mod service;

pub use replica::Replica;
pub use server::{Endpoint, serve, serve_stream};
pub use service::Service;
