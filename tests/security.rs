//! Scenario dos-and-auth (../shared/FAULTS.md), and the handshake limits of
//! malformed-frames: a cluster with a cluster secret and client tokens serves only those who
//! prove one, a node without the secret cannot join it, slow and idle connections are closed
//! while a legitimate client is served.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use ringkv::{ClientConfig, Credential, Error};
use ringkv_core::auth::{Role, Secret};
use ringkv_core::wire::{
    ClientFrame, FrameCodec, Hello, ProtocolRange, Request, RequestFrame, Response, ServerFrame,
    WireError,
};
use ringkv_tests::{ClusterSpec, RawConnection, TestCluster, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const SECRET: &str = "correct horse battery staple";
const TOKEN: &str = "carts-service-token";

fn secured() -> ClusterSpec {
    ClusterSpec {
        cluster_secret: Some(SECRET.into()),
        client_tokens: vec![TOKEN.into(), "sessions-token".into()],
        ..ClusterSpec::default()
    }
}

fn secret(s: &str) -> Secret {
    Secret::new(s).expect("a secret")
}

/// Hello, then the node's welcome, on a bare connection.
async fn hello(
    addr: std::net::SocketAddr,
) -> anyhow::Result<Framed<TcpStream, FrameCodec<ServerFrame, ClientFrame>>> {
    let mut framed = Framed::new(TcpStream::connect(addr).await?, FrameCodec::new());
    framed
        .send(ClientFrame::Hello(Hello::new(
            ProtocolRange::CURRENT,
            "intruder",
        )))
        .await?;
    match framed.next().await {
        Some(Ok(ServerFrame::Welcome(w))) => {
            assert!(w.challenge.is_some() && w.auth_required, "{w:?}");
        }
        other => anyhow::bail!("expected a welcome, got {other:?}"),
    }
    Ok(framed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_connections_proving_a_token_or_the_secret_are_served() -> anyhow::Result<()> {
    // Founding the cluster already needs the secret (the support proves it).
    let cluster = TestCluster::start(secured()).await?;
    let addr = cluster.nodes[0].addr;

    // A client with a token reads and writes.
    let client = cluster.client().await?;
    client.put("cart:1", "apples", None).await?;
    assert_eq!(
        client.get("cart:1").await?.value(),
        Some(&Bytes::from("apples"))
    );

    // Without a token, or with a wrong one, the SDK cannot even fetch the ring.
    for credential in [None, Some(Credential::token("guessed")?)] {
        let mut config = ClientConfig::default();
        config.connect.credential = credential.clone();
        let refused = ringkv::Client::builder()
            .seeds(cluster.addrs())
            .config(config)
            .build()
            .await;
        match refused {
            Err(Error::Server(WireError::Unauthenticated { .. })) => {}
            Err(Error::NoRing { .. }) => {}
            other => panic!("{credential:?} was let in: {other:?}"),
        }
    }

    // An unauthenticated peer performs no operation: its write is refused and not applied.
    let mut framed = hello(addr).await?;
    let mut state = ringkv_core::SiblingSet::new();
    state
        .stamp(
            ringkv::NodeId(99).into(),
            &ringkv_core::VersionVector::new(),
            Some(Bytes::from("forged")),
            1,
            None,
        )
        .expect("stamp");
    framed
        .send(ClientFrame::Request(RequestFrame {
            id: 1,
            epoch: Default::default(),
            body: Request::Merge {
                bucket: "default".into(),
                key: Bytes::from("cart:1"),
                state,
                hint: None,
                sync: false,
                entry: false,
                ttl_ms: None,
            },
        }))
        .await?;
    match framed.next().await {
        Some(Ok(ServerFrame::Fatal(WireError::Unauthenticated { .. }))) => {}
        other => panic!("expected an authentication error, got {other:?}"),
    }
    assert!(framed.next().await.is_none(), "the connection stays open");
    let read = client.get("cart:1").await?;
    assert_eq!(read.siblings().len(), 1, "the forged merge was applied");

    // Before authentication frames are small: 100 KiB is refused before it is read.
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(&(100u32 * 1024).to_be_bytes()).await?;
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await??;
    let mut codec = FrameCodec::<ServerFrame, ClientFrame>::new();
    let frame =
        tokio_util::codec::Decoder::decode(&mut codec, &mut bytes::BytesMut::from(&reply[..]))?;
    assert!(
        matches!(
            frame,
            Some(ServerFrame::Fatal(WireError::FrameTooLarge {
                max: 65536,
                ..
            }))
        ),
        "{frame:?}"
    );

    // A wrong cluster secret is refused like a wrong token: what a rogue node would try to
    // stream data or deliver hints with.
    let rogue = RawConnection::open_as(addr, Some((Role::Node, secret("wrong secret")))).await;
    assert!(rogue.is_err(), "a wrong cluster secret was accepted");

    // A token's holder is a client: no anti-entropy, no membership changes.
    let mut app = RawConnection::open_as(addr, Some((Role::Client, secret(TOKEN)))).await?;
    assert!(matches!(
        app.request(Request::Ping).await?,
        Ok(Response::Pong { .. })
    ));
    for request in [
        Request::Commit { base: 1 },
        Request::AeTree {
            peer: ringkv::NodeId(1),
        },
    ] {
        match app.request(request).await? {
            Err(WireError::Forbidden { .. }) => {}
            other => panic!("a client token was allowed a node's operation: {other:?}"),
        }
    }
    // A token does not prove a node, even claimed as one.
    let claimed = RawConnection::open_as(addr, Some((Role::Node, secret(TOKEN)))).await;
    assert!(
        claimed.is_err(),
        "a token was accepted as the cluster secret"
    );

    // The secret's holder may do everything.
    let mut node = cluster.raw(addr).await?;
    assert!(matches!(
        node.request(Request::Layout).await?,
        Ok(Response::Layout(_))
    ));
    Ok(())
}

/// With a cluster secret, the admin port's `POST /checkpoint` needs the admin token derived
/// from it: whoever reaches the port cannot fill the disk with checkpoints, and the secret
/// itself never crosses the port. The GETs stay open to probes and scrapers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_takes_a_checkpoint_only_with_the_admin_token() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec {
        admin: true,
        nodes: 1,
        ..secured()
    })
    .await?;
    let admin = cluster.nodes[0].admin.expect("an admin port");
    let (status, body) = ringkv_tests::http_post(admin, "/checkpoint")?;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    let (status, body) = ringkv_tests::http_post_bearer(admin, "/checkpoint", TOKEN)?;
    assert_eq!(status, 401, "a client token is not the admin token: {body}");
    let (status, body) = ringkv_tests::http_post_bearer(admin, "/checkpoint", SECRET)?;
    assert_eq!(
        status, 401,
        "nor is the secret itself, never sent over the port: {body}"
    );
    // What `ringkvd --print-admin-token` prints for the node's configuration.
    let secret_file = tempfile::NamedTempFile::new()?;
    std::fs::write(secret_file.path(), SECRET)?;
    let out = std::process::Command::new(ringkv_tests::ringkvd_bin())
        .arg("--cluster-secret-file")
        .arg(secret_file.path())
        .arg("--print-admin-token")
        .output()?;
    let token = String::from_utf8(out.stdout)?.trim().to_string();
    assert!(out.status.success() && token.len() == 64, "{token:?}");
    let (status, body) = ringkv_tests::http_post_bearer(admin, "/checkpoint", &token)?;
    assert_eq!(status, 200, "{body}");
    assert!(std::path::Path::new(body.trim()).is_dir(), "{body}");
    let (status, _) = ringkv_tests::http_get(admin, "/metrics")?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_cluster_secret_cannot_join_the_gossip() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(secured()).await?;
    // A node with the right secret, not a member, learns the layout by gossip: the control.
    let friend = cluster.start_node_with_secret(SECRET)?;
    let rogue = cluster.start_node_with_secret("not the secret")?;
    let members_seen_by = |i: usize| {
        let addr = cluster.nodes[i].addr;
        async move {
            let mut raw = RawConnection::open_as(
                addr,
                Some((
                    Role::Node,
                    secret(if i == 4 { "not the secret" } else { SECRET }),
                )),
            )
            .await
            .ok()?;
            // The layout a node holds: what gossip (and the fetch it triggers) taught it.
            match raw.request(Request::Layout).await {
                Ok(Ok(Response::Layout(layout))) => Some(layout.members.len()),
                _ => None,
            }
        }
    };
    assert_eq!(rogue, 4);
    assert!(
        eventually(Duration::from_secs(20), || async {
            members_seen_by(friend).await == Some(3)
        })
        .await,
        "a node with the secret never learned the layout"
    );
    // Many gossip rounds later (100 ms each) the rogue still knows nothing of the cluster.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        members_seen_by(rogue).await,
        Some(0),
        "a node without the secret learned the layout"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_while_clients_are_served() -> anyhow::Result<()> {
    let spec = ClusterSpec {
        extra_toml: "[limits]\nhandshake_timeout_ms = 500\nidle_timeout_ms = 1000\n".into(),
        ..ClusterSpec::default()
    };
    let cluster = TestCluster::start(spec).await?;
    let addr = cluster.nodes[0].addr;
    let client = cluster.client().await?;

    // 500 connections dribbling one byte at a time, never finishing a handshake.
    let mut slow = Vec::new();
    for _ in 0..500 {
        slow.push(TcpStream::connect(addr).await?);
    }
    let dribble = async {
        for _ in 0..3 {
            for stream in &mut slow {
                let _ = stream.write_all(&[0]).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    // Meanwhile a legitimate client is served.
    let work = async {
        for i in 0..50 {
            client.put(format!("k{i}"), "v", None).await?;
        }
        anyhow::Ok(())
    };
    let ((), served) = tokio::join!(dribble, work);
    served?;
    // Each slow connection is closed by the node at the handshake timeout.
    for stream in &mut slow {
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a slow connection was left open");
    }

    // A handshaken connection that stays silent is closed at the idle timeout...
    let mut idle = RawConnection::open(addr).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        idle.request(Request::Ping).await.is_err(),
        "an idle connection was left open"
    );
    // ... and the SDK, idle as long, reconnects on its next call.
    assert_eq!(client.get("k1").await?.value(), Some(&Bytes::from("v")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_at_its_in_flight_cap_is_not_read_until_a_request_finishes()
-> anyhow::Result<()> {
    let spec = ClusterSpec {
        extra_toml: "[limits]\nmax_in_flight_per_connection = 1\n".into(),
        ..ClusterSpec::default()
    };
    let cluster = TestCluster::start(spec).await?;
    // A read of all three replicas, coordinated by node 0, waits for the paused node 2 until
    // its request timeout: a slow request that holds the connection's only slot.
    cluster.pause(2);
    let mut framed = Framed::new(
        TcpStream::connect(cluster.nodes[0].addr).await?,
        FrameCodec::<ServerFrame, ClientFrame>::new(),
    );
    framed
        .send(ClientFrame::Hello(Hello::new(
            ProtocolRange::CURRENT,
            "pipeliner",
        )))
        .await?;
    assert!(matches!(
        framed.next().await,
        Some(Ok(ServerFrame::Welcome(_)))
    ));
    let slow = |id| {
        ClientFrame::Request(RequestFrame {
            id,
            epoch: Default::default(),
            body: Request::Coordinate(ringkv_core::wire::Coordinated::Get {
                bucket: "default".into(),
                key: Bytes::from("k"),
                r: Some(3),
            }),
        })
    };
    // Two slow requests, then a quick one, all sent at once.
    framed.feed(slow(1)).await?;
    framed.feed(slow(2)).await?;
    framed
        .feed(ClientFrame::Request(RequestFrame {
            id: 3,
            epoch: Default::default(),
            body: Request::Ping,
        }))
        .await?;
    framed.flush().await?;
    let mut order = Vec::new();
    while order.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(30), framed.next()).await? {
            Some(Ok(ServerFrame::Response(r))) => order.push(r.id),
            other => panic!("unexpected {other:?}"),
        }
    }
    cluster.resume(2);
    // Without the cap the ping, answered at once, would come back first. With one slot, the
    // node read the second slow request and then stopped reading until the first finished:
    // the ping was read, and answered, only after that.
    assert_eq!(order[0], 1, "answers came back in the order {order:?}");
    assert!(
        order.iter().position(|&id| id == 3) > order.iter().position(|&id| id == 1),
        "{order:?}"
    );
    Ok(())
}
