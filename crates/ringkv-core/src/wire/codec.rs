//! Frames on the wire.
//!
//! # Byte-level format
//!
//! ```text
//! +----------------+---------------------------+
//! | length: u32 BE | body: `length` bytes CBOR |
//! +----------------+---------------------------+
//! ```
//!
//! - `length` counts the body only, and must be at most [`MAX_FRAME_LEN`]. It is checked
//!   before any buffer is grown, so a header announcing 4 GiB costs nothing.
//! - `body` is one CBOR item (RFC 8949) encoding a [`super::ClientFrame`] (client to server) or
//!   a [`super::ServerFrame`] (server to client), in serde's externally tagged layout: an enum
//!   variant is a one-entry map from its name to its fields, a struct is a map keyed by field
//!   names, byte strings are CBOR byte strings.
//! - A length of 0 is not a valid frame (there is no empty CBOR item).
//!
//! The first client frame must be `Hello { protocol_version: PROTOCOL_VERSION, .. }`; until
//! the handshake is complete a server reads frames of at most [`PRE_AUTH_MAX_FRAME_LEN`].
//!
//! tokio-util's `LengthDelimitedCodec` speaks the same framing; this codec does the length
//! check itself so that an oversized frame is a typed [`CodecError::FrameTooLarge`] (answered
//! with a precise error frame) rather than an opaque I/O error.

use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};

use super::error::WireError;

/// The newest protocol version this build speaks. Any change to frames, messages or hashes
/// bumps it (see [`super::protocol`] for how versions are negotiated).
/// 5: dots and version vectors name actors (a node id and an epoch), not bare node ids.
/// 6: `Remove`, `Replace` and `Abort` requests; transfers name the members removed from them, and
/// their ids are digests.
/// 7: the handshake negotiates a version from the ranges both sides speak (`Hello::min_version`);
/// `Stats` names the answering process's `instance`; `Layout` and `Coordination` errors carry
/// their facts as fields; layouts carry the bucket table, changed by the `Bucket` request.
/// 8: members carry a zone, placement is zone-aware, `Change::Zone`; `Stats` names the node's
/// configured zone.
/// 9: expiry: `Put` carries a time to live, siblings their expiry (`expires_ms`).
/// 10: purging: `PurgeCheck` and `Purge`, node to node.
/// 11: `PurgeKey::prune`, and `Stats` counts pruned keys.
/// 12: anti-entropy by spans (`AeSpans`, `AeSpanKeys`) over the digest index, whose state
/// digests leave out what reclaiming strips.
/// 13: `Batch`: many gets in one frame, answered one by one.
pub const PROTOCOL_VERSION: u32 = 13;

/// The first protocol version that knows zones. A ring or layout whose members have zones is
/// never handed over a connection that negotiated an older one: an older build would drop
/// the labels, place keys elsewhere and re-gossip the layout without them. So zones may be
/// labelled only once every member speaks this version (nodes gossip theirs and refuse the
/// change otherwise: `Layout::check_zone_readers`), and a node refuses
/// the ring and the layout of a cluster with zones to an older peer, which keeps the old ring
/// (its requests are refused as stale) until it is upgraded.
pub const ZONES_PROTOCOL_VERSION: u32 = 8;

/// The first protocol version that knows expiry. An older build ignores a `Put`'s time to
/// live and drops a sibling's expiry, and would keep the value for ever; so a request that
/// carries either is never sent over a connection that negotiated an older version
/// ([`super::Request::needs_protocol`]): the write fails on that node, and a stream or hint
/// to it waits until it is upgraded. (A copy that lost its expiry anyway cannot make the
/// write immortal elsewhere: merging joins a missing expiry below any expiry.)
pub const EXPIRY_PROTOCOL_VERSION: u32 = 9;

/// The first protocol version that knows `PurgeCheck` and `Purge`. An older node cannot
/// answer them, so a key one of its homes runs an older release is never purged (the
/// requests fail on that connection and the purge waits).
pub const PURGE_PROTOCOL_VERSION: u32 = 10;

/// The first protocol version that knows `PurgeKey::prune`. A node of 10 would read a
/// pruning as a purge of a dead state (and, should the value expire meanwhile, delete the
/// record before its delay): a pruning is never sent over an older connection.
pub const PRUNE_PROTOCOL_VERSION: u32 = 11;

/// The first protocol version that compares replicas by spans (`AeSpans`, `AeSpanKeys`). A
/// node exchanges only with peers that speak it: an older one answers the whole-store
/// `AeTree` with digests of another kind, which would differ on every key. An older node's
/// own `AeTree` and `AeKeys` are still answered, the old way, until it is upgraded.
pub const ANTI_ENTROPY_PROTOCOL_VERSION: u32 = 12;

/// The first protocol version that knows `Batch`. Over an older connection the SDK sends
/// the batch's requests one frame each instead.
pub const BATCH_PROTOCOL_VERSION: u32 = 13;

/// The oldest protocol version this build speaks. 7 is the first version that negotiates (a
/// build of 6 or older demands an exact match), so it is also the oldest this one can speak
/// with.
pub const MIN_PROTOCOL_VERSION: u32 = 7;

/// The largest frame body accepted or sent: room for a value at the default 4 MiB limit plus a
/// few concurrent siblings of it, while a single frame still cannot exhaust a server's memory.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The largest frame a server reads before the connection's handshake (and authentication,
/// when the node requires it) is complete: a `Hello` or an `Auth` is a few hundred bytes, and
/// a peer that has proven nothing must not make the node buffer megabytes.
pub const PRE_AUTH_MAX_FRAME_LEN: usize = 64 * 1024;

const HEADER_LEN: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A frame longer than the codec's limit: announced so by its header when reading (it is
    /// refused before any of it is buffered), or encoded that long when writing (nothing of
    /// it is sent).
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The frame body's length in bytes.
        len: usize,
        /// The codec's limit when the frame was met.
        max: usize,
    },
    /// An empty frame, a body that is not the expected CBOR message, or a message that could
    /// not be encoded; the text says which.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The underlying stream failed; there is nothing to tell a peer that cannot be reached.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl CodecError {
    /// The error frame to send before closing a connection that produced this error, if any.
    pub fn to_wire(&self) -> Option<WireError> {
        match self {
            CodecError::FrameTooLarge { len, max } => Some(WireError::FrameTooLarge {
                len: *len as u64,
                max: *max as u64,
            }),
            CodecError::Malformed(reason) => Some(WireError::Malformed {
                reason: reason.clone(),
            }),
            CodecError::Io(_) => None,
        }
    }
}

/// Encodes `Out` frames and decodes `In` frames. The server uses
/// `FrameCodec<ClientFrame, ServerFrame>`, a client the reverse.
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    max_frame_len: usize,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec that reads and writes frames of up to [`MAX_FRAME_LEN`] bytes.
    pub fn new() -> Self {
        Self::with_max_frame_len(MAX_FRAME_LEN)
    }

    /// Changes the limit for the frames read from now on (never above [`MAX_FRAME_LEN`]): a
    /// server raises it from [`PRE_AUTH_MAX_FRAME_LEN`] once the handshake is complete.
    pub fn set_max_frame_len(&mut self, max: usize) {
        self.max_frame_len = max.min(MAX_FRAME_LEN);
    }

    /// A codec with a smaller limit (never larger than [`MAX_FRAME_LEN`]).
    pub fn with_max_frame_len(max: usize) -> Self {
        FrameCodec {
            max_frame_len: max.min(MAX_FRAME_LEN),
            _types: PhantomData,
        }
    }
}

impl<In, Out> Default for FrameCodec<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, CodecError> {
        let Some(header) = src.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > self.max_frame_len {
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        if len == 0 {
            return Err(CodecError::Malformed("empty frame".into()));
        }
        if src.len() < HEADER_LEN + len {
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let body = src.split_to(len);
        ciborium::from_reader(&body[..])
            .map(Some)
            .map_err(|e| CodecError::Malformed(e.to_string()))
    }
}

impl<In, Out: Serialize> Encoder<Out> for FrameCodec<In, Out> {
    type Error = CodecError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), CodecError> {
        let start = dst.len();
        dst.put_u32(0);
        let mut writer = dst.writer();
        let encoded = ciborium::into_writer(&item, &mut writer);
        let dst = writer.into_inner();
        if let Err(e) = encoded {
            dst.truncate(start);
            return Err(CodecError::Malformed(e.to_string()));
        }
        let len = dst.len() - start - HEADER_LEN;
        if len > self.max_frame_len {
            dst.truncate(start);
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        dst[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
