//! `ringkv handoff [--watch]`: what is being handed off, node by node.
//!
//! Two kinds of handoff: the data streaming that follows a committed membership change (each
//! node's scan of its keys, the copies sent and acknowledged, keys/s and bytes/s), and hinted
//! handoff (hints waiting for their home node). Without `--watch` it prints one snapshot; with
//! it, one per second until nothing is left (or `--max-wait` passes). `--json` prints one JSON
//! object per snapshot, a line each, for scripts.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use ringkv_core::wire::TransferStats;
use ringkv_core::{Layout, Phase};
use serde_json::{Value, json};

use crate::admin::{Admin, involved_addrs};
use crate::format;

const REFRESH: Duration = Duration::from_secs(1);

pub async fn run(
    admin: &Admin,
    watch: bool,
    max_wait: Duration,
    as_json: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let redraw = watch && !as_json && std::io::stdout().is_terminal();
    let mut lines_drawn = 0;
    loop {
        let (layout, _) = admin.founded_layout().await?;
        let snapshot = snapshot(admin, &layout).await;
        let finished = snapshot["finished"].as_bool() == Some(true);
        if as_json {
            println!("{snapshot}");
        } else {
            let text = render(&snapshot);
            if redraw && lines_drawn > 0 {
                // Move back up over the previous snapshot and clear it.
                print!("\x1b[{lines_drawn}A\x1b[J");
            }
            print!("{text}");
            lines_drawn = text.lines().count();
        }
        let _ = std::io::stdout().flush();
        if !watch || finished {
            return Ok(());
        }
        if started.elapsed() + REFRESH > max_wait {
            anyhow::bail!("still handing off after {max_wait:?} (--max-wait)");
        }
        tokio::time::sleep(REFRESH).await;
    }
}

/// One look at every node the layout involves.
async fn snapshot(admin: &Admin, layout: &Layout) -> Value {
    let transfer = layout.transition.as_ref();
    let mut nodes = Vec::new();
    let mut hints_total = 0u64;
    let mut all_answered = true;
    for (id, addr) in involved_addrs(layout) {
        match admin.stats(&addr).await {
            Ok(stats) => {
                hints_total += stats.hints_pending;
                let progress = stats
                    .transfer
                    .filter(|t| transfer.is_some_and(|tr| tr.id == t.id))
                    .map(|t| transfer_json(&t));
                nodes.push(json!({
                    "node": id.to_string(), "address": addr,
                    "hints_pending": stats.hints_pending,
                    "hints_delivered": stats.hints_delivered,
                    "transfer": progress,
                }));
            }
            Err(e) => {
                // A member declared removed is down for good: nothing waits for it.
                let removed = transfer.is_some_and(|t| t.is_removed(id));
                all_answered &= removed;
                nodes.push(json!({
                    "node": id.to_string(), "address": addr, "error": format!("{e:#}"),
                    "removed": removed,
                }));
            }
        }
    }
    let finished = transfer.is_none() && hints_total == 0 && all_answered;
    json!({
        "ring_version": layout.ring_version,
        "layout_version": layout.version,
        "transfer": transfer.map(|t| json!({
            "id": t.id,
            "phase": match t.phase { Phase::Streaming => "streaming", Phase::Switching => "switching" },
        })),
        "nodes": nodes,
        "hints_pending": hints_total,
        "finished": finished,
    })
}

fn transfer_json(t: &TransferStats) -> Value {
    let seconds = (t.elapsed_ms as f64 / 1000.0).max(0.001);
    json!({
        "id": t.id,
        "scanned_keys": t.scanned_keys,
        "total_keys": t.total_keys.max(t.scanned_keys),
        "sent_keys": t.sent_keys,
        "sent_bytes": t.sent_bytes,
        "keys_per_sec": (t.sent_keys as f64 / seconds).round(),
        "bytes_per_sec": (t.sent_bytes as f64 / seconds).round(),
        "elapsed_ms": t.elapsed_ms,
        "done": t.done,
        "cleaned_keys": t.cleaned_keys,
    })
}

fn render(s: &Value) -> String {
    let mut out = String::new();
    match &s["transfer"] {
        Value::Null => out.push_str(&format!(
            "no transfer under way (layout version {})\n",
            s["layout_version"]
        )),
        t => out.push_str(&format!(
            "transfer {:016x}: {}\n",
            t["id"].as_u64().unwrap_or_default(),
            t["phase"].as_str().unwrap_or_default()
        )),
    }
    out.push_str(&format!(
        "{:<21} {:<24} {:>15} {:>10} {:>8} {:>11} {:>6}\n",
        "address", "progress", "keys scanned", "sent", "keys/s", "bytes/s", "hints"
    ));
    let mut waiting = Vec::new();
    for n in s["nodes"].as_array().into_iter().flatten() {
        let addr = n["address"].as_str().unwrap_or_default();
        if let Some(e) = n["error"].as_str() {
            if n["removed"].as_bool() == Some(true) {
                out.push_str(&format!(
                    "{addr:<21} removed: down for good, nothing waits for it\n"
                ));
            } else {
                out.push_str(&format!("{addr:<21} unreachable: {e}\n"));
                if !s["transfer"].is_null() {
                    let node = n["node"].as_str().unwrap_or_default();
                    waiting.push(format!(
                        "the transfer waits for {addr} (node {node}), which does not answer: if \
                         it is gone for good, `ringkv cluster remove {node}` ends the wait"
                    ));
                }
            }
            continue;
        }
        let hints = n["hints_pending"].as_u64().unwrap_or(0);
        let t = &n["transfer"];
        if t.is_null() {
            // During a transfer: this node has not reported progress on it yet.
            let progress = if s["transfer"].is_null() {
                "-"
            } else {
                "starting"
            };
            out.push_str(&format!(
                "{addr:<21} {progress:<24} {:>15} {:>10} {:>8} {:>11} {hints:>6}\n",
                "-", "-", "-", "-"
            ));
            continue;
        }
        let (scanned, total) = (
            t["scanned_keys"].as_u64().unwrap_or(0),
            t["total_keys"].as_u64().unwrap_or(0),
        );
        let done = t["done"].as_bool() == Some(true);
        let bar = if done {
            format!("{} done", format::bar(1, 1, 18))
        } else {
            let pct = (scanned * 100).checked_div(total).unwrap_or(100);
            format!("{} {pct:>3}%", format::bar(scanned, total, 18))
        };
        out.push_str(&format!(
            "{addr:<21} {bar:<24} {:>15} {:>10} {:>8} {:>11} {hints:>6}\n",
            format!("{scanned}/{total}"),
            t["sent_keys"].as_u64().unwrap_or(0),
            t["keys_per_sec"].as_f64().unwrap_or(0.0) as u64,
            format!(
                "{}/s",
                format::bytes(t["bytes_per_sec"].as_f64().unwrap_or(0.0) as u64)
            ),
        ));
    }
    for line in waiting {
        out.push_str(&line);
        out.push('\n');
    }
    if s["finished"].as_bool() == Some(true) {
        out.push_str("nothing left to hand off\n");
    }
    out
}
