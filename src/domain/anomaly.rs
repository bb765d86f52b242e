//! Anomalies and the end of their episodes: what detectors emit, as the API serves it.
//!
//! Identity is deterministic: an anomaly's id and every field of its JSON are a function of the
//! readings (and the rules in force), so two daemons fed the same readings serve byte-identical
//! anomalies, and writing one twice to Redis is writing it once.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Parameter, SensorId, round_for_display};

/// The kinds of anomaly the detectors raise; each rule has its own.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AnomalyKind {
    /// One reading above the spike threshold.
    Spike,
    /// Readings above the drift threshold for longer than the drift duration.
    Drift,
    /// No reading for longer than the dropout timeout (or the device said it went offline).
    Dropout,
    /// One reading below the low spike threshold.
    LowSpike,
    /// Readings below the low drift threshold for longer than the drift duration.
    LowDrift,
    /// A change faster than the rate limit, in units per second.
    Rate,
    /// No change beyond the tolerance for longer than `stuck_after`: an instrument fault.
    Stuck,
}

impl AnomalyKind {
    /// The kinds every sensor × parameter watches whatever is configured; `/metrics` always
    /// lists them.
    pub const ALWAYS: [AnomalyKind; 3] = [AnomalyKind::Spike, AnomalyKind::Drift, AnomalyKind::Dropout];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// How a message names it: "spike", "low drift", "rate of change", "stuck value".
    pub fn phrase(self) -> &'static str {
        match self {
            AnomalyKind::Spike => "spike",
            AnomalyKind::Drift => "drift",
            AnomalyKind::Dropout => "dropout",
            AnomalyKind::LowSpike => "low spike",
            AnomalyKind::LowDrift => "low drift",
            AnomalyKind::Rate => "rate of change",
            AnomalyKind::Stuck => "stuck value",
        }
    }

    /// True for the kinds that watch the process's values, which a silent sensor suppresses.
    pub fn is_process(self) -> bool {
        self != AnomalyKind::Dropout
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What identifies an episode: one sensor × parameter × rule, started by one reading.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EpisodeKey {
    pub sensor_id: SensorId,
    pub parameter: Parameter,
    pub kind: AnomalyKind,
    /// The timestamp of the episode's first reading (for a dropout, the last reading before the
    /// silence), so the key is the same whichever daemon sees the readings.
    pub started: DateTime<Utc>,
}

/// One anomaly, as served by the API and mirrored to Redis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01JVKZ1E00M4Q5V9D2K7XW3F8A",
    "type": "spike",
    "timestamp": "2025-05-19T10:15:00.000Z",
    "sensor_id": "wtf-pipe-1",
    "parameter": "pressure",
    "value": 4.5,
    "threshold": 4.0,
    "duration_seconds": null,
    "message": "Pressure spike detected: 4.5 bar exceeds threshold 4 bar"
}))]
pub struct Anomaly {
    /// Unique, sortable by time, and the same for the same episode: see [`AnomalyId`].
    pub id: AnomalyId,
    #[serde(rename = "type")]
    pub kind: AnomalyKind,
    /// When it was raised: the reading's time for a rule on values; for a dropout the last
    /// reading's time plus the dropout timeout.
    #[serde(with = "super::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: DateTime<Utc>,
    pub sensor_id: SensorId,
    pub parameter: Parameter,
    /// The reading that raised it; for a dropout the last value seen, if any; for a rate, the
    /// rate in units per second.
    pub value: Option<f64>,
    /// The limit crossed; for a dropout the timeout in seconds.
    pub threshold: f64,
    /// Drift: how long the value had been past the threshold. Dropout: the silence. Stuck: how
    /// long the value had not moved.
    pub duration_seconds: Option<f64>,
    pub message: String,
}

/// How operators read a parameter: its title ("Free chlorine") and unit ("mg/L"). Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wording {
    pub title: Arc<str>,
    pub unit: Arc<str>,
}

impl Wording {
    pub fn new(title: &str, unit: &str) -> Self {
        Self { title: Arc::from(title), unit: Arc::from(unit) }
    }
}

impl Anomaly {
    /// Builds an anomaly with its id and operator message derived from the facts.
    pub fn new(
        episode: &EpisodeKey,
        timestamp: DateTime<Utc>,
        value: Option<f64>,
        threshold: f64,
        duration_seconds: Option<f64>,
        wording: &Wording,
    ) -> Self {
        let message = describe(episode.kind, wording, value, threshold, duration_seconds);
        Self {
            id: AnomalyId::new(timestamp, episode),
            kind: episode.kind,
            timestamp,
            sensor_id: episode.sensor_id.clone(),
            parameter: episode.parameter.clone(),
            value,
            threshold,
            duration_seconds,
            message,
        }
    }

    /// The same anomaly with a message of the caller's (a device's death certificate says why).
    pub fn with_message(mut self, message: String) -> Self {
        self.message = message;
        self
    }
}

/// The end of an episode: the value came back within its limit, or readings came again after a
/// dropout. Served by the journal and the live stream beside the anomaly it ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Cleared {
    /// The anomaly this ends.
    pub anomaly_id: AnomalyId,
    #[serde(rename = "type")]
    pub kind: AnomalyKind,
    pub sensor_id: SensorId,
    pub parameter: Parameter,
    /// The timestamp of the reading that ended it.
    #[serde(with = "super::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: DateTime<Utc>,
    /// That reading's value.
    pub value: Option<f64>,
    /// The most extreme value of the episode (highest for a high rule, lowest for a low one).
    pub peak: Option<f64>,
}

/// What one step of a detector produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    Raised(Anomaly),
    Cleared(Cleared),
}

/// The operator message of an anomaly, with units: `Pressure spike detected: 4.68 bar exceeds
/// threshold 4 bar`.
fn describe(
    kind: AnomalyKind,
    wording: &Wording,
    value: Option<f64>,
    threshold: f64,
    duration_seconds: Option<f64>,
) -> String {
    let (title, unit) = (&*wording.title, &*wording.unit);
    let quantity = |value: f64| with_unit(round_for_display(value), unit);
    let value_text = value.map_or_else(|| "none".to_owned(), quantity);
    let limit = quantity(threshold);
    let duration = describe_duration(duration_seconds.unwrap_or(0.0));
    let phrase = kind.phrase();
    match kind {
        AnomalyKind::Spike => format!("{title} {phrase} detected: {value_text} exceeds threshold {limit}"),
        AnomalyKind::LowSpike => format!("{title} {phrase} detected: {value_text} is below threshold {limit}"),
        AnomalyKind::Drift => format!("{title} {phrase} detected: {value_text} above threshold {limit} for {duration}"),
        AnomalyKind::LowDrift => {
            format!("{title} {phrase} detected: {value_text} below threshold {limit} for {duration}")
        }
        AnomalyKind::Dropout => {
            format!("{title} {phrase} detected: no reading for {duration} (last value {value_text})")
        }
        AnomalyKind::Rate => {
            let per_second = |value: f64| with_unit(round_for_display(value), &format!("{unit}/s"));
            let rate = value.map_or_else(|| "none".to_owned(), per_second);
            format!("{title} {phrase} detected: {rate} exceeds limit {}", per_second(threshold))
        }
        AnomalyKind::Stuck => {
            format!("{title} {phrase} detected: {value_text} unchanged (within {limit}) for {duration}")
        }
    }
}

fn with_unit(value: f64, unit: &str) -> String {
    if unit.is_empty() { value.to_string() } else { format!("{value} {unit}") }
}

/// A measured duration as operators read it: whole seconds when it is whole, else one decimal,
/// rounded to nearest (15.9997 s is "16.0 s", never "15 s").
pub fn describe_duration(seconds: f64) -> String {
    let tenths = (seconds * 10.0).round() / 10.0;
    if tenths.fract() == 0.0 && (seconds - tenths).abs() < 1e-9 {
        format!("{tenths} s")
    } else {
        format!("{tenths:.1} s")
    }
}

/// An anomaly's identity: 26 characters of a ULID, sortable by time.
///
/// The time part is the anomaly's timestamp in milliseconds; the 80 random bits are a stable
/// SipHash of the episode (sensor, parameter, kind, the episode's first reading's time). The
/// same episode therefore always gets the same id, on any daemon and any build.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String)]
pub struct AnomalyId(String);

impl AnomalyId {
    pub fn new(timestamp: DateTime<Utc>, episode: &EpisodeKey) -> Self {
        use std::hash::Hasher;
        let millis = u64::try_from(timestamp.timestamp_millis()).unwrap_or(0) & ((1 << 48) - 1);
        // Fixed keys: the hash must not change between runs or builds.
        let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(0x7774_662d_6d6f_6e69, 0x746f_722d_6964_7331);
        hasher.write(episode.sensor_id.as_str().as_bytes());
        hasher.write(&[0xff]);
        hasher.write(episode.parameter.as_str().as_bytes());
        hasher.write(&[0xff]);
        hasher.write(episode.kind.as_str().as_bytes());
        hasher.write(&episode.started.timestamp_nanos_opt().unwrap_or_default().to_le_bytes());
        let entropy = siphasher::sip128::Hasher128::finish128(&hasher).as_u128() & ((1u128 << 80) - 1);
        Self(ulid::Ulid::from_parts(millis, entropy).to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for AnomalyId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AnomalyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use strum::VariantArray;

    fn pressure() -> Wording {
        Wording::new("Pressure", "bar")
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_747_649_700 + seconds, 0).unwrap()
    }

    fn episode(kind: AnomalyKind, parameter: &str, started: i64) -> EpisodeKey {
        EpisodeKey { sensor_id: "wtf-pipe-1".into(), parameter: parameter.into(), kind, started: at(started) }
    }

    #[test]
    fn a_spike_serialises_to_the_api_shape_with_units_in_its_message() {
        let anomaly =
            Anomaly::new(&episode(AnomalyKind::Spike, "pressure", 0), at(0), Some(4.5), 4.0, None, &pressure());
        let json = serde_json::to_value(&anomaly).unwrap();
        assert_eq!(json["type"], "spike");
        assert_eq!(json["timestamp"], "2025-05-19T10:15:00.000Z");
        assert_eq!(json["sensor_id"], "wtf-pipe-1");
        assert_eq!(json["parameter"], "pressure");
        assert_eq!(json["value"], 4.5);
        assert_eq!(json["threshold"], 4.0);
        assert!(json["duration_seconds"].is_null());
        assert_eq!(json["message"], "Pressure spike detected: 4.5 bar exceeds threshold 4 bar");
        assert_eq!(json["id"].as_str().unwrap().len(), 26);
        let back: Anomaly = serde_json::from_value(json).unwrap();
        assert_eq!(back, anomaly);
    }

    #[test]
    fn a_drift_says_how_long_it_lasted_rounded_to_nearest() {
        let drift = Anomaly::new(
            &episode(AnomalyKind::Drift, "pressure", 0),
            at(16),
            Some(3.7),
            3.5,
            Some(15.9997),
            &pressure(),
        );
        assert_eq!(drift.message, "Pressure drift detected: 3.7 bar above threshold 3.5 bar for 16.0 s");
        assert_eq!(describe_duration(10.0), "10 s");
        assert_eq!(describe_duration(10.04), "10.0 s");
        assert_eq!(describe_duration(12.35), "12.4 s");
    }

    #[test]
    fn a_dropout_without_a_last_value_says_so() {
        let flow = Wording::new("Flow", "L/min");
        let anomaly = Anomaly::new(&episode(AnomalyKind::Dropout, "flow", 0), at(10), None, 10.0, Some(10.0), &flow);
        let json = serde_json::to_value(&anomaly).unwrap();
        assert!(json["value"].is_null());
        assert_eq!(json["duration_seconds"], 10.0);
        assert_eq!(json["message"], "Flow dropout detected: no reading for 10 s (last value none)");
    }

    #[test]
    fn new_kinds_have_their_own_names_and_messages() {
        let low =
            Anomaly::new(&episode(AnomalyKind::LowSpike, "pressure", 0), at(0), Some(0.4), 0.5, None, &pressure());
        assert_eq!(serde_json::to_value(&low).unwrap()["type"], "low_spike");
        assert_eq!(low.message, "Pressure low spike detected: 0.4 bar is below threshold 0.5 bar");
        let rate = Anomaly::new(&episode(AnomalyKind::Rate, "pressure", 0), at(0), Some(0.9), 0.5, None, &pressure());
        assert_eq!(rate.message, "Pressure rate of change detected: 0.9 bar/s exceeds limit 0.5 bar/s");
        for kind in AnomalyKind::VARIANTS {
            assert_eq!(kind.as_str().parse::<AnomalyKind>(), Ok(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn ids_sort_by_time_and_repeat_for_the_same_episode() {
        let spike = episode(AnomalyKind::Spike, "flow", 0);
        let earlier = AnomalyId::new(at(0), &spike);
        let later = AnomalyId::new(at(1), &episode(AnomalyKind::Spike, "flow", 1));
        assert!(earlier < later);
        assert_eq!(earlier, AnomalyId::new(at(0), &spike));
        assert_ne!(earlier, AnomalyId::new(at(0), &episode(AnomalyKind::Spike, "pressure", 0)));
        assert_ne!(earlier, AnomalyId::new(at(0), &episode(AnomalyKind::Drift, "flow", 0)));
    }
}
