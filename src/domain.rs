//! Plain data shared by every part of the daemon: sensors, parameters, readings, anomalies and
//! summaries. Nothing here does I/O or reads a clock; the JSON shapes are the API's contract.
//!
//! Parameters are named in the configuration (`[parameters.<name>]`): temperature, pressure and
//! flow by default, and whatever else a plant measures. A [`Parameter`] is only the name; its unit
//! and ranges are looked up in the configuration by whoever needs them.

mod anomaly;

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use anomaly::{Anomaly, AnomalyId, AnomalyKind, Cleared, EpisodeKey, Transition, Wording, describe_duration};

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

impl std::borrow::Borrow<str> for SensorId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A measured quantity, by the name the configuration gives it (`pressure`, `turbidity`, …).
/// Cheap to clone, like [`SensorId`].
///
/// Every value of a reading is looked up by its parameter several times on the way to its
/// detector, and nearly always with a clone of the configured name: comparing the pointers first
/// spares comparing the text.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "pressure")]
pub struct Parameter(Arc<str>);

/// By the text, as `Borrow<str>` requires: equal parameters hash alike whichever their pointers.
impl std::hash::Hash for Parameter {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Parameter {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Parameter {}

impl PartialOrd for Parameter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Parameter {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) { std::cmp::Ordering::Equal } else { self.0.cmp(&other.0) }
    }
}

impl Parameter {
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Parameter {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl std::borrow::Borrow<str> for Parameter {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The values of one reading: any non-empty subset of the configured parameters, each at most
/// once, kept in name order so that equal readings compare and serialise alike. A handful of
/// entries, so a sorted vector beats a map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Values(Vec<(Parameter, f64)>);

impl Values {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Values each parameter once, as the configuration lists them: already in name order, which
    /// one pass checks (and a sort restores, should a caller ever list them otherwise).
    pub fn in_order(mut entries: Vec<(Parameter, f64)>) -> Self {
        if !entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|later, earlier| later.0 == earlier.0);
        }
        Self(entries)
    }

    /// Sets `parameter`'s value, replacing one given before.
    pub fn set(&mut self, parameter: Parameter, value: f64) {
        match self.entry(&parameter) {
            Some(entry) => *entry = value,
            None => self.insert(parameter, value),
        }
    }

    /// [`Values::set`] with a borrowed parameter, cloned only when it is new here.
    pub fn set_from(&mut self, parameter: &Parameter, value: f64) {
        match self.entry(parameter) {
            Some(entry) => *entry = value,
            None => self.insert(parameter.clone(), value),
        }
    }

    /// A parameter not here yet, in its place by name.
    fn insert(&mut self, parameter: Parameter, value: f64) {
        let index = self.0.partition_point(|(known, _)| *known < parameter);
        self.0.insert(index, (parameter, value));
    }

    /// A parameter already here: equality is a pointer comparison for names that come from the
    /// configuration, and a length comparison for most others, so a scan of a handful of
    /// entries beats the ordered search.
    fn entry(&mut self, parameter: &Parameter) -> Option<&mut f64> {
        self.0.iter_mut().find(|(known, _)| known == parameter).map(|(_, value)| value)
    }

    pub fn get(&self, parameter: &str) -> Option<f64> {
        let index = self.0.binary_search_by(|(known, _)| known.as_str().cmp(parameter)).ok()?;
        Some(self.0[index].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Parameter, f64)> {
        self.0.iter().map(|(parameter, value)| (parameter, *value))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(Parameter, f64)> for Values {
    fn from_iter<I: IntoIterator<Item = (Parameter, f64)>>(entries: I) -> Self {
        let mut values = Values::new();
        for (parameter, value) in entries {
            values.set(parameter, value);
        }
        values
    }
}

/// What one sensor reported at one instant: `{"sensor_id", "timestamp", <parameter>: value, …}`.
#[derive(Clone, Debug, PartialEq, ToSchema)]
#[schema(example = json!({"sensor_id": "wtf-pipe-1", "timestamp": "2025-05-19T10:15:00.000Z",
    "temperature": 22.4, "pressure": 2.1, "flow": 64.2}))]
pub struct Reading {
    #[schema(value_type = String)]
    pub sensor_id: SensorId,
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: DateTime<Utc>,
    /// One number per parameter reported, each under the parameter's name.
    #[schema(value_type = Object)]
    pub values: Values,
}

impl Reading {
    pub fn value(&self, parameter: &str) -> Option<f64> {
        self.values.get(parameter)
    }
}

impl Serialize for Reading {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + self.values.len()))?;
        map.serialize_entry("sensor_id", &self.sensor_id)?;
        map.serialize_entry("timestamp", &rfc3339::format(&self.timestamp))?;
        for (parameter, value) in self.values.iter() {
            map.serialize_entry(parameter.as_str(), &value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Reading {
    /// The shape [`Serialize`] writes; for what clients send, see [`crate::ingress::parse`], which
    /// explains what is wrong instead of failing the whole body.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut object = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let sensor_id = match object.remove("sensor_id") {
            Some(serde_json::Value::String(id)) => SensorId::new(&id),
            _ => return Err(D::Error::custom("a reading needs a sensor_id string")),
        };
        let timestamp = match object.remove("timestamp") {
            Some(serde_json::Value::String(text)) => {
                DateTime::parse_from_rfc3339(&text).map_err(D::Error::custom)?.with_timezone(&Utc)
            }
            _ => return Err(D::Error::custom("a reading needs a timestamp string")),
        };
        let mut values = Values::with_capacity(object.len());
        for (name, value) in object {
            let value = value.as_f64().ok_or_else(|| D::Error::custom(format!("{name} is not a number")))?;
            values.set(Parameter::new(&name), value);
        }
        Ok(Reading { sensor_id, timestamp, values })
    }
}

/// Rounds to two decimals: the precision operators read, and the one summaries quote.
pub fn round_for_display(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
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

    #[test]
    fn values_stay_in_name_order_and_hold_a_name_once_whichever_its_allocation() {
        let mut values = Values::new();
        values.set(Parameter::new("temperature"), 1.0);
        values.set(Parameter::new("flow"), 2.0);
        values.set_from(&Parameter::new("pressure"), 3.0);
        // The same names in other allocations replace, not add.
        values.set(Parameter::new("flow"), 4.0);
        values.set_from(&Parameter::new("temperature"), 5.0);
        let listed: Vec<(&str, f64)> = values.iter().map(|(parameter, value)| (parameter.as_str(), value)).collect();
        assert_eq!(listed, [("flow", 4.0), ("pressure", 3.0), ("temperature", 5.0)]);
        assert_eq!(values.get("pressure"), Some(3.0));

        let given = vec![(Parameter::new("pressure"), 1.0), (Parameter::new("flow"), 2.0)];
        let in_order = Values::in_order(given);
        assert_eq!(in_order.get("flow"), Some(2.0));
        assert_eq!(in_order.get("pressure"), Some(1.0));
    }

    #[test]
    fn a_reading_serialises_flat_with_only_its_parameters() {
        let reading = Reading {
            sensor_id: "meter-7".into(),
            timestamp: Utc.with_ymd_and_hms(2025, 5, 19, 10, 15, 0).unwrap(),
            values: [(Parameter::new("flow"), 64.2)].into_iter().collect(),
        };
        let json = serde_json::to_value(&reading).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"sensor_id": "meter-7", "timestamp": "2025-05-19T10:15:00.000Z", "flow": 64.2})
        );
        let back: Reading = serde_json::from_value(json).unwrap();
        assert_eq!(back, reading);
    }

    #[test]
    fn setting_a_value_twice_keeps_one_entry() {
        let mut values = Values::new();
        values.set("pressure".into(), 1.0);
        values.set("pressure".into(), 2.0);
        assert_eq!(values.len(), 1);
        assert_eq!(values.get("pressure"), Some(2.0));
        assert_eq!(values.get("flow"), None);
    }

    #[test]
    fn summary_authors_use_the_prototype_names() {
        assert_eq!(serde_json::to_value(SummaryAuthor::LlmSummarizer).unwrap(), "llm_summarizer");
        assert_eq!(serde_json::to_value(SummaryAuthor::Fallback).unwrap(), "fallback");
    }
}
