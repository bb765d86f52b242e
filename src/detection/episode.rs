//! The state machine of one rule on one sensor × parameter: when it raises, and when its
//! episode ends.
//!
//! Three shapes cover every rule:
//!
//! - [`LevelEpisode`]: a value beyond a limit (`spike`, `low_spike`: at once; `drift`,
//!   `low_drift`: for longer than a hold time, on the readings' own timestamps).
//! - [`RateEpisode`]: a change faster than a limit per second, measured over a sliding window.
//! - [`StuckEpisode`]: no change beyond a tolerance for longer than a time.
//!
//! A raised level or rate episode clears only once the value is back past the limit by the
//! deadband *and* has stayed back for the off-delay (on reading timestamps): a value hovering at
//! a limit raises one anomaly, not a chatter of them. A stuck episode clears on the first
//! reading that moves beyond the tolerance.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// A duration too long for chrono (about 292 million years) is as good as forever.
pub fn saturating_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// Which side of a limit is bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    High,
    Low,
}

impl Side {
    /// Strictly past the limit; a NaN limit is never passed.
    fn beyond(self, value: f64, limit: f64) -> bool {
        match self {
            Side::High => value > limit,
            Side::Low => value < limit,
        }
    }

    /// Back within the limit by at least `deadband`: at or below `limit - deadband` for a high rule.
    fn back(self, value: f64, limit: f64, deadband: f64) -> bool {
        match self {
            Side::High => value <= limit - deadband,
            Side::Low => value >= limit + deadband,
        }
    }

    /// The more extreme of two values in the bad direction.
    fn worse(self, a: f64, b: f64) -> f64 {
        match self {
            Side::High => a.max(b),
            Side::Low => a.min(b),
        }
    }
}

/// What an episode reported for one reading.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    Nothing,
    /// Raise an anomaly: the episode's first reading's time, and how long it has lasted.
    Raise {
        started: DateTime<Utc>,
        lasted: TimeDelta,
    },
    /// The raised episode ended; its most extreme value.
    Clear {
        peak: f64,
    },
}

/// A raised episode waiting to end.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Raised {
    started: DateTime<Utc>,
    peak: f64,
    /// The first reading of the current run back within the limit (by the deadband).
    back_since: Option<DateTime<Utc>>,
}

impl Raised {
    /// Readings back within the limit: clear once they have been for `off_delay`.
    fn on_back(&mut self, timestamp: DateTime<Utc>, off_delay: TimeDelta) -> bool {
        let since = *self.back_since.get_or_insert(timestamp);
        timestamp.signed_duration_since(since) >= off_delay
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Level {
    #[default]
    Idle,
    /// Beyond the limit since the first reading's timestamp, not for long enough yet.
    Pending {
        since: DateTime<Utc>,
    },
    Raised(Raised),
}

/// A value beyond a limit, at once or for longer than `hold`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelEpisode(Level);

/// The settings of a level rule, from the rules in force at each call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LevelRule {
    pub side: Side,
    pub limit: f64,
    /// Zero: raise on the first reading beyond.
    pub hold: Duration,
    pub deadband: f64,
    pub off_delay: Duration,
}

impl LevelEpisode {
    pub fn step(&mut self, rule: &LevelRule, timestamp: DateTime<Utc>, value: f64) -> Step {
        let beyond = rule.side.beyond(value, rule.limit);
        match &mut self.0 {
            Level::Idle | Level::Pending { .. } if !beyond => {
                self.0 = Level::Idle;
                Step::Nothing
            }
            Level::Idle | Level::Pending { .. } => {
                let since = match self.0 {
                    Level::Pending { since } => since,
                    _ => timestamp,
                };
                // Accepted timestamps only increase, so this is never negative.
                let lasted = timestamp.signed_duration_since(since);
                if rule.hold.is_zero() || lasted > saturating_delta(rule.hold) {
                    self.0 = Level::Raised(Raised { started: since, peak: value, back_since: None });
                    Step::Raise { started: since, lasted }
                } else {
                    self.0 = Level::Pending { since };
                    Step::Nothing
                }
            }
            Level::Raised(raised) => {
                if rule.side.back(value, rule.limit, rule.deadband) {
                    if raised.on_back(timestamp, saturating_delta(rule.off_delay)) {
                        let peak = raised.peak;
                        self.0 = Level::Idle;
                        return Step::Clear { peak };
                    }
                } else {
                    raised.back_since = None;
                    raised.peak = rule.side.worse(raised.peak, value);
                }
                Step::Nothing
            }
        }
    }

    /// A silence breaks a run that has not raised yet: readings either side of a gap are not
    /// evidence of one continuous excursion. A raised episode carries on (its alarm is
    /// suppressed while the sensor is silent, and not raised anew when it returns).
    pub fn interrupt(&mut self) {
        if matches!(self.0, Level::Pending { .. }) {
            self.0 = Level::Idle;
        }
    }

    /// The first reading's time of a run beyond the limit, raised or not yet.
    pub fn since(&self) -> Option<DateTime<Utc>> {
        match self.0 {
            Level::Idle => None,
            Level::Pending { since } => Some(since),
            Level::Raised(raised) => Some(raised.started),
        }
    }

    pub fn is_raised(&self) -> bool {
        matches!(self.0, Level::Raised(_))
    }

    /// Idle, pending or raised, as 0, 1 or 2: what a checkpoint must follow.
    pub fn phase(&self) -> u8 {
        match self.0 {
            Level::Idle => 0,
            Level::Pending { .. } => 1,
            Level::Raised(_) => 2,
        }
    }
}

/// Most points a rate window keeps: the window is sampled at 1/32 of its length, so memory stays
/// bounded however fast readings come.
const RATE_SAMPLES: usize = 33;

/// A change faster than `limit` units per second, between the newest reading and the oldest one
/// in the last `window`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateEpisode {
    /// Not kept across a restart: the next readings refill the window.
    #[serde(skip)]
    samples: VecDeque<(DateTime<Utc>, f64)>,
    raised: Option<Raised>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateRule {
    pub limit: f64,
    pub window: Duration,
    pub off_delay: Duration,
}

impl RateEpisode {
    /// The step, and the rate measured (units per second) when the window had enough history.
    pub fn step(&mut self, rule: &RateRule, timestamp: DateTime<Utc>, value: f64) -> (Step, Option<f64>) {
        let window = saturating_delta(rule.window);
        let spacing = window / RATE_SAMPLES as i32;
        // Keep the newest sample just older than the window, and the rest spaced out.
        while self.samples.len() >= 2 && timestamp.signed_duration_since(self.samples[1].0) >= window {
            self.samples.pop_front();
        }
        let rate = self.samples.front().and_then(|&(then, before)| {
            let elapsed = timestamp.signed_duration_since(then);
            // Half a window at least, so two close readings with noise do not make a rate.
            (elapsed >= window / 2 && elapsed > TimeDelta::zero())
                .then(|| (value - before) / elapsed.as_seconds_f64())
                .filter(|rate| rate.is_finite())
        });
        if self.samples.back().is_none_or(|&(last, _)| timestamp.signed_duration_since(last) >= spacing) {
            self.samples.push_back((timestamp, value));
            if self.samples.len() > RATE_SAMPLES {
                self.samples.pop_front();
            }
        }
        let Some(rate) = rate else { return (Step::Nothing, None) };
        let fast = rate.abs() > rule.limit;
        let step = match &mut self.raised {
            None if fast => {
                self.raised = Some(Raised { started: timestamp, peak: rate, back_since: None });
                Step::Raise { started: timestamp, lasted: TimeDelta::zero() }
            }
            None => Step::Nothing,
            Some(raised) if fast => {
                raised.back_since = None;
                if rate.abs() > raised.peak.abs() {
                    raised.peak = rate;
                }
                Step::Nothing
            }
            Some(raised) => {
                if raised.on_back(timestamp, saturating_delta(rule.off_delay)) {
                    let peak = raised.peak;
                    self.raised = None;
                    Step::Clear { peak }
                } else {
                    Step::Nothing
                }
            }
        };
        (step, Some(rate))
    }

    /// A silence empties the window: a rate across a gap says nothing of the process.
    pub fn interrupt(&mut self) {
        self.samples.clear();
    }

    pub fn is_raised(&self) -> bool {
        self.raised.is_some()
    }
}

/// No change beyond `tolerance` for longer than `after`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StuckEpisode {
    /// Where the value has stayed since when.
    anchor: Option<(DateTime<Utc>, f64)>,
    raised: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StuckRule {
    pub tolerance: f64,
    pub after: Duration,
}

impl StuckEpisode {
    pub fn step(&mut self, rule: &StuckRule, timestamp: DateTime<Utc>, value: f64) -> Step {
        let Some((since, anchor)) = self.anchor else {
            self.anchor = Some((timestamp, value));
            return Step::Nothing;
        };
        if (value - anchor).abs() > rule.tolerance {
            self.anchor = Some((timestamp, value));
            if std::mem::take(&mut self.raised) {
                return Step::Clear { peak: anchor };
            }
            return Step::Nothing;
        }
        let lasted = timestamp.signed_duration_since(since);
        if !self.raised && lasted > saturating_delta(rule.after) {
            self.raised = true;
            return Step::Raise { started: since, lasted };
        }
        Step::Nothing
    }

    /// A silence restarts the count, unless the episode is raised: a stuck instrument that went
    /// quiet and came back with the same value is still stuck.
    pub fn interrupt(&mut self) {
        if !self.raised {
            self.anchor = None;
        }
    }

    pub fn is_raised(&self) -> bool {
        self.raised
    }
}
