//! `ringkv bucket ...`: bucket settings, held in the cluster's committed layout.
//!
//! `create` and `set` take effect through any node, naming the layout version they were based
//! on like every membership change. A new `n` is a planned transfer (`ringkv handoff
//! --watch` shows it); `r` and `w` defaults change at once; the conflict policy never changes.

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use ringkv::transport::{Request, Response};
use ringkv_core::{BucketProps, Buckets, ConflictPolicy, Layout};
use serde_json::json;

use crate::admin::Admin;
use crate::cluster::{report, submit};

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// Create a bucket; what is not given is the default bucket's.
    Create {
        name: String,
        #[command(flatten)]
        props: PropsArgs,
    },
    /// Change a bucket: `--n` (a planned transfer), `--r`, `--w` and `--ttl` (at once).
    Set {
        name: String,
        #[command(flatten)]
        props: PropsArgs,
    },
    /// Every bucket with settings of its own, and the default.
    List,
}

/// Bucket properties on the command line; each one left out keeps its value.
#[derive(Debug, clap::Args)]
pub struct PropsArgs {
    /// Replicas per key.
    #[arg(long)]
    n: Option<u8>,
    /// Default read quorum.
    #[arg(long)]
    r: Option<u8>,
    /// Default write quorum.
    #[arg(long)]
    w: Option<u8>,
    /// What concurrent writes become: `siblings` (kept, the application merges) or `lww`
    /// (the latest timestamp wins, the others are dropped). Fixed once the bucket exists.
    #[arg(long, value_enum)]
    conflict: Option<Conflict>,
    /// Values written without a time to live of their own expire this long after they are
    /// written: `90s`, `30m`, `2h`, `7d`... Every node must speak protocol 9.
    #[arg(long, value_parser = crate::data::parse_ttl, conflicts_with = "no_ttl")]
    ttl: Option<std::time::Duration>,
    /// Values written without a time to live of their own never expire (the default).
    #[arg(long)]
    no_ttl: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Conflict {
    Siblings,
    Lww,
}

impl PropsArgs {
    fn over(&self, mut props: BucketProps) -> BucketProps {
        props.n = self.n.unwrap_or(props.n);
        props.r = self.r.unwrap_or(props.r);
        props.w = self.w.unwrap_or(props.w);
        if let Some(conflict) = self.conflict {
            props.conflict = match conflict {
                Conflict::Siblings => ConflictPolicy::Siblings,
                Conflict::Lww => ConflictPolicy::Lww,
            };
        }
        if let Some(ttl) = self.ttl {
            props.ttl_ms = Some(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        }
        if self.no_ttl {
            props.ttl_ms = None;
        }
        props
    }
}

pub async fn run(admin: &Admin, command: BucketCommand, as_json: bool) -> anyhow::Result<()> {
    let (layout, addr) = admin.founded_layout().await?;
    let table = table(admin, &layout, &addr).await?;
    match command {
        BucketCommand::List => {
            list(&table, as_json);
            Ok(())
        }
        BucketCommand::Create { name, props } => {
            let props = props.over(table.default);
            if props.conflict != table.props(&name).conflict {
                check_unused(admin, &layout, &name).await?;
            }
            change(admin, &layout, &addr, name, props, true, as_json).await
        }
        BucketCommand::Set { name, props } => {
            let Some(now) = table.named.get(&name) else {
                bail!("there is no bucket {name:?}: `ringkv bucket create` makes one");
            };
            let props = props.over(*now);
            change(admin, &layout, &addr, name, props, false, as_json).await
        }
    }
}

async fn change(
    admin: &Admin,
    layout: &Layout,
    addr: &str,
    name: String,
    props: BucketProps,
    create: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let before = layout.ring_version;
    let request = Request::Bucket {
        name: name.clone(),
        props,
        create,
        base: layout.version,
    };
    let layout = submit(admin, addr, request).await?;
    let what = if create { "created" } else { "changed" };
    report(&layout, &format!("bucket {name:?} {what}"), as_json);
    if !as_json && layout.ring_version != before {
        println!("its keys are streaming to their new homes: `ringkv handoff --watch` shows it");
    }
    Ok(())
}

/// A bucket created with another conflict policy than the one its keys would have been
/// written under so far must hold no keys anywhere: every member is asked (a copy or a hint
/// counts; during a transfer the previous members too, except those removed), and one that
/// cannot be asked stops the creation.
async fn check_unused(admin: &Admin, layout: &Layout, name: &str) -> anyhow::Result<()> {
    let previous = layout.transition.iter().flat_map(|t| {
        t.previous
            .iter()
            .filter(move |m| !t.is_removed(m.id) && layout.member(m.id).is_none())
    });
    for member in layout.members.iter().chain(previous) {
        let request = Request::HoldsBucket {
            bucket: name.to_string(),
        };
        match admin.call(&member.addr, request).await {
            Ok(Response::HoldsBucket { holds: false }) => {}
            Ok(Response::HoldsBucket { holds: true }) => bail!(
                "bucket {name:?} already holds keys on {} (written under the default conflict \
                 policy): it cannot be created with another; choose a new name",
                member.addr
            ),
            Ok(other) => bail!("{} answered a bucket check with {other:?}", member.addr),
            Err(e) => bail!(
                "cannot check that bucket {name:?} is unused on {} ({e:#}): it is created with \
                 another conflict policy only once every member says it holds none of its keys",
                member.addr
            ),
        }
    }
    Ok(())
}

/// The bucket table in force: the layout's, or, in a layout of an older release that has
/// none, the one the node at `addr` routes by (from the config files).
async fn table(admin: &Admin, layout: &Layout, addr: &str) -> anyhow::Result<Buckets> {
    if let Some(table) = &layout.buckets {
        return Ok(table.clone());
    }
    match admin.call(addr, Request::Ring).await? {
        Response::Ring(snapshot) => Ok(snapshot.config.buckets),
        other => bail!("{addr} answered a ring request with {other:?}"),
    }
}

fn list(table: &Buckets, as_json: bool) {
    let row = |props: &BucketProps| {
        json!({ "n": props.n, "r": props.r, "w": props.w,
                "conflict": format!("{:?}", props.conflict).to_lowercase(),
                "ttl_ms": props.ttl_ms })
    };
    let ttl = |p: &BucketProps| {
        p.ttl_ms
            .map_or("-".to_string(), |ms| format!("{}s", ms / 1000))
    };
    if as_json {
        let named: serde_json::Map<String, serde_json::Value> = table
            .named
            .iter()
            .map(|(name, props)| (name.clone(), row(props)))
            .collect();
        println!(
            "{}",
            json!({ "default": row(&table.default), "buckets": named })
        );
        return;
    }
    println!(
        "{:<24} {:>3} {:>3} {:>3}  {:<9} ttl",
        "bucket", "n", "r", "w", "conflict"
    );
    let line = |name: &str, p: &BucketProps| {
        let conflict = format!("{:?}", p.conflict).to_lowercase();
        println!(
            "{name:<24} {:>3} {:>3} {:>3}  {conflict:<9} {}",
            p.n,
            p.r,
            p.w,
            ttl(p)
        );
    };
    line("(every other bucket)", &table.default);
    for (name, props) in &table.named {
        line(name, props);
    }
}
