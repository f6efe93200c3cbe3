//! The client as quorum coordinator (DESIGN.md §5).
//!
//! Every call starts with a [`Plan`]: the key's targets under the current ring and health
//! (`ringkv_core::targets`: the first `n` healthy nodes of the preference list, fallbacks
//! standing in for unreachable home replicas; or, for `pr`/`pw` calls, the healthy home
//! replicas only) and the number of acknowledgements it needs. Too few targets: the call fails
//! at once with `Unavailable`, without sending anything.
//!
//! - **Read** (`R`): `Get` to every target in parallel; after `R` answers (a "not found" is an
//!   answer, and a fallback answers with the hints it holds) their states are merged and
//!   returned. Read repair then waits, in the background and until the call's deadline, for
//!   the other targets, merges everything, and sends the result to every target whose copy
//!   differs (to a fallback, as a hint).
//! - **Write** (`W`): `Put` to the first target, which stamps the write (a new dot) and returns
//!   the new state; if it fails or does not answer within `request_timeout`, the next target
//!   coordinates instead, with the same write id, so that a write that was applied after all
//!   is recognised as the same one. The state then goes with `Merge` to the remaining targets
//!   in parallel (with a hint to fallbacks); the call succeeds once `W` targets hold it and
//!   returns a receipt naming home and fallback acknowledgements. Merges still under way go on
//!   in the background.
//! - **Durable writes** (`dw`, or nodes with `fsync` durability): every request carries
//!   `sync`, and the call waits for `max(w, dw)`. The stamping replica answers the `Put` at
//!   once (`defer_sync`); if its copy still has to be synced it says so (`pending_sync`) and
//!   gets a `Merge` too, which waits for its sync in parallel with the other replicas': one
//!   round of log syncs, not two in a row.
//! - **LWW buckets** skip the stamp: the client builds the one-sibling state and sends it with
//!   `Merge` to every target at once: one round trip.
//!
//! Failed calls are retried (errors that may pass only: unreachable nodes, quorum misses,
//! timeouts) with jittered exponential back-off within the call's deadline; a write keeps its
//! write id across retries. A response carrying another ring epoch triggers a background ring
//! refetch; a request refused with `StaleRing` refetches and retries at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ringkv_core::quorum::{Quorum, QuorumState};
use ringkv_core::targets::{sloppy_targets, strict_targets};
use ringkv_core::wire::{Request, Response, WireError};
use ringkv_core::{
    BucketProps, ConflictPolicy, Context, Dot, Member, NodeId, RingEpoch, SiblingSet,
};
use tokio::time::Instant;
use tracing::field::{Empty, display};
use tracing::{Instrument as _, Span, debug, debug_span, warn};

use crate::client::Inner;
use crate::error::{Error, NodeError, Result};
use crate::health::Verdict;
use crate::options::{ReadOptions, WriteOptions};
use crate::value::{Value, WriteReceipt};

/// One replica a call goes to, owned (the plan outlives the ring snapshot it came from).
#[derive(Clone, Debug)]
struct Target {
    member: Member,
    /// For a fallback: the home replica it stands in for.
    hint: Option<NodeId>,
}

/// Where a call goes and how many answers it needs.
#[derive(Debug)]
struct Plan {
    props: BucketProps,
    epoch: RingEpoch,
    targets: Vec<Target>,
    /// Healthy nodes after the targets in the preference list (sloppy calls only): a write
    /// whose copy to a target fails sends it to the next spare instead, with a hint, so that
    /// a crash the client had not yet noticed still leaves `n` copies and a hint to hand off.
    spares: Vec<Member>,
    required: usize,
}

type Answer = (Target, Result<(Response, RingEpoch)>);
type Pending = FuturesUnordered<Pin<Box<dyn Future<Output = Answer> + Send>>>;

/// Reads `key`; see the module docs.
pub(crate) async fn get(
    inner: &Arc<Inner>,
    bucket: &str,
    key: Bytes,
    opts: &ReadOptions,
) -> Result<Value> {
    let started = Instant::now();
    let deadline = started + opts.timeout.unwrap_or(inner.config.timeout);
    let span = debug_span!(
        "ringkv.get",
        bucket,
        key_len = key.len(),
        targets = Empty,
        answered = Empty,
        repaired = Empty
    );
    let attempts = with_retries(inner, deadline, || {
        get_once(inner, bucket, key.clone(), opts, deadline)
    });
    let result = tokio::time::timeout_at(deadline, attempts)
        .instrument(span)
        .await
        .unwrap_or(Err(Error::Timeout { in_doubt: false }));
    inner.stats.read(started.elapsed(), result.is_ok());
    result
}

/// Writes `value` (`None`: a delete) to `key`; see the module docs.
pub(crate) async fn write(
    inner: &Arc<Inner>,
    bucket: &str,
    key: Bytes,
    value: Option<Bytes>,
    context: Option<&Context>,
    opts: &WriteOptions,
) -> Result<WriteReceipt> {
    let started = Instant::now();
    let deadline = started + opts.timeout.unwrap_or(inner.config.timeout);
    let request = WriteRequest {
        bucket,
        key,
        value,
        context: context.map(|c| c.version_vector().clone()),
        write_id: crate::random::next_u64(),
        sent: Arc::new(AtomicBool::new(false)),
    };
    let span = debug_span!(
        "ringkv.write",
        bucket,
        key_len = request.key.len(),
        delete = request.value.is_none(),
        targets = Empty,
        home_acks = Empty,
        fallback_acks = Empty
    );
    let attempts = with_retries(inner, deadline, || write_once(inner, &request, opts));
    let result = match tokio::time::timeout_at(deadline, attempts)
        .instrument(span.clone())
        .await
    {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout { in_doubt: false }),
    };
    let fallbacks = result.as_ref().map_or(0, |r| r.fallback.len());
    if let Ok(receipt) = &result
        && !span.is_disabled()
    {
        span.record("home_acks", display(ids(&receipt.home)));
        span.record("fallback_acks", display(ids(&receipt.fallback)));
    }
    inner
        .stats
        .write(started.elapsed(), result.is_ok(), fallbacks);
    // Once any attempt reached a node, a failed write may have been applied.
    result.map_err(|e| mark_in_doubt(e, request.sent.load(Ordering::Acquire)))
}

/// Runs `op`, again after a jittered back-off while it fails with a retryable error and the
/// deadline allows, at most `retries` more times; a `StaleRing` refusal refetches the ring and
/// retries at once (once).
async fn with_retries<T, F, Fut>(inner: &Arc<Inner>, deadline: Instant, op: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0u32;
    let mut refetched = false;
    // The last error that says what happened at the replicas, so that a retry that ends in
    // `Unavailable` (nothing sent) cannot hide an earlier attempt that reached some of them.
    let mut informative: Option<Error> = None;
    loop {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        if let Some(newer) = stale_ring(&error)
            && !refetched
        {
            debug!(%newer, "a node refused a request routed by an older ring; refetching");
            refetched = true;
            inner
                .ring
                .refresh(&inner.pool, inner.config.connect_timeout, newer)
                .await?;
            continue;
        }
        let error = match error {
            Error::Unavailable { .. } if informative.is_some() => {
                informative.take().unwrap_or(error)
            }
            other => other,
        };
        let pause = backoff(attempt);
        // `Unavailable` comes from what the client already knows about the replicas, before
        // anything is sent; a retry milliseconds later would know the same (probes take a
        // back-off period), so the call fails fast instead, as strict mode promises.
        let unavailable = matches!(error, Error::Unavailable { .. });
        if unavailable
            || !error.is_retryable()
            || attempt >= inner.config.retries
            || Instant::now() + pause >= deadline
        {
            return Err(error);
        }
        debug!(attempt, error = %error, "retrying");
        inner.stats.retries.fetch_add(1, Ordering::Relaxed);
        if matches!(error, Error::Quorum { .. }) {
            informative = Some(error);
        }
        attempt += 1;
        tokio::time::sleep(pause).await;
    }
}

/// `[ed14..., 9ebc...]`: node ids for a span field.
fn ids(nodes: &[NodeId]) -> String {
    let ids: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    format!("[{}]", ids.join(", "))
}

fn target_ids(targets: &[Target]) -> String {
    ids(&targets.iter().map(|t| t.member.id).collect::<Vec<_>>())
}

/// Back-off before retry `attempt` (0-based): 25 ms doubling, capped at 500 ms, ±50% jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(25).saturating_mul(1 << attempt.min(5));
    base.min(Duration::from_millis(500))
        .mul_f64(crate::random::jitter())
}

/// The newest ring epoch a `StaleRing` refusal in `e` named, if any.
fn stale_ring(e: &Error) -> Option<RingEpoch> {
    match e {
        Error::Server(WireError::StaleRing { epoch }) => Some(*epoch),
        Error::Quorum { errors, .. } => errors.iter().filter_map(|n| stale_ring(&n.error)).max(),
        _ => None,
    }
}

fn mark_in_doubt(e: Error, sent: bool) -> Error {
    match e {
        Error::Quorum {
            required,
            succeeded,
            errors,
            in_doubt,
        } => Error::Quorum {
            required,
            succeeded,
            errors,
            in_doubt: in_doubt || sent,
        },
        Error::Timeout { in_doubt } => Error::Timeout {
            in_doubt: in_doubt || sent,
        },
        other => other,
    }
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

/// Which kind of call a plan is for, with its sloppy and strict quorum sizes as asked.
struct Ask {
    name: &'static str,
    strict_name: &'static str,
    sloppy: Option<u8>,
    strict: Option<u8>,
    /// Durable acknowledgements asked for (`dw`, writes only; 0: none): the call waits for
    /// at least this many.
    durable: u8,
}

fn plan(inner: &Arc<Inner>, bucket: &str, key: &[u8], ask: Ask) -> Result<Plan> {
    let cluster = inner.ring.current();
    let ring = &cluster.ring;
    if ring.members().is_empty() {
        return Err(Error::NoRing {
            tried: Vec::new(),
            reason: "the ring has no members".into(),
        });
    }
    let props = *ring.bucket(bucket);
    let default = if ask.name == "r" { props.r } else { props.w };
    let mut required = quorum(ask.name, ask.sloppy.unwrap_or(default), &props, bucket)?;
    if ask.durable > 0 {
        required = required.max(quorum("dw", ask.durable, &props, bucket)?);
    }
    let strict = ask
        .strict
        .map(|p| quorum(ask.strict_name, p, &props, bucket))
        .transpose()?;
    let healthy = |id: NodeId| match inner.health.check(id, &cluster.alive) {
        Verdict::Up => true,
        Verdict::Down => false,
        Verdict::Probe => {
            inner.probe(id);
            false
        }
    };
    // One walk of the preference list: the targets first, then (sloppy calls) the spares
    // from where the targets stopped. During a transfer, a write also goes to the homes the
    // other ring gives the key, which count on top of its quorum (see `Ring::route`).
    let route = ring.route(bucket, key);
    let n = usize::from(props.n);
    let extra = if ask.name == "w" {
        route.extra_homes
    } else {
        Vec::new()
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
    required += extra.len();
    let strict = strict.map(|s| s + extra.len());
    required = required.max(strict.unwrap_or(0));
    if targets.len() < required {
        return Err(Error::Unavailable {
            required,
            alive: targets.len(),
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

/// Sends one request to one target, within `request_timeout`, and feeds the outcome to the
/// failure detector.
fn send(
    inner: &Arc<Inner>,
    target: Target,
    epoch: RingEpoch,
    body: Request,
) -> Pin<Box<dyn Future<Output = Answer> + Send>> {
    let inner = inner.clone();
    Box::pin(async move {
        let call = inner.pool.call(
            &target.member.addr,
            inner.config.connect_timeout,
            epoch,
            body,
        );
        let result = match tokio::time::timeout(inner.config.request_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout { in_doubt: true }),
        };
        inner
            .health
            .record(target.member.id, result.as_ref().map(|_| ()));
        if let Ok((_, seen)) = &result {
            inner.note_epoch(*seen);
        }
        (target, result)
    })
}

fn node_error(target: &Target, error: Error) -> NodeError {
    NodeError {
        node: target.member.id,
        error: Box::new(error),
    }
}

async fn get_once(
    inner: &Arc<Inner>,
    bucket: &str,
    key: Bytes,
    opts: &ReadOptions,
    deadline: Instant,
) -> Result<Value> {
    let ask = Ask {
        name: "r",
        strict_name: "pr",
        sloppy: opts.r.or(inner.config.r),
        strict: opts.pr.or(inner.config.pr),
        durable: 0,
    };
    let plan = plan(inner, bucket, &key, ask)?;
    // Span fields are formatted only when someone listens: this is the hot path.
    let span = Span::current();
    if !span.is_disabled() {
        span.record("targets", display(target_ids(&plan.targets)));
    }
    let mut pending: Pending = plan
        .targets
        .iter()
        .map(|t| {
            send(
                inner,
                t.clone(),
                plan.epoch,
                Request::Get {
                    bucket: bucket.into(),
                    key: key.clone(),
                },
            )
        })
        .collect();
    let mut tally = Quorum::new(plan.required, plan.targets.len());
    let mut answers: Vec<(Target, Option<SiblingSet>)> = Vec::with_capacity(plan.targets.len());
    let mut errors = Vec::new();
    while tally.state() == QuorumState::Pending {
        let Some((target, result)) = pending.next().await else {
            break;
        };
        match result {
            Ok((Response::Value { state }, _)) => {
                answers.push((target, state));
                tally.succeed();
            }
            Ok((other, _)) => {
                errors.push(node_error(&target, unexpected("Get", &other)));
                tally.fail();
            }
            Err(e) if e.is_about_the_request() => return Err(e),
            Err(e) => {
                errors.push(node_error(&target, e));
                tally.fail();
            }
        }
    }
    if tally.state() != QuorumState::Reached {
        return Err(Error::Quorum {
            required: plan.required,
            succeeded: tally.succeeded(),
            errors,
            in_doubt: false,
        });
    }
    if !span.is_disabled() {
        let answered: Vec<Target> = answers.iter().map(|(t, _)| t.clone()).collect();
        span.record("answered", display(target_ids(&answered)));
    }
    let mut merged = SiblingSet::new();
    for state in answers.iter().filter_map(|(_, s)| s.as_ref()) {
        merged.merge(state, plan.props.conflict);
    }
    let live = merged.live_count();
    if live > inner.config.sibling_warning {
        inner.stats.sibling_warnings.fetch_add(1, Ordering::Relaxed);
        warn!(
            bucket,
            siblings = live,
            "read returned many siblings: is the application resolving them?"
        );
    }
    let value = Value::new(
        merged.live().filter_map(|s| s.value.clone()).collect(),
        Context::new(merged.version_vector().clone()),
    );
    if inner.config.read_repair {
        let repair = Repair {
            inner: inner.clone(),
            bucket: bucket.to_string(),
            key,
            plan,
            answers,
            merged,
            deadline,
        };
        // Inside the call's span, which so lasts until the repair is done and can say it.
        tokio::spawn(repair.run(pending).instrument(span));
    }
    Ok(value)
}

/// Read repair after a read returned: see the module docs.
struct Repair {
    inner: Arc<Inner>,
    bucket: String,
    key: Bytes,
    plan: Plan,
    answers: Vec<(Target, Option<SiblingSet>)>,
    merged: SiblingSet,
    deadline: Instant,
}

impl Repair {
    async fn run(mut self, mut pending: Pending) {
        while let Ok(Some((target, result))) =
            tokio::time::timeout_at(self.deadline, pending.next()).await
        {
            if let Ok((Response::Value { state }, _)) = result {
                if let Some(state) = &state {
                    self.merged.merge(state, self.plan.props.conflict);
                }
                self.answers.push((target, state));
            }
        }
        if self.merged == SiblingSet::default() {
            return; // Nothing anywhere: nothing to repair.
        }
        let mut repairs: Pending = FuturesUnordered::new();
        let stale = self
            .answers
            .iter()
            .filter(|(_, state)| state.as_ref() != Some(&self.merged))
            .count();
        Span::current().record("repaired", stale);
        for (target, state) in self.answers {
            if state.as_ref() != Some(&self.merged) {
                debug!(node = %target.member.id, bucket = self.bucket, "read repair");
                self.inner
                    .stats
                    .read_repairs
                    .fetch_add(1, Ordering::Relaxed);
                let body = Request::Merge {
                    bucket: self.bucket.clone(),
                    key: self.key.clone(),
                    state: self.merged.clone(),
                    hint: target.hint,
                    sync: false,
                };
                repairs.push(send(&self.inner, target, self.plan.epoch, body));
            }
        }
        while let Ok(Some((target, result))) =
            tokio::time::timeout_at(self.deadline, repairs.next()).await
        {
            if let Err(e) = result {
                debug!(node = %target.member.id, error = %e, "read repair failed");
            }
        }
    }
}

/// What one write is, the same across its retries.
struct WriteRequest<'a> {
    bucket: &'a str,
    key: Bytes,
    value: Option<Bytes>,
    context: Option<ringkv_core::VersionVector>,
    write_id: u64,
    /// Set once any request of this write may have been applied by a node (it was answered,
    /// or it failed in a way that does not prove it was not).
    sent: Arc<AtomicBool>,
}

async fn write_once(
    inner: &Arc<Inner>,
    write: &WriteRequest<'_>,
    opts: &WriteOptions,
) -> Result<WriteReceipt> {
    let ask = Ask {
        name: "w",
        strict_name: "pw",
        sloppy: opts.w.or(inner.config.w),
        strict: opts.pw.or(inner.config.pw),
        durable: opts.dw.or(inner.config.dw).unwrap_or(0),
    };
    // With `dw`, every replica asked syncs before it acknowledges, so each acknowledgement
    // counted is a durable one.
    let sync = ask.durable > 0;
    let plan = plan(inner, write.bucket, &write.key, ask)?;
    let span = Span::current();
    if !span.is_disabled() {
        span.record("targets", display(target_ids(&plan.targets)));
    }
    let mut tally = Quorum::new(plan.required, plan.targets.len() + plan.spares.len());
    let mut errors = Vec::new();
    let mut receipt = WriteReceipt::default();
    let mut spares = plan.spares.iter().cloned();
    // A spare stands in for a failed target: for the home replica itself, or for the home the
    // failed fallback stood in for.
    let mut replacement = |failed: &Target| {
        spares.next().map(|member| Target {
            member,
            hint: Some(failed.hint.unwrap_or(failed.member.id)),
        })
    };
    let mut failed_coordinators = Vec::new();

    let (state, others) = if plan.props.conflict == ConflictPolicy::Lww {
        let counter = inner.lww_counter.fetch_add(1, Ordering::Relaxed) + 1;
        let dot = Dot {
            node: inner.lww_actor,
            counter,
        };
        (
            SiblingSet::lww(dot, now_ms(), write.value.clone()),
            plan.targets.clone(),
        )
    } else {
        // Stamp at the first target that answers.
        let overwrite = opts.overwrite || (write.value.is_none() && write.context.is_none());
        let mut stamped = None;
        // A stamp that still has to be synced counts once its Merge (which waits for the
        // sync, in parallel with the other replicas' merges) answers.
        let mut confirm = None;
        let mut remaining = plan.targets.iter().cloned();
        for target in remaining.by_ref() {
            let body = Request::Put {
                bucket: write.bucket.into(),
                key: write.key.clone(),
                context: write.context.clone(),
                value: write.value.clone(),
                overwrite,
                write_id: Some(write.write_id),
                hint: target.hint,
                sync,
                defer_sync: true,
            };
            let (target, result) = send(inner, target, plan.epoch, body).await;
            if result.as_ref().map_or_else(may_have_applied, |_| true) {
                write.sent.store(true, Ordering::Release);
            }
            match result {
                Ok((
                    Response::Stamped {
                        state,
                        pending_sync,
                    },
                    _,
                )) => {
                    if pending_sync {
                        confirm = Some(target);
                    } else {
                        acknowledge(&mut receipt, &target);
                        tally.succeed();
                    }
                    stamped = Some(state);
                    break;
                }
                Ok((other, _)) => errors.push(node_error(&target, unexpected("Put", &other))),
                Err(e) if e.is_about_the_request() => return Err(e),
                Err(e) => errors.push(node_error(&target, e)),
            }
            failed_coordinators.push(target);
            if tally.fail() == QuorumState::Failed {
                break;
            }
        }
        let Some(state) = stamped else {
            let in_doubt = errors.iter().any(|e| may_have_applied(&e.error));
            return Err(Error::Quorum {
                required: plan.required,
                succeeded: 0,
                errors,
                in_doubt,
            });
        };
        let mut others: Vec<Target> = confirm.into_iter().chain(remaining).collect();
        others.extend(failed_coordinators.iter().filter_map(&mut replacement));
        (state, others)
    };

    // Replicate with Merge. Spawned, so that merges still running when the quorum is reached
    // complete anyway: every target should hold the write, not just W of them.
    let (tx, mut rx) = tokio::sync::mpsc::channel(plan.targets.len() + plan.spares.len());
    let launch = |target: Target| {
        let body = Request::Merge {
            bucket: write.bucket.into(),
            key: write.key.clone(),
            state: state.clone(),
            hint: target.hint,
            sync,
        };
        let reply = send(inner, target, plan.epoch, body);
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(reply.await).await;
        });
    };
    let mut outstanding = 0;
    for target in others {
        write.sent.store(true, Ordering::Release);
        launch(target);
        outstanding += 1;
    }
    while tally.state() == QuorumState::Pending && outstanding > 0 {
        let Some((target, result)) = rx.recv().await else {
            break;
        };
        outstanding -= 1;
        match result {
            Ok((Response::Merged, _)) => {
                acknowledge(&mut receipt, &target);
                tally.succeed();
            }
            Ok((other, _)) => {
                errors.push(node_error(&target, unexpected("Merge", &other)));
                tally.fail();
            }
            Err(e) if e.is_about_the_request() && tally.succeeded() == 0 => return Err(e),
            Err(e) => {
                if let Some(spare) = replacement(&target) {
                    launch(spare);
                    outstanding += 1;
                }
                errors.push(node_error(&target, e));
                tally.fail();
            }
        }
    }
    if tally.state() == QuorumState::Reached {
        Ok(receipt)
    } else {
        // The stamping target holds the write (or, for lww, any target that timed out may).
        let in_doubt = tally.succeeded() > 0 || errors.iter().any(|e| may_have_applied(&e.error));
        Err(Error::Quorum {
            required: plan.required,
            succeeded: tally.succeeded(),
            errors,
            in_doubt,
        })
    }
}

fn acknowledge(receipt: &mut WriteReceipt, target: &Target) {
    match target.hint {
        None => receipt.home.push(target.member.id),
        Some(_) => receipt.fallback.push(target.member.id),
    }
}

/// Whether a replica that failed this way may still have applied the request: only errors
/// that prove it was refused (or never sent) say no.
fn may_have_applied(e: &Error) -> bool {
    !matches!(
        e,
        Error::Server(_)
            | Error::Unreachable { .. }
            | Error::InvalidArgument(_)
            | Error::ContextRequired { .. }
    )
}

fn unexpected(request: &str, response: &Response) -> Error {
    Error::Protocol(format!("{request} answered with {response:?}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
