//! Rings for anti-entropy's tests: members founded on loopback names, and optionally one
//! more member's join committed (a transfer under way).

use ringkv_core::{Change, Layout, Member, NodeId, Ring};

pub fn member(id: u64) -> Member {
    Member {
        id: NodeId(id),
        addr: format!("127.0.0.1:{id}"),
        weight: 1,
        tokens: Vec::new(),
        zone: String::new(),
    }
}

/// The ring of members `ids`, with `joining`'s join committed if given.
pub fn ring(ids: &[u64], joining: Option<u64>) -> Ring {
    let mut layout = Layout::default();
    let members: Vec<Member> = ids.iter().map(|&id| member(id)).collect();
    layout.found(&members).expect("found");
    if let Some(id) = joining {
        let joiner = member(id);
        layout
            .stage(Change::Join {
                id: joiner.id,
                addr: joiner.addr,
                weight: 1,
                zone: String::new(),
            })
            .expect("stage");
        layout.commit().expect("commit");
    }
    Ring::new(layout.ring_config(Default::default(), 0)).expect("ring")
}
