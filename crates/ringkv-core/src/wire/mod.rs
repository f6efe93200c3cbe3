//! The wire protocol between clients and servers (and between servers).
//!
//! - [`codec`]: frames (`u32` big-endian length + CBOR body) and the protocol constants.
//! - [`message`]: what the frames carry: the handshake, requests with ids, responses with the
//!   server's ring epoch.
//! - [`error`]: the errors that cross the wire as values.
//!
//! - [`protocol`]: the versions each side speaks and the one a connection negotiates.
//!
//! A connection opens with [`message::Hello`] carrying the protocol versions the connecting
//! side speaks; the server answers [`message::ServerFrame::Welcome`] naming the newest version
//! both speak or, if they share none, a [`error::WireError::ProtocolVersion`] error frame and
//! a close. A node with a cluster secret puts a challenge in its `Welcome`; the
//! peer then sends [`message::Auth`] and gets [`message::ServerFrame::Authenticated`] or an
//! [`error::WireError::Unauthenticated`] error frame and a close (see [`crate::auth`]). After
//! that, requests and responses flow with ids: one connection carries many requests in flight,
//! and responses may come back in any order.

pub mod codec;
pub mod error;
pub mod message;
pub mod protocol;

pub use codec::{
    ANTI_ENTROPY_PROTOCOL_VERSION, BATCH_PROTOCOL_VERSION, CodecError, EXPIRY_PROTOCOL_VERSION,
    FrameCodec, MAX_FRAME_LEN, MIN_PROTOCOL_VERSION, PRE_AUTH_MAX_FRAME_LEN, PROTOCOL_VERSION,
    PRUNE_PROTOCOL_VERSION, PURGE_PROTOCOL_VERSION, ZONES_PROTOCOL_VERSION,
};
pub use error::WireError;
pub use message::{
    AntiEntropyStats, Auth, ClientFrame, Coordinated, Hello, MAX_AE_KEY_BYTES, MAX_AE_SPANS,
    MAX_BATCH_REQUESTS, MAX_PURGE_KEYS, NodeStats, PurgeKey, Request, RequestFrame, Response,
    ResponseFrame, RingSnapshot, ServerFrame, TransferStats, Welcome,
};
pub use protocol::ProtocolRange;
