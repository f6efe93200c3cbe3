//! `Batch`: several gets, puts and merges in one frame (the SDK's `get_many`, `put_many`).

use ringkv_core::RingEpoch;
use ringkv_core::wire::{MAX_BATCH_REQUESTS, MAX_FRAME_LEN, Request, Response, WireError};

use super::Service;

/// About how many bytes of states one batch's answer holds: past this, the requests left are
/// answered `Overloaded` (the SDK asks for those keys again on their own), so that a batch of
/// large values never makes an answer the frame limit refuses. The first request is always
/// handled: alone, it would have been answered too.
const MAX_BATCH_ANSWER_BYTES: usize = MAX_FRAME_LEN / 2;

impl Service {
    /// Handles each request of a batch as if it came alone, in order, and answers each on
    /// its own: one refused does not refuse the rest. Only gets, puts and merges travel in a
    /// batch; anything else in one (another batch, an operator's request) is refused in its
    /// place, so a batch never reaches a handler its requests could not reach alone.
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
                if answer_bytes > MAX_BATCH_ANSWER_BYTES {
                    return Err(WireError::Overloaded {
                        reason: "the batch's answer is full: ask for the rest again".into(),
                    });
                }
                let result = match request {
                    Request::Get { .. } | Request::Put { .. } | Request::Merge { .. } => {
                        self.handle(client_epoch, request)
                    }
                    other => Err(WireError::InvalidRequest {
                        reason: format!(
                            "a batch carries gets, puts and merges, not a {}",
                            other.kind()
                        ),
                    }),
                };
                answer_bytes += result.as_ref().map_or(0, state_bytes);
                result
            })
            .collect();
        Ok(Response::Batch { results })
    }
}

/// About how many bytes an answer's state takes on the wire: its values, and a little for
/// each sibling's dot and version vector entries.
fn state_bytes(response: &Response) -> usize {
    let state = match response {
        Response::Value { state: Some(state) } | Response::Stamped { state, .. } => state,
        _ => return 0,
    };
    state
        .siblings()
        .iter()
        .map(|s| s.value.as_ref().map_or(0, |v| v.len()) + 64)
        .sum::<usize>()
        + state.version_vector().len() * 16
}
