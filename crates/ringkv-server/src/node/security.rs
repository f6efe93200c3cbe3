//! Authentication and authorisation on a node: the credentials it accepts, the role each
//! connection gets, and what each role may ask.
//!
//! Three modes, by configuration (see `config::Security` and the README's threat model):
//!
//! - no cluster secret: the cluster trusts its network; every connection may do everything;
//! - a cluster secret, no client tokens: gossip is authenticated (`cluster::signed_gossip`),
//!   and only connections that prove the secret act as nodes; the others act as clients;
//! - a cluster secret and client tokens: every connection proves one or the other before its
//!   first request, or is closed.
//!
//! The proofs are challenge-response (`ringkv_core::auth`): secrets never cross the wire.

use std::path::Path;

use ringkv::Credential;
use ringkv_core::auth::{self, Role, Secret};
use ringkv_core::wire::Request;

use crate::error::{Error, Result};
use crate::ops::config;

/// The credentials this node accepts and uses. `Debug` prints no secret.
#[derive(Clone, Debug, Default)]
pub struct Security {
    cluster_secret: Option<Secret>,
    client_tokens: Vec<Secret>,
}

impl Security {
    /// Reads the secret files named in `config`.
    pub fn load(config: &config::Security) -> Result<Security> {
        let cluster_secret = match &config.cluster_secret_file {
            Some(path) => Some(Secret::from_file(path).map_err(|source| Error::File {
                action: "reading the cluster secret",
                path: path.to_path_buf(),
                source,
            })?),
            None => None,
        };
        let client_tokens = match &config.client_tokens_file {
            Some(path) => read_tokens(path)?,
            None => Vec::new(),
        };
        Ok(Security {
            cluster_secret,
            client_tokens,
        })
    }

    /// A node with these credentials in memory (tests).
    pub fn new(cluster_secret: Option<Secret>, client_tokens: Vec<Secret>) -> Security {
        Security {
            cluster_secret,
            client_tokens,
        }
    }

    /// The mode, for the startup log line (never a secret).
    pub fn mode(&self) -> &'static str {
        match (&self.cluster_secret, self.client_tokens.is_empty()) {
            (None, _) => "open (no cluster secret)",
            (Some(_), true) => "cluster secret; clients unauthenticated",
            (Some(_), false) => "cluster secret and client tokens",
        }
    }

    /// The cluster secret, if the node has one (gossip MACs).
    pub fn cluster_secret(&self) -> Option<&Secret> {
        self.cluster_secret.as_ref()
    }

    /// What this node proves when it connects to other nodes.
    pub fn node_credential(&self) -> Option<Credential> {
        self.cluster_secret.clone().map(Credential::cluster_secret)
    }

    /// Whether connections are challenged (the node has a cluster secret).
    pub fn challenges(&self) -> bool {
        self.cluster_secret.is_some()
    }

    /// Whether a connection must authenticate before its first request.
    pub fn requires_auth(&self) -> bool {
        !self.client_tokens.is_empty()
    }

    /// The role of a connection that proved nothing: everything without a cluster secret, a
    /// client's with a secret and no tokens, none (it must authenticate) with tokens.
    pub fn anonymous_role(&self) -> Option<Role> {
        match (&self.cluster_secret, self.client_tokens.is_empty()) {
            (None, _) => Some(Role::Node),
            (Some(_), true) => Some(Role::Client),
            (Some(_), false) => None,
        }
    }

    /// Whether `proof` over `challenge` proves `role`: the cluster secret for a node, any
    /// client token (or the cluster secret) for a client.
    pub fn verify(&self, role: Role, challenge: &[u8], proof: &[u8]) -> bool {
        let Some(secret) = &self.cluster_secret else {
            return false;
        };
        match role {
            Role::Node => auth::verify(secret, role, challenge, proof),
            Role::Client => {
                auth::verify(secret, role, challenge, proof)
                    || self
                        .client_tokens
                        .iter()
                        .any(|token| auth::verify(token, role, challenge, proof))
            }
        }
    }
}

/// Whether a connection acting as `role` may make `request`. Clients read and write (their
/// SDK replicates, repairs and leaves hints, so `Merge` is theirs too) and look at the
/// cluster; anti-entropy, purging and membership changes are the nodes' and operators'.
pub fn permitted(role: Role, request: &Request) -> bool {
    match role {
        Role::Node => true,
        Role::Client => !matches!(
            request,
            Request::AeSpans { .. }
                | Request::AeSpanKeys { .. }
                | Request::AeTree { .. }
                | Request::AeKeys { .. }
                | Request::PurgeCheck { .. }
                | Request::Purge { .. }
                | Request::Found { .. }
                | Request::Stage { .. }
                | Request::Commit { .. }
                | Request::Clear { .. }
                | Request::Remove { .. }
                | Request::Replace { .. }
                | Request::Abort { .. }
                | Request::Bucket { .. }
        ),
    }
}

/// Client tokens from a file: one per line, blank lines and `#` comments skipped.
fn read_tokens(path: &Path) -> Result<Vec<Secret>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        action: "reading client tokens",
        path: path.to_path_buf(),
        source,
    })?;
    let tokens: Vec<Secret> = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .filter_map(Secret::new)
        .collect();
    if tokens.is_empty() {
        return Err(Error::config(
            "security.client_tokens_file",
            format!("{} holds no client token", path.display()),
        ));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s).expect("secret")
    }

    #[test]
    fn roles_follow_the_configured_mode() {
        let open = Security::default();
        assert_eq!(open.anonymous_role(), Some(Role::Node));
        assert!(!open.challenges());

        let nodes_only = Security::new(Some(secret("s")), Vec::new());
        assert_eq!(nodes_only.anonymous_role(), Some(Role::Client));
        assert!(nodes_only.challenges() && !nodes_only.requires_auth());

        let closed = Security::new(Some(secret("s")), vec![secret("t1"), secret("t2")]);
        assert_eq!(closed.anonymous_role(), None);
        let challenge = [1u8; 32];
        let t2 = auth::proof(&secret("t2"), Role::Client, &challenge);
        assert!(closed.verify(Role::Client, &challenge, &t2));
        // A token never proves a node.
        let as_node = auth::proof(&secret("t2"), Role::Node, &challenge);
        assert!(!closed.verify(Role::Node, &challenge, &as_node));
        let node = auth::proof(&secret("s"), Role::Node, &challenge);
        assert!(closed.verify(Role::Node, &challenge, &node));
        assert!(!closed.verify(Role::Node, &[2u8; 32], &node));
    }

    #[test]
    fn clients_may_not_run_anti_entropy_or_change_membership() {
        assert!(permitted(Role::Client, &Request::Ping));
        assert!(!permitted(Role::Client, &Request::Commit { base: 1 }));
        assert!(!permitted(
            Role::Client,
            &Request::AeTree {
                peer: ringkv_core::NodeId(1)
            }
        ));
        assert!(!permitted(
            Role::Client,
            &Request::Purge { keys: Vec::new() }
        ));
        assert!(!permitted(
            Role::Client,
            &Request::PurgeCheck { keys: Vec::new() }
        ));
        assert!(permitted(Role::Node, &Request::Commit { base: 1 }));
        assert!(permitted(Role::Node, &Request::Purge { keys: Vec::new() }));
    }

    #[test]
    fn token_files_skip_comments_and_refuse_to_be_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# apps\ncarts-token\n\n  sessions-token # web\n").expect("write");
        let tokens = read_tokens(&path).expect("tokens");
        assert_eq!(
            tokens,
            vec![secret("carts-token"), secret("sessions-token")]
        );
        std::fs::write(&path, "# nothing\n").expect("write");
        assert!(read_tokens(&path).is_err());
    }
}
