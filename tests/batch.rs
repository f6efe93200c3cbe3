//! Batches: `get_many` against real nodes. One frame per node carries a batch's reads, each
//! key's result is what a lone read returns, a key that fails or disagrees is read again on
//! its own (with read repair), and the node answers a batch's requests one by one.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use ringkv::{ClientConfig, Error, ReadOptions};
use ringkv_core::wire::{
    BATCH_PROTOCOL_VERSION, ClientFrame, FrameCodec, Hello, MAX_BATCH_REQUESTS, Request,
    RequestFrame, Response, ResponseFrame, ServerFrame, WireError,
};
use ringkv_tests::{ClusterSpec, RawConnection, TestCluster};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A client that never samples reads for repair, so that a batch asks `R` targets per key.
fn no_sampling() -> ClientConfig {
    let mut config = ClientConfig::default();
    config.read_repair_chance = 0.0;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_returns_what_lone_reads_return_key_by_key() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client_with(no_sampling()).await?;
    let other = cluster.client().await?;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for i in 0..40 {
        let key = format!("batch-{i}");
        match i % 4 {
            0 => {} // never written
            1 => {
                client.put(&key, format!("value-{i}"), None).await?;
            }
            2 => {
                // Deleted after a write.
                client.put(&key, "gone", None).await?;
                let read = client.get(&key).await?;
                client.delete(&key, Some(read.context())).await?;
            }
            _ => {
                // Two concurrent writes: siblings.
                let (a, b) = tokio::join!(
                    client.put(&key, format!("a-{i}"), None),
                    other.put(&key, format!("b-{i}"), None)
                );
                a?;
                b?;
            }
        }
        keys.push(key.into_bytes());
    }
    // One key the nodes refuse: it fails alone, the rest are read.
    keys.push(vec![b'k'; 70 * 1024]);
    let before = client.stats().batched_reads;
    let results = client.get_many(&keys).await;
    assert_eq!(results.len(), keys.len());
    for (key, result) in keys.iter().zip(&results).take(40) {
        let lone = client.get(key).await?;
        let batched = result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut lone_values: Vec<_> = lone.siblings().to_vec();
        let mut batched_values: Vec<_> = batched.siblings().to_vec();
        lone_values.sort();
        batched_values.sort();
        assert_eq!(
            batched_values,
            lone_values,
            "{}",
            String::from_utf8_lossy(key)
        );
        assert_eq!(batched.context(), lone.context());
    }
    assert!(
        matches!(
            results[40],
            Err(Error::Server(WireError::KeyTooLarge { .. }))
        ),
        "{:?}",
        results[40]
    );
    // Every readable key was settled by the batch itself, none read again on its own.
    assert_eq!(client.stats().batched_reads - before, 40);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_answers_disagree_reads_those_keys_alone_and_repairs_them()
-> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client_with(no_sampling()).await?;
    let victim = cluster.nodes[2].addr;
    cluster.kill(2);
    let keys: Vec<String> = (0..20).map(|i| format!("stale-{i}")).collect();
    for key in &keys {
        client.put(key, "fresh", None).await?;
    }
    cluster.restart(2).await?;
    ringkv_tests::until_replicas_answer(&client, 3).await?;
    // The returning node missed every write (all three nodes are homes of every key).
    let mut raw = RawConnection::open(victim).await?;
    let held = |answer: &Result<Response, WireError>| matches!(answer, Ok(Response::Value { state: Some(s) }) if !s.is_absent());
    let mut stale = 0;
    for key in &keys {
        let answer = raw.request(get(key)).await?;
        stale += usize::from(!held(&answer));
    }
    assert!(stale > 0, "the returning node already held every key");
    let full_before = client.stats().full_reads;
    let results = client
        .get_many_with(&keys, &ReadOptions::default().with_r(3))
        .await;
    for result in &results {
        let value = result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(value.value(), Some(&Bytes::from_static(b"fresh")));
    }
    // Each disagreeing key was read again asking every replica.
    assert!(client.stats().full_reads - full_before >= stale as u64);
    // And repaired: the returning node comes to hold every key.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut missing = 0;
        for key in &keys {
            missing += usize::from(!held(&raw.request(get(key)).await?));
        }
        if missing == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing} keys still missing on the returning node"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_reads_every_key_while_a_node_dies_unnoticed() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client_with(no_sampling()).await?;
    let keys: Vec<String> = (0..60).map(|i| format!("crash-{i}")).collect();
    for key in &keys {
        client.put(key, key.clone(), None).await?;
    }
    // Warm the connections, then kill a node the client still believes up.
    let _ = client.get_many(&keys).await;
    cluster.kill(1);
    let results = client.get_many(&keys).await;
    for (key, result) in keys.iter().zip(results) {
        let value = result.map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        assert_eq!(value.value(), Some(&Bytes::from(key.clone())), "{key}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_each_request_of_a_batch_on_its_own() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client().await?;
    client.put("present", "here", None).await?;
    let mut raw = RawConnection::open(cluster.nodes[0].addr).await?;
    let answer = raw
        .request(Request::Batch {
            requests: vec![
                get("present"),
                Request::Stats,
                Request::Batch {
                    requests: vec![get("present")],
                },
                get("absent"),
            ],
        })
        .await?;
    let Ok(Response::Batch { results }) = answer else {
        panic!("a batch answered {answer:?}");
    };
    assert_eq!(results.len(), 4);
    assert!(
        matches!(&results[0], Ok(Response::Value { state: Some(s) }) if !s.is_absent()),
        "{:?}",
        results[0]
    );
    // Only gets travel in a batch: a node's statistics and a nested batch are refused in
    // their places.
    assert!(matches!(results[1], Err(WireError::InvalidRequest { .. })));
    assert!(matches!(results[2], Err(WireError::InvalidRequest { .. })));
    assert!(matches!(results[3], Ok(Response::Value { state: None })));
    // Too many requests: the batch is refused whole, and the connection keeps serving.
    let too_many = raw
        .request(Request::Batch {
            requests: (0..=MAX_BATCH_REQUESTS).map(|_| get("present")).collect(),
        })
        .await?;
    assert!(
        matches!(too_many, Err(WireError::InvalidRequest { .. })),
        "{too_many:?}"
    );
    assert!(matches!(
        raw.request(get("present")).await?,
        Ok(Response::Value { state: Some(_) })
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_refused_over_a_connection_older_than_batches() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let mut framed = Framed::new(
        TcpStream::connect(cluster.nodes[0].addr).await?,
        FrameCodec::<ServerFrame, ClientFrame>::new(),
    );
    let old = BATCH_PROTOCOL_VERSION - 1;
    framed
        .send(ClientFrame::Hello(Hello {
            protocol_version: old,
            agent: "old".into(),
            min_version: Some(old),
        }))
        .await?;
    let Some(Ok(ServerFrame::Welcome(welcome))) = framed.next().await else {
        panic!("no welcome at protocol {old}");
    };
    assert_eq!(welcome.protocol_version, old);
    framed
        .send(ClientFrame::Request(RequestFrame {
            id: 1,
            epoch: welcome.epoch,
            body: Request::Batch {
                requests: vec![get("k")],
            },
        }))
        .await?;
    match framed.next().await {
        Some(Ok(ServerFrame::Response(ResponseFrame {
            id: 1,
            body: Err(WireError::InvalidRequest { .. }),
            ..
        }))) => {}
        other => panic!("a batch at protocol {old} was answered {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_overflow_a_batch_into_lone_reads_not_past_the_frame_limit()
-> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client_with(no_sampling()).await?;
    // Six values of 3 MiB: 18 MiB in all, more than one frame may carry.
    let keys: Vec<String> = (0..6).map(|i| format!("large-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        client.put(key, vec![i as u8; 3 << 20], None).await?;
    }
    let before = client.stats().batched_reads;
    let results = client.get_many(&keys).await;
    for (i, result) in results.into_iter().enumerate() {
        let value = result.map_err(|e| anyhow::anyhow!("{}: {e}", keys[i]))?;
        assert_eq!(
            value.value().map(|v| (v.len(), v[0])),
            Some((3 << 20, i as u8))
        );
    }
    let batched = client.stats().batched_reads - before;
    assert!(
        batched < keys.len() as u64,
        "every key fit its node's answers: {batched}"
    );
    // The connections survived the batches: a lone read still works at once.
    assert!(client.get(&keys[0]).await?.is_found());
    Ok(())
}

fn get(key: &str) -> Request {
    Request::Get {
        bucket: "default".into(),
        key: Bytes::from(key.to_string()),
    }
}
