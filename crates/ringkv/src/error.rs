//! The SDK's errors, with the facts a caller needs to decide what to do.

use std::fmt;

use ringkv_core::NodeId;
use ringkv_core::wire::WireError;

/// Everything a ringkv call can fail with.
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
        required: usize,
        succeeded: usize,
        errors: Vec<NodeError>,
        in_doubt: bool,
    },
    /// Too few replicas can be asked at all for the requested quorum.
    #[error("unavailable: {required} replicas required, {alive} available")]
    Unavailable { required: usize, alive: usize },
    /// The call's deadline passed. For a write, `in_doubt` is true once any replica may have
    /// received it.
    #[error("timed out{}", if *in_doubt { " (the write may have been applied)" } else { "" })]
    Timeout { in_doubt: bool },
    /// The caller asked for something that cannot work; the message says which parameter.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A write without a context on a key with concurrent siblings. Read the key, merge the
    /// siblings, and write with the read's context (or overwrite explicitly).
    #[error(
        "the key has {siblings} concurrent siblings: read it, merge them and write with the \
         read's context, or overwrite explicitly"
    )]
    ContextRequired { siblings: u32 },
    /// A server refused the request (a limit, a malformed state, a full disk...).
    #[error("server refused the request: {0}")]
    Server(WireError),
    /// A node could not be reached: no request was sent to it.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// A connection broke while requests were on it: they may or may not have been applied.
    #[error("connection to {addr} lost: {reason}")]
    Connection { addr: String, reason: String },
    /// The peer does not speak this client's protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No seed or member answered a ring request.
    #[error("could not fetch the ring from any of {tried:?}: {reason}")]
    NoRing { tried: Vec<String>, reason: String },
}

/// What one replica answered, inside a [`Error::Quorum`].
#[derive(Clone, Debug)]
pub struct NodeError {
    pub node: NodeId,
    pub error: Box<Error>,
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

    pub(crate) fn from_wire(e: WireError) -> Error {
        match e {
            WireError::ContextRequired { siblings } => Error::ContextRequired { siblings },
            WireError::ProtocolVersion { .. } | WireError::HandshakeRequired => {
                Error::Protocol(e.to_string())
            }
            other => Error::Server(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
