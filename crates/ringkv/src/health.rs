//! Which nodes the client believes it can reach.
//!
//! Two sources, and a node must pass both to be a target:
//!
//! - **Gossip**: the set of members the servers' phi-accrual detectors consider alive, fetched
//!   with the ring and refreshed with it.
//! - **The client's own experience**: a node that just failed a request in a way that says
//!   something about the node (unreachable, connection lost, no answer in time, overloaded) is
//!   marked down for a back-off period, doubling with each consecutive failure from
//!   [`BACKOFF_BASE`] up to [`BACKOFF_MAX`], with ±50% jitter so that many clients do not
//!   return to a node in lockstep. When the period ends the node is *probed* (a `Ping` in the
//!   background) and trusted again only once the probe succeeds; meanwhile it stays skipped,
//!   so no call waits for a timeout on a node already known to be down.
//!
//! The second source is what makes a partition between this client and one node invisible to
//! callers even while gossip, which runs between servers, still sees the node alive.
//!
//! And first-hand evidence outweighs second-hand in the other direction too: servers' views
//! of a node that just came back converge over a few gossip rounds, and a ring refresh may
//! come from one that has not yet seen it. A node that answered this client within
//! [`FRESH_ANSWER`] is not dropped on gossip's word; if it really is gone, the client's own
//! failing requests mark it down.
//!
//! [`Health`] is the detector's state, with no IO; [`probe`] sends the `Ping` it asks for.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringkv_core::NodeId;
use ringkv_core::wire::Request;
use tokio::time::Instant;
use tracing::debug;

use crate::error::Error;
use crate::inner::Inner;

/// Back-off after a node's first failure.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Back-off never grows beyond this, so a node that comes back is used again within seconds.
pub const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// How long a node's last answer to this client outweighs gossip saying it is dead.
pub const FRESH_ANSWER: Duration = Duration::from_secs(3);

#[derive(Debug)]
struct Down {
    failures: u32,
    until: Instant,
    /// A probe is under way: do not start another.
    probing: bool,
    /// What the last failure was, for the errors that name the node.
    why: String,
}

/// The client's failure detector. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Short critical sections only (lookups and updates), never across an await.
    down: Mutex<HashMap<NodeId, Down>>,
    /// When each node last answered a request of this client. Same locking discipline.
    answered: Mutex<HashMap<NodeId, Instant>>,
}

/// What `Health::check` says about a node.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Up,
    Down,
    /// Down, and its back-off has ended: the caller should probe it (exactly one caller is
    /// told so per back-off period).
    Probe,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Down>> {
        self.down.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `node` may be sent requests. `gossip_alive` empty means "no gossip opinion".
    pub(crate) fn check(&self, node: NodeId, gossip_alive: &HashSet<NodeId>) -> Verdict {
        if !gossip_alive.is_empty() && !gossip_alive.contains(&node) && !self.answered_lately(node)
        {
            return Verdict::Down;
        }
        let mut down = self.lock();
        match down.get_mut(&node) {
            None => Verdict::Up,
            Some(d) if d.probing || Instant::now() < d.until => Verdict::Down,
            Some(d) => {
                d.probing = true;
                Verdict::Probe
            }
        }
    }

    /// Records the outcome of a request to `node`.
    pub(crate) fn record(&self, node: NodeId, outcome: Result<(), &Error>) {
        match outcome {
            Ok(()) => {
                self.lock().remove(&node);
                self.answered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(node, Instant::now());
            }
            Err(e) if says_node_is_down(e) => self.mark_down(node, e.to_string()),
            Err(_) => {}
        }
    }

    fn answered_lately(&self, node: NodeId) -> bool {
        let answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        answered
            .get(&node)
            .is_some_and(|at| at.elapsed() < FRESH_ANSWER)
    }

    /// Marks `node` down for its next back-off period, after a failure described by `why`.
    pub(crate) fn mark_down(&self, node: NodeId, why: impl Into<String>) {
        let mut down = self.lock();
        let entry = down.entry(node).or_insert(Down {
            failures: 0,
            until: Instant::now(),
            probing: false,
            why: String::new(),
        });
        entry.failures = entry.failures.saturating_add(1);
        entry.probing = false;
        entry.until = Instant::now() + backoff(entry.failures);
        entry.why = why.into();
    }

    /// Why `node` is not a target, in words for an error message (`None` if it is one).
    pub(crate) fn explain(&self, node: NodeId, gossip_alive: &HashSet<NodeId>) -> Option<String> {
        if let Some(d) = self.lock().get(&node) {
            let when = if d.probing {
                "a probe is under way".to_string()
            } else {
                let left = d.until.saturating_duration_since(Instant::now());
                format!("next probe in {} ms", left.as_millis())
            };
            return Some(format!(
                "this client marked it down after {} failed call{} (last: {}); {when}",
                d.failures,
                if d.failures == 1 { "" } else { "s" },
                d.why
            ));
        }
        if !gossip_alive.is_empty() && !gossip_alive.contains(&node) && !self.answered_lately(node)
        {
            return Some(
                "the servers' failure detectors report it down (gossip has not heard from it lately)"
                    .into(),
            );
        }
        None
    }

    /// Nodes currently marked down by this client.
    pub(crate) fn down_count(&self) -> usize {
        self.lock().len()
    }
}

/// Pings `node` in the background (its back-off ended: [`Verdict::Probe`]); an answer makes
/// it a target again, a failure starts its next back-off period.
pub(crate) fn probe(inner: &Arc<Inner>, node: NodeId) {
    let inner = inner.clone();
    tokio::spawn(async move {
        let addr = inner
            .ring
            .current()
            .ring
            .member(node)
            .map(|m| m.addr.clone());
        let Some(addr) = addr else { return };
        let epoch = inner.ring.current().ring.epoch();
        let ping = inner.pool.call_node(
            node,
            &addr,
            inner.config.connect_timeout,
            epoch,
            Request::Ping,
        );
        let result = match tokio::time::timeout(inner.config.request_timeout, ping).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(Error::Timeout { in_doubt: false }),
        };
        debug!(node = %node, ok = result.is_ok(), "probed a node marked down");
        inner.health.record(node, result.as_ref().copied());
    });
}

/// The back-off after `failures` consecutive failures, with jitter.
fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1 << failures.saturating_sub(1).min(10));
    let capped = exp.min(BACKOFF_MAX);
    capped.mul_f64(crate::random::jitter())
}

/// Whether an error says something about the node (as opposed to about the request).
fn says_node_is_down(e: &Error) -> bool {
    use ringkv_core::wire::WireError;
    match e {
        Error::Unreachable { .. } | Error::Connection { .. } | Error::Timeout { .. } => true,
        Error::Server(w) => matches!(
            w,
            WireError::Overloaded { .. } | WireError::ShuttingDown | WireError::NotReady { .. }
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> Error {
        Error::Unreachable {
            addr: "x".into(),
            reason: "refused".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_node_is_skipped_then_probed_once_then_trusted_after_a_success() {
        let health = Health::default();
        let node = NodeId(1);
        let gossip = HashSet::new();
        assert_eq!(health.check(node, &gossip), Verdict::Up);
        health.record(node, Err(&unreachable()));
        assert_eq!(health.check(node, &gossip), Verdict::Down);
        tokio::time::advance(BACKOFF_BASE * 2).await;
        assert_eq!(health.check(node, &gossip), Verdict::Probe);
        assert_eq!(
            health.check(node, &gossip),
            Verdict::Down,
            "one probe at a time"
        );
        health.record(node, Ok(()));
        assert_eq!(health.check(node, &gossip), Verdict::Up);
    }

    #[tokio::test(start_paused = true)]
    async fn back_off_grows_with_consecutive_failures_and_is_capped() {
        let health = Health::default();
        let node = NodeId(1);
        for _ in 0..8 {
            health.mark_down(node, "refused");
        }
        tokio::time::advance(BACKOFF_BASE * 4).await;
        assert_eq!(
            health.check(node, &HashSet::new()),
            Verdict::Down,
            "still backing off"
        );
        tokio::time::advance(BACKOFF_MAX * 2).await;
        assert_eq!(health.check(node, &HashSet::new()), Verdict::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_answer_outweighs_a_stale_gossip_verdict_for_a_while() {
        let health = Health::default();
        let gossip: HashSet<NodeId> = [NodeId(2)].into();
        health.record(NodeId(1), Ok(()));
        assert_eq!(
            health.check(NodeId(1), &gossip),
            Verdict::Up,
            "it just answered us"
        );
        tokio::time::advance(FRESH_ANSWER * 2).await;
        assert_eq!(
            health.check(NodeId(1), &gossip),
            Verdict::Down,
            "gossip wins once stale"
        );
        health.record(NodeId(1), Ok(()));
        health.record(NodeId(1), Err(&unreachable()));
        assert_eq!(
            health.check(NodeId(1), &gossip),
            Verdict::Down,
            "its own failure still counts"
        );
    }

    #[test]
    fn gossip_says_down_and_request_errors_say_nothing() {
        let health = Health::default();
        let gossip: HashSet<NodeId> = [NodeId(2)].into();
        assert_eq!(health.check(NodeId(1), &gossip), Verdict::Down);
        assert_eq!(health.check(NodeId(2), &gossip), Verdict::Up);
        health.record(NodeId(2), Err(&Error::InvalidArgument("r".into())));
        assert_eq!(health.check(NodeId(2), &gossip), Verdict::Up);
        assert_eq!(health.down_count(), 0);
    }
}
