//! Anti-entropy on real nodes: a replica whose store lost keys, or kept stale copies, while it
//! was down gets them back from its peers within a bounded time, without any client read
//! (so neither read repair nor hinted handoff can be what fixed them).

use std::time::{Duration, Instant};

use ringkv::WriteOptions;
use ringkv_server::storage::{Record, RocksStore, Store};
use ringkv_tests::{ClusterSpec, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_entropy_restores_lost_and_stale_copies_without_any_read() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec {
        extra_toml: "[anti_entropy]\ninterval_ms = 300\nmax_keys_per_sec = 0\n".into(),
        ..ClusterSpec::default()
    })
    .await?;
    let client = cluster.client().await?;
    let all = WriteOptions::default().with_w(3);
    let keys: Vec<String> = (0..200).map(|i| format!("ae-{i}")).collect();
    for key in &keys {
        client.put_with(key, "v1", None, &all).await?;
    }
    // Keep the victim's first versions of the second hundred, then update them everywhere.
    let victim = 2;
    let mut old = Vec::new();
    for key in &keys[100..] {
        old.push(
            cluster
                .copy_on(victim, "default", key)
                .await?
                .expect("written with w=3"),
        );
        let read = client.get(key).await?;
        client
            .put_with(key, "v2", Some(read.context()), &all)
            .await?;
    }

    // While the victim is down, lose the first hundred from its store and roll the second
    // hundred back to their first versions.
    cluster.terminate(victim, Duration::from_secs(10))?;
    {
        let store = RocksStore::open(&cluster.nodes[victim].dir.join("data"))?;
        for key in &keys[..100] {
            store.delete("default", key.as_bytes())?;
        }
        for (key, state) in keys[100..].iter().zip(&old) {
            store.put("default", key.as_bytes(), &Record::new(state.clone()))?;
        }
        store.flush()?;
    }
    cluster.restart(victim).await?;
    let restarted = Instant::now();
    let mut damaged = keys.len();
    while restarted.elapsed() < Duration::from_secs(60) {
        damaged = 0;
        for key in &keys {
            if cluster.copy_on(victim, "default", key).await?
                != cluster.copy_on(0, "default", key).await?
            {
                damaged += 1;
            }
        }
        if damaged == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let repaired: u64 = cluster
        .stats()
        .await?
        .iter()
        .map(|s| s.anti_entropy.keys_repaired)
        .sum();
    println!(
        "figure: anti-entropy restored 100 lost and 100 stale copies in {:.1} s after the restart ({repaired} keys repaired, no client read)",
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(damaged, 0, "copies still lost or stale after 60 s");
    assert!(repaired >= 200, "only {repaired} repairs counted");
    Ok(())
}

/// Hints pending and hints handed to anti-entropy, over every running node.
async fn hint_totals(cluster: &TestCluster) -> anyhow::Result<(u64, u64)> {
    let all = cluster.stats().await?;
    let pending = all.iter().map(|s| s.hints_pending).sum();
    let converted = all.iter().map(|s| s.hints_converted).sum();
    Ok((pending, converted))
}

/// Hints are never dropped silently: a hint whose home stays down past
/// `handoff.max_hint_age_secs` is copied to the key's live home replicas, deleted and
/// counted; once the home returns, anti-entropy brings it the data, again with no read. The
/// interval is an hour: only the exchange aimed at a returning node can do it in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_hints_become_anti_entropy_and_the_home_still_gets_every_write()
-> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec {
        nodes: 4,
        extra_toml: "[handoff]\nmax_hint_age_secs = 1\n\
                     [anti_entropy]\ninterval_ms = 3600000\nmax_keys_per_sec = 0\n"
            .into(),
        ..ClusterSpec::default()
    })
    .await?;
    let client = cluster.client().await?;
    let victim = 1;
    let keys = cluster.keys_homed_on(&client, victim, "overdue", 100);
    assert_eq!(keys.len(), 100);
    cluster.kill(victim);
    // Let the client learn that the node is down first: a write it still sent to the node
    // would be acknowledged by the two other homes alone, with no hint for a fallback to keep.
    let learned = ringkv_tests::eventually(Duration::from_secs(10), || async {
        let _ = client.get(&keys[0]).await;
        client.stats().nodes_marked_down >= 1
    })
    .await;
    assert!(learned, "the client never saw the killed node fail");
    for key in &keys {
        client
            .put(key, "written while its home was down", None)
            .await?;
    }
    // Every hint for the victim ends up handed to anti-entropy, none pending, none dropped.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut pending, mut converted) = hint_totals(&cluster).await?;
    while (pending > 0 || converted < keys.len() as u64) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        (pending, converted) = hint_totals(&cluster).await?;
    }
    println!("  hints handed to anti-entropy: {converted}, still pending: {pending}");
    assert_eq!(pending, 0);
    assert!(converted >= keys.len() as u64, "only {converted} converted");

    cluster.restart(victim).await?;
    let restarted = Instant::now();
    let mut missing = keys.len();
    while restarted.elapsed() < Duration::from_secs(60) {
        missing = 0;
        for key in &keys {
            if cluster.copy_on(victim, "default", key).await?.is_none() {
                missing += 1;
            }
        }
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "figure: the returning home got all {} writes from anti-entropy in {:.1} s",
        keys.len(),
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(missing, 0, "the home never received {missing} writes");
    Ok(())
}
