use chrono::{TimeDelta, TimeZone};
use sparkplug_rs::protobuf::Message;
use sparkplug_rs::{DataType, Payload, payload};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap()
}

fn intake(edit: impl FnOnce(&mut Config)) -> Intake {
    let mut config = Config::default();
    config.mqtt.sparkplug = true;
    edit(&mut config);
    Intake::new(&config)
}

fn reasons(delivery: &Delivery) -> Vec<MqttReason> {
    delivery.refused.iter().map(|refused| refused.reason).collect()
}

// --- plain topics ---------------------------------------------------------------------------

#[test]
fn a_json_reading_on_the_sensors_topic_takes_the_topics_sensor() {
    let mut intake = intake(|_| {});
    let delivery = intake.take("wtf/wtf-pipe-1", br#"{"pressure": 2.5, "flow": 60}"#, now());
    assert_eq!(delivery.refused, []);
    let reading = &delivery.readings[0];
    assert_eq!((reading.sensor_id.as_str(), reading.timestamp), ("wtf-pipe-1", now()));
    assert_eq!((reading.value("pressure"), reading.value("flow")), (Some(2.5), Some(60.0)));

    let stamped = br#"{"sensor_id": "wtf-pipe-1", "timestamp": "2025-05-19T09:59:58Z", "temperature": 21}"#;
    let delivery = intake.take("wtf/wtf-pipe-1", stamped, now());
    assert_eq!(delivery.readings[0].timestamp, now() - TimeDelta::seconds(2));
}

#[test]
fn a_parameters_topic_takes_a_bare_number_or_value_and_timestamp() {
    let mut intake = intake(|_| {});
    let bare = intake.take("wtf/wtf-pipe-2/pressure", b"4.5", now());
    assert_eq!(bare.readings[0].value("pressure"), Some(4.5));
    let object = intake.take("wtf/wtf-pipe-2/flow", br#"{"value": 61, "timestamp": "2025-05-19T09:59:59Z"}"#, now());
    assert_eq!(object.readings[0].value("flow"), Some(61.0));
    assert_eq!(object.readings[0].timestamp, now() - TimeDelta::seconds(1));
}

#[test]
fn garbage_on_plain_topics_is_refused_by_reason() {
    let mut intake = intake(|config| config.mqtt.topic_prefix = "plant/wtf".into());
    let cases: [(&str, &[u8], MqttReason); 9] = [
        ("plant/wtf/wtf-pipe-1", b"{nope", MqttReason::NotJson),
        ("plant/wtf/wtf-pipe-1/flow", b"\xff\xfe", MqttReason::NotJson),
        ("plant/wtf/wtf-pipe-1", br#"{"pressure": "high"}"#, MqttReason::NotANumber),
        ("plant/wtf/wtf-pipe-1/flow", br#""fast""#, MqttReason::NotANumber),
        ("plant/wtf/wtf-pipe-1/flow", br#"{"value": true}"#, MqttReason::NotANumber),
        ("plant/wtf/wtf-pipe-1", br#"{"sensor_id": "other", "flow": 1}"#, MqttReason::Malformed),
        ("plant/wtf/wtf-pipe-1", br#"[1, 2]"#, MqttReason::Malformed),
        ("plant/wtf/a/b/c", b"1", MqttReason::UnknownTopic),
        ("plant/wtf/bad id!", b"1", MqttReason::InvalidSensor),
    ];
    for (topic, payload, reason) in cases {
        let delivery = intake.take(topic, payload, now());
        assert_eq!(reasons(&delivery), [reason], "{topic} {payload:?}");
        assert!(delivery.readings.is_empty());
    }
    assert_eq!(reasons(&intake.take("elsewhere/x", b"1", now())), [MqttReason::UnknownTopic]);
    let long = format!("plant/wtf/{}", "x".repeat(10_000));
    let refused = intake.take(&long, b"1", now());
    assert!(refused.refused[0].message.len() < 200, "never echoes much of a topic");
}

#[test]
fn the_filters_follow_the_prefix_and_sparkplug() {
    assert_eq!(intake(|_| {}).filters(), ["wtf/#", "spBv1.0/#"]);
    assert_eq!(intake(|config| config.mqtt.sparkplug = false).filters(), ["wtf/#"]);
}

// --- Sparkplug B ----------------------------------------------------------------------------

fn metric(
    name: Option<&str>,
    alias: Option<u64>,
    datatype: DataType,
    value: payload::metric::Value,
) -> payload::Metric {
    let mut metric = payload::Metric::new();
    metric.name = name.map(str::to_owned);
    metric.alias = alias;
    metric.datatype = Some(datatype as u32);
    metric.value = Some(value);
    metric
}

fn double(name: &str, alias: u64, value: f64) -> payload::Metric {
    metric(Some(name), Some(alias), DataType::Double, payload::metric::Value::DoubleValue(value))
}

fn by_alias(alias: u64, value: f64) -> payload::Metric {
    let mut metric = payload::Metric::new();
    metric.alias = Some(alias);
    metric.value = Some(payload::metric::Value::DoubleValue(value));
    metric
}

fn encode(seq: Option<u64>, timestamp: Option<u64>, metrics: Vec<payload::Metric>) -> Vec<u8> {
    let mut payload = Payload::new();
    payload.seq = seq;
    payload.timestamp = timestamp;
    payload.metrics = metrics;
    payload.write_to_bytes().unwrap()
}

fn bd_seq(value: u64) -> payload::Metric {
    metric(Some("bdSeq"), None, DataType::Int64, payload::metric::Value::LongValue(value))
}

fn millis(at: DateTime<Utc>) -> Option<u64> {
    Some(at.timestamp_millis() as u64)
}

#[test]
fn a_device_births_reports_by_alias_and_dies() {
    let mut intake = intake(|config| {
        config.mqtt.sparkplug_metrics.insert("Pressure/PT-101".into(), "pressure".into());
    });
    let birth = encode(Some(0), millis(now()), vec![bd_seq(3)]);
    assert_eq!(intake.take("spBv1.0/plant/NBIRTH/edge-1", &birth, now()), Delivery::default());

    let metrics = vec![
        double("Pressure/PT-101", 1, 2.5),
        double("FLOW", 2, 60.0),
        metric(Some("Valve/Open"), Some(3), DataType::Boolean, payload::metric::Value::BooleanValue(true)),
    ];
    let delivery = intake.take("spBv1.0/plant/DBIRTH/edge-1/pump-1", &encode(Some(1), millis(now()), metrics), now());
    assert_eq!(delivery.refused, [], "a boolean no parameter maps to is passed over");
    let reading = &delivery.readings[0];
    assert_eq!(reading.sensor_id.as_str(), "edge-1.pump-1");
    assert_eq!((reading.value("pressure"), reading.value("flow")), (Some(2.5), Some(60.0)));

    let later = now() + TimeDelta::seconds(1);
    let data = encode(Some(2), millis(later), vec![by_alias(1, 4.5), by_alias(9, 1.0)]);
    let delivery = intake.take("spBv1.0/plant/DDATA/edge-1/pump-1", &data, later);
    assert_eq!(delivery.readings[0].value("pressure"), Some(4.5));
    assert_eq!(delivery.readings[0].timestamp, later);
    assert_eq!(reasons(&delivery), [MqttReason::UnknownAlias]);
    assert_eq!(delivery.gap, None);

    let death = intake.take("spBv1.0/plant/DDEATH/edge-1/pump-1", &encode(Some(3), None, vec![]), later);
    assert_eq!(death.offline, [SensorId::new("edge-1.pump-1")]);
}

#[test]
fn a_node_death_takes_its_devices_offline_unless_it_is_a_stale_will() {
    let mut intake = intake(|config| {
        config.mqtt.sparkplug_sensors.insert("edge-1/pump-2".into(), "wtf-pipe-2".into());
    });
    intake.take(
        "spBv1.0/plant/NBIRTH/edge-1",
        &encode(Some(0), None, vec![bd_seq(7), double("Temperature", 1, 20.0)]),
        now(),
    );
    intake.take("spBv1.0/plant/DBIRTH/edge-1/pump-2", &encode(Some(1), None, vec![double("flow", 2, 50.0)]), now());
    let stale = intake.take("spBv1.0/plant/NDEATH/edge-1", &encode(None, None, vec![bd_seq(6)]), now());
    assert_eq!(stale, Delivery::default(), "the will of an earlier session");
    let death = intake.take("spBv1.0/plant/NDEATH/edge-1", &encode(None, None, vec![bd_seq(7)]), now());
    assert_eq!(death.offline, [SensorId::new("edge-1"), SensorId::new("wtf-pipe-2")]);
}

#[test]
fn sequence_numbers_that_skip_are_reported_and_wrap_at_256() {
    let mut intake = intake(|_| {});
    intake.take("spBv1.0/g/NBIRTH/n", &encode(Some(0), None, vec![double("flow", 1, 1.0)]), now());
    let mut seq = 1;
    for _ in 0..300 {
        let delivery = intake.take("spBv1.0/g/NDATA/n", &encode(Some(seq), None, vec![by_alias(1, 2.0)]), now());
        assert_eq!(delivery.gap, None, "seq {seq}");
        seq = (seq + 1) % 256;
    }
    let skipped = intake.take("spBv1.0/g/NDATA/n", &encode(Some((seq + 2) % 256), None, vec![]), now());
    assert_eq!(skipped.gap, Some(SequenceGap { edge_node: "n".into(), expected: seq, got: (seq + 2) % 256 }));
}

#[test]
fn integers_are_read_by_their_datatype() {
    use payload::metric::Value;
    let mut intake = intake(|_| {});
    let metrics = vec![
        metric(Some("temperature"), Some(1), DataType::Int8, Value::IntValue(0xFFFF_FFF6)),
        metric(Some("pressure"), Some(2), DataType::Int64, Value::LongValue(u64::MAX)),
        metric(Some("flow"), Some(3), DataType::UInt32, Value::IntValue(4_000_000_000)),
    ];
    let delivery = intake.take("spBv1.0/g/NBIRTH/n", &encode(Some(0), None, metrics), now());
    let reading = &delivery.readings[0];
    assert_eq!(reading.value("temperature"), Some(-10.0));
    assert_eq!(reading.value("pressure"), Some(-1.0));
    assert_eq!(reading.value("flow"), Some(4e9));
    // Data leave the datatype out: the birth's is used.
    let mut data = payload::Metric::new();
    data.alias = Some(1);
    data.value = Some(Value::IntValue(0xFFFF_FFFE));
    let delivery = intake.take("spBv1.0/g/NDATA/n", &encode(Some(1), None, vec![data]), now());
    assert_eq!(delivery.readings[0].value("temperature"), Some(-2.0));
}

#[test]
fn garbage_on_sparkplug_topics_is_refused_by_reason() {
    use payload::metric::Value;
    let mut intake = intake(|_| {});
    let text = metric(Some("pressure"), Some(1), DataType::String, Value::StringValue("high".into()));
    let cases: [(&str, Vec<u8>, Vec<MqttReason>); 5] = [
        ("spBv1.0/g/NDATA/n", b"\x08\xff\xff\xff".to_vec(), vec![MqttReason::NotSparkplug]),
        ("spBv1.0/g/DDATA/n/d", b"{\"pressure\": 1}".to_vec(), vec![MqttReason::NotSparkplug]),
        ("spBv1.0/g/NDATA/n", encode(Some(0), None, vec![text]), vec![MqttReason::NotANumber]),
        ("spBv1.0/g/NOPE/n", encode(None, None, vec![]), vec![MqttReason::UnknownTopic]),
        ("spBv1.0/g/NDATA", encode(None, None, vec![]), vec![MqttReason::UnknownTopic]),
    ];
    for (topic, payload, expected) in cases {
        assert_eq!(reasons(&intake.take(topic, &payload, now())), expected, "{topic}");
    }
    // Commands and host states say nothing about the plant.
    assert_eq!(intake.take("spBv1.0/g/NCMD/n", b"\x00garbage", now()), Delivery::default());
    assert_eq!(intake.take("spBv1.0/STATE/scada-1", b"{\"online\": true}", now()), Delivery::default());
}

#[test]
fn metrics_at_different_times_make_readings_in_order() {
    let mut intake = intake(|_| {});
    let mut early = double("pressure", 1, 2.0);
    early.timestamp = millis(now() - TimeDelta::seconds(2));
    let mut late = double("flow", 2, 55.0);
    late.timestamp = millis(now() - TimeDelta::seconds(1));
    let delivery = intake.take("spBv1.0/g/NBIRTH/n", &encode(Some(0), millis(now()), vec![late, early]), now());
    let times: Vec<_> = delivery.readings.iter().map(|reading| reading.timestamp).collect();
    assert_eq!(times, [now() - TimeDelta::seconds(2), now() - TimeDelta::seconds(1)]);
}
