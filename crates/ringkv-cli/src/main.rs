//! `ringkv`: the command-line tool.
//!
//! - `ringkv get KEY`, `put KEY VALUE`, `delete KEY`: through the SDK, with `--r`/`--w`,
//!   showing every sibling and the context (hex) to write with.
//! - `ringkv status`: the members, like `nodetool status`: liveness, address, ring ownership,
//!   weight, tokens, hints pending, node id.
//! - `ringkv ring --key KEY`: a key's preference list, home replicas and fallbacks, with
//!   liveness.
//!
//! Human-readable by default, JSON with `--json`. Staged membership changes (`cluster
//! join/leave/plan/commit`) and `handoff --watch` come with issue 5.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ringkv::transport::{Pool, Request, Response};
use ringkv::{Client, ClientConfig, Context, ReadOptions, WriteOptions};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    name = "ringkv",
    version,
    about = "Read, write and inspect a ringkv cluster"
)]
struct Cli {
    /// Any nodes of the cluster, comma-separated host:port.
    #[arg(
        long,
        env = "RINGKV_SEEDS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7400",
        global = true
    )]
    seeds: Vec<String>,
    /// Bucket of get/put/delete/ring.
    #[arg(long, default_value = ringkv::DEFAULT_BUCKET, global = true)]
    bucket: String,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// Deadline of each call, in seconds.
    #[arg(long, default_value_t = 5.0, global = true)]
    timeout: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a key: every sibling, and the context to write with.
    Get {
        key: String,
        #[arg(long)]
        r: Option<u8>,
    },
    /// Write a key; pass the context of a read to replace what it saw.
    Put {
        key: String,
        value: String,
        #[arg(long)]
        context: Option<String>,
        #[arg(long)]
        w: Option<u8>,
        /// Replace every version, whatever the context.
        #[arg(long)]
        overwrite: bool,
    },
    /// Delete a key (what the context saw, or every version without one).
    Delete {
        key: String,
        #[arg(long)]
        context: Option<String>,
        #[arg(long)]
        w: Option<u8>,
    },
    /// The members of the cluster.
    Status,
    /// Where a key lives: its preference list, home replicas first.
    Ring {
        #[arg(long)]
        key: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("ringkv: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let timeout = Duration::try_from_secs_f64(cli.timeout).context("--timeout")?;
    let client = Client::builder()
        .seeds(cli.seeds.clone())
        .config(ClientConfig::default().with_timeout(timeout))
        .build()
        .await
        .context("connecting to the cluster")?;
    let bucket = client.bucket(cli.bucket.clone());
    match cli.command {
        Command::Get { key, r } => {
            let mut opts = ReadOptions::default();
            opts.r = r;
            let read = bucket.get_with(&key, &opts).await?;
            let context = hex(&read.context().to_bytes());
            let siblings: Vec<String> = read
                .siblings()
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            if cli.json {
                println!(
                    "{}",
                    json!({ "key": key, "found": read.is_found(), "siblings": siblings, "context": context })
                );
            } else if !read.is_found() {
                println!("not found\ncontext {context}");
            } else {
                for (i, s) in siblings.iter().enumerate() {
                    println!("sibling {}: {s}", i + 1);
                }
                println!("context {context}");
            }
        }
        Command::Put {
            key,
            value,
            context,
            w,
            overwrite,
        } => {
            let context = context.map(|c| parse_context(&c)).transpose()?;
            let opts = WriteOptions::default().with_overwrite(overwrite);
            let opts = match w {
                Some(w) => opts.with_w(w),
                None => opts,
            };
            let receipt = bucket
                .put_with(&key, value.into_bytes(), context.as_ref(), &opts)
                .await?;
            print_receipt(cli.json, "put", &key, &receipt);
        }
        Command::Delete { key, context, w } => {
            let context = context.map(|c| parse_context(&c)).transpose()?;
            let opts = match w {
                Some(w) => WriteOptions::default().with_w(w),
                None => WriteOptions::default(),
            };
            let receipt = bucket.delete_with(&key, context.as_ref(), &opts).await?;
            print_receipt(cli.json, "delete", &key, &receipt);
        }
        Command::Status => status(&client, cli.json).await?,
        Command::Ring { key } => {
            let ring = client.ring();
            let alive = client.alive_nodes();
            let n = usize::from(ring.bucket(&cli.bucket).n);
            let rows: Vec<serde_json::Value> = ring
                .preference_list(cli.bucket.as_bytes(), key.as_bytes())
                .enumerate()
                .map(|(i, m)| {
                    json!({
                        "position": i + 1,
                        "role": if i < n { "home" } else { "fallback" },
                        "node": m.id.to_string(),
                        "address": m.addr,
                        "alive": alive.contains(&m.id),
                    })
                })
                .collect();
            if cli.json {
                println!(
                    "{}",
                    json!({ "key": key, "bucket": cli.bucket, "n": n, "preference_list": rows })
                );
            } else {
                println!(
                    "{:<4} {:<9} {:<6} {:<22} node",
                    "#", "role", "state", "address"
                );
                for r in rows {
                    println!(
                        "{:<4} {:<9} {:<6} {:<22} {}",
                        r["position"].to_string(),
                        r["role"].as_str().unwrap_or(""),
                        if r["alive"].as_bool().unwrap_or(false) {
                            "up"
                        } else {
                            "down"
                        },
                        r["address"].as_str().unwrap_or(""),
                        r["node"].as_str().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(())
}

async fn status(client: &Client, as_json: bool) -> anyhow::Result<()> {
    let ring = client.ring();
    let alive = client.alive_nodes();
    let ownership = ring.ownership();
    let pool = Pool::new();
    let mut rows = Vec::new();
    for (member, (_, share)) in ring.members().iter().zip(ownership) {
        let hints = match pool
            .call(
                &member.addr,
                Duration::from_secs(1),
                ring.epoch(),
                Request::Stats,
            )
            .await
        {
            Ok((Response::Stats(stats), _)) => Some(stats.hints_pending),
            _ => None,
        };
        rows.push(json!({
            "node": member.id.to_string(),
            "address": member.addr,
            "state": if alive.contains(&member.id) { "up" } else { "down" },
            "ownership": share,
            "weight": member.weight,
            "tokens": member.weight * ring.config().vnodes_per_weight,
            "hints_pending": hints,
        }));
    }
    if as_json {
        println!(
            "{}",
            json!({ "epoch": ring.epoch().to_string(), "members": rows })
        );
        return Ok(());
    }
    println!("ring epoch {}, {} members", ring.epoch(), rows.len());
    println!(
        "{:<6} {:<22} {:>9} {:>6} {:>7} {:>6}  node",
        "state", "address", "owns", "weight", "tokens", "hints"
    );
    for r in rows {
        println!(
            "{:<6} {:<22} {:>8.1}% {:>6} {:>7} {:>6}  {}",
            r["state"].as_str().unwrap_or(""),
            r["address"].as_str().unwrap_or(""),
            r["ownership"].as_f64().unwrap_or(0.0) * 100.0,
            r["weight"].to_string(),
            r["tokens"].to_string(),
            r["hints_pending"]
                .as_u64()
                .map_or("?".to_string(), |h| h.to_string()),
            r["node"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn print_receipt(as_json: bool, op: &str, key: &str, receipt: &ringkv::WriteReceipt) {
    let ids = |v: &[ringkv::NodeId]| v.iter().map(|id| id.to_string()).collect::<Vec<_>>();
    if as_json {
        println!(
            "{}",
            json!({ "op": op, "key": key, "home": ids(&receipt.home), "fallback": ids(&receipt.fallback) })
        );
    } else {
        println!(
            "{op} {key}: acknowledged by {} home replica(s){}",
            receipt.home.len(),
            if receipt.fallback.is_empty() {
                String::new()
            } else {
                format!(" and {} fallback(s)", receipt.fallback.len())
            }
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_context(text: &str) -> anyhow::Result<Context> {
    // ASCII first: slicing by bytes below must never split a multi-byte character.
    if !text.is_ascii() || !text.len().is_multiple_of(2) {
        anyhow::bail!("--context is hex, as `ringkv get` prints it");
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .context("--context is hex, as `ringkv get` prints it")?;
    Context::from_bytes(&bytes).context("--context")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_round_trip_through_hex_and_garbage_is_an_error_not_a_panic() {
        let ctx = Context::new([(ringkv::NodeId(7), 3)].into_iter().collect());
        assert_eq!(
            parse_context(&hex(&ctx.to_bytes())).expect("round trip"),
            ctx
        );
        for bad in ["", "0", "zz", "é1", "01ff"] {
            assert!(parse_context(bad).is_err(), "{bad:?}");
        }
    }
}
