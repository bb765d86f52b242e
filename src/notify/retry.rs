//! How long a courier waits after a failed delivery: exponential backoff with jitter.

use std::time::Duration;

/// Doubles from `initial` up to `max` with each failure in a row; [`RetryDelay::reset`] after a
/// success. Each wait is drawn from the upper half of the step ("equal jitter"): never less than
/// half the backoff, so a receiver that is down is not hammered, and spread out, so daemons and
/// receivers that failed together do not retry in lockstep.
#[derive(Clone, Debug)]
pub struct RetryDelay {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl RetryDelay {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max: max.max(initial), failures: 0 }
    }

    /// The wait after one more failure; `random` is a draw from [0, 1).
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let step = self.initial.saturating_mul(1 << self.failures.min(20)).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        half + half.mul_f64(random.clamp(0.0, 1.0))
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
    fn the_wait_doubles_up_to_the_most_and_stays_in_the_upper_half() {
        let mut delay = RetryDelay::new(Duration::from_secs(1), Duration::from_secs(8));
        let lowest: Vec<Duration> = (0..6).map(|_| delay.next_delay(0.0)).collect();
        assert_eq!(lowest.iter().map(Duration::as_millis).collect::<Vec<_>>(), [500, 1000, 2000, 4000, 4000, 4000]);
        delay.reset();
        assert_eq!(delay.next_delay(0.999_999).as_millis(), 999);
        assert_eq!(delay.next_delay(0.5), Duration::from_millis(1500));
        assert_eq!(delay.failures(), 2);
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut delay = RetryDelay::new(Duration::from_secs(3600), Duration::from_secs(86_400));
        for _ in 0..100 {
            assert!(delay.next_delay(1.0) <= Duration::from_secs(86_400));
        }
    }
}
