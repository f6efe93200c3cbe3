//! Session churn on a three-node cluster: `RINGKV_CHURN_LIVE` sessions (100,000) stay live
//! while `RINGKV_CHURN_TOTAL` (1,000,000) come and go, half ended by a logout (a delete),
//! half by a last write with a five-second time to live (an abandoned session that
//! expires). Afterwards the live sessions are exactly the last ones created, every ended one
//! is purged from every node, and once compacted each node's disk holds at most 1.5 × its
//! live data plus [`FIXED_OVERHEAD`].
//!
//! Long (minutes on a debug build), so not part of the test command:
//! `cargo test --test churn -- --ignored --nocapture` prints
//! the figures; smaller runs with `RINGKV_CHURN_LIVE=10000 RINGKV_CHURN_TOTAL=100000`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use ringkv::WriteOptions;
use ringkv_server::storage::{RocksStore, Store};
use ringkv_tests::{ClusterSpec, TestCluster, eventually};

/// What a node's data directory holds besides its data, however little data it has: the
/// write-ahead log (up to a memtable's worth, 64 MiB), the manifest, the options and info
/// logs.
const FIXED_OVERHEAD: u64 = 96 << 20;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn du(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            total += if meta.is_dir() {
                du(&entry.path())
            } else {
                meta.len()
            };
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: run with --ignored"]
async fn a_million_sessions_churn_through_and_the_disk_holds_the_live_ones() -> anyhow::Result<()> {
    let live = setting("RINGKV_CHURN_LIVE", 100_000);
    let total = setting("RINGKV_CHURN_TOTAL", 1_000_000).max(live);
    let value_len = setting("RINGKV_CHURN_VALUE", 1_000) as usize;
    let concurrency = 32;
    let mut cluster = TestCluster::start(ClusterSpec {
        extra_toml: "[purge]\ninterval_ms = 2000\ndelay_secs = 5\n\
                     [anti_entropy]\ninterval_ms = 2000\n"
            .into(),
        ..ClusterSpec::default()
    })
    .await?;
    let client = cluster.client().await?;
    let key = |n: u64| format!("session:{n:08}");
    // Random bytes, which the engine cannot compress: the disk holds what the data weighs.
    let noise: Bytes = (0..(1usize << 20) + value_len)
        .map(|_| rand::random::<u8>())
        .collect::<Vec<u8>>()
        .into();
    let value_of = move |n: u64| {
        let start = (n as usize).wrapping_mul(7919) % (1 << 20);
        noise.slice(start..start + value_len)
    };
    let long = WriteOptions::default().with_ttl(Duration::from_secs(3600));
    let short = WriteOptions::default().with_ttl(Duration::from_secs(5));

    // Session n is created at step n and ended at step n + live: a sliding window of `live`.
    let started = Instant::now();
    let failures = Arc::new(AtomicU64::new(0));
    let steps = futures::stream::iter(0..total).map(|n| {
        let (client, long, short, failures) = (
            client.clone(),
            long.clone(),
            short.clone(),
            failures.clone(),
        );
        let (value, last) = (value_of(n), n.checked_sub(live).map(&value_of));
        async move {
            let created = client.put_with(key(n), value, None, &long).await;
            let ended = match n.checked_sub(live) {
                None => Ok(()),
                Some(old) if old % 2 == 0 => client.delete(key(old), None).await.map(|_| ()),
                // Abandoned: its last write gives it a short life.
                Some(old) => client
                    .put_with(
                        key(old),
                        last.unwrap_or_default(),
                        None,
                        &short.clone().with_overwrite(true),
                    )
                    .await
                    .map(|_| ()),
            };
            if created.is_err() || ended.is_err() {
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    steps
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    let churned = started.elapsed();
    let failed = failures.load(Ordering::Relaxed);
    println!(
        "churn: {total} sessions created and {} ended in {:.0} s ({:.0} writes/s), {failed} failed",
        total - live,
        churned.as_secs_f64(),
        (2 * total - live) as f64 / churned.as_secs_f64()
    );
    anyhow::ensure!(failed == 0, "{failed} session writes failed");

    // Every ended session is purged from all three nodes. A home whose purge failed keeps
    // its dead copy, which anti-entropy spreads back and a later pass purges again (counted
    // again): the count is done once it reaches every copy and stops moving.
    let ended = total - live;
    let purge_started = Instant::now();
    let purged_copies = || async {
        let stats = cluster.stats().await.unwrap_or_default();
        stats.iter().map(|s| s.purged_keys).sum::<u64>()
    };
    let mut purged = eventually(Duration::from_secs(1800), || async {
        purged_copies().await >= 3 * ended
    })
    .await;
    let (mut last, mut still) = (purged_copies().await, 0);
    while purged && still < 8 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = purged_copies().await;
        still = if now == last { still + 1 } else { 0 };
        last = now;
        purged = purge_started.elapsed() < Duration::from_secs(1800);
    }
    let stats = cluster.stats().await?;
    println!(
        "purge: {} node-copies purged in {:.0} s after the churn",
        stats.iter().map(|s| s.purged_keys).sum::<u64>(),
        purge_started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(purged, "the ended sessions were not all purged");

    // The live sessions are the last `live` created: a sample of them reads back.
    let step = (live / 1000).max(1);
    for n in (total - live..total).step_by(step as usize) {
        let read = client.get(key(n)).await?;
        anyhow::ensure!(
            read.value() == Some(&value_of(n)),
            "live session {n} is missing"
        );
    }

    // Stopped, then each store compacted and counted: the live sessions and nothing else.
    for i in 0..3 {
        cluster.terminate(i, Duration::from_secs(30))?;
    }
    let live_bytes = live * value_len as u64;
    for i in 0..3 {
        let dir = cluster.nodes[i].dir.join("data");
        let before = du(&dir);
        let store = RocksStore::open(&dir)?;
        store.compact()?;
        let mut held = 0u64;
        let mut after = None;
        loop {
            let batch = store.scan(after.as_ref(), 10_000)?;
            let Some((last, _, _)) = batch.last() else {
                break;
            };
            after = Some(last.clone());
            held += batch.len() as u64;
        }
        drop(store);
        let disk = du(&dir);
        println!(
            "node {i}: {held} keys; disk {:.1} MiB before compaction, {:.1} MiB after; live data \
             {:.1} MiB; bound 1.5 x live + {} MiB = {:.1} MiB",
            before as f64 / 1048576.0,
            disk as f64 / 1048576.0,
            live_bytes as f64 / 1048576.0,
            FIXED_OVERHEAD >> 20,
            (live_bytes * 3 / 2 + FIXED_OVERHEAD) as f64 / 1048576.0
        );
        anyhow::ensure!(
            held == live,
            "node {i} holds {held} keys, not the {live} live ones"
        );
        anyhow::ensure!(
            disk <= live_bytes * 3 / 2 + FIXED_OVERHEAD,
            "node {i}: {disk} bytes on disk for {live_bytes} of live data"
        );
    }
    Ok(())
}
