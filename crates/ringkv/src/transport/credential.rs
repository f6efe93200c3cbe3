//! What a client proves to the nodes it connects to, when they authenticate connections.
//!
//! An application holds a client token; nodes (and operators' tools) hold the cluster secret.
//! Neither crosses the wire: the connection answers the node's challenge with a proof (see
//! `ringkv_core::auth`).

use std::path::Path;

use ringkv_core::auth::{Role, Secret};

use crate::error::{Error, Result};

/// A credential and the role it claims.
#[derive(Clone, Debug)]
pub struct Credential {
    role: Role,
    secret: Secret,
}

impl Credential {
    /// An application's token (one of the nodes' `security.client_tokens`).
    pub fn token(token: &str) -> Result<Credential> {
        Ok(Credential {
            role: Role::Client,
            secret: Secret::new(token)
                .ok_or_else(|| Error::InvalidArgument("the token is empty".into()))?,
        })
    }

    /// The cluster secret, for nodes and operators' tools (membership changes).
    pub fn cluster_secret(secret: Secret) -> Credential {
        Credential {
            role: Role::Node,
            secret,
        }
    }

    /// A token read from a file (`RINGKV_TOKEN_FILE` and the like), surrounding whitespace
    /// removed.
    pub fn token_file(path: &Path) -> Result<Credential> {
        let secret = Secret::from_file(path).map_err(|e| {
            Error::InvalidArgument(format!("reading the token from {}: {e}", path.display()))
        })?;
        Ok(Credential {
            role: Role::Client,
            secret,
        })
    }

    /// The role this credential claims: a node accepts a connection as a client or as a node
    /// and checks every request against it.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The proof for the challenge of one connection.
    pub(crate) fn proof(&self, challenge: &[u8]) -> Vec<u8> {
        ringkv_core::auth::proof(&self.secret, self.role, challenge)
    }
}
