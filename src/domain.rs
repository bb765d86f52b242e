//! Plain data shared by every part of the daemon: sensors, parameters, readings, anomalies and
//! summaries. Nothing here does I/O or reads a clock; the JSON shapes are the API's contract.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The name of a sensor, e.g. `wtf-pipe-1`. Cheap to clone: readings and anomalies carry it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "wtf-pipe-1")]
pub struct SensorId(Arc<str>);

impl SensorId {
    pub fn new(id: &str) -> Self {
        Self(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SensorId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

/// A measured quantity. Every sensor reports all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Parameter {
    Temperature,
    Pressure,
    Flow,
}

impl Parameter {
    pub const ALL: [Parameter; 3] = [Parameter::Temperature, Parameter::Pressure, Parameter::Flow];

    pub fn as_str(self) -> &'static str {
        match self {
            Parameter::Temperature => "temperature",
            Parameter::Pressure => "pressure",
            Parameter::Flow => "flow",
        }
    }

    /// The unit operators read values in.
    pub fn unit(self) -> &'static str {
        match self {
            Parameter::Temperature => "°C",
            Parameter::Pressure => "bar",
            Parameter::Flow => "L/min",
        }
    }

    /// Capitalised, for the start of a message.
    pub fn title(self) -> &'static str {
        match self {
            Parameter::Temperature => "Temperature",
            Parameter::Pressure => "Pressure",
            Parameter::Flow => "Flow",
        }
    }

    /// Position in `ALL`, for fixed-size per-parameter tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Parameter {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Parameter::ALL
            .into_iter()
            .find(|parameter| parameter.as_str() == name)
            .ok_or_else(|| UnknownName(name.to_owned()))
    }
}

/// One value per parameter, e.g. the three spike thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerParameter<T> {
    pub temperature: T,
    pub pressure: T,
    pub flow: T,
}

impl<T: Copy> PerParameter<T> {
    pub fn get(&self, parameter: Parameter) -> T {
        match parameter {
            Parameter::Temperature => self.temperature,
            Parameter::Pressure => self.pressure,
            Parameter::Flow => self.flow,
        }
    }

    pub fn set(&mut self, parameter: Parameter, value: T) {
        match parameter {
            Parameter::Temperature => self.temperature = value,
            Parameter::Pressure => self.pressure = value,
            Parameter::Flow => self.flow = value,
        }
    }

    pub fn from_fn(mut f: impl FnMut(Parameter) -> T) -> Self {
        Self { temperature: f(Parameter::Temperature), pressure: f(Parameter::Pressure), flow: f(Parameter::Flow) }
    }
}

/// What one sensor reported at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reading {
    pub sensor_id: SensorId,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2025-05-19T10:15:00.000Z")]
    pub timestamp: DateTime<Utc>,
    /// °C
    pub temperature: f64,
    /// bar
    pub pressure: f64,
    /// L/min
    pub flow: f64,
}

impl Reading {
    pub fn value(&self, parameter: Parameter) -> f64 {
        match parameter {
            Parameter::Temperature => self.temperature,
            Parameter::Pressure => self.pressure,
            Parameter::Flow => self.flow,
        }
    }
}

/// The three kinds of anomaly the detectors raise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyKind {
    /// One reading above the spike threshold.
    Spike,
    /// Readings above the drift threshold for longer than the drift duration.
    Drift,
    /// No reading for longer than the dropout timeout.
    Dropout,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 3] = [AnomalyKind::Spike, AnomalyKind::Drift, AnomalyKind::Dropout];

    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Spike => "spike",
            AnomalyKind::Drift => "drift",
            AnomalyKind::Dropout => "dropout",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AnomalyKind {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        AnomalyKind::ALL.into_iter().find(|kind| kind.as_str() == name).ok_or_else(|| UnknownName(name.to_owned()))
    }
}

/// A name that is not one of a closed set (a parameter or an anomaly type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

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
    "message": "Pressure spike detected: 4.5 exceeds threshold 4"
}))]
pub struct Anomaly {
    /// Unique and sortable by time: see [`AnomalyId`].
    pub id: AnomalyId,
    #[serde(rename = "type")]
    pub kind: AnomalyKind,
    /// When the anomaly was raised: the reading's time for a spike or a drift, the clock's for a dropout.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: DateTime<Utc>,
    pub sensor_id: SensorId,
    pub parameter: Parameter,
    /// The reading that raised it; for a dropout the last value seen, if any.
    pub value: Option<f64>,
    /// The threshold crossed; for a dropout the timeout in seconds.
    pub threshold: f64,
    /// Drift: how long the value had been above the threshold. Dropout: the silence so far.
    pub duration_seconds: Option<f64>,
    pub message: String,
}

impl Anomaly {
    /// Builds an anomaly with its id and operator message derived from the facts.
    pub fn new(
        kind: AnomalyKind,
        timestamp: DateTime<Utc>,
        sensor_id: SensorId,
        parameter: Parameter,
        value: Option<f64>,
        threshold: f64,
        duration_seconds: Option<f64>,
    ) -> Self {
        let id = AnomalyId::new(timestamp, &sensor_id, parameter, kind);
        let message = describe(kind, parameter, value, threshold, duration_seconds);
        Self { id, kind, timestamp, sensor_id, parameter, value, threshold, duration_seconds, message }
    }
}

fn describe(
    kind: AnomalyKind,
    parameter: Parameter,
    value: Option<f64>,
    threshold: f64,
    duration_seconds: Option<f64>,
) -> String {
    let name = parameter.title();
    let value = value.map_or_else(|| "none".to_owned(), |value| round_for_display(value).to_string());
    let threshold = round_for_display(threshold);
    let duration = round_for_display(duration_seconds.unwrap_or(0.0));
    match kind {
        AnomalyKind::Spike => format!("{name} spike detected: {value} exceeds threshold {threshold}"),
        AnomalyKind::Drift => {
            format!("{name} drift detected: {value} above threshold {threshold} for {duration} s")
        }
        AnomalyKind::Dropout => {
            format!("{name} dropout detected: no reading for {duration} s (last value {value})")
        }
    }
}

/// Rounds to two decimals: the precision operators read, and the one summaries quote.
pub fn round_for_display(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// An anomaly's identity: 26 characters, sortable by time (a ULID layout).
///
/// The first 48 bits are the timestamp in milliseconds; the other 80 are a hash of the sensor,
/// parameter, kind and exact timestamp. The same episode therefore always gets the same id, which
/// makes writes to Redis idempotent and replays of a seeded simulation comparable.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String)]
pub struct AnomalyId(String);

impl AnomalyId {
    pub fn new(timestamp: DateTime<Utc>, sensor_id: &SensorId, parameter: Parameter, kind: AnomalyKind) -> Self {
        let millis = u64::try_from(timestamp.timestamp_millis()).unwrap_or(0) & ((1 << 48) - 1);
        let mut hash = Fnv1a::new();
        hash.write(sensor_id.as_str().as_bytes());
        hash.write(&[0, parameter as u8, kind as u8]);
        hash.write(&timestamp.timestamp_nanos_opt().unwrap_or_default().to_le_bytes());
        let entropy = hash.finish() & ((1u128 << 80) - 1);
        let bits = (u128::from(millis) << 80) | entropy;
        Self(crockford_base32(bits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AnomalyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// FNV-1a, 128 bits: stable across builds and platforms, unlike `DefaultHasher`.
struct Fnv1a(u128);

impl Fnv1a {
    fn new() -> Self {
        Self(0x6c62272e07bb014262b821756295c58d)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u128::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000000001000000000000000000013B);
        }
    }

    fn finish(&self) -> u128 {
        self.0
    }
}

fn crockford_base32(bits: u128) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26).rev().map(|position| ALPHABET[((bits >> (position * 5)) & 0x1f) as usize] as char).collect()
}

/// Who wrote a summary's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SummaryAuthor {
    /// The language model, checked against the facts.
    LlmSummarizer,
    /// The deterministic template, used whenever the model is unavailable or its text is rejected.
    Fallback,
}

/// A short operator-facing account of the anomalies in a window of time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "summary": "Between 10:22 and 10:25, wtf-pipe-1 reported a temperature drift (39.2 °C above 38 °C for 16 s).",
    "timestamp": "2025-05-19T10:25:00.000Z",
    "generated_by": "llm_summarizer",
    "model": "llama3.2:1b",
    "anomaly_count": 7,
    "window_start": "2025-05-19T10:22:00.000Z",
    "window_end": "2025-05-19T10:25:00.000Z"
}))]
pub struct Summary {
    pub summary: String,
    /// When the summary was written.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: DateTime<Utc>,
    pub generated_by: SummaryAuthor,
    /// The model asked for this window (also for a fallback, which names the model whose answer
    /// did not come or was refused); null when no model was asked (disabled, or waiting out a
    /// backoff).
    pub model: Option<String>,
    /// Anomalies in the window.
    pub anomaly_count: u64,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub window_start: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub window_end: DateTime<Utc>,
}

/// RFC 3339 in UTC with a `Z` and millisecond precision: `2025-05-19T10:15:00.000Z`.
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(timestamp: &DateTime<Utc>) -> String {
        timestamp.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn serialize<S: Serializer>(timestamp: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(timestamp))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|timestamp| timestamp.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// [`rfc3339`] for an optional time: `null` when absent.
pub mod rfc3339_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(timestamp) => super::rfc3339::serialize(timestamp, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        text.map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|timestamp| timestamp.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_747_649_700 + seconds, 0).unwrap()
    }

    #[test]
    fn a_spike_serialises_to_the_api_shape() {
        let anomaly =
            Anomaly::new(AnomalyKind::Spike, at(0), "wtf-pipe-1".into(), Parameter::Pressure, Some(4.5), 4.0, None);
        let json = serde_json::to_value(&anomaly).unwrap();
        assert_eq!(json["type"], "spike");
        assert_eq!(json["timestamp"], "2025-05-19T10:15:00.000Z");
        assert_eq!(json["sensor_id"], "wtf-pipe-1");
        assert_eq!(json["parameter"], "pressure");
        assert_eq!(json["value"], 4.5);
        assert_eq!(json["threshold"], 4.0);
        assert!(json["duration_seconds"].is_null());
        assert_eq!(json["message"], "Pressure spike detected: 4.5 exceeds threshold 4");
        assert_eq!(json["id"].as_str().unwrap().len(), 26);
        let back: Anomaly = serde_json::from_value(json).unwrap();
        assert_eq!(back, anomaly);
    }

    #[test]
    fn a_dropout_without_a_last_value_says_so() {
        let anomaly =
            Anomaly::new(AnomalyKind::Dropout, at(0), "wtf-pipe-2".into(), Parameter::Flow, None, 10.0, Some(10.5));
        let json = serde_json::to_value(&anomaly).unwrap();
        assert!(json["value"].is_null());
        assert_eq!(json["duration_seconds"], 10.5);
        assert_eq!(json["message"], "Flow dropout detected: no reading for 10.5 s (last value none)");
    }

    #[test]
    fn ids_sort_by_time_and_repeat_for_the_same_episode() {
        let sensor = SensorId::new("wtf-pipe-1");
        let earlier = AnomalyId::new(at(0), &sensor, Parameter::Flow, AnomalyKind::Spike);
        let later = AnomalyId::new(at(1), &sensor, Parameter::Flow, AnomalyKind::Spike);
        assert!(earlier < later);
        assert_eq!(earlier, AnomalyId::new(at(0), &sensor, Parameter::Flow, AnomalyKind::Spike));
        assert_ne!(earlier, AnomalyId::new(at(0), &sensor, Parameter::Pressure, AnomalyKind::Spike));
    }

    #[test]
    fn names_parse_back() {
        for parameter in Parameter::ALL {
            assert_eq!(parameter.as_str().parse::<Parameter>(), Ok(parameter));
        }
        for kind in AnomalyKind::ALL {
            assert_eq!(kind.as_str().parse::<AnomalyKind>(), Ok(kind));
        }
        assert!("humidity".parse::<Parameter>().is_err());
    }

    #[test]
    fn summary_authors_use_the_prototype_names() {
        assert_eq!(serde_json::to_value(SummaryAuthor::LlmSummarizer).unwrap(), "llm_summarizer");
        assert_eq!(serde_json::to_value(SummaryAuthor::Fallback).unwrap(), "fallback");
    }
}
