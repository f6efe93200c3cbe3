//! `ringkv cluster ...`: staged membership changes.
//!
//! Joins, leaves and weight changes are *staged* on the layout the cluster shares, shown by
//! `plan` (ownership before and after per node, and the data that would move), and applied by
//! `commit`, which opens a transfer: nodes stream what they no longer own to its new homes
//! (`ringkv handoff --watch` shows it), then reads switch over. Every change names the layout
//! version it was based on, so two operators cannot unknowingly overwrite each other.

use anyhow::bail;
use clap::Subcommand;
use ringkv::transport::{Request, Response};
use ringkv_core::movement::{self, Shift};
use ringkv_core::{Buckets, Change, Layout, Member, Ring, RingConfig};
use serde_json::json;

use crate::admin::{Admin, involved_addrs};
use crate::format;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Found a new cluster of running nodes (default: the --seeds).
    Init {
        /// host:port of each founding node.
        addrs: Vec<String>,
    },
    /// Stage the join of the running node at ADDR (started with the cluster as its seeds).
    Join {
        addr: String,
        /// Its share of the ring relative to the others (default: the weight it was started
        /// with).
        #[arg(long)]
        weight: Option<u32>,
    },
    /// Stage the departure of a member (node id, id prefix or address).
    Leave { node: String },
    /// Stage a new weight for a member (node id, id prefix or address).
    Weight { node: String, weight: u32 },
    /// Show the staged changes and what committing them would do.
    Plan,
    /// Apply the staged changes: the ring changes, and data starts streaming.
    Commit,
    /// Drop the staged changes.
    Clear,
    /// Declare a member that is down for good (node id, id prefix or address) removed, at
    /// once: its share goes to the others, filled from the surviving replicas, and no
    /// transfer waits for it any more (also one under way). For a live node, use `leave`.
    Remove { node: String },
    /// Put the running node at NEW_ADDR (empty disk, started with the cluster as its seeds)
    /// in the place of member OLD, down for good: it takes OLD's share and is filled from
    /// the surviving replicas. A machine whose disk was wiped and that restarted at its old
    /// address is such a new node.
    Replace { old: String, new_addr: String },
    /// End the transfer under way with nothing lost: back to the previous members (while it
    /// streams, nothing moves back; once it has switched, the data does).
    Abort,
}

pub async fn run(admin: &Admin, command: ClusterCommand, as_json: bool) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Init { addrs } => {
            let addrs = if addrs.is_empty() {
                admin.seeds().to_vec()
            } else {
                addrs
            };
            let mut members = Vec::new();
            for addr in &addrs {
                members.push(admin.member_at(addr, None).await?);
            }
            let first = &addrs[0];
            // Founding again what is already founded is a no-op, so a script may retry.
            let held = admin.layout_at(first).await?;
            let mut wanted: Vec<_> = members.iter().map(|m| m.id).collect();
            let mut have: Vec<_> = held.members.iter().map(|m| m.id).collect();
            wanted.sort_unstable();
            have.sort_unstable();
            if held.is_founded() && wanted == have {
                report(&held, "already a cluster of these nodes", as_json);
                return Ok(());
            }
            let layout = expect_layout(admin.call(first, Request::Found { members }).await?)?;
            // Return a usable cluster: every founding node has heard of the layout and
            // serves the ring (gossip takes a few rounds).
            wait_until_serving(admin, &addrs, INIT_WAIT).await?;
            report(&layout, "founded a cluster", as_json);
            Ok(())
        }
        ClusterCommand::Join { addr, weight } => {
            if weight == Some(0) {
                bail!("--weight starts at 1");
            }
            let member = admin.member_at(&addr, weight).await?;
            let change = Change::Join {
                id: member.id,
                addr: member.addr,
                weight: member.weight,
            };
            stage(admin, change, as_json).await
        }
        ClusterCommand::Leave { node } => {
            let (layout, _) = admin.founded_layout().await?;
            let id = Admin::resolve(&layout, &node)?.id;
            stage(admin, Change::Leave { id }, as_json).await
        }
        ClusterCommand::Weight { node, weight } => {
            if weight == 0 {
                bail!("weights start at 1");
            }
            let (layout, _) = admin.founded_layout().await?;
            let id = Admin::resolve(&layout, &node)?.id;
            stage(admin, Change::Weight { id, weight }, as_json).await
        }
        ClusterCommand::Plan => plan(admin, as_json).await,
        ClusterCommand::Commit => {
            let (layout, addr) = admin.founded_layout().await?;
            let request = Request::Commit {
                base: layout.version,
            };
            let layout = submit(admin, &addr, request).await?;
            report(&layout, "committed", as_json);
            if !as_json {
                println!("data is streaming to the new owners: `ringkv handoff --watch` shows it");
            }
            Ok(())
        }
        ClusterCommand::Remove { node } => {
            let (layout, addr) = admin.founded_layout().await?;
            let id = Admin::resolve(&layout, &node)?.id;
            let request = Request::Remove {
                id,
                base: layout.version,
            };
            let layout = submit(admin, &addr, request).await?;
            report(&layout, &format!("removed node {id}"), as_json);
            if !as_json {
                println!(
                    "the surviving replicas stream its data to the new owners: `ringkv handoff \
                     --watch` shows it"
                );
            }
            Ok(())
        }
        ClusterCommand::Replace { old, new_addr } => {
            let (layout, addr) = admin.founded_layout().await?;
            let old = Admin::resolve(&layout, &old)?.id;
            let new = admin.member_at(&new_addr, None).await?;
            let new_id = new.id;
            let request = Request::Replace {
                old,
                new,
                base: layout.version,
            };
            let layout = submit(admin, &addr, request).await?;
            report(
                &layout,
                &format!("node {new_id} replaces node {old}"),
                as_json,
            );
            if !as_json {
                println!(
                    "the surviving replicas fill it: `ringkv handoff --watch` shows it; it \
                     serves reads once the transfer has switched"
                );
            }
            Ok(())
        }
        ClusterCommand::Abort => {
            let (layout, addr) = admin.founded_layout().await?;
            let request = Request::Abort {
                base: layout.version,
            };
            let layout = submit(admin, &addr, request).await?;
            report(
                &layout,
                "aborted: the way back to the previous members is under way",
                as_json,
            );
            if !as_json {
                println!("`ringkv handoff --watch` shows when it has settled");
            }
            Ok(())
        }
        ClusterCommand::Clear => {
            let (layout, addr) = admin.founded_layout().await?;
            let request = Request::Clear {
                base: layout.version,
            };
            let layout = submit(admin, &addr, request).await?;
            report(&layout, "cleared the staged changes", as_json);
            Ok(())
        }
    }
}

/// How long `cluster init` waits for the founding nodes to serve the new ring.
const INIT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn wait_until_serving(
    admin: &Admin,
    addrs: &[String],
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    for addr in addrs {
        loop {
            match admin.call(addr, Request::Ring).await {
                Ok(Response::Ring(_)) => break,
                Ok(other) => bail!("{addr} answered a ring request with {other:?}"),
                Err(e) if tokio::time::Instant::now() > deadline => {
                    bail!("the cluster is founded, but {addr} does not serve it yet: {e:#}")
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}

async fn stage(admin: &Admin, change: Change, as_json: bool) -> anyhow::Result<()> {
    let (layout, addr) = admin.founded_layout().await?;
    let request = Request::Stage {
        change: change.clone(),
        base: layout.version,
    };
    let layout = submit(admin, &addr, request).await?;
    report(
        &layout,
        &format!("staged: {}", describe(&layout, &change)),
        as_json,
    );
    if !as_json {
        println!(
            "`ringkv cluster plan` shows what would change; `ringkv cluster commit` applies it"
        );
    }
    Ok(())
}

/// How long a membership command waits for the members to take the layout it made.
const CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends a membership `request` to the node at `addr` and returns the layout it made, once
/// the members hold it (see [`confirm_kept`]).
pub(crate) async fn submit(admin: &Admin, addr: &str, request: Request) -> anyhow::Result<Layout> {
    let layout = expect_layout(admin.call(addr, request).await?)?;
    confirm_kept(admin, &layout).await?;
    Ok(layout)
}

/// Two operators changing the layout through two nodes at the same moment make two layouts
/// of one version, and the cluster keeps the one of higher rank (`Layout::rank`): the other
/// change is gone though its node accepted it. Reads the layout back from every member
/// until each holds `ours` or a later one, and fails, saying so, when a member holds another
/// of the same version that outranks it. A member that does not answer is not waited for.
async fn confirm_kept(admin: &Admin, ours: &Layout) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + CONFIRM_WAIT;
    loop {
        let mut behind = 0;
        for member in &ours.members {
            let Ok(held) = admin.layout_at(&member.addr).await else {
                continue;
            };
            if held.version == ours.version && held.rank() > ours.rank() {
                bail!(
                    "another layout of the same version (another operator's change through \
                     another node, or the transfer moving on) replaced this one (layout version \
                     {}): `ringkv cluster plan` and `ringkv status` show the layout now; look, \
                     then try again",
                    ours.version
                );
            }
            if held.rank() < ours.rank() {
                behind += 1;
            }
        }
        if behind == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "ringkv: {behind} member(s) had not taken layout version {} after {CONFIRM_WAIT:?}; \
                 `ringkv status` shows when they have",
                ours.version
            );
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn expect_layout(response: Response) -> anyhow::Result<Layout> {
    match response {
        Response::Layout(layout) => Ok(layout),
        other => bail!("unexpected answer to a membership request: {other:?}"),
    }
}

fn describe(layout: &Layout, change: &Change) -> String {
    let addr = |id| {
        layout
            .members
            .iter()
            .find(|m: &&Member| m.id == id)
            .map_or_else(|| id.to_string(), |m| m.addr.clone())
    };
    match change {
        Change::Join { id, addr, weight } => format!("join {addr} (node {id}, weight {weight})"),
        Change::Leave { id } => format!("leave {} (node {id})", addr(*id)),
        Change::Weight { id, weight } => format!("weight of {} (node {id}) to {weight}", addr(*id)),
    }
}

pub(crate) fn report(layout: &Layout, what: &str, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({
                "done": what,
                "layout_version": layout.version,
                "ring_version": layout.ring_version,
                "members": layout.members.iter().map(|m| json!({ "node": m.id.to_string(), "address": m.addr, "weight": m.weight })).collect::<Vec<_>>(),
                "staged": layout.staged.iter().map(|c| describe(layout, c)).collect::<Vec<_>>(),
                "transfer": layout.transition.as_ref().map(|t| json!({ "id": t.id, "phase": format!("{:?}", t.phase).to_lowercase() })),
            })
        );
    } else {
        println!(
            "{what}: layout version {}, {} member(s)",
            layout.version,
            layout.members.len()
        );
    }
}

/// `ringkv cluster plan`: the staged changes, each node's share of the data before and after,
/// and an estimate of the keys and bytes that would move (from the nodes' own counts).
async fn plan(admin: &Admin, as_json: bool) -> anyhow::Result<()> {
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
    let rows: Vec<serde_json::Value> = shifts
        .iter()
        .map(|s: &Shift| {
            json!({
                "node": s.node.to_string(),
                "address": addr_of(s.node),
                "weight_before": weight_of(&layout.members, s.node),
                "weight_after": weight_of(&planned, s.node),
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
    if as_json {
        println!(
            "{}",
            json!({
                "layout_version": layout.version,
                "staged": staged,
                "n": n,
                "nodes": rows,
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
        "{:<21} {:>7} {:>8} {:>8} {:>9} {:>11}  node",
        "address", "weight", "now", "after", "receives", "keys in"
    );
    for r in &rows {
        let weight = match (r["weight_before"].as_u64(), r["weight_after"].as_u64()) {
            (Some(a), Some(b)) if a != b => format!("{a}->{b}"),
            (None, Some(b)) => format!("+{b}"),
            (Some(a), None) => format!("{a}->0"),
            (Some(a), Some(_)) => a.to_string(),
            (None, None) => "?".into(),
        };
        println!(
            "{:<21} {:>7} {:>7.1}% {:>7.1}% {:>8.1}% {:>11}  {}",
            r["address"].as_str().unwrap_or_default(),
            weight,
            r["share_before"].as_f64().unwrap_or(0.0) * 100.0,
            r["share_after"].as_f64().unwrap_or(0.0) * 100.0,
            r["receives"].as_f64().unwrap_or(0.0) * 100.0,
            r["receives_keys"].to_string(),
            r["node"].as_str().unwrap_or_default(),
        );
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
