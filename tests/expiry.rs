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
    let ttl = WriteOptions::default().with_ttl(Duration::from_millis(3_000));
    client.put_with("session", "alice", None, &ttl).await?;
    client.put("forever", "bob", None).await?;
    let read = client.get_with("session", &all_homes()).await?;
    assert_eq!(read.value(), Some(&Bytes::from("alice")));

    tokio::time::sleep(Duration::from_millis(3_500)).await;
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

    // Refused by every node once gossip says a member speaks 8 (it restarted at that
    // release a moment ago): copies, hints and repairs would reach it, and it would keep
    // the value for ever. Until every node's gossip has caught up, one may still stamp such
    // a write (it then fails in doubt, or succeeds without the old node): the connections'
    // own check keeps it off that node. So: ten refusals in a row, on keys whose first home
    // varies, each naming the protocol, w = 2 and w = 3 alike.
    let mut n = 0;
    let mut in_a_row = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while in_a_row < 10 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "expiring writes still taken 30 s after the old node started"
        );
        n += 1;
        let ttl = WriteOptions::default()
            .with_w(2 + (n % 2) as u8)
            .with_ttl(Duration::from_secs(60));
        match client.put_with(format!("probe-{n}"), "v", None, &ttl).await {
            Err(e) if e.to_string().contains("protocol") => in_a_row += 1,
            _ => {
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    client.flush(Duration::from_secs(5)).await;
    for i in 1..=n {
        let probe = format!("probe-{i}");
        assert!(
            held_by(&cluster, 2, &probe).await?.siblings().is_empty(),
            "the node without expiry took {probe}"
        );
    }
    Ok(())
}

/// Sliding expiry: a session written with 3 s to live and read with `touch` every second
/// outlives its first expiry, on every replica (the touch is a write to
/// the key's targets, not only to those the read asked); left alone, it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_read_with_touch_outlives_its_ttl_and_then_expires() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client().await?;
    let life = Duration::from_millis(3_000);
    let write = WriteOptions::default().with_w(3).with_ttl(life);
    client.put_with("session", "alice", None, &write).await?;
    let first = held_by(&cluster, 0, "session").await?.siblings()[0].expires_ms;
    // R = 1: the read asks one replica; the touch still reaches all three.
    let touch = ReadOptions::default().with_r(1).with_touch(life);
    for round in 0..5 {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let read = client.get_with("session", &touch).await?;
        assert_eq!(read.value(), Some(&Bytes::from("alice")), "round {round}");
    }
    client.flush(Duration::from_secs(5)).await;
    for i in 0..3 {
        let held = held_by(&cluster, i, "session").await?;
        assert_eq!(held.siblings().len(), 1, "node {i}: a touch made a sibling");
        assert!(!held.is_absent(), "node {i} let the session expire");
        assert!(
            held.siblings()[0].expires_ms > first,
            "node {i} was not touched"
        );
    }
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let read = client.get_with("session", &all_homes()).await?;
    assert!(!read.is_found(), "untouched, it should have expired");
    // A touch of what has expired brings nothing back.
    let read = client.get_with("session", &touch).await?;
    assert!(!read.is_found());
    Ok(())
}

/// A touch that reaches a replica after the write expired there is refused, and changes
/// nothing: extending it would bring back a value the replicas may have dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_of_an_expired_write_is_refused() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client().await?;
    let write = WriteOptions::default()
        .with_w(3)
        .with_ttl(Duration::from_millis(300));
    let receipt = client.put_with("brief", "v", None, &write).await?;
    let dot = held_by(&cluster, 0, "brief").await?.siblings()[0].dot;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut raw = RawConnection::open(cluster.nodes[0].addr).await?;
    let touch = Request::Touch {
        bucket: "default".into(),
        key: Bytes::from_static(b"brief"),
        dots: vec![dot],
        ttl_ms: 60_000,
        hint: None,
        state: None,
    };
    let answer = raw.request(touch).await?;
    assert!(
        matches!(answer, Err(ringkv_core::wire::WireError::Expired)),
        "{answer:?}"
    );
    assert!(held_by(&cluster, 0, "brief").await?.is_absent());
    drop(receipt);

    // A touch naming more writes than a read can return is refused, not scanned.
    let many = Request::Touch {
        bucket: "default".into(),
        key: Bytes::from_static(b"brief"),
        dots: vec![dot; 101],
        ttl_ms: 60_000,
        hint: None,
        state: None,
    };
    let answer = raw.request(many).await?;
    assert!(
        matches!(&answer, Err(ringkv_core::wire::WireError::InvalidRequest { reason }) if reason.contains("at most")),
        "{answer:?}"
    );
    Ok(())
}

/// A client of a release before expiry (protocol 8) would drop a value's expiry and write it
/// back without one: a node answers it with an error naming the protocol instead of the
/// state, and keeps answering it for keys that do not expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_value_is_never_handed_to_an_older_client() -> anyhow::Result<()> {
    use ringkv::transport::{ConnectOptions, Pool};
    use ringkv_core::wire::{MIN_PROTOCOL_VERSION, ProtocolRange};

    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client().await?;
    let all = WriteOptions::default().with_w(3);
    client.put_with("plain", "v", None, &all).await?;
    client
        .put_with(
            "expiring",
            "v",
            None,
            &all.with_ttl(Duration::from_secs(60)),
        )
        .await?;
    let range =
        ProtocolRange::new(MIN_PROTOCOL_VERSION, 8).ok_or_else(|| anyhow::anyhow!("range"))?;
    let old = Pool::with_options(ConnectOptions::default().with_protocol(range));
    let addr = cluster.nodes[0].addr.to_string();
    let epoch = held_epoch(&cluster).await?;
    let get = |key: &'static str| Request::Get {
        bucket: "default".into(),
        key: Bytes::from_static(key.as_bytes()),
    };
    let timeout = Duration::from_secs(2);
    let plain = old.call(&addr, timeout, epoch, get("plain")).await;
    assert!(
        matches!(plain, Ok((Response::Value { state: Some(_) }, _))),
        "{plain:?}"
    );
    let expiring = old.call(&addr, timeout, epoch, get("expiring")).await;
    let Err(e) = expiring else {
        anyhow::bail!("an expiring state went to a protocol-8 client: {expiring:?}");
    };
    assert!(e.to_string().contains("protocol 9"), "{e}");
    Ok(())
}

/// The ring epoch node 0 routes by, for requests sent outside the SDK.
async fn held_epoch(cluster: &TestCluster) -> anyhow::Result<ringkv_core::RingEpoch> {
    Ok(RawConnection::open(cluster.nodes[0].addr).await?.epoch)
}

/// A bucket's default time to live applies to values written there without one of their
/// own; a value's own time to live wins; other buckets are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_ttl_expires_values_written_without_one() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let base = cluster.admin(0, Request::Layout).await?.version;
    let props = ringkv_core::BucketProps {
        ttl_ms: Some(2_000),
        ..ringkv_core::BucketProps::default()
    };
    let request = Request::Bucket {
        name: "sessions".into(),
        props,
        create: true,
        base,
    };
    cluster.admin(0, request).await?;
    let client = cluster.client().await?;
    let sessions = client.bucket("sessions");
    // The client learns the bucket with its next ring.
    for _ in 0..100 {
        if client.ring().bucket("sessions").ttl_ms == Some(2_000) {
            break;
        }
        let _ = client.refresh_ring().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = WriteOptions::default().with_w(3);
    sessions.put_with("s", "alice", None, &all).await?;
    sessions
        .put_with(
            "long",
            "bob",
            None,
            &all.clone().with_ttl(Duration::from_secs(600)),
        )
        .await?;
    client.put_with("elsewhere", "carol", None, &all).await?;
    let strict = ReadOptions::default().with_r(3).with_pr(3);
    assert!(sessions.get_with("s", &strict).await?.is_found());
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        !sessions.get_with("s", &strict).await?.is_found(),
        "the bucket's ttl"
    );
    assert!(
        sessions.get_with("long", &strict).await?.is_found(),
        "its own ttl wins"
    );
    assert!(
        client.get_with("elsewhere", &strict).await?.is_found(),
        "another bucket"
    );
    Ok(())
}
