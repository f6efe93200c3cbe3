//! A guided tour of ringkv against a running cluster: a put, a get, two concurrent writes
//! that become siblings, and their resolution.
//!
//! `./scripts/demo.sh` starts a local three-node cluster and runs this against it. To run it
//! against your own cluster: `cargo run --example walkthrough -- 127.0.0.1:7401`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use ringkv::{Client, ReadOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seeds: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        !seeds.is_empty(),
        "usage: walkthrough SEED_ADDR [SEED_ADDR ...]"
    );

    step("Connect: the client fetches the ring from a seed and routes every key itself");
    let client = connect(&seeds).await?;
    let ring = client.ring();
    println!(
        "  ring epoch {} with {} members:",
        ring.epoch(),
        ring.members().len()
    );
    for m in ring.members() {
        println!("    node {}  {}  weight {}", m.id, m.addr, m.weight);
    }
    let props = ring.bucket(ringkv::DEFAULT_BUCKET);
    println!(
        "  default bucket: n={} r={} w={} conflict={:?}",
        props.n, props.r, props.w, props.conflict
    );

    step("Put: the first home replica stamps the write, the client copies it to the others");
    let key = "cart:alice";
    let home: Vec<String> = ring
        .home_replicas(ringkv::DEFAULT_BUCKET, key.as_bytes())
        .iter()
        .map(|m| m.addr.clone())
        .collect();
    println!("  {key} lives on {home:?}");
    let receipt = client.put(key, "milk", None).await?;
    println!(
        "  put {key} = \"milk\": acknowledged by {} home replicas",
        receipt.home.len()
    );

    step("Get: ask the replicas in parallel, answer after R of them, merge");
    let read = client.get(key).await?;
    println!("  get {key} -> {}", show(read.siblings()));

    step("Two writers read the same version and write concurrently");
    let bob = connect(&seeds).await?;
    let (a, b) = tokio::join!(
        client.put(key, "milk, eggs", Some(read.context())),
        bob.put(key, "milk, bread", Some(read.context())),
    );
    a?;
    b?;
    println!("  alice wrote \"milk, eggs\" and bob wrote \"milk, bread\", both from the same read");
    let both = client
        .get_with(key, &ReadOptions::default().with_r(3))
        .await?;
    println!(
        "  get {key} -> {} siblings: {}",
        both.siblings().len(),
        show(both.siblings())
    );
    println!("  nothing was silently dropped: ringkv kept both concurrent updates");

    step("Resolve: merge the siblings and write with the read's context");
    let merged: BTreeSet<String> = both
        .siblings()
        .iter()
        .flat_map(|s| {
            String::from_utf8_lossy(s)
                .split(", ")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let resolved = merged.into_iter().collect::<Vec<_>>().join(", ");
    client
        .put(key, resolved.clone(), Some(both.context()))
        .await?;
    let after = bob.get_with(key, &ReadOptions::default().with_r(3)).await?;
    println!("  put {key} = \"{resolved}\" with the context of the read that saw both");
    println!("  get {key} -> {}", show(after.siblings()));
    anyhow::ensure!(
        after.siblings().len() == 1,
        "the resolution should leave one value"
    );

    step("Delete with the context, so a concurrent update would survive");
    client.delete(key, Some(after.context())).await?;
    let gone = client.get(key).await?;
    println!(
        "  get {key} -> {}",
        if gone.is_found() {
            show(gone.siblings())
        } else {
            "not found".into()
        }
    );

    println!(
        "\nDone. The client read repairs stale replicas in the background: stats {:?}",
        client.stats()
    );
    Ok(())
}

/// Connects, waiting (a bounded time) for a cluster that is still starting.
async fn connect(seeds: &[String]) -> anyhow::Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = Client::builder().seeds(seeds.iter().cloned()).build().await;
        match attempt {
            Ok(client) if client.ring().members().len() >= seeds.len() => return Ok(client),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(client) => return Ok(client),
            Err(e) => return Err(e).context("connecting to the cluster"),
        }
    }
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn show(siblings: &[Bytes]) -> String {
    let quoted: Vec<String> = siblings
        .iter()
        .map(|s| format!("\"{}\"", String::from_utf8_lossy(s)))
        .collect();
    format!("[{}]", quoted.join(", "))
}
