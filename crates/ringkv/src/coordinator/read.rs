//! Reads: [`get`], and read repair after it.
//!
//! A read sends `Get` to every target of its plan and returns once `R` have answered (a "not
//! found" is an answer), with their states merged. The fan-out then passes to a background
//! [`Repair`], inside the call's span, which takes the late answers until the call's deadline,
//! merges everything, and sends the result with `Merge` to every target whose copy differs (to
//! a fallback, as a hint).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use ringkv_core::SiblingSet;
use ringkv_core::quorum::{Quorum, QuorumState};
use ringkv_core::wire::{Request, Response};
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
    let mut gets = Fanout::new(inner, plan.epoch, Leftovers::Abandon);
    for target in &plan.targets {
        let body = Request::Get {
            bucket: bucket.into(),
            key: key.clone(),
        };
        gets.send(target.clone(), body);
    }
    let mut tally = Quorum::new(plan.required, plan.targets.len());
    let mut answers: Vec<(Target, Option<SiblingSet>)> = Vec::with_capacity(plan.targets.len());
    let mut errors = Vec::new();
    while tally.state() == QuorumState::Pending {
        let Some((target, result)) = gets.next().await else {
            break;
        };
        match result {
            Ok((Response::Value { state }, _)) => {
                answers.push((target, state));
                tally.succeed();
            }
            Ok((other, _)) => {
                errors.push(node_error(&target, Error::unexpected("get", &other)));
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
        span.record(
            "answered",
            display(target_ids(answers.iter().map(|(t, _)| t))),
        );
    }
    let mut merged = SiblingSet::new();
    for state in answers.iter().filter_map(|(_, s)| s.as_ref()) {
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
    let value = Value::of(&merged);
    if let Some(ttl) = opts.touch {
        super::touch::touch(inner, bucket, &key, &merged, ttl).await?;
    }
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
        inner.background.spawn(repair.run(gets).instrument(span));
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
    /// Takes the read's late answers from `gets`, then repairs every stale target; both
    /// until the call's deadline.
    async fn run(mut self, mut gets: Fanout) {
        while let Some((target, result)) = gets.next_until(self.deadline).await {
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
