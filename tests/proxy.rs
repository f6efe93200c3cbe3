//! Proxy mode: a thin client's operations coordinated by a node with the SDK's code.

use std::time::Duration;

use bytes::Bytes;
use ringkv::{Error, ProxyClient};
use ringkv_core::wire::{Coordinated, Request, WireError};
use ringkv_tests::{ClusterSpec, RawConnection, TestCluster};

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_keeps_the_sdks_semantics() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let sdk = cluster.client().await?;
    let thin = ProxyClient::connect(cluster.addrs(), TIMEOUT).await?;
    assert_eq!(thin.members().len(), 3);

    // A write through a node is a quorum write the SDK reads back.
    let receipt = thin
        .write(
            "cart",
            Some(Bytes::from_static(b"apples")),
            None,
            None,
            false,
        )
        .await?;
    assert!(receipt.home.len() >= 2, "{receipt:?}");
    let read = sdk.get("cart").await?;
    assert_eq!(read.value().map(|v| &v[..]), Some(&b"apples"[..]));

    // Contexts cross between the two clients: a proxy write with an SDK read's context
    // replaces exactly that value.
    thin.write(
        "cart",
        Some(Bytes::from_static(b"pears")),
        Some(read.context()),
        None,
        false,
    )
    .await?;
    let read = thin.get("cart", Some(3)).await?;
    assert_eq!(read.siblings(), &[Bytes::from_static(b"pears")]);

    // Two writes from the same read are concurrent: both are kept, as siblings.
    for fruit in [&b"plums"[..], &b"figs"[..]] {
        thin.write(
            "cart",
            Some(Bytes::copy_from_slice(fruit)),
            Some(read.context()),
            None,
            false,
        )
        .await?;
    }
    let both = sdk.get("cart").await?;
    let mut siblings: Vec<&[u8]> = both.siblings().iter().map(|b| &b[..]).collect();
    siblings.sort();
    assert_eq!(siblings, vec![&b"figs"[..], &b"plums"[..]]);

    // Deleting through the proxy with the merged context removes both.
    let merged = thin.get("cart", None).await?;
    thin.write("cart", None, Some(merged.context()), None, false)
        .await?;
    assert!(!sdk.get("cart").await?.is_found());

    // A request the coordinator refuses comes back as the same typed error.
    let error = thin.get("cart", Some(4)).await.err();
    assert!(
        matches!(&error, Some(Error::Server(WireError::InvalidRequest { reason })) if reason.contains('r')),
        "{error:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_survives_a_node_down() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec::default()).await?;
    let thin = ProxyClient::connect(cluster.addrs(), TIMEOUT).await?;
    cluster.kill(2);
    // Every call succeeds: a call sent to the dead node moves on to a live one, and the
    // coordinator's sloppy quorum writes past the dead replica.
    for i in 0..30 {
        let key = format!("k{i}");
        thin.write(&key, Some(Bytes::from(key.clone())), None, None, false)
            .await?;
        let read = thin.get(&key, None).await?;
        assert_eq!(read.value().map(|v| v.to_vec()), Some(key.into_bytes()));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_context_is_refused_with_a_clear_error() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let op = Coordinated::Write {
        bucket: "default".into(),
        key: Bytes::from_static(b"k"),
        value: Some(Bytes::from_static(b"v")),
        context: Some(Bytes::from_static(b"\x09garbage")),
        w: None,
        overwrite: false,
        ttl_ms: None,
    };
    let mut raw = RawConnection::open(cluster.nodes[0].addr).await?;
    let answer = raw.request(Request::Coordinate(op)).await?;
    assert!(
        matches!(&answer, Err(WireError::InvalidRequest { reason }) if reason.contains("context")),
        "{answer:?}"
    );
    Ok(())
}
