//! The network side of a node: accept connections, speak the protocol, shut down gracefully.
//!
//! One task per connection reads frames. Quick requests are answered by that task at once;
//! every other request runs in its own task (see `lane`, which decides), so one connection
//! carries many requests at once and responses go back in completion order, tagged with the
//! request id. A per-connection semaphore bounds the
//! requests in flight: when it is exhausted the reader stops reading, and TCP pushes back on
//! the client. A writer task owns the socket's write half and batches responses into as few
//! syscalls as the traffic allows.
//!
//! The handshake (`handshake`) reads frames of at most `PRE_AUTH_MAX_FRAME_LEN` and must end
//! within the handshake timeout. Each request is then checked against the connection's role. A connection with nothing in
//! flight that stays silent for the idle timeout is closed.
//!
//! Shutdown: stop accepting; every connection stops reading new requests, finishes those in
//! flight and flushes their responses (the rest of a node's shutdown is in `node`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ringkv::stream::BoxedStream;
use ringkv::transport::write_batched;
use ringkv_core::auth::Role;
use ringkv_core::wire::{
    ClientFrame, FrameCodec, MAX_FRAME_LEN, PRE_AUTH_MAX_FRAME_LEN, ProtocolRange, Response,
    ResponseFrame, ServerFrame, WireError,
};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::node::NodeParts;
use crate::node::security::{Security, permitted};
use crate::node::tls::NodeTls;
use crate::ops::config::Limits;
use crate::ops::metrics::Metrics;
use crate::request::handshake::{Handshake, Refusal, authenticate, handshake, refuse};
use crate::request::lane::{self, Lane};
use crate::request::service::Service;

/// How long shutdown waits for connections to finish their requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's framed stream, as the server sees it.
pub(crate) type ServerFramed = Framed<BoxedStream, FrameCodec<ClientFrame, ServerFrame>>;

/// What the connection loop needs of a node: the service that answers requests, who may
/// connect (security, TLS), the limits and the request metrics.
#[derive(Debug)]
pub struct Endpoint {
    pub(crate) service: Arc<Service>,
    pub(crate) security: Arc<Security>,
    tls: Option<NodeTls>,
    limits: Limits,
    metrics: Arc<Metrics>,
    /// The protocol versions the node speaks: this build's, or the test knob's (the same
    /// range its own connections to peers offer).
    pub(crate) protocol: ProtocolRange,
}

impl Endpoint {
    /// The endpoint of the node `parts` make up, answering through `service`.
    pub fn new(parts: &NodeParts, service: Arc<Service>) -> Endpoint {
        Endpoint {
            service,
            security: parts.security.clone(),
            tls: parts.tls.clone(),
            limits: parts.limits.clone(),
            metrics: parts.metrics.clone(),
            protocol: parts.outbound.protocol,
        }
    }
}

/// Accepts connections until `shutdown`, then waits (up to [`DRAIN_TIMEOUT`]) for them to drain.
pub async fn serve(listener: TcpListener, endpoint: Arc<Endpoint>, shutdown: CancellationToken) {
    let max_connections = endpoint.limits.max_connections;
    let connections = Arc::new(Semaphore::new(max_connections));
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
        let endpoint = endpoint.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let metrics = &endpoint.metrics;
            let stream: BoxedStream = match &endpoint.tls {
                Some(tls) => {
                    let deadline = Duration::from_millis(endpoint.limits.handshake_timeout_ms);
                    match tokio::time::timeout(deadline, tls.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            metrics.connection_refused("tls");
                            return;
                        }
                        Err(_) => {
                            metrics.connection_refused("handshake_timeout");
                            return;
                        }
                    }
                }
                None => Box::new(stream),
            };
            match permit {
                Ok(_permit) => serve_stream(stream, peer, endpoint.clone(), shutdown).await,
                Err(_) => {
                    warn!(%peer, max = max_connections, "refusing connection over the cap");
                    metrics.connection_refused("over_cap");
                    let error = WireError::Overloaded {
                        reason: format!("more than {max_connections} connections"),
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
    endpoint: Arc<Endpoint>,
    shutdown: CancellationToken,
) {
    endpoint.metrics.connection_opened();
    let framed = Framed::new(stream, FrameCodec::new());
    serve_connection(framed, peer, &endpoint, shutdown).await;
    endpoint.metrics.connection_closed();
}

/// Speaks the protocol on one connection until the peer leaves, a fatal error, an idle
/// timeout, or shutdown.
async fn serve_connection(
    mut framed: ServerFramed,
    peer: SocketAddr,
    endpoint: &Endpoint,
    shutdown: CancellationToken,
) {
    let (service, metrics, limits) = (&endpoint.service, &endpoint.metrics, &endpoint.limits);
    // Until the handshake is complete, frames are small and the whole of it must take less
    // than the handshake timeout: a peer that has proven nothing gets little of the node.
    framed.codec_mut().set_max_frame_len(PRE_AUTH_MAX_FRAME_LEN);
    let deadline = Duration::from_millis(limits.handshake_timeout_ms);
    let handshake = match tokio::time::timeout(deadline, handshake(&mut framed, endpoint)).await {
        Err(_) => {
            debug!(%peer, "no handshake in time");
            metrics.connection_refused("handshake_timeout");
            return;
        }
        Ok(Err(refusal)) => {
            debug!(%peer, reason = refusal.reason, "handshake refused");
            refuse(metrics, &refusal);
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
        protocol_version,
    } = handshake;
    metrics.handshake(protocol_version);
    debug!(%peer, %agent, ?role, protocol_version, "connection open");

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
                    metrics.connection_refused("idle_timeout");
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
                match authenticate(&endpoint.security, challenge.unwrap_or_default(), &auth) {
                    Ok(proven) => {
                        role = proven;
                        if tx.send(ServerFrame::Authenticated(role)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Err(refusal) => {
                        refuse(metrics, &refusal);
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
                refuse(metrics, &refusal);
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
            if tx.send(answer(service, request.id, refused)).await.is_err() {
                break;
            }
            continue;
        }
        if let Some(error) = service.protocol_refusal(protocol_version, &request.body) {
            if tx
                .send(answer(service, request.id, Err(error)))
                .await
                .is_err()
            {
                break;
            }
            continue;
        }
        let lane = service.lane(&request.body);
        // A copy routed by a newer ring than ours waits for it on a task of its own.
        let behind = service.behind(request.epoch, &request.body);
        if lane == Lane::Inline && !behind {
            // Quick requests are answered right here: a task of their own would cost more
            // than the request (a spawn and a wake-up), and their answers still go out in
            // order with the others through the writer.
            let body = lane::run_inline(service, metrics, request.epoch, request.body);
            let body = service.guard_answer(protocol_version, body);
            if tx.send(answer(service, request.id, body)).await.is_err() {
                break;
            }
            continue;
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (service, metrics) = (service.clone(), metrics.clone());
        let tx = tx.clone();
        tokio::spawn(async move {
            let id = request.id;
            if behind {
                service.catch_up(request.epoch).await;
            }
            let body =
                lane::run(service.clone(), &metrics, lane, request.epoch, request.body).await;
            let body = service.guard_answer(protocol_version, body);
            let _ = tx.send(answer(&service, id, body)).await;
            drop(permit);
        });
    }
    // In-flight tasks hold clones of `tx`; the writer ends once they have all answered.
    drop(tx);
    let _ = writer.await;
    debug!(%peer, "connection closed");
}

/// The frame answering request `id` with `body`, carrying this node's ring epoch.
fn answer(service: &Service, id: u64, body: Result<Response, WireError>) -> ServerFrame {
    ServerFrame::Response(ResponseFrame {
        id,
        epoch: service.epoch(),
        body,
    })
}
