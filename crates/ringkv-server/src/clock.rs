//! The node's wall clock: the one clock that decides expiry on this node and bounds the
//! timestamps of `lww` writes.
//!
//! Expiry is judged by the servers' clocks, never a client's: a write's expiry is set from
//! the stamping node's clock, and each replica strips expired values by its own (see
//! `ringkv_core::siblings`, "Expiry"). A skew between nodes moves when a value disappears
//! from one of them by that skew, and no further: merging keeps the value while any replica
//! that has not yet passed its expiry holds it.
//!
//! Tests skew a node by starting it with `RINGKVD_CLOCK_OFFSET_MS` (milliseconds, may be
//! negative), read once at start-up: the sandbox cannot move the system clock of one process.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that skews this process's clock, for tests.
pub const OFFSET_ENV: &str = "RINGKVD_CLOCK_OFFSET_MS";

/// Milliseconds added to the system clock: 0 unless a test skews the node.
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Reads [`OFFSET_ENV`], once, at start-up. An unparsable value is an error, not ignored: a
/// test that meant to skew a node must not silently run it unskewed.
pub fn init_from_env() -> Result<(), String> {
    let Some(raw) = std::env::var_os(OFFSET_ENV) else {
        return Ok(());
    };
    let text = raw.to_string_lossy();
    let offset: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{OFFSET_ENV}={text:?} is not a number of milliseconds"))?;
    OFFSET_MS.store(offset, Ordering::Relaxed);
    Ok(())
}

/// Milliseconds since the Unix epoch on this node's clock (0 if the system clock is before
/// the epoch).
pub fn now_ms() -> u64 {
    let system = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    system.saturating_add_signed(OFFSET_MS.load(Ordering::Relaxed))
}
