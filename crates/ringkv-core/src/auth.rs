//! Who may do what on a connection, and how a peer proves it.
//!
//! A node may hold a *cluster secret*, shared by every node of the cluster (and by operators'
//! tools), and a list of *client tokens*, one per application. When it has a cluster secret,
//! its `Welcome` carries a fresh random challenge, and the connecting side answers with an
//! `Auth` frame: a [`Role`] and [`proof`] = HMAC-SHA256(credential, context ‖ role ‖
//! challenge). The credential itself never crosses the wire, so it cannot be sniffed, and a
//! proof is bound to one challenge, so it cannot be replayed on another connection.
//!
//! [`Secret`] holds a credential in memory; its `Debug` and `Display` print `<redacted>`, so a
//! secret cannot end up in a log line by accident.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Bytes of the random challenge a node sends in its `Welcome`.
pub const CHALLENGE_LEN: usize = 32;

/// What a connection is allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// An application: reads and writes (coordinated by its SDK), the ring, stats.
    Client,
    /// A node of the cluster, or an operator's tool: everything, including anti-entropy and
    /// membership changes. Proven with the cluster secret.
    Node,
}

impl Role {
    fn tag(self) -> &'static [u8] {
        match self {
            Role::Client => b"client",
            Role::Node => b"node",
        }
    }
}

/// A credential: the cluster secret or a client token.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from its text, surrounding whitespace removed (files end in a newline).
    /// `None` if nothing is left: an empty secret protects nothing and is refused.
    pub fn new(text: &str) -> Option<Secret> {
        let trimmed = text.trim();
        (!trimmed.is_empty()).then(|| Secret(trimmed.as_bytes().to_vec()))
    }

    /// Reads a secret from a file (the `*_FILE` settings), trimmed like [`Secret::new`].
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Secret> {
        let text = std::fs::read_to_string(path)?;
        Secret::new(&text).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds no secret", path.display()),
            )
        })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A keyed MAC with this secret, for other uses than the handshake (gossip datagrams).
    /// `context` separates the uses, so a tag made for one is never valid for another.
    pub fn mac(&self, context: &[u8], message: &[u8]) -> [u8; 32] {
        let mut mac = keyed(self);
        mac.update(context);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` (possibly truncated, at least 16 bytes) is [`Secret::mac`] of `message`,
    /// compared in constant time.
    pub fn verify_mac(&self, context: &[u8], message: &[u8], tag: &[u8]) -> bool {
        if tag.len() < 16 {
            return false;
        }
        let mut mac = keyed(self);
        mac.update(context);
        mac.update(message);
        mac.verify_truncated_left(tag).is_ok()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

fn keyed(secret: &Secret) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot fail.
    match Hmac::<Sha256>::new_from_slice(secret.bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

const HANDSHAKE_CONTEXT: &[u8] = b"ringkv-auth-v1\0";

/// The proof that the sender holds `secret`, for `role`, on the connection that sent
/// `challenge`.
pub fn proof(secret: &Secret, role: Role, challenge: &[u8]) -> Vec<u8> {
    secret
        .mac(HANDSHAKE_CONTEXT, &proven(role, challenge))
        .to_vec()
}

/// Whether `proof` was made by [`proof`] with `secret`, `role` and `challenge` (constant time).
pub fn verify(secret: &Secret, role: Role, challenge: &[u8], proof: &[u8]) -> bool {
    proof.len() == 32 && secret.verify_mac(HANDSHAKE_CONTEXT, &proven(role, challenge), proof)
}

/// What a proof is a MAC of: the role, so that a proof for one role is not one for the
/// other, and the connection's challenge.
fn proven(role: Role, challenge: &[u8]) -> Vec<u8> {
    [role.tag(), b"\0", challenge].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s).expect("a secret")
    }

    #[test]
    fn a_proof_holds_only_for_its_secret_role_and_challenge() {
        let challenge = [7u8; CHALLENGE_LEN];
        let p = proof(&secret("s3cret"), Role::Node, &challenge);
        assert!(verify(&secret("s3cret"), Role::Node, &challenge, &p));
        assert!(!verify(&secret("other"), Role::Node, &challenge, &p));
        assert!(!verify(&secret("s3cret"), Role::Client, &challenge, &p));
        assert!(!verify(
            &secret("s3cret"),
            Role::Node,
            &[8u8; CHALLENGE_LEN],
            &p
        ));
        assert!(!verify(&secret("s3cret"), Role::Node, &challenge, &p[..16]));
        assert!(!verify(&secret("s3cret"), Role::Node, &challenge, &[]));
    }

    #[test]
    fn secrets_are_trimmed_never_empty_and_never_printed() {
        assert_eq!(secret(" abc\n"), secret("abc"));
        assert!(Secret::new(" \n").is_none());
        let s = secret("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }

    #[test]
    fn macs_are_separated_by_context_and_checked_truncated() {
        let s = secret("k");
        let tag = s.mac(b"gossip", b"payload");
        assert!(s.verify_mac(b"gossip", b"payload", &tag[..16]));
        assert!(!s.verify_mac(b"other", b"payload", &tag[..16]));
        assert!(!s.verify_mac(b"gossip", b"payload!", &tag[..16]));
        assert!(!s.verify_mac(b"gossip", b"payload", &tag[..8]));
    }
}
