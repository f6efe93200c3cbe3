//! What a membership change moves, computed from the two rings alone.
//!
//! `ringkv cluster plan` shows, before anything is committed, how each node's share of the
//! data changes and how much data the change will stream. Both follow from the rings: keys
//! change owners only at token boundaries, so walking the union of both rings' tokens once
//! and comparing the home replicas of each arc under either ring measures every node's share
//! before and after, what it gains (copies it will receive) and what it loses (copies it will
//! send away, then delete). Shares are fractions of the ring, so a node's share times the
//! number of distinct keys in the cluster estimates its key count, and the sum of the gains
//! times that number estimates the copies to stream.

use std::collections::BTreeMap;

use crate::hash::Position;
use crate::node::NodeId;
use crate::ring::Ring;

/// One node's shares of the ring as a home replica (`n` replicas per key: the shares of all
/// nodes sum to `n` on a ring of at least `n` members).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shift {
    /// The node these shares are of.
    pub node: NodeId,
    /// Its share before the change (0 for a joining node).
    pub before: f64,
    /// Its share after the change (0 for a leaving node).
    pub after: f64,
    /// The share of the ring it becomes a home replica of: data it receives.
    pub gained: f64,
    /// The share it stops being a home replica of: data it hands over, then deletes.
    pub lost: f64,
}

/// Every node's [`Shift`] from `before` to `after`, with `n` replicas per key, by node id.
/// Nodes of either ring appear.
pub fn shifts(before: &Ring, after: &Ring, n: usize) -> Vec<Shift> {
    let mut positions: Vec<Position> = before
        .members()
        .iter()
        .chain(after.members())
        .flat_map(|m| m.tokens.iter().copied())
        .collect();
    positions.sort_unstable();
    positions.dedup();
    let mut by_node: BTreeMap<NodeId, Shift> = BTreeMap::new();
    let whole = (1u128 << 64) as f64;
    let mut homes_before = Vec::with_capacity(n);
    let mut homes_after = Vec::with_capacity(n);
    for (i, &position) in positions.iter().enumerate() {
        // The arc (previous position, position]: a key anywhere in it meets the same first
        // token of either ring as a key at `position` does, since no token lies in between.
        let previous = positions[(i + positions.len() - 1) % positions.len()];
        let arc = if positions.len() == 1 {
            1.0
        } else {
            position.wrapping_sub(previous) as f64 / whole
        };
        homes_before.clear();
        homes_before.extend(before.preference_list_at(position).take(n).map(|m| m.id));
        homes_after.clear();
        homes_after.extend(after.preference_list_at(position).take(n).map(|m| m.id));
        for id in &homes_before {
            let shift = by_node.entry(*id).or_insert_with(|| Shift::none(*id));
            shift.before += arc;
            if !homes_after.contains(id) {
                shift.lost += arc;
            }
        }
        for id in &homes_after {
            let shift = by_node.entry(*id).or_insert_with(|| Shift::none(*id));
            shift.after += arc;
            if !homes_before.contains(id) {
                shift.gained += arc;
            }
        }
    }
    by_node.into_values().collect()
}

impl Shift {
    fn none(node: NodeId) -> Shift {
        Shift {
            node,
            before: 0.0,
            after: 0.0,
            gained: 0.0,
            lost: 0.0,
        }
    }
}

/// The fraction of all key copies a change streams: the gains summed, over `n`.
pub fn moved_fraction(shifts: &[Shift], n: usize) -> f64 {
    shifts.iter().map(|s| s.gained).sum::<f64>() / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claim;
    use crate::node::Member;
    use crate::ring::{DEFAULT_TOKENS_PER_WEIGHT, RingConfig};

    fn member(id: u64, weight: u32) -> Member {
        Member {
            id: NodeId(crate::hash::digest(&id.to_be_bytes())),
            addr: format!("127.0.0.1:{}", 7000 + id),
            weight,
            tokens: Vec::new(),
            zone: String::new(),
        }
    }

    fn ring(members: Vec<Member>) -> Ring {
        Ring::new(RingConfig::of(members)).expect("valid ring")
    }

    /// Counts, over real keys, what `shifts` estimates from arcs: they must agree closely.
    #[test]
    fn shares_and_gains_match_where_keys_really_go() {
        let t = DEFAULT_TOKENS_PER_WEIGHT;
        let five: Vec<Member> = (0..5).map(|i| member(i, 1)).collect();
        let before = claim::found(&five, t).expect("found");
        let after = claim::join(&before, member(5, 2), t).expect("join");
        let (before, after) = (ring(before), ring(after));
        let n = 3;
        let shifts = shifts(&before, &after, n);
        assert_eq!(shifts.len(), 6);
        let total_after: f64 = shifts.iter().map(|s| s.after).sum();
        assert!((total_after - n as f64).abs() < 1e-9, "{total_after}");

        let keys = 200_000;
        let mut gained: BTreeMap<NodeId, usize> = BTreeMap::new();
        let mut after_count: BTreeMap<NodeId, usize> = BTreeMap::new();
        let mut copies_moved = 0usize;
        for i in 0..keys {
            let key = format!("user{i}");
            let old: Vec<NodeId> = before
                .preference_list(b"default", key.as_bytes())
                .take(n)
                .map(|m| m.id)
                .collect();
            for m in after.preference_list(b"default", key.as_bytes()).take(n) {
                *after_count.entry(m.id).or_default() += 1;
                if !old.contains(&m.id) {
                    *gained.entry(m.id).or_default() += 1;
                    copies_moved += 1;
                }
            }
        }
        for s in &shifts {
            let measured = *after_count.get(&s.node).unwrap_or(&0) as f64 / keys as f64;
            assert!((measured - s.after).abs() < 0.01, "{s:?} vs {measured}");
            let measured = *gained.get(&s.node).unwrap_or(&0) as f64 / keys as f64;
            assert!((measured - s.gained).abs() < 0.01, "{s:?} vs {measured}");
        }
        let measured = copies_moved as f64 / (keys * n) as f64;
        assert!(
            (moved_fraction(&shifts, n) - measured).abs() < 0.01,
            "{measured}"
        );
        // Only the newcomer gains in a join; everyone else only loses.
        let newcomer = after.members().iter().find(|m| m.weight == 2).map(|m| m.id);
        for s in &shifts {
            if Some(s.node) == newcomer {
                assert_eq!(s.before, 0.0);
                assert!(s.gained > 0.0);
            } else {
                assert!(s.gained < 1e-9, "{s:?}");
            }
        }
    }

    #[test]
    fn an_unchanged_ring_moves_nothing() {
        let members = claim::found(
            &[member(1, 1), member(2, 1), member(3, 2)],
            DEFAULT_TOKENS_PER_WEIGHT,
        )
        .expect("found");
        let r = ring(members);
        let shifts = shifts(&r, &r, 3);
        assert_eq!(moved_fraction(&shifts, 3), 0.0);
        assert!(shifts.iter().all(|s| s.lost == 0.0 && s.before == s.after));
    }
}
