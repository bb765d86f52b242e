//! The rules in force for one sensor × parameter, resolved from the configuration: the sensor's
//! own limits (`[detection.sensors."<id>"]`) where it has them, else the parameter's.

use std::time::Duration;

use super::LEVEL_KINDS;
use super::episode::{LevelRule, RateRule, StuckRule};
use crate::config::{Config, Limits};
use crate::domain::{AnomalyKind, Wording};

/// The thresholds and durations that apply to one sensor × parameter. Passed to every call, so a
/// reload changes the rules without touching episode state.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// How messages name the parameter, and its unit.
    pub wording: Wording,
    /// A silence longer than this raises a dropout.
    pub dropout_timeout: Duration,
    /// The configured level rules, in [`LEVEL_KINDS`] order.
    levels: Vec<Level>,
    pub rate: Option<RateRule>,
    pub stuck: Option<StuckRule>,
}

/// One configured level rule and the kind of anomaly it raises.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Level {
    pub kind: AnomalyKind,
    pub rule: LevelRule,
}

impl Rules {
    /// The rules of `parameter` on `sensor_id` (a sensor without overrides gets the parameter's).
    pub fn for_sensor(config: &Config, sensor_id: &str, parameter: &str) -> Self {
        let detection = &config.detection;
        let own = detection.sensors.get(sensor_id);
        let pick = |limits: fn(&Limits) -> &std::collections::BTreeMap<String, f64>| {
            own.and_then(|own| limits(own).get(parameter)).or_else(|| limits(&detection.limits).get(parameter)).copied()
        };
        let pick_duration = |limits: fn(&Limits) -> &std::collections::BTreeMap<String, Duration>| {
            own.and_then(|own| limits(own).get(parameter)).or_else(|| limits(&detection.limits).get(parameter)).copied()
        };
        let deadband = pick(|limits| &limits.deadband).unwrap_or(0.0);
        let off_delay = pick_duration(|limits| &limits.off_delay).unwrap_or(Duration::ZERO);
        let limits = [
            pick(|limits| &limits.spike_thresholds),
            pick(|limits| &limits.drift_thresholds),
            pick(|limits| &limits.low_spike_thresholds),
            pick(|limits| &limits.low_drift_thresholds),
        ];
        let levels = LEVEL_KINDS
            .into_iter()
            .zip(limits)
            .filter_map(|((kind, side), limit)| {
                let hold = match kind {
                    AnomalyKind::Drift | AnomalyKind::LowDrift => detection.drift_duration,
                    _ => Duration::ZERO,
                };
                limit.map(|limit| Level { kind, rule: LevelRule { side, limit, hold, deadband, off_delay } })
            })
            .collect();
        let rate = pick(|limits| &limits.rate_limits).map(|limit| RateRule {
            limit,
            window: detection.rate_window,
            off_delay,
        });
        let stuck = pick(|limits| &limits.stuck_tolerance).map(|tolerance| StuckRule {
            tolerance,
            after: pick_duration(|limits| &limits.stuck_after).unwrap_or(Duration::MAX),
        });
        Self { wording: config.wording(parameter), dropout_timeout: detection.dropout_timeout, levels, rate, stuck }
    }

    pub fn levels(&self) -> impl Iterator<Item = &Level> {
        self.levels.iter()
    }

    /// The limit of one kind of rule, if it is configured.
    pub fn limit(&self, kind: AnomalyKind) -> Option<f64> {
        match kind {
            AnomalyKind::Rate => self.rate.map(|rate| rate.limit),
            AnomalyKind::Stuck => self.stuck.map(|stuck| stuck.tolerance),
            AnomalyKind::Dropout => Some(self.dropout_timeout.as_secs_f64()),
            _ => self.levels.iter().find(|level| level.kind == kind).map(|level| level.rule.limit),
        }
    }

    pub fn wording(&self) -> &Wording {
        &self.wording
    }
}
