//! `Batch`: many gets in one frame (the SDK's `get_many`).
//!
//! Only gets travel in a batch for now. A write in a batch would need what a lone write gets
//! on its way in (waiting for a newer ring before its copy is judged, `Service::behind`; a
//! task of its own when it must be synced), and its answer may not be dropped for size: the
//! batch would have to grow those first, with a protocol version of its own.

use ringkv_core::RingEpoch;
use ringkv_core::wire::{MAX_BATCH_REQUESTS, MAX_FRAME_LEN, Request, Response, WireError};

use super::Service;

/// About how many bytes one batch's answer holds: a get whose answer would take the batch's
/// past this is answered `Overloaded` instead (the SDK reads that key again on its own,
/// where a lone answer has the whole frame), so that a batch of large values never makes an
/// answer the frame limit refuses, which would close the connection. Half the frame: the
/// estimates below may be short by a little, and the refusals themselves take room.
const MAX_BATCH_ANSWER_BYTES: usize = MAX_FRAME_LEN / 2;

/// What each answer of a batch is charged on top of its state: its envelope, or a refusal
/// with its reason.
const RESULT_BYTES: usize = 256;

/// What each sibling of a state is charged on top of its value: its dot, timestamps, write
/// id and expiry (about 120 bytes of CBOR).
const SIBLING_BYTES: usize = 192;

impl Service {
    /// Handles each get of a batch as if it came alone, in order, and answers each on its
    /// own: one refused (a stale ring, a key too large) does not refuse the rest. Anything
    /// but a get in a batch is refused in its place, so a batch never reaches a handler its
    /// requests could not reach alone.
    pub(super) fn batch(
        &self,
        client_epoch: RingEpoch,
        requests: Vec<Request>,
    ) -> Result<Response, WireError> {
        if requests.len() > MAX_BATCH_REQUESTS {
            return Err(WireError::InvalidRequest {
                reason: format!(
                    "a batch of {} requests: at most {MAX_BATCH_REQUESTS}",
                    requests.len()
                ),
            });
        }
        let mut answer_bytes = 0;
        let results = requests
            .into_iter()
            .map(|request| {
                let result = match request {
                    Request::Get { .. } => self.handle(client_epoch, request),
                    other => Err(WireError::InvalidRequest {
                        reason: format!("a batch carries gets, not a {}", other.kind()),
                    }),
                };
                let bytes = RESULT_BYTES + result.as_ref().map_or(0, state_bytes);
                if answer_bytes + bytes > MAX_BATCH_ANSWER_BYTES {
                    answer_bytes += RESULT_BYTES;
                    return Err(WireError::Overloaded {
                        reason: "the batch's answer is full: ask for this key alone".into(),
                    });
                }
                answer_bytes += bytes;
                result
            })
            .collect();
        Ok(Response::Batch { results })
    }
}

/// About how many bytes an answer's state takes on the wire, erring high: its values, each
/// sibling's fields, each version vector entry.
fn state_bytes(response: &Response) -> usize {
    let Response::Value { state: Some(state) } = response else {
        return 0;
    };
    state
        .siblings()
        .iter()
        .map(|s| s.value.as_ref().map_or(0, |v| v.len()) + SIBLING_BYTES)
        .sum::<usize>()
        + state.version_vector().len() * 32
}
