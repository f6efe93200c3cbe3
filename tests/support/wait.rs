//! Waiting for a condition: polling with a deadline instead of sleeping a fixed time.
//!
//! A test that sleeps and hopes is either slow or flaky; these helpers check the condition
//! every few milliseconds and give up only when the deadline passes.

use std::time::{Duration, Instant};

use ringkv::Client;

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a read of `n` replicas succeeds through `client`: every node is back and the
/// client trusts it again (a node it saw fail is only used after a successful probe).
pub async fn until_replicas_answer(client: &Client, n: u8) -> anyhow::Result<()> {
    let all = ringkv::ReadOptions::default().with_r(n);
    let ok = eventually(Duration::from_secs(20), || async {
        client
            .get_with("__until_replicas_answer__", &all)
            .await
            .is_ok()
    })
    .await;
    anyhow::ensure!(ok, "{n} replicas did not all answer within 20 s");
    Ok(())
}
