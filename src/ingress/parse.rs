//! Readings as clients write them: JSON objects (one, an array, or NDJSON lines), and single
//! values on MQTT's per-parameter topics.
//!
//! Each item is parsed on its own, so one bad reading in a batch is refused with its reason while
//! the others are taken. A reason names the field at fault and never echoes more than a few
//! dozen characters of what was sent.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::bounded;
use crate::config::is_safe_identifier;
use crate::domain::{Parameter, Reading, SensorId, Values};

/// Fields of a reading that are not parameters.
const SENSOR_FIELD: &str = "sensor_id";
const TIME_FIELD: &str = "timestamp";

/// A body as sent: several items, each a reading or why it is not one; or why the body as a
/// whole cannot be read (then nothing is taken).
pub type Items = Vec<Result<Reading, String>>;

/// `application/json`: one reading object, or an array of them.
pub fn json_body(body: &[u8], arrival: DateTime<Utc>) -> Result<Items, String> {
    let value: Value = serde_json::from_slice(body).map_err(|err| format!("the body is not JSON: {err}"))?;
    match value {
        Value::Array(items) => Ok(items.into_iter().map(|item| reading(item, None, arrival)).collect()),
        Value::Object(_) => Ok(vec![reading(value, None, arrival)]),
        _ => Err("the body must be a reading object or an array of them".to_owned()),
    }
}

/// `application/x-ndjson`: one reading object per line; blank lines are skipped. A line that is
/// not JSON is a refused item, not a refused body, unless no line is JSON at all.
pub fn ndjson_body(body: &[u8], arrival: DateTime<Utc>) -> Result<Items, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8 text".to_owned())?;
    let items: Items = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line).map_err(|err| format!("the line is not JSON: {err}"))?;
            reading(value, None, arrival)
        })
        .collect();
    if !items.is_empty()
        && items.iter().all(|item| item.as_ref().is_err_and(|why| why.starts_with("the line is not JSON")))
    {
        return Err("no line of the body is JSON".to_owned());
    }
    Ok(items)
}

/// One reading from a JSON value. `sensor_id` may be left out when `topic_sensor` names it (an
/// MQTT topic), and must then match it. Without a timestamp the reading is taken as of `arrival`.
pub fn reading(value: Value, topic_sensor: Option<&str>, arrival: DateTime<Utc>) -> Result<Reading, String> {
    let Value::Object(object) = value else { return Err("a reading must be a JSON object".to_owned()) };
    let mut sensor_id = None;
    let mut timestamp = None;
    let mut values = Values::with_capacity(object.len());
    for (key, value) in object {
        match key.as_str() {
            SENSOR_FIELD => match value {
                Value::String(id) => sensor_id = Some(id),
                _ => return Err("sensor_id must be a string".to_owned()),
            },
            TIME_FIELD => timestamp = time(&value)?,
            name => {
                let number = value
                    .as_f64()
                    .filter(|number| number.is_finite())
                    .ok_or_else(|| format!("{}: not a number", bounded(name, 64)))?;
                values.set(Parameter::new(name), number);
            }
        }
    }
    let sensor_id = match (sensor_id, topic_sensor) {
        (Some(id), Some(topic)) if id != topic => {
            return Err(format!("sensor_id {:?} differs from the topic's {:?}", bounded(&id, 64), bounded(topic, 64)));
        }
        (Some(id), _) => id,
        (None, Some(topic)) => topic.to_owned(),
        (None, None) => return Err("a reading needs a sensor_id".to_owned()),
    };
    if !is_safe_identifier(&sensor_id) {
        return Err(format!(
            "sensor_id {:?} is not valid: letters, digits, '-', '_', '.', at most 64 characters",
            bounded(&sensor_id, 64)
        ));
    }
    if values.is_empty() {
        return Err("a reading needs at least one parameter's value".to_owned());
    }
    Ok(Reading { sensor_id: SensorId::new(&sensor_id), timestamp: timestamp.unwrap_or(arrival), values })
}

/// One value of one parameter, from a payload read as JSON: a bare number, or
/// `{"value": x, "timestamp": "…"}`.
pub fn single_value(
    value: &Value,
    sensor_id: &str,
    parameter: &str,
    arrival: DateTime<Utc>,
) -> Result<Reading, String> {
    let (number, timestamp) = match value {
        Value::Number(number) => (number.as_f64(), None),
        Value::Object(object) => {
            if let Some(extra) = object.keys().find(|key| !matches!(key.as_str(), "value" | "timestamp")) {
                return Err(format!("unexpected field {:?}: only value and timestamp", bounded(extra, 64)));
            }
            (object.get("value").and_then(Value::as_f64), object.get("timestamp").map(time).transpose()?.flatten())
        }
        _ => (None, None),
    };
    let number = number
        .filter(|number| number.is_finite())
        .ok_or_else(|| format!("{}: not a number", bounded(parameter, 64)))?;
    if !is_safe_identifier(sensor_id) {
        return Err(format!("sensor_id {:?} is not valid", bounded(sensor_id, 64)));
    }
    let values = [(Parameter::new(parameter), number)].into_iter().collect();
    Ok(Reading { sensor_id: SensorId::new(sensor_id), timestamp: timestamp.unwrap_or(arrival), values })
}

/// A timestamp: an RFC 3339 string, or null for "now".
fn time(value: &Value) -> Result<Option<DateTime<Utc>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .map(|time| Some(time.with_timezone(&Utc)))
            .map_err(|_| format!("timestamp {:?} is not an RFC 3339 time", bounded(text, 40))),
        _ => Err("timestamp must be an RFC 3339 string".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap()
    }

    #[test]
    fn a_partial_reading_carries_only_its_parameters_and_defaults_its_time() {
        let reading = reading(json!({"sensor_id": "meter-7", "flow": 61.5}), None, now()).unwrap();
        assert_eq!(reading.sensor_id.as_str(), "meter-7");
        assert_eq!(reading.timestamp, now());
        assert_eq!(reading.value("flow"), Some(61.5));
        assert_eq!(reading.values.len(), 1);
    }

    #[test]
    fn each_item_of_a_batch_is_judged_alone() {
        let body = json!([
            {"sensor_id": "wtf-pipe-1", "pressure": 2.0},
            {"sensor_id": "wtf-pipe-1", "pressure": "high"},
            {"pressure": 2.0},
            {"sensor_id": "wtf-pipe-1", "timestamp": "yesterday", "pressure": 2.0},
            {"sensor_id": "a b", "pressure": 2.0},
            {"sensor_id": "wtf-pipe-1"},
            7
        ]);
        let items = json_body(body.to_string().as_bytes(), now()).unwrap();
        assert!(items[0].is_ok());
        assert_eq!(items[1].as_ref().unwrap_err(), "pressure: not a number");
        assert_eq!(items[2].as_ref().unwrap_err(), "a reading needs a sensor_id");
        assert!(items[3].as_ref().unwrap_err().contains("not an RFC 3339 time"));
        assert!(items[4].as_ref().unwrap_err().contains("not valid"));
        assert!(items[5].as_ref().unwrap_err().contains("at least one"));
        assert!(items[6].as_ref().unwrap_err().contains("object"));
    }

    #[test]
    fn a_body_that_is_not_json_is_refused_whole() {
        assert!(json_body(b"{nope", now()).is_err());
        assert!(json_body(b"\"text\"", now()).is_err());
        assert!(ndjson_body(b"nope\nstill nope\n", now()).is_err());
        let items = ndjson_body(b"{\"sensor_id\":\"s1\",\"flow\":1}\nnope\n\n", now()).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok() && items[1].is_err());
    }

    #[test]
    fn reasons_never_echo_much_of_what_was_sent() {
        let long = "x".repeat(10_000);
        let items = json_body(
            json!([{ "sensor_id": long.clone(), "flow": 1 }, { "sensor_id": "s", long.clone(): "a" }])
                .to_string()
                .as_bytes(),
            now(),
        )
        .unwrap();
        for item in items {
            assert!(item.unwrap_err().len() < 200);
        }
    }

    #[test]
    fn a_topic_names_the_sensor_and_a_payload_may_carry_one_value() {
        let reading = reading(json!({"temperature": 21.0}), Some("wtf-pipe-2"), now()).unwrap();
        assert_eq!(reading.sensor_id.as_str(), "wtf-pipe-2");
        let mismatch = super::reading(json!({"sensor_id": "other", "flow": 1}), Some("wtf-pipe-2"), now());
        assert!(mismatch.unwrap_err().contains("differs from the topic"));
        let bare = single_value(&serde_json::json!(4.25), "wtf-pipe-1", "pressure", now()).unwrap();
        assert_eq!(bare.value("pressure"), Some(4.25));
        let object = single_value(
            &serde_json::json!({"value": 3, "timestamp": "2025-05-19T09:59:59Z"}),
            "wtf-pipe-1",
            "flow",
            now(),
        )
        .unwrap();
        assert_eq!(object.timestamp, now() - chrono::TimeDelta::seconds(1));
        assert!(single_value(&serde_json::json!("high"), "wtf-pipe-1", "flow", now()).is_err());
    }
}
