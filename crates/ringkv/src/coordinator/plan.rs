//! The plan of a call: which replicas it goes to and how many answers it needs.
//!
//! [`plan`] reads the current ring and the failure detector once and decides everything a
//! call's attempt then only carries out: the targets (sloppy or strict), the spares a write
//! falls back on, and the quorum, checked against the bucket's `n` before anything is sent.

use std::sync::Arc;

use ringkv_core::targets::{sloppy_targets, strict_targets};
use ringkv_core::{BucketProps, Member, NodeId, RingEpoch};

use crate::error::{Error, Result};
use crate::health::{self, Verdict};
use crate::inner::Inner;

/// One replica a call goes to, owned (the plan outlives the ring snapshot it came from).
#[derive(Clone, Debug)]
pub(super) struct Target {
    pub(super) member: Member,
    /// For a fallback: the home replica it stands in for.
    pub(super) hint: Option<NodeId>,
}

/// Where a call goes and how many answers it needs.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) props: BucketProps,
    /// The ring the plan was made by; every request of the call carries it, so a node on a
    /// newer ring refuses the request (`StaleRing`) instead of answering for the old one.
    pub(super) epoch: RingEpoch,
    pub(super) targets: Vec<Target>,
    /// Healthy nodes after the targets in the preference list (sloppy calls only): a write
    /// whose copy to a target fails sends it to the next spare instead, with a hint, so that
    /// a crash the client had not yet noticed still leaves `n` copies and a hint to hand off.
    pub(super) spares: Vec<Member>,
    pub(super) required: usize,
}

/// Which kind of call a plan is for, with its sloppy and strict quorum sizes as asked.
pub(super) struct Ask {
    /// The sloppy quorum's name, `r` or `w`: it names the parameter in errors and says
    /// whether the call reads or writes.
    pub(super) name: &'static str,
    /// The strict quorum's name, `pr` or `pw`.
    pub(super) strict_name: &'static str,
    pub(super) sloppy: Option<u8>,
    pub(super) strict: Option<u8>,
    /// Durable acknowledgements asked for (`dw`, writes only; 0: none): the call waits for
    /// at least this many.
    pub(super) durable: u8,
}

/// The plan of one attempt of a call on `key`; fails with `Unavailable` when too few
/// replicas can be asked, and with `InvalidArgument` when a quorum cannot be met by `n`.
pub(super) fn plan(inner: &Arc<Inner>, bucket: &str, key: &[u8], ask: Ask) -> Result<Plan> {
    let cluster = inner.ring.current();
    let ring = &cluster.ring;
    if ring.members().is_empty() {
        return Err(Error::NoRing {
            tried: Vec::new(),
            reason: "the ring has no members".into(),
        });
    }
    let props = *ring.bucket(bucket);
    // During a transfer, a write also goes to the homes the other ring gives the key, which
    // count on top of its quorum (see `Ring::route`).
    let route = ring.route(bucket, key);
    // While a bucket's `n` changes, requests go by the `n` of the side reads use
    // (`route.n`): the bucket's default quorums are met within it, and a quorum valid under
    // either side's `n` is not refused as invalid (it may be unavailable until the switch).
    let reading_n = u8::try_from(route.n).unwrap_or(u8::MAX).max(1);
    let bound = BucketProps {
        n: props.n.max(ring.previous_bucket(bucket).n),
        ..props
    };
    // The default quorums are those of the side reads use (see `Ring::reading_bucket`).
    let reading_props = ring.reading_bucket(bucket);
    let default = if ask.name == "r" {
        reading_props.r
    } else {
        reading_props.w
    }
    .min(reading_n);
    let mut required = quorum(ask.name, ask.sloppy.unwrap_or(default), &bound, bucket)?;
    if ask.durable > 0 {
        required = required.max(quorum("dw", ask.durable, &bound, bucket)?);
    }
    let strict = ask
        .strict
        .map(|p| quorum(ask.strict_name, p, &bound, bucket))
        .transpose()?;
    let healthy = |id: NodeId| match inner.health.check(id, &cluster.alive) {
        Verdict::Up => true,
        Verdict::Down => false,
        Verdict::Probe => {
            health::probe(inner, id);
            false
        }
    };
    // One walk of the preference list: the targets first, then (sloppy calls) the spares
    // from where the targets stopped.
    let n = route.n;
    let (extra, leaving) = if ask.name == "w" {
        (route.extra_homes, route.leaving)
    } else {
        (Vec::new(), 0)
    };
    let mut reading = route.preference;
    let homes: Vec<&Member> = reading.by_ref().take(n).collect();
    let mut preference = homes
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .chain(reading.filter(|m| !extra.iter().any(|e| e.id == m.id)));
    let slots = homes.len() + extra.len();
    let chosen = match strict {
        Some(_) => strict_targets(&mut preference, slots, healthy),
        None => sloppy_targets(&mut preference, slots, healthy),
    };
    let targets: Vec<Target> = chosen
        .into_iter()
        .map(|t| Target {
            member: t.member.clone(),
            hint: t.stands_in_for,
        })
        .collect();
    let spares = match strict {
        Some(_) => Vec::new(),
        None => preference
            .filter(|m| healthy(m.id))
            .take(n)
            .cloned()
            .collect(),
    };
    let on_top = extra.len().max(leaving);
    required += on_top;
    let strict = strict.map(|s| s + on_top);
    required = required.max(strict.unwrap_or(0));
    if targets.len() < required {
        let down = homes
            .iter()
            .chain(&extra)
            .filter(|m| !targets.iter().any(|t| t.member.id == m.id))
            .filter_map(|m| {
                let why = inner.health.explain(m.id, &cluster.alive)?;
                Some(format!("node {} at {}: {why}", m.id, m.addr))
            })
            .collect();
        return Err(Error::Unavailable {
            required,
            alive: targets.len(),
            down,
        });
    }
    Ok(Plan {
        props,
        epoch: ring.epoch(),
        targets,
        spares,
        required,
    })
}

/// A quorum size: per call, else client default, else the bucket's; refused with the
/// parameter named when `n` replicas cannot meet it.
fn quorum(name: &str, value: u8, props: &BucketProps, bucket: &str) -> Result<usize> {
    if value == 0 {
        return Err(Error::InvalidArgument(format!("{name} must be at least 1")));
    }
    if value > props.n {
        return Err(Error::InvalidArgument(format!(
            "{name} = {value} exceeds n = {} of bucket {bucket:?}: a quorum larger than the \
             number of replicas can never be reached",
            props.n
        )));
    }
    Ok(usize::from(value))
}

/// `[ed14..., 9ebc...]`: node ids for a span field.
pub(super) fn ids(nodes: &[NodeId]) -> String {
    let ids: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    format!("[{}]", ids.join(", "))
}

/// The targets' node ids for a span field.
pub(super) fn target_ids<'a>(targets: impl IntoIterator<Item = &'a Target>) -> String {
    ids(&targets.into_iter().map(|t| t.member.id).collect::<Vec<_>>())
}
