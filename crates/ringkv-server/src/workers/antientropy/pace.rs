//! Pacing repairs: at most `max_keys_per_sec` keys a second, on average since the exchange
//! began, so a large repair cannot crowd out the node's requests.

use std::time::Duration;

use tokio::time::Instant;

/// Paces a run of steps to a rate (0: unpaced).
#[derive(Debug)]
pub struct Pace {
    rate: u64,
    started: Instant,
    steps: u64,
}

impl Pace {
    pub fn new(rate: u64) -> Pace {
        Pace {
            rate,
            started: Instant::now(),
            steps: 0,
        }
    }

    /// Counts one step, waiting as long as the steps so far are ahead of the rate.
    pub async fn step(&mut self) {
        self.steps += 1;
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.steps as f64 / self.rate as f64);
        let spent = self.started.elapsed();
        if due > spent {
            tokio::time::sleep(due - spent).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::Pace;

    /// On tokio's paused clock (virtual time: the test asserts on no wall clock), 250 steps
    /// at 100 a second take 2.5 s, and none is let through early.
    #[tokio::test(start_paused = true)]
    async fn steps_are_held_to_the_rate() {
        let started = Instant::now();
        let mut pace = Pace::new(100);
        for step in 1..=250u64 {
            pace.step().await;
            let allowed = started.elapsed().as_secs_f64() * 100.0;
            assert!(step as f64 <= allowed + 1e-6, "step {step} at {allowed}");
        }
        assert!(started.elapsed() >= Duration::from_millis(2500));
        assert!(started.elapsed() < Duration::from_millis(2600));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_of_zero_is_unpaced() {
        let started = Instant::now();
        let mut pace = Pace::new(0);
        for _ in 0..10_000 {
            pace.step().await;
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
