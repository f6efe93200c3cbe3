//! Errors that cross the wire as values.
//!
//! A server never answers a bad request by dropping the connection: it answers with one of
//! these, and the client turns it into a typed error. The only exception is a frame that cannot
//! be parsed at all (the stream is no longer in sync): that gets a [`WireError`] in a
//! [`super::ServerFrame::Fatal`] frame, and then the connection is closed.

use serde::{Deserialize, Serialize};

use super::protocol::ProtocolRange;
use crate::layout::LayoutError;
use crate::ring::RingEpoch;

/// An error a server reports for one request (or, as `Fatal`, for a whole connection).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The two sides share no protocol version (see [`super::protocol`]).
    #[error(
        "protocol version {} is not supported (this node speaks {})",
        ProtocolRange::stated(*received_min, *received),
        ProtocolRange::stated(*min_supported, *supported)
    )]
    ProtocolVersion {
        /// The newest version this node speaks.
        supported: u32,
        /// The newest version the peer's `Hello` offered.
        received: u32,
        /// The oldest version this node speaks (0 from a node that speaks only `supported`).
        #[serde(default)]
        min_supported: u32,
        /// The oldest version the peer offered (0 when it offered only `received`).
        #[serde(default)]
        received_min: u32,
    },
    /// A frame that could not be decoded; the connection is closed after this.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// What the decoder found wrong.
        reason: String,
    },
    /// A frame longer than the receiver accepts; the connection is closed after this.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The length the frame's header announced, in bytes.
        len: u64,
        /// The largest frame the receiver accepted at that point of the connection.
        max: u64,
    },
    /// A request was sent before the handshake.
    #[error("the first frame on a connection must be Hello")]
    HandshakeRequired,
    /// The key is longer than the node's `max_key_bytes`.
    #[error("key of {len} bytes exceeds the limit of {max}")]
    KeyTooLarge {
        /// The key's length in bytes.
        len: u64,
        /// The node's `max_key_bytes`.
        max: u64,
    },
    /// The value is longer than the node's `max_value_bytes`.
    #[error("value of {len} bytes exceeds the limit of {max}")]
    ValueTooLarge {
        /// The value's length in bytes.
        len: u64,
        /// The node's `max_value_bytes`.
        max: u64,
    },
    /// A write without a context on a key that holds concurrent siblings: it would add yet
    /// another sibling without resolving them. Read the key, merge, and write with the read's
    /// context (or overwrite explicitly).
    #[error(
        "the key has {siblings} concurrent siblings; read it and write with the read's context \
         to resolve them, or overwrite explicitly"
    )]
    ContextRequired {
        /// How many concurrent siblings the key holds.
        siblings: u32,
    },
    /// The write would leave more siblings than the node allows.
    #[error(
        "the key would hold {count} siblings (limit {max}); resolve them by writing with a \
         read's context"
    )]
    TooManySiblings {
        /// How many siblings the key would hold after the write.
        count: u32,
        /// The most the node allows.
        max: u32,
    },
    /// The node's ring differs from the client's and, under its own ring, the node does not
    /// hold this key. The client should refetch the ring and retry.
    #[error("the request was routed by an older ring than this node's ({epoch}); refetch the ring")]
    StaleRing {
        /// The node's own ring epoch, newer than the one the request was routed by.
        epoch: RingEpoch,
    },
    /// A copy without a hint (a `Merge` or `Put` for a replica) sent to a node that, under the
    /// very ring the request was routed by, holds the key on neither side of any transfer: a
    /// misrouted copy, which its clean-up would delete or which would count toward a quorum
    /// for nothing. The sender re-plans (a fallback takes copies with a hint, always).
    #[error("this node is not a replica of the key under ring {epoch}; re-plan")]
    NotOwner {
        /// The ring both sides hold.
        epoch: RingEpoch,
    },
    /// The request is well-formed but makes no sense (an empty bucket name, a corrupt state).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong with the request.
        reason: String,
    },
    /// The storage engine failed; the write was not applied.
    #[error("storage error: {reason}")]
    Storage {
        /// The storage engine's error, for the client's logs.
        reason: String,
    },
    /// An `lww` write's timestamp is further ahead of the node's clock than the node allows:
    /// the client's clock runs fast. Accepted, the write would win over every later write
    /// and delete of the key until real time caught up with it. Protocol 8.
    #[error(
        "the write's timestamp is {ahead_ms} ms ahead of this node's clock (at most {max_ms} ms \
         allowed): the writer's clock runs fast; fix its time sync"
    )]
    ClockAhead {
        /// How far ahead of the node's clock the timestamp was.
        ahead_ms: u64,
        /// The most the node allows (`limits.max_clock_ahead_ms`).
        max_ms: u64,
    },
    /// The cluster cannot take this request yet, though the node is healthy: a write that
    /// expires while gossip has not said which protocol every member speaks. Try again in a
    /// moment (the SDK does); it says nothing about the node. Protocol 9.
    #[error("not yet: {reason}")]
    NotYet {
        /// What the node is waiting to learn.
        reason: String,
    },
    /// A touch reached the node after one of the writes it would extend had expired there
    /// (by the node's clock). Protocol 9.
    #[error("the value expired before the touch reached this node")]
    Expired,
    /// The node's disk is full: writes are refused, reads are still served.
    #[error("the node's disk is full; writes are refused until space is freed")]
    StorageFull,
    /// The node refuses work it cannot take now (connection or in-flight caps).
    #[error("node overloaded: {reason}")]
    Overloaded {
        /// What the node cannot take on now (a cap reached, a stalled storage engine).
        reason: String,
    },
    /// The node is shutting down and takes no new requests.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The node has just started and has not heard from the cluster yet, so its view of the
    /// ring would be incomplete; ask another node.
    #[error("the node is not ready: {reason}")]
    NotReady {
        /// What the node is still waiting for.
        reason: String,
    },
    /// A coordinated operation (proxy mode) did not reach its quorum. `in_doubt`: a write
    /// may have been applied on some replicas.
    #[error("coordination failed: {reason}")]
    Coordination {
        /// Why the operation failed, as the coordinating node's SDK reported it.
        reason: String,
        /// Whether a write may have been applied on some replicas anyway: a retry must then
        /// count on the write possibly being there.
        in_doubt: bool,
        /// The successful replica answers the quorum needed, when a quorum failed.
        #[serde(default)]
        required: Option<u32>,
        /// The successful answers it got.
        #[serde(default)]
        succeeded: Option<u32>,
    },
    /// A membership operation (`cluster join`, `commit`...) was refused.
    #[error("{reason}")]
    Layout {
        /// Why, in the words of the layout's own error.
        reason: String,
        /// The layout's error itself, to branch on (`None` from a node whose error this
        /// build cannot read: a newer kind of refusal).
        #[serde(default, deserialize_with = "super::protocol::lenient")]
        error: Option<LayoutError>,
    },
    /// The connection did not prove a credential the node accepts (a missing or wrong cluster
    /// secret or client token); the connection is closed after this.
    #[error("not authenticated: {reason}")]
    Unauthenticated {
        /// What was missing or wrong (never the credential itself).
        reason: String,
    },
    /// The connection's role may not make this request (a client token asking for a node's
    /// operation, such as anti-entropy or a membership change).
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Which request the role may not make.
        reason: String,
    },
}

impl WireError {
    /// A refused membership operation, with the layout's error as text and as facts.
    pub fn layout(error: LayoutError) -> WireError {
        WireError::Layout {
            reason: error.to_string(),
            error: Some(error),
        }
    }

    /// Whether the same request may succeed if sent again (to this node later, or to another).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            WireError::StaleRing { .. }
                | WireError::NotOwner { .. }
                | WireError::Storage { .. }
                | WireError::Overloaded { .. }
                | WireError::ShuttingDown
                | WireError::NotReady { .. }
                | WireError::NotYet { .. }
                | WireError::Coordination { .. }
        )
    }
}
