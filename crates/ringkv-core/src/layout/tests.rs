use super::*;

fn member(id: u64, weight: u32) -> Member {
    Member {
        id: NodeId(id),
        addr: format!("127.0.0.1:{}", 7000 + id),
        weight,
        tokens: Vec::new(),
    }
}

fn join(id: u64, weight: u32) -> Change {
    Change::Join {
        id: NodeId(id),
        addr: format!("127.0.0.1:{}", 7000 + id),
        weight,
    }
}

fn founded(ids: &[u64]) -> Layout {
    let mut layout = Layout::default();
    let members: Vec<Member> = ids.iter().map(|&id| member(id, 1)).collect();
    layout.found(&members).expect("found");
    layout
}

#[test]
fn stage_plan_commit_then_the_transfer_advances_in_two_phases() {
    let mut layout = founded(&[1, 2, 3]);
    assert_eq!((layout.version, layout.ring_version), (1, 1));
    layout.stage(join(4, 2)).expect("stage");
    assert_eq!(layout.version, 2, "staging bumps the layout version");
    assert_eq!(layout.ring_version, 1, "but not the ring's");
    let planned = layout.plan().expect("plan");
    assert_eq!(planned.len(), 4);
    layout.commit().expect("commit");
    assert_eq!(layout.members, planned, "commit does what plan showed");
    assert!(layout.staged.is_empty());
    let id = layout.ring_version;
    let t = layout.transition.as_ref().expect("transfer opened");
    assert_eq!((t.id, t.phase, t.previous.len()), (id, Phase::Streaming, 3));
    assert_eq!(layout.involved().len(), 4);

    // Nothing moves until every involved node has reported.
    let some = |n: NodeId| (n.0 <= 3).then_some((id, Step::Streamed));
    assert!(!layout.advance(some));
    let stale = |_| Some((id - 1, Step::Switched));
    assert!(
        !layout.advance(stale),
        "a report for another transfer does not count"
    );
    assert!(layout.advance(|_| Some((id, Step::Streamed))));
    assert_eq!(
        layout.transition.as_ref().map(|t| t.phase),
        Some(Phase::Switching)
    );
    assert!(!layout.advance(|_| Some((id, Step::Streamed))));
    assert!(layout.advance(|_| Some((id, Step::Switched))));
    assert_eq!(layout.transition, None);
    assert_eq!(layout.ring_version, id + 2);
}

#[test]
fn refusals_name_the_reason() {
    let mut empty = Layout::default();
    assert_eq!(empty.commit(), Err(LayoutError::NotFounded));
    assert_eq!(empty.stage(join(1, 1)), Err(LayoutError::NotFounded));
    assert_eq!(empty.clear(), Err(LayoutError::NotFounded));
    assert!(!empty.is_founded(), "a refused stage founds nothing");
    let mut layout = founded(&[1, 2]);
    assert_eq!(layout.commit(), Err(LayoutError::NothingStaged));
    assert_eq!(
        layout.found(&[member(9, 1)]),
        Err(LayoutError::AlreadyFounded(1))
    );
    assert_eq!(
        layout.stage(join(1, 1)),
        Err(LayoutError::Claim(ClaimError::AlreadyMember(NodeId(1))))
    );
    assert_eq!(
        layout.stage(Change::Leave { id: NodeId(7) }),
        Err(LayoutError::Claim(ClaimError::NotMember(NodeId(7))))
    );
    assert_eq!(layout.version, 1, "refused changes are not staged");
    layout
        .stage(Change::Leave { id: NodeId(1) })
        .expect("stage");
    assert_eq!(
        layout.stage(Change::Leave { id: NodeId(1) }),
        Err(LayoutError::AlreadyStaged(NodeId(1)))
    );
    assert_eq!(
        layout.stage(Change::Leave { id: NodeId(2) }),
        Err(LayoutError::Claim(ClaimError::LastMember(NodeId(2))))
    );
    layout.commit().expect("commit");
    layout.stage(join(3, 1)).expect("stage during a transfer");
    assert!(matches!(
        layout.commit(),
        Err(LayoutError::TransferUnderWay(_))
    ));
    layout.clear().expect("clear");
    assert!(layout.staged.is_empty());
    assert_eq!(
        layout.expect_version(1),
        Err(LayoutError::Moved {
            expected: 1,
            actual: layout.version
        })
    );
}

#[test]
fn rank_orders_by_version_then_digest() {
    let base = founded(&[1, 2, 3]);
    let mut a = base.clone();
    a.stage(join(4, 1)).expect("stage");
    let mut b = base.clone();
    b.stage(join(5, 1)).expect("stage");
    assert!(a.rank() > base.rank());
    assert_eq!(a.version, b.version);
    assert_ne!(a.rank(), b.rank(), "concurrent layouts still have an order");
    assert_eq!(a.rank(), a.clone().rank());
}
