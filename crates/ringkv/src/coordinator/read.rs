//! Reads: [`get`], and read repair after it.
//!
//! A read sends `Get` to `R` of its plan's targets (homes before fallbacks, and among them
//! a node much slower than the others last: `crate::latency`) and returns once `R` have
//! answered (a "not found" is an answer), with their states merged. A target that fails is
//! replaced at once by the next one; when the answers are late (the learned speculative
//! delay), the next target is asked as well.
//!
//! Read repair compares replicas: on a sampled share of reads
//! (`ClientConfig::read_repair_chance`), on reads that must see every replica
//! (`ReadOptions::every_replica`, a touch, the read before a blind delete), which ask every
//! target from the start, and on every read whose answers disagree, which asks the rest
//! then. The fan-out passes to a background [`Repair`], inside the call's span, which takes
//! the late answers until the call's deadline, merges everything, and sends the result with
//! `Merge` to every target whose copy differs (to a fallback, as a hint). A replica that
//! missed writes and that reads do not happen to ask is left to the sampled reads and to
//! anti-entropy; with `R = 1`, answers cannot disagree, so only the sample repairs. The
//! answers of speculative or replacement requests still in flight when the quorum is met
//! are dropped, unless the read repairs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use ringkv_core::quorum::{Quorum, QuorumState};
use ringkv_core::wire::{Request, Response};
use ringkv_core::{NodeId, SiblingSet};
use tokio::time::Instant;
use tracing::field::{Empty, display};
use tracing::{Instrument as _, Span, debug, debug_span, warn};

use super::fanout::{Fanout, Leftovers, node_error};
use super::plan::{Ask, Plan, Target, plan, target_ids};
use super::retry::with_retries;
use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::options::ReadOptions;
use crate::value::Value;

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

/// One attempt of a read.
async fn get_once(
    inner: &Arc<Inner>,
    bucket: &str,
    key: Bytes,
    opts: &ReadOptions,
    deadline: Instant,
) -> Result<Value> {
    let plan = plan(inner, bucket, &key, read_ask(inner, opts))?;
    // Span fields are formatted only when someone listens: this is the hot path.
    let span = Span::current();
    if !span.is_disabled() {
        span.record("targets", display(target_ids(&plan.targets)));
    }
    let order = ask_order(inner, &plan);
    let every = opts.every_replica || opts.touch.is_some() || sample_repairs(inner);
    let mut asking = Asking {
        gets: Fanout::new(inner, plan.epoch, Leftovers::Abandon),
        unasked: order.into_iter(),
        sent: Vec::with_capacity(plan.targets.len()),
        bucket,
        key: &key,
        plan: &plan,
    };
    let first = if every {
        inner.stats.full_reads.fetch_add(1, Ordering::Relaxed);
        plan.targets.len()
    } else {
        plan.required
    };
    for _ in 0..first {
        asking.ask_next();
    }
    let mut tally = Quorum::new(plan.required, plan.targets.len());
    let mut answers: Vec<(Target, Option<SiblingSet>)> = Vec::with_capacity(plan.targets.len());
    let mut errors = Vec::new();
    // One timer per read, not one per request: when it fires, the next target is asked, and
    // it is set again for the one after.
    let speculate_after = inner.latencies.speculate_after();
    let mut speculate_at = speculate_after.map(|d| Instant::now() + d);
    while tally.state() == QuorumState::Pending {
        let next = match speculate_at.filter(|_| asking.has_unasked()) {
            Some(at) => tokio::select! {
                biased;
                answer = asking.gets.next() => answer,
                () = tokio::time::sleep_until(at) => {
                    asking.ask_next();
                    inner.stats.speculative_reads.fetch_add(1, Ordering::Relaxed);
                    speculate_at = speculate_after.map(|d| Instant::now() + d);
                    continue;
                }
            },
            None => asking.gets.next().await,
        };
        let Some((target, result)) = next else {
            // Every request asked has answered and the quorum is still open: ask more, or
            // the quorum cannot be met.
            if asking.ask_next() {
                continue;
            }
            break;
        };
        match result {
            Ok((Response::Value { state }, _)) => {
                asking.answered(inner, &target);
                answers.push((target, state));
                tally.succeed();
            }
            Ok((other, _)) => {
                errors.push(node_error(&target, Error::unexpected("get", &other)));
                tally.fail();
                asking.ask_next();
            }
            Err(e) if e.is_about_the_request() => return Err(e),
            Err(e) => {
                errors.push(node_error(&target, e));
                tally.fail();
                // The failed target's place goes to the next one at once.
                asking.ask_next();
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
        span.record(
            "answered",
            display(target_ids(answers.iter().map(|(t, _)| t))),
        );
    }
    let merged = merge_answers(inner, bucket, &plan, answers.iter().map(|(_, s)| s));
    let value = Value::of(&merged);
    if let Some(ttl) = opts.touch {
        super::touch::touch(inner, bucket, &key, &merged, ttl).await?;
    }
    // Answers that disagree say some replica missed a write: the targets not asked are
    // asked now too (in the background), and everything is repaired.
    let disagree = answers.windows(2).any(|pair| pair[0].1 != pair[1].1);
    if inner.config.read_repair && (every || disagree) {
        if !every {
            inner.stats.full_reads.fetch_add(1, Ordering::Relaxed);
            while asking.ask_next() {}
        }
        let (gets, sent) = (asking.gets, asking.sent);
        let repair = Repair {
            sent,
            inner: inner.clone(),
            bucket: bucket.to_string(),
            key,
            plan,
            answers,
            merged,
            deadline,
        };
        // Inside the call's span, which so lasts until the repair is done and can say it.
        inner.background.spawn(repair.run(gets).instrument(span));
    } else if !span.is_disabled() {
        // The answers agreed and no other replica is compared: nothing to repair.
        span.record("repaired", 0);
    }
    Ok(value)
}

/// What a read asks of its plan: `r` (or `pr`) answers, from the call's options or the
/// client's defaults.
pub(super) fn read_ask(inner: &Inner, opts: &ReadOptions) -> Ask {
    Ask {
        name: "r",
        strict_name: "pr",
        sloppy: opts.r.or(inner.config.r),
        strict: opts.pr.or(inner.config.pr),
        durable: 0,
    }
}

/// The order in which a read asks its plan's targets, as indices into them. Homes come
/// before fallbacks in the plan, and stay so: a node is moved back only among its kind (a
/// fallback is asked only when a home is down or fails).
pub(super) fn ask_order(inner: &Inner, plan: &Plan) -> Vec<usize> {
    let homes = plan.targets.iter().take_while(|t| t.hint.is_none()).count();
    let mut order = inner
        .latencies
        .order(plan.targets[..homes].iter().map(|t| t.member.id));
    order.extend(homes..plan.targets.len());
    order
}

/// Whether this read is one of the sampled share (`ClientConfig::read_repair_chance`) that
/// asks every target, so that read repair compares them all.
pub(super) fn sample_repairs(inner: &Inner) -> bool {
    let chance = inner.config.read_repair_chance;
    inner.config.read_repair
        && (chance >= 1.0
            || (chance > 0.0 && (crate::random::next_u64() as f64) < chance * u64::MAX as f64))
}

/// The read's answers merged into the state it returns; warns when the application lets
/// siblings pile up.
pub(super) fn merge_answers<'a>(
    inner: &Inner,
    bucket: &str,
    plan: &Plan,
    answers: impl Iterator<Item = &'a Option<SiblingSet>>,
) -> SiblingSet {
    let mut merged = SiblingSet::new();
    for state in answers.flatten() {
        merged.merge(state, plan.props.conflict);
    }
    // One write stamped by two coordinators (a retry) is two siblings with one write id: the
    // caller sees it once. The context still covers both dots.
    let live = merged.write_count();
    if live > inner.config.sibling_warning {
        inner.stats.sibling_warnings.fetch_add(1, Ordering::Relaxed);
        warn!(
            bucket,
            siblings = live,
            "read returned many siblings: is the application resolving them?"
        );
    }
    merged
}

/// A read's requests: whom it asked (and when), and whom it may still ask, in order.
struct Asking<'a> {
    gets: Fanout,
    /// Indices into the plan's targets, in the order to ask them.
    unasked: std::vec::IntoIter<usize>,
    /// When each asked node was sent its request.
    sent: Vec<(NodeId, Instant)>,
    bucket: &'a str,
    key: &'a Bytes,
    plan: &'a Plan,
}

impl Asking<'_> {
    /// Asks the next target; `false` when every target has been asked.
    fn ask_next(&mut self) -> bool {
        let Some(index) = self.unasked.next() else {
            return false;
        };
        let target = self.plan.targets[index].clone();
        self.sent.push((target.member.id, Instant::now()));
        let body = Request::Get {
            bucket: self.bucket.into(),
            key: self.key.clone(),
        };
        self.gets.send(target, body);
        true
    }

    fn has_unasked(&self) -> bool {
        self.unasked.len() > 0
    }

    /// Records how long `target` took to answer.
    fn answered(&self, inner: &Inner, target: &Target) {
        record_latency(inner, &self.sent, target.member.id);
    }
}

/// Records how long `node` took to answer, from when `sent` says it was asked.
fn record_latency(inner: &Inner, sent: &[(NodeId, Instant)], node: NodeId) {
    if let Some((_, at)) = sent.iter().find(|(n, _)| *n == node) {
        inner.latencies.record(node, at.elapsed());
    }
}

/// Read repair after a read returned: see the module docs.
struct Repair {
    /// When each target was asked, to learn the late ones' latencies.
    sent: Vec<(NodeId, Instant)>,
    inner: Arc<Inner>,
    bucket: String,
    key: Bytes,
    plan: Plan,
    answers: Vec<(Target, Option<SiblingSet>)>,
    merged: SiblingSet,
    deadline: Instant,
}

impl Repair {
    /// Takes the read's late answers from `gets`, then repairs every stale target; both
    /// until the call's deadline.
    async fn run(mut self, mut gets: Fanout) {
        while let Some((target, result)) = gets.next_until(self.deadline).await {
            if let Ok((Response::Value { state }, _)) = result {
                record_latency(&self.inner, &self.sent, target.member.id);
                if let Some(state) = &state {
                    self.merged.merge(state, self.plan.props.conflict);
                }
                self.answers.push((target, state));
            }
        }
        if self.merged == SiblingSet::default() {
            return; // Nothing anywhere: nothing to repair.
        }
        let mut repairs = Fanout::new(&self.inner, self.plan.epoch, Leftovers::Abandon);
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
                    entry: false,
                    ttl_ms: None,
                };
                repairs.send(target, body);
            }
        }
        while let Some((target, result)) = repairs.next_until(self.deadline).await {
            if let Err(e) = result {
                debug!(node = %target.member.id, error = %e, "read repair failed");
            }
        }
    }
}
