//! Sparkplug B as a host application reads it: births, data and deaths of edge nodes and their
//! devices, in the Eclipse Tahu protobuf (decoded by the `sparkplug-rs` crate).
//!
//! - **Sensors.** A device's metrics are the sensor `<edge_node>.<device>`, a node's own metrics
//!   the sensor `<edge_node>`, unless `mqtt.sparkplug_sensors` maps `"<edge_node>/<device>"` (or
//!   `"<edge_node>"`) to another id. `/` cannot be in a sensor id (it goes into Redis keys and
//!   actor names), hence the dot.
//! - **Parameters.** A metric whose name, case aside, is a configured parameter's is that
//!   parameter; `mqtt.sparkplug_metrics` maps other names (`"Pressure/PT-101" = "pressure"`).
//!   Metrics that map to no parameter (`Node Control/Rebirth`, `bdSeq`, properties) are not for
//!   the monitor and are passed over without complaint.
//! - **Births** (NBIRTH, DBIRTH) give each metric's name, alias and datatype; later data may name a
//!   metric by alias alone, and often leaves the datatype out. An NBIRTH starts the node afresh.
//!   The values a birth carries are readings like any others, so a rebirth ends the dropouts a
//!   death raised.
//! - **Deaths.** NDEATH (usually the node's MQTT will, sent by the broker when the node drops off)
//!   takes the node and every device seen under it offline; DDEATH one device. An NDEATH whose
//!   `bdSeq` is not the current birth's is a stale will from an earlier session, and is ignored.
//!   A death is timed by its arrival: a will's own timestamp is when it was registered.
//! - **Sequence numbers** (0–255, per node, every message but NDEATH) that skip are reported as
//!   a [`SequenceGap`]: messages were lost between the node and the broker.
//! - **Values.** Integers are read by their datatype (signed ones are two's complement in the
//!   unsigned protobuf fields); floats and doubles as they are. Booleans, strings, datasets and
//!   the like are not numbers and are refused, when their metric maps to a parameter.
//!
//! Memory is bounded: at most [`MAX_EDGE_NODES`] nodes and [`MAX_METRICS`] metrics per node.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sparkplug_rs::protobuf::{Enum, Message};
use sparkplug_rs::{DataType, DeviceMessageType, NodeMessageType, Payload, TopicName, payload};

use super::{Delivery, MqttReason, Refused, SPARKPLUG_ROOT, SequenceGap};
use crate::config::Config;
use crate::domain::{Parameter, Reading, SensorId, Values};
use crate::ingress::bounded;

/// Edge nodes followed at once; births of more are refused (a flood of made-up node ids).
pub const MAX_EDGE_NODES: usize = 10_000;
/// Metrics (aliases and datatypes) remembered per edge node, its devices included.
pub const MAX_METRICS: usize = 10_000;

/// How Sparkplug names become sensor ids and parameters, from the configuration.
#[derive(Clone, Debug, Default)]
pub struct SparkplugNames {
    /// Metric name, lowercased → parameter: the parameters' own names, then the configured map.
    metrics: HashMap<String, Parameter>,
    /// `<edge_node>` or `<edge_node>/<device>` → sensor id.
    sensors: BTreeMap<String, String>,
}

impl SparkplugNames {
    pub fn from_config(config: &Config) -> Self {
        let mut metrics: HashMap<String, Parameter> = config
            .parameter_list()
            .into_iter()
            .map(|parameter| (parameter.as_str().to_lowercase(), parameter))
            .collect();
        for (name, parameter) in &config.mqtt.sparkplug_metrics {
            let known = config.parameters.get_key_value(parameter.as_str()).map(|(known, _)| known.clone());
            metrics.insert(name.to_lowercase(), known.unwrap_or_else(|| Parameter::new(parameter)));
        }
        Self { metrics, sensors: config.mqtt.sparkplug_sensors.clone() }
    }

    fn parameter(&self, metric: &str) -> Option<&Parameter> {
        match self.metrics.get(metric) {
            Some(parameter) => Some(parameter),
            None => self.metrics.get(&metric.to_lowercase()),
        }
    }

    /// The sensor id of a node's own metrics (`device` None) or of one of its devices.
    pub fn sensor(&self, edge_node: &str, device: Option<&str>) -> String {
        let key = match device {
            Some(device) => format!("{edge_node}/{device}"),
            None => edge_node.to_owned(),
        };
        match self.sensors.get(&key) {
            Some(sensor) => sensor.clone(),
            None => key.replace('/', "."),
        }
    }
}

/// What is known of one edge node since its last birth.
#[derive(Debug, Default)]
struct EdgeNode {
    /// The birth's `bdSeq` metric, which its death certificate repeats.
    birth_sequence: Option<u64>,
    /// The last `seq` seen.
    seq: Option<u64>,
    /// Alias → metric name, from the births (aliases are unique across a node and its devices).
    aliases: HashMap<u64, String>,
    /// (device, or "" for the node; metric name) → datatype, from the births.
    datatypes: HashMap<(String, String), u32>,
    /// Devices seen under this node: an NDEATH takes them all offline.
    devices: BTreeSet<String>,
}

impl EdgeNode {
    fn remember(&mut self, device: &str, metric: &payload::Metric) {
        if self.datatypes.len() >= MAX_METRICS {
            return;
        }
        let Some(name) = metric.name.as_ref() else { return };
        if let Some(alias) = metric.alias {
            self.aliases.insert(alias, name.clone());
        }
        if let Some(datatype) = metric.datatype {
            self.datatypes.insert((device.to_owned(), name.clone()), datatype);
        }
    }

    /// Checks `seq` follows the last one; a birth (`restart`) starts the count.
    fn follow(&mut self, edge_node: &str, seq: Option<u64>, restart: bool) -> Option<SequenceGap> {
        let seq = seq?;
        let previous = self.seq.replace(seq);
        if restart {
            return None;
        }
        let expected = (previous? + 1) % 256;
        (seq != expected).then(|| SequenceGap { edge_node: edge_node.to_owned(), expected, got: seq })
    }
}

/// The edge nodes a host application follows, and the names in force.
pub struct EdgeNodes {
    names: SparkplugNames,
    nodes: HashMap<(String, String), EdgeNode>,
}

/// Which message of which node or device.
enum Kind {
    Birth,
    Data,
    Death,
    Command,
}

impl EdgeNodes {
    pub fn new(names: SparkplugNames) -> Self {
        Self { names, nodes: HashMap::new() }
    }

    pub fn set_names(&mut self, names: SparkplugNames) {
        self.names = names;
    }

    /// One Sparkplug message.
    pub fn take(&mut self, topic: &str, payload: &[u8], arrival: DateTime<Utc>) -> Delivery {
        let unknown = || {
            let why = format!("topic {:?} is not a Sparkplug B topic", bounded(topic, 64));
            Delivery::refused(Refused::new("", MqttReason::UnknownTopic, why))
        };
        if topic.strip_prefix(SPARKPLUG_ROOT).is_some_and(|rest| rest.starts_with("/STATE/")) {
            // A host application's own state: nothing about the plant.
            return Delivery::default();
        }
        let Ok(name) = topic.parse::<TopicName>() else { return unknown() };
        let (group, edge_node, device, kind) = match name {
            TopicName::StateMessage { .. } => return Delivery::default(),
            TopicName::NodeMessage { group_id, node_message_type, edge_node_id, .. } => {
                let kind = match node_message_type {
                    NodeMessageType::NBIRTH => Kind::Birth,
                    NodeMessageType::NDATA => Kind::Data,
                    NodeMessageType::NDEATH => Kind::Death,
                    NodeMessageType::NCMD => Kind::Command,
                };
                (group_id, edge_node_id, None, kind)
            }
            TopicName::DeviceMessage { group_id, device_message_type, edge_node_id, device_id, .. } => {
                let kind = match device_message_type {
                    DeviceMessageType::DBIRTH => Kind::Birth,
                    DeviceMessageType::DDATA => Kind::Data,
                    DeviceMessageType::DDEATH => Kind::Death,
                    DeviceMessageType::DCMD => Kind::Command,
                };
                (group_id, edge_node_id, Some(device_id), kind)
            }
        };
        if group.is_empty() || edge_node.is_empty() || device.as_ref().is_some_and(String::is_empty) {
            return unknown();
        }
        if matches!(kind, Kind::Command) {
            // Commands go to the node, from a host application; they carry no measurement.
            return Delivery::default();
        }
        let sensor = self.names.sensor(&edge_node, device.as_deref());
        let payload = match Payload::parse_from_bytes(payload) {
            Ok(payload) => payload,
            Err(_) => {
                let why = "the payload is not a Sparkplug B (Tahu protobuf) payload".to_owned();
                return Delivery::refused(Refused::new(&sensor, MqttReason::NotSparkplug, why));
            }
        };
        let key = (group, edge_node);
        if !self.nodes.contains_key(&key) && self.nodes.len() >= MAX_EDGE_NODES {
            let why = format!("already following {MAX_EDGE_NODES} edge nodes");
            return Delivery::refused(Refused::new(&sensor, MqttReason::Malformed, why));
        }
        let edge_node = &key.1;
        let node = self.nodes.entry(key.clone()).or_default();
        let device_key = device.clone().unwrap_or_default();
        match (kind, &device) {
            (Kind::Birth, None) => {
                // A node's birth starts everything it knew afresh; its devices birth again after it.
                *node = EdgeNode { devices: std::mem::take(&mut node.devices), ..EdgeNode::default() };
                node.birth_sequence = birth_sequence(&payload);
                node.follow(edge_node, payload.seq, true);
            }
            (Kind::Birth, Some(device)) => {
                node.devices.insert(device.clone());
                let gap = node.follow(edge_node, payload.seq, false);
                let mut delivery = Delivery { gap, ..Delivery::default() };
                for metric in &payload.metrics {
                    node.remember(&device_key, metric);
                }
                readings(&self.names, node, &device_key, &sensor, &payload, arrival, &mut delivery);
                return delivery;
            }
            (Kind::Data, device) => {
                if let Some(device) = device {
                    node.devices.insert(device.clone());
                }
                let gap = node.follow(edge_node, payload.seq, false);
                let mut delivery = Delivery { gap, ..Delivery::default() };
                readings(&self.names, node, &device_key, &sensor, &payload, arrival, &mut delivery);
                return delivery;
            }
            (Kind::Death, None) => {
                let said = birth_sequence(&payload);
                if let (Some(said), Some(born)) = (said, node.birth_sequence)
                    && said != born
                {
                    // The will of an earlier session, delivered late: the node is alive.
                    return Delivery::default();
                }
                let mut offline = vec![SensorId::new(&sensor)];
                let devices = node.devices.iter().map(|device| self.names.sensor(edge_node, Some(device)));
                offline.extend(devices.map(|id| SensorId::new(&id)));
                return Delivery { offline, ..Delivery::default() };
            }
            (Kind::Death, Some(_)) => {
                let gap = node.follow(edge_node, payload.seq, false);
                return Delivery { offline: vec![SensorId::new(&sensor)], gap, ..Delivery::default() };
            }
            (Kind::Command, _) => return Delivery::default(),
        }
        // The node's birth: its metrics and their values.
        for metric in &payload.metrics {
            node.remember("", metric);
        }
        let mut delivery = Delivery::default();
        readings(&self.names, node, "", &sensor, &payload, arrival, &mut delivery);
        delivery
    }
}

/// The `bdSeq` metric of a birth or death certificate.
fn birth_sequence(payload: &Payload) -> Option<u64> {
    payload.metrics.iter().find(|metric| metric.name.as_deref() == Some("bdSeq")).and_then(|metric| {
        match metric.value {
            Some(payload::metric::Value::LongValue(value)) => Some(value),
            Some(payload::metric::Value::IntValue(value)) => Some(u64::from(value)),
            _ => None,
        }
    })
}

/// The readings of a birth or data message: the metrics that map to parameters, grouped by
/// their timestamps (a metric's own, else the payload's, else the arrival), oldest first.
fn readings(
    names: &SparkplugNames,
    node: &EdgeNode,
    device: &str,
    sensor: &str,
    payload: &Payload,
    arrival: DateTime<Utc>,
    delivery: &mut Delivery,
) {
    let mut by_time: BTreeMap<DateTime<Utc>, Values> = BTreeMap::new();
    for metric in &payload.metrics {
        let name = match (&metric.name, metric.alias) {
            (Some(name), _) => name.as_str(),
            (None, Some(alias)) => match node.aliases.get(&alias) {
                Some(name) => name.as_str(),
                None => {
                    let why = format!("metric alias {alias} is not in the edge node's birth");
                    delivery.refused.push(Refused::new(sensor, MqttReason::UnknownAlias, why));
                    continue;
                }
            },
            (None, None) => continue,
        };
        let Some(parameter) = names.parameter(name) else { continue };
        if metric.is_null == Some(true) || metric.value.is_none() {
            continue;
        }
        let datatype = metric.datatype.or_else(|| node.datatypes.get(&(device.to_owned(), name.to_owned())).copied());
        let Some(value) = number(metric.value.as_ref(), datatype) else {
            let why = format!("metric {:?} ({parameter}): not a number", bounded(name, 64));
            delivery.refused.push(Refused::new(sensor, MqttReason::NotANumber, why));
            continue;
        };
        let millis = metric.timestamp.or(payload.timestamp);
        let timestamp = match millis {
            None => arrival,
            Some(millis) => match i64::try_from(millis).ok().and_then(DateTime::from_timestamp_millis) {
                Some(timestamp) => timestamp,
                None => {
                    let why = format!("metric {:?}: timestamp {millis} is out of range", bounded(name, 64));
                    delivery.refused.push(Refused::new(sensor, MqttReason::Malformed, why));
                    continue;
                }
            },
        };
        by_time.entry(timestamp).or_default().set(parameter.clone(), value);
    }
    let sensor_id = SensorId::new(sensor);
    let readings =
        by_time.into_iter().map(|(timestamp, values)| Reading { sensor_id: sensor_id.clone(), timestamp, values });
    delivery.readings.extend(readings);
}

/// A metric's value as a number, read by its datatype; None for what is not a number.
fn number(value: Option<&payload::metric::Value>, datatype: Option<u32>) -> Option<f64> {
    use payload::metric::Value;
    let datatype = datatype.and_then(|code| DataType::from_i32(code as i32));
    let number = match (value?, datatype) {
        (Value::IntValue(bits), Some(DataType::Int8)) => f64::from(*bits as u8 as i8),
        (Value::IntValue(bits), Some(DataType::Int16)) => f64::from(*bits as u16 as i16),
        (Value::IntValue(bits), Some(DataType::Int32)) => f64::from(*bits as i32),
        (Value::IntValue(bits), _) => f64::from(*bits),
        (Value::LongValue(bits), Some(DataType::Int64)) => *bits as i64 as f64,
        (Value::LongValue(_), Some(DataType::DateTime)) => return None,
        (Value::LongValue(bits), _) => *bits as f64,
        (Value::FloatValue(value), _) => f64::from(*value),
        (Value::DoubleValue(value), _) => *value,
        _ => return None,
    };
    number.is_finite().then_some(number)
}
