//! TLS material for test clusters: a CA and certificates made at run time.
//!
//! [`TlsFiles::generate`] writes a fresh CA, one certificate shared by every node (valid for
//! 127.0.0.1) and one client certificate, as PEM files in the test's directory. The cluster
//! writes the node side into every node's config, and the support's own connections and
//! clients present the client side, so a test of TLS needs no files checked in and no
//! `openssl` on the machine.

use std::path::{Path, PathBuf};

/// A CA, a certificate for every node (for 127.0.0.1) and one for clients, as PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca: PathBuf,
    /// The nodes' certificate and key, also presented when they connect to each other.
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
    /// A client's certificate and key, signed by the same CA.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Require client certificates (mutual TLS).
    pub mutual: bool,
}

impl TlsFiles {
    /// Makes a new CA and certificates in `dir`.
    pub fn generate(dir: &Path, mutual: bool) -> anyhow::Result<TlsFiles> {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
        };
        std::fs::create_dir_all(dir)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let issue = |name: &str| -> anyhow::Result<(String, String)> {
            let mut params = CertificateParams::new(vec![name.to_string()])?;
            params
                .subject_alt_names
                .push(SanType::IpAddress([127, 0, 0, 1].into()));
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca, &ca_key)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            node_cert: dir.join("node.pem"),
            node_key: dir.join("node.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            mutual,
        };
        std::fs::write(&files.ca, ca.pem())?;
        let (cert, key) = issue("ringkv-node")?;
        std::fs::write(&files.node_cert, cert)?;
        std::fs::write(&files.node_key, key)?;
        let (cert, key) = issue("ringkv-client")?;
        std::fs::write(&files.client_cert, cert)?;
        std::fs::write(&files.client_key, key)?;
        Ok(files)
    }

    /// A client's TLS: trusting the CA, presenting the client certificate.
    pub fn client(&self) -> anyhow::Result<ringkv::ClientTls> {
        Ok(ringkv::ClientTls::from_files(
            &self.ca,
            Some((&self.client_cert, &self.client_key)),
            None,
        )?)
    }

    pub(crate) fn toml(&self) -> String {
        let mut out = format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\n",
            self.node_cert.display(),
            self.node_key.display(),
            self.ca.display()
        );
        if self.mutual {
            out.push_str(&format!("client_ca_file = \"{}\"\n", self.ca.display()));
        }
        out
    }
}
