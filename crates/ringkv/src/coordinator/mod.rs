//! The client as quorum coordinator (DESIGN.md §5).
//!
//! Every call starts with a plan: the key's targets under the current ring and health
//! (`ringkv_core::targets`: the first `n` healthy nodes of the preference list, fallbacks
//! standing in for unreachable home replicas; or, for `pr`/`pw` calls, the healthy home
//! replicas only) and the number of acknowledgements it needs. Too few targets: the call fails
//! at once with `Unavailable`, without sending anything.
//!
//! - **Read** (`R`): `Get` to `R` targets in parallel (homes first, a much slower node last;
//!   one more when a target fails, or when the answers are later than the learned
//!   speculative delay); after `R` answers (a "not found" is an answer, and a fallback
//!   answers with the hints it holds) their states are merged and returned. When the answers
//!   disagree, or on a sampled share of reads, every target is asked, and read repair waits,
//!   in the background and until the call's deadline, for their answers, merges everything,
//!   and sends the result to every target whose copy differs (to a fallback, as a hint).
//! - **Write** (`W`): `Put` to the first target, which stamps the write (a new dot) and returns
//!   the new state; if it fails or does not answer within `request_timeout`, the next target
//!   coordinates instead, with the same write id, so that a write that was applied after all
//!   is recognised as the same one. The state then goes with `Merge` to the remaining targets
//!   in parallel (with a hint to fallbacks); the call succeeds once `W` targets hold it and
//!   returns a receipt naming home and fallback acknowledgements. Merges still under way go on
//!   in the background.
//! - **Durable writes** (`dw`, or nodes with `fsync` durability): every request carries
//!   `sync`, and the call waits for `max(w, dw)`. The stamping replica answers the `Put` at
//!   once (`defer_sync`); if its copy still has to be synced it says so (`pending_sync`) and
//!   gets a `Merge` too, which waits for its sync in parallel with the other replicas': one
//!   round of log syncs, not two in a row.
//! - **LWW buckets** skip the stamp: the client builds the one-sibling state and sends it with
//!   `Merge` to every target at once: one round trip.
//!
//! Failed calls are retried (errors that may pass only: unreachable nodes, quorum misses,
//! timeouts) with jittered exponential back-off within the call's deadline; a write keeps its
//! write id across retries. A response carrying another ring epoch triggers a background ring
//! refetch; a request refused with `StaleRing` refetches and retries at once.
//!
//! The parts, in the order a call meets them:
//!
//! - `plan`: the targets of a call and the answers it needs (`plan::plan`).
//! - `fanout`: sending to replicas, one (`fanout::send`) or several in parallel
//!   (`fanout::Fanout`, the one way both reads and writes do it).
//! - `read`: [`get`], and read repair after it.
//! - `many`: [`get_many`]: the first requests of many reads, one `Batch` frame per node.
//! - `write`: [`write`]: the stamp step, the replicate step, and `lww` writes.
//! - `touch`: sliding expiry, the write a read with `touch` makes after it.
//! - `retry`: the retry loop around both, with back-off and the `StaleRing` refetch.
//!
//! Everything here works on the client's shared state ([`crate::inner::Inner`]), never on the
//! public [`crate::Client`], which calls in here.

mod fanout;
mod many;
mod plan;
mod read;
mod retry;
mod touch;
mod write;

pub(crate) use many::get_many;
pub(crate) use read::get;
pub(crate) use write::write;
