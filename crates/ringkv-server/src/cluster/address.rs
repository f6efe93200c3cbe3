//! A node keeps its member address current, and never serves alongside a twin.
//!
//! A node restarted with its data directory at another address than the layout lists (a
//! rescheduled pod, a replaced NIC, a new port) moves its member there by itself
//! ([`Layout::readdress`]), so that nobody has to run a command for a routine reschedule and
//! clients follow within one ring refresh. It does so only while nothing answers at the old
//! address under its id: if something does, that is a second process of this node (a copied
//! data directory started twice, or the old one still running), and two processes minting
//! one node's dots would make new writes look already seen. The process that finds the
//! other one at the member address is the odd one out, and it stops with
//! [`Error::DuplicateNode`]: at start-up before binding anything, or, if it learns the
//! layout later (it started from an old copy), as soon as it does.
//!
//! Each process draws a random instance number at start and reports it in `Stats`, so that a
//! node whose member address is another name for itself (a join typed as `localhost:7400`
//! for a node advertising `127.0.0.1:7400`) is not taken for its own twin.

use std::sync::Arc;
use std::time::Duration;

use ringkv::transport::Pool;
use ringkv_core::wire::{Request, Response};
use ringkv_core::{Layout, NodeId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::cluster::Keeper;
use crate::error::{Error, Result};

/// How often the node compares its member address with its own.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a probe of the old address waits for a connection and an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long another live process of this id may stay in gossip, unreachable to a probe,
/// before the one away from the member address stops, in gossip intervals: well past the
/// time a restarted node's previous process stays live in gossip (about 33 intervals).
const TWIN_PATIENCE_INTERVALS: u32 = 150;
/// ... and at least this long.
const TWIN_PATIENCE_MIN: Duration = Duration::from_secs(30);

/// Another live process gossiping under this node's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Twin {
    /// Where it gossips from: its resolved address, which is its data port too.
    pub addr: String,
    /// When it started (its gossip generation, in milliseconds).
    pub generation: u64,
}

/// Since when gossip has shown another live process of this id without interruption.
#[derive(Debug, Default)]
pub struct TwinWatch {
    since: Option<tokio::time::Instant>,
}

impl TwinWatch {
    /// The twin's address, if one has been live for `patience` and this process is not at
    /// the member address (then it is the one to stop).
    fn outlasted(
        &mut self,
        twins: &[Twin],
        at_member_address: bool,
        patience: Duration,
    ) -> Option<String> {
        let Some(first) = twins.first() else {
            self.since = None;
            return None;
        };
        let since = *self.since.get_or_insert_with(tokio::time::Instant::now);
        (!at_member_address && since.elapsed() >= patience).then(|| first.addr.clone())
    }
}

/// What answers at an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Nothing, or not in time.
    Nobody,
    /// This very process (the address is another name for it).
    Itself,
    /// Another process under this node's id.
    Twin,
    /// Some other node.
    Other(NodeId),
}

/// Compares the member address of node `me` with the address it advertises.
#[derive(Debug)]
pub struct AddressKeeper {
    me: NodeId,
    /// This process's instance number (see the module docs).
    instance: u64,
    /// The member address this process should have: its `advertise`.
    advertise: String,
    /// Its advertise address resolved: what gossip shows of it.
    gossip: std::net::SocketAddr,
    /// This process's gossip generation (see [`Twin::generation`]).
    generation: u64,
    /// See [`TWIN_PATIENCE_INTERVALS`].
    patience: Duration,
    pool: Pool,
}

impl AddressKeeper {
    /// The keeper of node `me`'s address for this process (`instance`), which advertises
    /// `advertise` (resolved: `gossip`) and gossips every `interval`.
    pub fn new(
        me: NodeId,
        instance: u64,
        (advertise, gossip): (String, std::net::SocketAddr),
        interval: Duration,
        pool: Pool,
    ) -> AddressKeeper {
        AddressKeeper {
            me,
            instance,
            advertise,
            gossip,
            generation: 0,
            patience: (interval * TWIN_PATIENCE_INTERVALS).max(TWIN_PATIENCE_MIN),
            pool,
        }
    }

    /// This process's gossip generation, once gossip has started.
    pub fn with_generation(mut self, generation: u64) -> AddressKeeper {
        self.generation = generation;
        self
    }

    /// The address `layout` lists this node at, if it lists it and not at `advertise`.
    pub fn moved_from(&self, layout: &Layout) -> Option<String> {
        let previous = layout.transition.iter().flat_map(|t| t.previous.iter());
        let listed = layout
            .members
            .iter()
            .chain(previous)
            .find(|m| m.id == self.me)
            .map(|m| m.addr.clone())
            .or_else(|| {
                layout.staged.iter().find_map(|c| match c {
                    ringkv_core::Change::Join { id, addr, .. } if *id == self.me => {
                        Some(addr.clone())
                    }
                    _ => None,
                })
            })?;
        (listed != self.advertise).then_some(listed)
    }

    /// Who answers at `addr`.
    pub async fn probe(&self, addr: &str) -> Probe {
        let call = self
            .pool
            .call(addr, PROBE_TIMEOUT, Default::default(), Request::Stats);
        match tokio::time::timeout(PROBE_TIMEOUT * 2, call).await {
            Ok(Ok((Response::Stats(stats), _))) if stats.node != self.me => {
                Probe::Other(stats.node)
            }
            Ok(Ok((Response::Stats(stats), _))) if stats.instance == self.instance => Probe::Itself,
            Ok(Ok((Response::Stats(_), _))) => Probe::Twin,
            Ok(Ok((other, _))) => {
                debug!(addr, answer = ?other, "unexpected answer to a stats probe");
                Probe::Nobody
            }
            Ok(Err(e)) => {
                debug!(addr, error = %e, "nothing answers at the old address");
                Probe::Nobody
            }
            Err(_) => Probe::Nobody,
        }
    }

    /// Refuses to start while another process answers as this node at the address `layout`
    /// (the layout this node last held) lists it at. Run before binding anything, so the
    /// answer cannot be this process's own.
    pub async fn check_alone(&self, layout: &Layout) -> Result<()> {
        let Some(old) = self.moved_from(layout) else {
            return Ok(());
        };
        match self.probe(&old).await {
            Probe::Twin => Err(Error::DuplicateNode {
                node: self.me,
                addr: old,
            }),
            Probe::Itself => Ok(()),
            Probe::Nobody | Probe::Other(_) => {
                info!(from = %old, to = %self.advertise, "started at a new address");
                Ok(())
            }
        }
    }

    /// One round: looks for a twin, then moves the member address here if it is elsewhere
    /// and it is safe to. `Err` if this process must stop (see [`TwinWatch`]).
    pub async fn check(&self, keeper: &Keeper, watch: &mut TwinWatch) -> Result<()> {
        let layout = keeper.layout();
        let moved_from = self.moved_from(&layout);
        // A twin is looked for at the member address and wherever gossip shows another live
        // process of this id, before anything else and whether or not this node has caught
        // up: a stale copy must stop however busy the layout is.
        let old_answered = match &moved_from {
            Some(old) => self.probe(old).await,
            None => Probe::Nobody,
        };
        // A member address that is another name for this process is this process's.
        let at_member_address = moved_from.is_none() || old_answered == Probe::Itself;
        if let (Probe::Twin, Some(old)) = (old_answered, &moved_from) {
            return Err(Error::DuplicateNode {
                node: self.me,
                addr: old.clone(),
            });
        }
        let twins = keeper.twins();
        let own = self.gossip.to_string();
        for twin in twins.iter().filter(|t| t.addr != own) {
            if self.probe(&twin.addr).await != Probe::Twin {
                continue;
            }
            // Both claim the member address (one advertise name on two hosts): the younger
            // process gives way (both, on a tie).
            if !at_member_address || twin.generation <= self.generation {
                return Err(Error::DuplicateNode {
                    node: self.me,
                    addr: twin.addr.clone(),
                });
            }
            warn!(addr = %twin.addr, "a younger process answers as this node; it is to stop itself");
        }
        // A live process of this id that cannot be reached to ask (a partition between the
        // two): the one away from the member address gives way, once the other has been
        // live longer than a restart's previous process stays in gossip.
        if let Some(addr) = watch.outlasted(&twins, at_member_address, self.patience) {
            return Err(Error::DuplicateNode {
                node: self.me,
                addr,
            });
        }
        let Some(old) = moved_from else {
            return Ok(());
        };
        // A node restarted from an old layout must not move itself in it: the move could
        // rank as a rival of the newer layout it has not fetched yet, and win. Nor while
        // another process of this id is live: it may be the one serving.
        let alone = layout.members.iter().all(|m| m.id == self.me);
        if (!alone && !keeper.caught_up()) || !twins.is_empty() {
            debug!("not moving the member address yet (catching up, or a twin is live)");
            return Ok(());
        }
        match old_answered {
            Probe::Itself | Probe::Twin => Ok(()),
            Probe::Nobody | Probe::Other(_) => {
                let base = layout.version;
                let moved = keeper.update(|next| {
                    // Only the layout the probe judged: a newer one is looked at next round.
                    next.expect_version(base)?;
                    next.readdress(self.me, &self.advertise).map(|_| ())
                });
                match moved {
                    Ok(layout) => info!(
                        from = %old,
                        to = %self.advertise,
                        version = layout.version,
                        "moved this node's member address"
                    ),
                    Err(e) => warn!(error = %e, "could not move this node's member address yet"),
                }
                Ok(())
            }
        }
    }

    /// Keeps checking until `shutdown`; on finding a twin, cancels `shutdown` (the node stops)
    /// and returns the error.
    pub fn spawn(self, keeper: Arc<Keeper>, shutdown: CancellationToken) -> JoinHandle<Result<()>> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut watch = TwinWatch::default();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                if let Err(e) = self.check(&keeper, &mut watch).await {
                    error!(error = %e, "stopping: this node's id is served elsewhere");
                    shutdown.cancel();
                    return Err(e);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use ringkv_core::Member;

    use super::*;
    use crate::storage::MemoryStore;

    fn founded(addrs: &[&str]) -> Layout {
        let members: Vec<Member> = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| Member {
                id: NodeId(i as u64 + 1),
                addr: addr.to_string(),
                weight: 1,
                tokens: Vec::new(),
                zone: String::new(),
            })
            .collect();
        let mut layout = Layout::default();
        layout.found(&members).expect("found");
        layout
    }

    #[tokio::test]
    async fn the_member_moves_only_once_caught_up_and_nothing_answers_at_the_old_address() {
        // Nothing listens on port 1 of loopback: connecting is refused at once.
        let layout = founded(&["127.0.0.1:1", "127.0.0.1:7402"]);
        let keeper = Keeper::detached(Arc::new(MemoryStore::new(NodeId(1))), layout.clone());
        let second = Duration::from_secs(1);
        let at = |addr: &str| (addr.to_string(), addr.parse().expect("socket address"));
        let me = AddressKeeper::new(NodeId(1), 7, at("127.0.0.9:7401"), second, Pool::new());
        assert_eq!(me.moved_from(&layout).as_deref(), Some("127.0.0.1:1"));
        let other = AddressKeeper::new(NodeId(2), 7, at("127.0.0.1:7402"), second, Pool::new());
        assert_eq!(other.moved_from(&layout), None, "at its member address");

        // Not caught up with the cluster's layout: no move (it could be based on an old one).
        me.check(&keeper, &mut TwinWatch::default())
            .await
            .expect("check");
        assert_eq!(keeper.layout().version, layout.version);
        keeper.set_heard(Some((layout.version + 1, 0)));
        me.check(&keeper, &mut TwinWatch::default())
            .await
            .expect("check");
        assert_eq!(
            keeper.layout().version,
            layout.version,
            "a peer holds a newer one"
        );

        keeper.set_heard(Some(layout.rank()));
        // Another live process of this id in gossip (unreachable): no move, it may serve.
        keeper.set_twins(vec![Twin {
            addr: "127.0.0.1:2".into(),
            generation: 1,
        }]);
        me.check(&keeper, &mut TwinWatch::default())
            .await
            .expect("check");
        assert_eq!(keeper.layout().version, layout.version, "a twin is live");
        keeper.set_twins(Vec::new());
        assert_eq!(me.probe("127.0.0.1:1").await, Probe::Nobody);
        me.check(&keeper, &mut TwinWatch::default())
            .await
            .expect("check");
        let moved = keeper.layout();
        assert_eq!(moved.version, layout.version + 1);
        assert_eq!(
            moved.member(NodeId(1)).map(|m| m.addr.as_str()),
            Some("127.0.0.9:7401")
        );
        assert_eq!(me.moved_from(&moved), None);
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_the_process_away_from_the_member_address_gives_way_and_only_after_patience() {
        let twin = vec![Twin {
            addr: "127.0.0.1:2".into(),
            generation: 1,
        }];
        let patience = Duration::from_secs(30);
        let mut watch = TwinWatch::default();
        assert_eq!(watch.outlasted(&twin, false, patience), None, "just seen");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(
            watch.outlasted(&twin, true, patience),
            None,
            "at the member address"
        );
        assert_eq!(
            watch.outlasted(&twin, false, patience).as_deref(),
            Some("127.0.0.1:2")
        );
        // Gone for a round: the clock starts again.
        assert_eq!(watch.outlasted(&[], false, patience), None);
        assert_eq!(watch.outlasted(&twin, false, patience), None);
    }
}
