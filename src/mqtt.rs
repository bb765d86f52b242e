//! What MQTT messages say, in the daemon's terms: readings, devices gone offline, or why a
//! message is refused. The connection itself is [`crate::actors::mqtt`]'s; this module is pure.
//!
//! Two kinds of topic:
//!
//! - **Plain**, under `mqtt.topic_prefix` (`wtf` by default): `wtf/<sensor_id>` carries a JSON
//!   reading (any subset of parameters, `timestamp` optional, `sensor_id` optional and, if given,
//!   equal to the topic's); `wtf/<sensor_id>/<parameter>` carries a bare number or
//!   `{"value": …, "timestamp": …}`. They parse as `POST /readings` does ([`crate::ingress::parse`]).
//! - **Sparkplug B** with `mqtt.sparkplug = true`: `spBv1.0/<group>/<type>/<edge_node>[/<device>]`,
//!   payloads in the Tahu protobuf; births, data and deaths are followed per edge node
//!   ([`EdgeNodes`]).
//!
//! [`Intake::take`] turns one message into a [`Delivery`]; the actor hands its readings to the
//! ingress (which makes every other check: known sensor, order, skew, configured parameter),
//! raises the dropouts of the devices gone offline, and counts each refusal by its
//! [`MqttReason`].

mod sparkplug;
mod stats;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use sparkplug::{EdgeNodes, MAX_EDGE_NODES, MAX_METRICS, SparkplugNames};
pub use stats::{MqttState, MqttStats, MqttStatus};

use crate::config::Config;
use crate::domain::{Reading, SensorId};
use crate::ingress::{Refusal, bounded, parse};

/// The Sparkplug B topic namespace.
pub const SPARKPLUG_ROOT: &str = "spBv1.0";

/// Why a message, or part of it, was refused before it reached the ingress; refusals by the
/// ingress are counted under its own [`crate::ingress::Reason`]s beside these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum MqttReason {
    /// A plain topic's payload is not JSON.
    NotJson,
    /// A Sparkplug payload is not a Tahu protobuf.
    NotSparkplug,
    /// A value is not a number (a string, a boolean, an object).
    NotANumber,
    /// The sensor id a topic names is not a safe identifier (letters, digits, `-`, `_`, `.`).
    InvalidSensor,
    /// The topic is none of the forms read (`wtf/a/b/c`, `spBv1.0/g/NOPE/n`).
    UnknownTopic,
    /// A Sparkplug metric by an alias no birth gave.
    UnknownAlias,
    /// A payload larger than `ingest.max_body`.
    TooLarge,
    /// Anything else wrong with a reading (a timestamp that is not RFC 3339, a `sensor_id`
    /// different from the topic's, a reading without values).
    Malformed,
}

impl MqttReason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One part of a message that was refused, and for which sensor (for the log).
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    pub sensor_id: String,
    pub reason: MqttReason,
    pub message: String,
}

impl Refused {
    fn new(sensor_id: &str, reason: MqttReason, message: impl Into<String>) -> Self {
        Self { sensor_id: bounded(sensor_id, 64), reason, message: message.into() }
    }

    /// As the ingress counts it.
    pub fn refusal(&self) -> Refusal {
        Refusal::Malformed(format!("{}: {}", self.reason.as_str(), self.message))
    }
}

/// A Sparkplug sequence number that skipped: messages of that edge node were lost on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceGap {
    pub edge_node: String,
    pub expected: u64,
    pub got: u64,
}

/// What one message says.
#[derive(Debug, Default, PartialEq)]
pub struct Delivery {
    /// Readings for the ingress, oldest first.
    pub readings: Vec<Reading>,
    /// Sensors whose device said it went offline (a death certificate), and when it arrived.
    pub offline: Vec<SensorId>,
    pub refused: Vec<Refused>,
    pub gap: Option<SequenceGap>,
}

impl Delivery {
    fn refused(refused: Refused) -> Self {
        Self { refused: vec![refused], ..Self::default() }
    }
}

/// Reads messages, keeping what Sparkplug needs between them (births, aliases, sequence numbers).
pub struct Intake {
    /// `<prefix>/`, to strip from plain topics.
    prefix: String,
    sparkplug: Option<EdgeNodes>,
}

impl Intake {
    pub fn new(config: &Config) -> Self {
        let sparkplug = config.mqtt.sparkplug.then(|| EdgeNodes::new(SparkplugNames::from_config(config)));
        Self { prefix: format!("{}/", config.mqtt.topic_prefix), sparkplug }
    }

    /// A reload changed the Sparkplug name maps or the parameters: births already seen keep their
    /// aliases; the names are resolved anew from the next message.
    pub fn set_names(&mut self, config: &Config) {
        if let Some(nodes) = &mut self.sparkplug {
            nodes.set_names(SparkplugNames::from_config(config));
        }
    }

    /// The topic filters to subscribe to.
    pub fn filters(&self) -> Vec<String> {
        let mut filters = vec![format!("{}#", self.prefix)];
        if self.sparkplug.is_some() {
            filters.push(format!("{SPARKPLUG_ROOT}/#"));
        }
        filters
    }

    /// What the message on `topic` says; `arrival` is when it came, on the daemon's clock.
    pub fn take(&mut self, topic: &str, payload: &[u8], arrival: DateTime<Utc>) -> Delivery {
        if let Some(rest) = topic.strip_prefix(&self.prefix) {
            return plain(rest, payload, arrival);
        }
        if let Some(nodes) = &mut self.sparkplug
            && topic.starts_with(SPARKPLUG_ROOT)
        {
            return nodes.take(topic, payload, arrival);
        }
        Delivery::refused(Refused::new(
            "",
            MqttReason::UnknownTopic,
            format!("topic {:?} is not read", bounded(topic, 64)),
        ))
    }
}

/// A plain topic, the prefix stripped: `<sensor_id>` or `<sensor_id>/<parameter>`.
fn plain(rest: &str, payload: &[u8], arrival: DateTime<Utc>) -> Delivery {
    let mut levels = rest.split('/');
    let (sensor, parameter) = match (levels.next(), levels.next(), levels.next()) {
        (Some(sensor), parameter, None) if !sensor.is_empty() && parameter.is_none_or(|name| !name.is_empty()) => {
            (sensor, parameter)
        }
        _ => {
            let why = format!("topic …/{:?} is neither <sensor_id> nor <sensor_id>/<parameter>", bounded(rest, 64));
            return Delivery::refused(Refused::new("", MqttReason::UnknownTopic, why));
        }
    };
    if !crate::config::is_safe_identifier(sensor) {
        let why = format!(
            "sensor id {:?} is not valid: letters, digits, '-', '_', '.', at most 64 characters",
            bounded(sensor, 64)
        );
        return Delivery::refused(Refused::new(sensor, MqttReason::InvalidSensor, why));
    }
    let value: Value = match serde_json::from_slice(payload) {
        Ok(value) => value,
        Err(_) => {
            let why = "the payload is not JSON".to_owned();
            return Delivery::refused(Refused::new(sensor, MqttReason::NotJson, why));
        }
    };
    let parsed = match parameter {
        None => {
            if let Some(name) = first_non_number(&value) {
                let why = format!("{}: not a number", bounded(name, 64));
                return Delivery::refused(Refused::new(sensor, MqttReason::NotANumber, why));
            }
            parse::reading(value, Some(sensor), arrival)
        }
        Some(parameter) => {
            let number = match &value {
                Value::Object(object) => object.get("value"),
                other => Some(other),
            };
            if !number.is_some_and(Value::is_number) {
                let why = format!("{}: not a number", bounded(parameter, 64));
                return Delivery::refused(Refused::new(sensor, MqttReason::NotANumber, why));
            }
            parse::single_value(&value, sensor, parameter, arrival)
        }
    };
    match parsed {
        Ok(reading) => Delivery { readings: vec![reading], ..Delivery::default() },
        Err(why) => Delivery::refused(Refused::new(sensor, MqttReason::Malformed, why)),
    }
}

/// The first field of a JSON reading that should hold a parameter's number and does not.
fn first_non_number(value: &Value) -> Option<&str> {
    let Value::Object(object) = value else { return None };
    object
        .iter()
        .find(|(key, value)| !matches!(key.as_str(), "sensor_id" | "timestamp") && !value.is_number())
        .map(|(key, _)| key.as_str())
}

#[cfg(test)]
mod tests;
