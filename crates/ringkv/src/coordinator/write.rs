//! Writes: [`write`], a plan and then two steps.
//!
//! - **Stamp** ([`stamp`]): `Put` to the first target, which stamps the write (a new dot) and
//!   answers with the new state; a target that fails or does not answer within
//!   `request_timeout` is replaced by the next one, with the same write id, so that a write
//!   applied after all is recognised as the same one.
//! - **Replicate** ([`replicate`]): the state goes with `Merge` to the other targets in
//!   parallel (with a hint to fallbacks); a spare replaces each target whose copy fails. The
//!   call returns after `W` acknowledgements; the merges still under way finish in the
//!   background.
//! - **LWW buckets** skip the stamp: [`lww_state`] builds the one-sibling state from the
//!   client's own dot, and the replicate step sends it to every target: one round trip.
//!
//! A failed write says whether it may have been applied all the same (`in_doubt`): once any
//! request of it, in any attempt, may have reached a node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ringkv_core::quorum::{Quorum, QuorumState};
use ringkv_core::wire::{Request, Response};
use ringkv_core::{ConflictPolicy, Context, Member, NodeId, SiblingSet, VersionVector};
use tokio::time::Instant;
use tracing::field::{Empty, display};
use tracing::{Instrument as _, Span, debug_span};

use super::fanout::{Fanout, Leftovers, node_error, send};
use super::plan::{Ask, Plan, Target, ids, plan, target_ids};
use super::retry::with_retries;
use crate::error::{Error, NodeError, Result};
use crate::inner::Inner;
use crate::options::{ReadOptions, WriteOptions};
use crate::value::{Value, WriteReceipt};

/// Writes `value` (`None`: a delete) to `key`; see the module docs.
pub(crate) async fn write(
    inner: &Arc<Inner>,
    bucket: &str,
    key: Bytes,
    value: Option<Bytes>,
    context: Option<&Context>,
    opts: &WriteOptions,
) -> Result<WriteReceipt> {
    if opts.ttl.is_some_and(|ttl| ttl.is_zero()) {
        return Err(Error::InvalidArgument(
            "a time to live must be positive".into(),
        ));
    }
    let started = Instant::now();
    let deadline = started + opts.timeout.unwrap_or(inner.config.timeout);
    let value_is_none = value.is_none();
    let mut request = WriteRequest {
        bucket,
        key,
        value,
        context: context.map(|c| c.version_vector().clone()),
        // A delete without a context deletes every version the stamping replica holds too,
        // on top of what the home read below saw (which may miss what that replica has).
        overwrite: opts.overwrite || (value_is_none && context.is_none()),
        write_id: crate::random::next_u64(),
        ttl_ms: opts
            .ttl
            .filter(|_| !value_is_none)
            .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)),
        sent: Arc::new(AtomicBool::new(false)),
    };
    // A delete or overwrite without a context is made with what the key's home replicas hold
    // (see `home_context`); nothing has been sent yet if that read fails.
    if request.context.is_none() && (opts.overwrite || request.value.is_none()) {
        match home_context(inner, bucket, &request.key, deadline).await {
            Ok(context) => request.context = context,
            Err(e) => {
                inner.stats.write(started.elapsed(), false, 0);
                return Err(e);
            }
        }
    }
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

/// The context a delete or overwrite made without one is stamped with: what `r` home
/// replicas of the key hold, read strictly (fallbacks are not asked, whatever the caller's
/// own `r`). Stamped with the stamping node's own history alone, such a write covers nothing
/// when that node lacks the key (a fallback while the homes are down, a stale home): the old
/// value outlives the acknowledged delete and reads back once the homes return. With
/// `r + w > n`, `r` homes have seen every write that `w` homes acknowledged. Fails with
/// `Unavailable` when fewer than `r` homes are up. `None` for `lww` buckets, whose writes are
/// ordered by time, not by context.
async fn home_context(
    inner: &Arc<Inner>,
    bucket: &str,
    key: &Bytes,
    deadline: Instant,
) -> Result<Option<VersionVector>> {
    let props = *inner.ring.current().ring.bucket(bucket);
    if props.conflict == ConflictPolicy::Lww {
        return Ok(None);
    }
    let r = props.r.max(inner.config.r.unwrap_or(0)).min(props.n);
    let remaining = deadline.saturating_duration_since(Instant::now());
    let strict = ReadOptions::default()
        .with_r(r)
        .with_pr(r)
        .with_timeout(remaining);
    let read = super::read::get(inner, bucket, key.clone(), &strict).await?;
    Ok(Some(read.context().version_vector().clone()))
}

/// What one write is, the same across its retries.
struct WriteRequest<'a> {
    bucket: &'a str,
    key: Bytes,
    value: Option<Bytes>,
    context: Option<VersionVector>,
    /// Replace every version the stamping replica holds, besides what the context covers.
    overwrite: bool,
    write_id: u64,
    /// The value's time to live in milliseconds (never for a delete).
    ttl_ms: Option<u64>,
    /// Set once any request of this write may have been applied by a node (it was answered,
    /// or it failed in a way that does not prove it was not).
    sent: Arc<AtomicBool>,
}

/// One attempt of a write: plan, stamp (unless `lww`), replicate.
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
    let mut acks = Acks::new(&plan);
    let (state, others) = if plan.props.conflict == ConflictPolicy::Lww {
        (lww_state(inner, write), plan.targets.clone())
    } else {
        stamp(inner, write, &plan, sync, &mut acks).await?
    };
    replicate(inner, write, &plan, sync, state, others, acks).await
}

/// The state of an `lww` write: one sibling, dotted by this client, timestamped now.
fn lww_state(inner: &Inner, write: &WriteRequest<'_>) -> SiblingSet {
    let now = now_ms().saturating_add_signed(inner.config.clock_offset_ms);
    SiblingSet::lww(inner.next_lww_dot(), now, write.value.clone())
}

/// The stamp step: `Put` to the targets in turn until one stamps the write. Returns the
/// stamped state and the targets still to copy it to: the others, spares in place of the
/// targets that failed to stamp, and the stamping target itself if its copy is still to be
/// synced.
async fn stamp(
    inner: &Arc<Inner>,
    write: &WriteRequest<'_>,
    plan: &Plan,
    sync: bool,
    acks: &mut Acks<'_>,
) -> Result<(SiblingSet, Vec<Target>)> {
    let mut failed = Vec::new();
    let mut remaining = plan.targets.iter().cloned();
    for target in remaining.by_ref() {
        let body = Request::Put {
            bucket: write.bucket.into(),
            key: write.key.clone(),
            context: write.context.clone(),
            value: write.value.clone(),
            overwrite: write.overwrite,
            write_id: Some(write.write_id),
            hint: target.hint,
            sync,
            defer_sync: true,
            ttl_ms: write.ttl_ms,
        };
        let (target, result) = send(inner, target, plan.epoch, body).await;
        if result.as_ref().map_or_else(may_have_applied, |_| true) {
            write.sent.store(true, Ordering::Release);
        }
        let error = match result {
            Ok((
                Response::Stamped {
                    state,
                    pending_sync,
                },
                _,
            )) => {
                // A stamp that still has to be synced counts once its Merge (which waits for
                // the sync, in parallel with the other replicas' merges) answers.
                let confirm = if pending_sync {
                    Some(target)
                } else {
                    acks.acknowledge(&target);
                    None
                };
                let mut others: Vec<Target> = confirm.into_iter().chain(remaining).collect();
                others.extend(failed.iter().filter_map(|t| acks.replacement(t)));
                return Ok((state, others));
            }
            Ok((other, _)) => Error::unexpected("put", &other),
            Err(e) if e.is_about_the_request() => return Err(e),
            Err(e) => e,
        };
        let progress = acks.fail(&target, error);
        failed.push(target);
        if progress == QuorumState::Failed {
            break;
        }
    }
    Err(acks.failure())
}

/// The replicate step: `Merge` of `state` to `others` in parallel, until the quorum is
/// decided; merges still under way then finish in the background.
async fn replicate(
    inner: &Arc<Inner>,
    write: &WriteRequest<'_>,
    plan: &Plan,
    sync: bool,
    state: SiblingSet,
    others: Vec<Target>,
    mut acks: Acks<'_>,
) -> Result<WriteReceipt> {
    acks.receipt.written = Value::of(&state);
    let copy = CopyOf {
        bucket: write.bucket.to_string(),
        key: write.key.clone(),
        state,
        sync,
        entry: plan.props.conflict == ConflictPolicy::Lww,
        // A stamped write's state carries its expiry already; an `lww` write's is set by
        // each replica as it enters.
        ttl_ms: write
            .ttl_ms
            .filter(|_| plan.props.conflict == ConflictPolicy::Lww),
    };
    let mut merges = Fanout::new(inner, plan.epoch, Leftovers::Finish);
    for target in others {
        write.sent.store(true, Ordering::Release);
        merges.send(target.clone(), copy.merge(&target));
    }
    while acks.tally.state() == QuorumState::Pending {
        let Some((target, result)) = merges.next().await else {
            break;
        };
        match result {
            Ok((Response::Merged, _)) => acks.acknowledge(&target),
            Ok((other, _)) => {
                acks.fail(&target, Error::unexpected("merge", &other));
            }
            // Nothing applied it yet (an `lww` write is not stamped first), and every replica
            // would refuse it the same way. A stamped write was applied by its stamping
            // replica, even one not acknowledged yet (`dw`): it fails as a quorum miss, in
            // doubt.
            Err(e)
                if e.is_about_the_request()
                    && acks.tally.succeeded() == 0
                    && plan.props.conflict == ConflictPolicy::Lww =>
            {
                return Err(e);
            }
            Err(e) => {
                // A spare would refuse a request-level error the same way, and must not take
                // a write refused for its timestamp.
                let spare = (!e.rules_out_spares())
                    .then(|| acks.replacement(&target))
                    .flatten();
                if let Some(spare) = spare {
                    let body = copy.merge(&spare);
                    merges.send(spare, body);
                }
                acks.fail(&target, e);
            }
        }
    }
    if acks.tally.state() == QuorumState::Reached {
        // The call returns; the merges still under way go on, and each that fails is sent to
        // a spare in its place, so that `n` nodes hold the write, not only the first `w`.
        let spares: Vec<Member> = acks.spares.by_ref().cloned().collect();
        let deadline = Instant::now() + inner.config.timeout;
        let finishing = finish_copies(inner.clone(), merges, spares, copy, deadline);
        inner.background.spawn(finishing);
        Ok(acks.receipt)
    } else {
        Err(acks.failure())
    }
}

/// A write's state as its merges carry it.
struct CopyOf {
    bucket: String,
    key: Bytes,
    state: SiblingSet,
    sync: bool,
    /// An `lww` write timestamped by this client: the nodes check the timestamp against
    /// their clocks (`Request::Merge::entry`).
    entry: bool,
    /// With `entry`: the write's time to live (see `Request::Merge::ttl_ms`).
    ttl_ms: Option<u64>,
}

impl CopyOf {
    fn merge(&self, target: &Target) -> Request {
        Request::Merge {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            state: self.state.clone(),
            hint: target.hint,
            sync: self.sync,
            entry: self.entry,
            ttl_ms: self.ttl_ms,
        }
    }
}

/// The background part of a write whose quorum is reached: the merges still under way run
/// to the end, and a target whose copy fails is replaced by the next spare (with a hint for
/// the home it stood for), until every copy landed, the spares ran out, or `deadline`.
/// Counted in the client's stats (`background_spares`, `copies_short`). A client process
/// that exits meanwhile drops what is still under way: hinted handoff, read repair and
/// anti-entropy then make up the missing copies.
async fn finish_copies(
    inner: Arc<Inner>,
    mut merges: Fanout,
    spares: Vec<Member>,
    copy: CopyOf,
    deadline: Instant,
) {
    let mut spares = spares.into_iter();
    loop {
        let Some((target, result)) = merges.next_until(deadline).await else {
            break;
        };
        match result {
            Ok((Response::Merged, _)) => continue,
            // Every node would refuse it the same way, or no spare may take it.
            Err(e) if e.rules_out_spares() => {
                inner.stats.copies_short.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            _ => {}
        }
        let home = target.hint.unwrap_or(target.member.id);
        match spares.next() {
            Some(member) => {
                let spare = Target {
                    member,
                    hint: Some(home),
                };
                inner
                    .stats
                    .background_spares
                    .fetch_add(1, Ordering::Relaxed);
                let body = copy.merge(&spare);
                merges.send(spare, body);
            }
            None => {
                inner.stats.copies_short.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What one attempt of a write has gathered, across its two steps.
struct Acks<'p> {
    required: usize,
    /// Counts targets and spares: a spare's acknowledgement counts like a target's.
    tally: Quorum,
    errors: Vec<NodeError>,
    receipt: WriteReceipt,
    /// The plan's spares not used yet.
    spares: std::slice::Iter<'p, Member>,
}

impl<'p> Acks<'p> {
    fn new(plan: &'p Plan) -> Acks<'p> {
        Acks {
            required: plan.required,
            tally: Quorum::new(plan.required, plan.targets.len() + plan.spares.len()),
            errors: Vec::new(),
            receipt: WriteReceipt::default(),
            spares: plan.spares.iter(),
        }
    }

    /// Counts `target`'s acknowledgement, as a home or a fallback one.
    fn acknowledge(&mut self, target: &Target) {
        match target.hint {
            None => self.receipt.home.push(target.member.id),
            Some(_) => self.receipt.fallback.push(target.member.id),
        }
        self.tally.succeed();
    }

    /// Counts `target`'s failure; says whether the quorum is still possible.
    fn fail(&mut self, target: &Target, error: Error) -> QuorumState {
        self.errors.push(node_error(target, error));
        self.tally.fail()
    }

    /// The next spare, to stand in for `failed`: for the home replica itself, or for the
    /// home the failed fallback stood in for.
    fn replacement(&mut self, failed: &Target) -> Option<Target> {
        let home: NodeId = failed.hint.unwrap_or(failed.member.id);
        self.spares.next().map(|member| Target {
            member: member.clone(),
            hint: Some(home),
        })
    }

    /// The quorum error of an attempt that did not reach its quorum. A target that
    /// acknowledged holds the write; a target that failed may (see [`may_have_applied`]).
    fn failure(&mut self) -> Error {
        let errors = std::mem::take(&mut self.errors);
        let succeeded = self.tally.succeeded();
        let in_doubt = succeeded > 0 || errors.iter().any(|e| may_have_applied(&e.error));
        Error::Quorum {
            required: self.required,
            succeeded,
            errors,
            in_doubt,
        }
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

/// `e`, in doubt if any attempt of the write was `sent`.
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

/// Wall-clock milliseconds: an `lww` write's timestamp, compared across clients.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
