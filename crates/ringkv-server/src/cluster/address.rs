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
    pool: Pool,
}

impl AddressKeeper {
    pub fn new(me: NodeId, instance: u64, advertise: String, pool: Pool) -> AddressKeeper {
        AddressKeeper {
            me,
            instance,
            advertise,
            pool,
        }
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

    /// One comparison: moves the member address here if it is elsewhere and nothing answers
    /// there under this node's id. `Err` if a twin does.
    pub async fn check(&self, keeper: &Keeper) -> Result<()> {
        let layout = keeper.layout();
        let Some(old) = self.moved_from(&layout) else {
            return Ok(());
        };
        // A node restarted from an old layout must not move itself in it: the move could
        // rank as a rival of the newer layout it has not fetched yet, and win.
        let alone = layout.members.iter().all(|m| m.id == self.me);
        if !alone && !keeper.caught_up() {
            debug!("not moving the member address before catching up with the layout");
            return Ok(());
        }
        match self.probe(&old).await {
            Probe::Itself => Ok(()),
            Probe::Twin => Err(Error::DuplicateNode {
                node: self.me,
                addr: old,
            }),
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
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                if let Err(e) = self.check(&keeper).await {
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
        let me = AddressKeeper::new(NodeId(1), 7, "127.0.0.9:7401".into(), Pool::new());
        assert_eq!(me.moved_from(&layout).as_deref(), Some("127.0.0.1:1"));
        let other = AddressKeeper::new(NodeId(2), 7, "127.0.0.1:7402".into(), Pool::new());
        assert_eq!(other.moved_from(&layout), None, "at its member address");

        // Not caught up with the cluster's layout: no move (it could be based on an old one).
        me.check(&keeper).await.expect("check");
        assert_eq!(keeper.layout().version, layout.version);
        keeper.set_heard(Some((layout.version + 1, 0)));
        me.check(&keeper).await.expect("check");
        assert_eq!(
            keeper.layout().version,
            layout.version,
            "a peer holds a newer one"
        );

        keeper.set_heard(Some(layout.rank()));
        assert_eq!(me.probe("127.0.0.1:1").await, Probe::Nobody);
        me.check(&keeper).await.expect("check");
        let moved = keeper.layout();
        assert_eq!(moved.version, layout.version + 1);
        assert_eq!(
            moved.member(NodeId(1)).map(|m| m.addr.as_str()),
            Some("127.0.0.9:7401")
        );
        assert_eq!(me.moved_from(&moved), None);
    }
}
