//! `ringkv status`: the cluster at a glance, one row per node, grouped by zone.

use std::collections::BTreeMap;

use ringkv::Client;
use ringkv_core::{Member, NodeId, Phase};
use serde_json::{Value, json};

use crate::admin::Admin;
use crate::format;
use crate::inspect::{text, zone_text};

/// `ringkv status`: one row per node the ring involves, as `nodetool status` shows them.
pub async fn status(client: &Client, admin: &Admin, as_json: bool) -> anyhow::Result<()> {
    let ring = client.ring();
    let alive = client.alive_nodes();
    let n = usize::from(ring.bucket(ringkv::DEFAULT_BUCKET).n);
    let ownership = ring.ownership();
    let effective = ring.replica_shares(n);
    let transition = ring.transition();
    let previous: &[Member] = transition.map_or(&[], |t| &t.previous);
    let staged = match admin.layout().await {
        Ok((layout, _)) => layout.staged.len(),
        Err(_) => 0,
    };
    let mut rows = Vec::new();
    for member in ring.all_members() {
        let share = |shares: &[(NodeId, f64)]| {
            shares
                .iter()
                .find(|(id, _)| *id == member.id)
                .map_or(0.0, |s| s.1)
        };
        let current = ring.members().iter().any(|m| m.id == member.id);
        let before = previous.iter().any(|m| m.id == member.id);
        let removed = transition.is_some_and(|t| t.is_removed(member.id));
        let role = match (transition.is_some(), current, before) {
            _ if removed => "removed",
            (true, true, false) => "joining",
            (true, false, true) => "leaving",
            _ => "normal",
        };
        // Another node answering at the member's address (a wiped machine back under a new
        // id) is not the member: its figures are not shown as the member's.
        let stats = admin
            .stats(&member.addr)
            .await
            .ok()
            .filter(|s| s.node == member.id);
        rows.push(json!({
            "node": member.id.to_string(),
            "address": member.addr,
            "zone": member.zone,
            "state": if alive.contains(&member.id) { "up" } else { "down" },
            "role": role,
            "load_bytes": stats.as_ref().map(|s| s.bytes),
            "keys": stats.as_ref().map(|s| s.keys),
            "ownership": share(&ownership),
            "effective_ownership": share(&effective) ,
            "weight": member.weight,
            "vnodes": member.tokens.len(),
            "hints_pending": stats.as_ref().map(|s| s.hints_pending),
        }));
    }
    // Members the transfer cannot finish without, that this client sees down.
    let waits_on: Vec<&Member> = transition
        .map(|t| {
            ring.all_members()
                .into_iter()
                .filter(|m| !t.is_removed(m.id) && !alive.contains(&m.id))
                .collect()
        })
        .unwrap_or_default();
    // With zones, rows by zone (then id), and each zone's node count and share of the copies.
    let zones = ring.zones();
    if zones.len() > 1 {
        rows.sort_by(|a, b| {
            text(&a["zone"])
                .cmp(&text(&b["zone"]))
                .then(text(&a["node"]).cmp(&text(&b["node"])))
        });
    }
    let mut zone_shares: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for m in ring.members() {
        let entry = zone_shares.entry(m.zone.as_str()).or_default();
        entry.0 += 1;
        entry.1 += effective
            .iter()
            .find(|(id, _)| *id == m.id)
            .map_or(0.0, |s| s.1);
    }
    let zone_json: Vec<Value> = zone_shares
        .iter()
        .map(|(zone, (nodes, share))| {
            json!({ "zone": zone, "nodes": nodes, "copies_share": share / n.max(1) as f64 })
        })
        .collect();
    let transfer = transition.map(|t| {
        json!({
            "id": t.id,
            "phase": match t.phase { Phase::Streaming => "streaming", Phase::Switching => "switching" },
            "waiting_on_down": waits_on.iter().map(|m| m.id.to_string()).collect::<Vec<_>>(),
        })
    });
    if as_json {
        println!(
            "{}",
            json!({ "epoch": ring.epoch().to_string(), "n": n, "members": rows, "zones": zone_json, "transfer": transfer, "staged": staged })
        );
        return Ok(());
    }
    println!(
        "ring {} · {} members{} · n={n} (default bucket)",
        ring.epoch(),
        ring.members().len(),
        if zones.len() > 1 {
            format!(" in {} zones", zones.len())
        } else {
            String::new()
        }
    );
    if let Some(t) = transition {
        println!(
            "transfer {:016x} under way ({:?}): `ringkv handoff --watch` shows its progress",
            t.id, t.phase
        );
        for m in &waits_on {
            println!(
                "it waits for {} (node {}), which is down: if it is gone for good, `ringkv \
                 cluster remove {}` ends the wait",
                m.addr, m.id, m.id
            );
        }
    }
    if staged > 0 {
        println!("{staged} change(s) staged: `ringkv cluster plan` shows them");
    }
    println!(
        "{:<5} {:<8} {:<21} {:>10} {:>8} {:>6} {:>6} {:>7} {:>6} {:>6}  node",
        "state", "role", "address", "load", "keys", "vnodes", "owns", "eff.", "weight", "hints"
    );
    let unknown = || "?".to_string();
    let mut zone = None;
    for r in rows {
        if zones.len() > 1 && zone != Some(r["zone"].clone()) {
            zone = Some(r["zone"].clone());
            let label = r["zone"].as_str().unwrap_or_default();
            let (nodes, share) = zone_shares.get(label).copied().unwrap_or((0, 0.0));
            println!(
                "zone {} · {nodes} node(s) · holds {:.1}% of the copies",
                zone_text(&r["zone"]),
                share / n.max(1) as f64 * 100.0
            );
        }
        println!(
            "{:<5} {:<8} {:<21} {:>10} {:>8} {:>6} {:>5.1}% {:>6.1}% {:>6} {:>6}  {}",
            text(&r["state"]),
            text(&r["role"]),
            text(&r["address"]),
            r["load_bytes"].as_u64().map_or_else(unknown, format::bytes),
            r["keys"].as_u64().map_or_else(unknown, |k| k.to_string()),
            r["vnodes"].to_string(),
            r["ownership"].as_f64().unwrap_or(0.0) * 100.0,
            r["effective_ownership"].as_f64().unwrap_or(0.0) * 100.0,
            r["weight"].to_string(),
            r["hints_pending"]
                .as_u64()
                .map_or_else(unknown, |h| h.to_string()),
            text(&r["node"]),
        );
    }
    Ok(())
}
