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

use crate::version::VersionVector;

/// The format byte that opens every encoded context.
pub const CONTEXT_FORMAT: u8 = 2;

/// Formats [`Context::from_bytes`] reads: the current one and format 1 (bare node ids).
const READS_FORMATS: [u8; 2] = [1, CONTEXT_FORMAT];

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
    fn a_format_1_context_from_before_epochs_still_parses() {
        // {7: 3} as format 1 wrote it: a CBOR map from a bare node id to a counter.
        let old = [1, 0xa1, 0x07, 0x03];
        let ctx = Context::from_bytes(&old).expect("parses");
        assert_eq!(ctx.version_vector().get(NodeId(7).into()), 3);
    }
}
