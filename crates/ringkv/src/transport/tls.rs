//! TLS for connections to nodes (rustls): the client side, shared by the SDK and by nodes
//! connecting to each other, and the PEM readers the server uses for its own side too.
//!
//! A cluster's nodes present certificates signed by a CA the clients trust (`ca_file`). A
//! node is verified against the address it is reached at (an IP address SAN in its
//! certificate), or against one name for every node (`server_name`: simpler for clusters
//! whose certificates name a service rather than each machine). A client that the nodes
//! require certificates of (mTLS) presents its own (`identity`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use super::stream::BoxedStream;
use crate::error::{Error, Result};

/// How to open TLS connections to nodes. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    connector: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CA certificates in `ca_file` (PEM); presents the certificate chain and key
    /// of `identity` (PEM files) to nodes that ask for one; checks every node's certificate
    /// against `server_name` if given, else against the address it is reached at.
    pub fn from_files(
        ca_file: &Path,
        identity: Option<(&Path, &Path)>,
        server_name: Option<&str>,
    ) -> Result<ClientTls> {
        let identity = match identity {
            Some((cert, key)) => Some((read_certs(cert)?, read_key(key)?)),
            None => None,
        };
        ClientTls::new(read_roots(ca_file)?, identity, server_name)
    }

    /// As [`ClientTls::from_files`], from certificates and a key already read (a node reads
    /// its own once, for serving and for connecting).
    pub fn new(
        roots: rustls::RootCertStore,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        server_name: Option<&str>,
    ) -> Result<ClientTls> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidArgument(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let config = match identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::InvalidArgument(format!("TLS client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        let server_name = server_name
            .map(|name| {
                ServerName::try_from(name.to_string())
                    .map_err(|e| Error::InvalidArgument(format!("TLS server name {name:?}: {e}")))
            })
            .transpose()?;
        Ok(ClientTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the TLS handshake over `tcp` to the node at `addr` (`host:port`). Connections do
    /// this themselves; public for tests that speak the protocol over a socket of their own.
    #[doc(hidden)]
    pub async fn connect(&self, addr: &str, tcp: TcpStream) -> std::io::Result<BoxedStream> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                ServerName::try_from(host.to_string()).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
                })?
            }
        };
        Ok(Box::new(self.connector.connect(name, tcp).await?))
    }
}

/// The cryptography rustls uses: `ring`'s (see the workspace's Cargo.toml for why). The
/// server builds its side of TLS with the same one.
#[doc(hidden)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file (the server reads its own chain with it).
#[doc(hidden)]
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(path, &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, &e))?;
    if certs.is_empty() {
        return Err(invalid(path, &"no certificate in it"));
    }
    Ok(certs)
}

/// The CA certificates in a PEM file, as the roots a peer's certificate must chain to.
#[doc(hidden)]
pub fn read_roots(path: &Path) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| invalid(path, &format!("not a CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The private key in a PEM file.
#[doc(hidden)]
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| invalid(path, &e))
}

fn invalid(path: &Path, reason: &dyn std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("TLS file {}: {reason}", path.display()))
}
