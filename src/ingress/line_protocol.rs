//! InfluxDB line protocol, as Telegraf writes it: `measurement,sensor_id=pump-3 flow=61.5,pressure=2.1 1747649700000000000`.
//!
//! The sensor is the tag `ingest.line_protocol.sensor_tag`; each numeric field is a parameter's
//! value; the measurement is ignored unless `ingest.line_protocol.measurement` names one (then
//! lines of other measurements are skipped, not refused). Parsing is InfluxDB's own parser
//! ([`influxdb_line_protocol`]); this module only maps its lines onto readings.

use chrono::{DateTime, Utc};
use influxdb_line_protocol::FieldValue;

use super::bounded;
use crate::config::{LineProtocolConfig, is_safe_identifier};
use crate::domain::{Parameter, Reading, SensorId, Values};

/// What the timestamps of a write count in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
}

impl Precision {
    /// v2 spells `ns`, `us`, `ms`, `s`; v1 also `n`, `u`. None for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ns" | "n" => Some(Precision::Nanoseconds),
            "us" | "u" | "µs" => Some(Precision::Microseconds),
            "ms" => Some(Precision::Milliseconds),
            "s" => Some(Precision::Seconds),
            _ => None,
        }
    }

    fn to_time(self, value: i64) -> Option<DateTime<Utc>> {
        match self {
            Precision::Nanoseconds => Some(DateTime::from_timestamp_nanos(value)),
            Precision::Microseconds => DateTime::from_timestamp_micros(value),
            Precision::Milliseconds => DateTime::from_timestamp_millis(value),
            Precision::Seconds => DateTime::from_timestamp(value, 0),
        }
    }
}

/// One line of a body: its number (from 1), and the reading or why it is not one. Lines skipped
/// (another measurement) are absent.
type Line = (usize, Result<Reading, String>);

/// Reads a body of line protocol. A line without a timestamp is taken as of `arrival`.
pub fn parse(body: &str, config: &LineProtocolConfig, precision: Precision, arrival: DateTime<Utc>) -> Vec<Line> {
    influxdb_line_protocol::split_lines(body)
        .enumerate()
        .filter(|(_, text)| {
            let text = text.trim_start();
            !text.is_empty() && !text.starts_with('#')
        })
        .filter_map(|(index, text)| {
            let number = index + 1;
            let parsed = influxdb_line_protocol::parse_lines(text).next()?;
            let line = match parsed {
                Err(err) => return Some((number, Err(bounded(&format!("cannot parse: {err}"), 160)))),
                Ok(line) => line,
            };
            if !config.measurement.is_empty() && line.series.measurement.as_str() != config.measurement {
                return None;
            }
            Some((number, reading(&line, config, precision, arrival)))
        })
        .collect()
}

fn reading(
    line: &influxdb_line_protocol::ParsedLine<'_>,
    config: &LineProtocolConfig,
    precision: Precision,
    arrival: DateTime<Utc>,
) -> Result<Reading, String> {
    let sensor = line.tag_value(&config.sensor_tag).map(|value| value.as_str()).ok_or_else(|| {
        format!("no {} tag: the sensor is named by it (ingest.line_protocol.sensor_tag)", config.sensor_tag)
    })?;
    if !is_safe_identifier(sensor) {
        return Err(format!("sensor {:?} is not a valid sensor id", bounded(sensor, 64)));
    }
    let mut values = Values::with_capacity(line.field_set.len());
    for (name, value) in &line.field_set {
        let number = match value {
            FieldValue::F64(number) => *number,
            FieldValue::I64(number) => *number as f64,
            FieldValue::U64(number) => *number as f64,
            FieldValue::String(_) | FieldValue::Boolean(_) => {
                return Err(format!("field {}: not a number", bounded(name.as_str(), 64)));
            }
        };
        values.set(Parameter::new(name.as_str()), number);
    }
    let timestamp = match line.timestamp {
        None => arrival,
        Some(value) => precision.to_time(value).ok_or_else(|| format!("timestamp {value} is out of range"))?,
    };
    Ok(Reading { sensor_id: SensorId::new(sensor), timestamp, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap()
    }

    fn config() -> LineProtocolConfig {
        LineProtocolConfig::default()
    }

    #[test]
    fn fields_are_parameters_and_the_tag_names_the_sensor() {
        let body = "modbus,sensor_id=pump-3,site=north flow=61.5,pressure=2i 1747648800000000000\n";
        let lines = parse(body, &config(), Precision::Nanoseconds, now());
        let (number, reading) = &lines[0];
        let reading = reading.as_ref().unwrap();
        assert_eq!(*number, 1);
        assert_eq!(reading.sensor_id.as_str(), "pump-3");
        assert_eq!(reading.value("flow"), Some(61.5));
        assert_eq!(reading.value("pressure"), Some(2.0));
        assert_eq!(reading.timestamp, now());
    }

    #[test]
    fn precision_scales_the_timestamp_and_a_missing_one_is_now() {
        let lines =
            parse("m,sensor_id=a flow=1 1747648800\nm,sensor_id=a flow=2\n", &config(), Precision::Seconds, now());
        assert_eq!(lines[0].1.as_ref().unwrap().timestamp, now());
        assert_eq!(lines[1].1.as_ref().unwrap().timestamp, now());
        assert_eq!(Precision::parse("ms"), Some(Precision::Milliseconds));
        assert_eq!(Precision::parse("h"), None);
    }

    #[test]
    fn bad_lines_are_refused_with_their_number_and_good_ones_kept() {
        let body = "m,sensor_id=a flow=1\nthis is not a line\nm flow=2\nm,sensor_id=a state=\"on\"\n# comment\n\nm,sensor_id=b flow=3\n";
        let lines = parse(body, &config(), Precision::Nanoseconds, now());
        let numbers: Vec<usize> = lines.iter().map(|(number, _)| *number).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 7]);
        assert!(lines[0].1.is_ok() && lines[4].1.is_ok());
        assert!(lines[1].1.as_ref().unwrap_err().starts_with("cannot parse"));
        assert!(lines[2].1.as_ref().unwrap_err().contains("no sensor_id tag"));
        assert!(lines[3].1.as_ref().unwrap_err().contains("not a number"));
    }

    #[test]
    fn another_measurement_is_skipped_when_one_is_configured() {
        let config = LineProtocolConfig { measurement: "plant".into(), ..config() };
        let lines =
            parse("plant,sensor_id=a flow=1\ncpu,sensor_id=a usage=3\n", &config, Precision::Nanoseconds, now());
        assert_eq!(lines.len(), 1);
    }
}
