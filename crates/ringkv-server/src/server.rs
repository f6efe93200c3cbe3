//! The network side of a node: accept connections, speak the protocol, shut down gracefully.
//!
//! One task per connection reads frames. Quick requests (reads, and unsynced writes that the
//! store refuses to throttle; see `Service::runs_inline`) are answered by that task at once:
//! on this hardware a hand-off to another thread costs more than the request. Every other
//! request runs in its own task (storage work on a blocking thread), so one connection
//! carries many requests at once and responses go back in completion order, tagged with the
//! request id. A per-connection semaphore bounds the
//! requests in flight: when it is exhausted the reader stops reading, and TCP pushes back on
//! the client. A writer task owns the socket's write half and batches responses into as few
//! syscalls as the traffic allows.
//!
//! The handshake (`Hello`, `Welcome`, and `Auth` when the node requires it; see `security`)
//! reads frames of at most `PRE_AUTH_MAX_FRAME_LEN` and must end within the handshake timeout.
//! Each request is then checked against the connection's role. A connection with nothing in
//! flight that stays silent for the idle timeout is closed.
//!
//! Shutdown: stop accepting; every connection stops reading new requests, finishes those in
//! flight and flushes their responses (the rest of a node's shutdown is in `node`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use ringkv::stream::BoxedStream;
use ringkv::transport::write_batched;
use ringkv_core::auth::{CHALLENGE_LEN, Role};
use ringkv_core::wire::{
    Auth, ClientFrame, FrameCodec, MAX_FRAME_LEN, PRE_AUTH_MAX_FRAME_LEN, PROTOCOL_VERSION,
    Request, Response, ResponseFrame, ServerFrame, Welcome, WireError,
};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::Limits;
use crate::security::permitted;
use crate::service::Service;

/// How long shutdown waits for connections to finish their requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

type ServerFramed = Framed<BoxedStream, FrameCodec<ClientFrame, ServerFrame>>;

/// Accepts connections until `shutdown`, then waits (up to [`DRAIN_TIMEOUT`]) for them to drain.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let permit = connections.clone().try_acquire_owned();
        let service = service.clone();
        let limits = limits.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let stream: BoxedStream = match service.tls() {
                Some(tls) => {
                    let deadline = Duration::from_millis(limits.handshake_timeout_ms);
                    match tokio::time::timeout(deadline, tls.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            service.metrics().connection_refused("tls");
                            return;
                        }
                        Err(_) => {
                            service.metrics().connection_refused("handshake_timeout");
                            return;
                        }
                    }
                }
                None => Box::new(stream),
            };
            match permit {
                Ok(_permit) => serve_stream(stream, peer, service, limits, shutdown).await,
                Err(_) => {
                    warn!(%peer, max = limits.max_connections, "refusing connection over the cap");
                    service.metrics().connection_refused("over_cap");
                    let error = WireError::Overloaded {
                        reason: format!("more than {} connections", limits.max_connections),
                    };
                    let mut framed =
                        Framed::new(stream, FrameCodec::<ClientFrame, ServerFrame>::new());
                    let _ = framed.send(ServerFrame::Fatal(error)).await;
                }
            }
        });
    }
    drop(listener);
    tracker.close();
    info!(connections = tracker.len(), "draining connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            remaining = tracker.len(),
            "connections did not drain in time"
        );
    }
}

/// Serves one established connection (after TLS, if any) until the peer leaves, a fatal
/// error, an idle timeout, or `shutdown`. Public for simulations, which bring their own
/// streams.
pub async fn serve_stream(
    stream: BoxedStream,
    peer: SocketAddr,
    service: Arc<Service>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    service.metrics().connection_opened();
    let counted = service.clone();
    let framed = Framed::new(stream, FrameCodec::new());
    serve_connection(framed, peer, service, limits, shutdown).await;
    counted.metrics().connection_closed();
}

/// Speaks the protocol on one connection until the peer leaves, a fatal error, an idle
/// timeout, or shutdown.
async fn serve_connection(
    mut framed: ServerFramed,
    peer: SocketAddr,
    service: Arc<Service>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    // Until the handshake is complete, frames are small and the whole of it must take less
    // than the handshake timeout: a peer that has proven nothing gets little of the node.
    framed.codec_mut().set_max_frame_len(PRE_AUTH_MAX_FRAME_LEN);
    let deadline = Duration::from_millis(limits.handshake_timeout_ms);
    let handshake = match tokio::time::timeout(deadline, handshake(&mut framed, &service)).await {
        Err(_) => {
            debug!(%peer, "no handshake in time");
            service.metrics().connection_refused("handshake_timeout");
            return;
        }
        Ok(Err(refusal)) => {
            debug!(%peer, reason = refusal.reason, "handshake refused");
            refuse(&service, &refusal);
            if let Some(error) = refusal.error {
                let _ = framed.send(ServerFrame::Fatal(error)).await;
            }
            return;
        }
        Ok(Ok(handshake)) => handshake,
    };
    framed.codec_mut().set_max_frame_len(MAX_FRAME_LEN);
    let Handshake {
        mut role,
        challenge,
        agent,
    } = handshake;
    debug!(%peer, %agent, ?role, "connection open");

    let (mut sink, mut stream) = framed.split();
    let (tx, mut rx) = mpsc::channel::<ServerFrame>(limits.max_in_flight_per_connection);
    let writer = tokio::spawn(async move {
        write_batched(&mut rx, &mut sink).await;
    });

    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight_per_connection));
    let idle = match limits.idle_timeout_ms {
        0 => Duration::MAX,
        ms => Duration::from_millis(ms),
    };
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => break,
            frame = tokio::time::timeout(idle, stream.next()) => match frame {
                Ok(frame) => frame,
                // Silent, but still owed answers: not idle.
                Err(_) if in_flight.available_permits() < limits.max_in_flight_per_connection => {
                    continue;
                }
                Err(_) => {
                    debug!(%peer, "closing an idle connection");
                    service.metrics().connection_refused("idle_timeout");
                    break;
                }
            },
        };
        let request = match frame {
            None => break,
            Some(Ok(ClientFrame::Request(request))) => request,
            Some(Ok(ClientFrame::Auth(auth))) => {
                // An anonymous client may still prove a credential (a node, a tool); a
                // connection that already has a role, or had no challenge, may not.
                let challenge = challenge.as_deref().filter(|_| role == Role::Client);
                match authenticate(&service, challenge.unwrap_or_default(), &auth) {
                    Ok(proven) => {
                        role = proven;
                        if tx.send(ServerFrame::Authenticated(role)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Err(refusal) => {
                        refuse(&service, &refusal);
                        if let Some(error) = refusal.error {
                            let _ = tx.send(ServerFrame::Fatal(error)).await;
                        }
                        break;
                    }
                }
            }
            Some(Ok(ClientFrame::Hello(_))) => {
                let error = WireError::Malformed {
                    reason: "Hello sent twice".into(),
                };
                let _ = tx.send(ServerFrame::Fatal(error)).await;
                break;
            }
            Some(Err(e)) => {
                debug!(%peer, error = %e, "closing connection");
                let refusal = Refusal::malformed(&e);
                refuse(&service, &refusal);
                if let Some(error) = refusal.error {
                    let _ = tx.send(ServerFrame::Fatal(error)).await;
                }
                break;
            }
        };
        if !permitted(role, &request.body) {
            let refused = Err(WireError::Forbidden {
                reason: format!(
                    "{} is a node's operation: it needs the cluster secret",
                    request.body.kind()
                ),
            });
            if tx
                .send(answer(&service, request.id, refused))
                .await
                .is_err()
            {
                break;
            }
            continue;
        }
        if service.runs_inline(&request.body) {
            // Quick requests are answered right here: a task of their own would cost more
            // than the request (a spawn and a wake-up), and their answers still go out in
            // order with the others through the writer.
            let body = execute_inline(&service, request.epoch, request.body);
            if tx.send(answer(&service, request.id, body)).await.is_err() {
                break;
            }
            continue;
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let service = service.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let id = request.id;
            let body = execute(service.clone(), request.epoch, request.body).await;
            let _ = tx.send(answer(&service, id, body)).await;
            drop(permit);
        });
    }
    // In-flight tasks hold clones of `tx`; the writer ends once they have all answered.
    drop(tx);
    let _ = writer.await;
    debug!(%peer, "connection closed");
}

/// A connection whose handshake is complete.
struct Handshake {
    /// What the connection may do (see `security::permitted`).
    role: Role,
    /// The challenge sent in the `Welcome`, if the node authenticates connections.
    challenge: Option<Bytes>,
    agent: String,
}

/// Why a handshake failed: the reason counted in the metrics, and the error frame to send.
struct Refusal {
    reason: &'static str,
    error: Option<WireError>,
}

impl Refusal {
    fn new(reason: &'static str, error: WireError) -> Refusal {
        Refusal {
            reason,
            error: Some(error),
        }
    }

    /// The peer closed the connection: nothing to answer.
    fn closed() -> Refusal {
        Refusal {
            reason: "closed",
            error: None,
        }
    }

    /// A frame that did not decode (or the peer that left mid-frame: `closed`).
    fn malformed(e: &ringkv_core::wire::CodecError) -> Refusal {
        match e {
            ringkv_core::wire::CodecError::Io(_) => Refusal::closed(),
            _ => Refusal {
                reason: "malformed",
                error: e.to_wire(),
            },
        }
    }
}

/// Counts `refusal` in the metrics, unless the peer simply left (a port probe, a reset).
fn refuse(service: &Service, refusal: &Refusal) {
    if refusal.reason != "closed" {
        service.metrics().connection_refused(refusal.reason);
    }
}

/// The role `auth` proves over `challenge` (empty: there is nothing left to prove on this
/// connection, so no proof holds).
fn authenticate(service: &Service, challenge: &[u8], auth: &Auth) -> Result<Role, Refusal> {
    if !challenge.is_empty() && service.security().verify(auth.role, challenge, &auth.proof) {
        return Ok(auth.role);
    }
    let error = WireError::Unauthenticated {
        reason: format!("the {:?} credential was not accepted", auth.role),
    };
    Err(Refusal::new("unauthenticated", error))
}

/// The frame answering request `id` with `body`, carrying this node's ring epoch.
fn answer(service: &Service, id: u64, body: Result<Response, WireError>) -> ServerFrame {
    ServerFrame::Response(ResponseFrame {
        id,
        epoch: service.epoch(),
        body,
    })
}

/// `Hello` → `Welcome` (with a challenge if the node has a cluster secret), then, if the node
/// requires authentication, `Auth` → `Authenticated`.
async fn handshake(framed: &mut ServerFramed, service: &Service) -> Result<Handshake, Refusal> {
    let hello = match framed.next().await {
        None => return Err(Refusal::closed()),
        Some(Err(e)) => return Err(Refusal::malformed(&e)),
        Some(Ok(ClientFrame::Hello(hello))) => hello,
        Some(Ok(_)) => return Err(Refusal::new("malformed", WireError::HandshakeRequired)),
    };
    if hello.protocol_version != PROTOCOL_VERSION {
        let error = WireError::ProtocolVersion {
            supported: PROTOCOL_VERSION,
            received: hello.protocol_version,
        };
        return Err(Refusal::new("protocol_version", error));
    }
    let security = service.security();
    let challenge = security
        .challenges()
        .then(|| Bytes::from(rand::random::<[u8; CHALLENGE_LEN]>().to_vec()));
    let welcome = Welcome {
        protocol_version: PROTOCOL_VERSION,
        node: service.node(),
        epoch: service.epoch(),
        challenge: challenge.clone(),
        auth_required: security.requires_auth(),
    };
    if framed.send(ServerFrame::Welcome(welcome)).await.is_err() {
        return Err(Refusal::closed());
    }
    let role = match security.anonymous_role() {
        Some(role) => role,
        // Only a node with a cluster secret requires proofs, so there is a challenge.
        None => {
            let auth = match framed.next().await {
                Some(Ok(ClientFrame::Auth(auth))) => auth,
                Some(Ok(_)) => {
                    let error = WireError::Unauthenticated {
                        reason: "this node requires a client token or the cluster secret".into(),
                    };
                    return Err(Refusal::new("unauthenticated", error));
                }
                Some(Err(e)) => return Err(Refusal::malformed(&e)),
                None => return Err(Refusal::closed()),
            };
            let role = authenticate(service, challenge.as_deref().unwrap_or_default(), &auth)?;
            if framed.send(ServerFrame::Authenticated(role)).await.is_err() {
                return Err(Refusal::closed());
            }
            role
        }
    };
    Ok(Handshake {
        role,
        challenge,
        agent: hello.agent,
    })
}

/// Runs a quick request (see `Service::runs_inline`) on the calling thread: a hand-off to a
/// blocking thread costs more than most reads and unsynced writes take (two wake-ups, tens of
/// µs here).
fn execute_inline(
    service: &Service,
    epoch: ringkv_core::RingEpoch,
    request: Request,
) -> Result<Response, WireError> {
    let name = request.kind();
    let started = std::time::Instant::now();
    let result = service.handle(epoch, request);
    service
        .metrics()
        .observe(name, started.elapsed(), result.is_ok());
    result
}

/// Runs one request that is not quick: a durable write (written here, then waiting for the
/// group commit), a coordinated one (proxy mode), or anything else on a blocking thread.
async fn execute(
    service: Arc<Service>,
    epoch: ringkv_core::RingEpoch,
    request: Request,
) -> Result<Response, WireError> {
    let name = request.kind();
    let started = std::time::Instant::now();
    let result = match request {
        Request::Coordinate(op) => service.coordinate(op).await,
        request if service.needs_sync(&request) => service.handle_durable(epoch, request).await,
        _ => {
            let handler = service.clone();
            tokio::task::spawn_blocking(move || handler.handle(epoch, request))
                .await
                .unwrap_or_else(|e| {
                    warn!(error = %e, "request handler failed");
                    Err(WireError::Storage {
                        reason: "the request handler failed".into(),
                    })
                })
        }
    };
    service
        .metrics()
        .observe(name, started.elapsed(), result.is_ok());
    result
}
