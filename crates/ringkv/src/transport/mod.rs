//! Connections to nodes: how a request gets to one node and its answer back.
//!
//! Below the quorum logic, a [`Pool`] keeps one multiplexed connection per node: requests
//! carry ids, a writer task sends whatever callers queued in one flush, and a reader task
//! hands each answer to whoever waits for its id, in whatever order the node answers. A
//! connection runs on a byte stream ([`stream`]): TCP, TLS over it ([`tls`]), or whatever a
//! simulation's [`Dialer`] returns; to a node that authenticates connections it proves a
//! [`Credential`] by answering the node's challenge. [`ConnectOptions`] says which of these
//! a pool uses.
//!
//! The server and the CLI use this module for node-to-node traffic too: a node hands hints
//! off, streams transfers, runs anti-entropy and fetches layouts through a [`Pool`], and its
//! connection tasks write with the same batching writer; the CLI's `cluster` commands and
//! inspections talk to single nodes through it. Nothing here is specific to
//! [`crate::Client`]: a pool speaks to any peer that speaks the protocol, outside any quorum.
//!
//! - `pool`: [`Pool`], one connection per address, opened on first use and after it broke.
//! - `connection`: one multiplexed connection and its handshake (`Hello`, then `Auth` if the
//!   node challenges).
//! - `writer`: the write side of a connection, shared with the server and the benchmark.
//! - [`stream`]: the byte streams connections run on, and the [`Dialer`] that replaces TCP.
//! - [`tls`]: [`ClientTls`] and reading certificates and keys from PEM files.
//! - [`credential`]: [`Credential`], a client token or the cluster secret.

mod connection;
pub mod credential;
mod pool;
pub mod stream;
#[cfg(feature = "tls")]
pub mod tls;
mod writer;

use std::net::IpAddr;
use std::sync::Arc;

use ringkv_core::wire::ProtocolRange;

pub use credential::Credential;
pub use pool::Pool;
pub use ringkv_core::wire::{Request, Response};
pub use stream::{BoxedStream, Dialer};
#[cfg(feature = "tls")]
pub use tls::ClientTls;
/// The batching writer, for the server's and the benchmark's connection tasks.
#[doc(hidden)]
pub use writer::write_batched;

/// How connections to nodes are opened: from where, over TLS or not, proving what.
///
/// Built from `ConnectOptions::default()` and the `with_*` builders (or by setting its public
/// fields): it may grow, so it is `#[non_exhaustive]`.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The local address connections leave from (the kernel's choice if `None`): a node sets
    /// its own, so that peers and firewalls see node-to-node traffic come from the node.
    pub local_ip: Option<IpAddr>,
    /// What connections prove to nodes that authenticate them (nodes without a cluster
    /// secret ask for nothing, and the credential is then not used).
    pub credential: Option<Credential>,
    /// TLS, for nodes that require it.
    #[cfg(feature = "tls")]
    pub tls: Option<ClientTls>,
    /// Streams from this instead of TCP (simulations; `local_ip` and `tls` are then unused).
    pub dialer: Option<Arc<dyn Dialer>>,
    /// The protocol versions connections offer: this build's
    /// ([`ProtocolRange::CURRENT`]). Tests of version negotiation offer others.
    pub protocol: ProtocolRange,
}

impl ConnectOptions {
    /// Connections leave from `ip` (see [`ConnectOptions::local_ip`]).
    pub fn with_local_ip(mut self, ip: IpAddr) -> Self {
        self.local_ip = Some(ip);
        self
    }

    /// Connections prove `credential` to nodes that ask for one.
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Connections offer the protocol versions `range` instead of this build's (tests of a
    /// rolling upgrade: a client that speaks the next version too).
    pub fn with_protocol(mut self, range: ProtocolRange) -> Self {
        self.protocol = range;
        self
    }

    /// Connections run TLS over TCP.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connections run on the streams `dialer` opens instead of TCP.
    pub fn with_dialer(mut self, dialer: Arc<dyn Dialer>) -> Self {
        self.dialer = Some(dialer);
        self
    }
}
