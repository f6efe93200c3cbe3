//! What reads and writes return.

use bytes::Bytes;
use ringkv_core::{Context, NodeId, SiblingSet};

/// The result of a read: the key's live siblings (usually one) and the context to write with.
///
/// - Not found: no siblings. The context may still be non-empty (the key was deleted), and a
///   write with it supersedes the delete on purpose.
/// - One sibling: [`Value::value`] is it.
/// - Several: concurrent writes that nobody has resolved. Merge them as the application sees
///   fit and write the result with [`Value::context`]: that replaces exactly these siblings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Value {
    siblings: Vec<Bytes>,
    context: Context,
}

impl Value {
    pub(crate) fn new(siblings: Vec<Bytes>, context: Context) -> Value {
        Value { siblings, context }
    }

    /// What `state` shows a caller: each live write once (a write stamped twice by a retry
    /// is one write), and the context that covers exactly what it shows.
    pub(crate) fn of(state: &SiblingSet) -> Value {
        Value::new(
            state.writes().filter_map(|s| s.value.clone()).collect(),
            Context::new(state.version_vector().clone()),
        )
    }

    /// Whether the key holds a value.
    pub fn is_found(&self) -> bool {
        !self.siblings.is_empty()
    }

    /// Whether concurrent writes left more than one value.
    pub fn has_siblings(&self) -> bool {
        self.siblings.len() > 1
    }

    /// The value, if there is exactly one.
    pub fn value(&self) -> Option<&Bytes> {
        match self.siblings.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Every live sibling, in a stable order (by the write that made it).
    pub fn siblings(&self) -> &[Bytes] {
        &self.siblings
    }

    /// Every live sibling, owned: for callers that keep or forward the values without
    /// copying them.
    pub fn into_siblings(self) -> Vec<Bytes> {
        self.siblings
    }

    /// What this read saw; pass it to the next write of this key.
    pub fn context(&self) -> &Context {
        &self.context
    }
}

/// Who acknowledged a successful write.
///
/// A sloppy quorum must never be invisible: `home` are acknowledgements from the key's home
/// replicas, `fallback` those from nodes standing in for unreachable home replicas.
///
/// Not constructible outside the SDK: a receipt may name more kinds of acknowledgement later.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteReceipt {
    /// Home replicas that acknowledged: the copies that stay where reads look first.
    pub home: Vec<NodeId>,
    /// Fallbacks that acknowledged with a hint for a home replica: the copies handoff still
    /// has to deliver home.
    pub fallback: Vec<NodeId>,
    /// What the write left (Riak's `return_body`): the key's live siblings at the replica
    /// that stamped it, this write among them, and the context that covers exactly those.
    /// Write with it next instead of reading first: a client that updates a key twice in a
    /// row then never leaves its own last write beside its next one as a sibling. Siblings
    /// beside this write are concurrent writes this replica knew of: merge them in, as after
    /// a read. (The stamped version vector alone would be wrong: it also covers those
    /// siblings, and a write with it would drop them unseen.) For an `lww` write, the value
    /// written and an empty context.
    pub written: Value,
}

impl WriteReceipt {
    pub(crate) fn new(home: Vec<NodeId>, fallback: Vec<NodeId>) -> WriteReceipt {
        WriteReceipt {
            home,
            fallback,
            written: Value::default(),
        }
    }

    /// Number of replicas that acknowledged before the call returned.
    pub fn acks(&self) -> usize {
        self.home.len() + self.fallback.len()
    }
}
