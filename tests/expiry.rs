//! Expiry on real `ringkvd` processes: a value written with a time to live reads as absent on
//! every replica once it has expired, keeps its version so that nothing it superseded comes
//! back, and is judged by the servers' clocks, a skewed one included.

use std::time::Duration;

use bytes::Bytes;
use ringkv::{ReadOptions, WriteOptions};
use ringkv_core::SiblingSet;
use ringkv_core::wire::{Request, Response};
use ringkv_tests::{ClusterSpec, RawConnection, TestCluster};

/// What node `i` answers for `key` itself (its own copy, expired values stripped by its own
/// clock).
async fn held_by(cluster: &TestCluster, i: usize, key: &str) -> anyhow::Result<SiblingSet> {
    let mut raw = RawConnection::open(cluster.nodes[i].addr).await?;
    let get = Request::Get {
        bucket: "default".into(),
        key: Bytes::from(key.to_string()),
    };
    match raw.request(get).await? {
        Ok(Response::Value { state }) => Ok(state.unwrap_or_default()),
        other => anyhow::bail!("node {i} answered {other:?}"),
    }
}

/// `key` read from every node, retried while one is still coming back.
async fn read_all(client: &ringkv::Client, key: &str) -> anyhow::Result<ringkv::Value> {
    for _ in 0..100 {
        if let Ok(read) = client.get_with(key, &all_homes()).await {
            return Ok(read);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("{key}: three replicas never answered")
}

/// Every node, strictly: a read that cannot be answered by a fallback.
fn all_homes() -> ReadOptions {
    ReadOptions::default().with_r(3).with_pr(3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_with_a_ttl_reads_as_absent_on_every_replica_once_expired() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client().await?;
    let ttl = WriteOptions::default().with_ttl(Duration::from_millis(1_500));
    client.put_with("session", "alice", None, &ttl).await?;
    client.put("forever", "bob", None).await?;
    let read = client.get_with("session", &all_homes()).await?;
    assert_eq!(read.value(), Some(&Bytes::from("alice")));

    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let read = client.get_with("session", &all_homes()).await?;
    assert!(!read.is_found(), "expired, yet read {:?}", read.value());
    assert!(
        !read.context().is_empty(),
        "an expired key keeps its version"
    );
    for i in 0..3 {
        let held = held_by(&cluster, i, "session").await?;
        assert!(held.is_absent(), "node {i} still serves the value");
        assert_eq!(held.siblings().len(), 1, "node {i} dropped the version");
    }
    assert!(client.get("forever").await?.is_found(), "no ttl, no expiry");

    // A new write from the expired read's context replaces it; the node that stamps it
    // reclaimed the expired bytes first, and counts them.
    client
        .put_with("session", "alice-again", Some(read.context()), &ttl)
        .await?;
    let reclaimed: u64 = cluster
        .stats()
        .await?
        .iter()
        .map(|s| s.expired_values_reclaimed)
        .sum();
    assert!(reclaimed >= 1, "nothing counted as reclaimed");
    let read = client.get_with("session", &all_homes()).await?;
    assert_eq!(read.value(), Some(&Bytes::from("alice-again")));
    assert_eq!(read.siblings().len(), 1);
    Ok(())
}

/// v1 (no expiry) everywhere; one replica is away while v2, written from v1's context with a
/// short time to live, replaces it on the others; v2 expires; the replica comes back with v1.
/// v1 must stay gone: the expired v2 keeps the version that covers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_write_never_brings_back_the_value_it_superseded() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client().await?;
    let everywhere = WriteOptions::default().with_w(3);
    client.put_with("cart", "v1", None, &everywhere).await?;
    let v1 = client.get_with("cart", &all_homes()).await?;

    cluster.kill(2);
    let ttl = WriteOptions::default().with_ttl(Duration::from_millis(1_000));
    client
        .put_with("cart", "v2", Some(v1.context()), &ttl)
        .await?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    cluster.restart(2).await?;
    let stale = held_by(&cluster, 2, "cart").await?;
    assert_eq!(
        stale
            .live()
            .filter_map(|s| s.value.clone())
            .collect::<Vec<_>>(),
        vec![Bytes::from("v1")],
        "the returning replica still holds v1"
    );

    // A read of all three merges v1 in, and repairs: v1 is covered, v2 expired.
    let read = read_all(&client, "cart").await?;
    assert!(!read.is_found(), "v1 came back: {:?}", read.value());
    let repaired = ringkv_tests::eventually(Duration::from_secs(10), || async {
        held_by(&cluster, 2, "cart")
            .await
            .is_ok_and(|s| s.is_absent())
    })
    .await;
    assert!(
        repaired,
        "read repair left v1 live on the returning replica"
    );
    for i in 0..2 {
        assert!(held_by(&cluster, i, "cart").await?.is_absent(), "node {i}");
    }
    Ok(())
}

/// A node whose clock runs five minutes ahead judges by its own clock: a value written with
/// a minute to live reads as expired there at once. A quorum read that includes another
/// replica still returns it (merging keeps a value while any replica that has not passed its
/// expiry holds it), and the skewed node's copy keeps the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_runs_minutes_ahead_expires_early_only_its_own_copy()
-> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec::default()).await?;
    cluster.set_env(2, "RINGKVD_CLOCK_OFFSET_MS", "300000");
    cluster.kill(2);
    cluster.restart(2).await?;
    let client = cluster.client().await?;
    let minute = WriteOptions::default()
        .with_w(3)
        .with_ttl(Duration::from_secs(60));
    // A key whose first home, which stamps its writes, is node 0 (a correct clock).
    let ring = client.ring();
    let key = (0..1_000)
        .map(|i| format!("s{i}"))
        .find(|k| {
            ring.home_replicas("default", k.as_bytes())
                .first()
                .is_some_and(|m| m.addr == cluster.nodes[0].addr.to_string())
        })
        .ok_or_else(|| anyhow::anyhow!("no key homed first on node 0"))?;
    let mut written = false;
    for _ in 0..100 {
        if client.put_with(&key, "alive", None, &minute).await.is_ok() {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::ensure!(written, "the write never reached all three");

    let skewed = held_by(&cluster, 2, &key).await?;
    assert!(
        skewed.is_absent(),
        "the skewed node serves a value expired by its clock"
    );
    assert_eq!(skewed.siblings().len(), 1, "and keeps its version");
    for i in 0..2 {
        let held = held_by(&cluster, i, &key).await?;
        assert!(
            !held.is_absent(),
            "node {i} lost a value a minute from expiry"
        );
    }
    let read = read_all(&client, &key).await?;
    assert_eq!(read.value(), Some(&Bytes::from("alive")));
    Ok(())
}

/// A node of a release before expiry (one that speaks protocol 8 at most) would keep an
/// expiring value for ever: the write is never sent to it. With `w = 3` it fails, naming the
/// protocol; with `w = 2` the other two take it, and the old node holds nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_write_is_never_sent_to_a_node_that_does_not_know_expiry() -> anyhow::Result<()>
{
    let mut cluster = TestCluster::start(ClusterSpec::default()).await?;
    cluster.set_env(2, "RINGKVD_TEST_PROTOCOL_MAX", "8");
    cluster.kill(2);
    cluster.restart(2).await?;
    let client = cluster.client().await?;
    let all = WriteOptions::default().with_w(3);
    let mut plain = false;
    for _ in 0..100 {
        if client.put_with("plain", "v", None, &all).await.is_ok() {
            plain = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::ensure!(plain, "a write without expiry never reached all three");

    let ttl = all.clone().with_ttl(Duration::from_secs(60));
    let refused = client.put_with("expiring", "v", None, &ttl).await;
    let Err(e) = refused else {
        anyhow::bail!("an expiring write reached a node without expiry: {refused:?}");
    };
    assert!(e.to_string().contains("protocol"), "{e}");
    let two = WriteOptions::default()
        .with_w(2)
        .with_ttl(Duration::from_secs(60));
    client.put_with("expiring-2", "v", None, &two).await?;
    client.flush(Duration::from_secs(5)).await;
    assert!(
        held_by(&cluster, 2, "expiring-2")
            .await?
            .siblings()
            .is_empty()
    );
    for i in 0..2 {
        assert!(
            !held_by(&cluster, i, "expiring-2").await?.is_absent(),
            "node {i}"
        );
    }
    Ok(())
}
