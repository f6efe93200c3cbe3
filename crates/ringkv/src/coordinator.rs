//! The client as quorum coordinator (DESIGN.md §5).
//!
//! - **Read** (`R` of `N`): `Get` goes to the key's `N` home replicas in parallel; after `R`
//!   answers (a "not found" is an answer) their states are merged and returned. Read repair
//!   then waits, in the background and until the call's deadline, for the other replicas,
//!   merges everything, and sends the merged state to every replica whose copy differs.
//! - **Write** (`W` of `N`): `Put` goes to the first home replica, which stamps the write
//!   (a new dot) and returns the new state; if it cannot be reached, the next home replica
//!   coordinates instead. The state is then sent with `Merge` to the other home replicas in
//!   parallel, and the call succeeds once `W` replicas (the stamping one included) hold it.
//!   Merges still under way when the call returns go on in the background.
//! - **LWW buckets** skip the stamp: the client makes the one-sibling state itself and sends
//!   it with `Merge` to the `N` replicas at once: one round trip.
//!
//! Every response carries the answering node's ring epoch; one that differs from ours
//! triggers a background refetch of the ring. A request refused with `StaleRing` is retried
//! once, after the refetch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ringkv_core::quorum::{Quorum, QuorumState};
use ringkv_core::wire::{Request, Response, WireError};
use ringkv_core::{BucketProps, ConflictPolicy, Context, Dot, Member, NodeId, SiblingSet};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::client::Inner;
use crate::error::{Error, NodeError, Result};
use crate::options::{ReadOptions, WriteOptions};
use crate::value::{Value, WriteReceipt};

type Answer = (Member, Result<(Response, ringkv_core::RingEpoch)>);
type Pending = FuturesUnordered<Pin<Box<dyn Future<Output = Answer> + Send>>>;

/// Reads `key`; see the module docs.
pub(crate) async fn get(
    inner: &Arc<Inner>,
    bucket: &str,
    key: Bytes,
    opts: &ReadOptions,
) -> Result<Value> {
    let deadline = Instant::now() + opts.timeout.unwrap_or(inner.config.timeout);
    let attempt = retry_on_stale_ring(inner, || {
        get_once(inner, bucket, key.clone(), opts, deadline)
    });
    tokio::time::timeout_at(deadline, attempt)
        .await
        .unwrap_or(Err(Error::Timeout { in_doubt: false }))
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
    let deadline = Instant::now() + opts.timeout.unwrap_or(inner.config.timeout);
    let sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attempt = retry_on_stale_ring(inner, || {
        write_once(
            inner,
            bucket,
            key.clone(),
            value.clone(),
            context,
            opts,
            sent.clone(),
        )
    });
    match tokio::time::timeout_at(deadline, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            in_doubt: sent.load(Ordering::Acquire),
        }),
    }
}

/// Runs `op`; if a node refused it because our ring is stale, refetches the ring and runs it
/// once more.
async fn retry_on_stale_ring<T, F, Fut>(inner: &Arc<Inner>, op: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    match op().await {
        Err(e) if is_stale_ring(&e) => {
            debug!("a node refused a request for a stale ring; refetching");
            inner
                .ring
                .refresh(&inner.pool, inner.config.connect_timeout)
                .await?;
            op().await
        }
        other => other,
    }
}

fn is_stale_ring(e: &Error) -> bool {
    match e {
        Error::Server(WireError::StaleRing { .. }) => true,
        Error::Quorum { errors, .. } => errors
            .iter()
            .any(|n| matches!(*n.error, Error::Server(WireError::StaleRing { .. }))),
        _ => false,
    }
}

/// The quorum a call uses: per call, else client default, else the bucket's; refused with the
/// parameter named when it cannot be met by `n` replicas.
fn quorum(name: &str, asked: Option<u8>, props: &BucketProps, bucket: &str) -> Result<usize> {
    let default = if name == "r" { props.r } else { props.w };
    let value = asked.unwrap_or(default);
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

/// The bucket's properties and home replicas of `key` under the current ring.
fn placement(
    inner: &Inner,
    bucket: &str,
    key: &[u8],
) -> Result<(BucketProps, Vec<Member>, ringkv_core::RingEpoch)> {
    let cluster = inner.ring.current();
    let ring = &cluster.ring;
    if ring.members().is_empty() {
        return Err(Error::NoRing {
            tried: Vec::new(),
            reason: "the ring has no members".into(),
        });
    }
    let props = *ring.bucket(bucket);
    let replicas = ring
        .home_replicas(bucket, key)
        .into_iter()
        .cloned()
        .collect();
    Ok((props, replicas, ring.epoch()))
}

fn send(
    inner: &Arc<Inner>,
    member: Member,
    epoch: ringkv_core::RingEpoch,
    body: Request,
) -> Pin<Box<dyn Future<Output = Answer> + Send>> {
    let inner = inner.clone();
    Box::pin(async move {
        let result = inner
            .pool
            .call(&member.addr, inner.config.connect_timeout, epoch, body)
            .await;
        if let Ok((_, seen)) = &result {
            inner.note_epoch(*seen);
        }
        (member, result)
    })
}

async fn get_once(
    inner: &Arc<Inner>,
    bucket: &str,
    key: Bytes,
    opts: &ReadOptions,
    deadline: Instant,
) -> Result<Value> {
    let (props, replicas, epoch) = placement(inner, bucket, &key)?;
    let r = quorum("r", opts.r.or(inner.config.r), &props, bucket)?;
    if replicas.len() < r {
        return Err(Error::Unavailable {
            required: r,
            alive: replicas.len(),
        });
    }
    let mut pending: Pending = replicas
        .iter()
        .map(|m| {
            send(
                inner,
                m.clone(),
                epoch,
                Request::Get {
                    bucket: bucket.into(),
                    key: key.clone(),
                },
            )
        })
        .collect();
    let mut tally = Quorum::new(r, replicas.len());
    let mut answers: Vec<(Member, Option<SiblingSet>)> = Vec::with_capacity(replicas.len());
    let mut errors = Vec::new();
    while tally.state() == QuorumState::Pending {
        let Some((member, result)) = pending.next().await else {
            break;
        };
        match result {
            Ok((Response::Value { state }, _)) => {
                answers.push((member, state));
                tally.succeed();
            }
            Ok((other, _)) => {
                errors.push(unexpected(member.id, "Get", &other));
                tally.fail();
            }
            Err(e) if e.is_about_the_request() => return Err(e),
            Err(e) => {
                errors.push(NodeError {
                    node: member.id,
                    error: Box::new(e),
                });
                tally.fail();
            }
        }
    }
    if tally.state() != QuorumState::Reached {
        return Err(Error::Quorum {
            required: r,
            succeeded: tally.succeeded(),
            errors,
            in_doubt: false,
        });
    }
    let mut merged = SiblingSet::new();
    for (_, state) in &answers {
        if let Some(state) = state {
            merged.merge(state, props.conflict);
        }
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
        tokio::spawn(read_repair(
            inner.clone(),
            bucket.to_string(),
            key,
            props.conflict,
            epoch,
            answers,
            pending,
            merged,
            deadline,
        ));
    }
    Ok(value)
}

/// Waits (until `deadline`) for the replicas that had not answered, merges everything, and
/// sends the result to every replica whose copy differs from it.
#[allow(clippy::too_many_arguments)]
async fn read_repair(
    inner: Arc<Inner>,
    bucket: String,
    key: Bytes,
    policy: ConflictPolicy,
    epoch: ringkv_core::RingEpoch,
    mut answers: Vec<(Member, Option<SiblingSet>)>,
    mut pending: Pending,
    mut merged: SiblingSet,
    deadline: Instant,
) {
    while let Ok(Some((member, result))) = tokio::time::timeout_at(deadline, pending.next()).await {
        if let Ok((Response::Value { state }, _)) = result {
            if let Some(state) = &state {
                merged.merge(state, policy);
            }
            answers.push((member, state));
        }
    }
    if merged == SiblingSet::default() {
        return; // Nothing anywhere: nothing to repair.
    }
    let mut repairs: Pending = FuturesUnordered::new();
    for (member, state) in answers {
        if state.as_ref() != Some(&merged) {
            debug!(node = %member.id, bucket, "read repair");
            inner.stats.read_repairs.fetch_add(1, Ordering::Relaxed);
            let body = Request::Merge {
                bucket: bucket.clone(),
                key: key.clone(),
                state: merged.clone(),
            };
            repairs.push(send(&inner, member, epoch, body));
        }
    }
    while let Ok(Some((member, result))) = tokio::time::timeout_at(deadline, repairs.next()).await {
        if let Err(e) = result {
            debug!(node = %member.id, error = %e, "read repair failed");
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_once(
    inner: &Arc<Inner>,
    bucket: &str,
    key: Bytes,
    value: Option<Bytes>,
    context: Option<&Context>,
    opts: &WriteOptions,
    sent: Arc<std::sync::atomic::AtomicBool>,
) -> Result<WriteReceipt> {
    let (props, replicas, epoch) = placement(inner, bucket, &key)?;
    let w = quorum("w", opts.w.or(inner.config.w), &props, bucket)?;
    if replicas.len() < w {
        return Err(Error::Unavailable {
            required: w,
            alive: replicas.len(),
        });
    }
    let mut tally = Quorum::new(w, replicas.len());
    let mut errors = Vec::new();
    let mut receipt = WriteReceipt::default();

    let (state, others) = if props.conflict == ConflictPolicy::Lww {
        let dot = Dot {
            node: inner.lww_actor,
            counter: inner.lww_counter.fetch_add(1, Ordering::Relaxed) + 1,
        };
        (SiblingSet::lww(dot, now_ms(), value), replicas)
    } else {
        // Stamp at the first home replica that answers.
        let context = context.map(|c| c.version_vector().clone());
        let overwrite = opts.overwrite || (value.is_none() && context.is_none());
        let mut stamped = None;
        let mut remaining = replicas.into_iter();
        for member in remaining.by_ref() {
            sent.store(true, Ordering::Release);
            let body = Request::Put {
                bucket: bucket.into(),
                key: key.clone(),
                context: context.clone(),
                value: value.clone(),
                overwrite,
            };
            let (member, result) = send(inner, member, epoch, body).await;
            match result {
                Ok((Response::Stamped { state }, _)) => {
                    receipt.home.push(member.id);
                    tally.succeed();
                    stamped = Some(state);
                    break;
                }
                Ok((other, _)) => errors.push(unexpected(member.id, "Put", &other)),
                Err(e) if e.is_about_the_request() => return Err(e),
                Err(e) => errors.push(NodeError {
                    node: member.id,
                    error: Box::new(e),
                }),
            }
            if tally.fail() == QuorumState::Failed {
                break;
            }
        }
        let Some(state) = stamped else {
            let in_doubt = errors.iter().any(|e| may_have_applied(&e.error));
            return Err(Error::Quorum {
                required: w,
                succeeded: 0,
                errors,
                in_doubt,
            });
        };
        (state, remaining.collect())
    };

    // Replicate with Merge. Spawned, so that merges still running when the quorum is reached
    // complete anyway: every replica should hold the write, not just W of them.
    let (tx, mut rx) = tokio::sync::mpsc::channel(others.len().max(1));
    for member in others {
        sent.store(true, Ordering::Release);
        let body = Request::Merge {
            bucket: bucket.into(),
            key: key.clone(),
            state: state.clone(),
        };
        let reply = send(inner, member, epoch, body);
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(reply.await).await;
        });
    }
    drop(tx);
    while tally.state() == QuorumState::Pending {
        let Some((member, result)) = rx.recv().await else {
            break;
        };
        match result {
            Ok((Response::Merged, _)) => {
                receipt.home.push(member.id);
                tally.succeed();
            }
            Ok((other, _)) => {
                errors.push(unexpected(member.id, "Merge", &other));
                tally.fail();
            }
            Err(e) if e.is_about_the_request() && tally.succeeded() == 0 => return Err(e),
            Err(e) => {
                errors.push(NodeError {
                    node: member.id,
                    error: Box::new(e),
                });
                tally.fail();
            }
        }
    }
    if tally.state() == QuorumState::Reached {
        Ok(receipt)
    } else {
        // At least the stamping replica may hold the write (or, for lww, any that timed out).
        let in_doubt = tally.succeeded() > 0 || errors.iter().any(|e| may_have_applied(&e.error));
        Err(Error::Quorum {
            required: w,
            succeeded: tally.succeeded(),
            errors,
            in_doubt,
        })
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

fn unexpected(node: NodeId, request: &str, response: &Response) -> NodeError {
    NodeError {
        node,
        error: Box::new(Error::Protocol(format!(
            "{request} answered with {response:?}"
        ))),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
