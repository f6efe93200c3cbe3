//! TLS on a node (rustls): the acceptor for incoming connections, and the client side it
//! uses to reach other nodes.
//!
//! Every node presents `cert_file` (signed by the cluster's CA, `ca_file`) to whoever
//! connects, and to the nodes it connects to if they ask for a client certificate. With
//! `client_ca_file` (mTLS) the node requires every connection to present a certificate
//! signed by that CA: the cluster's CA for nodes, the same or another for applications.

use std::sync::Arc;

use ringkv::ClientTls;
use ringkv::stream::BoxedStream;
use ringkv::tls::{provider, read_certs, read_key, read_roots};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::ops::config;

/// A node's TLS: what it accepts with and what it connects with.
#[derive(Clone)]
pub struct NodeTls {
    acceptor: tokio_rustls::TlsAcceptor,
    client: ClientTls,
    mutual: bool,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("mutual", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// Loads the files `config` names; `None` if TLS is off (no `cert_file`).
    pub fn load(config: &config::Tls) -> Result<Option<NodeTls>> {
        let (Some(cert), Some(key), Some(ca)) =
            (&config.cert_file, &config.key_file, &config.ca_file)
        else {
            return Ok(None);
        };
        let chain = read_certs(cert).map_err(|e| tls_error("cert_file", e))?;
        let private_key = read_key(key).map_err(|e| tls_error("key_file", e))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("protocol versions", e))?;
        let builder = match &config.client_ca_file {
            Some(client_ca) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(read_roots(client_ca).map_err(|e| tls_error("client_ca_file", e))?),
                    provider(),
                )
                .build()
                .map_err(|e| tls_error("client_ca_file", e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        // The node presents the same certificate when it connects to the others.
        let identity = (chain.clone(), private_key.clone_key());
        let server = builder
            .with_single_cert(chain, private_key)
            .map_err(|e| tls_error("cert_file, tls.key_file", e))?;
        let roots = read_roots(ca).map_err(|e| tls_error("ca_file", e))?;
        let client = ClientTls::new(roots, Some(identity), config.server_name.as_deref())
            .map_err(|e| tls_error("server_name", e))?;
        Ok(Some(NodeTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            client,
            mutual: config.client_ca_file.is_some(),
        }))
    }

    /// The TLS handshake of an incoming connection.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<BoxedStream> {
        Ok(Box::new(self.acceptor.accept(tcp).await?))
    }

    /// How this node opens TLS connections to the others.
    pub fn client(&self) -> &ClientTls {
        &self.client
    }

    /// The mode, for the startup log line.
    pub fn mode(&self) -> &'static str {
        if self.mutual { "mutual" } else { "server" }
    }
}

/// A TLS file or setting that could not be used, named as the operator writes it.
fn tls_error(setting: &str, e: impl std::fmt::Display) -> Error {
    Error::config(format!("tls.{setting}"), format!("tls.{setting}: {e}"))
}
