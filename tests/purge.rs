//! Purging tombstones on real `ringkvd` processes: a dead key is removed from every home once
//! nothing can bring back what it superseded, and never before. Each test names the way back
//! the purge rule must close: a replica that missed the delete, and a hint that carries an
//! older value.

use std::time::Duration;

use bytes::Bytes;
use ringkv::{Client, ReadOptions, WriteOptions};
use ringkv_core::wire::{Request, Response};
use ringkv_tests::{ClusterSpec, TestCluster, eventually, until_replicas_answer};

/// Purging every 300 ms with a one-second delay (twice: after the delete, and after every
/// home was seen holding it), anti-entropy every second; `handoff_ms` apart.
fn purging(nodes: usize, handoff_ms: u64) -> ClusterSpec {
    ClusterSpec {
        nodes,
        extra_toml: format!(
            "[purge]\ninterval_ms = 300\ndelay_secs = 1\n\
             [anti_entropy]\ninterval_ms = 1000\n\
             [handoff]\ninterval_ms = {handoff_ms}\n"
        ),
        ..ClusterSpec::default()
    }
}

/// Every home, strictly.
fn all_homes() -> ReadOptions {
    ReadOptions::default().with_r(3).with_pr(3)
}

/// A key whose first home (the purge's coordinator) is not `avoid`, and whose homes
/// satisfy `wanted`.
fn key_where(
    cluster: &TestCluster,
    client: &Client,
    wanted: impl Fn(&[usize]) -> bool,
) -> (String, Vec<usize>) {
    (0..10_000)
        .map(|n| format!("purge-{n}"))
        .map(|k| {
            let homes = cluster.homes_of(client, &k);
            (k, homes)
        })
        .find(|(_, homes)| homes.len() == 3 && wanted(homes))
        .expect("such a key")
}

/// How many keys the running nodes purged.
async fn purged(cluster: &TestCluster) -> anyhow::Result<u64> {
    Ok(cluster.stats().await?.iter().map(|s| s.purged_keys).sum())
}

/// Whether none of `nodes` holds a copy of `key`.
async fn gone_from(cluster: &TestCluster, nodes: &[usize], key: &str) -> bool {
    for &i in nodes {
        match cluster.copy_on(i, "default", key).await {
            Ok(None) => {}
            _ => return false,
        }
    }
    true
}

/// A home that was down during the delete holds the old value. Purging the tombstone on
/// the other homes would let it come back with anti-entropy: the purge must wait for the
/// missing home, however long past the delay, and then remove the key everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_away_during_a_delete_does_not_bring_the_key_back() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(purging(3, 200)).await?;
    let client = cluster.client().await?;
    let (key, homes) = key_where(&cluster, &client, |_| true);
    let away = homes[2];
    client
        .put_with(&key, "v1", None, &WriteOptions::default().with_w(3))
        .await?;
    cluster.kill(away);
    let read = client.get(&key).await?;
    client
        .delete_with(
            &key,
            Some(read.context()),
            &WriteOptions::default().with_w(2),
        )
        .await?;

    // Well past both delays: the two homes that took the delete still hold it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for &i in &homes[..2] {
        let copy = cluster.copy_on(i, "default", &key).await?;
        assert!(
            copy.is_some_and(|s| s.is_absent()),
            "node {i} purged the tombstone while a home that missed the delete was away"
        );
    }
    assert_eq!(purged(&cluster).await?, 0);

    // The home returns with v1; anti-entropy gives it the tombstone, and then the key goes.
    cluster.restart(away).await?;
    let removed = eventually(Duration::from_secs(60), || async {
        gone_from(&cluster, &homes, &key).await
    })
    .await;
    assert!(
        removed,
        "the dead key was never purged:\n{}",
        cluster.log_tails(30)
    );
    assert!(purged(&cluster).await? >= 3);
    // And it stays gone: nothing left anywhere to bring v1 back.
    until_replicas_answer(&client, 3).await?;
    for _ in 0..6 {
        let read = client.get_with(&key, &all_homes()).await?;
        assert!(
            !read.is_found(),
            "the deleted key came back: {:?}",
            read.value()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// A fallback holds a hint carrying v1 for a home, and is down while the key is deleted and
/// the delays pass. When it returns, its hint (of unknown age: it was written before this
/// process started) holds every purge back until it is delivered; delivered to a home that
/// still holds the tombstone, it changes nothing, and the key is then purged. Purging first
/// would let the late hint bring v1 back. Handoff runs every eight seconds, so a purge that
/// did not wait for the hint would come first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_hint_does_not_bring_a_purged_key_back() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(purging(4, 8_000)).await?;
    let client = cluster.client().await?;
    // Nodes 0..3: the key's homes are three of them; the fourth is its fallback.
    let (key, homes) = key_where(&cluster, &client, |_| true);
    let fallback = (0..4).find(|i| !homes.contains(i)).expect("a fourth node");
    let away = homes[2];
    cluster.kill(away);
    let ok = eventually(Duration::from_secs(20), || async {
        let written = client
            .put_with(&key, "v1", None, &WriteOptions::default().with_w(3))
            .await;
        written.is_ok_and(|r| r.fallback.len() == 1)
    })
    .await;
    assert!(ok, "no write reached a fallback");
    let hinted = cluster.stats().await?;
    assert!(
        hinted.iter().map(|s| s.hints_pending).sum::<u64>() >= 1,
        "the fallback holds no hint"
    );
    // The fallback goes down with its hint; the home comes back and takes the delete.
    cluster.kill(fallback);
    cluster.restart(away).await?;
    let deleted = eventually(Duration::from_secs(20), || async {
        let Ok(read) = client.get(&key).await else {
            return false;
        };
        let opts = WriteOptions::default().with_w(3).with_pw(3);
        client
            .delete_with(&key, Some(read.context()), &opts)
            .await
            .is_ok()
    })
    .await;
    assert!(deleted, "the delete never reached all three homes");

    // The fallback is a member not heard from: nothing is purged while it is down.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for &i in &homes {
        let copy = cluster.copy_on(i, "default", &key).await?;
        assert!(
            copy.is_some_and(|s| s.is_absent()),
            "node {i} purged while a member holding a hint was down"
        );
    }

    cluster.restart(fallback).await?;
    let removed = eventually(Duration::from_secs(60), || async {
        gone_from(&cluster, &homes, &key).await
            && cluster
                .stats()
                .await
                .is_ok_and(|s| s.iter().all(|n| n.hints_pending == 0))
    })
    .await;
    if !removed {
        until_replicas_answer(&client, 3).await?;
        let read = client.get_with(&key, &all_homes()).await?;
        assert!(
            !read.is_found(),
            "the late hint brought the key back: {:?}",
            read.value()
        );
    }
    assert!(
        removed,
        "the dead key was never purged:\n{}",
        cluster.log_tails(30)
    );
    until_replicas_answer(&client, 3).await?;
    for _ in 0..6 {
        let read = client.get_with(&key, &all_homes()).await?;
        assert!(
            !read.is_found(),
            "the late hint brought the key back: {:?}",
            read.value()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// A key written through each of the three nodes in turn, each write superseding the last,
/// has a version vector naming three actors for its one version. Once every home holds that
/// same state past the delay, the purge rule prunes the two entries no version needs, on
/// every home; the value, and writes with a context read before the pruning, still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_vector_is_pruned_of_actors_no_version_needs() -> anyhow::Result<()> {
    let mut spec = purging(3, 200);
    spec.extra_toml = spec
        .extra_toml
        .replace("[purge]\n", "[purge]\nprune_above = 1\n");
    let cluster = TestCluster::start(spec).await?;
    let key = "pruned";
    let mut state = ringkv_core::SiblingSet::new();
    for (i, value) in ["v1", "v2", "v3"].into_iter().enumerate() {
        state = stamp_on(&cluster, i, key, state.version_vector().clone(), value).await?;
        for j in (0..3).filter(|&j| j != i) {
            let mut raw = cluster.raw(cluster.nodes[j].addr).await?;
            let merge = Request::Merge {
                bucket: "default".into(),
                key: Bytes::from(key),
                state: state.clone(),
                hint: None,
                sync: false,
                entry: false,
                ttl_ms: None,
            };
            anyhow::ensure!(matches!(raw.request(merge).await?, Ok(Response::Merged)));
        }
    }
    assert_eq!(state.version_vector().len(), 3);
    assert_eq!(state.prunable_actors(), 2);
    let context_before = state.version_vector().clone();

    let pruned = eventually(Duration::from_secs(60), || async {
        for i in 0..3 {
            match cluster.copy_on(i, "default", key).await {
                Ok(Some(copy)) if copy.version_vector().len() == 1 => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    assert!(
        pruned,
        "the version vector was never pruned:\n{}",
        cluster.log_tails(20)
    );
    let stats = cluster.stats().await?;
    assert!(stats.iter().map(|s| s.pruned_keys).sum::<u64>() >= 3);
    let client = cluster.client().await?;
    let read = client.get_with(key, &all_homes()).await?;
    assert_eq!(read.value(), Some(&Bytes::from("v3")));
    // A write with the context of a read made before the pruning supersedes v3 alone.
    let after = stamp_on(&cluster, 0, key, context_before, "v4").await?;
    let values: Vec<_> = after.live().filter_map(|s| s.value.clone()).collect();
    assert_eq!(values, vec![Bytes::from("v4")]);
    Ok(())
}

/// `value` written to `key` with `context` through node `i` alone (a raw `Put`, stamped
/// under that node's actor): the state it answers.
async fn stamp_on(
    cluster: &TestCluster,
    i: usize,
    key: &str,
    context: ringkv_core::VersionVector,
    value: &str,
) -> anyhow::Result<ringkv_core::SiblingSet> {
    let mut raw = cluster.raw(cluster.nodes[i].addr).await?;
    let put = Request::Put {
        bucket: "default".into(),
        key: Bytes::from(key.to_string()),
        context: Some(context),
        value: Some(Bytes::from(value.to_string())),
        overwrite: false,
        write_id: None,
        hint: None,
        sync: false,
        defer_sync: false,
        ttl_ms: None,
    };
    match raw.request(put).await? {
        Ok(Response::Stamped { state, .. }) => Ok(state),
        other => anyhow::bail!("node {i} answered {other:?}"),
    }
}
