//! [`Pool`]: one connection per node, opened on first use and reopened after it breaks.
//!
//! The client routes every request through one pool; servers and the CLI keep pools of their
//! own to speak to single nodes outside any quorum (see the [module docs](super)).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringkv_core::wire::{Request, Response};
use ringkv_core::{NodeId, RingEpoch};

use super::ConnectOptions;
use super::connection::Connection;
use crate::error::{Error, Result};

/// Connections by address. Opening is serialised per address (a slot's async mutex), so a
/// burst of calls to a node that has no connection yet opens one, not one per call.
#[derive(Debug, Default)]
pub struct Pool {
    /// Short critical sections (find or insert a slot), never across an await.
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Connection>>>>>,
    options: ConnectOptions,
}

impl Pool {
    /// A pool of plain TCP connections from the kernel's choice of address, proving nothing:
    /// enough for nodes that require neither TLS nor a credential.
    pub fn new() -> Pool {
        Pool::default()
    }

    /// A pool whose connections leave from `ip`: a server uses its own address, so that peers
    /// (and firewalls) see node-to-node traffic coming from the node, not from whichever
    /// address the kernel would pick.
    pub fn with_local_ip(ip: std::net::IpAddr) -> Pool {
        Pool::with_options(ConnectOptions::default().with_local_ip(ip))
    }

    /// A pool whose connections are opened as `options` says.
    pub fn with_options(options: ConnectOptions) -> Pool {
        Pool {
            slots: Mutex::default(),
            options,
        }
    }

    /// Sends `body` to the node at `addr` (connecting first if needed, within
    /// `connect_timeout`) and returns its answer with the node's ring epoch.
    pub async fn call(
        &self,
        addr: &str,
        connect_timeout: Duration,
        epoch: RingEpoch,
        body: Request,
    ) -> Result<(Response, RingEpoch)> {
        let connection = self.connection(addr, connect_timeout).await?;
        connection.call(epoch, body).await
    }

    /// The protocol version the connection to `addr` negotiated (connecting if need be).
    pub async fn protocol_version(&self, addr: &str, connect_timeout: Duration) -> Result<u32> {
        Ok(self
            .connection(addr, connect_timeout)
            .await?
            .protocol_version())
    }

    /// As [`Pool::call`], to member `node` listed at `addr`: a process that answers there
    /// under another id (a member's machine wiped and restarted with a new id, or an address
    /// reused) is not that member, and the call fails as if the member were unreachable,
    /// before anything is sent. Its "not found" must never count as the member's answer.
    pub async fn call_node(
        &self,
        node: NodeId,
        addr: &str,
        connect_timeout: Duration,
        epoch: RingEpoch,
        body: Request,
    ) -> Result<(Response, RingEpoch)> {
        let connection = self.connection(addr, connect_timeout).await?;
        let found = connection.node();
        if found != node {
            return Err(Error::Unreachable {
                addr: addr.to_string(),
                reason: format!("it answers as node {found}, not as member {node}"),
            });
        }
        connection.call(epoch, body).await
    }

    async fn connection(&self, addr: &str, connect_timeout: Duration) -> Result<Connection> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(addr.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        let (connection, _welcome) = Connection::open(addr, &self.options, connect_timeout).await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Drops every connection (their tasks end when the server sees the close).
    pub fn clear(&self) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
