//! The admin HTTP endpoint (axum), off unless `admin_listen` is set:
//!
//! - `GET /health`: 200 while the process runs (a liveness probe).
//! - `GET /ready`: 200 once the node serves clients: it is a member of a cluster (or leaving
//!   one), hands out its ring, and enough members are alive for the default bucket's quorums; 503 with the reason
//!   otherwise (a readiness probe, or a load balancer's health check).
//! - `GET /metrics`: Prometheus text, see [`crate::ops::metrics`].
//! - `POST /checkpoint`: a backup. RocksDB writes a consistent checkpoint of the node's store
//!   (hard links to its immutable files, so it is quick) to a new directory under
//!   `storage.checkpoint_dir`, whose path the answer gives. Copy it away, then delete it.
//!
//! The GETs are not authenticated: bind the port to a private address. With a cluster secret
//! configured, `POST /checkpoint` needs the *admin token* (`Authorization: Bearer <token>`),
//! so that whoever reaches the port cannot fill the disk with checkpoints. The token is a MAC
//! of a fixed text under the cluster secret (`ringkvd --print-admin-token` prints it): the
//! port is plain HTTP, and a token overheard there lets one take checkpoints, not act as a
//! node. Without a secret the cluster has no security at all, and neither does the port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use ringkv_core::auth::Secret;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::ops::metrics::{Metrics, NodeSnapshot};
use crate::request::Service;

/// Binds `addr` and serves the endpoint until `shutdown`.
pub async fn spawn_admin(
    addr: SocketAddr,
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    checkpoints: PathBuf,
    secret: Option<Secret>,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen {
            what: "the admin endpoint",
            addr,
            source,
        })?;
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(scrape))
        .route("/checkpoint", post(checkpoint))
        .with_state(Admin {
            service,
            metrics,
            checkpoints,
            secret: secret.map(Arc::new),
        });
    info!(%addr, "admin endpoint: /health /ready /metrics /checkpoint");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            warn!(error = %e, "the admin endpoint stopped");
        }
    }))
}

/// What the handlers share.
#[derive(Clone, Debug)]
struct Admin {
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    checkpoints: PathBuf,
    /// The cluster secret the POST endpoints require, if the cluster has one.
    secret: Option<Arc<Secret>>,
}

/// What separates the admin token from the secret's other uses.
const ADMIN_CONTEXT: &[u8] = b"ringkv admin token";

/// The admin token of a cluster with `secret` (hex), if it has one: see the module docs.
pub fn admin_token(secret: Option<&Secret>) -> Option<String> {
    let tag = secret?.mac(ADMIN_CONTEXT, b"");
    Some(tag.iter().map(|b| format!("{b:02x}")).collect())
}

impl Admin {
    /// Whether `headers` carry the admin token (`Authorization: Bearer <token>`, the scheme
    /// in any case), compared in constant time; always, when the cluster has no secret.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(secret) = &self.secret else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|(_, token)| unhex(token.trim()));
        given.is_some_and(|tag| tag.len() == 32 && secret.verify_mac(ADMIN_CONTEXT, b"", &tag))
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(admin): State<Admin>) -> (StatusCode, String) {
    match admin.service.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn scrape(State(admin): State<Admin>) -> axum::response::Response {
    let (service, metrics) = (admin.service, admin.metrics);
    // Counting hints and reading RocksDB properties touch the store: off the async threads.
    let encoded = tokio::task::spawn_blocking(move || {
        let view = service.view();
        let snapshot = NodeSnapshot {
            stats: service.stats().map_err(|e| e.to_string())?,
            engine: service.store().engine_stats().map_err(|e| e.to_string())?,
            ready: service.readiness().is_ok(),
            members: view.ring.members().len(),
            alive: view.alive.len(),
            transfer_waits_on_down: view.transfer_waits_on_down().len(),
            log_syncs: service.log_syncs(),
            durable_writes: service.durable_writes(),
        };
        metrics.encode(snapshot).map_err(|e| e.to_string())
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

/// `POST /checkpoint`: writes a checkpoint to `<checkpoints>/<unix ms>` and answers its path.
async fn checkpoint(State(admin): State<Admin>, headers: HeaderMap) -> (StatusCode, String) {
    if !admin.authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "POST /checkpoint needs the admin token: Authorization: Bearer <token> \
             (`ringkvd --print-admin-token` prints it)\n"
                .into(),
        );
    }
    let made = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&admin.checkpoints).map_err(|e| {
            format!(
                "creating the checkpoint directory {}: {e}",
                admin.checkpoints.display()
            )
        })?;
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let dir = admin.checkpoints.join(millis.to_string());
        admin
            .service
            .replica()
            .checkpoint(&dir)
            .map_err(|e| e.to_string())?;
        info!(dir = %dir.display(), "wrote a checkpoint");
        Ok::<_, String>(dir)
    })
    .await;
    match made {
        Ok(Ok(dir)) => (StatusCode::OK, format!("{}\n", dir.display())),
        Ok(Err(reason)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{reason}\n")),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}
