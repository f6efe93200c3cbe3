//! A whole node: the store opened, gossip joined, the background workers (handoff, transfer,
//! anti-entropy) and the admin port started, connections served; and, on shutdown (SIGTERM,
//! SIGINT), each stopped in the reverse order: connections drained, workers stopped, gossip
//! left, the store flushed.

use std::sync::Arc;

use anyhow::Context as _;
use ringkv::transport::ConnectOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::admin::spawn_admin;
use crate::antientropy::spawn_anti_entropy;
use crate::config::Config;
use crate::handoff::spawn_handoff;
use crate::membership::spawn_membership;
use crate::security::Security;
use crate::server::serve;
use crate::service::Service;
use crate::storage::{RocksStore, Store};
use crate::tls::NodeTls;
use crate::transfer::spawn_transfer;

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
    let security = Arc::new(Security::load(&config.security)?);
    let tls = NodeTls::load(&config.tls)?;
    // How this node reaches the others: from its own address, so that node-to-node traffic
    // is recognisable as such, proving the cluster secret, over TLS if configured.
    let outbound = ConnectOptions {
        local_ip: Some(config.advertised().ip()),
        credential: security.node_credential(),
        tls: tls.as_ref().map(|t| t.client().clone()),
        dialer: None,
    };
    let membership = spawn_membership(&config, store.clone(), &security, outbound.clone()).await?;
    let service = Arc::new(
        Service::new(store.clone(), membership.subscribe(), config.limits.clone())
            .with_keeper(membership.keeper(), config.weight)
            .with_security(security.clone())
            .with_tls(tls.clone())
            .with_outbound(outbound)
            .with_proxy(config.advertised().to_string())
            .with_durability(config.storage.durability),
    );
    info!(
        node = %node,
        listen = %config.listen,
        advertise = %config.advertised(),
        data_dir = %config.data_dir.display(),
        seeds = ?config.seeds,
        security = security.mode(),
        tls = tls.as_ref().map_or("off", NodeTls::mode),
        "ringkvd ready"
    );

    let handoff = spawn_handoff(service.clone(), config.handoff.clone(), shutdown.clone());
    let transfer = spawn_transfer(service.clone(), config.transfer.clone(), shutdown.clone());
    let anti_entropy = spawn_anti_entropy(
        service.clone(),
        config.anti_entropy.clone(),
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
