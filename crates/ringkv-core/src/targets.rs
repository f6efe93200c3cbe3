//! Which replicas a request goes to: sloppy and strict quorums.
//!
//! A key's preference list puts its `n` home replicas first and fallbacks after them.
//!
//! - **Sloppy** ([`sloppy_targets`]): the first `n` *healthy* nodes of the preference list. A
//!   healthy home replica is a target as itself; each home replica that is down is stood in for
//!   by the next healthy fallback, which receives the state with a hint naming that home node
//!   and hands it off when the home node is back. The first target coordinates (stamps) writes.
//!   This is what keeps ringkv writable while any `w` nodes of the cluster can be reached.
//! - **Strict** ([`strict_targets`]): only the healthy home replicas, no stand-ins: what
//!   `pr`/`pw` calls use when the caller prefers an error to a sloppy quorum.
//!
//! Both keep preference-list order, so every client picks the same coordinator and the same
//! fallbacks for the same view of health.

use crate::node::{Member, NodeId};

/// One replica a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The member the request goes to.
    pub member: &'a Member,
    /// For a fallback, the home replica it stands in for (sent as the `Merge` hint).
    pub stands_in_for: Option<NodeId>,
}

impl Target<'_> {
    /// Whether the target is one of the key's home replicas, which keeps the state as its
    /// own copy rather than as a hint.
    pub fn is_home(&self) -> bool {
        self.stands_in_for.is_none()
    }
}

/// The sloppy quorum's targets for a key whose preference list is `preference`.
///
/// Stops pulling from `preference` as soon as it has what it needs, so a caller that passes
/// an iterator by reference can go on with the members after the targets (the spares).
pub fn sloppy_targets<'a>(
    preference: impl IntoIterator<Item = &'a Member>,
    n: usize,
    healthy: impl Fn(NodeId) -> bool,
) -> Vec<Target<'a>> {
    let mut targets = Vec::with_capacity(n);
    let mut down_homes = Vec::new();
    let mut preference = preference.into_iter();
    let mut position = 0;
    while position < n || !down_homes.is_empty() {
        let Some(member) = preference.next() else {
            break;
        };
        if position < n {
            if healthy(member.id) {
                targets.push(Target {
                    member,
                    stands_in_for: None,
                });
            } else {
                down_homes.push(member.id);
            }
        } else if healthy(member.id) {
            let home = down_homes.remove(0);
            targets.push(Target {
                member,
                stands_in_for: Some(home),
            });
        }
        position += 1;
    }
    targets
}

/// The strict quorum's targets: the healthy home replicas only.
pub fn strict_targets<'a>(
    preference: impl IntoIterator<Item = &'a Member>,
    n: usize,
    healthy: impl Fn(NodeId) -> bool,
) -> Vec<Target<'a>> {
    preference
        .into_iter()
        .take(n)
        .filter(|m| healthy(m.id))
        .map(|member| Target {
            member,
            stands_in_for: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn members(count: u64) -> Vec<Member> {
        (1..=count)
            .map(|id| Member {
                id: NodeId(id),
                addr: format!("127.0.0.1:{id}"),
                weight: 1,
                tokens: vec![id],
                zone: String::new(),
            })
            .collect()
    }

    #[test]
    fn a_down_home_is_replaced_by_the_next_healthy_fallback_with_a_hint() {
        let list = members(6);
        let down = [NodeId(2), NodeId(4)];
        let targets = sloppy_targets(&list, 3, |id| !down.contains(&id));
        let got: Vec<(u64, Option<u64>)> = targets
            .iter()
            .map(|t| (t.member.id.0, t.stands_in_for.map(|h| h.0)))
            .collect();
        assert_eq!(got, vec![(1, None), (3, None), (5, Some(2))]);
        assert_eq!(strict_targets(&list, 3, |id| !down.contains(&id)).len(), 2);
    }

    #[test]
    fn the_members_after_the_targets_are_left_to_the_caller() {
        let list = members(6);
        let mut walk = list.iter();
        let targets = sloppy_targets(&mut walk, 3, |id| id != NodeId(2));
        assert_eq!(targets.len(), 3);
        assert_eq!(
            walk.next().map(|m| m.id),
            Some(NodeId(5)),
            "node 5 is the first spare"
        );
    }

    #[test]
    fn with_every_home_down_the_first_healthy_fallback_coordinates() {
        let list = members(5);
        let targets = sloppy_targets(&list, 3, |id| id.0 > 3);
        assert_eq!(targets[0].member.id, NodeId(4));
        assert_eq!(targets[0].stands_in_for, Some(NodeId(1)));
        assert_eq!(targets.len(), 2, "only two healthy nodes exist");
    }

    proptest! {
        #[test]
        fn targets_are_the_first_n_healthy_nodes_with_one_hint_per_down_home(
            count in 1u64..12,
            n in 1usize..6,
            down in prop::collection::btree_set(1u64..12, 0..8),
        ) {
            let list = members(count);
            let healthy = |id: NodeId| !down.contains(&id.0);
            let targets = sloppy_targets(&list, n, healthy);
            let expected: Vec<NodeId> =
                list.iter().map(|m| m.id).filter(|&id| healthy(id)).take(n).collect();
            let got: Vec<NodeId> = targets.iter().map(|t| t.member.id).collect();
            prop_assert_eq!(&got, &expected);
            let homes: BTreeSet<NodeId> = list.iter().take(n).map(|m| m.id).collect();
            let hints: Vec<NodeId> = targets.iter().filter_map(|t| t.stands_in_for).collect();
            prop_assert_eq!(hints.iter().collect::<BTreeSet<_>>().len(), hints.len());
            for t in &targets {
                match t.stands_in_for {
                    None => prop_assert!(homes.contains(&t.member.id)),
                    Some(home) => {
                        prop_assert!(!homes.contains(&t.member.id));
                        prop_assert!(homes.contains(&home) && !healthy(home));
                    }
                }
            }
        }
    }
}
