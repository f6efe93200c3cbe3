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
//! Shutdown (SIGTERM, SIGINT): stop accepting; every connection stops reading new requests,
//! finishes those in flight and flushes their responses; gossip stops; the store is flushed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::{SinkExt, StreamExt};
use ringkv::transport::write_batched;
use ringkv_core::wire::{
    ClientFrame, FrameCodec, PROTOCOL_VERSION, Request, ResponseFrame, ServerFrame, Welcome,
    WireError,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::admin::spawn_admin;
use crate::antientropy::spawn_anti_entropy;
use crate::config::{Config, Limits};
use crate::handoff::spawn_handoff;
use crate::membership::spawn_membership;
use crate::service::Service;
use crate::storage::{RocksStore, Store};
use crate::transfer::spawn_transfer;

/// How long shutdown waits for connections to finish their requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

type ServerFramed = Framed<TcpStream, FrameCodec<ClientFrame, ServerFrame>>;

/// Runs a node until `shutdown` is cancelled, then shuts it down gracefully.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let dir = config.data_dir.clone();
    let settings = config.storage.clone();
    let store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || RocksStore::open_with(&dir, &settings))
            .await?
            .with_context(|| format!("opening the store in {}", config.data_dir.display()))?,
    );
    let node = store.node_id();
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on tcp {}", config.listen))?;
    let membership = spawn_membership(&config, store.clone()).await?;
    let service = Arc::new(
        Service::new(store.clone(), membership.subscribe(), config.limits.clone())
            .with_keeper(membership.keeper(), config.weight)
            .with_proxy(config.advertised().to_string())
            .with_durability(config.storage.durability),
    );
    info!(
        node = %node,
        listen = %config.listen,
        advertise = %config.advertised(),
        data_dir = %config.data_dir.display(),
        seeds = ?config.seeds,
        "ringkvd ready"
    );

    let handoff = spawn_handoff(
        service.clone(),
        config.handoff.clone(),
        config.advertised().ip(),
        shutdown.clone(),
    );
    let transfer = spawn_transfer(
        service.clone(),
        config.transfer.clone(),
        config.advertised().ip(),
        shutdown.clone(),
    );
    let anti_entropy = spawn_anti_entropy(
        service.clone(),
        config.anti_entropy.clone(),
        config.advertised().ip(),
        shutdown.clone(),
    );
    let admin = match config.admin_listen {
        Some(addr) => Some(
            spawn_admin(
                addr,
                service.clone(),
                config.checkpoint_dir(),
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    serve(listener, service, config.limits.clone(), shutdown).await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    let _ = handoff.await;
    let _ = transfer.await;
    let _ = anti_entropy.await;

    info!("stopping gossip");
    membership.shutdown().await;
    info!("flushing the store");
    tokio::task::spawn_blocking(move || store.flush()).await??;
    info!("ringkvd stopped");
    Ok(())
}

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
            let mut framed = Framed::new(stream, FrameCodec::new());
            match permit {
                Ok(_permit) => {
                    service.metrics().connection_opened();
                    let counted = service.clone();
                    serve_connection(framed, peer, service, limits, shutdown).await;
                    counted.metrics().connection_closed();
                }
                Err(_) => {
                    warn!(%peer, max = limits.max_connections, "refusing connection over the cap");
                    let error = WireError::Overloaded {
                        reason: format!("more than {} connections", limits.max_connections),
                    };
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

/// Speaks the protocol on one connection until the peer leaves, a fatal error, or shutdown.
async fn serve_connection(
    mut framed: ServerFramed,
    peer: SocketAddr,
    service: Arc<Service>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let handshake = Duration::from_millis(limits.handshake_timeout_ms);
    let hello = match tokio::time::timeout(handshake, framed.next()).await {
        Err(_) => {
            debug!(%peer, "no handshake in time");
            return;
        }
        Ok(None) => return,
        Ok(Some(Err(e))) => {
            if let Some(error) = e.to_wire() {
                let _ = framed.send(ServerFrame::Fatal(error)).await;
            }
            return;
        }
        Ok(Some(Ok(ClientFrame::Request(_)))) => {
            let _ = framed
                .send(ServerFrame::Fatal(WireError::HandshakeRequired))
                .await;
            return;
        }
        Ok(Some(Ok(ClientFrame::Hello(hello)))) => hello,
    };
    if hello.protocol_version != PROTOCOL_VERSION {
        let error = WireError::ProtocolVersion {
            supported: PROTOCOL_VERSION,
            received: hello.protocol_version,
        };
        let _ = framed.send(ServerFrame::Fatal(error)).await;
        return;
    }
    let welcome = Welcome {
        protocol_version: PROTOCOL_VERSION,
        node: service.node(),
        epoch: service.epoch(),
    };
    if framed.send(ServerFrame::Welcome(welcome)).await.is_err() {
        return;
    }
    debug!(%peer, agent = %hello.agent, "connection open");

    let (mut sink, mut stream) = framed.split();
    let (tx, mut rx) = mpsc::channel::<ServerFrame>(limits.max_in_flight_per_connection);
    let writer = tokio::spawn(async move {
        write_batched(&mut rx, &mut sink).await;
    });

    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight_per_connection));
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => break,
            frame = stream.next() => frame,
        };
        match frame {
            None => break,
            Some(Ok(ClientFrame::Request(request))) if service.runs_inline(&request.body) => {
                // Quick requests are answered right here: a task of their own would cost
                // more than the request (a spawn and a wake-up), and their answers still go
                // out in order with the others through the writer.
                let id = request.id;
                let body = execute_inline(&service, request.epoch, request.body);
                let frame = ResponseFrame {
                    id,
                    epoch: service.epoch(),
                    body,
                };
                if tx.send(ServerFrame::Response(frame)).await.is_err() {
                    break;
                }
            }
            Some(Ok(ClientFrame::Request(request))) => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let service = service.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let id = request.id;
                    let body = execute(service.clone(), request.epoch, request.body).await;
                    let frame = ResponseFrame {
                        id,
                        epoch: service.epoch(),
                        body,
                    };
                    let _ = tx.send(ServerFrame::Response(frame)).await;
                    drop(permit);
                });
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
                if let Some(error) = e.to_wire() {
                    let _ = tx.send(ServerFrame::Fatal(error)).await;
                }
                break;
            }
        }
    }
    // In-flight tasks hold clones of `tx`; the writer ends once they have all answered.
    drop(tx);
    let _ = writer.await;
    debug!(%peer, "connection closed");
}

/// Runs a quick request (see `Service::runs_inline`) on the calling thread: a hand-off to a
/// blocking thread costs more than most reads and unsynced writes take (two wake-ups, tens of
/// µs here).
fn execute_inline(
    service: &Service,
    epoch: ringkv_core::RingEpoch,
    request: Request,
) -> Result<ringkv_core::wire::Response, WireError> {
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
) -> Result<ringkv_core::wire::Response, WireError> {
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
