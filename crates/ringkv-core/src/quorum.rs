//! Quorum bookkeeping: has an operation heard enough answers, or can it no longer?
//!
//! The contract, stated once for reads and writes alike: an operation sent to `total`
//! replicas that needs `required` of them succeeds as soon as `required` have succeeded, and
//! fails as soon as more than `total - required` have failed (at that point no order of the
//! remaining answers can reach `required`). Until one of those, it is pending.

/// Where an operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumState {
    /// Not decided yet: some order of the answers still to come could go either way.
    Pending,
    /// `required` replicas succeeded: the operation succeeds, whatever the others answer.
    Reached,
    /// More than `total - required` replicas failed: `required` can no longer be reached.
    Failed,
}

/// Counts answers against a quorum. See the module docs for the contract.
#[derive(Clone, Copy, Debug)]
pub struct Quorum {
    required: usize,
    total: usize,
    succeeded: usize,
    failed: usize,
}

impl Quorum {
    /// No answers yet from the `total` replicas an operation was sent to, `required` of
    /// which must succeed. With `required > total` the quorum has failed from the start.
    pub fn new(required: usize, total: usize) -> Quorum {
        Quorum {
            required,
            total,
            succeeded: 0,
            failed: 0,
        }
    }

    /// Counts one success and returns where the operation now stands.
    pub fn succeed(&mut self) -> QuorumState {
        self.succeeded += 1;
        self.state()
    }

    /// Counts one failure (an error or a replica that will not answer) and returns where
    /// the operation now stands.
    pub fn fail(&mut self) -> QuorumState {
        self.failed += 1;
        self.state()
    }

    /// Where the operation stands, by the contract in the module docs.
    pub fn state(&self) -> QuorumState {
        if self.succeeded >= self.required {
            QuorumState::Reached
        } else if self.total.saturating_sub(self.failed) < self.required {
            QuorumState::Failed
        } else {
            QuorumState::Pending
        }
    }

    /// How many successes the operation needs, for errors that report the quorum.
    pub fn required(&self) -> usize {
        self.required
    }

    /// How many successes have been counted, for errors that report how far a failed
    /// operation got.
    pub fn succeeded(&self) -> usize {
        self.succeeded
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The state is decided exactly when the answers decide it, whatever their order.
        #[test]
        fn decides_exactly_when_the_answers_do(
            total in 1usize..8,
            required in 1usize..8,
            answers in prop::collection::vec(any::<bool>(), 0..8),
        ) {
            prop_assume!(required <= total);
            let mut q = Quorum::new(required, total);
            let (mut ok, mut failed) = (0, 0);
            for &a in answers.iter().take(total) {
                if a { ok += 1; q.succeed(); } else { failed += 1; q.fail(); }
                let expected = if ok >= required {
                    QuorumState::Reached
                } else if total - failed < required {
                    QuorumState::Failed
                } else {
                    QuorumState::Pending
                };
                prop_assert_eq!(q.state(), expected);
                if expected != QuorumState::Pending { break; }
            }
        }
    }

    #[test]
    fn impossible_quorums_fail_immediately() {
        assert_eq!(Quorum::new(3, 2).state(), QuorumState::Failed);
    }
}
