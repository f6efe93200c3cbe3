//! The replicate step of a write: `Merge` of the stamped (or `lww`) state to the other
//! targets in parallel until `W` hold it, and the merges still under way after that.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use ringkv_core::quorum::QuorumState;
use ringkv_core::wire::{Request, Response};
use ringkv_core::{ConflictPolicy, Member, SiblingSet};
use tokio::time::Instant;

use super::super::fanout::{Fanout, Leftovers};
use super::super::plan::{Plan, Target};
use super::WriteRequest;
use super::acks::Acks;
use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::value::{Value, WriteReceipt};

/// The replicate step: `Merge` of `state` to `others` in parallel, until the quorum is
/// decided; merges still under way then finish in the background.
pub(super) async fn replicate(
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
