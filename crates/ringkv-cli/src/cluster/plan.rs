//! `ringkv cluster plan`: what committing the staged changes would do.

use std::collections::BTreeMap;

use ringkv::transport::{Request, Response};
use ringkv_core::movement::{self, Shift};
use ringkv_core::{Buckets, Member, Ring, RingConfig};
use serde_json::json;

use super::describe;
use crate::admin::{Admin, involved_addrs};
use crate::format;

/// `ringkv cluster plan`: the staged changes, each node's share of the data before and after,
/// and an estimate of the keys and bytes that would move (from the nodes' own counts).
pub(super) async fn plan(admin: &Admin, as_json: bool) -> anyhow::Result<()> {
    let (layout, addr) = admin.founded_layout().await?;
    if layout.staged.is_empty() {
        if as_json {
            println!(
                "{}",
                json!({ "staged": [], "layout_version": layout.version })
            );
        } else {
            println!("nothing is staged (layout version {})", layout.version);
            if let Some(t) = &layout.transition {
                println!(
                    "a transfer ({:016x}) is under way: `ringkv handoff --watch`",
                    t.id
                );
            }
        }
        return Ok(());
    }
    let planned = layout
        .plan()
        .map_err(|e| anyhow::anyhow!("the staged changes cannot be planned: {e}"))?;
    // The bucket settings (for `n`) travel with the ring, not the layout.
    let buckets = match admin.call(&addr, Request::Ring).await {
        Ok(Response::Ring(snapshot)) => snapshot.config.buckets,
        _ => Buckets::default(),
    };
    let ring_of = |members: Vec<Member>| {
        Ring::new(RingConfig {
            buckets: buckets.clone(),
            ..RingConfig::of(members)
        })
    };
    let before = ring_of(layout.members.clone())?;
    let after = ring_of(planned.clone())?;
    let n = usize::from(before.bucket(ringkv::DEFAULT_BUCKET).n);
    let shifts = movement::shifts(&before, &after, n);

    // The cluster's distinct keys and bytes, from each member's own estimate: every key is
    // stored `n` times (fewer on a ring of fewer members).
    let (mut copies, mut copy_bytes, mut counted) = (0u64, 0u64, 0usize);
    for (_, addr) in involved_addrs(&layout) {
        if let Ok(stats) = admin.stats(&addr).await {
            copies += stats.keys;
            copy_bytes += stats.bytes;
            counted += 1;
        }
    }
    let replicas = n.min(layout.members.len()).max(1) as f64;
    let (keys, bytes) = (copies as f64 / replicas, copy_bytes as f64 / replicas);
    let fraction = movement::moved_fraction(&shifts, n);
    let moved_keys = (fraction * keys * n as f64).round() as u64;
    let moved_bytes = (fraction * bytes * n as f64).round() as u64;

    let addr_of = |id| {
        planned
            .iter()
            .chain(&layout.members)
            .find(|m| m.id == id)
            .map_or_else(String::new, |m| m.addr.clone())
    };
    let weight_of = |members: &[Member], id| members.iter().find(|m| m.id == id).map(|m| m.weight);
    let zone_of =
        |members: &[Member], id| members.iter().find(|m| m.id == id).map(|m| m.zone.clone());
    let rows: Vec<serde_json::Value> = shifts
        .iter()
        .map(|s: &Shift| {
            json!({
                "node": s.node.to_string(),
                "address": addr_of(s.node),
                "weight_before": weight_of(&layout.members, s.node),
                "weight_after": weight_of(&planned, s.node),
                "zone_before": zone_of(&layout.members, s.node),
                "zone_after": zone_of(&planned, s.node),
                "share_before": s.before / n as f64,
                "share_after": s.after / n as f64,
                "receives": s.gained / n as f64,
                "hands_over": s.lost / n as f64,
                "receives_keys": (s.gained * keys).round() as u64,
                "receives_bytes": (s.gained * bytes).round() as u64,
            })
        })
        .collect();
    let staged: Vec<String> = layout.staged.iter().map(|c| describe(&layout, c)).collect();
    // Each zone's share of the copies, now and after: with `n` at least the zones, every
    // zone holds one copy of every key whatever its size.
    let mut zones: BTreeMap<String, (f64, f64, usize, usize)> = BTreeMap::new();
    for s in &shifts {
        if let Some(zone) = zone_of(&layout.members, s.node) {
            let z = zones.entry(zone).or_default();
            z.0 += s.before / n as f64;
            z.2 += 1;
        }
        if let Some(zone) = zone_of(&planned, s.node) {
            let z = zones.entry(zone).or_default();
            z.1 += s.after / n as f64;
            z.3 += 1;
        }
    }
    let zone_rows: Vec<serde_json::Value> = zones
        .iter()
        .map(|(zone, (before, after, nodes_before, nodes_after))| {
            json!({
                "zone": zone,
                "share_before": before,
                "share_after": after,
                "nodes_before": nodes_before,
                "nodes_after": nodes_after,
            })
        })
        .collect();
    if as_json {
        println!(
            "{}",
            json!({
                "layout_version": layout.version,
                "staged": staged,
                "n": n,
                "nodes": rows,
                "zones": zone_rows,
                "moved_fraction": fraction,
                "moved_keys": moved_keys,
                "moved_bytes": moved_bytes,
                "nodes_counted": counted,
            })
        );
        return Ok(());
    }
    println!("staged changes (layout version {}):", layout.version);
    for s in &staged {
        println!("  {s}");
    }
    if let Some(t) = &layout.transition {
        println!(
            "a transfer ({:016x}) is still under way: commit once it is done",
            t.id
        );
    }
    println!();
    println!("share of the data per node (n={n}), now and after the commit:");
    println!(
        "{:<21} {:>7} {:>8} {:>8} {:>9} {:>11} {:<12} node",
        "address", "weight", "now", "after", "receives", "keys in", "zone"
    );
    for r in &rows {
        let weight = match (r["weight_before"].as_u64(), r["weight_after"].as_u64()) {
            (Some(a), Some(b)) if a != b => format!("{a}->{b}"),
            (None, Some(b)) => format!("+{b}"),
            (Some(a), None) => format!("{a}->0"),
            (Some(a), Some(_)) => a.to_string(),
            (None, None) => "?".into(),
        };
        let zone = |v: &serde_json::Value| match v.as_str() {
            None => "".to_string(),
            Some("") => "-".to_string(),
            Some(z) => z.to_string(),
        };
        let zone = match (zone(&r["zone_before"]), zone(&r["zone_after"])) {
            (a, b) if a == b || a.is_empty() => b,
            (a, b) if b.is_empty() => a,
            (a, b) => format!("{a}->{b}"),
        };
        println!(
            "{:<21} {:>7} {:>7.1}% {:>7.1}% {:>8.1}% {:>11} {:<12} {}",
            r["address"].as_str().unwrap_or_default(),
            weight,
            r["share_before"].as_f64().unwrap_or(0.0) * 100.0,
            r["share_after"].as_f64().unwrap_or(0.0) * 100.0,
            r["receives"].as_f64().unwrap_or(0.0) * 100.0,
            r["receives_keys"].to_string(),
            zone,
            r["node"].as_str().unwrap_or_default(),
        );
    }
    if zones.len() > 1 {
        println!();
        println!("share of the copies per zone, now and after the commit:");
        println!("{:<12} {:>7} {:>8} {:>8}", "zone", "nodes", "now", "after");
        for (zone, (before, after, nodes_before, nodes_after)) in &zones {
            let nodes = if nodes_before == nodes_after {
                nodes_after.to_string()
            } else {
                format!("{nodes_before}->{nodes_after}")
            };
            println!(
                "{:<12} {:>7} {:>7.1}% {:>7.1}%",
                if zone.is_empty() { "-" } else { zone },
                nodes,
                before * 100.0,
                after * 100.0
            );
        }
    }
    println!();
    println!(
        "about {moved_keys} key copies ({}) would move: {:.1}% of the data",
        format::bytes(moved_bytes),
        fraction * 100.0
    );
    println!("`ringkv cluster commit` applies this plan; `ringkv cluster clear` drops it");
    Ok(())
}
