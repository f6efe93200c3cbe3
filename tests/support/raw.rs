//! A bare protocol connection, for reading one node directly and for hostile input.

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use ringkv::ClientTls;
use ringkv::stream::BoxedStream;
use ringkv_core::RingEpoch;
use ringkv_core::auth::{Role, Secret};
use ringkv_core::wire::{
    Auth, ClientFrame, FrameCodec, Hello, ProtocolRange, Request, RequestFrame, Response,
    ServerFrame, WireError,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// One handshaken connection to one node.
pub struct RawConnection {
    framed: Framed<BoxedStream, FrameCodec<ServerFrame, ClientFrame>>,
    next_id: u64,
    /// The ring epoch every request is sent with: the node's own, from its `Welcome`, so
    /// that no request is refused as routed by a stale ring.
    pub epoch: RingEpoch,
}

impl std::fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawConnection")
            .field("next_id", &self.next_id)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl RawConnection {
    /// Connects and completes the handshake, giving up after two seconds (a firewalled
    /// node would otherwise keep a connect hanging for minutes of SYN retries).
    pub async fn open(addr: SocketAddr) -> anyhow::Result<RawConnection> {
        RawConnection::open_as(addr, None).await
    }

    /// As `open`, proving `credential` (a role and its secret) if the node challenges.
    pub async fn open_as(
        addr: SocketAddr,
        credential: Option<(Role, Secret)>,
    ) -> anyhow::Result<RawConnection> {
        RawConnection::open_with(addr, credential, None).await
    }

    /// As `open_as`, over TLS if `tls` is given.
    pub async fn open_with(
        addr: SocketAddr,
        credential: Option<(Role, Secret)>,
        tls: Option<&ClientTls>,
    ) -> anyhow::Result<RawConnection> {
        let connect = async {
            let tcp = TcpStream::connect(addr).await?;
            let stream: BoxedStream = match tls {
                Some(tls) => tls.connect(&addr.to_string(), tcp).await?,
                None => Box::new(tcp),
            };
            let mut framed = Framed::new(stream, FrameCodec::new());
            let hello = Hello::new(ProtocolRange::CURRENT, "test");
            framed.send(ClientFrame::Hello(hello)).await?;
            let welcome = match framed.next().await {
                Some(Ok(ServerFrame::Welcome(w))) => w,
                other => anyhow::bail!("bad handshake answer: {other:?}"),
            };
            if let (Some(challenge), Some((role, secret))) = (&welcome.challenge, credential) {
                let proof = ringkv_core::auth::proof(&secret, role, challenge).into();
                framed.send(ClientFrame::Auth(Auth { role, proof })).await?;
                match framed.next().await {
                    Some(Ok(ServerFrame::Authenticated(_))) => {}
                    other => anyhow::bail!("authentication refused: {other:?}"),
                }
            }
            Ok(RawConnection {
                framed,
                next_id: 1,
                epoch: welcome.epoch,
            })
        };
        tokio::time::timeout(std::time::Duration::from_secs(2), connect)
            .await
            .map_err(|_| anyhow::anyhow!("no handshake from {addr} within 2 s"))?
    }

    /// Sends one request with this connection's epoch (the node's own, from the welcome).
    pub async fn request(&mut self, body: Request) -> anyhow::Result<Result<Response, WireError>> {
        let id = self.next_id;
        self.next_id += 1;
        self.framed
            .send(ClientFrame::Request(RequestFrame {
                id,
                epoch: self.epoch,
                body,
            }))
            .await?;
        match self.framed.next().await {
            Some(Ok(ServerFrame::Response(r))) if r.id == id => Ok(r.body),
            other => anyhow::bail!("unexpected frame {other:?}"),
        }
    }
}
