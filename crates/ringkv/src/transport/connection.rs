//! One multiplexed connection to one node.
//!
//! Many requests share the connection: each gets an id, a writer task sends frames in the
//! order they are queued (batching whatever is ready into one flush), and a reader task hands
//! each response to whoever waits for its id, in whatever order the server answers. When the
//! connection breaks, every waiter gets a `Connection` error at once and the connection
//! reports itself closed, so the pool opens a new one on next use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ringkv_core::wire::{
    Auth, ClientFrame, FrameCodec, Hello, ProtocolRange, Request, RequestFrame, Response,
    ServerFrame, Welcome, WireError,
};
use ringkv_core::{NodeId, RingEpoch};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;
use tracing::debug;

use super::ConnectOptions;
use super::stream::BoxedStream;
use crate::error::{Error, ProtocolError, Result};

/// Requests queued for the writer task at most. Beyond this, callers wait: a slow node slows
/// its callers instead of growing client memory without bound.
const WRITE_QUEUE: usize = 1024;

/// A reply as the reader hands it over: the body and the node's ring epoch.
type Reply = Result<(Response, RingEpoch)>;

/// A handle to a live connection. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: String,
    /// The node id the server gave in its `Welcome`.
    node: NodeId,
    /// The protocol version the connection negotiated.
    protocol_version: u32,
    queue: mpsc::Sender<ClientFrame>,
    /// Waiters by request id. Short critical sections (insert, remove), never across an await.
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl Connection {
    /// Connects to `addr` as `options` say (from which address, over TLS or not) and
    /// completes the handshake within `timeout`, proving the options' credential if the node
    /// asks for one.
    pub(crate) async fn open(
        addr: &str,
        options: &ConnectOptions,
        timeout: Duration,
    ) -> Result<(Connection, Welcome)> {
        let credential = options.credential.as_ref();
        let connect = async {
            let stream = open_stream(addr, options)
                .await
                .map_err(|e| unreachable(addr, &e))?;
            let mut framed = Framed::new(stream, FrameCodec::<ServerFrame, ClientFrame>::new());
            let offered = options.protocol;
            let agent = concat!("ringkv-rust/", env!("CARGO_PKG_VERSION"));
            let hello = Hello::new(offered, agent);
            framed
                .send(ClientFrame::Hello(hello))
                .await
                .map_err(|e| unreachable(addr, &e))?;
            let welcome = match next_frame(&mut framed, addr).await? {
                ServerFrame::Welcome(welcome) => welcome,
                _ => return Err(unexpected_frame(addr, "a welcome")),
            };
            // A node must pick a version this side offered; one that does not is of a
            // release that does not negotiate, or broken.
            if !offered.contains(welcome.protocol_version) {
                return Err(Error::Protocol(ProtocolError::Version {
                    client: offered,
                    node: ProtocolRange::stated(0, welcome.protocol_version),
                }));
            }
            match (&welcome.challenge, credential) {
                (Some(challenge), Some(credential)) => {
                    let auth = Auth {
                        role: credential.role(),
                        proof: credential.proof(challenge).into(),
                    };
                    framed
                        .send(ClientFrame::Auth(auth))
                        .await
                        .map_err(|e| unreachable(addr, &e))?;
                    match next_frame(&mut framed, addr).await? {
                        ServerFrame::Authenticated(_) => {}
                        _ => return Err(unexpected_frame(addr, "an authentication answer")),
                    }
                }
                (_, None) if welcome.auth_required => {
                    return Err(Error::from_wire(WireError::Unauthenticated {
                        reason: format!(
                            "{addr} requires a client token (ClientConfig::with_credential)"
                        ),
                    }));
                }
                // No challenge: the node authenticates nobody, the credential is not needed.
                _ => {}
            }
            Ok((framed, welcome))
        };
        let (framed, welcome) = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| unreachable(addr, &format!("no handshake within {timeout:?}")))??;

        let (mut sink, mut stream) = framed.split();
        let (queue, mut outbox) = mpsc::channel::<ClientFrame>(WRITE_QUEUE);
        let inner = Arc::new(Inner {
            addr: addr.to_string(),
            node: welcome.node,
            protocol_version: welcome.protocol_version,
            queue,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        });

        // The tasks hold only weak references: when the last handle is dropped, the queue's
        // sender goes with it, the writer ends and closes the socket's write half, the server
        // closes its side, and the reader ends too.
        let writer_inner = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let failed = !super::writer::write_batched(&mut outbox, &mut sink).await;
            let _ = sink.close().await;
            if let Some(inner) = writer_inner.upgrade() {
                inner.close(if failed {
                    "write failed"
                } else {
                    "client closed it"
                });
            }
        });

        let reader_inner = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let reason = loop {
                let frame = stream.next().await;
                let Some(inner) = reader_inner.upgrade() else {
                    return;
                };
                match frame {
                    Some(Ok(ServerFrame::Response(response))) => {
                        let waiter = inner.lock_pending().remove(&response.id);
                        if let Some(waiter) = waiter {
                            let reply = match response.body {
                                Ok(body) => Ok((body, response.epoch)),
                                Err(e) => Err(Error::from_wire(e)),
                            };
                            let _ = waiter.send(reply);
                        }
                    }
                    Some(Ok(ServerFrame::Fatal(e))) => break format!("server closed it: {e}"),
                    Some(Ok(ServerFrame::Welcome(_) | ServerFrame::Authenticated(_))) => {
                        break "unexpected handshake frame".into();
                    }
                    Some(Err(e)) => break e.to_string(),
                    None => break "closed by the server".into(),
                }
            };
            if let Some(inner) = reader_inner.upgrade() {
                inner.close(&reason);
            }
        });

        Ok((Connection { inner }, welcome))
    }

    /// The node id the server gave when the connection opened.
    pub(crate) fn node(&self) -> NodeId {
        self.inner.node
    }

    /// The protocol version the connection negotiated.
    pub(crate) fn protocol_version(&self) -> u32 {
        self.inner.protocol_version
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Sends one request and waits for its response. Dropping the future abandons the wait
    /// (the response, if it comes, is discarded).
    pub(crate) async fn call(&self, epoch: RingEpoch, body: Request) -> Reply {
        let needs = body.needs_protocol();
        if needs > self.inner.protocol_version {
            return Err(Error::Protocol(ProtocolError::Unsupported {
                addr: self.inner.addr.clone(),
                request: body.kind(),
                needs,
                speaks: self.inner.protocol_version,
            }));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.lock_pending().insert(id, tx);
        // Registered before the close check, so a concurrent close cannot miss this waiter.
        if self.is_closed() {
            self.inner.lock_pending().remove(&id);
            return Err(self.inner.lost("connection closed"));
        }
        let guard = PendingGuard {
            inner: &self.inner,
            id,
        };
        let frame = ClientFrame::Request(RequestFrame { id, epoch, body });
        if self.inner.queue.send(frame).await.is_err() {
            return Err(self.inner.lost("connection closed"));
        }
        let reply = rx
            .await
            .unwrap_or_else(|_| Err(self.inner.lost("connection closed")));
        drop(guard);
        reply
    }
}

impl Inner {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Reply>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lost(&self, reason: &str) -> Error {
        conn_error(&self.addr, &reason)
    }

    /// Marks the connection closed and fails every waiter.
    fn close(&self, reason: &str) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        debug!(addr = %self.addr, reason, "connection closed");
        let waiters: Vec<_> = self.lock_pending().drain().collect();
        for (_, waiter) in waiters {
            let _ = waiter.send(Err(self.lost(reason)));
        }
    }
}

/// The byte stream to `addr`: from the options' dialer, or TCP (with TLS over it if set).
async fn open_stream(addr: &str, options: &ConnectOptions) -> std::io::Result<BoxedStream> {
    if let Some(dialer) = &options.dialer {
        return dialer.dial(addr).await;
    }
    let tcp = connect(addr, options.local_ip).await?;
    let _ = tcp.set_nodelay(true);
    #[cfg(feature = "tls")]
    if let Some(tls) = &options.tls {
        return tls
            .connect(addr, tcp)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("TLS handshake: {e}")));
    }
    Ok(Box::new(tcp))
}

/// Opens a TCP connection to `addr`, bound to `local_ip` when given.
async fn connect(addr: &str, local_ip: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(ip) = local_ip else {
        return TcpStream::connect(addr).await;
    };
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address resolved");
    for target in tokio::net::lookup_host(addr).await? {
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(ip, 0))?;
        match socket.connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Removes an abandoned request's waiter when its caller stops waiting (timeout, cancel).
struct PendingGuard<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.lock_pending().remove(&self.id);
    }
}

fn unreachable(addr: &str, reason: &dyn std::fmt::Display) -> Error {
    Error::Unreachable {
        addr: addr.to_string(),
        reason: reason.to_string(),
    }
}

fn unexpected_frame(addr: &str, expected: &'static str) -> Error {
    Error::Protocol(ProtocolError::UnexpectedFrame {
        addr: addr.to_string(),
        expected,
    })
}

fn conn_error(addr: &str, reason: &dyn std::fmt::Display) -> Error {
    Error::Connection {
        addr: addr.to_string(),
        reason: reason.to_string(),
    }
}

type ClientFramed = Framed<BoxedStream, FrameCodec<ServerFrame, ClientFrame>>;

/// The next frame of the handshake: an error frame becomes the error it carries.
async fn next_frame(framed: &mut ClientFramed, addr: &str) -> Result<ServerFrame> {
    match framed.next().await {
        Some(Ok(ServerFrame::Fatal(e))) => Err(Error::from_wire(e)),
        Some(Ok(frame)) => Ok(frame),
        Some(Err(e)) => Err(Error::Protocol(ProtocolError::Frame {
            addr: addr.to_string(),
            reason: e.to_string(),
        })),
        None => Err(unreachable(addr, &"closed during the handshake")),
    }
}
