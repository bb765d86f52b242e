//! The daemon's one source of "now".
//!
//! Wall-clock time is read once at start and advanced by tokio's monotonic clock. Readings are
//! therefore stamped on a clock that never steps backwards, and tests that pause tokio's clock
//! see a 15 s drift or a 10 s dropout happen in virtual time, timestamps included.

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin_utc: DateTime<Utc>,
    origin: Instant,
}

impl Clock {
    /// A clock that reads the system's wall time now.
    pub fn start() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A clock that says `origin_utc` now (tests use a fixed date).
    pub fn starting_at(origin_utc: DateTime<Utc>) -> Self {
        Self { origin_utc, origin: Instant::now() }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.at(Instant::now())
    }

    /// The wall time of a tokio instant.
    pub fn at(&self, instant: Instant) -> DateTime<Utc> {
        let elapsed = instant.saturating_duration_since(self.origin);
        self.origin_utc + TimeDelta::from_std(elapsed).unwrap_or(TimeDelta::MAX)
    }
}
