//! A fixed load through the Rust SDK, for side-by-side comparisons (python/benches/bench.py
//! runs it beside the Python clients against the same cluster).
//!
//! `sdk_load SEEDS OP OPS CONCURRENCY VALUE_BYTES`: OP is `put` or `get` (keys `bench-0` to
//! `bench-{OPS-1}`); prints one JSON line: `{"ops_per_sec":…, "p50_us":…, "p99_us":…}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use ringkv::Client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [seeds, op, ops, concurrency, value_bytes] = args.as_slice() else {
        anyhow::bail!("usage: sdk_load SEEDS(comma-separated) put|get OPS CONCURRENCY VALUE_BYTES");
    };
    let ops: usize = ops.parse().context("OPS")?;
    let concurrency: usize = concurrency.parse().context("CONCURRENCY")?;
    let value = vec![0x5a_u8; value_bytes.parse().context("VALUE_BYTES")?];
    let put = match op.as_str() {
        "put" => true,
        "get" => false,
        other => anyhow::bail!("OP is put or get, not {other}"),
    };
    let client = Client::builder().seeds(seeds.split(',')).build().await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, next, value) = (client.clone(), next.clone(), value.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ops {
                    return Ok::<_, ringkv::Error>(latencies);
                }
                let key = format!("bench-{i}");
                let t = Instant::now();
                if put {
                    client
                        .put_with(
                            &key,
                            value.clone(),
                            None,
                            &ringkv::WriteOptions::default().with_overwrite(true),
                        )
                        .await?;
                } else {
                    client.get(&key).await?;
                }
                latencies.push(t.elapsed().as_micros() as u64);
            }
        }));
    }
    let mut all = Vec::with_capacity(ops);
    for worker in workers {
        all.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"ops_per_sec\": {:.0}, \"p50_us\": {}, \"p99_us\": {}}}",
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
