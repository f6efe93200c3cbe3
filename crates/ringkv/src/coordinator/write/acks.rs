//! What one attempt of a write has gathered across its two steps ([`Acks`]), and whether a
//! failed write may have been applied all the same ([`may_have_applied`], [`mark_in_doubt`]).

use ringkv_core::quorum::{Quorum, QuorumState};
use ringkv_core::{Member, NodeId};

use super::super::fanout::node_error;
use super::super::plan::{Plan, Target};
use crate::error::{Error, NodeError};
use crate::value::WriteReceipt;

/// What one attempt of a write has gathered, across its two steps.
pub(super) struct Acks<'p> {
    required: usize,
    /// Counts targets and spares: a spare's acknowledgement counts like a target's.
    pub(super) tally: Quorum,
    errors: Vec<NodeError>,
    pub(super) receipt: WriteReceipt,
    /// The plan's spares not used yet.
    pub(super) spares: std::slice::Iter<'p, Member>,
}

impl<'p> Acks<'p> {
    pub(super) fn new(plan: &'p Plan) -> Acks<'p> {
        Acks {
            required: plan.required,
            tally: Quorum::new(plan.required, plan.targets.len() + plan.spares.len()),
            errors: Vec::new(),
            receipt: WriteReceipt::default(),
            spares: plan.spares.iter(),
        }
    }

    /// Counts `target`'s acknowledgement, as a home or a fallback one.
    pub(super) fn acknowledge(&mut self, target: &Target) {
        match target.hint {
            None => self.receipt.home.push(target.member.id),
            Some(_) => self.receipt.fallback.push(target.member.id),
        }
        self.tally.succeed();
    }

    /// Counts `target`'s failure; says whether the quorum is still possible.
    pub(super) fn fail(&mut self, target: &Target, error: Error) -> QuorumState {
        self.errors.push(node_error(target, error));
        self.tally.fail()
    }

    /// The next spare, to stand in for `failed`: for the home replica itself, or for the
    /// home the failed fallback stood in for.
    pub(super) fn replacement(&mut self, failed: &Target) -> Option<Target> {
        let home: NodeId = failed.hint.unwrap_or(failed.member.id);
        self.spares.next().map(|member| Target {
            member: member.clone(),
            hint: Some(home),
        })
    }

    /// The quorum error of an attempt that did not reach its quorum. A target that
    /// acknowledged holds the write; a target that failed may (see [`may_have_applied`]).
    pub(super) fn failure(&mut self) -> Error {
        let errors = std::mem::take(&mut self.errors);
        let succeeded = self.tally.succeeded();
        let in_doubt = succeeded > 0 || errors.iter().any(|e| may_have_applied(&e.error));
        Error::Quorum {
            required: self.required,
            succeeded,
            errors,
            in_doubt,
        }
    }
}

/// Whether a replica that failed this way may still have applied the request: only errors
/// that prove it was refused (or never sent) say no.
pub(super) fn may_have_applied(e: &Error) -> bool {
    !matches!(
        e,
        Error::Server(_)
            | Error::Unreachable { .. }
            | Error::InvalidArgument(_)
            | Error::ContextRequired { .. }
    )
}

/// `e`, in doubt if any attempt of the write was `sent`.
pub(super) fn mark_in_doubt(e: Error, sent: bool) -> Error {
    match e {
        Error::Quorum {
            required,
            succeeded,
            errors,
            in_doubt,
        } => Error::Quorum {
            required,
            succeeded,
            errors,
            in_doubt: in_doubt || sent,
        },
        Error::Timeout { in_doubt } => Error::Timeout {
            in_doubt: in_doubt || sent,
        },
        other => other,
    }
}
