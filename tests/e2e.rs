//! End-to-end tests: real `ringkvd` processes on loopback, driven through the SDK with
//! N = 3, R = 2, W = 2 unless a test says otherwise.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use ringkv::{ClientConfig, Error, ReadOptions, WriteOptions};
use ringkv_core::wire::{
    ClientFrame, FrameCodec, Hello, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, Request, Response,
    ServerFrame, WireError,
};
use ringkv_tests::{ClusterSpec, RawConnection, TestCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

fn three() -> ClusterSpec {
    ClusterSpec::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_from_one_byte_to_one_mebibyte_round_trip() -> anyhow::Result<()> {
    let cluster = TestCluster::start(three()).await?;
    let client = cluster.client().await?;
    for size in [1usize, 100, 4096, 65_536, 1 << 20] {
        let key = format!("size-{size}");
        let value: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let receipt = client.put(&key, value.clone(), None).await?;
        assert!(receipt.acks() >= 2, "{receipt:?}");
        let read = client.get(&key).await?;
        assert_eq!(read.value().map(|v| v.to_vec()), Some(value), "size {size}");
        client.delete(&key, Some(read.context())).await?;
        let gone = client.get(&key).await?;
        assert!(!gone.is_found(), "size {size} still found after delete");
        assert!(
            !gone.context().is_empty(),
            "a deleted key keeps its context"
        );
    }
    assert!(!client.get("never-written").await?.is_found());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_from_one_context_become_siblings_and_a_merge_resolves_them()
-> anyhow::Result<()> {
    let cluster = TestCluster::start(three()).await?;
    let alice = cluster.client().await?;
    let bob = cluster.client().await?;
    alice.put("cart", "milk", None).await?;
    let seen = alice.get("cart").await?;
    // Both write from the same read, concurrently.
    let (a, b) = tokio::join!(
        alice.put("cart", "milk,eggs", Some(seen.context())),
        bob.put("cart", "milk,bread", Some(seen.context())),
    );
    a?;
    b?;
    let read = alice
        .get_with("cart", &ReadOptions::default().with_r(3))
        .await?;
    let siblings: BTreeSet<Bytes> = read.siblings().iter().cloned().collect();
    assert_eq!(
        siblings,
        BTreeSet::from([Bytes::from("milk,eggs"), Bytes::from("milk,bread")]),
        "both concurrent writes must be kept"
    );
    // A blind write now would add a third sibling: refused, with an explanation.
    match alice.put("cart", "oops", None).await {
        Err(Error::ContextRequired { siblings: 2 }) => {}
        other => panic!("expected ContextRequired, got {other:?}"),
    }
    alice
        .put("cart", "milk,eggs,bread", Some(read.context()))
        .await?;
    let resolved = bob
        .get_with("cart", &ReadOptions::default().with_r(3))
        .await?;
    assert_eq!(resolved.value(), Some(&Bytes::from("milk,eggs,bread")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_context_never_overwrites_a_newer_value() -> anyhow::Result<()> {
    let cluster = TestCluster::start(three()).await?;
    let client = cluster.client().await?;
    client.put("profile", "v1", None).await?;
    let old = client.get("profile").await?;
    client.put("profile", "v2", Some(old.context())).await?;
    let newer = client.get("profile").await?;
    assert_eq!(newer.value(), Some(&Bytes::from("v2")));
    // A writer that read v1 writes late: v2 must survive beside it.
    client.put("profile", "late", Some(old.context())).await?;
    let after = client
        .get_with("profile", &ReadOptions::default().with_r(3))
        .await?;
    let siblings: BTreeSet<Bytes> = after.siblings().iter().cloned().collect();
    assert_eq!(
        siblings,
        BTreeSet::from([Bytes::from("v2"), Bytes::from("late")])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_of_three_killed_quorums_still_succeed_and_its_data_survives() -> anyhow::Result<()>
{
    let mut cluster = TestCluster::start(three()).await?;
    let client = cluster
        .client_with(ClientConfig::default().with_timeout(Duration::from_secs(3)))
        .await?;
    for i in 0..100 {
        client
            .put(format!("before-{i}"), format!("v{i}"), None)
            .await?;
    }
    let victim = cluster.nodes[1].addr;
    // A put returns after W = 2 acknowledgements; the third copy follows in the background.
    // What this test asks is that what the node *holds* survives kill -9, so it kills the node
    // once every copy has landed (a copy still in flight at the kill is the quorum's to keep,
    // and the reads below check that).
    let all_landed = ringkv_tests::eventually(Duration::from_secs(10), || async {
        let Ok(mut raw) = RawConnection::open(victim).await else {
            return false;
        };
        for i in 0..100 {
            let get = Request::Get {
                bucket: "default".into(),
                key: Bytes::from(format!("before-{i}")),
            };
            match raw.request(get).await {
                Ok(Ok(Response::Value { state: Some(state) })) if !state.is_absent() => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    assert!(
        all_landed,
        "the background copies never reached the third replica"
    );
    cluster.kill(1);
    for i in 0..100 {
        client
            .put(format!("during-{i}"), format!("v{i}"), None)
            .await?;
    }
    for i in 0..100 {
        let read = client.get(format!("before-{i}")).await?;
        assert_eq!(
            read.value(),
            Some(&Bytes::from(format!("v{i}"))),
            "before-{i}"
        );
        let read = client.get(format!("during-{i}")).await?;
        assert_eq!(
            read.value(),
            Some(&Bytes::from(format!("v{i}"))),
            "during-{i}"
        );
    }
    cluster.restart(1).await?;
    ringkv_tests::until_replicas_answer(&client, 3).await?;
    // Its own data survived kill -9: read the node directly, not through a quorum.
    let mut raw = RawConnection::open(victim).await?;
    let ring = client.ring();
    let mut held = 0;
    for i in 0..100 {
        let key = format!("before-{i}");
        let home = ring.home_replicas("default", key.as_bytes());
        if !home.iter().any(|m| m.addr == victim.to_string()) {
            continue;
        }
        let answer = raw
            .request(Request::Get {
                bucket: "default".into(),
                key: Bytes::from(key.clone()),
            })
            .await?;
        match answer {
            Ok(Response::Value { state: Some(state) }) if !state.is_absent() => held += 1,
            other => panic!("{key} missing on the restarted node: {other:?}"),
        }
    }
    assert!(held > 0, "the restarted node is a home replica of no key?");
    // Everything reads back with all three replicas answering.
    let all = ReadOptions::default().with_r(3);
    for i in 0..100 {
        let read = client.get_with(format!("during-{i}"), &all).await?;
        assert_eq!(read.value(), Some(&Bytes::from(format!("v{i}"))));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_repair_brings_a_returning_replica_up_to_date() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(three()).await?;
    let client = cluster.client().await?;
    let victim = cluster.nodes[2].addr;
    cluster.kill(2);
    let ring = client.ring();
    let keys: Vec<String> = (0..200)
        .map(|i| format!("repair-{i}"))
        .filter(|k| {
            ring.home_replicas("default", k.as_bytes())
                .iter()
                .any(|m| m.addr == victim.to_string())
        })
        .take(20)
        .collect();
    for key in &keys {
        client.put(key, "fresh", None).await?;
    }
    cluster.restart(2).await?;
    ringkv_tests::until_replicas_answer(&client, 3).await?;
    let before = client.stats().read_repairs;
    for key in &keys {
        client
            .get_with(key, &ReadOptions::default().with_r(3))
            .await?;
    }
    // Repairs run in the background after each read: poll the node directly until it holds
    // every key, with a deadline.
    let mut raw = RawConnection::open(victim).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let repaired = loop {
        let mut missing = 0;
        for key in &keys {
            let answer = raw
                .request(Request::Get {
                    bucket: "default".into(),
                    key: Bytes::from(key.clone()),
                })
                .await?;
            if !matches!(answer, Ok(Response::Value { state: Some(ref s) }) if !s.is_absent()) {
                missing += 1;
            }
        }
        if missing == 0 || std::time::Instant::now() > deadline {
            break missing == 0;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        repaired,
        "read repair did not restore the returning replica"
    );
    assert!(client.stats().read_repairs >= before + keys.len() as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_the_same_ring_and_bucket_properties() -> anyhow::Result<()> {
    let spec = ClusterSpec {
        extra_toml: "[cluster.buckets.named.cache]\nn = 2\nr = 1\nw = 1\nconflict = \"lww\"\n"
            .into(),
        ..three()
    };
    let cluster = TestCluster::start(spec).await?;
    let views = cluster.ring_views().await?;
    assert!(
        views.iter().all(|v| v.0 == views[0].0 && v.1 == 3),
        "{views:?}"
    );
    for addr in cluster.addrs() {
        let client = ringkv::Client::builder().seeds([addr]).build().await?;
        assert_eq!(client.ring().epoch(), views[0].0);
        assert_eq!(client.ring().bucket("cache").n, 2);
        assert_eq!(
            client.ring().bucket("cache").conflict,
            ringkv::ConflictPolicy::Lww
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lww_buckets_keep_one_value_and_quorums_are_validated() -> anyhow::Result<()> {
    let spec = ClusterSpec {
        extra_toml: "[cluster.buckets.named.cache]\nn = 3\nr = 1\nw = 1\nconflict = \"lww\"\n"
            .into(),
        ..three()
    };
    let cluster = TestCluster::start(spec).await?;
    let client = cluster.client().await?;
    let cache = client.bucket("cache");
    let (a, b) = tokio::join!(cache.put("k", "a", None), cache.put("k", "b", None));
    a?;
    b?;
    let read = cache
        .get_with("k", &ReadOptions::default().with_r(3))
        .await?;
    assert_eq!(read.siblings().len(), 1, "lww keeps one value: {read:?}");

    match client
        .get_with("k", &ReadOptions::default().with_r(4))
        .await
    {
        Err(Error::InvalidArgument(msg)) => {
            assert!(msg.contains("r = 4") && msg.contains("n = 3"), "{msg}")
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    match client
        .put_with("k", "v", None, &WriteOptions::default().with_w(5))
        .await
    {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("w = 5"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    Ok(())
}

/// A client whose clock runs an hour fast would pin an `lww` key: its write would win over
/// every later write and delete until real time caught up. The nodes refuse it, with the
/// reason, and a correct client's writes keep working; a client a little off is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lww_write_from_a_fast_clock_is_refused_and_cannot_pin_a_key() -> anyhow::Result<()> {
    let spec = ClusterSpec {
        extra_toml: "[cluster.buckets.named.cache]\nconflict = \"lww\"\n".into(),
        ..three()
    };
    let cluster = TestCluster::start(spec).await?;
    let skewed = |offset_ms: i64| {
        let mut config = ringkv::ClientConfig::default();
        config.clock_offset_ms = offset_ms;
        cluster.client_with(config)
    };
    let fast = skewed(3_600_000).await?;
    let honest = cluster.client().await?;
    match fast.bucket("cache").put("k", "from the future", None).await {
        Err(e) => assert!(e.to_string().contains("ahead of this node's clock"), "{e}"),
        Ok(receipt) => panic!("a write an hour ahead was acknowledged: {receipt:?}"),
    }
    honest.bucket("cache").put("k", "now", None).await?;
    honest.bucket("cache").put("k", "later", None).await?;
    let read = honest
        .bucket("cache")
        .get_with("k", &ReadOptions::default().with_r(3))
        .await?;
    assert_eq!(read.siblings(), vec![Bytes::from("later")]);
    // A few seconds off is within the bound (`limits.max_clock_ahead_ms`, 30 s).
    skewed(5_000)
        .await?
        .bucket("cache")
        .put("k2", "v", None)
        .await?;
    // Buckets that keep siblings are ordered by version vectors, not clocks.
    fast.put("k3", "v", None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_in_flight_share_one_connection_per_node() -> anyhow::Result<()> {
    let cluster = TestCluster::start(three()).await?;
    let client = cluster.client().await?;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client.put(format!("mux-{i}"), format!("{i}"), None).await?;
                let read = client.get(format!("mux-{i}")).await?;
                anyhow::ensure!(
                    read.value() == Some(&Bytes::from(format!("{i}"))),
                    "mux-{i}"
                );
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_the_node_keeps_serving() -> anyhow::Result<()> {
    let cluster = TestCluster::start(three()).await?;
    let client = cluster.client().await?;
    let addr = cluster.nodes[0].addr;

    // Oversized key and value: typed errors naming the limit.
    match client.put(vec![b'k'; 64 * 1024 + 1], "v", None).await {
        Err(Error::Server(WireError::KeyTooLarge { max: 65536, .. })) => {}
        other => panic!("expected KeyTooLarge, got {other:?}"),
    }
    match client
        .put("big", vec![0u8; 4 * 1024 * 1024 + 1], None)
        .await
    {
        Err(Error::Server(WireError::ValueTooLarge { max: 4194304, .. })) => {}
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }

    // A wrong protocol version: an error frame naming both versions, then close.
    let mut framed = Framed::new(
        TcpStream::connect(addr).await?,
        FrameCodec::<ServerFrame, ClientFrame>::new(),
    );
    framed
        .send(ClientFrame::Hello(Hello {
            protocol_version: 999,
            agent: "old".into(),
            min_version: None,
        }))
        .await?;
    match framed.next().await {
        Some(Ok(ServerFrame::Fatal(WireError::ProtocolVersion {
            supported: PROTOCOL_VERSION,
            received: 999,
            min_supported: MIN_PROTOCOL_VERSION,
            received_min: 999,
        }))) => {}
        other => panic!("expected a version error, got {other:?}"),
    }
    assert!(
        framed.next().await.is_none(),
        "connection stays open after a version mismatch"
    );

    // A request before the handshake.
    let mut framed = Framed::new(
        TcpStream::connect(addr).await?,
        FrameCodec::<ServerFrame, ClientFrame>::new(),
    );
    framed
        .send(ClientFrame::Request(ringkv_core::wire::RequestFrame {
            id: 1,
            epoch: Default::default(),
            body: Request::Ping,
        }))
        .await?;
    assert!(matches!(
        framed.next().await,
        Some(Ok(ServerFrame::Fatal(WireError::HandshakeRequired)))
    ));

    // Garbage bytes, a zero-length frame, a 4 GiB header: an error frame each, then close.
    for bytes in [
        b"\x00\x00\x00\x05hello".to_vec(),
        vec![0, 0, 0, 0],
        vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ] {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(&bytes).await?;
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await??;
        let mut codec = FrameCodec::<ServerFrame, ClientFrame>::new();
        let mut buf = bytes::BytesMut::from(&reply[..]);
        let frame = tokio_util::codec::Decoder::decode(&mut codec, &mut buf)?;
        assert!(
            matches!(
                frame,
                Some(ServerFrame::Fatal(
                    WireError::Malformed { .. } | WireError::FrameTooLarge { .. }
                ))
            ),
            "input {bytes:?} got {frame:?}"
        );
    }

    // Meanwhile, and afterwards, a well-behaved client is served normally.
    client.put("still-fine", "yes", None).await?;
    assert_eq!(
        client.get("still-fine").await?.value(),
        Some(&Bytes::from("yes"))
    );
    let mut raw = RawConnection::open(addr).await?;
    assert!(matches!(
        raw.request(Request::Ping).await?,
        Ok(Response::Pong { .. })
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_data_is_there_after_restart() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(three()).await?;
    let client = cluster.client().await?;
    for i in 0..50 {
        client.put(format!("durable-{i}"), "v", None).await?;
    }
    for i in 0..3 {
        let status = cluster.terminate(i, Duration::from_secs(20))?;
        assert!(status.success(), "node {i} exited with {status}");
    }
    for i in 0..3 {
        cluster.restart(i).await?;
    }
    cluster.wait_converged(3).await?;
    let client = cluster.client().await?;
    let all = ReadOptions::default().with_r(3);
    for i in 0..50 {
        assert!(
            client
                .get_with(format!("durable-{i}"), &all)
                .await?
                .is_found(),
            "durable-{i}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_failures_carry_their_counts_and_a_hung_replica_times_out() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(three()).await?;
    let client = cluster
        .client_with(ClientConfig::default().with_timeout(Duration::from_millis(1500)))
        .await?;
    client.put("k", "v", None).await?;

    // A paused replica answers nothing: a read that needs all three fails within the call's
    // deadline (the replica's request times out, it is marked down, and R = 3 is then
    // unavailable), instead of hanging.
    cluster.pause(2);
    let started = std::time::Instant::now();
    match client
        .get_with("k", &ReadOptions::default().with_r(3))
        .await
    {
        Err(Error::Timeout { in_doubt: false })
        | Err(Error::Quorum { required: 3, .. })
        | Err(Error::Unavailable { required: 3, .. }) => {}
        other => panic!("expected the read to fail, got {other:?}"),
    }
    assert!(
        started.elapsed() <= Duration::from_millis(1650),
        "the call overran its 1.5 s deadline by more than 10%: {:?}",
        started.elapsed()
    );
    // R = 2 does not wait for it.
    assert_eq!(client.get("k").await?.value(), Some(&Bytes::from("v")));
    cluster.resume(2);

    // Two of three home replicas dead: W = 2 cannot be met, and the error says how far it got.
    cluster.kill(1);
    cluster.kill(2);
    // Which shape the failure takes depends on where the key lands and on which answer comes
    // first: the live replica may stamp before the dead ones are found out (then the write is
    // on one node and in doubt), or the two dead ones may be tried first (then the quorum is
    // already impossible and nothing is written). Either way the counts tell the truth.
    match client.put("k2", "v", None).await {
        Err(Error::Quorum {
            required: 2,
            succeeded,
            errors,
            in_doubt,
        }) => {
            assert!(succeeded <= 1, "{succeeded}");
            // A node the client already knows is down is not asked, so it may add no error.
            assert!(!errors.is_empty() && errors.len() <= 2, "{errors:?}");
            if succeeded == 1 {
                assert!(
                    in_doubt,
                    "a write held by one replica must be reported in doubt"
                );
            }
            let all_unreachable = errors
                .iter()
                .all(|e| matches!(*e.error, Error::Unreachable { .. }));
            if succeeded == 0 && all_unreachable {
                assert!(!in_doubt, "a write sent nowhere cannot be in doubt");
            }
        }
        other => panic!("expected a quorum error, got {other:?}"),
    }
    // The client now knows two replicas are down: a read needing two fails at once, without
    // waiting on them, and says how many it could have asked.
    match client.get("k").await {
        Err(Error::Unavailable {
            required: 2,
            alive: 1,
            down,
            ..
        }) => {
            // It says which replicas it considers down, and why.
            assert_eq!(down.len(), 2, "{down:?}");
            assert!(
                down.iter()
                    .all(|d| d.contains(" at 127.0.0.1:") && d.contains("down")),
                "{down:?}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // W = 1 still works on the surviving replica.
    client
        .put_with("k3", "v", None, &WriteOptions::default().with_w(1))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_from_a_newer_ring_makes_the_client_refetch_it() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(three()).await?;
    // No periodic refresh during the test: only a new epoch on a response can trigger one.
    let config = ClientConfig::default().with_ring_refresh_interval(Duration::from_secs(3600));
    let client = cluster.client_with(config).await?;
    let before = client.ring().epoch();
    assert_eq!(client.ring().members().len(), 3);
    cluster.add_node().await?;
    client.put("poke", "v", None).await?;
    let refreshed = ringkv_tests::eventually(Duration::from_secs(10), || async {
        client.ring().members().len() == 4
    })
    .await;
    assert!(refreshed, "the client kept routing by ring {before}");
    assert_ne!(client.ring().epoch(), before);
    // And it works on the new ring.
    for i in 0..50 {
        client.put(format!("after-join-{i}"), "v", None).await?;
        assert!(client.get(format!("after-join-{i}")).await?.is_found());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_an_overloaded_error() -> anyhow::Result<()> {
    let spec = ClusterSpec {
        extra_toml: "[limits]\nmax_connections = 3\n".into(),
        ..three()
    };
    let cluster = TestCluster::start(spec).await?;
    let addr = cluster.nodes[0].addr;
    // Fill the node up to its cap. Its peers may hold connections to it too (they fetch the
    // layout from each other), so count what it accepts rather than assume it.
    let mut held = Vec::new();
    while let Ok(raw) = RawConnection::open(addr).await {
        held.push(raw);
        assert!(held.len() <= 3, "a fourth connection was accepted");
    }
    assert!(!held.is_empty(), "not even one connection was accepted");
    let mut framed = Framed::new(
        TcpStream::connect(addr).await?,
        FrameCodec::<ServerFrame, ClientFrame>::new(),
    );
    match framed.next().await {
        Some(Ok(ServerFrame::Fatal(WireError::Overloaded { reason }))) => {
            assert!(reason.contains('3'), "{reason}")
        }
        other => panic!("expected Overloaded, got {other:?}"),
    }
    // Those already connected are served; once one leaves, a newcomer is accepted.
    assert!(matches!(
        held[0].request(Request::Ping).await?,
        Ok(Response::Pong { .. })
    ));
    held.pop();
    let accepted = ringkv_tests::eventually(Duration::from_secs(5), || async {
        RawConnection::open(addr).await.is_ok()
    })
    .await;
    assert!(
        accepted,
        "a slot freed by a closed connection was not reused"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_serves_health_readiness_and_prometheus_metrics() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec {
        admin: true,
        ..three()
    })
    .await?;
    let client = cluster.client().await?;
    for i in 0..20 {
        client.put(format!("metrics-{i}"), "v", None).await?;
        client.get(format!("metrics-{i}")).await?;
    }
    // The SDK's own snapshot of those calls.
    let stats = client.stats();
    assert_eq!(
        (stats.gets, stats.writes, stats.errors),
        (20, 20, 0),
        "{stats:?}"
    );
    assert_eq!(stats.get_latency.count, 20);
    assert_eq!(stats.write_latency.count, 20);
    let get = stats.get_latency;
    assert!(
        get.p50_us > 0 && get.p50_us <= get.p99_us && get.p99_us <= get.max_us,
        "{get:?}"
    );
    let admin = cluster.nodes[0].admin.expect("an admin port");
    assert_eq!(ringkv_tests::http_get(admin, "/health")?.0, 200);
    let ready = ringkv_tests::eventually(Duration::from_secs(10), || async {
        ringkv_tests::http_get(admin, "/ready").is_ok_and(|(status, _)| status == 200)
    })
    .await;
    assert!(ready, "a healthy three-node cluster is not ready");

    let (status, text) = ringkv_tests::http_get(admin, "/metrics")?;
    assert_eq!(status, 200);
    for family in [
        "# TYPE ringkv_requests counter",
        "# TYPE ringkv_request_errors counter",
        "ringkv_request_duration_seconds_bucket{",
        "ringkv_connections ",
        // Every connection so far negotiated this release's version.
        &format!("ringkv_handshakes_total{{protocol=\"{PROTOCOL_VERSION}\"}} "),
        "ringkv_hints_pending ",
        "ringkv_hints_delivered_total ",
        "ringkv_hint_bytes ",
        "ringkv_hints_converted_total ",
        "ringkv_anti_entropy_keys_repaired_total ",
        "ringkv_log_syncs_total ",
        "ringkv_durable_writes_total ",
        "ringkv_transfer_sent_keys ",
        "ringkv_store_keys ",
        "ringkv_rocksdb_write_stopped 0",
        "ringkv_ready 1",
        "ringkv_ring_members 3",
        "# TYPE ringkv_siblings_per_read histogram",
        "ringkv_anti_entropy_bytes_total ",
        &format!(
            "ringkv_build_info{{version=\"{}\",protocol=\"{PROTOCOL_VERSION}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "# EOF",
    ] {
        assert!(text.contains(family), "{family:?} missing from:\n{text}");
    }
    // Node 0 took part in the writes: its request counter for them is not zero.
    let handled: f64 = text
        .lines()
        .filter(|l| l.starts_with("ringkv_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(handled >= 20.0, "{handled} requests counted:\n{text}");

    // Two of three down: the default quorum (2) cannot be met, and /ready says so.
    cluster.kill(1);
    cluster.kill(2);
    let mut reason = String::new();
    let unready = ringkv_tests::eventually(Duration::from_secs(30), || {
        let answer = ringkv_tests::http_get(admin, "/ready");
        if let Ok((_, body)) = &answer {
            reason = body.clone();
        }
        async move { answer.is_ok_and(|(status, _)| status == 503) }
    })
    .await;
    assert!(
        unready,
        "still ready with two of three nodes down: {reason}"
    );
    // Why: the quorum, or (within its first seconds) no other member heard from.
    assert!(
        reason.starts_with("not ready: ") && reason.len() > "not ready: ".len() + 10,
        "{reason}"
    );
    assert_eq!(ringkv_tests::http_get(admin, "/health")?.0, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_wait_for_dw_synced_replicas() -> anyhow::Result<()> {
    // Nodes that sync every write (`storage.durability = "fsync"`) serve as usual.
    let spec = ClusterSpec {
        extra_toml: "[storage]\ndurability = \"fsync\"\nblock_cache_mb = 8\n".into(),
        ..ClusterSpec::default()
    };
    let mut cluster = TestCluster::start(spec).await?;
    let client = cluster.client().await?;
    client.put("synced", "on disk", None).await?;
    assert_eq!(
        client.get("synced").await?.value().map(|v| v.to_vec()),
        Some(b"on disk".to_vec())
    );

    // dw raises the number of acknowledgements waited for: with one of three nodes down
    // (and no fallback to stand in), w=2 succeeds but dw=3 cannot.
    cluster.kill(2);
    let config = ClientConfig::default().with_retries(0);
    let client = cluster.client_with(config).await?;
    let w2 = WriteOptions::default().with_w(2).with_dw(2);
    let receipt = client.put_with("durable", "two", None, &w2).await?;
    assert!(receipt.acks() >= 2, "{receipt:?}");
    let dw3 = WriteOptions::default().with_w(1).with_dw(3);
    let error = client.put_with("durable", "three", None, &dw3).await.err();
    assert!(
        matches!(
            error,
            Some(
                Error::Quorum { required: 3, .. }
                    | Error::Unavailable { .. }
                    | Error::Timeout { .. }
            )
        ),
        "{error:?}"
    );
    // A dw above N is refused before anything is sent.
    let dw4 = WriteOptions::default().with_dw(4);
    let error = client.put_with("durable", "four", None, &dw4).await.err();
    assert!(
        matches!(error, Some(Error::InvalidArgument(_))),
        "{error:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_from_the_admin_port_is_a_consistent_copy_of_the_store() -> anyhow::Result<()>
{
    let cluster = TestCluster::start(ClusterSpec {
        admin: true,
        ..three()
    })
    .await?;
    let client = cluster.client().await?;
    let all = WriteOptions::default().with_w(3);
    for i in 0..50 {
        client
            .put_with(format!("backup-{i}"), format!("v{i}"), None, &all)
            .await?;
    }
    let admin = cluster.nodes[0].admin.expect("an admin port");
    let (status, body) = ringkv_tests::http_post(admin, "/checkpoint")?;
    assert_eq!(status, 200, "{body}");
    let dir = std::path::PathBuf::from(body.trim());
    assert!(dir.is_dir(), "{dir:?}");
    // Written while the node runs; opened as a store of its own, it holds every write.
    let backup = ringkv_server::storage::RocksStore::open(&dir)?;
    for i in 0..50 {
        let state = ringkv_server::storage::Store::get(
            &backup,
            "default",
            format!("backup-{i}").as_bytes(),
        )?;
        let value = state.and_then(|s| s.state.live().next().and_then(|l| l.value.clone()));
        assert_eq!(
            value.as_deref(),
            Some(format!("v{i}").as_bytes()),
            "backup-{i}"
        );
    }
    // A second checkpoint goes to a directory of its own.
    let (status, second) = ringkv_tests::http_post(admin, "/checkpoint")?;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second.trim(), body.trim());
    Ok(())
}

/// The review's restore scenario: a home restarted on a checkpoint taken before a
/// read-modify-write must not stamp the next write with the dot that write already has on
/// the other replicas (two acknowledged writes under one dot, replicas divergent for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_restored_from_a_checkpoint_never_mints_a_dot_its_peers_hold() -> anyhow::Result<()>
{
    let mut cluster = TestCluster::start(ClusterSpec {
        admin: true,
        ..three()
    })
    .await?;
    let client = cluster.client().await?;
    let key = "restored";
    let all = WriteOptions::default().with_w(3);
    client.put_with(key, "v1", None, &all).await?;
    // The first home stamps the key's writes: restore that one.
    let first = cluster.homes_of(&client, key)[0];
    let admin = cluster.nodes[first].admin.expect("an admin port");
    let (status, checkpoint) = ringkv_tests::http_post(admin, "/checkpoint")?;
    assert_eq!(status, 200, "{checkpoint}");
    let v1 = client.get(key).await?;
    client.put_with(key, "v2", Some(v1.context()), &all).await?;

    cluster.kill(first);
    let data = cluster.nodes[first].dir.join("data");
    std::fs::remove_dir_all(&data)?;
    std::fs::create_dir_all(&data)?;
    for entry in std::fs::read_dir(checkpoint.trim())? {
        let entry = entry?;
        std::fs::copy(entry.path(), data.join(entry.file_name()))?;
    }
    cluster.restart(first).await?;

    let r3 = ReadOptions::default().with_r(3);
    let back = ringkv_tests::eventually(Duration::from_secs(20), || async {
        client.refresh_ring().await.is_ok() && client.put_with(key, "v3", None, &all).await.is_ok()
    })
    .await;
    assert!(back, "the blind put v3 was never acknowledged by all three");
    // Every replica holds the same state, and it keeps both acknowledged writes.
    let mut states = Vec::new();
    for i in 0..3 {
        let mut raw = RawConnection::open(cluster.nodes[i].addr).await?;
        match raw
            .request(Request::Get {
                bucket: "default".into(),
                key: Bytes::from(key),
            })
            .await?
        {
            Ok(Response::Value { state }) => states.push(state),
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    let read = client.get_with(key, &r3).await?;
    let mut values = read.siblings().to_vec();
    values.sort();
    assert_eq!(values, [Bytes::from("v2"), Bytes::from("v3")], "{states:?}");
    for state in states.iter().flatten() {
        for sibling in state.siblings() {
            let same_dot = state
                .siblings()
                .iter()
                .chain(states.iter().flatten().flat_map(|s| s.siblings()))
                .filter(|s| s.dot == sibling.dot);
            for other in same_dot {
                assert_eq!(other, sibling, "one dot names two writes: {states:?}");
            }
        }
    }
    Ok(())
}

/// A write returns what it left, like a read (Riak's `return_body`): two writers (two
/// requests of one web session on two servers) update a set on one key in turns, each with
/// what its own last write returned and no read in between. Every element stays, at most two
/// siblings remain, and the receipt shows the write itself among the siblings it left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_writers_using_their_write_receipts_keep_every_element() -> anyhow::Result<()> {
    let cluster = TestCluster::start(three()).await?;
    let client = cluster.client().await?;
    let key = "session:alternating";
    let mut last: [Option<ringkv::Value>; 2] = [None, None];
    let mut added = BTreeSet::new();
    for n in 0..6 {
        for (writer, mine) in last.iter_mut().enumerate() {
            let mut elements = BTreeSet::new();
            for sibling in mine.iter().flat_map(|v| v.siblings()) {
                let text = String::from_utf8_lossy(sibling).into_owned();
                elements.extend(text.split(',').map(str::to_string));
            }
            let element = format!("w{writer}-{n}");
            elements.insert(element.clone());
            added.insert(element);
            let body = elements.iter().cloned().collect::<Vec<_>>().join(",");
            let receipt = client
                .put(key, body.clone(), mine.as_ref().map(|v| v.context()))
                .await?;
            assert!(
                receipt.written.siblings().contains(&Bytes::from(body)),
                "the receipt shows the write itself"
            );
            *mine = Some(receipt.written);
        }
    }
    let read = client.get(key).await?;
    assert!(read.siblings().len() <= 2, "{:?}", read.siblings());
    let mut held = BTreeSet::new();
    for sibling in read.siblings() {
        let text = String::from_utf8_lossy(sibling).into_owned();
        held.extend(text.split(',').map(str::to_string));
    }
    let lost: Vec<_> = added.difference(&held).collect();
    assert!(lost.is_empty(), "elements lost: {lost:?}");
    Ok(())
}

/// A member's machine wiped and restarted at the member's address comes back under a new id
/// with an empty disk. It is not that member: its "not found" must never count as the
/// member's answer (a read of all three replicas would otherwise succeed without it), and
/// the SDK's and peers' calls to the member fail as if it were down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_at_a_members_address_is_not_taken_for_that_member() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(three()).await?;
    let client = cluster.client().await?;
    let key = "wiped";
    client
        .put_with(key, "v", None, &WriteOptions::default().with_w(3))
        .await?;
    let member = cluster.member_of(2).await?.id;
    cluster.kill(2);
    let data = cluster.nodes[2].dir.join("data");
    std::fs::remove_dir_all(&data)?;
    std::fs::create_dir_all(&data)?;
    cluster.restart(2).await?;
    let impostor = cluster.member_of(2).await?.id;
    assert_ne!(impostor, member, "a wiped node takes a new id");
    // Once it has heard the cluster's layout, it answers reads: "not found".
    let addr = cluster.nodes[2].addr;
    let answers_empty = ringkv_tests::eventually(Duration::from_secs(20), || async {
        let Ok(mut raw) = RawConnection::open(addr).await else {
            return false;
        };
        let get = Request::Get {
            bucket: "default".into(),
            key: Bytes::from(key),
        };
        matches!(
            raw.request(get).await,
            Ok(Ok(Response::Value { state: None }))
        )
    })
    .await;
    assert!(answers_empty, "the wiped node never served reads");

    let pool = ringkv::transport::Pool::new();
    let call = pool
        .call_node(
            member,
            &addr.to_string(),
            Duration::from_secs(2),
            ringkv_core::RingEpoch::default(),
            Request::Ping,
        )
        .await;
    assert!(
        matches!(&call, Err(ringkv::Error::Unreachable { reason, .. }) if reason.contains("answers as node")),
        "{call:?}"
    );
    // All three replicas: member 2 is not among those answering.
    let all = ReadOptions::default()
        .with_r(3)
        .with_timeout(Duration::from_secs(3));
    let read = client.get_with(key, &all).await;
    assert!(read.is_err(), "the impostor counted as member 2: {read:?}");
    // The two real replicas still serve the value.
    let read = client.get(key).await?;
    assert_eq!(read.siblings(), &[Bytes::from("v")]);
    Ok(())
}
