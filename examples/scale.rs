//! Internet scale, by simulation (issue 5, item 7). Prints:
//!
//! - for a ring of 10,000 nodes with weights 1 to 4: its memory in a client, the time to
//!   build it from the member list, a preference-list lookup, and the keys one join moves
//!   against the ideal;
//! - the same ring in three uneven zones (20%, 30% and 50% of the nodes): each zone's share of
//!   the copies, the most loaded node of each zone over its target, the lookup, and what a
//!   join into the smallest zone moves;
//! - for a gossip cluster of 1,000 nodes on chitchat's in-memory transport, in simulated time
//!   (tokio's paused clock): how long until every node has heard of a committed membership
//!   change, and until a client refreshing its ring from a random node every 5 s sees it.
//!
//! Run with `cargo run --example scale` (or `-- --nodes 10000 --gossip-nodes 1000`). Goals:
//! ring < 20 MB, build < 50 ms, lookup < 1 µs, moved ≤ 1.15 × ideal, convergence < 5 s.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chitchat::transport::ChannelTransport;
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use ringkv_core::movement;
use ringkv_core::{DEFAULT_TOKENS_PER_WEIGHT, Member, NodeId, Ring, RingConfig, claim};

/// The gossip interval ringkvd uses by default (`[gossip] interval_ms`).
const GOSSIP_INTERVAL: Duration = Duration::from_millis(200);
/// How often the SDK refreshes its ring in the background (`ClientConfig`).
const CLIENT_REFRESH: Duration = Duration::from_secs(5);
/// The gossip key that carries a node's layout version (as `membership.rs` names it).
const KEY_LAYOUT: &str = "layout";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn member(i: u64, weight: u32) -> Member {
    Member {
        id: NodeId(ringkv_core::hash::digest(&i.to_be_bytes())),
        addr: format!("10.{}.{}.{}:7400", i / 65536, (i / 256) % 256, i % 256),
        weight,
        tokens: Vec::new(),
        zone: String::new(),
    }
}

fn ring_figures(nodes: u64) -> anyhow::Result<()> {
    let weights = [1, 2, 3, 4];
    let list: Vec<Member> = (0..nodes)
        .map(|i| member(i, weights[(i % 4) as usize]))
        .collect();
    let allocated = Instant::now();
    let members = claim::found(&list, DEFAULT_TOKENS_PER_WEIGHT)?;
    let allocation = allocated.elapsed();

    let built = Instant::now();
    let ring = Ring::new(RingConfig::of(members.clone()))?;
    let build = built.elapsed();

    let lookups = 1_000_000u32;
    let keys: Vec<Vec<u8>> = (0..1024).map(|i| format!("user{i}").into_bytes()).collect();
    let looked = Instant::now();
    let mut checksum = 0u64;
    for i in 0..lookups {
        let key = &keys[(i as usize) % keys.len()];
        for m in ring.preference_list(b"default", key).take(3) {
            checksum = checksum.wrapping_add(m.id.0);
        }
    }
    let lookup = looked.elapsed() / lookups;

    // One more node of weight 2 joins: what moves, against the ideal (its share of copies).
    let joined = Instant::now();
    let after_members = claim::join(&members, member(nodes, 2), DEFAULT_TOKENS_PER_WEIGHT)?;
    let join_time = joined.elapsed();
    let after = Ring::new(RingConfig::of(after_members))?;
    let shifts = movement::shifts(&ring, &after, 3);
    let total_weight: u64 = list.iter().map(|m| u64::from(m.weight)).sum::<u64>() + 2;
    let ideal = 2.0 / total_weight as f64;
    let moved = movement::moved_fraction(&shifts, 3);

    let tokens = ring.token_count();
    println!("ring of {nodes} nodes, weights 1-4, {DEFAULT_TOKENS_PER_WEIGHT} tokens per weight:");
    println!(
        "  memory in a client: {:.1} MB for {tokens} tokens (goal < 20 MB)",
        ring.heap_bytes() as f64 / 1e6
    );
    println!(
        "  build from the member list: {:.1} ms (goal < 50 ms); allocating every token at founding: {:.0} ms",
        build.as_secs_f64() * 1e3,
        allocation.as_secs_f64() * 1e3
    );
    println!(
        "  preference list (3 homes) lookup: {:.0} ns (goal < 1 µs) [checksum {checksum:x}]",
        lookup.as_nanos()
    );
    println!(
        "  one join (weight 2) moves {:.4}% of all copies, {:.3} x the ideal {:.4}% (goal <= 1.15); allocating it took {:.1} ms",
        moved * 100.0,
        moved / ideal,
        ideal * 100.0,
        join_time.as_secs_f64() * 1e3
    );
    Ok(())
}

/// The zone of node `i` of `nodes`: the first 20% in `a`, the next 30% in `b`, the rest `c`.
fn zone_of(i: u64, nodes: u64) -> &'static str {
    match i * 10 / nodes.max(1) {
        0 | 1 => "a",
        2..=4 => "b",
        _ => "c",
    }
}

fn zoned_ring_figures(nodes: u64) -> anyhow::Result<()> {
    let weights = [1, 2, 3, 4];
    let zoned = |i: u64, weight: u32| Member {
        zone: zone_of(i, nodes).to_string(),
        ..member(i, weight)
    };
    let list: Vec<Member> = (0..nodes)
        .map(|i| zoned(i, weights[(i % 4) as usize]))
        .collect();
    let members = claim::found(&list, DEFAULT_TOKENS_PER_WEIGHT)?;
    let built = Instant::now();
    let ring = Ring::new(RingConfig::of(members.clone()))?;
    let build = built.elapsed();

    let lookups = 1_000_000u32;
    let keys: Vec<Vec<u8>> = (0..1024).map(|i| format!("user{i}").into_bytes()).collect();
    let looked = Instant::now();
    let mut checksum = 0u64;
    for i in 0..lookups {
        let key = &keys[(i as usize) % keys.len()];
        for m in ring.preference_list(b"default", key).take(3) {
            checksum = checksum.wrapping_add(m.id.0);
        }
    }
    let lookup = looked.elapsed() / lookups;

    println!("ring of {nodes} nodes in 3 zones of 20/30/50% of the nodes, weights 1-4, n=3:");
    println!(
        "  memory in a client: {:.1} MB; build {:.1} ms; preference list (3 homes) lookup {:.0} ns [checksum {checksum:x}]",
        ring.heap_bytes() as f64 / 1e6,
        build.as_secs_f64() * 1e3,
        lookup.as_nanos()
    );
    print_zone_balance(&ring);

    // A node of weight 2 joins the smallest zone: only that zone's copies move, to it.
    let joined = Instant::now();
    let newcomer = Member {
        zone: "a".into(),
        ..member(nodes, 2)
    };
    let after_members = claim::join(&members, newcomer, DEFAULT_TOKENS_PER_WEIGHT)?;
    let join_time = joined.elapsed();
    let after = Ring::new(RingConfig::of(after_members))?;
    let shifts = movement::shifts(&ring, &after, 3);
    let moved = movement::moved_fraction(&shifts, 3);
    let zone_a_weight: u64 = list
        .iter()
        .filter(|m| m.zone == "a")
        .map(|m| u64::from(m.weight))
        .sum::<u64>()
        + 2;
    // Its ideal: its weight's part of zone a, which holds a third of the copies.
    let ideal = 2.0 / zone_a_weight as f64 / 3.0;
    println!(
        "  one join (weight 2) into zone a moves {:.4}% of all copies, {:.3} x the ideal {:.4}% (goal <= 1.15); allocating it took {:.1} ms",
        moved * 100.0,
        moved / ideal,
        ideal * 100.0,
        join_time.as_secs_f64() * 1e3
    );
    print_zone_balance(&after);
    Ok(())
}

/// Each zone's share of the copies (n=3), and its most loaded node over its target (its
/// weight's part of the zone's share).
fn print_zone_balance(ring: &Ring) {
    let shares = ring.replica_shares(3);
    for zone in ring.zones() {
        let in_zone: Vec<(&Member, f64)> = shares
            .iter()
            .filter_map(|(id, share)| ring.member(*id).map(|m| (m, *share)))
            .filter(|(m, _)| m.zone == zone)
            .collect();
        let total: f64 = in_zone.iter().map(|(_, s)| s).sum();
        let weight: f64 = in_zone.iter().map(|(m, _)| f64::from(m.weight)).sum();
        let worst = in_zone
            .iter()
            .map(|(m, s)| s / (total * f64::from(m.weight) / weight))
            .fold(0.0, f64::max);
        println!(
            "    zone {zone}: {} nodes hold {:.2}% of the copies; most loaded node {:.3} x its target (goal <= 1.10)",
            in_zone.len(),
            total / 3.0 * 100.0,
            worst
        );
    }
}

fn gossip_config(i: usize, seeds: &[String]) -> ChitchatConfig {
    let addr = SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 7400));
    ChitchatConfig {
        chitchat_id: ChitchatId::new(format!("{:016x}", i), 1, addr),
        cluster_id: "sim".into(),
        gossip_interval: GOSSIP_INTERVAL,
        listen_addr: addr,
        seed_nodes: seeds.to_vec(),
        failure_detector_config: FailureDetectorConfig {
            initial_interval: GOSSIP_INTERVAL * 5,
            ..FailureDetectorConfig::default()
        },
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: chitchat::ProtocolVersion::V0,
    }
}

/// How many nodes have the layout version `version` from node 0.
async fn heard(handles: &[ChitchatHandle], version: &str) -> (usize, Vec<bool>) {
    let origin = handles[0].chitchat_id().clone();
    let mut have = Vec::with_capacity(handles.len());
    for h in handles {
        let chitchat = h.chitchat();
        let state = chitchat.lock().await;
        have.push(
            state
                .node_state(&origin)
                .and_then(|s| s.get(KEY_LAYOUT))
                .is_some_and(|v| v == version),
        );
    }
    (have.iter().filter(|h| **h).count(), have)
}

async fn gossip_figures(nodes: usize) -> anyhow::Result<()> {
    let transport = ChannelTransport::default();
    let seeds: Vec<String> = (0..3)
        .map(|i| gossip_config(i, &[]).listen_addr.to_string())
        .collect();
    let mut handles = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let keys = vec![(KEY_LAYOUT.to_string(), "1".to_string())];
        handles.push(chitchat::spawn_chitchat(gossip_config(i, &seeds), keys, &transport).await?);
    }
    // Let the cluster form: every node knows every other.
    let formed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(GOSSIP_INTERVAL).await;
        let mut complete = true;
        for h in handles.iter().step_by(97) {
            let chitchat = h.chitchat();
            if chitchat.lock().await.node_states().len() < nodes {
                complete = false;
                break;
            }
        }
        if complete || formed.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    println!(
        "gossip of {nodes} nodes (interval {GOSSIP_INTERVAL:?}, in-memory transport, simulated time):"
    );
    println!(
        "  formed (every node knows every other) after {:.1} s",
        formed.elapsed().as_secs_f64()
    );

    // An operator commits a join on node 0: its layout version goes up.
    let committed = tokio::time::Instant::now();
    {
        let chitchat = handles[0].chitchat();
        chitchat
            .lock()
            .await
            .self_node_state()
            .set(KEY_LAYOUT, "2".to_string());
    }
    // A client that refreshes from a random node every CLIENT_REFRESH, phase chosen at random.
    let mut client_seen: Option<Duration> = None;
    let mut next_refresh = Duration::from_millis(1_234);
    let mut picks = (0..nodes).cycle().skip(nodes / 2).step_by(7);
    let mut all_seen = None;
    let mut rounds = HashSet::new();
    while committed.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(GOSSIP_INTERVAL / 4).await;
        let elapsed = committed.elapsed();
        let (count, have) = heard(&handles, "2").await;
        rounds.insert(count);
        if client_seen.is_none() && elapsed >= next_refresh {
            let asked = picks.next().unwrap_or(0);
            if have[asked] {
                client_seen = Some(elapsed);
            }
            next_refresh += CLIENT_REFRESH;
        }
        if count == nodes && all_seen.is_none() {
            all_seen = Some(elapsed);
        }
        if all_seen.is_some() && client_seen.is_some() {
            break;
        }
    }
    match all_seen {
        Some(t) => println!(
            "  every node heard of the change after {:.2} s (goal < 5 s); each then fetches the layout from a peer in one round trip",
            t.as_secs_f64()
        ),
        None => println!("  not every node heard of the change within 60 s"),
    }
    match client_seen {
        Some(t) => println!(
            "  a client refreshing every {CLIENT_REFRESH:?} saw it after {:.2} s (requests answered by a newer ring make it refetch at once)",
            t.as_secs_f64()
        ),
        None => println!("  the client did not see it within 60 s"),
    }
    println!(
        "  gossip traffic: {:?}",
        transport.statistics().num_bytes_total
    );
    for h in handles {
        h.shutdown().await?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    ring_figures(arg("--nodes", 10_000) as u64)?;
    zoned_ring_figures(arg("--nodes", 10_000) as u64)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    runtime.block_on(gossip_figures(arg("--gossip-nodes", 1_000)))
}
