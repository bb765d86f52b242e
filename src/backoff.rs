//! How long to wait after failures in a row: one exponential backoff for every retry in the
//! daemon (Redis writes, the broker, notifications, actor restarts, the model).
//!
//! The step doubles from `initial` up to `max` with each failure in a row. Where several daemons
//! or connections may fail together (Redis, the broker, a webhook receiver), [`Backoff`] draws
//! each wait from the upper half of its step ("equal jitter"): never less than half, so what is
//! down is not hammered, and spread out, so those that failed together do not retry in lockstep.
//! Actor restarts and the model's retries use the bare [`step`]: they are one daemon's own
//! schedule, and the model's retries line up with the summary windows.

use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// The step after `failures` failures in a row (the first failure waits `initial`).
pub fn step(initial: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    initial.saturating_mul(1 << doublings).min(max.max(initial))
}

/// Failures in a row and the waits they call for, with jitter; [`Backoff::reset`] after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    /// Jitter needs no cryptography, and a seed makes tests exact.
    rng: Xoshiro256PlusPlus,
}

impl Backoff {
    /// Seeded at random (the standard library's hash keys), so that two daemons draw different
    /// waits.
    pub fn new(initial: Duration, max: Duration) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        Self::seeded(initial, max, seed)
    }

    pub fn seeded(initial: Duration, max: Duration, seed: u64) -> Self {
        Self { initial, max: max.max(initial), failures: 0, rng: Xoshiro256PlusPlus::seed_from_u64(seed) }
    }

    /// The wait after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let half = step(self.initial, self.max, self.failures) / 2;
        half + half.mul_f64(self.rng.random::<f64>())
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_doubles_from_the_first_failure_up_to_the_most() {
        let steps: Vec<u128> = (1..=6)
            .map(|failures| step(Duration::from_secs(1), Duration::from_secs(8), failures).as_millis())
            .collect();
        assert_eq!(steps, [1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(step(Duration::from_secs(1), Duration::from_secs(8), 0), Duration::from_secs(1));
    }

    #[test]
    fn each_wait_is_in_the_upper_half_of_its_step_and_a_success_starts_over() {
        let mut backoff = Backoff::seeded(Duration::from_millis(100), Duration::from_secs(2), 42);
        for failures in 1..=8 {
            let wait = backoff.next_delay();
            let ceiling = step(Duration::from_millis(100), Duration::from_secs(2), failures);
            assert!(wait >= ceiling / 2 && wait <= ceiling, "failure {failures}: {wait:?} outside {ceiling:?}");
        }
        assert_eq!(backoff.failures(), 8);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn two_daemons_do_not_wait_in_step() {
        let waits = |seed| {
            let mut backoff = Backoff::seeded(Duration::from_millis(100), Duration::from_secs(2), seed);
            (0..8).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_ne!(waits(42), waits(7));
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut backoff = Backoff::seeded(Duration::from_secs(3600), Duration::from_secs(86_400), 1);
        for _ in 0..100 {
            assert!(backoff.next_delay() <= Duration::from_secs(86_400));
        }
    }
}
