//! Gossip datagrams authenticated with the cluster secret: chitchat's UDP transport, with a
//! MAC on every datagram. A datagram whose MAC does not verify is dropped before chitchat
//! sees it, so a process without the secret can neither join the cluster's gossip nor speak
//! for one of its members (a fake layout, a dead node reported alive).
//!
//! ```text
//! datagram = format: u8 ‖ body ‖ tag: 16 bytes
//! tag      = HMAC-SHA256(cluster secret, "ringkv-gossip-v1" ‖ format ‖ body), first 16 bytes
//! format   = 0: body is chitchat's envelope; 1: body is it compressed (LZ4, size prepended)
//! ```
//!
//! chitchat fills datagrams up to UDP's limit (65,507 bytes): one that has no room left for
//! the 17 bytes added here is compressed (gossip, mostly ids and counters, compresses well).
//! A datagram only verifies at the node it was sent to in the same cluster, but it may be
//! replayed by whoever captures it; chitchat ignores replayed (older) states, so a replay
//! changes nothing. Gossip is not encrypted: it holds addresses and the layout, no data.
//!
//! This is the one library module that returns `anyhow` errors: chitchat's `Transport` and
//! `Socket` traits, which it implements, are declared with them.

use std::collections::VecDeque;
use std::net::SocketAddr;

use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use ringkv_core::auth::Secret;
use tracing::{debug, warn};

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
const TAG_LEN: usize = 16;
const CONTEXT: &[u8] = b"ringkv-gossip-v1\0";
const RAW: u8 = 0;
const LZ4: u8 = 1;
/// The largest envelope a compressed datagram may expand to (a bound before allocating).
const MAX_EXPANDED: usize = 4 * MAX_DATAGRAM;

/// chitchat's UDP transport with every datagram authenticated by the cluster secret.
#[derive(Debug)]
pub struct SignedUdpTransport {
    secret: Secret,
}

impl SignedUdpTransport {
    pub fn new(secret: Secret) -> SignedUdpTransport {
        SignedUdpTransport { secret }
    }
}

#[async_trait]
impl Transport for SignedUdpTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let public = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .map_err(|e| anyhow::anyhow!("failed to bind to {listen_addr}/UDP for gossip: {e}"))?;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let codec = chitchat::transport::UdpSocket::open(loopback).await?;
        let relay = tokio::net::UdpSocket::bind(loopback).await?;
        Ok(Box::new(SignedSocket {
            codec_addr: codec.local_addr()?,
            relay_addr: relay.local_addr()?,
            public,
            codec,
            relay,
            secret: self.secret.clone(),
            senders: VecDeque::new(),
            buf: vec![0; MAX_DATAGRAM],
        }))
    }
}

/// One node's gossip socket.
///
/// chitchat keeps its envelope encoding to itself, so this socket has chitchat's own UDP
/// socket (`codec`, on a loopback port) encode and decode for it: an envelope to send is sent
/// by `codec` to `relay` and read there as bytes; a verified datagram's bytes are sent by
/// `relay` to `codec`, which decodes them. Only datagrams between the two are used, so
/// nothing else on the machine can slip an unsigned datagram in through them.
struct SignedSocket {
    public: tokio::net::UdpSocket,
    codec: chitchat::transport::UdpSocket,
    codec_addr: SocketAddr,
    relay: tokio::net::UdpSocket,
    relay_addr: SocketAddr,
    secret: Secret,
    /// The senders of the verified datagrams handed to `codec`, in order.
    senders: VecDeque<SocketAddr>,
    buf: Vec<u8>,
}

#[async_trait]
impl Socket for SignedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.public.local_addr()?)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        // Whatever an interrupted send left behind is not this envelope.
        while self.relay.try_recv_from(&mut self.buf).is_ok() {}
        self.codec.send(self.relay_addr, envelope).await?;
        let len = loop {
            let (len, from) = self.relay.recv_from(&mut self.buf).await?;
            if from == self.codec_addr {
                break len;
            }
        };
        let Some(datagram) = seal(&self.secret, &self.buf[..len]) else {
            // Dropped, as a lost datagram would be: gossip goes on with the next round.
            warn!(%to, "a gossip datagram does not fit in UDP even compressed; dropped");
            return Ok(SendOutcome { num_bytes_sent: 0 });
        };
        match self.public.send_to(&datagram, to).await {
            Ok(sent) => Ok(SendOutcome {
                num_bytes_sent: sent,
            }),
            // A peer that is down (ICMP unreachable) is gossip's normal weather.
            Err(e) if is_transient(&e) => Ok(SendOutcome { num_bytes_sent: 0 }),
            Err(e) => Err(anyhow::anyhow!("sending gossip to {to}: {e}")),
        }
    }

    /// Cancellable, as chitchat needs: each branch's work completes within one poll or is
    /// a lost datagram, which gossip tolerates.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            tokio::select! {
                decoded = self.codec.recv() => {
                    let mut outcome = decoded?;
                    if outcome.from_addr != self.relay_addr {
                        debug!(from = %outcome.from_addr, "dropped a datagram sent to the gossip codec socket");
                        continue;
                    }
                    let Some(from) = self.senders.pop_front() else { continue };
                    outcome.from_addr = from;
                    return Ok(outcome);
                }
                received = self.public.recv_from(&mut self.buf) => {
                    let (len, from) = match received {
                        Ok(received) => received,
                        Err(e) if is_transient(&e) => continue,
                        Err(e) => return Err(anyhow::anyhow!("receiving gossip: {e}")),
                    };
                    let Some(body) = open(&self.secret, &self.buf[..len]) else {
                        debug!(%from, len, "dropped a gossip datagram not signed with the cluster secret");
                        continue;
                    };
                    if self.relay.send_to(&body, self.codec_addr).await.is_ok() {
                        self.senders.push_back(from);
                    }
                }
            }
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::OutOfMemory
    )
}

/// The datagram carrying `envelope`, or `None` if it cannot fit in one.
pub fn seal(secret: &Secret, envelope: &[u8]) -> Option<Vec<u8>> {
    let (format, body) = if 1 + envelope.len() + TAG_LEN <= MAX_DATAGRAM {
        (RAW, envelope.to_vec())
    } else {
        (LZ4, lz4_flex::compress_prepend_size(envelope))
    };
    if 1 + body.len() + TAG_LEN > MAX_DATAGRAM {
        return None;
    }
    let mut datagram = Vec::with_capacity(1 + body.len() + TAG_LEN);
    datagram.push(format);
    datagram.extend_from_slice(&body);
    let tag = secret.mac(CONTEXT, &datagram);
    datagram.extend_from_slice(&tag[..TAG_LEN]);
    Some(datagram)
}

/// The envelope bytes in `datagram`, if its tag verifies and it decodes.
pub fn open(secret: &Secret, datagram: &[u8]) -> Option<Vec<u8>> {
    let split = datagram.len().checked_sub(TAG_LEN)?;
    let (signed, tag) = datagram.split_at(split);
    if signed.is_empty() || !secret.verify_mac(CONTEXT, signed, tag) {
        return None;
    }
    let (format, body) = signed.split_first()?;
    match *format {
        RAW => Some(body.to_vec()),
        LZ4 => {
            let size = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
            if size > MAX_EXPANDED {
                return None;
            }
            lz4_flex::decompress_size_prepended(body).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s).expect("secret")
    }

    #[test]
    fn only_the_same_secret_opens_a_datagram() {
        let datagram = seal(&secret("a"), b"gossip").expect("fits");
        assert_eq!(
            open(&secret("a"), &datagram).as_deref(),
            Some(&b"gossip"[..])
        );
        assert_eq!(open(&secret("b"), &datagram), None);
        let mut tampered = datagram.clone();
        tampered[2] ^= 1;
        assert_eq!(open(&secret("a"), &tampered), None);
        assert_eq!(open(&secret("a"), b""), None);
        assert_eq!(open(&secret("a"), &datagram[..10]), None);
    }

    #[test]
    fn a_full_datagram_is_compressed_to_make_room_for_the_tag() {
        // As chitchat fills them: up to the UDP limit, with repetitive content.
        let envelope: Vec<u8> = (0..MAX_DATAGRAM)
            .map(|i| b"node-17:7401;"[i % 13])
            .collect();
        let datagram = seal(&secret("a"), &envelope).expect("fits once compressed");
        assert!(datagram.len() <= MAX_DATAGRAM);
        assert_eq!(datagram[0], LZ4);
        assert_eq!(open(&secret("a"), &datagram), Some(envelope));
        // Incompressible and full: dropped rather than sent broken.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..MAX_DATAGRAM)
            .map(|_| {
                // xorshift64: no run or match for LZ4 to find.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        assert_eq!(seal(&secret("a"), &noise), None);
    }
}
