//! Figures of membership changes on real clusters (issue 5, item 6), printed and checked:
//!
//! - keys moved when a cluster grows from 5 to 6 nodes, against the ideal 1/6 of all copies;
//! - the share of keys a weight-2 node ends up with, against four weight-1 nodes;
//! - how long streaming 100,000 keys of 1 KiB to a joining node takes on loopback.
//!
//! Moved keys are what the nodes report having streamed; shares are counted key by key on
//! the nodes themselves (`Request::Inspect`), after the change settled and copies that moved
//! were cleaned up. Wall-clock figures are printed, never asserted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringkv::{Bucket, Client};
use ringkv_core::wire::{Request, Response};
use ringkv_core::{Ring, RingConfig, movement};
use ringkv_tests::{ClusterSpec, Placement, RawConnection, TestCluster};

const SETTLE: Duration = Duration::from_secs(120);

/// Writes `count` keys `{prefix}{i}` of `size` bytes, `concurrency` at a time.
async fn fill(
    bucket: &Bucket,
    prefix: &str,
    count: usize,
    size: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let value = bytes::Bytes::from(vec![b'x'; size]);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (bucket, next, value, prefix) = (
            bucket.clone(),
            next.clone(),
            value.clone(),
            prefix.to_string(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), ringkv::Error>(());
                }
                bucket
                    .put(format!("{prefix}{i}"), value.clone(), None)
                    .await?;
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok((0..count).map(|i| format!("{prefix}{i}")).collect())
}

/// The id of the transfer a commit opened.
fn transfer_id(committed: &ringkv_core::Layout) -> anyhow::Result<u64> {
    committed
        .transition
        .as_ref()
        .map(|t| t.id)
        .ok_or_else(|| anyhow::anyhow!("the commit opened no transfer"))
}

/// Copies streamed by every node for transfer `id`.
async fn streamed(cluster: &TestCluster, id: u64) -> anyhow::Result<u64> {
    Ok(cluster
        .stats()
        .await?
        .iter()
        .filter_map(|s| s.transfer.as_ref())
        .filter(|t| t.id == id)
        .map(|t| t.sent_keys)
        .sum())
}

/// Joins a new node of `weight` through node 0, waits for the change to settle, and returns
/// the new node's index and the transfer's id.
async fn join(cluster: &mut TestCluster, weight: u32) -> anyhow::Result<(usize, u64)> {
    let i = cluster.start_node()?;
    cluster.stage_join(0, i, weight).await?;
    let committed = cluster.commit(0).await?;
    let id = transfer_id(&committed)?;
    cluster.wait_settled(SETTLE).await?;
    Ok((i, id))
}

/// Waits until the keys sit on their home replicas only (the clean-up has run).
async fn settled_placement(
    cluster: &TestCluster,
    client: &Client,
    bucket: &str,
    keys: &[String],
) -> anyhow::Result<()> {
    client.refresh_ring().await?;
    let ring = client.ring();
    // Generous: these tests run side by side on two cores with a 100,000-key stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let placement = cluster.placement(&ring, bucket, keys).await?;
        if placement == Placement::default() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "keys not on (only) their homes: {placement:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_five_nodes_to_six_moves_about_a_sixth_of_the_data() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec {
        nodes: 5,
        ..ClusterSpec::default()
    })
    .await?;
    let client = cluster.client().await?;
    let keys = fill(&client.bucket("default"), "grow-", 12_000, 100, 32).await?;
    let n = 3;
    let before = client.ring();
    let (_, id) = join(&mut cluster, 1).await?;
    client.refresh_ring().await?;
    let after = client.ring();
    let moved = streamed(&cluster, id).await?;
    // The exact figure, from the two rings: the share of all copies the join moves.
    let exact = movement::moved_fraction(&movement::shifts(&before, &after, n), n) * 6.0;
    // What the nodes streamed, over the ideal: a sixth node ends up with a sixth of all copies.
    let copies = (keys.len() * n) as f64;
    let ideal = copies / 6.0;
    let ratio = moved as f64 / ideal;
    // Keys sample the ring: the count is binomial around the exact share.
    let p = exact / 6.0;
    let sigma = (copies * p * (1.0 - p)).sqrt() / ideal;
    println!(
        "figure: 5->6 nodes moved {moved} of {copies} key copies = {ratio:.3} x the ideal 1/6 \
         (the rings say {exact:.3}; sampling sigma {sigma:.3})"
    );
    assert!(exact <= 1.15, "the ring moves {exact:.3} x the ideal");
    assert!(
        (ratio - exact).abs() <= 4.0 * sigma,
        "streamed {ratio:.3} x the ideal, the rings say {exact:.3}"
    );
    settled_placement(&cluster, &client, "default", &keys).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_two_node_ends_up_with_twice_the_keys_of_a_weight_one_node() -> anyhow::Result<()>
{
    // Bucket `one` keeps one copy per key, so a node's key count is its share of the ring;
    // with three copies a node can hold each key at most once, which caps a heavy node.
    let mut cluster = TestCluster::start(ClusterSpec {
        nodes: 4,
        extra_toml: "[cluster.buckets.named.one]\nn = 1\nr = 1\nw = 1\n".into(),
        ..ClusterSpec::default()
    })
    .await?;
    let client = cluster.client().await?;
    let keys = fill(&client.bucket("one"), "weight-", 12_000, 100, 32).await?;
    let (heavy, _) = join(&mut cluster, 2).await?;
    settled_placement(&cluster, &client, "one", &keys).await?;

    // Every key is on its home and nowhere else, so counting homes counts what nodes hold.
    let ring = client.ring();
    let heavy_addr = cluster.nodes[heavy].addr.to_string();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for key in &keys {
        for m in ring.home_replicas("one", key.as_bytes()) {
            *counts.entry(m.addr.clone()).or_default() += 1;
        }
    }
    let heavy_keys = counts.get(&heavy_addr).copied().unwrap_or(0) as f64;
    let others: Vec<f64> = counts
        .iter()
        .filter(|(addr, _)| **addr != heavy_addr)
        .map(|(_, &c)| c as f64)
        .collect();
    assert_eq!(others.len(), 4);
    let mean = others.iter().sum::<f64>() / others.len() as f64;
    let ratio = heavy_keys / mean;
    // The exact figure, from the ring: shares of the ring as the only replica.
    let shares = ring.ownership();
    let share_of = |addr: &str| {
        ring.members()
            .iter()
            .zip(&shares)
            .find(|(m, _)| m.addr == addr)
            .map_or(0.0, |(_, s)| s.1)
    };
    let heavy_share = share_of(&heavy_addr);
    let other_shares: Vec<f64> = ring
        .members()
        .iter()
        .filter(|m| m.addr != heavy_addr)
        .map(|m| share_of(&m.addr))
        .collect();
    let exact = heavy_share / (other_shares.iter().sum::<f64>() / other_shares.len() as f64);
    // Sampling error of the ratio of two binomial counts (the mean of four is tighter).
    let total = keys.len() as f64;
    let relative = |share: f64, nodes: f64| ((1.0 - share) / (total * share * nodes)).sqrt();
    let sigma = exact
        * (relative(heavy_share, 1.0).powi(2) + relative(exact_mean(&other_shares), 4.0).powi(2))
            .sqrt();
    println!(
        "figure: weight-2 node holds {heavy_keys} keys, the weight-1 nodes {others:?}: {ratio:.3} x their mean \
         (the ring says {exact:.3}; sampling sigma {sigma:.3})"
    );
    assert!((exact - 2.0).abs() <= 0.15, "the ring gives {exact:.3}");
    assert!(
        (ratio - exact).abs() <= 4.0 * sigma,
        "{ratio:.3} vs {exact:.3}"
    );
    Ok(())
}

fn exact_mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_a_hundred_thousand_keys_to_a_joining_node() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client().await?;
    // Stage the join first: the plan says what share of the keys the newcomer will receive,
    // hence how many keys to write for it to receive 100,000.
    let joining = cluster.start_node()?;
    let staged = cluster.stage_join(0, joining, 1).await?;
    let newcomer = cluster.member_of(joining).await?.id;
    let before = Ring::new(RingConfig::of(staged.members.clone()))?;
    let after = Ring::new(RingConfig::of(staged.plan()?))?;
    let gained = movement::shifts(&before, &after, 3)
        .iter()
        .find(|s| s.node == newcomer)
        .map_or(0.0, |s| s.gained);
    anyhow::ensure!(gained > 0.0, "the plan gives the newcomer nothing");
    let count = (100_000.0 / gained).ceil() as usize;
    let written = Instant::now();
    let keys = fill(&client.bucket("default"), "stream-", count, 1024, 64).await?;
    println!(
        "figure: wrote {} keys of 1 KiB in {:.1} s (the newcomer is to receive {:.1}% of them)",
        keys.len(),
        written.elapsed().as_secs_f64(),
        gained * 100.0
    );
    let started = Instant::now();
    let committed = cluster.commit(0).await?;
    let id = transfer_id(&committed)?;
    // Streaming ends when every node has handed over what it no longer owns.
    let deadline = Instant::now() + SETTLE;
    let stream_time = loop {
        let all = cluster.stats().await?;
        let involved = all.len();
        let done = all
            .iter()
            .filter(|s| s.transfer.as_ref().is_some_and(|t| t.id == id && t.done))
            .count();
        if done == involved {
            break started.elapsed();
        }
        anyhow::ensure!(Instant::now() < deadline, "streaming did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    cluster.wait_settled(SETTLE).await?;
    let moved = streamed(&cluster, id).await?;
    let secs = stream_time.as_secs_f64();
    println!(
        "figure: streamed {moved} keys of 1 KiB to the joining node in {secs:.1} s ({:.0} keys/s, {:.1} MiB/s)",
        moved as f64 / secs,
        moved as f64 * 1024.0 / secs / (1024.0 * 1024.0)
    );
    let expected = keys.len() as f64 * gained;
    let sigma = (keys.len() as f64 * gained * (1.0 - gained)).sqrt();
    assert!(
        (moved as f64 - expected).abs() <= 4.0 * sigma,
        "moved {moved}, the plan said about {expected:.0}"
    );
    // Spot-check that the data is readable under the new ring.
    client.refresh_ring().await?;
    for key in keys.iter().step_by(997) {
        assert!(client.get(key).await?.is_found(), "{key}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_while_streaming_resumes_where_it_stopped() -> anyhow::Result<()> {
    // Throttled, so that the stream is still running when the node is killed (at 100 keys/s
    // a node that sends even a few hundred keys is still at it 1.5 s in).
    let mut cluster = TestCluster::start(ClusterSpec {
        extra_toml: "[transfer]\nbatch = 50\nmax_keys_per_sec = 100\n".into(),
        ..ClusterSpec::default()
    })
    .await?;
    let client = cluster.client().await?;
    let keys = fill(&client.bucket("default"), "resume-", 3_000, 100, 32).await?;
    let joining = cluster.start_node()?;
    cluster.stage_join(0, joining, 1).await?;
    let id = transfer_id(&cluster.commit(0).await?)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victim = 0;
    cluster.kill(victim);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.restart(victim).await?;
    cluster.wait_settled(SETTLE).await?;

    let mut raw = RawConnection::open(cluster.nodes[victim].addr).await?;
    let transfer = match raw.request(Request::Stats).await? {
        Ok(Response::Stats(stats)) => stats.transfer,
        other => anyhow::bail!("unexpected answer to Stats: {other:?}"),
    };
    let transfer = transfer
        .filter(|t| t.id == id)
        .expect("the restarted node streamed");
    println!(
        "figure: killed mid-stream, the node resumed={} and sent {} more keys after its restart",
        transfer.resumed, transfer.sent_keys
    );
    assert!(
        transfer.resumed,
        "the restarted node started its stream over"
    );
    assert!(transfer.done);
    settled_placement(&cluster, &client, "default", &keys).await?;
    for key in keys.iter().step_by(97) {
        assert!(client.get(key).await?.is_found(), "{key}");
    }
    Ok(())
}
