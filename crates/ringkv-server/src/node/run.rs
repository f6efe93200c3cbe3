//! Starting a node on RocksDB and stopping it gracefully.

use std::sync::Arc;

use ringkv::transport::{ConnectOptions, Pool};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cluster::address::AddressKeeper;
use crate::cluster::{Keeper, spawn_membership};
use crate::error::{Error, Result};
use crate::node::NodeParts;
use crate::node::security::Security;
use crate::node::tls::NodeTls;
use crate::ops::admin::spawn_admin;
use crate::ops::config::{Addresses, Config};
use crate::request::actors::Actors;
use crate::request::{Endpoint, Service, serve};
use crate::storage::{RocksStore, Store};
use crate::workers::antientropy::spawn_anti_entropy;
use crate::workers::handoff::spawn_handoff;
use crate::workers::purge::spawn_purge;
use crate::workers::transfer::spawn_transfer;

/// Runs a node until `shutdown` is cancelled, then shuts it down gracefully.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::File {
        action: "creating the data directory",
        path: config.data_dir.clone(),
        source,
    })?;
    let dir = config.data_dir.clone();
    let settings = config.storage.clone();
    let store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || RocksStore::open_with(&dir, &settings)).await??,
    );
    let node = store.node_id();
    if config.restored {
        Actors::forget_clean_stop(store.as_ref())?;
    }
    let addresses = Addresses::resolve(&config).await?;
    let security = Arc::new(Security::load(&config.security)?);
    let tls = NodeTls::load(&config.tls)?;
    // How this node reaches the others: from its own address, so that node-to-node traffic
    // is recognisable as such, proving the cluster secret, over TLS if configured.
    let mut outbound = ConnectOptions::default().with_local_ip(addresses.gossip.ip());
    outbound.credential = security.node_credential();
    outbound.protocol = config.protocol;
    outbound.tls = tls.as_ref().map(|t| t.client().clone());
    // Before binding anything: another process answering as this node where the layout
    // lists it means this one must not serve.
    let instance = rand::random::<u64>().max(1);
    let addresser = AddressKeeper::new(
        node,
        instance,
        (addresses.advertise.clone(), addresses.gossip),
        config.gossip.interval(),
        Pool::with_options(outbound.clone()),
    );
    if let Some(layout) = Keeper::stored(store.as_ref()) {
        addresser.check_alone(&layout).await?;
    }
    let listener = TcpListener::bind(addresses.listen)
        .await
        .map_err(|source| Error::Listen {
            what: "tcp",
            addr: addresses.listen,
            source,
        })?;
    let membership = spawn_membership(
        &config,
        &addresses,
        store.clone(),
        &security,
        outbound.clone(),
    )
    .await?;
    let parts = NodeParts::new(store.clone(), membership.subscribe(), config.limits.clone())
        .with_instance(instance)
        .with_keeper(membership.keeper(), config.weight)
        .with_zone(&config.zone)
        .with_security(security.clone())
        .with_tls(tls.clone())
        .with_outbound(outbound)
        .with_proxy(addresses.advertise.clone())
        .with_durability(config.storage.durability);
    let service = Arc::new(Service::from_parts(&parts));
    let layout = membership.keeper().layout();
    if let Some(me) = layout.member(node)
        && me.zone != config.zone
    {
        warn!(
            configured = %config.zone,
            member = %me.zone,
            "this node's configured zone is not its zone in the layout, which is the one in \
             force; `ringkv cluster zone {node} {}` and a commit move it",
            if config.zone.is_empty() { "-" } else { &config.zone }
        );
    }
    let address = addresser
        .with_generation(membership.generation())
        .spawn(membership.keeper(), shutdown.clone());
    info!(
        node = %node,
        listen = %addresses.listen,
        advertise = %addresses.advertise,
        data_dir = %config.data_dir.display(),
        seeds = ?config.seeds,
        security = security.mode(),
        tls = tls.as_ref().map_or("off", NodeTls::mode),
        "ringkvd ready"
    );

    let handoff = spawn_handoff(&parts, config.handoff.clone(), shutdown.clone());
    let transfer = spawn_transfer(&parts, config.transfer.clone(), shutdown.clone());
    let anti_entropy = spawn_anti_entropy(&parts, config.anti_entropy.clone(), shutdown.clone());
    let purge = spawn_purge(&parts, config.purge.clone(), shutdown.clone());
    let admin = match addresses.admin {
        Some(addr) => Some(
            spawn_admin(
                addr,
                service.clone(),
                parts.metrics.clone(),
                config.checkpoint_dir(),
                security.cluster_secret().cloned(),
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let endpoint = Arc::new(Endpoint::new(&parts, service));
    // Listening, gossiping, workers started: what systemd waits for (`Type=notify`). The
    // signal handler (`main`) sends `STOPPING=1`.
    crate::ops::systemd::notify("READY=1");
    serve(listener, endpoint, shutdown).await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    let _ = handoff.await;
    let _ = transfer.await;
    let _ = anti_entropy.await;
    let _ = purge.await;
    // A twin found while running stopped this node: say so in the exit status, after the
    // graceful shutdown.
    let twin = address.await?;

    info!("stopping gossip");
    membership.shutdown().await;
    if let Err(twin) = twin {
        // No clean stop is recorded: the twin shares this node's actors, so a start of this
        // directory must take a new incarnation, never continue the one it minted under.
        info!("ringkvd stopped without recording a clean stop");
        return Err(twin);
    }
    info!("flushing the store");
    let replica = parts.replica.clone();
    // Stops stamping (a request the drain left running is refused from now on), flushes,
    // and records the clean stop: the next start may continue this incarnation.
    tokio::task::spawn_blocking(move || replica.actors().close(store.as_ref())).await??;
    info!("ringkvd stopped");
    Ok(())
}
