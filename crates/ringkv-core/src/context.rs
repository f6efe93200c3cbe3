//! The causal context handed to applications.
//!
//! A read returns the merged version vector of what it saw as a [`Context`]. Passing it back
//! with a write says "this write replaces what I read", and nothing else. Applications treat it
//! as opaque bytes: store it in a form field, a cookie, a session, and hand it back later.
//!
//! Byte form: one format byte ([`CONTEXT_FORMAT`]), then the CBOR encoding of the
//! [`VersionVector`] (a map from actor to counter). Format 1, from before actors had epochs,
//! is the same map with bare node ids, and still parses: a context an application kept in a
//! cookie across an upgrade stays good.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::version::VersionVector;

/// The format byte that opens every encoded context.
pub const CONTEXT_FORMAT: u8 = 2;

/// Formats [`Context::from_bytes`] reads: the current one and format 1 (bare node ids).
const READS_FORMATS: [u8; 2] = [1, CONTEXT_FORMAT];

/// The format byte of a context sealed with an application's key ([`Context::to_sealed_bytes`]):
/// `SEALED_FORMAT ‖ tag (16 bytes) ‖ the context's own bytes`, the tag being the first 16
/// bytes of HMAC-SHA256(key, "ringkv context" ‖ u64 BE len(bucket) ‖ bucket ‖ u64 BE len(key)
/// ‖ key ‖ the context's bytes). The bucket and key are in the tag because counters count per
/// key: a genuine context of one key, handed back with a write of another, would drop that
/// key's writes it never saw.
pub const SEALED_FORMAT: u8 = b'S';

/// Bytes of a sealed context's tag: 128 bits, beyond guessing.
const TAG_LEN: usize = 16;

/// Separates a context's tag from any other MAC the application makes with the same key.
const SEAL_DOMAIN: &[u8] = b"ringkv context";

/// An opaque causal context: what a read saw. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Context(VersionVector);

/// Why some bytes are not a context.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// No bytes at all, not even the format byte: the application handed back something
    /// other than a context (an empty form field, a lost cookie).
    #[error("empty context bytes")]
    Empty,
    /// The format byte is not [`CONTEXT_FORMAT`]: a newer version (or something else
    /// entirely) made these bytes, and guessing their layout could supersede the wrong writes.
    #[error("context format {0} is not known to this version (expected {CONTEXT_FORMAT} or 1)")]
    UnknownFormat(u8),
    /// The format byte is right but the body is not a CBOR version vector; the text is the
    /// decoder's reason.
    #[error("context bytes are corrupt: {0}")]
    Corrupt(String),
    /// A sealed context whose tag does not match: altered, or sealed with another key. A
    /// forged context could claim to have seen writes it never saw, and a write with it would
    /// silently drop them, so it is refused.
    #[error("the context's seal does not match: it was altered or sealed with another key")]
    Forged,
    /// The client seals contexts, and these bytes are not sealed.
    #[error("the context is not sealed, and this client accepts only sealed contexts")]
    Unsealed,
}

impl Context {
    /// The context of a read that saw `vv` (the merged version vector of its answers).
    pub fn new(vv: VersionVector) -> Context {
        Context(vv)
    }

    /// The version vector inside: what a write with this context supersedes.
    pub fn version_vector(&self) -> &VersionVector {
        &self.0
    }

    /// The version vector inside, without a copy: the SDK sends it with a write as the
    /// writer's causal context.
    pub fn into_version_vector(self) -> VersionVector {
        self.0
    }

    /// True for the context of a key never written: a write with it supersedes nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The context as opaque bytes, to hand to applications.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![CONTEXT_FORMAT];
        // Writing CBOR into a Vec cannot fail for a map of integers.
        let _ = ciborium::into_writer(&self.0, &mut out);
        out
    }

    /// Parses bytes made by [`Context::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Context, ContextError> {
        let (&format, body) = bytes.split_first().ok_or(ContextError::Empty)?;
        if !READS_FORMATS.contains(&format) {
            return Err(ContextError::UnknownFormat(format));
        }
        ciborium::from_reader(body)
            .map(Context)
            .map_err(|e| ContextError::Corrupt(e.to_string()))
    }
}

impl Context {
    /// The context of a read of `bucket`/`key` as opaque bytes sealed with the application's
    /// `secret`: what an SDK configured with a context key hands out, so that a context kept
    /// in a cookie or a form comes back unaltered, for the same key, or is refused
    /// ([`Context::from_sealed_bytes`]).
    pub fn to_sealed_bytes(&self, secret: &[u8], bucket: &str, key: &[u8]) -> Vec<u8> {
        let inner = self.to_bytes();
        let mut out = Vec::with_capacity(1 + TAG_LEN + inner.len());
        out.push(SEALED_FORMAT);
        out.extend_from_slice(
            &sealing(secret, bucket, key, &inner).finalize().into_bytes()[..TAG_LEN],
        );
        out.extend_from_slice(&inner);
        out
    }

    /// Parses bytes made by [`Context::to_sealed_bytes`] with the same `secret`, `bucket` and
    /// `key`: a context altered, sealed with another secret or for another key, or not sealed
    /// at all is refused.
    pub fn from_sealed_bytes(
        bytes: &[u8],
        secret: &[u8],
        bucket: &str,
        key: &[u8],
    ) -> Result<Context, ContextError> {
        let (&format, rest) = bytes.split_first().ok_or(ContextError::Empty)?;
        if format != SEALED_FORMAT {
            return Err(if READS_FORMATS.contains(&format) {
                ContextError::Unsealed
            } else {
                ContextError::UnknownFormat(format)
            });
        }
        if rest.len() < TAG_LEN {
            return Err(ContextError::Forged);
        }
        let (claimed, inner) = rest.split_at(TAG_LEN);
        // Constant time: a forger learns nothing from how long the check took.
        sealing(secret, bucket, key, inner)
            .verify_truncated_left(claimed)
            .map_err(|_| ContextError::Forged)?;
        Context::from_bytes(inner)
    }
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// The MAC a sealed context's tag is cut from: see [`SEALED_FORMAT`].
fn sealing(secret: &[u8], bucket: &str, key: &[u8], inner: &[u8]) -> Hmac<Sha256> {
    let mut mac = keyed(secret);
    mac.update(SEAL_DOMAIN);
    // Lengths first, so that no two (bucket, key) pairs feed the same bytes.
    mac.update(&(bucket.len() as u64).to_be_bytes());
    mac.update(bucket.as_bytes());
    mac.update(&(key.len() as u64).to_be_bytes());
    mac.update(key);
    mac.update(inner);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeId;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let ctx = Context::new([(NodeId(7), 3), (NodeId(9), 1)].into_iter().collect());
        let bytes = ctx.to_bytes();
        assert_eq!(Context::from_bytes(&bytes), Ok(ctx));
        assert_eq!(Context::from_bytes(&[]), Err(ContextError::Empty));
        assert_eq!(
            Context::from_bytes(&[9, 1]),
            Err(ContextError::UnknownFormat(9))
        );
        assert!(matches!(
            Context::from_bytes(&[1, 0xff, 0x00]),
            Err(ContextError::Corrupt(_))
        ));
    }

    #[test]
    fn a_sealed_context_comes_back_only_unaltered_for_its_key_and_with_its_secret() {
        let ctx = Context::new([(NodeId(7), 3)].into_iter().collect());
        let open =
            |bytes: &[u8], secret: &[u8]| Context::from_sealed_bytes(bytes, secret, "b", b"k");
        let sealed = ctx.to_sealed_bytes(b"app key", "b", b"k");
        assert_eq!(open(&sealed, b"app key"), Ok(ctx.clone()));
        assert_eq!(open(&sealed, b"another key"), Err(ContextError::Forged));
        // A genuine context of one key is refused with a write of another.
        for (bucket, key) in [("b", &b"other"[..]), ("c", &b"k"[..]), ("bk", &b""[..])] {
            assert_eq!(
                Context::from_sealed_bytes(&sealed, b"app key", bucket, key),
                Err(ContextError::Forged),
                "{bucket}/{key:?}"
            );
        }
        // A forged counter (claiming more writes seen) under the old tag is refused.
        let forged = Context::new([(NodeId(7), 1_000_000)].into_iter().collect());
        let mut tampered = sealed[..17].to_vec();
        tampered.extend_from_slice(&forged.to_bytes());
        assert_eq!(open(&tampered, b"app key"), Err(ContextError::Forged));
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 1;
            assert!(open(&flipped, b"app key").is_err(), "byte {i}");
        }
        assert_eq!(
            open(&ctx.to_bytes(), b"app key"),
            Err(ContextError::Unsealed)
        );
        assert_eq!(open(&sealed[..10], b"app key"), Err(ContextError::Forged));
        assert_eq!(open(&[], b"app key"), Err(ContextError::Empty));
    }

    #[test]
    fn a_format_1_context_from_before_epochs_still_parses() {
        // {7: 3} as format 1 wrote it: a CBOR map from a bare node id to a counter.
        let old = [1, 0xa1, 0x07, 0x03];
        let ctx = Context::from_bytes(&old).expect("parses");
        assert_eq!(ctx.version_vector().get(NodeId(7).into()), 3);
    }
}
