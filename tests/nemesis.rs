//! The nemesis: randomized faults on real `ringkvd` processes, and a checker for what the
//! scripted scenarios of `faults.rs` cannot think of (Jepsen's nemesis, in our own harness).
//!
//! Five nodes in a network namespace of the test's own. A seeded generator mixes kill -9,
//! SIGSTOP/SIGCONT, iptables partitions, clean restarts, repeated outages of one key's three
//! homes (the writes then go to fallbacks, whose hints are delivered and forgotten between
//! outages), outages of a whole zone (the nodes are in zones a, b, c, a, b), one node
//! joining midway (into zone c), one member moved to another zone, and the workload's bucket
//! raised to `n = 4` and lowered back to 3 (planned transfers of every key). Meanwhile clients do read-modify-write set
//! additions with contexts, blind puts, and deletes with and without a context (adds and
//! deletes on separate keys). At the end every fault is healed and the checker reports:
//!
//! - `lost`: acknowledged set additions or blind puts missing from the final state;
//! - `resurrected`: a value whose dot an acknowledged delete's context covered, read back;
//! - `max_siblings`, and `divergent`: keys whose home replicas still differ after repair;
//! - `dots_minted_twice`: one dot naming two different writes on some node (copy or hint).
//!
//! Every node purges dead keys meanwhile (every 500 ms, with a two-second delay) and prunes
//! version vectors of more than one unneeded actor, so `lost` and `resurrected` also count
//! what purging let through; `purged` and `pruned` say how many keys it touched.
//!
//! `RINGKV_NEMESIS_SECONDS` (default 60) and `RINGKV_NEMESIS_SEED` (default: random) choose
//! the run; `make nemesis SECONDS=N SEED=S` sets them. A failure prints the seed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ringkv::{Bucket, ClientConfig, ReadOptions, WriteOptions};
use ringkv_core::wire::{Request, Response};
use ringkv_core::{Dot, Sibling, SiblingSet, VersionVector};
use ringkv_tests::faults::{
    CLIENT_IP, Firewall, History, Workload, divergent_within, in_own_netns, node_ip, union,
};
use ringkv_tests::{ClusterSpec, RawConnection, TestCluster, eventually, until_replicas_answer};

const NODES: usize = 5;
/// The zone of node `i`, the sixth (which joins midway) included.
const ZONES: [&str; NODES + 1] = ["a", "b", "c", "a", "b", "c"];

/// What the blind-put and delete clients saw.
#[derive(Clone, Debug, Default)]
struct Ledger {
    /// Blind puts (no context) acknowledged, per key: every one must stay a sibling.
    blind: BTreeMap<String, BTreeSet<Bytes>>,
    /// Per key deleted by an acknowledged delete: what the delete covered (the context it was
    /// given; for a blind delete, which overwrites everything it is stamped on, the context
    /// its receipt returned). A live sibling under a covered dot afterwards is resurrected.
    deleted: BTreeMap<String, VersionVector>,
    blind_puts: usize,
    deletes: usize,
    failed: usize,
}

/// The checker's line.
#[derive(Debug, Default)]
struct Verdict {
    seed: u64,
    seconds: u64,
    operations: usize,
    faults: usize,
    lost: usize,
    resurrected: usize,
    max_siblings: usize,
    divergent: usize,
    dots_minted_twice: usize,
    /// Dead keys the nodes purged during the run (every node purges every 500 ms with a
    /// two-second delay): `resurrected` counts what a purge let back as much as anything.
    purged: u64,
    /// Live keys whose version vectors were pruned (of more than one unneeded actor): `lost`
    /// and `resurrected` count what a pruning let through.
    pruned: u64,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nemesis seed={} seconds={} operations={} faults={} lost={} resurrected={} \
             max_siblings={} divergent={} dots_minted_twice={} purged={} pruned={}",
            self.seed,
            self.seconds,
            self.operations,
            self.faults,
            self.lost,
            self.resurrected,
            self.max_siblings,
            self.divergent,
            self.dots_minted_twice,
            self.purged,
            self.pruned
        )
    }
}

fn settings() -> (u64, u64) {
    let seconds = std::env::var("RINGKV_NEMESIS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed = std::env::var("RINGKV_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    (seconds, seed)
}

#[test]
fn nemesis() {
    if !in_own_netns("nemesis") {
        return;
    }
    let (seconds, seed) = settings();
    println!(
        "nemesis: seed {seed}, {seconds} s (RINGKV_NEMESIS_SEED={seed} reproduces the schedule)"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let verdict = runtime.block_on(run(seed, seconds));
    match verdict {
        Ok(v) => {
            println!("{v}");
            let clean =
                v.lost == 0 && v.resurrected == 0 && v.divergent == 0 && v.dots_minted_twice == 0;
            assert!(
                clean,
                "{v}\nreproduce with: make nemesis SECONDS={seconds} SEED={seed}"
            );
        }
        Err(e) => panic!(
            "nemesis run failed: {e:#}\nreproduce with: make nemesis SECONDS={seconds} SEED={seed}"
        ),
    }
}

async fn run(seed: u64, seconds: u64) -> anyhow::Result<Verdict> {
    let mut cluster = TestCluster::start(ClusterSpec {
        nodes: NODES,
        own_addresses: true,
        zones: ZONES.map(String::from).to_vec(),
        extra_toml: "[purge]\ninterval_ms = 500\ndelay_secs = 2\nprune_above = 1\n".into(),
        ..ClusterSpec::default()
    })
    .await?;
    let config = ClientConfig::default().with_timeout(Duration::from_secs(2));
    let client = cluster.client_with(config).await?;
    let bucket = client.bucket("default");
    let history = Arc::new(History::default());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let run_for = Duration::from_secs(seconds);

    // The clients: set additions (paced, bounded), blind puts and deletes.
    let mut adds = Workload::new(60, (seconds as usize) * 40, 40.0);
    adds.workers = 4;
    adds.limit = run_for;
    let adds = tokio::spawn(adds.run(bucket.clone(), history.clone()));
    let others = tokio::spawn(blind_and_deletes(
        bucket.clone(),
        ledger.clone(),
        seed,
        run_for,
    ));

    // The nemesis.
    let (faults, outage_writes) = inject_faults(&mut cluster, &client, seed, run_for).await?;
    ledger
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .blind
        .extend(outage_writes);

    adds.await?;
    others.await?;
    heal(&mut cluster).await?;
    // Every home: the bucket's `n` may have been left at 4.
    let n = client.ring().bucket(bucket.name()).n;
    until_replicas_answer(&client, n).await?;
    let drained = eventually(Duration::from_secs(60), || async {
        cluster
            .stats()
            .await
            .map(|s| s.iter().map(|n| n.hints_pending).sum::<u64>() == 0)
            .unwrap_or(false)
    })
    .await;
    if !drained {
        println!("  hints still pending 60 s after the heal");
    }
    check(&cluster, &bucket, &history, &ledger, seed, seconds, faults).await
}

/// Blind puts (each key written twice without a context: both must stay) and deletes (each
/// key written once, then deleted, with the put's returned context or without any).
async fn blind_and_deletes(
    bucket: Bucket,
    ledger: Arc<Mutex<Ledger>>,
    seed: u64,
    run_for: Duration,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xb11d);
    let started = Instant::now();
    let write = WriteOptions::default().with_timeout(Duration::from_secs(2));
    let mut n = 0u64;
    while started.elapsed() < run_for && n < 100_000 {
        n += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..80))).await;
        let lock = || ledger.lock().unwrap_or_else(PoisonError::into_inner);
        if rng.random_bool(0.5) {
            // Two blind puts per key: the second makes a sibling of the first.
            let key = format!("blind-{}", n / 2);
            let value = Bytes::from(format!("b{n}"));
            lock().blind_puts += 1;
            match bucket.put_with(&key, value.clone(), None, &write).await {
                Ok(_) => {
                    lock().blind.entry(key).or_default().insert(value);
                }
                Err(_) => lock().failed += 1,
            }
        } else {
            let key = format!("del-{n}");
            let put = bucket
                .put_with(&key, Bytes::from(format!("d{n}")), None, &write)
                .await;
            let Ok(receipt) = put else {
                lock().failed += 1;
                continue;
            };
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
            lock().deletes += 1;
            let context = rng
                .random_bool(0.5)
                .then(|| receipt.written.context().clone());
            match bucket.delete_with(&key, context.as_ref(), &write).await {
                Ok(deleted) => {
                    let covered = context.unwrap_or_else(|| deleted.written.context().clone());
                    lock().deleted.insert(key, covered.into_version_vector());
                }
                Err(_) => lock().failed += 1,
            }
        }
    }
}

/// Injects faults, one at a time, until `run_for` has passed. Returns how many, and the
/// blind writes acknowledged while every home of their key was down.
async fn inject_faults(
    cluster: &mut TestCluster,
    client: &ringkv::Client,
    seed: u64,
    run_for: Duration,
) -> anyhow::Result<(usize, BTreeMap<String, BTreeSet<Bytes>>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut faults = 0;
    let mut joined = false;
    let mut rezoned = false;
    let mut sixth: Option<usize> = None;
    // The workload bucket's `n`: 3, raised to 4 once, then lowered back once.
    let mut bucket_n = (3u8, 0);
    let mut outages = 0;
    let mut outage_writes: BTreeMap<String, BTreeSet<Bytes>> = BTreeMap::new();
    while started.elapsed() + Duration::from_secs(4) < run_for && faults < 1_000 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2_000))).await;
        faults += 1;
        let i = rng.random_range(0..NODES);
        match rng.random_range(0..10) {
            0 => {
                println!(
                    "  {:>5.1} s: kill -9 node {i}, back after a while",
                    started.elapsed().as_secs_f64()
                );
                cluster.kill(i);
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
                cluster.restart(i).await?;
            }
            1 => {
                println!(
                    "  {:>5.1} s: SIGSTOP node {i}",
                    started.elapsed().as_secs_f64()
                );
                cluster.pause(i);
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..3_000))).await;
                cluster.resume(i);
            }
            2 => {
                let j = (i + rng.random_range(1..NODES)) % NODES;
                println!(
                    "  {:>5.1} s: partition nodes {i} and {j}",
                    started.elapsed().as_secs_f64()
                );
                Firewall::partition(node_ip(i), node_ip(j));
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
                Firewall::heal();
            }
            3 => {
                println!(
                    "  {:>5.1} s: cut the client from node {i}",
                    started.elapsed().as_secs_f64()
                );
                Firewall::drop(CLIENT_IP, node_ip(i));
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
                Firewall::heal();
            }
            4 => {
                println!(
                    "  {:>5.1} s: clean restart of node {i}",
                    started.elapsed().as_secs_f64()
                );
                cluster.terminate(i, Duration::from_secs(10))?;
                cluster.restart(i).await?;
            }
            5 => {
                // The review's outage: every home of one key down and a blind write taken by
                // fallbacks, whose hints are delivered (and forgotten) before the next outage
                // of the same key. Two outages per key: a third blind write would need a
                // context.
                let key = format!("outage-{}", outages / 2);
                outages += 1;
                let homes = cluster.homes_of(client, &key);
                println!(
                    "  {:>5.1} s: kill -9 every home of {key} ({homes:?}), write it blind",
                    started.elapsed().as_secs_f64()
                );
                for &h in &homes {
                    cluster.kill(h);
                }
                // Bounded: until the client sees them down (a strict read is refused).
                eventually(Duration::from_secs(5), || async {
                    let _ = client.refresh_ring().await;
                    client
                        .get_with(&key, &ReadOptions::default().with_pr(1))
                        .await
                        .is_err()
                })
                .await;
                let value = Bytes::from(format!("outage-write-{faults}"));
                let write = WriteOptions::default().with_timeout(Duration::from_secs(2));
                let outcome = client.put_with(&key, value.clone(), None, &write).await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..1_000))).await;
                for &h in &homes {
                    cluster.restart(h).await?;
                }
                match outcome {
                    Ok(receipt) => {
                        println!("    acknowledged by {} fallback(s)", receipt.fallback.len());
                        outage_writes.entry(key).or_default().insert(value);
                    }
                    Err(e) => println!("    not acknowledged: {e}"),
                }
            }
            6 => {
                let zone = ZONES[i];
                let members: Vec<usize> = (0..cluster.nodes.len())
                    .filter(|&j| ZONES[j] == zone)
                    .collect();
                println!(
                    "  {:>5.1} s: kill -9 all of zone {zone} (nodes {members:?}), back after a while",
                    started.elapsed().as_secs_f64()
                );
                for &j in &members {
                    cluster.kill(j);
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
                for &j in &members {
                    cluster.restart(j).await?;
                }
            }
            7 if !rezoned && started.elapsed() > run_for / 2 => {
                // A member moves to another zone: a planned transfer of its whole share,
                // under the faults. Refused while another transfer is under way; then later.
                let others: Vec<&str> = ["a", "b", "c"]
                    .into_iter()
                    .filter(|z| *z != ZONES[i])
                    .collect();
                let zone = others[rng.random_range(0..others.len())];
                let id = cluster.member_of(i).await?.id;
                let change = ringkv_core::Change::Zone {
                    id,
                    zone: zone.to_string(),
                };
                let done = match cluster.stage(0, change).await {
                    Ok(_) => cluster.commit(0).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                match done {
                    Ok(()) => {
                        rezoned = true;
                        println!(
                            "  {:>5.1} s: node {i} moved to zone {zone}",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    Err(e) => {
                        faults -= 1;
                        let base = cluster.admin(0, Request::Layout).await?.version;
                        let _ = cluster.admin(0, Request::Clear { base }).await;
                        println!(
                            "  {:>5.1} s: moving node {i} to zone {zone} refused for now: {e}",
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            }
            8 if bucket_n.1 < 2 && started.elapsed() > run_for / 4 => {
                let n = if bucket_n.0 == 3 { 4 } else { 3 };
                let props = ringkv_core::BucketProps {
                    n,
                    ..ringkv_core::BucketProps::default()
                };
                let base = cluster.admin(0, Request::Layout).await?.version;
                let request = Request::Bucket {
                    name: "default".into(),
                    props,
                    create: bucket_n.1 == 0,
                    base,
                };
                match cluster.admin(0, request).await {
                    Ok(_) => {
                        bucket_n = (n, bucket_n.1 + 1);
                        println!(
                            "  {:>5.1} s: bucket default's n set to {n}",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    Err(e) => {
                        faults -= 1;
                        println!(
                            "  {:>5.1} s: setting bucket default's n to {n} refused for now: {e}",
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            }
            _ if !joined && started.elapsed() > run_for / 3 => {
                // Started once; its join is refused while another transfer (a zone move, a
                // bucket's new `n`) is under way, and tried again later.
                let new = match sixth {
                    Some(new) => new,
                    None => *sixth.insert(cluster.start_node()?),
                };
                let done = match cluster.stage_join(0, new, 1).await {
                    Ok(_) => cluster.commit(0).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                match done {
                    Ok(()) => {
                        joined = true;
                        println!(
                            "  {:>5.1} s: a sixth node joins zone c",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    Err(e) => {
                        faults -= 1;
                        let base = cluster.admin(0, Request::Layout).await?.version;
                        let _ = cluster.admin(0, Request::Clear { base }).await;
                        println!(
                            "  {:>5.1} s: the sixth node's join refused for now: {e}",
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            }
            _ => faults -= 1,
        }
    }
    Ok((faults, outage_writes))
}

/// Every node up, every link whole.
async fn heal(cluster: &mut TestCluster) -> anyhow::Result<()> {
    Firewall::heal();
    for i in 0..cluster.nodes.len() {
        cluster.resume(i);
        if !cluster.is_running(i) {
            cluster.restart(i).await?;
        }
    }
    cluster.wait_settled(Duration::from_secs(120)).await?;
    Ok(())
}

async fn check(
    cluster: &TestCluster,
    bucket: &Bucket,
    history: &History,
    ledger: &Mutex<Ledger>,
    seed: u64,
    seconds: u64,
    faults: usize,
) -> anyhow::Result<Verdict> {
    let ledger = ledger
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    // Strict: every home itself (the bucket's `n` may have been left at 4), not a fallback
    // the client turns to while it still takes a healed home for down, so that the read
    // repairs every home: with fewer, a home that answers late may be left unrepaired.
    let n = bucket.client().ring().bucket(bucket.name()).n;
    let all = ReadOptions::default()
        .with_r(n)
        .with_pr(n)
        .with_timeout(Duration::from_secs(5));
    let all = &all;
    let read = |key: String| async move {
        for _ in 0..50 {
            if let Ok(read) = bucket.get_with(&key, all).await {
                return Ok(read);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("{key} could not be read from 3 replicas")
    };
    let mut verdict = Verdict {
        seed,
        seconds,
        faults,
        ..Verdict::default()
    };
    let ops = history.ops();
    verdict.operations = ops.len() + ledger.blind_puts + ledger.deletes;
    let mut keys: BTreeSet<String> = ops.iter().map(|o| o.key.clone()).collect();
    // Set additions.
    let mut sets = BTreeMap::new();
    for key in &keys {
        let value = read(key.clone()).await?;
        verdict.max_siblings = verdict.max_siblings.max(value.siblings().len());
        sets.insert(key.clone(), union(value.siblings()));
    }
    for op in ops
        .iter()
        .filter(|o| o.outcome == ringkv_tests::faults::Outcome::Ok)
    {
        if !sets.get(&op.key).is_some_and(|s| s.contains(&op.element)) {
            println!("  lost: element {} of {}", op.element, op.key);
            verdict.lost += 1;
        }
    }
    // Blind puts, the outage keys' among them.
    for (key, values) in &ledger.blind {
        let value = read(key.clone()).await?;
        verdict.max_siblings = verdict.max_siblings.max(value.siblings().len());
        let held: BTreeSet<&Bytes> = value.siblings().iter().collect();
        for v in values {
            if !held.contains(v) {
                println!("  lost: blind put {v:?} of {key}");
                verdict.lost += 1;
            }
        }
        keys.insert(key.clone());
    }
    // Deletes: after a full read (which repairs), every node's copies and hints merged.
    for (key, covered) in &ledger.deleted {
        let value = read(key.clone()).await?;
        let merged = held_everywhere(cluster, bucket.name(), key).await?;
        for sibling in merged.live().filter(|s| covered.covers(s.dot)) {
            println!(
                "  resurrected: {key} holds {:?} under {}, which its delete covered (a read \
                 shows {:?})",
                sibling.value,
                sibling.dot,
                value.siblings()
            );
            verdict.resurrected += 1;
        }
        keys.insert(key.clone());
    }
    // The final reads repaired the replicas in the background: give the repairs a bounded
    // while, as the fault scenarios do.
    verdict.divergent = divergent_within(bucket, cluster, &keys, Duration::from_secs(20)).await?;
    if verdict.divergent > 0 {
        show_divergence(cluster, bucket, &keys).await?;
    }
    verdict.dots_minted_twice = dots_minted_twice(cluster, bucket.name(), &keys).await?;
    let stats = cluster.stats().await?;
    verdict.purged = stats.iter().map(|s| s.purged_keys).sum();
    verdict.pruned = stats.iter().map(|s| s.pruned_keys).sum();
    Ok(verdict)
}

/// Prints the first few keys whose home replicas differ, each home's state as it holds it.
async fn show_divergence(
    cluster: &TestCluster,
    bucket: &Bucket,
    keys: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let ring = bucket.client().ring();
    let mut shown = 0;
    for key in keys {
        let homes = ring.home_replicas(bucket.name(), key.as_bytes());
        let mut held = Vec::new();
        for member in &homes {
            let Some(node) = cluster
                .nodes
                .iter()
                .find(|n| n.addr.to_string() == member.addr)
            else {
                continue;
            };
            let mut raw = RawConnection::open(node.addr).await?;
            let inspect = Request::Inspect {
                bucket: bucket.name().into(),
                key: Bytes::from(key.clone()),
            };
            if let Ok(Response::Inspection { data, hints }) = raw.request(inspect).await? {
                held.push((member.addr.clone(), data, hints.len()));
            }
        }
        if held.windows(2).all(|w| w[0].1 == w[1].1) {
            continue;
        }
        println!("  divergent {key}:");
        for (addr, data, hints) in &held {
            let summary = data.as_ref().map(|s| {
                (
                    s.version_vector().clone(),
                    s.live().map(|x| x.value.clone()).collect::<Vec<_>>().len(),
                )
            });
            println!("    {addr}: {summary:?} (+{hints} hints)");
        }
        shown += 1;
        if shown == 3 {
            break;
        }
    }
    Ok(())
}

/// Every node's copy and hints of `key`, merged.
async fn held_everywhere(
    cluster: &TestCluster,
    bucket: &str,
    key: &str,
) -> anyhow::Result<SiblingSet> {
    let mut merged = SiblingSet::new();
    for state in states_everywhere(cluster, bucket, key).await? {
        merged.merge(&state, ringkv_core::ConflictPolicy::Siblings);
    }
    Ok(merged)
}

/// Every node's copy and hints of `key`, as stored (not merged).
async fn states_everywhere(
    cluster: &TestCluster,
    bucket: &str,
    key: &str,
) -> anyhow::Result<Vec<SiblingSet>> {
    let mut states = Vec::new();
    for node in &cluster.nodes {
        let mut raw = RawConnection::open(node.addr).await?;
        let inspect = Request::Inspect {
            bucket: bucket.into(),
            key: Bytes::from(key.to_string()),
        };
        let Ok(Response::Inspection { data, hints }) = raw.request(inspect).await? else {
            anyhow::bail!("node {} did not answer Inspect", node.addr);
        };
        states.extend(data);
        states.extend(hints.into_iter().map(|(_, s)| s));
    }
    Ok(states)
}

/// Across every node's copy and hints of every key: dots that name two different writes.
async fn dots_minted_twice(
    cluster: &TestCluster,
    bucket: &str,
    keys: &BTreeSet<String>,
) -> anyhow::Result<usize> {
    let mut twice = 0;
    for key in keys {
        let mut seen: BTreeMap<Dot, Sibling> = BTreeMap::new();
        let states = states_everywhere(cluster, bucket, key).await?;
        for sibling in states.iter().flat_map(|s| s.siblings()) {
            match seen.get(&sibling.dot) {
                Some(other) if other != sibling => {
                    println!(
                        "  dot {} of {key} names two writes: {other:?} and {sibling:?}",
                        sibling.dot
                    );
                    twice += 1;
                }
                Some(_) => {}
                None => {
                    seen.insert(sibling.dot, sibling.clone());
                }
            }
        }
    }
    Ok(twice)
}
