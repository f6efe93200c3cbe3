//! What every ringkv client and server must compute identically.
//!
//! This crate is sans-IO: no sockets, no storage, no runtime. It holds the protocol's pure
//! logic, so that the SDK (which coordinates quorums) and the server (which stores versions)
//! cannot drift apart, and so that the logic can be tested as plain functions and properties.
//!
//! - [`auth`]: secrets, roles and the challenge-response proofs of the handshake.
//! - [`hash`]: the fixed hash functions that place keys and tokens on the ring.
//! - [`node`]: node ids and the member records the ring is made of.
//! - [`ring`]: members, tokens, preference lists, ring epochs, transfers.
//! - [`claim`]: the token allocator (joins, leaves, weights).
//! - [`layout`]: the cluster layout and its staged, planned and committed changes.
//! - [`movement`]: what a membership change moves, computed from the rings before and after.
//! - [`bucket`]: bucket properties (`n`, conflict policy, default quorums).
//! - [`version`] and [`siblings`]: dots, version vectors and the DVV sibling set with its
//!   `stamp` and `merge` laws.
//! - [`targets`]: which replicas a request goes to (sloppy or strict quorum).
//! - [`quorum`]: counting answers against a quorum.
//! - [`context`]: the opaque causal context handed to applications.
//! - [`wire`]: messages, the error enum that crosses the wire, and the frame codec.

#![warn(missing_docs)]

pub mod auth;
pub mod bucket;
pub mod claim;
pub mod context;
pub mod hash;
pub mod layout;
pub mod movement;
pub mod node;
pub mod quorum;
pub mod ring;
pub mod siblings;
pub mod targets;
pub mod version;
pub mod wire;

pub use bucket::{BucketProps, Buckets, ConflictPolicy, DEFAULT_BUCKET};
pub use context::Context;
pub use layout::{Change, Layout, LayoutError, Step};
pub use node::{Member, NodeId};
pub use ring::{
    DEFAULT_TOKENS_PER_WEIGHT, Phase, Ring, RingConfig, RingEpoch, RingError, Route, Transition,
};
pub use siblings::{Sibling, SiblingSet, StampError, TouchError};
pub use version::{Actor, Dot, VersionVector};
