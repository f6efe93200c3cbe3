//! Batches: [`get_many`], the reads of many keys in one frame per node.
//!
//! Every key gets its plan and the targets a lone read would ask first (its `R` fastest
//! homes; every target on a read sampled for repair), and the requests are grouped by node:
//! one `Batch` of gets to each node the keys touch (chunks of [`MAX_KEYS_PER_FRAME`]), all
//! sent at once. A key whose asked targets all answered, and answered alike, is done. Every other
//! key is read again on its own, by [`super::get`], which brings everything a lone read does:
//! a spare for a target that failed, a refetched ring, retries, read repair. That covers a
//! target that failed or refused the key, a node too old to take batches, a plan that could
//! not be made, and answers that disagree (read alone then with every replica asked, so that
//! read repair compares and mends them all). So a key's result never depends on the other
//! keys of its batch, and a batch reads no less than lone reads would.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
#[cfg(doc)]
use ringkv_core::wire::MAX_BATCH_REQUESTS;
use ringkv_core::wire::{Request, Response};
use ringkv_core::{NodeId, RingEpoch, SiblingSet};
use tokio::time::Instant;

use super::fanout::send;
use super::plan::{Plan, Target, plan};
use super::read::{ask_order, merge_answers, read_ask, sample_repairs};
use crate::error::Result;
use crate::inner::Inner;
use crate::options::ReadOptions;
use crate::value::Value;

/// The most keys one `Batch` frame asks a node for: a node answers a frame within the one
/// `request_timeout` of a lone request, or is taken for down, and well before the node's own
/// limit ([`MAX_BATCH_REQUESTS`]) a batch gains nothing more from sharing a frame.
const MAX_KEYS_PER_FRAME: usize = 128;

/// Reads every key of `keys`, one result per key in order; see the module docs.
pub(crate) async fn get_many(
    inner: &Arc<Inner>,
    bucket: &str,
    keys: Vec<Bytes>,
    opts: &ReadOptions,
) -> Vec<Result<Value>> {
    let started = Instant::now();
    let deadline = started + opts.timeout.unwrap_or(inner.config.timeout);
    // A touch writes after its read, and a read that must see every replica returns before
    // the slowest: both stay lone reads.
    let batched = if opts.touch.is_none() && !opts.every_replica && keys.len() > 1 {
        let round = batch_round(inner, bucket, &keys, opts);
        tokio::time::timeout_at(deadline, round).await.ok()
    } else {
        None
    };
    let settled = batched.unwrap_or_else(|| keys.iter().map(|_| Settled::Alone).collect());
    // What the batch did not settle is read key by key, all at once, within what is left of
    // the call's deadline.
    let left = deadline.saturating_duration_since(Instant::now());
    let reads = settled
        .into_iter()
        .zip(keys)
        .map(|(outcome, key)| async move {
            let disagreed = match outcome {
                Settled::Done(value) => {
                    inner.stats.batched_reads.fetch_add(1, Ordering::Relaxed);
                    inner.stats.read(started.elapsed(), true);
                    return Ok(value);
                }
                Settled::Alone => false,
                Settled::Disagree => true,
            };
            let opts = ReadOptions {
                timeout: Some(left),
                every_replica: disagreed,
                ..opts.clone()
            };
            super::get(inner, bucket, key, &opts).await
        });
    join_all(reads).await
}

/// What the batched round made of one key.
enum Settled {
    /// Every target asked answered alike: the value.
    Done(Value),
    /// Not settled: read it on its own.
    Alone,
    /// The answers disagreed: read it on its own, asking every replica, and repair.
    Disagree,
}

/// One key's reads in the batched round.
struct Reading {
    plan: Plan,
    /// How many targets were asked.
    asked: usize,
    answers: Vec<Option<SiblingSet>>,
    failed: bool,
}

/// The batched round: the first requests of every key, one `Batch` per node (see the module
/// docs).
async fn batch_round(
    inner: &Arc<Inner>,
    bucket: &str,
    keys: &[Bytes],
    opts: &ReadOptions,
) -> Vec<Settled> {
    let mut readings: Vec<Option<Reading>> = Vec::with_capacity(keys.len());
    let mut epoch: Option<RingEpoch> = None;
    // The keys each node is asked for, in the order the batch carries them.
    let mut by_node: HashMap<NodeId, (Target, Vec<usize>)> = HashMap::new();
    for (index, key) in keys.iter().enumerate() {
        let Ok(plan) = plan(inner, bucket, key, read_ask(inner, opts)) else {
            readings.push(None); // Its lone read says why.
            continue;
        };
        // Every request of the round carries one ring epoch; a key planned by a ring that
        // changed meanwhile is read alone.
        if *epoch.get_or_insert(plan.epoch) != plan.epoch {
            readings.push(None);
            continue;
        }
        let asked = if sample_repairs(inner) {
            inner.stats.full_reads.fetch_add(1, Ordering::Relaxed);
            plan.targets.len()
        } else {
            plan.required
        };
        for &t in ask_order(inner, &plan).iter().take(asked) {
            let target = &plan.targets[t];
            by_node
                .entry(target.member.id)
                .or_insert_with(|| (target.clone(), Vec::new()))
                .1
                .push(index);
        }
        readings.push(Some(Reading {
            answers: Vec::with_capacity(asked),
            plan,
            asked,
            failed: false,
        }));
    }
    let Some(epoch) = epoch else {
        return keys.iter().map(|_| Settled::Alone).collect();
    };
    let mut batches = FuturesUnordered::new();
    for (target, indices) in by_node.into_values() {
        for chunk in indices.chunks(MAX_KEYS_PER_FRAME) {
            let requests = chunk
                .iter()
                .map(|&i| Request::Get {
                    bucket: bucket.into(),
                    key: keys[i].clone(),
                })
                .collect();
            let chunk = chunk.to_vec();
            let reply = send(inner, target.clone(), epoch, Request::Batch { requests });
            batches.push(async move { (chunk, reply.await.1) });
        }
    }
    while let Some((chunk, reply)) = batches.next().await {
        let results = match reply {
            Ok((Response::Batch { results }, _)) if results.len() == chunk.len() => results,
            // The node failed, is too old for batches, or answered nonsense: every key of
            // the chunk is read alone.
            _ => {
                for &i in &chunk {
                    if let Some(reading) = &mut readings[i] {
                        reading.failed = true;
                    }
                }
                continue;
            }
        };
        for (&i, result) in chunk.iter().zip(results) {
            let Some(reading) = &mut readings[i] else {
                continue;
            };
            match result {
                Ok(Response::Value { state }) => reading.answers.push(state),
                _ => reading.failed = true,
            }
        }
    }
    readings
        .into_iter()
        .map(|reading| match reading {
            Some(r) if !r.failed && r.answers.len() == r.asked => {
                if r.answers.windows(2).any(|pair| pair[0] != pair[1]) {
                    Settled::Disagree
                } else {
                    let merged = merge_answers(inner, bucket, &r.plan, r.answers.iter());
                    Settled::Done(Value::of(&merged))
                }
            }
            _ => Settled::Alone,
        })
        .collect()
}
