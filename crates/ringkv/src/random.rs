//! The SDK's randomness (write ids, back-off jitter, the id of its last-write-wins actor),
//! from the OS, or from a seed for a simulation.
//!
//! A deterministic simulation runs clients and nodes on one thread with simulated time; it
//! calls [`seed_thread`] so that the SDK's random choices on that thread are a function of
//! the simulation's seed, and a failing seed replays the same run.

use std::cell::RefCell;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes the SDK's random choices on this thread come from `seed` (simulations only).
pub fn seed_thread(seed: u64) {
    SEEDED.with(|rng| *rng.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// A random `u64`.
pub(crate) fn next_u64() -> u64 {
    SEEDED.with(|rng| match rng.borrow_mut().as_mut() {
        Some(seeded) => seeded.random(),
        None => rand::random(),
    })
}

/// A jitter factor in `[0.5, 1.5)`.
pub(crate) fn jitter() -> f64 {
    SEEDED.with(|rng| match rng.borrow_mut().as_mut() {
        Some(seeded) => seeded.random_range(0.5..1.5),
        None => rand::random_range(0.5..1.5),
    })
}
