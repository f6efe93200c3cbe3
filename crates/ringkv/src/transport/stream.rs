//! The byte streams connections run on: TCP, TLS over TCP, or (in a simulation) whatever a
//! [`Dialer`] returns. Everything above the socket sees only a [`BoxedStream`].

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a node: plain TCP or TLS over it.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A connection's stream, whichever it is.
pub type BoxedStream = Box<dyn Stream>;

/// Opens streams to nodes in place of TCP: a simulation runs clients and nodes in one
/// process over an in-memory network, with partitions and crashes of its own making.
pub trait Dialer: Send + Sync + std::fmt::Debug {
    /// A stream to the node at `addr`, or the error a real connect would give.
    fn dial<'a>(
        &'a self,
        addr: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<BoxedStream>> + Send + 'a>>;
}
