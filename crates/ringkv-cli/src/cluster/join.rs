//! `ringkv cluster join`'s guards, and `join --commit`: what lets a node join by itself (a
//! container's entrypoint) without ever joining one that would bring old data back or take
//! another member's place.

use anyhow::bail;
use ringkv::transport::Request;
use ringkv_core::{Change, Layout, NodeId};

use super::{describe, report, stage, submit};
use crate::admin::Admin;

/// `cluster join --commit`: stages the join unless the node is a member or staged already,
/// then commits when every staged change is a join. Repeating it after any failure (a
/// transfer under way, a lost race with another operator) converges: the second run finds
/// the node staged or a member.
pub(super) async fn join_and_commit(
    admin: &Admin,
    layout: &Layout,
    change: Change,
    as_json: bool,
) -> anyhow::Result<()> {
    let Change::Join { id, addr: at, .. } = change.clone() else {
        bail!("`cluster join --commit` commits joins only");
    };
    if layout.members.iter().any(|m| m.id == id) {
        report(layout, &format!("node {id} is already a member"), as_json);
        return Ok(());
    }
    // A node on its way out (or that an operator means to take out) is not joined back by a
    // restart of its own: the operator, who then removes its machine, would take a member.
    let leaving = layout
        .transition
        .as_ref()
        .is_some_and(|t| t.previous.iter().any(|m| m.id == id))
        || layout
            .staged
            .iter()
            .any(|c| matches!(c, Change::Leave { id: l } if *l == id));
    if leaving {
        bail!(
            "node {id} is leaving the cluster: it is not joined again by --commit (an operator \
             can, with `ringkv cluster join` and `commit`, once its departure has settled)"
        );
    }
    // Only an empty node joins by itself. One that holds data was a member before (it left,
    // or was removed while down): its copies and hints are older than what the members know,
    // deleted keys among them whose deletes may be purged since, and joining would bring them
    // back. It must be wiped first (README, "Growing and shrinking the cluster").
    refuse_old_data(admin, id, &at).await?;
    let staged = |layout: &Layout| {
        layout
            .staged
            .iter()
            .any(|c| matches!(c, Change::Join { id: j, .. } if *j == id))
    };
    if !staged(layout) {
        stage(admin, change, as_json).await?;
    }
    let (layout, addr) = admin.founded_layout().await?;
    if layout.members.iter().any(|m| m.id == id) {
        report(&layout, &format!("node {id} is a member"), as_json);
        return Ok(());
    }
    if !staged(&layout) {
        bail!("the join of node {id} was staged, then dropped (`cluster clear`?); run it again");
    }
    // A join of a node that is down would make a transfer that waits for it; one of a node
    // holding old data would bring it back.
    for change in &layout.staged {
        if let Change::Join {
            id: other, addr, ..
        } = change
            && *other != id
        {
            refuse_old_data(admin, *other, addr).await.map_err(|e| {
                anyhow::anyhow!(
                    "node {id}'s join is staged, but so is the join of node {other}, which \
                     cannot join now ({e:#}): commit when it can, or `ringkv cluster clear`"
                )
            })?;
        }
    }
    if let Some(other) = layout
        .staged
        .iter()
        .find(|c| !matches!(c, Change::Join { .. }))
    {
        bail!(
            "node {id}'s join is staged, but so is another change ({}): commit them yourself \
             (`ringkv cluster plan`, then `ringkv cluster commit`)",
            describe(&layout, other)
        );
    }
    let layout = submit(
        admin,
        &addr,
        Request::Commit {
            base: layout.version,
        },
    )
    .await?;
    report(&layout, "committed", as_json);
    if !as_json {
        println!("data is streaming to the new owners: `ringkv handoff --watch` shows it");
    }
    Ok(())
}

/// Refuses node `id` at `addr` if it does not answer (a transfer would wait for it) or holds
/// keys or hints (see [`join_and_commit`]).
async fn refuse_old_data(admin: &Admin, id: NodeId, addr: &str) -> anyhow::Result<()> {
    let stats = admin
        .stats(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{addr} does not answer: {e:#}"))?;
    if stats.node != id {
        bail!("{addr} is now node {}, not node {id}", stats.node);
    }
    if stats.keys > 0 || stats.hints_pending > 0 {
        bail!(
            "node {id} at {addr} holds {} keys and {} hints from before: a node that was a \
             member must be wiped before it joins again (`--commit` joins only empty nodes; an \
             operator may still `ringkv cluster join` it)",
            stats.keys,
            stats.hints_pending
        );
    }
    Ok(())
}

/// Refuses to join node `id` at `addr` where another node is a member or staged to join: a
/// machine that lost its disk comes back there under a new id, and must take the old
/// member's place (`cluster replace`), not become a second member whose transfer would wait
/// for the old one forever.
pub(super) fn refuse_taken_address(layout: &Layout, id: NodeId, addr: &str) -> anyhow::Result<()> {
    let member = layout.members.iter().find(|m| m.addr == addr && m.id != id);
    if let Some(old) = member {
        bail!(
            "{addr} is the address of member {}, and node {id} answers there now (its disk was \
             wiped?): `ringkv cluster replace {} {addr}` puts it in the old member's place",
            old.id,
            old.id
        );
    }
    let staged = layout.staged.iter().any(
        |c| matches!(c, Change::Join { id: other, addr: at, .. } if *other != id && at == addr),
    );
    if staged {
        bail!("another node's join at {addr} is staged: `ringkv cluster clear` it first");
    }
    Ok(())
}
