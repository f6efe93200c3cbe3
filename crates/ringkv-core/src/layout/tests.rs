use super::*;
use crate::bucket::{BucketProps, ConflictPolicy};

fn member(id: u64, weight: u32) -> Member {
    Member {
        id: NodeId(id),
        addr: format!("127.0.0.1:{}", 7000 + id),
        weight,
        tokens: Vec::new(),
        zone: String::new(),
    }
}

fn join(id: u64, weight: u32) -> Change {
    Change::Join {
        id: NodeId(id),
        addr: format!("127.0.0.1:{}", 7000 + id),
        weight,
        zone: String::new(),
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
    let ring_version = layout.ring_version;
    let t = layout.transition.as_ref().expect("transfer opened");
    let id = t.id;
    assert_eq!((t.phase, t.previous.len()), (Phase::Streaming, 3));
    assert_eq!(layout.involved().len(), 4);

    // Nothing moves until every involved node has reported.
    let some = |n: NodeId| (n.0 <= 3).then_some((id, Step::Streamed));
    assert!(!layout.advance(some));
    let stale = |_| Some((id.wrapping_sub(1), Step::Switched));
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
    assert_eq!(layout.ring_version, ring_version + 2);
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

/// Reports of `step` for transfer `id` from every node in `ids`, nobody else.
fn reports(id: u64, step: Step, ids: &'static [u64]) -> impl Fn(NodeId) -> Option<(u64, Step)> {
    move |n: NodeId| ids.contains(&n.0).then_some((id, step))
}

fn transfer(layout: &Layout) -> &Transition {
    layout.transition.as_ref().expect("a transfer is under way")
}

fn ids(members: &[Member]) -> Vec<u64> {
    members.iter().map(|m| m.id.0).collect()
}

#[test]
fn a_removed_member_is_never_waited_for_and_the_ring_settles_without_it() {
    let mut layout = founded(&[1, 2, 3, 4]);
    layout
        .stage(Change::Weight {
            id: NodeId(4),
            weight: 3,
        })
        .expect("stage");
    layout.remove(NodeId(4)).expect("remove");
    assert!(layout.staged.is_empty(), "changes to the removed node go");
    let t = transfer(&layout).clone();
    assert_eq!(
        (ids(&t.previous), t.removed.clone()),
        (vec![1, 2, 3, 4], vec![NodeId(4)])
    );
    assert_eq!(ids(&layout.members), vec![1, 2, 3]);
    assert!(layout.advance(reports(t.id, Step::Streamed, &[1, 2, 3])));
    assert!(layout.advance(reports(t.id, Step::Switched, &[1, 2, 3])));
    assert_eq!(layout.transition, None, "settled without node 4's reports");
    assert_eq!(
        layout.remove(NodeId(4)),
        Err(LayoutError::Claim(ClaimError::NotMember(NodeId(4))))
    );
}

/// The wedge of a member that died while it was leaving: nothing moves until it is removed,
/// and then the transfer is planned again (new id) from the members that hold everything.
#[test]
fn removing_a_dead_leaving_member_unwedges_its_transfer() {
    let mut layout = founded(&[1, 2, 3, 4]);
    layout
        .stage(Change::Leave { id: NodeId(4) })
        .expect("stage");
    layout.commit().expect("commit");
    let wedged = transfer(&layout).clone();
    assert!(!layout.advance(reports(wedged.id, Step::Streamed, &[1, 2, 3])));
    let members = layout.members.clone();
    layout.remove(NodeId(4)).expect("remove");
    let t = transfer(&layout).clone();
    assert_ne!(t.id, wedged.id, "reports for the wedged plan do not count");
    assert_eq!(t.phase, Phase::Streaming, "survivors stream node 4's share");
    assert_eq!(t.previous, wedged.previous);
    assert_eq!(
        layout.members, members,
        "node 4's tokens went where leave put them"
    );
    assert!(!layout.advance(reports(wedged.id, Step::Streamed, &[1, 2, 3])));
    assert!(layout.advance(reports(t.id, Step::Streamed, &[1, 2, 3])));
    assert_eq!(
        layout.remove(NodeId(4)),
        Err(LayoutError::AlreadyRemoved(NodeId(4)))
    );
    assert!(layout.advance(reports(t.id, Step::Switched, &[1, 2, 3])));
    assert_eq!(layout.transition, None);
}

/// A member that dies once every node has streamed: the new members hold everything, so the
/// transfer is planned again from them.
#[test]
fn removing_a_member_while_switching_plans_from_the_new_members() {
    let mut layout = founded(&[1, 2, 3]);
    layout.stage(join(4, 1)).expect("stage");
    layout.commit().expect("commit");
    let first = transfer(&layout).id;
    assert!(layout.advance(reports(first, Step::Streamed, &[1, 2, 3, 4])));
    let switching = layout.members.clone();
    layout.remove(NodeId(2)).expect("remove");
    let t = transfer(&layout).clone();
    assert_eq!(t.previous, switching);
    assert_eq!(
        (t.phase, t.removed.clone()),
        (Phase::Streaming, vec![NodeId(2)])
    );
    assert_eq!(ids(&layout.members), vec![1, 3, 4]);
    assert_eq!(
        layout.remove(NodeId(9)),
        Err(LayoutError::Claim(ClaimError::NotMember(NodeId(9))))
    );
    assert_eq!(
        transfer(&layout).id,
        t.id,
        "a refused removal changes nothing"
    );
}

#[test]
fn an_abort_while_streaming_goes_back_and_while_switching_plans_the_way_back() {
    let mut layout = founded(&[1, 2, 3]);
    let settled = layout.members.clone();
    assert_eq!(layout.abort(), Err(LayoutError::NoTransfer));
    layout.stage(join(4, 1)).expect("stage");
    layout.commit().expect("commit");
    let ring_version = layout.ring_version;
    layout.abort().expect("abort");
    assert_eq!(layout.members, settled);
    // Settled once the previous members (not the node that was joining) have taken it.
    let back = transfer(&layout).clone();
    assert_eq!(back.previous, settled, "nothing moves");
    assert!(layout.advance(reports(back.id, Step::Streamed, &[1, 2, 3])));
    assert!(layout.advance(reports(back.id, Step::Switched, &[1, 2, 3])));
    assert_eq!(layout.transition, None);
    assert!(
        layout.ring_version > ring_version,
        "a new ring, which clients refetch"
    );

    layout.stage(join(4, 1)).expect("stage again");
    layout.commit().expect("commit again");
    let first = transfer(&layout).id;
    assert!(layout.advance(reports(first, Step::Streamed, &[1, 2, 3, 4])));
    let joined = layout.members.clone();
    layout.abort().expect("abort while switching");
    let back = transfer(&layout).clone();
    assert_eq!(
        (back.phase, back.previous.clone()),
        (Phase::Streaming, joined)
    );
    assert_eq!(layout.members, settled);
    assert_ne!(back.id, first);
}

/// Two operators commit different changes on two nodes at once: the two transfers differ in
/// id, so a node's report for the layout that loses the race never moves the winner on.
#[test]
fn racing_commits_open_transfers_with_different_ids() {
    let base = founded(&[1, 2, 3]);
    let (mut a, mut b) = (base.clone(), base);
    a.stage(join(4, 1)).expect("stage");
    b.stage(join(5, 1)).expect("stage");
    a.commit().expect("commit");
    b.commit().expect("commit");
    assert_eq!((a.version, a.ring_version), (b.version, b.ring_version));
    assert_ne!(transfer(&a).id, transfer(&b).id);
}

#[test]
fn a_replacement_takes_the_dead_members_tokens_and_nobody_waits_for_the_dead() {
    let mut layout = founded(&[1, 2, 3, 4]);
    let dead = layout.member(NodeId(4)).expect("member").clone();
    layout.replace(NodeId(4), member(5, 7)).expect("replace");
    let new = layout
        .member(NodeId(5))
        .expect("the replacement is a member");
    assert_eq!(
        (&new.tokens, new.weight),
        (&dead.tokens, dead.weight),
        "the dead node's share"
    );
    assert_eq!(ids(&layout.members), vec![1, 2, 3, 5]);
    let t = transfer(&layout).clone();
    assert_eq!(
        (ids(&t.previous), t.removed.clone()),
        (vec![1, 2, 3, 4], vec![NodeId(4)])
    );
    assert_eq!(
        layout.replace(NodeId(1), member(6, 1)),
        Err(LayoutError::TransferUnderWay(t.id))
    );
    assert!(layout.advance(reports(t.id, Step::Streamed, &[1, 2, 3, 5])));
    assert!(layout.advance(reports(t.id, Step::Switched, &[1, 2, 3, 5])));
    assert_eq!(
        layout.replace(NodeId(4), member(6, 1)),
        Err(LayoutError::Claim(ClaimError::NotMember(NodeId(4))))
    );
    assert_eq!(
        layout.replace(NodeId(1), member(2, 1)),
        Err(LayoutError::Claim(ClaimError::AlreadyMember(NodeId(2))))
    );
}

/// An abort leaps past the layouts the automatic advance could derive meanwhile, and the
/// rings they give order the same way; a removal survives the abort.
#[test]
fn an_abort_outranks_the_phases_computed_meanwhile_and_keeps_removals() {
    let mut layout = founded(&[1, 2, 3, 4]);
    layout.stage(join(5, 1)).expect("stage");
    layout.commit().expect("commit");
    let id = transfer(&layout).id;
    let mut advanced = layout.clone();
    assert!(advanced.advance(reports(id, Step::Streamed, &[1, 2, 3, 4, 5])));
    let mut settled = advanced.clone();
    assert!(settled.advance(reports(id, Step::Switched, &[1, 2, 3, 4, 5])));
    let mut aborted = layout.clone();
    aborted.abort().expect("abort");
    for other in [&advanced, &settled] {
        assert!(aborted.rank() > other.rank());
        let ring = |l: &Layout| l.ring_config(Buckets::default(), 0);
        let epoch = |l: &Layout| crate::Ring::new(ring(l)).expect("ring").epoch();
        assert!(epoch(&aborted).is_newer_than(&epoch(other)));
    }

    // A node removed during the transfer stays out of the members the abort goes back to.
    let mut layout = founded(&[1, 2, 3, 4]);
    layout.stage(join(5, 1)).expect("stage");
    layout.commit().expect("commit");
    layout.remove(NodeId(4)).expect("remove");
    layout.abort().expect("abort");
    assert_eq!(ids(&layout.members), vec![1, 2, 3]);
    let t = transfer(&layout);
    assert_eq!(
        (ids(&t.previous), t.removed.clone()),
        (vec![1, 2, 3, 4], vec![NodeId(4)])
    );
}

#[test]
fn readdress_moves_a_member_everywhere_it_is_named_and_keeps_the_transfer() {
    let mut layout = founded(&[1, 2, 3]);
    layout.stage(join(4, 1)).expect("stage");
    layout.commit().expect("commit");
    layout
        .stage(Change::Weight {
            id: NodeId(2),
            weight: 2,
        })
        .expect("stage");
    let before = layout.clone();
    let transfer = before.transition.as_ref().map(|t| t.id);

    assert_eq!(layout.readdress(NodeId(1), "node-1.example:7400"), Ok(true));
    assert_eq!(layout.version, before.version + 1, "clients must refetch");
    assert_eq!(layout.ring_version, before.ring_version, "no data moves");
    assert_eq!(
        layout.transition.as_ref().map(|t| t.id),
        transfer,
        "reports still count"
    );
    let t = layout.transition.as_ref().expect("transfer kept");
    for m in layout
        .members
        .iter()
        .chain(&t.previous)
        .filter(|m| m.id == NodeId(1))
    {
        assert_eq!(m.addr, "node-1.example:7400");
    }
    let tokens = |l: &Layout| {
        l.members
            .iter()
            .map(|m| m.tokens.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(tokens(&layout), tokens(&before));
    assert_eq!(layout.staged, before.staged);

    // Naming the address it already has changes nothing, not even the version.
    let version = layout.version;
    assert_eq!(
        layout.readdress(NodeId(1), "node-1.example:7400"),
        Ok(false)
    );
    assert_eq!(layout.version, version);

    // A node only the transfer's new members list (joining) moves too.
    assert_eq!(layout.readdress(NodeId(4), "127.0.0.9:7400"), Ok(true));
    assert_eq!(
        layout.member(NodeId(4)).map(|m| m.addr.as_str()),
        Some("127.0.0.9:7400")
    );

    assert_eq!(
        layout.readdress(NodeId(9), "127.0.0.9:7400"),
        Err(ClaimError::NotMember(NodeId(9)).into())
    );
    assert_eq!(
        layout.readdress(NodeId(1), "no port"),
        Err(LayoutError::BadAddress("no port".into()))
    );
}

#[test]
fn readdress_names_the_new_address_in_a_staged_join() {
    let mut layout = founded(&[1, 2, 3]);
    layout.stage(join(4, 1)).expect("stage");
    assert_eq!(layout.readdress(NodeId(4), "127.0.0.44:7400"), Ok(true));
    let planned = layout.plan().expect("plan");
    let joined = planned.iter().find(|m| m.id == NodeId(4)).expect("planned");
    assert_eq!(joined.addr, "127.0.0.44:7400");
}

fn lww(n: u8) -> BucketProps {
    BucketProps {
        n,
        r: 1,
        w: 1,
        conflict: ConflictPolicy::Lww,
        ttl_ms: None,
    }
}

#[test]
fn buckets_are_created_and_changed_in_the_layout_and_their_conflict_policy_never_changes() {
    let mut layout = founded(&[1, 2, 3]);
    let gossiped = Buckets::default();
    assert_eq!(
        layout.buckets, None,
        "a layout of an older release has none"
    );
    let version = layout.version;
    layout
        .set_bucket("sessions", lww(3), true, &gossiped)
        .expect("create");
    assert_eq!(layout.version, version + 1);
    assert!(
        layout.transition.is_none(),
        "same n as the default: nothing moves"
    );
    let table = layout
        .buckets
        .clone()
        .expect("the layout holds the table now");
    assert_eq!(table.props("sessions"), &lww(3));
    assert_eq!(
        table.default, gossiped.default,
        "the gossiped table was copied in"
    );

    assert_eq!(
        layout.set_bucket("sessions", lww(3), true, &gossiped),
        Err(LayoutError::BucketExists("sessions".into()))
    );
    assert_eq!(
        layout.set_bucket("carts", lww(3), false, &gossiped),
        Err(LayoutError::NoSuchBucket("carts".into()))
    );
    let siblings = BucketProps {
        conflict: ConflictPolicy::Siblings,
        ..lww(3)
    };
    assert!(matches!(
        layout.set_bucket("sessions", siblings, false, &gossiped),
        Err(LayoutError::ConflictImmutable { .. })
    ));
    let bad = BucketProps { r: 4, ..lww(3) };
    assert!(matches!(
        layout.set_bucket("sessions", bad, false, &gossiped),
        Err(LayoutError::BadBucket { .. })
    ));
    // r and w change at once.
    let quorum = BucketProps {
        r: 2,
        w: 2,
        ..lww(3)
    };
    layout
        .set_bucket("sessions", quorum, false, &gossiped)
        .expect("set");
    assert!(layout.transition.is_none());
    // The gossiped table no longer matters once the layout holds one.
    let other = Buckets {
        default: lww(1),
        ..Buckets::default()
    };
    let config = layout.ring_config(other, 9);
    assert_eq!(config.buckets.props("sessions"), &quorum);
    assert_eq!(config.buckets.default.n, 3);
}

#[test]
fn a_new_n_is_a_planned_transfer_that_an_abort_takes_back() {
    let mut layout = founded(&[1, 2, 3, 4]);
    let gossiped = Buckets::default();
    layout
        .set_bucket("b", lww(2), true, &gossiped)
        .expect("create with n=2");
    let t = transfer(&layout);
    assert_eq!(
        t.previous_buckets.as_ref().map(|b| b.props("b").n),
        Some(3),
        "the previous side keeps the default's n"
    );
    assert_eq!(t.previous, layout.members, "no member changes");
    let id = t.id;
    // One transfer at a time.
    assert!(matches!(
        layout.set_bucket("b", lww(4), false, &gossiped),
        Err(LayoutError::TransferUnderWay(_))
    ));
    assert!(layout.advance(|_| Some((id, Step::Switched))));
    assert!(layout.advance(|_| Some((id, Step::Switched))));
    assert!(layout.transition.is_none());

    // Raising it again, then aborting while streaming: back to n=2, nothing to stream back.
    // A bucket created meanwhile (same n) stays, with its policy.
    layout
        .set_bucket("b", lww(4), false, &gossiped)
        .expect("set");
    let kept = BucketProps {
        conflict: ConflictPolicy::Siblings,
        ..lww(3)
    };
    layout
        .set_bucket("z", kept, true, &gossiped)
        .expect("create");
    layout.abort().expect("abort");
    assert_eq!(layout.buckets.as_ref().map(|b| *b.props("z")), Some(kept));
    assert_eq!(layout.buckets.as_ref().map(|b| b.props("b").n), Some(2));
    let back = transfer(&layout);
    assert_eq!(back.previous_buckets, None, "the holders had n=2 too");

    // Aborting once switching: the new table's homes hold everything and stream back.
    let id = back.id;
    assert!(layout.advance(|_| Some((id, Step::Switched))));
    assert!(layout.advance(|_| Some((id, Step::Switched))));
    layout
        .set_bucket("b", lww(4), false, &gossiped)
        .expect("set");
    let id = transfer(&layout).id;
    assert!(layout.advance(|_| Some((id, Step::Streamed))));
    layout.abort().expect("abort");
    assert_eq!(layout.buckets.as_ref().map(|b| b.props("b").n), Some(2));
    let back = transfer(&layout);
    assert_eq!(
        back.previous_buckets.as_ref().map(|b| b.props("b").n),
        Some(4),
        "streamed back from the n=4 homes"
    );
}

#[test]
fn an_aborted_lowering_of_n_gets_its_quorums_back() {
    let mut layout = founded(&[1, 2, 3]);
    let gossiped = Buckets::default();
    let three = BucketProps::default();
    layout
        .set_bucket("b", three, true, &gossiped)
        .expect("create");
    let one = BucketProps {
        n: 1,
        r: 1,
        w: 1,
        ..three
    };
    layout
        .set_bucket("b", one, false, &gossiped)
        .expect("lower");
    assert!(layout.transition.is_some());
    layout.abort().expect("abort");
    let table = layout.buckets.as_ref().expect("table");
    assert_eq!(
        table.props("b"),
        &three,
        "n=3 with r=2, w=2 again, not r=w=1"
    );
}
