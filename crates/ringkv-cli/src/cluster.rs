//! `ringkv cluster ...`: staged membership changes.
//!
//! Joins, leaves, weight and zone changes are *staged* on the layout the cluster shares, shown by
//! `plan` (ownership before and after per node, and the data that would move), and applied by
//! `commit`, which opens a transfer: nodes stream what they no longer own to its new homes
//! (`ringkv handoff --watch` shows it), then reads switch over. Every change names the layout
//! version it was based on, so two operators cannot unknowingly overwrite each other.

use anyhow::bail;
use clap::Subcommand;
use ringkv::transport::{Request, Response};
use ringkv_core::wire::WireError;
use ringkv_core::{Change, Layout, LayoutError, Member};
use serde_json::json;

use crate::admin::Admin;

mod join;
mod plan;
mod zone;

use join::{join_and_commit, refuse_taken_address};
use plan::plan;

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
        /// Its zone (default: the zone it was started with).
        #[arg(long)]
        zone: Option<String>,
        /// Also commit, when every staged change is a join of an empty node that answers
        /// (nodes started together join in one transfer); refused while another kind of
        /// change is staged, for a node that is leaving, and for a node holding keys or hints
        /// (it was a member before: wipe it first). Safe to repeat: a node already a member,
        /// or already staged, is not staged again. What a container's entrypoint runs to
        /// join a node by itself.
        #[arg(long)]
        commit: bool,
    },
    /// Stage the departure of a member (node id, id prefix or address).
    Leave { node: String },
    /// Stage a new weight for a member (node id, id prefix or address).
    Weight { node: String, weight: u32 },
    /// Stage a member's move to another zone (`-` for none): it leaves its old zone's share
    /// of the ring and takes one in the new zone. Labelling a cluster's members for the first
    /// time is one `zone` per member, then one commit. Every member must run a release that
    /// knows zones (the nodes refuse the change otherwise).
    Zone { node: String, zone: String },
    /// Show the staged changes and what committing them would do.
    Plan,
    /// Show the layout the seeds hold: members, staged changes, the transfer under way. Fails
    /// if they belong to no cluster (what a script asks to learn whether to found one).
    Layout,
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
            let mut wanted: Vec<_> = members.iter().map(|m| m.id).collect();
            wanted.sort_unstable();
            // Founding again what is already founded is a no-op, so a script may retry. A
            // node that belongs to another cluster is refused: founding around it (a founder
            // whose disk was wiped, asked before gossip told it of its cluster) would make a
            // second cluster of the same nodes.
            for addr in &addrs {
                let held = admin.layout_at(addr).await?;
                if !held.is_founded() {
                    continue;
                }
                let mut have: Vec<_> = held.members.iter().map(|m| m.id).collect();
                have.sort_unstable();
                if have != wanted {
                    bail!(
                        "{addr} already belongs to a cluster (layout version {}, {} members): \
                         `cluster init` founds new clusters only; add nodes with `cluster join`",
                        held.version,
                        held.members.len()
                    );
                }
                // Founded already (gossip brings it to the others): wait for them to serve it.
                wait_until_serving(admin, &addrs, INIT_WAIT).await?;
                report(&held, "already a cluster of these nodes", as_json);
                return Ok(());
            }
            let layout =
                expect_layout(call_heard(admin, first, Request::Found { members }).await?)?;
            // Return a usable cluster: every founding node has heard of the layout, serves
            // the ring and sees every member alive (gossip takes a few rounds): a client
            // started right after gets the whole cluster, not two of three nodes.
            wait_until_serving(admin, &addrs, INIT_WAIT).await?;
            report(&layout, "founded a cluster", as_json);
            Ok(())
        }
        ClusterCommand::Join {
            addr,
            weight,
            zone,
            commit,
        } => {
            if weight == Some(0) {
                bail!("--weight starts at 1");
            }
            let mut member = admin.member_at(&addr, weight).await?;
            if let Some(zone) = zone {
                member.zone = zone::parse(&zone)?;
            }
            let (layout, _) = admin.founded_layout().await?;
            refuse_taken_address(&layout, member.id, &member.addr)?;
            let change = Change::Join {
                id: member.id,
                addr: member.addr,
                weight: member.weight,
                zone: member.zone,
            };
            if !commit {
                return stage(admin, change, as_json).await;
            }
            join_and_commit(admin, &layout, change, as_json).await
        }
        ClusterCommand::Zone { node, zone } => {
            let zone = zone::parse(&zone)?;
            let (layout, _) = admin.founded_layout().await?;
            let id = Admin::resolve(&layout, &node)?.id;
            stage(admin, Change::Zone { id, zone }, as_json).await
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
        ClusterCommand::Layout => {
            let (layout, _) = admin.founded_layout().await?;
            report(&layout, "layout", as_json);
            if !as_json {
                for m in &layout.members {
                    println!(
                        "  member {}  {}  weight {}  zone {:?}",
                        m.id, m.addr, m.weight, m.zone
                    );
                }
                for change in &layout.staged {
                    println!("  staged: {}", describe(&layout, change));
                }
                if let Some(t) = &layout.transition {
                    println!("  transfer {} under way: {:?}", t.id, t.phase);
                }
            }
            Ok(())
        }
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
            let missing = match admin.call(addr, Request::Ring).await {
                // Serving the founded ring, and seeing every member of it alive: a client
                // that fetches the ring from this node can use the whole cluster at once.
                Ok(Response::Ring(snapshot)) if !snapshot.config.members.is_empty() => {
                    let missing: Vec<String> = snapshot
                        .config
                        .members
                        .iter()
                        .filter(|m| !snapshot.alive.contains(&m.id))
                        .map(|m| format!("{} ({})", m.addr, m.id))
                        .collect();
                    if missing.is_empty() {
                        break;
                    }
                    format!("it does not see {} alive yet", missing.join(", "))
                }
                Ok(Response::Ring(_)) => "it does not serve the founded ring yet".to_string(),
                Ok(other) => bail!("{addr} answered a ring request with {other:?}"),
                Err(e) => format!("{e:#}"),
            };
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the cluster is founded, but after {timeout:?} {addr} is not ready: {missing}"
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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

/// How long a membership command waits for gossip to hear of a node it names.
const HEAR_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends a membership `request`, again while the node refuses it because gossip has not yet
/// heard of a node it names (a node started a moment ago), for up to [`HEAR_WAIT`].
async fn call_heard(admin: &Admin, addr: &str, request: Request) -> anyhow::Result<Response> {
    let deadline = tokio::time::Instant::now() + HEAR_WAIT;
    loop {
        let answer = admin.call(addr, request.clone()).await;
        let unheard = answer.as_ref().err().is_some_and(|e| {
            matches!(
                e.downcast_ref::<ringkv::Error>(),
                Some(ringkv::Error::Server(WireError::Layout {
                    error: Some(
                        LayoutError::ZonesUnheard { .. } | LayoutError::ExpiryUnheard { .. }
                    ),
                    ..
                }))
            )
        });
        if !unheard || tokio::time::Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// How long a membership command waits for the members to take the layout it made.
const CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends a membership `request` to the node at `addr` and returns the layout it made, once
/// the members hold it (see [`confirm_kept`]).
pub(crate) async fn submit(admin: &Admin, addr: &str, request: Request) -> anyhow::Result<Layout> {
    let layout = expect_layout(call_heard(admin, addr, request).await?)?;
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

pub(crate) fn describe(layout: &Layout, change: &Change) -> String {
    let addr = |id| {
        layout
            .members
            .iter()
            .find(|m: &&Member| m.id == id)
            .map_or_else(|| id.to_string(), |m| m.addr.clone())
    };
    match change {
        Change::Join {
            id,
            addr,
            weight,
            zone,
        } if zone.is_empty() => format!("join {addr} (node {id}, weight {weight})"),
        Change::Join {
            id,
            addr,
            weight,
            zone,
        } => format!("join {addr} (node {id}, weight {weight}, zone {zone})"),
        Change::Leave { id } => format!("leave {} (node {id})", addr(*id)),
        Change::Weight { id, weight } => format!("weight of {} (node {id}) to {weight}", addr(*id)),
        Change::Zone { id, zone } => format!(
            "zone of {} (node {id}) to {}",
            addr(*id),
            if zone.is_empty() { "none" } else { zone }
        ),
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
                "members": layout.members.iter().map(|m| json!({ "node": m.id.to_string(), "address": m.addr, "weight": m.weight, "zone": m.zone })).collect::<Vec<_>>(),
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
