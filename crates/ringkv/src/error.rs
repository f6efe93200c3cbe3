//! The SDK's errors, with the facts a caller needs to decide what to do.
//!
//! [`Error`] is one enum for every call; each variant carries what is known as fields
//! (counts, the replicas' own errors, whether a write may have been applied) so that callers
//! branch on facts, not on message text. [`Error::is_retryable`] and [`Error::is_in_doubt`]
//! classify them. Text remains only where the fact is text: an OS error's description, or a
//! proxy's `Coordination` failure, which crosses the wire as a message.

use std::fmt;

use ringkv_core::NodeId;
use ringkv_core::context::ContextError;
use ringkv_core::wire::{ProtocolRange, WireError};

/// Everything a ringkv call can fail with.
///
/// Each variant carries the facts an application decides on: whether to retry, and whether
/// a failed write may have been applied anyway.
///
/// ```
/// use ringkv::Error;
///
/// fn advise(e: &Error) -> &'static str {
///     match e {
///         Error::ContextRequired { .. } => "read, merge the siblings, write with the context",
///         e if e.is_in_doubt() => "the write may show up later: make it idempotent",
///         e if e.is_retryable() => "retry after a back-off",
///         _ => "fix the request",
///     }
/// }
/// assert_eq!(advise(&Error::Timeout { in_doubt: true }), "the write may show up later: make it idempotent");
/// assert_eq!(advise(&Error::InvalidArgument("r = 0".into())), "fix the request");
/// let e = Error::ContextRequired { siblings: 2 };
/// assert!(e.to_string().contains("2 concurrent siblings"));
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer than `required` replicas answered successfully. For a write, `in_doubt` says
    /// whether it may nevertheless have been applied somewhere (and so may show up later).
    #[error(
        "quorum not reached: {succeeded} of {required} required replicas succeeded{}: {}",
        if *in_doubt { " (the write may have been applied)" } else { "" },
        NodeErrors(errors)
    )]
    Quorum {
        /// Successful answers the call needed (`r`, `w`, or more with `dw` or during a
        /// transfer).
        required: usize,
        /// Successful answers it got before the quorum became impossible.
        succeeded: usize,
        /// What each replica that failed answered, in the order they failed.
        errors: Vec<NodeError>,
        /// Whether the write may have been applied all the same (always false for reads).
        in_doubt: bool,
    },
    /// Too few replicas can be asked at all for the requested quorum. Match it with `..`:
    /// it may say more in a later release.
    #[non_exhaustive]
    #[error(
        "unavailable: {required} replicas required, {alive} available{}",
        down_list(down)
    )]
    Unavailable {
        /// Replicas the quorum needs.
        required: usize,
        /// Replicas the client considers reachable (gossip and its own failure detector).
        alive: usize,
        /// The key's replicas the client considers down, each as `node ID at ADDR: why`
        /// (the servers' failure detectors, or this client's failed calls and back-off).
        down: Vec<String>,
    },
    /// The call's deadline passed. For a write, `in_doubt` is true once any replica may have
    /// received it.
    #[error("timed out{}", if *in_doubt { " (the write may have been applied)" } else { "" })]
    Timeout {
        /// Whether the write may have been applied all the same.
        in_doubt: bool,
    },
    /// The caller asked for something that cannot work; the message says which parameter.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A write without a context on a key with concurrent siblings. Read the key, merge the
    /// siblings, and write with the read's context (or overwrite explicitly).
    #[error(
        "the key has {siblings} concurrent siblings: read it, merge them and write with the \
         read's context, or overwrite explicitly"
    )]
    ContextRequired {
        /// Live siblings the replica holds: how many values the application must merge.
        siblings: u32,
    },
    /// A server refused the request (a limit, a malformed state, a full disk...).
    #[error("server refused the request: {0}")]
    Server(WireError),
    /// A node could not be reached: no request was sent to it.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// The address dialled.
        addr: String,
        /// Why the connection or its handshake failed, as the OS or the TLS layer said.
        reason: String,
    },
    /// A connection broke while requests were on it: they may or may not have been applied.
    #[error("connection to {addr} lost: {reason}")]
    Connection {
        /// The node's address.
        addr: String,
        /// Why it broke, as the OS said or the node's closing error frame.
        reason: String,
    },
    /// The peer does not speak this client's protocol, or broke it.
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// No seed or member answered a ring request.
    #[error("could not fetch the ring from any of {tried:?}: {reason}")]
    NoRing {
        /// Every address asked, members first, then seeds.
        tried: Vec<String>,
        /// Why the last one asked did not give a usable ring.
        reason: String,
    },
}

/// How a peer did not speak the protocol, inside [`Error::Protocol`]. None of these passes by
/// retrying: they mean another release, a wrong port, or a bug on one side.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The node and this client share no protocol version: one of them is of a release too
    /// old or too new for the other (see `ringkv_core::wire::protocol`).
    #[error("protocol version {client} is not supported (this node speaks {node})")]
    Version {
        /// The versions this client offered in its `Hello`.
        client: ProtocolRange,
        /// The versions the node speaks.
        node: ProtocolRange,
    },
    /// The node received a request before the connection's handshake.
    #[error("the first frame on a connection must be Hello")]
    HandshakeRequired,
    /// A handshake step was answered with another frame than the one it waits for: the peer
    /// is probably not a ringkv node (a wrong port), or not one of this release.
    #[error("{addr} answered the handshake with something else than {expected}")]
    UnexpectedFrame {
        /// The peer's address.
        addr: String,
        /// The frame the handshake waited for.
        expected: &'static str,
    },
    /// A frame from the peer could not be decoded during the handshake.
    #[error("{addr}: {reason}")]
    Frame {
        /// The peer's address.
        addr: String,
        /// What the decoder said.
        reason: String,
    },
    /// The request carries something the node's protocol version would silently drop (an
    /// expiry: see `ringkv_core::wire::EXPIRY_PROTOCOL_VERSION`), so it was not sent.
    #[error(
        "{addr} speaks protocol {speaks}, and this {request} needs {needs} (expiry): upgrade \
         that node"
    )]
    Unsupported {
        /// The node's address.
        addr: String,
        /// The request, as named on the wire.
        request: &'static str,
        /// The protocol version the request needs.
        needs: u32,
        /// The version the connection negotiated.
        speaks: u32,
    },
    /// A node answered a request with a response of another kind.
    #[error("{request} answered with {answer}")]
    UnexpectedAnswer {
        /// The request, as named on the wire (`get`, `put`, `merge`, `coordinate-get`...).
        request: &'static str,
        /// The kind of response it got instead (`value`, `stamped`, `merged`...).
        answer: &'static str,
    },
    /// A proxy node answered a coordinated read with context bytes this client cannot read.
    #[error("the proxy's context: {0}")]
    ProxyContext(ContextError),
}

/// What one replica answered, inside a [`Error::Quorum`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeError {
    /// The replica.
    pub node: NodeId,
    /// Its failure: an error the node answered, or the connection's or the timeout's.
    pub error: Box<Error>,
}

impl NodeError {
    pub(crate) fn new(node: NodeId, error: Error) -> NodeError {
        NodeError {
            node,
            error: Box::new(error),
        }
    }
}

struct NodeErrors<'a>(&'a [NodeError]);

impl fmt::Display for NodeErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "no replica answered with an error");
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{}: {}", e.node, e.error)?;
        }
        Ok(())
    }
}

impl Error {
    /// Whether the same call may succeed if made again (after a back-off).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Quorum { .. }
            | Error::Unavailable { .. }
            | Error::Timeout { .. }
            | Error::Connection { .. }
            | Error::Unreachable { .. }
            | Error::NoRing { .. } => true,
            Error::Server(e) => e.is_retryable(),
            Error::InvalidArgument(_) | Error::ContextRequired { .. } | Error::Protocol(_) => false,
        }
    }

    /// Whether a failed write may still have been applied (and so may show up in later reads).
    pub fn is_in_doubt(&self) -> bool {
        matches!(
            self,
            Error::Quorum { in_doubt: true, .. }
                | Error::Timeout { in_doubt: true }
                | Error::Server(WireError::Coordination { in_doubt: true, .. })
        )
    }

    /// An error that is about the request itself, not about a replica: every replica would
    /// give the same answer, so waiting for the others is pointless.
    pub(crate) fn is_about_the_request(&self) -> bool {
        match self {
            Error::Server(e) => matches!(
                e,
                WireError::KeyTooLarge { .. }
                    | WireError::ValueTooLarge { .. }
                    | WireError::InvalidRequest { .. }
                    | WireError::TooManySiblings { .. }
            ),
            Error::ContextRequired { .. } | Error::InvalidArgument(_) => true,
            _ => false,
        }
    }

    /// Whether no spare may stand in for the node that answered this: the request itself was
    /// refused (every node would refuse it alike), a write's timestamp was (`ClockAhead`): a
    /// spare whose clock runs a little faster would take it, and hinted handoff and repair
    /// would then spread a write the homes refused; or the node refused the call's ring
    /// ([`Error::is_ring_refusal`]), or is not ready (`NotReady`: it has no ring yet, or
    /// routes by an older one than the call's): either way it is up, and a spare's hinted
    /// copy would count for a home that readers by the newer ring ask and that lacks it.
    pub(crate) fn rules_out_spares(&self) -> bool {
        self.is_about_the_request()
            || self.is_ring_refusal()
            || matches!(
                self,
                Error::Server(WireError::ClockAhead { .. } | WireError::NotReady { .. })
            )
    }

    /// Whether a node refused the request because the call's plan was made by a ring it no
    /// longer follows: `StaleRing` (the node's ring is newer) or `NotOwner` (the node is no
    /// replica of the key). The node is up; the plan is wrong. A spare counted in its place
    /// would make a write acknowledged where readers by the newer ring do not look (its copy
    /// sits in a hint until handoff delivers it), so the attempt fails instead and is made
    /// again by the newer ring (`coordinator::retry`).
    pub(crate) fn is_ring_refusal(&self) -> bool {
        matches!(
            self,
            Error::Server(WireError::StaleRing { .. } | WireError::NotOwner { .. })
        )
    }

    /// A node's error answer as the caller sees it: the protocol's own failures become
    /// [`Error::Protocol`], a missing context [`Error::ContextRequired`], the rest
    /// [`Error::Server`].
    pub(crate) fn from_wire(e: WireError) -> Error {
        match e {
            WireError::ContextRequired { siblings } => Error::ContextRequired { siblings },
            WireError::ProtocolVersion {
                supported,
                received,
                min_supported,
                received_min,
            } => Error::Protocol(ProtocolError::Version {
                client: ProtocolRange::stated(received_min, received),
                node: ProtocolRange::stated(min_supported, supported),
            }),
            WireError::HandshakeRequired => Error::Protocol(ProtocolError::HandshakeRequired),
            other => Error::Server(other),
        }
    }

    /// A response of another kind than `request` asks for.
    pub(crate) fn unexpected(request: &'static str, answer: &ringkv_core::wire::Response) -> Error {
        Error::Protocol(ProtocolError::UnexpectedAnswer {
            request,
            answer: answer.kind(),
        })
    }
}

/// The result of every fallible SDK call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `"; down: A; B"` for an [`Error::Unavailable`]'s replicas down, or nothing.
fn down_list(down: &[String]) -> String {
    if down.is_empty() {
        String::new()
    } else {
        format!("; down: {}", down.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_mismatch_names_both_versions_and_reads_as_the_node_said_it() {
        let wire = WireError::ProtocolVersion {
            supported: 8,
            received: 9,
            min_supported: 7,
            received_min: 0,
        };
        let text = format!("protocol error: {wire}");
        assert_eq!(
            text,
            "protocol error: protocol version 9 is not supported (this node speaks 7-8)"
        );
        let error = Error::from_wire(wire);
        let (client, node) = match &error {
            Error::Protocol(ProtocolError::Version { client, node }) => (*client, *node),
            other => panic!("{other:?}"),
        };
        assert_eq!((client.min, client.max, node.min, node.max), (9, 9, 7, 8));
        assert_eq!(error.to_string(), text);
        assert!(!error.is_retryable());
    }
}
