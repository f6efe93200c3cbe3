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
//! - **A node that refuses the plan's ring** (`StaleRing`, `NotOwner`) is up and says the plan
//!   is wrong: no spare stands in for it, since a spare's hinted copy is where no reader by the
//!   newer ring looks. The attempt counts it as failed (at the stamp, it ends the attempt), and
//!   the retry refetches the ring and writes by it with the same write id.
//! - **LWW buckets** skip the stamp: [`lww_state`] builds the one-sibling state from the
//!   client's own dot, and the replicate step sends it to every target: one round trip.
//!
//! A failed write says whether it may have been applied all the same (`in_doubt`): once any
//! request of it, in any attempt, may have reached a node.

//! The parts: `stamp`, `replicate`, and `acks` (what an attempt gathered, and whether a failed
//! write may have been applied).

mod acks;
mod replicate;
mod stamp;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ringkv_core::{ConflictPolicy, Context, SiblingSet, VersionVector};
use tokio::time::Instant;
use tracing::field::{Empty, display};
use tracing::{Instrument as _, Span, debug_span};

use self::acks::{Acks, mark_in_doubt};
use self::replicate::replicate;
use self::stamp::stamp;
use super::plan::{Ask, ids, plan, target_ids};
use super::retry::with_retries;
use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::options::{ReadOptions, WriteOptions};
use crate::value::WriteReceipt;

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
    // Every home is asked, not only `r`, so that the read repair after it compares them all;
    // the context is still that of the first `r` to answer, which `r + w > n` makes enough.
    let strict = ReadOptions::default()
        .with_r(r)
        .with_pr(r)
        .with_every_replica()
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

/// Wall-clock milliseconds: an `lww` write's timestamp, compared across clients.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
