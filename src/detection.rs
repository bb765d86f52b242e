//! Pure detection state machines: one [`ParameterDetector`] per sensor × parameter.
//!
//! A detector is plain data. It never reads a clock, sleeps, logs or does I/O: the caller passes
//! the time in (the reading's `timestamp` and the clock's `now`) together with the [`Rules`] in
//! force, so a reload changes the rules on the next call without touching episode state, and a
//! restarted actor can be handed a clone of the state its predecessor held.
//!
//! # The rules
//!
//! Every comparison is strict (`>`), as in the prototype, and every anomaly belongs to an
//! *episode* that raises it once:
//!
//! - **Spike**: the first reading above the spike threshold raises one; it re-arms once a reading
//!   is at or below the threshold. The episode is defined by values alone, so a dropout in the
//!   middle of a run above does not re-arm it.
//! - **Drift**: the episode starts at the *timestamp* of the first reading above the drift
//!   threshold and raises once a reading's timestamp is more than `drift_duration` after that
//!   start; it re-arms on a reading at or below the threshold. Drift time is the readings' own
//!   time, never the arrival clock, so a batch of late readings is judged as it was measured. A
//!   spike reading is above the drift threshold too, and continues the drift episode.
//! - **Dropout**: measured on the clock, since no reading arrives to carry a time: from the
//!   arrival of the last accepted reading, or from `started_at` before the first one. It is raised
//!   once per silence by [`ParameterDetector::check_silence`] when the silence has lasted longer
//!   than `dropout_timeout`, and re-arms on the next accepted reading. Raising it also ends any
//!   drift episode: readings either side of a gap are not evidence of one continuous drift.
//!
//! [`ParameterDetector::observe`] never raises a dropout for the silence it ends: a caller that
//! must not miss one (its timer fired late) calls `check_silence` with the same `now` first.
//!
//! # Readings that are refused
//!
//! A refused reading ([`Rejection`]) raises nothing, changes no episode, and does **not** refresh
//! the silence clock, so a sensor that sends only refused readings is, for detection, silent, and
//! gets its dropout.
//!
//! - A value that is NaN or infinite ([`Rejection::NotFinite`]): it says nothing about the
//!   water, and letting `+inf` raise a spike would report a broken sensor as a dangerous plant.
//! - A reading whose timestamp is at or before the last accepted one
//!   ([`Rejection::OutOfOrder`]): a duplicate or a late delivery would otherwise run the drift
//!   timer backwards, or count the same reading twice.
//! - Except that the first reading after a raised dropout is accepted whatever its timestamp. A
//!   sensor whose clock stepped backwards would otherwise be refused until its clock caught up
//!   with the old one, possibly forever; a raised dropout has already ended the drift episode, so
//!   no timer can run backwards.
//!
//! No input makes a detector panic: timestamps at the ends of chrono's range, `Duration::ZERO`
//! or `Duration::MAX` rules, and thresholds that are not finite (which then never fire) are all
//! handled with saturating arithmetic.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::DetectionConfig;
use crate::domain::{Anomaly, AnomalyKind, Parameter, SensorId};

/// The thresholds and durations that apply to one parameter. Passed to every call, so a reload
/// changes the rules without touching episode state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    /// One reading above this raises a spike.
    pub spike_threshold: f64,
    /// Readings above this for longer than `drift_duration` raise a drift.
    pub drift_threshold: f64,
    pub drift_duration: Duration,
    /// A silence longer than this raises a dropout.
    pub dropout_timeout: Duration,
}

impl Rules {
    pub fn for_parameter(detection: &DetectionConfig, parameter: Parameter) -> Self {
        Self {
            spike_threshold: detection.spike_thresholds.get(parameter),
            drift_threshold: detection.drift_thresholds.get(parameter),
            drift_duration: detection.drift_duration,
            dropout_timeout: detection.dropout_timeout,
        }
    }

    fn drift_limit(&self) -> TimeDelta {
        saturating_delta(self.drift_duration)
    }

    fn dropout_limit(&self) -> TimeDelta {
        saturating_delta(self.dropout_timeout)
    }
}

/// A duration too long for chrono (about 292 million years) is as good as forever.
fn saturating_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// Episode state of one sensor × parameter: plain data, Clone, so it can be kept outside an actor
/// and handed to a restarted one.
#[derive(Clone, Debug, PartialEq)]
pub struct ParameterDetector {
    sensor_id: SensorId,
    parameter: Parameter,
    /// Silence is measured from here until the first reading is accepted.
    started_at: DateTime<Utc>,
    last: Option<LastReading>,
    /// A spike has been raised and no reading has come back to or below the threshold since.
    spike_raised: bool,
    drift: Option<DriftEpisode>,
    /// The current silence has had its dropout.
    dropout_raised: bool,
}

/// The last accepted reading.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LastReading {
    timestamp: DateTime<Utc>,
    value: f64,
    arrival: DateTime<Utc>,
}

/// A run of readings above the drift threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
struct DriftEpisode {
    /// The timestamp of the run's first reading.
    since: DateTime<Utc>,
    raised: bool,
}

/// Why a reading was refused. A refused reading raises nothing and changes no episode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rejection {
    /// The value is NaN or infinite.
    NotFinite,
    /// The timestamp is at or before `last`, the last accepted reading's.
    OutOfOrder { last: DateTime<Utc> },
}

/// What one reading raised: at most a spike and a drift.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Raised {
    pub spike: Option<Anomaly>,
    pub drift: Option<Anomaly>,
}

impl Raised {
    pub fn is_empty(&self) -> bool {
        self.spike.is_none() && self.drift.is_none()
    }
}

impl IntoIterator for Raised {
    type Item = Anomaly;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Anomaly>, std::option::IntoIter<Anomaly>>;

    /// The spike first, then the drift.
    fn into_iter(self) -> Self::IntoIter {
        self.spike.into_iter().chain(self.drift)
    }
}

/// An anomaly condition still in progress, for summaries.
#[derive(Clone, Debug, PartialEq)]
pub enum Ongoing {
    /// Above the drift threshold since the timestamp `since`; `value` is the latest reading.
    Drifting { since: DateTime<Utc>, value: f64 },
    /// No accepted reading since `since` (the last arrival, or the start), and the dropout is raised.
    Silent { since: DateTime<Utc> },
}

impl ParameterDetector {
    /// `started_at`: the clock when detection began; silence is measured from it until the first reading.
    pub fn new(sensor_id: SensorId, parameter: Parameter, started_at: DateTime<Utc>) -> Self {
        Self { sensor_id, parameter, started_at, last: None, spike_raised: false, drift: None, dropout_raised: false }
    }

    pub fn sensor_id(&self) -> &SensorId {
        &self.sensor_id
    }

    pub fn parameter(&self) -> Parameter {
        self.parameter
    }

    /// A reading taken at `timestamp` with `value` arrived when the clock said `now`.
    ///
    /// Allocates only when it raises something.
    pub fn observe(
        &mut self,
        rules: &Rules,
        timestamp: DateTime<Utc>,
        value: f64,
        now: DateTime<Utc>,
    ) -> Result<Raised, Rejection> {
        if !value.is_finite() {
            return Err(Rejection::NotFinite);
        }
        if let Some(last) = self.last {
            if timestamp <= last.timestamp && !self.dropout_raised {
                return Err(Rejection::OutOfOrder { last: last.timestamp });
            }
        }
        self.last = Some(LastReading { timestamp, value, arrival: now });
        self.dropout_raised = false;
        let spike = self.track_spike(rules, timestamp, value);
        let drift = self.track_drift(rules, timestamp, value);
        Ok(Raised { spike, drift })
    }

    /// No reading has come; the clock says `now`. A dropout, once per silence, when the silence has
    /// lasted longer than `rules.dropout_timeout`.
    ///
    /// A clock that went backwards gives a negative silence, which raises nothing until the clock
    /// has caught up.
    pub fn check_silence(&mut self, rules: &Rules, now: DateTime<Utc>) -> Option<Anomaly> {
        if self.dropout_raised {
            return None;
        }
        let silence = now.signed_duration_since(self.silence_start());
        if silence <= rules.dropout_limit() {
            return None;
        }
        self.dropout_raised = true;
        self.drift = None;
        Some(self.anomaly(
            AnomalyKind::Dropout,
            now,
            self.last_value(),
            rules.dropout_timeout.as_secs_f64(),
            Some(silence.as_seconds_f64()),
        ))
    }

    /// When `check_silence` could next raise a dropout: last accepted arrival (or start) + timeout;
    /// None while this silence's dropout is already raised.
    ///
    /// The comparison is strict, so a dropout is raised only *after* this instant: a caller woken
    /// exactly at it gets nothing and should look again a moment later. None too when the
    /// deadline is beyond the range of dates (a timeout of centuries): such a silence never ends
    /// in a dropout.
    pub fn silence_deadline(&self, rules: &Rules) -> Option<DateTime<Utc>> {
        if self.dropout_raised {
            return None;
        }
        self.silence_start().checked_add_signed(rules.dropout_limit())
    }

    pub fn last_value(&self) -> Option<f64> {
        self.last.map(|last| last.value)
    }

    /// The arrival time of the last accepted reading.
    pub fn last_arrival(&self) -> Option<DateTime<Utc>> {
        self.last.map(|last| last.arrival)
    }

    /// The drift or silence in progress, if any (a drift counts from its first reading above the
    /// drift threshold, raised or not yet).
    ///
    /// A silence counts only once its dropout is raised: without a clock the detector cannot tell
    /// a long silence from the pause between two readings. The two never overlap, since raising
    /// a dropout ends the drift and the next accepted reading ends the silence.
    pub fn ongoing(&self) -> Option<Ongoing> {
        if self.dropout_raised {
            return Some(Ongoing::Silent { since: self.silence_start() });
        }
        let (drift, last) = self.drift.zip(self.last)?;
        Some(Ongoing::Drifting { since: drift.since, value: last.value })
    }

    fn silence_start(&self) -> DateTime<Utc> {
        self.last.map_or(self.started_at, |last| last.arrival)
    }

    fn track_spike(&mut self, rules: &Rules, timestamp: DateTime<Utc>, value: f64) -> Option<Anomaly> {
        // Written as `>` with an `else`, so a NaN threshold reads as "never above" and re-arms.
        if value > rules.spike_threshold {
            if self.spike_raised {
                return None;
            }
            self.spike_raised = true;
            Some(self.anomaly(AnomalyKind::Spike, timestamp, Some(value), rules.spike_threshold, None))
        } else {
            self.spike_raised = false;
            None
        }
    }

    fn track_drift(&mut self, rules: &Rules, timestamp: DateTime<Utc>, value: f64) -> Option<Anomaly> {
        if value > rules.drift_threshold {
            let episode = *self.drift.get_or_insert(DriftEpisode { since: timestamp, raised: false });
            if episode.raised {
                return None;
            }
            // Accepted timestamps only increase within an episode, so this is never negative;
            // and two dates in chrono's range are always less than `TimeDelta::MAX` apart.
            let above = timestamp.signed_duration_since(episode.since);
            if above <= rules.drift_limit() {
                return None;
            }
            self.drift = Some(DriftEpisode { raised: true, ..episode });
            let seconds = Some(above.as_seconds_f64());
            Some(self.anomaly(AnomalyKind::Drift, timestamp, Some(value), rules.drift_threshold, seconds))
        } else {
            self.drift = None;
            None
        }
    }

    fn anomaly(
        &self,
        kind: AnomalyKind,
        timestamp: DateTime<Utc>,
        value: Option<f64>,
        threshold: f64,
        duration_seconds: Option<f64>,
    ) -> Anomaly {
        Anomaly::new(kind, timestamp, self.sensor_id.clone(), self.parameter, value, threshold, duration_seconds)
    }
}

#[cfg(test)]
mod tests;
