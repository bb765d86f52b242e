//! When to restart a failed actor, and when to give up: exponential backoff within a window.
//!
//! Pure: the supervisor passes the time of each failure in. More than `max_restarts` failures
//! of one actor within `restart_window` mean restarting will not help (a broken dependency, a
//! bug that fires on every message), so the supervisor gives up and the process exits non-zero
//! for systemd or Docker to restart it whole.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff;
use crate::config::SupervisorConfig;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RestartPolicy {
    pub max_restarts: u32,
    pub window: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl RestartPolicy {
    pub fn from_config(config: &SupervisorConfig) -> Self {
        Self {
            max_restarts: config.max_restarts,
            window: config.restart_window,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
        }
    }
}

/// What to do about one failure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Restart after this delay.
    Restart { after: Duration },
    /// Too many failures within the window: `failures` of them.
    GiveUp { failures: usize },
}

/// The recent failures of one actor.
#[derive(Clone, Debug, Default)]
pub struct RestartHistory {
    failures: VecDeque<Instant>,
}

impl RestartHistory {
    /// Records a failure at `now` and decides. The delay doubles with each failure still inside
    /// the window: the first restart is quick, a crash loop slows down.
    pub fn on_failure(&mut self, policy: &RestartPolicy, now: Instant) -> Decision {
        while self.failures.front().is_some_and(|at| now.saturating_duration_since(*at) > policy.window) {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        let failures = self.failures.len();
        if failures > policy.max_restarts as usize {
            return Decision::GiveUp { failures };
        }
        let failures_in_row = u32::try_from(failures).unwrap_or(u32::MAX);
        let after = backoff::step(policy.backoff_initial, policy.backoff_max, failures_in_row);
        Decision::Restart { after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(250),
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum_then_gives_up_past_the_limit() {
        let start = Instant::now();
        let mut history = RestartHistory::default();
        let decisions: Vec<Decision> =
            (0..4).map(|i| history.on_failure(&policy(), start + Duration::from_secs(i))).collect();
        assert_eq!(
            decisions,
            [
                Decision::Restart { after: Duration::from_millis(100) },
                Decision::Restart { after: Duration::from_millis(200) },
                Decision::Restart { after: Duration::from_millis(250) },
                Decision::GiveUp { failures: 4 },
            ]
        );
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let start = Instant::now();
        let mut history = RestartHistory::default();
        for minute in 0..10 {
            let decision = history.on_failure(&policy(), start + Duration::from_secs(61 * minute));
            assert_eq!(decision, Decision::Restart { after: Duration::from_millis(100) });
        }
    }

    #[test]
    fn zero_restarts_allowed_gives_up_at_the_first_failure() {
        let policy = RestartPolicy { max_restarts: 0, ..policy() };
        assert_eq!(RestartHistory::default().on_failure(&policy, Instant::now()), Decision::GiveUp { failures: 1 });
    }
}
