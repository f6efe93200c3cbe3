//! The errors of a node's own work: starting up, and the background workers' calls to peers.
//!
//! Errors a node answers to a request are [`ringkv_core::wire::WireError`] values (they cross
//! the wire); errors of the store are [`crate::storage::StoreError`]. This enum is for the
//! rest, so that a worker's log line or `ringkvd`'s exit message says which setting, file, peer
//! or request failed, with the facts as fields rather than folded into text.

use std::path::PathBuf;
use std::time::Duration;

use crate::storage::StoreError;

/// What a node's start-up or background work failed with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing, malformed, or contradicts another one.
    #[error("{message}")]
    Config {
        /// The setting (or file) at fault, as the operator writes it.
        setting: String,
        /// What is wrong, in a sentence that names the setting.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    File {
        /// What the node was doing ("reading the config file", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A socket could not be bound.
    #[error("listening on {what} {addr}: {source}")]
    Listen {
        /// Which listener ("tcp", "udp", "the admin endpoint").
        what: &'static str,
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A peer could not be reached or refused a request.
    #[error("{peer}: {source}")]
    Peer {
        /// The peer's address or id.
        peer: String,
        /// What the SDK's transport reported.
        #[source]
        source: ringkv::Error,
    },
    /// A peer answered a request with something that is not an answer to it.
    #[error("{peer} answered {request} with {answer}")]
    UnexpectedAnswer {
        /// The peer's address or id.
        peer: String,
        /// The request's kind (`Request::kind`).
        request: &'static str,
        /// The answer's kind (`Response::kind`).
        answer: &'static str,
    },
    /// This node's replica refused a state a peer holds (a limit, a corrupt state, a newer
    /// ring).
    #[error("merging what {peer} holds: {source}")]
    Merge {
        /// The peer's address or id.
        peer: String,
        /// Why the replica refused it.
        #[source]
        source: ringkv_core::wire::WireError,
    },
    /// A peer did not answer in time.
    #[error("{peer}: no answer within {after:?}")]
    Timeout {
        /// The peer's address or id.
        peer: String,
        /// How long it was given.
        after: Duration,
    },
    /// Gossip could not start.
    #[error("starting gossip on udp {addr}: {reason}")]
    Gossip {
        /// The gossip address.
        addr: std::net::SocketAddr,
        /// chitchat's error.
        reason: String,
    },
    /// A configured address names a host that did not resolve (in time).
    #[error("resolving {setting} {addr}: {reason}")]
    Resolve {
        /// The setting the address is from (`listen`, `advertise`, `admin_listen`).
        setting: &'static str,
        /// The address as configured.
        addr: String,
        /// The resolver's error, or that it found no address.
        reason: String,
    },
    /// Another process serves this node's id (a copied data directory started twice): two
    /// processes minting one node's dots would make new writes look already seen.
    #[error(
        "another process answers as node {node} at {addr}: stop it first, or, if this data \
         directory is a copy, give this process an empty one (it then joins as a new node)"
    )]
    DuplicateNode {
        /// The node id both processes claim.
        node: ringkv_core::NodeId,
        /// Where the other one answered.
        addr: String,
    },
    /// A peer's anti-entropy answer does not fit the question (as many summaries as spans).
    #[error("{peer} answered {got} summaries for {asked} spans")]
    Summaries {
        peer: String,
        got: usize,
        asked: usize,
    },
    /// A task the work ran on panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Error {
    /// A [`Error::Config`] for `setting`, explained by `message`.
    pub fn config(setting: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

/// The result of a node's own work.
pub type Result<T, E = Error> = std::result::Result<T, E>;
