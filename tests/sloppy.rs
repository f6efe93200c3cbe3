//! Sloppy quorum, hinted handoff, strict mode and idempotent retries, on real processes.
//! Five nodes, so that every key has fallbacks beyond its three home replicas.

use std::time::Duration;

use bytes::Bytes;
use ringkv::{ClientConfig, Error, ReadOptions, WriteOptions};
use ringkv_core::wire::{NodeStats, Request, Response};
use ringkv_tests::{ClusterSpec, RawConnection, TestCluster, eventually, until_replicas_answer};

fn five() -> ClusterSpec {
    ClusterSpec {
        nodes: 5,
        ..Default::default()
    }
}

async fn stats(cluster: &TestCluster, i: usize) -> anyhow::Result<NodeStats> {
    let mut raw = RawConnection::open(cluster.nodes[i].addr).await?;
    match raw.request(Request::Stats).await? {
        Ok(Response::Stats(stats)) => Ok(stats),
        other => anyhow::bail!("unexpected {other:?}"),
    }
}

/// What node `i` holds for `key` in the default bucket (its own data and hints), read directly.
async fn held_by(cluster: &TestCluster, i: usize, key: &str) -> anyhow::Result<Option<Vec<Bytes>>> {
    let mut raw = RawConnection::open(cluster.nodes[i].addr).await?;
    match raw
        .request(Request::Get {
            bucket: "default".into(),
            key: Bytes::from(key.to_string()),
        })
        .await?
    {
        Ok(Response::Value { state }) => {
            Ok(state.map(|s| s.live().filter_map(|x| x.value.clone()).collect()))
        }
        other => anyhow::bail!("unexpected {other:?}"),
    }
}

/// Whether every running node's hint queue empties within 30 s.
async fn hints_drain(cluster: &TestCluster) -> bool {
    eventually(Duration::from_secs(30), || async {
        all_stats(cluster)
            .await
            .map(|s| total_hints(&s) == 0)
            .unwrap_or(false)
    })
    .await
}

fn total_hints(all: &[NodeStats]) -> u64 {
    all.iter().map(|s| s.hints_pending).sum()
}

async fn all_stats(cluster: &TestCluster) -> anyhow::Result<Vec<NodeStats>> {
    let mut out = Vec::new();
    for i in (0..cluster.nodes.len()).filter(|&i| cluster.is_running(i)) {
        out.push(stats(cluster, i).await?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_to_fallbacks_with_hints_that_are_handed_off_when_the_home_returns()
-> anyhow::Result<()> {
    let mut cluster = TestCluster::start(five()).await?;
    let client = cluster.client().await?;
    let victim = 0;
    cluster.kill(victim);
    let keys = cluster.keys_homed_on(&client, victim, "hinted", 40);
    let mut fallback_acks = 0;
    for key in &keys {
        let receipt = client.put(key, key.clone(), None).await?;
        fallback_acks += receipt.fallback.len();
    }
    assert!(fallback_acks > 0, "no write was acknowledged by a fallback");
    // The client's own counters say the same.
    let stats = client.stats();
    assert_eq!(stats.fallback_acks, fallback_acks as u64, "{stats:?}");
    assert!(stats.sloppy_writes > 0 && stats.sloppy_writes <= keys.len() as u64);
    let pending = total_hints(&all_stats(&cluster).await?);
    assert!(
        pending >= keys.len() as u64,
        "{pending} hints for {} keys",
        keys.len()
    );

    // The fallbacks serve the writes they hold: an R = 3 read sees every key.
    for key in &keys {
        let read = client
            .get_with(key, &ReadOptions::default().with_r(3))
            .await?;
        assert_eq!(read.value(), Some(&Bytes::from(key.clone())), "{key}");
    }

    cluster.restart(victim).await?;
    let drained = hints_drain(&cluster).await;
    assert!(
        drained,
        "hints were not handed off: {:?}",
        all_stats(&cluster).await?
    );
    let delivered: u64 = all_stats(&cluster)
        .await?
        .iter()
        .map(|s| s.hints_delivered)
        .sum();
    assert!(delivered >= keys.len() as u64);
    for key in &keys {
        let held = held_by(&cluster, victim, key).await?;
        assert_eq!(
            held,
            Some(vec![Bytes::from(key.clone())]),
            "{key} not on its home node"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_survive_a_crash_of_the_fallback_that_holds_them() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(five()).await?;
    let client = cluster.client().await?;
    let victim = 1;
    cluster.kill(victim);
    let keys = cluster.keys_homed_on(&client, victim, "durable-hint", 30);
    for key in &keys {
        client.put(key, "v", None).await?;
    }
    let before = all_stats(&cluster).await?;
    let holder_id = before
        .iter()
        .max_by_key(|s| s.hints_pending)
        .expect("four nodes");
    let held = holder_id.hints_pending;
    let holder = cluster
        .index_of(&client, holder_id.node)
        .expect("the holder is one of ours");
    assert!(held > 0);
    cluster.kill(holder);
    cluster.restart(holder).await?;
    assert_eq!(
        stats(&cluster, holder).await?.hints_pending,
        held,
        "hints lost in the crash"
    );
    cluster.restart(victim).await?;
    let drained = hints_drain(&cluster).await;
    assert!(drained, "hints were not handed off after the restart");
    for key in &keys {
        assert!(
            held_by(&cluster, victim, key).await?.is_some(),
            "{key} never reached its home"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_succeed_while_enough_nodes_anywhere_are_up_and_strict_mode_refuses()
-> anyhow::Result<()> {
    let mut cluster = TestCluster::start(five()).await?;
    let client = cluster.client().await?;
    let key = "strict";
    let home = cluster.homes_of(&client, key);
    cluster.kill(home[0]);
    cluster.kill(home[1]);
    // Wait until gossip reports both dead, so the client knows without trying them.
    let known = eventually(Duration::from_secs(20), || async {
        client.refresh_ring().await.is_ok()
            && matches!(
                client
                    .put_with(key, "probe", None, &WriteOptions::default().with_pw(2))
                    .await,
                Err(Error::Unavailable { .. })
            )
    })
    .await;
    assert!(
        known,
        "the client never learned that two home replicas are down"
    );

    // Strict: fails at once, names the numbers, and writes nothing anywhere.
    match client
        .put_with(
            key,
            "strict-value",
            None,
            &WriteOptions::default().with_pw(2),
        )
        .await
    {
        Err(Error::Unavailable {
            required: 2,
            alive: 1,
            ..
        }) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match client
        .get_with(key, &ReadOptions::default().with_pr(2))
        .await
    {
        Err(Error::Unavailable {
            required: 2,
            alive: 1,
            ..
        }) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    for i in 0..cluster.nodes.len() {
        if i == home[0] || i == home[1] {
            continue;
        }
        assert_eq!(
            held_by(&cluster, i, key).await?,
            None,
            "node {i} holds a refused write"
        );
    }

    // Sloppy: W = 2 and W = 1 succeed with fallbacks standing in.
    let receipt = client.put(key, "sloppy", None).await?;
    assert!(
        receipt.acks() >= 2 && !receipt.fallback.is_empty(),
        "{receipt:?}"
    );
    assert_eq!(client.get(key).await?.value(), Some(&Bytes::from("sloppy")));

    // W = 1 succeeds while any single node of the cluster is up, even with every home replica
    // of the key down: the surviving node stamps the write and keeps it as a hint.
    let survivor = (0..cluster.nodes.len())
        .find(|i| !home.contains(i))
        .expect("a non-home node");
    for i in 0..cluster.nodes.len() {
        if i != survivor {
            cluster.kill(i);
        }
    }
    let w1 = WriteOptions::default()
        .with_w(1)
        .with_timeout(Duration::from_secs(10));
    let receipt = client
        .put_with(key, "last node standing", None, &w1)
        .await?;
    assert_eq!(receipt.fallback.len(), 1, "{receipt:?}");
    assert!(
        held_by(&cluster, survivor, key)
            .await?
            .is_some_and(|v| v.contains(&Bytes::from("last node standing")))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_retried_at_another_coordinator_is_one_sibling() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let config = ClientConfig::default()
        .with_request_timeout(Duration::from_millis(500))
        .with_timeout(Duration::from_secs(5));
    let client = cluster.client_with(config).await?;
    let key = "retried";
    let coordinator = cluster.homes_of(&client, key)[0];
    // The coordinator hangs: the client times out on it and stamps at the next home replica
    // with the same write id. Then the hung node wakes up and applies the original request.
    cluster.pause(coordinator);
    let receipt = client.put(key, "once", None).await?;
    assert!(
        !receipt.home.contains(
            &client
                .ring()
                .members()
                .iter()
                .find(|m| m.addr == cluster.nodes[coordinator].addr.to_string())
                .expect("member")
                .id
        )
    );
    cluster.resume(coordinator);
    until_replicas_answer(&client, 3).await?;
    // Let the woken node's stamp and the client's merges meet everywhere.
    let converged = eventually(Duration::from_secs(10), || async {
        match client
            .get_with(key, &ReadOptions::default().with_r(3))
            .await
        {
            Ok(read) => read.siblings() == [Bytes::from("once")],
            Err(_) => false,
        }
    })
    .await;
    let read = client
        .get_with(key, &ReadOptions::default().with_r(3))
        .await?;
    assert!(
        converged,
        "a retried write shows up as {:?}",
        read.siblings()
    );
    Ok(())
}

/// A delete or overwrite without a context while the key's home replicas are down is refused
/// with `Unavailable`: the fallbacks that would stamp it hold nothing of the key, so the
/// tombstone would cover nothing and the value would read back once the homes return (it
/// was acknowledged, then resurrected). With a context, a delete goes through the sloppy
/// quorum as any write does; without one it waits for the homes, and then deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_without_a_context_needs_the_home_replicas_and_stays_deleted() -> anyhow::Result<()>
{
    let mut cluster = TestCluster::start(five()).await?;
    let client = cluster.client().await?;
    let key = "blind-delete";
    let home = cluster.homes_of(&client, key);
    client.put(key, "v1", None).await?;
    let everywhere = eventually(Duration::from_secs(20), || async {
        let mut all = true;
        for &h in &home {
            all &= held_by(&cluster, h, key).await.ok().flatten().is_some();
        }
        all
    })
    .await;
    assert!(everywhere, "the write never reached all three homes");
    kill_homes(&mut cluster, &client, key, &home).await;

    match client.delete(key, None).await {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("a blind delete with every home down must be refused, got {other:?}"),
    }
    let overwrite = WriteOptions::default().with_overwrite(true);
    match client.put_with(key, "v2", None, &overwrite).await {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("a blind overwrite with every home down must be refused, got {other:?}"),
    }

    // The homes return: the value is still there, and a blind delete now deletes it, for
    // good (after handoff and repair, every replica agrees).
    for &h in &home {
        cluster.restart(h).await?;
    }
    let back = eventually(Duration::from_secs(30), || async {
        client.refresh_ring().await.is_ok()
            && client
                .get_with(key, &ReadOptions::default().with_pr(3))
                .await
                .is_ok_and(|v| v.value() == Some(&Bytes::from("v1")))
    })
    .await;
    assert!(back, "the homes never came back with v1");
    client.delete(key, None).await?;
    assert!(hints_drain(&cluster).await, "hints were not handed off");
    let all = ReadOptions::default().with_r(3);
    let gone = eventually(Duration::from_secs(10), || async {
        client
            .get_with(key, &all)
            .await
            .is_ok_and(|v| !v.is_found())
    })
    .await;
    assert!(
        gone,
        "the deleted value read back: {:?}",
        client.get_with(key, &all).await
    );
    Ok(())
}

/// Kills `home`, then waits until the client sees every one of them down (a read with
/// `pr = 1` is refused).
async fn kill_homes(cluster: &mut TestCluster, client: &ringkv::Client, key: &str, home: &[usize]) {
    for &h in home {
        cluster.kill(h);
    }
    let known = eventually(Duration::from_secs(20), || async {
        client.refresh_ring().await.is_ok()
            && matches!(
                client
                    .get_with(key, &ReadOptions::default().with_pr(1))
                    .await,
                Err(Error::Unavailable { .. })
            )
    })
    .await;
    assert!(known, "the client never learned that the homes are down");
}

/// The review's scenario: the key's three homes die twice, and each time a write without a
/// context is acknowledged by two fallbacks only; between the outages the homes come back
/// and handoff delivers (and the fallbacks delete their hints). The second write used to get
/// the dot the fallback had minted for the first, and vanished. Both must be siblings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_outages_of_a_keys_homes_keep_both_writes_the_fallbacks_took() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(five()).await?;
    let client = cluster.client().await?;
    let key = "cart:x";
    let home = cluster.homes_of(&client, key);
    for value in ["v1", "v2"] {
        kill_homes(&mut cluster, &client, key, &home).await;
        let receipt = client.put(key, value, None).await?;
        assert!(receipt.home.is_empty(), "{receipt:?}");
        assert!(receipt.fallback.len() >= 2, "{receipt:?}");
        for &h in &home {
            cluster.restart(h).await?;
        }
        assert!(hints_drain(&cluster).await, "hints were not handed off");
    }
    let all = ReadOptions::default().with_r(3);
    let siblings = || async {
        let read = client.get_with(key, &all).await.ok()?;
        let mut values = read.siblings().to_vec();
        values.sort();
        Some(values)
    };
    let want = Some(vec![Bytes::from("v1"), Bytes::from("v2")]);
    let both = eventually(Duration::from_secs(20), || async {
        siblings().await == want
    })
    .await;
    let last = siblings().await;
    assert!(both, "both acknowledged writes must be siblings: {last:?}");
    Ok(())
}
