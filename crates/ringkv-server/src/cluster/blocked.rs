//! A transfer that cannot finish because members it waits for are down: which ones, and
//! saying so (the log here; `/metrics` and the CLI read `ClusterView::transfer_waits_on_down`).

use std::time::Duration;

use ringkv_core::NodeId;
use tracing::warn;

use crate::cluster::keeper::ClusterView;

impl ClusterView {
    /// The members the transfer under way waits for that this node's failure detector sees
    /// down (involved, not declared removed), sorted: a transfer never finishes without
    /// them, so `status`, `/metrics` and the log name them with the command that unblocks
    /// it (`ringkv cluster remove`). Empty without a transfer.
    pub fn transfer_waits_on_down(&self) -> Vec<NodeId> {
        let Some(t) = self.ring.transition() else {
            return Vec::new();
        };
        let mut down: Vec<NodeId> = self
            .ring
            .all_members()
            .iter()
            .map(|m| m.id)
            .filter(|id| !t.is_removed(*id) && !self.alive.contains(id))
            .collect();
        down.sort_unstable();
        down
    }
}

/// How often the log repeats that a transfer waits for members that are down.
const BLOCKED_REPEAT: Duration = Duration::from_secs(60);

/// Says in the log, when it starts and then every [`BLOCKED_REPEAT`], that the transfer under
/// way waits for members this node sees down, naming them and the command that unblocks it.
#[derive(Default)]
pub(crate) struct BlockedTransfer {
    told: Option<(Vec<NodeId>, tokio::time::Instant)>,
}

impl BlockedTransfer {
    pub(crate) fn tell(&mut self, view: &ClusterView) {
        let down = view.transfer_waits_on_down();
        if down.is_empty() {
            self.told = None;
            return;
        }
        let due = match &self.told {
            Some((told, at)) => *told != down || at.elapsed() >= BLOCKED_REPEAT,
            None => true,
        };
        if due {
            let names: Vec<String> = down.iter().map(ToString::to_string).collect();
            warn!(
                down = %names.join(", "),
                "the transfer under way waits for members that are down; if one is gone for \
                 good, `ringkv cluster remove NODE` (or `ringkv cluster abort`) ends the wait"
            );
            self.told = Some((down, tokio::time::Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use ringkv_core::{Layout, NodeId, Ring};

    use crate::cluster::keeper::ClusterView;

    /// A transfer names the members it waits for that are down, never a removed one, and a
    /// settled ring names none.
    #[test]
    fn a_transfer_names_the_down_members_it_waits_for() {
        let member = |id: u64| ringkv_core::Member {
            id: NodeId(id),
            addr: format!("127.0.0.1:{id}"),
            weight: 1,
            tokens: Vec::new(),
            zone: String::new(),
        };
        let mut layout = Layout::default();
        layout
            .found(&[member(1), member(2), member(3), member(4)])
            .expect("found");
        let view = |layout: &Layout, alive: &[u64]| {
            let ring = Ring::new(layout.ring_config(Default::default(), 0)).expect("ring");
            let mut view = ClusterView::fixed(ring);
            view.alive = alive.iter().map(|&id| NodeId(id)).collect();
            view
        };
        assert!(
            view(&layout, &[1, 2, 3])
                .transfer_waits_on_down()
                .is_empty()
        );
        layout
            .stage(ringkv_core::Change::Leave { id: NodeId(4) })
            .expect("stage");
        layout.commit().expect("commit");
        assert_eq!(
            view(&layout, &[1, 2, 3]).transfer_waits_on_down(),
            vec![NodeId(4)]
        );
        assert_eq!(
            view(&layout, &[1, 3]).transfer_waits_on_down(),
            vec![NodeId(2), NodeId(4)]
        );
        layout.remove(NodeId(4)).expect("remove");
        assert!(
            view(&layout, &[1, 2, 3])
                .transfer_waits_on_down()
                .is_empty()
        );
    }
}
