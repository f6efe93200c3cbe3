//! The write side of a connection, shared by the SDK, the server and the benchmark's echo
//! servers: frames queued by many tasks go out in as few syscalls as the traffic allows.

use futures::{Sink, SinkExt};
use tokio::sync::mpsc;

/// Feeds every frame `outbox` yields into `sink`, with everything else already queued in the
/// same flush (one write for a burst), until the outbox closes (`true`) or the sink fails
/// (`false`).
pub async fn write_batched<T, S>(outbox: &mut mpsc::Receiver<T>, sink: &mut S) -> bool
where
    S: Sink<T> + Unpin,
{
    while let Some(frame) = outbox.recv().await {
        if sink.feed(frame).await.is_err() {
            return false;
        }
        while let Ok(frame) = outbox.try_recv() {
            if sink.feed(frame).await.is_err() {
                return false;
            }
        }
        if sink.flush().await.is_err() {
            return false;
        }
    }
    true
}
