//! Pure detection state machines: one [`ParameterDetector`] per sensor × parameter.
//!
//! A detector is plain data. It never reads a clock, sleeps, logs or does I/O: the caller passes
//! the time in (the reading's `timestamp` and its `arrival` on the daemon's clock) together with
//! the [`Rules`] in force, so a reload changes the rules on the next call without touching
//! episode state, and a restarted actor carries on with the state its predecessor held.
//!
//! # The rules
//!
//! Every comparison is strict (`>`, `<`), as in the prototype, and every anomaly belongs to an
//! *episode* that raises it once and ends with a [`Cleared`] transition. Each rule is off unless
//! its limit is configured for the sensor × parameter ([`Rules`]); the state machines are in
//! [`episode`].
//!
//! - **Spike** / **low spike**: the first reading above the spike threshold (below the low spike
//!   threshold) raises one.
//! - **Drift** / **low drift**: the episode starts at the *timestamp* of the first reading past
//!   the drift threshold and raises once a reading's timestamp is more than `drift_duration`
//!   after that start. Drift time is the readings' own time, never the arrival clock, so a batch
//!   of late readings is judged as it was measured. A spike reading is past the drift threshold
//!   too, and continues the drift episode.
//! - **Rate**: the change between the newest reading and the oldest of the last `rate_window`,
//!   per second, larger in size than `rate_limits`.
//! - **Stuck**: no change beyond `stuck_tolerance` for longer than `stuck_after`.
//! - A raised episode ends once a reading is back past the limit by `deadband` and readings have
//!   stayed back for `off_delay` (both zero by default: the first reading at or below a spike
//!   threshold ends a spike, as in the prototype). A stuck episode ends when the value moves.
//! - **Dropout**: measured on the clock, since no reading arrives to carry a time: a parameter
//!   whose last accepted reading *arrived* more than `dropout_timeout` ago raises one, once per
//!   silence, and the next accepted reading ends it. A parameter that has never reported raises
//!   none (a flow meter does not report temperature). For identity, the dropout is stamped with
//!   the last reading's timestamp plus the timeout, not the moment the timer fired, and says the
//!   silence was the timeout: two daemons fed the same readings raise the same dropout.
//!   A silence breaks runs that have not raised yet (pending drifts, stuck counts, the rate
//!   window); raised episodes carry on through it, so a sensor that comes back in the same
//!   condition is not raised anew.
//!
//! [`ParameterDetector::observe`] first looks at the silence up to the reading's arrival, so a
//! reading that arrives after the deadline, before a late timer has fired, still gets its
//! dropout first. That also makes a paused process (`SIGSTOP`) decide consistently: once it
//! resumes, every parameter whose last reading arrived more than the timeout before raises its
//! dropout, whether its timer or its next reading is handled first.
//!
//! # Readings that are refused
//!
//! A refused reading ([`Rejection`]) raises nothing, changes no episode, and does **not** refresh
//! the silence clock:
//!
//! - A value that is NaN or infinite ([`Rejection::NotFinite`]): it says nothing about the
//!   water, and letting `+inf` raise a spike would report a broken sensor as a dangerous plant.
//! - A reading whose timestamp is at or before the last accepted one
//!   ([`Rejection::OutOfOrder`]): a duplicate or a late delivery would otherwise run the drift
//!   timer backwards, or count the same reading twice.
//! - Except that the first reading after a raised dropout is accepted whatever its timestamp. A
//!   sensor whose clock stepped backwards would otherwise be refused until its clock caught up
//!   with the old one, possibly forever; the dropout has already broken every pending run.
//!
//! No input makes a detector panic: timestamps at the ends of chrono's range, `Duration::ZERO`
//! or `Duration::MAX` rules, and thresholds that are not finite (which then never fire) are all
//! handled with saturating arithmetic.

mod checkpoint;
pub mod episode;
mod rules;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Anomaly, AnomalyId, AnomalyKind, Cleared, EpisodeKey, Parameter, SensorId, Transition};
pub use checkpoint::Checkpoint;
use episode::{LevelEpisode, RateEpisode, Side, StuckEpisode, saturating_delta};
pub use rules::{Level, Rules};

/// Why a reading was refused. A refused reading raises nothing and changes no episode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rejection {
    /// The value is NaN or infinite.
    NotFinite,
    /// The timestamp is at or before `last`, the last accepted reading's.
    OutOfOrder { last: DateTime<Utc> },
}

/// What one call produced, oldest first: a dropout's clear comes before what the reading raises.
type Transitions = Vec<Transition>;

/// An anomaly condition still in progress, for summaries.
#[derive(Clone, Debug, PartialEq)]
pub enum Ongoing {
    /// Past the drift threshold since the timestamp `since`; `value` is the latest reading.
    Drifting { since: DateTime<Utc>, value: f64 },
    /// The dropout is raised: no reading since the one taken at `since`.
    Silent { since: DateTime<Utc> },
}

/// The last accepted reading.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct LastReading {
    timestamp: DateTime<Utc>,
    value: f64,
    arrival: DateTime<Utc>,
}

/// Episode state of one sensor × parameter: plain data, Clone, so it can be kept outside an actor
/// and handed to a restarted one.
#[derive(Clone, Debug, PartialEq)]
pub struct ParameterDetector {
    sensor_id: SensorId,
    parameter: Parameter,
    last: Option<LastReading>,
    spike: LevelEpisode,
    drift: LevelEpisode,
    low_spike: LevelEpisode,
    low_drift: LevelEpisode,
    rate: RateEpisode,
    stuck: StuckEpisode,
    /// The current silence's dropout, once raised: the anomaly it is.
    dropout: Option<AnomalyId>,
    /// The ids of the raised episodes, to name them when they clear.
    raised_ids: Vec<(AnomalyKind, AnomalyId)>,
    /// The phases of the last checkpoint taken ([`ParameterDetector::checkpoint_due`]).
    checkpointed_phase: u16,
}

impl ParameterDetector {
    pub fn new(sensor_id: SensorId, parameter: Parameter) -> Self {
        Self {
            sensor_id,
            parameter,
            last: None,
            spike: LevelEpisode::default(),
            drift: LevelEpisode::default(),
            low_spike: LevelEpisode::default(),
            low_drift: LevelEpisode::default(),
            rate: RateEpisode::default(),
            stuck: StuckEpisode::default(),
            dropout: None,
            raised_ids: Vec::new(),
            checkpointed_phase: 0,
        }
    }

    pub fn sensor_id(&self) -> &SensorId {
        &self.sensor_id
    }

    pub fn parameter(&self) -> &Parameter {
        &self.parameter
    }

    /// Whether a reading taken at `timestamp` would be in order: after the last accepted one,
    /// or the first after a raised dropout.
    pub fn accepts(&self, timestamp: DateTime<Utc>) -> Result<(), Rejection> {
        match self.last {
            Some(last) if timestamp <= last.timestamp && self.dropout.is_none() => {
                Err(Rejection::OutOfOrder { last: last.timestamp })
            }
            _ => Ok(()),
        }
    }

    /// A reading taken at `timestamp` with `value` arrived when the clock said `arrival`.
    ///
    /// Allocates only when it produces something.
    pub fn observe(
        &mut self,
        rules: &Rules,
        timestamp: DateTime<Utc>,
        value: f64,
        arrival: DateTime<Utc>,
    ) -> Result<Transitions, Rejection> {
        if !value.is_finite() {
            return Err(Rejection::NotFinite);
        }
        let mut transitions = Transitions::new();
        transitions.extend(self.check_silence(rules, arrival).map(Transition::Raised));
        self.accepts(timestamp)?;
        if let Some(anomaly_id) = self.dropout.take() {
            transitions.push(self.cleared(anomaly_id, AnomalyKind::Dropout, timestamp, Some(value), None));
        }
        self.last = Some(LastReading { timestamp, value, arrival });
        for rule in rules.levels() {
            let episode = self.level_mut(rule.kind);
            let step = episode.step(&rule.rule, timestamp, value);
            self.on_step(rules, rule.kind, step, timestamp, value, rule.rule.limit, &mut transitions);
        }
        if let Some(rate_rule) = &rules.rate {
            let (step, rate) = self.rate.step(rate_rule, timestamp, value);
            self.on_step(
                rules,
                AnomalyKind::Rate,
                step,
                timestamp,
                rate.unwrap_or(value),
                rate_rule.limit,
                &mut transitions,
            );
        }
        if let Some(stuck_rule) = &rules.stuck {
            let step = self.stuck.step(stuck_rule, timestamp, value);
            self.on_step(rules, AnomalyKind::Stuck, step, timestamp, value, stuck_rule.tolerance, &mut transitions);
        }
        Ok(transitions)
    }

    /// No reading has come; the clock says `now`. A dropout, once per silence, when the last
    /// accepted reading arrived more than `rules.dropout_timeout` before `now`.
    ///
    /// A clock that went backwards gives a negative silence, which raises nothing until the clock
    /// has caught up.
    pub fn check_silence(&mut self, rules: &Rules, now: DateTime<Utc>) -> Option<Anomaly> {
        let last = self.last?;
        let timeout = saturating_delta(rules.dropout_timeout);
        if self.dropout.is_some() || now.signed_duration_since(last.arrival) <= timeout {
            return None;
        }
        let timestamp = last.timestamp.checked_add_signed(timeout).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let seconds = rules.dropout_timeout.as_secs_f64();
        Some(self.raise_dropout(rules, last, timestamp, seconds))
    }

    /// Raises the dropout now, whatever the silence: the device said at `at` that it went offline
    /// (an MQTT death certificate). None if it is already raised or the parameter never reported.
    pub fn go_offline(&mut self, rules: &Rules, at: DateTime<Utc>) -> Option<Anomaly> {
        let last = self.last?;
        if self.dropout.is_some() {
            return None;
        }
        let at = at.max(last.timestamp);
        let silence = at.signed_duration_since(last.timestamp).as_seconds_f64();
        let anomaly = self.raise_dropout(rules, last, at, silence);
        let message = format!(
            "{} dropout detected: the device went offline (last value {})",
            rules.wording.title,
            crate::domain::round_for_display(last.value)
        );
        Some(anomaly.with_message(message))
    }

    fn raise_dropout(&mut self, rules: &Rules, last: LastReading, timestamp: DateTime<Utc>, silence: f64) -> Anomaly {
        for episode in [&mut self.spike, &mut self.drift, &mut self.low_spike, &mut self.low_drift] {
            episode.interrupt();
        }
        self.rate.interrupt();
        self.stuck.interrupt();
        let timeout = rules.dropout_timeout.as_secs_f64();
        let anomaly = self.anomaly(
            rules,
            AnomalyKind::Dropout,
            last.timestamp,
            timestamp,
            Some(last.value),
            timeout,
            Some(silence),
        );
        self.dropout = Some(anomaly.id.clone());
        anomaly
    }

    /// When `check_silence` could next raise a dropout: the last accepted arrival + timeout;
    /// None before the first reading, while this silence's dropout is already raised, or when the
    /// deadline is beyond the range of dates (such a silence never ends in a dropout).
    ///
    /// The comparison is strict, so a dropout is raised only *after* this instant: a caller woken
    /// exactly at it gets nothing and should look again a moment later.
    pub fn silence_deadline(&self, rules: &Rules) -> Option<DateTime<Utc>> {
        if self.dropout.is_some() {
            return None;
        }
        self.last?.arrival.checked_add_signed(saturating_delta(rules.dropout_timeout))
    }

    pub fn last_value(&self) -> Option<f64> {
        self.last.map(|last| last.value)
    }

    pub fn last_timestamp(&self) -> Option<DateTime<Utc>> {
        self.last.map(|last| last.timestamp)
    }

    pub fn is_silent(&self) -> bool {
        self.dropout.is_some()
    }

    /// The drift or silence in progress, if any (a drift counts from its first reading past the
    /// drift threshold, raised or not yet). A silence counts only once its dropout is raised.
    pub fn ongoing(&self) -> Option<Ongoing> {
        if self.dropout.is_some() {
            return self.last.map(|last| Ongoing::Silent { since: last.timestamp });
        }
        let since = self.drift.since().or(self.low_drift.since())?;
        Some(Ongoing::Drifting { since, value: self.last?.value })
    }

    fn level_mut(&mut self, kind: AnomalyKind) -> &mut LevelEpisode {
        match kind {
            AnomalyKind::Spike => &mut self.spike,
            AnomalyKind::Drift => &mut self.drift,
            AnomalyKind::LowSpike => &mut self.low_spike,
            _ => &mut self.low_drift,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_step(
        &mut self,
        rules: &Rules,
        kind: AnomalyKind,
        step: episode::Step,
        timestamp: DateTime<Utc>,
        value: f64,
        limit: f64,
        transitions: &mut Transitions,
    ) {
        match step {
            episode::Step::Nothing => {}
            episode::Step::Raise { started, lasted } => {
                let lasted = matches!(kind, AnomalyKind::Drift | AnomalyKind::LowDrift | AnomalyKind::Stuck)
                    .then(|| lasted.as_seconds_f64());
                let anomaly = self.anomaly(rules, kind, started, timestamp, Some(value), limit, lasted);
                self.raised_ids.retain(|(raised, _)| *raised != kind);
                self.raised_ids.push((kind, anomaly.id.clone()));
                transitions.push(Transition::Raised(anomaly));
            }
            episode::Step::Clear { peak } => {
                let position = self.raised_ids.iter().position(|(raised, _)| *raised == kind);
                if let Some(position) = position {
                    let (_, anomaly_id) = self.raised_ids.swap_remove(position);
                    transitions.push(self.cleared(anomaly_id, kind, timestamp, Some(value), Some(peak)));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn anomaly(
        &self,
        rules: &Rules,
        kind: AnomalyKind,
        started: DateTime<Utc>,
        timestamp: DateTime<Utc>,
        value: Option<f64>,
        threshold: f64,
        duration_seconds: Option<f64>,
    ) -> Anomaly {
        let episode =
            EpisodeKey { sensor_id: self.sensor_id.clone(), parameter: self.parameter.clone(), kind, started };
        Anomaly::new(&episode, timestamp, value, threshold, duration_seconds, rules.wording())
    }

    fn cleared(
        &self,
        anomaly_id: AnomalyId,
        kind: AnomalyKind,
        timestamp: DateTime<Utc>,
        value: Option<f64>,
        peak: Option<f64>,
    ) -> Transition {
        Transition::Cleared(Cleared {
            anomaly_id,
            kind,
            sensor_id: self.sensor_id.clone(),
            parameter: self.parameter.clone(),
            timestamp,
            value,
            peak,
        })
    }
}

/// Which way each level rule looks; the order is the order transitions come out in.
const LEVEL_KINDS: [(AnomalyKind, Side); 4] = [
    (AnomalyKind::Spike, Side::High),
    (AnomalyKind::Drift, Side::High),
    (AnomalyKind::LowSpike, Side::Low),
    (AnomalyKind::LowDrift, Side::Low),
];

#[cfg(test)]
mod tests;
