//! Touches: sliding expiry. A read with [`ReadOptions::touch`](crate::ReadOptions::touch)
//! extends the life of the live writes it returned, without rewriting them: each target gets
//! `Touch` with their dots and the new time to live, which its own clock turns into an
//! expiry (merging then keeps the latest per write). It is a write: it needs `W`
//! acknowledgements from the key's write targets, not only from the replicas the read asked,
//! since a replica left out would expire the session on time and read repair would not undo
//! that. A target that lacks some of the writes (a stale replica, a fallback without a hint)
//! answers so and is sent the read's state with the touch. A target where one of them has
//! already expired refuses: a touch never brings a value back.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkv_core::quorum::{Quorum, QuorumState};
use ringkv_core::wire::{Request, Response};
use ringkv_core::{Dot, NodeId, SiblingSet};

use super::fanout::{Fanout, Leftovers, node_error};
use super::plan::{Ask, plan};
use crate::error::{Error, Result};
use crate::inner::Inner;

/// Extends the live writes of `read` (the merged state a read of `key` returned) by `ttl`;
/// see the module docs. Nothing to do when the read found no live write that expires.
pub(super) async fn touch(
    inner: &Arc<Inner>,
    bucket: &str,
    key: &Bytes,
    read: &SiblingSet,
    ttl: Duration,
) -> Result<()> {
    // Writes that never expire stay so: nothing to extend, no round trip.
    let dots: Vec<Dot> = read
        .live()
        .filter(|s| s.expires_ms.is_some())
        .map(|s| s.dot)
        .collect();
    if dots.is_empty() {
        return Ok(());
    }
    if ttl.is_zero() {
        return Err(Error::InvalidArgument(
            "touch: a time to live must be positive".into(),
        ));
    }
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let ask = Ask {
        name: "w",
        strict_name: "pw",
        sloppy: inner.config.w,
        strict: inner.config.pw,
        durable: 0,
    };
    let plan = plan(inner, bucket, key, ask)?;
    let body = |hint, state: Option<&SiblingSet>| Request::Touch {
        bucket: bucket.to_string(),
        key: key.clone(),
        dots: dots.clone(),
        ttl_ms,
        hint,
        state: state.cloned(),
    };
    // The touches still under way when the quorum is reached go on: every target should
    // get the extension, not only the first `W`.
    let mut touches = Fanout::new(inner, plan.epoch, Leftovers::Finish);
    for target in &plan.targets {
        touches.send(target.clone(), body(target.hint, None));
    }
    let mut tally = Quorum::new(plan.required, plan.targets.len());
    let mut errors = Vec::new();
    let mut resent: Vec<NodeId> = Vec::new();
    while tally.state() == QuorumState::Pending {
        let Some((target, result)) = touches.next().await else {
            break;
        };
        match result {
            Ok((Response::Touched { missing }, _)) if missing.is_empty() => {
                tally.succeed();
            }
            // It lacks some of the writes: it gets them with the touch (once: the state
            // holds them all, so a second answer of this kind is a failure).
            Ok((Response::Touched { .. }, _)) if !resent.contains(&target.member.id) => {
                resent.push(target.member.id);
                touches.send(target.clone(), body(target.hint, Some(read)));
            }
            Ok((other, _)) => {
                errors.push(node_error(&target, Error::unexpected("touch", &other)));
                tally.fail();
            }
            Err(e) if e.is_about_the_request() => return Err(e),
            Err(e) => {
                errors.push(node_error(&target, e));
                tally.fail();
            }
        }
    }
    if tally.state() == QuorumState::Reached {
        Ok(())
    } else {
        Err(Error::Quorum {
            required: plan.required,
            succeeded: tally.succeeded(),
            errors,
            in_doubt: true,
        })
    }
}
