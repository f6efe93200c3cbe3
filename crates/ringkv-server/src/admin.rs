//! The admin HTTP endpoint (axum), off unless `admin_listen` is set:
//!
//! - `GET /health`: 200 while the process runs (a liveness probe).
//! - `GET /ready`: 200 once the node serves clients: it belongs to a cluster, hands out its
//!   ring, and enough members are alive for the default bucket's quorums; 503 with the reason
//!   otherwise (a readiness probe, or a load balancer's health check).
//! - `GET /metrics`: Prometheus text, see [`crate::metrics`].
//!
//! It is not authenticated: bind it to a private address.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::NodeSnapshot;
use crate::service::Service;

/// Binds `addr` and serves the endpoint until `shutdown`.
pub async fn spawn_admin(
    addr: SocketAddr,
    service: Arc<Service>,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for the admin endpoint on {addr}"))?;
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(service);
    info!(%addr, "admin endpoint: /health /ready /metrics");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            warn!(error = %e, "the admin endpoint stopped");
        }
    }))
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(service): State<Arc<Service>>) -> (StatusCode, String) {
    match service.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> axum::response::Response {
    // Counting hints and reading RocksDB properties touch the store: off the async threads.
    let encoded = tokio::task::spawn_blocking(move || {
        let view = service.view();
        let snapshot = NodeSnapshot {
            stats: service.stats().map_err(|e| e.to_string())?,
            engine: service.store().engine_stats().map_err(|e| e.to_string())?,
            ready: service.readiness().is_ok(),
            members: view.ring.members().len(),
            alive: view.alive.len(),
        };
        service
            .metrics()
            .encode(snapshot)
            .map_err(|e| e.to_string())
    })
    .await;
    match encoded {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(Err(reason)) => (StatusCode::INTERNAL_SERVER_ERROR, reason).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
