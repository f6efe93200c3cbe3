//! The stamp step of a write: `Put` to the targets in turn until one stamps it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ringkv_core::SiblingSet;
use ringkv_core::quorum::QuorumState;
use ringkv_core::wire::{Request, Response};

use super::super::fanout::send;
use super::super::plan::{Plan, Target};
use super::WriteRequest;
use super::acks::{Acks, may_have_applied};
use crate::error::{Error, Result};
use crate::inner::Inner;

/// The stamp step: `Put` to the targets in turn until one stamps the write. Returns the
/// stamped state and the targets still to copy it to: the others, spares in place of the
/// targets that failed to stamp, and the stamping target itself if its copy is still to be
/// synced. A target that refuses the plan's ring ends the attempt; one that no spare may
/// stand in for (`Error::rules_out_spares`) gets none.
pub(super) async fn stamp(
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
            // The plan is wrong: the attempt ends here, and the retry refetches the ring and
            // stamps by the new one (with the same write id).
            Err(e) if e.is_ring_refusal() => {
                acks.fail(&target, e);
                return Err(acks.failure());
            }
            Err(e) => e,
        };
        let replaceable = !error.rules_out_spares();
        let progress = acks.fail(&target, error);
        if replaceable {
            failed.push(target);
        }
        if progress == QuorumState::Failed {
            break;
        }
    }
    Err(acks.failure())
}
