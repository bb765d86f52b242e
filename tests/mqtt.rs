//! MQTT ingestion on the real binary against a real Mosquitto started by the test: each plain
//! topic form, a Sparkplug B edge node that births, reports, dies and is reborn, garbage on every
//! topic form, and nothing lost when the broker or the daemon restarts mid-stream.

mod common;
mod mqtt_support;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::Daemon;
use mqtt_support::Broker;
use serde_json::Value;
use sparkplug_rs::protobuf::Message;
use sparkplug_rs::{DataType, Payload, payload};

const WAIT: Duration = Duration::from_secs(15);

/// A daemon fed only by MQTT: no simulator, and the dropout timeout given.
fn config(broker: &Broker, client_id: &str, dropout: &str) -> String {
    format!(
        r#"
[sensors]
ids = ["wtf-pipe-1", "wtf-pipe-2", "wtf-pipe-3", "edge-1", "edge-1.pump-1"]
interval = "500ms"
[simulation]
enabled = false
[detection]
dropout_timeout = "{dropout}"
[mqtt]
url = "{url}"
client_id = "{client_id}"
sparkplug = true
sparkplug_metrics = {{ "Pressure/PT-101" = "pressure" }}
"#,
        url = broker.url()
    )
}

async fn start(broker: &Broker, client_id: &str, dropout: &str) -> Daemon {
    let daemon = Daemon::start(&config(broker, client_id, dropout)).await;
    wait_connected(&daemon).await;
    daemon
}

async fn wait_connected(daemon: &Daemon) {
    daemon
        .wait_for("the mqtt subscription", WAIT, || async {
            (mqtt(daemon).await["state"] == "connected").then_some(())
        })
        .await;
    let exposition = daemon.get("/metrics/prometheus").await.text();
    let gauge = exposition.lines().find_map(|line| line.strip_prefix("wtf_mqtt_connected ")?.parse::<f64>().ok());
    assert_eq!(gauge, Some(1.0), "connected, but:\n{exposition}");
}

async fn mqtt(daemon: &Daemon) -> Value {
    daemon.get_json("/status").await.1["mqtt"].clone()
}

/// (sensor, parameter, type) of every anomaly held, oldest first.
async fn anomalies(daemon: &Daemon) -> Vec<(String, String, String)> {
    let (_, body) = daemon.get_json("/anomalies?limit=1000").await;
    let mut seen: Vec<(String, String, String)> = body
        .as_array()
        .expect("a list")
        .iter()
        .map(|anomaly| {
            let field = |name: &str| anomaly[name].as_str().unwrap_or_default().to_owned();
            (field("sensor_id"), field("parameter"), field("type"))
        })
        .collect();
    seen.reverse();
    seen
}

async fn wait_for_anomaly(daemon: &Daemon, sensor: &str, parameter: &str, kind: &str) {
    let wanted = (sensor.to_owned(), parameter.to_owned(), kind.to_owned());
    let what = format!("a {kind} of {sensor} {parameter}");
    daemon.wait_for(&what, WAIT, || async { anomalies(daemon).await.contains(&wanted).then_some(()) }).await;
}

fn count(anomalies: &[(String, String, String)], sensor: &str, parameter: &str, kind: &str) -> usize {
    anomalies.iter().filter(|(s, p, k)| (s.as_str(), p.as_str(), k.as_str()) == (sensor, parameter, kind)).count()
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[tokio::test]
async fn each_plain_topic_form_raises_its_anomalies() {
    let broker = Broker::start();
    let daemon = start(&broker, "plain-forms", "2s").await;

    // A JSON reading on the sensor's topic, without sensor_id or timestamp.
    broker.publish("wtf/wtf-pipe-1", br#"{"pressure": 5.2, "flow": 60}"#);
    // A bare number on the parameter's topic.
    broker.publish("wtf/wtf-pipe-2/flow", b"130");
    // {"value", "timestamp"} on the parameter's topic.
    broker.publish("wtf/wtf-pipe-3/temperature", format!(r#"{{"value": 50.5, "timestamp": "{}"}}"#, now()).as_bytes());
    wait_for_anomaly(&daemon, "wtf-pipe-1", "pressure", "spike").await;
    wait_for_anomaly(&daemon, "wtf-pipe-2", "flow", "spike").await;
    wait_for_anomaly(&daemon, "wtf-pipe-3", "temperature", "spike").await;
    // Then silence: each parameter that reported drops out after the 2 s timeout.
    for (sensor, parameter) in
        [("wtf-pipe-1", "pressure"), ("wtf-pipe-1", "flow"), ("wtf-pipe-2", "flow"), ("wtf-pipe-3", "temperature")]
    {
        wait_for_anomaly(&daemon, sensor, parameter, "dropout").await;
    }
    let seen = anomalies(&daemon).await;
    assert_eq!(count(&seen, "wtf-pipe-1", "flow", "spike"), 0, "60 L/min is normal: {seen:?}");
    assert_eq!(count(&seen, "wtf-pipe-2", "pressure", "dropout"), 0, "never reported, never silent: {seen:?}");
    let status = mqtt(&daemon).await;
    assert_eq!(status["messages"], 3);
    assert_eq!(status["refused"], serde_json::json!({}));
    assert_eq!(daemon.get_json("/status").await.1["ingest"]["accepted"]["mqtt"], 3);
}

#[tokio::test]
async fn garbage_on_every_topic_form_is_refused_by_reason_and_the_subscription_goes_on() {
    let broker = Broker::start();
    let daemon = start(&broker, "garbage", "2s").await;
    let garbage: [(&str, &[u8]); 9] = [
        ("wtf/wtf-pipe-1", b"{not json"),
        ("wtf/wtf-pipe-1/pressure", b"\xff\xfe\xfd"),
        ("wtf/wtf-pipe-1", br#"{"pressure": "high"}"#),
        ("wtf/wtf-pipe-1/flow", br#"{"value": "fast"}"#),
        ("wtf/pump-9", br#"{"flow": 130}"#),
        ("wtf/pump-9/flow", b"130"),
        ("wtf/wtf-pipe-1/a/b", b"1"),
        ("spBv1.0/plant/NDATA/edge-1", b"\x08\xff\xff"),
        ("spBv1.0/plant/DDATA/edge-1/pump-1", br#"{"pressure": 5}"#),
    ];
    for (topic, payload) in garbage {
        broker.publish(topic, payload);
    }
    // A good reading behind all of it still gets through.
    broker.publish("wtf/wtf-pipe-1/pressure", b"5.5");
    wait_for_anomaly(&daemon, "wtf-pipe-1", "pressure", "spike").await;
    let status = mqtt(&daemon).await;
    assert_eq!(status["messages"], 10);
    let expected = serde_json::json!({
        "not_json": 2, "not_a_number": 2, "unknown_sensor": 2, "unknown_topic": 1, "not_sparkplug": 2
    });
    assert_eq!(status["refused"], expected, "{status}");
    assert_eq!(anomalies(&daemon).await.len(), 1, "nothing else raised");
    // Refusals are logged at most once a minute per sensor: one line for wtf-pipe-1's four.
    let logged = daemon
        .logs()
        .lines()
        .filter(|line| line.contains("reading refused") && line.contains("\"wtf-pipe-1\""))
        .count();
    assert_eq!(logged, 1, "{}", daemon.logs());
}

// --- Sparkplug B ----------------------------------------------------------------------------

fn metric(name: Option<&str>, alias: u64, value: Option<f64>) -> payload::Metric {
    let mut metric = payload::Metric::new();
    metric.name = name.map(str::to_owned);
    metric.alias = Some(alias);
    if name.is_some() {
        metric.datatype = Some(DataType::Double as u32);
    }
    metric.value = value.map(payload::metric::Value::DoubleValue);
    metric
}

fn bd_seq(value: u64) -> payload::Metric {
    let mut metric = payload::Metric::new();
    metric.name = Some("bdSeq".into());
    metric.datatype = Some(DataType::Int64 as u32);
    metric.value = Some(payload::metric::Value::LongValue(value));
    metric
}

fn encode(seq: Option<u64>, metrics: Vec<payload::Metric>) -> Vec<u8> {
    let mut payload = Payload::new();
    payload.timestamp = Some(Utc::now().timestamp_millis() as u64);
    payload.seq = seq;
    payload.metrics = metrics;
    payload.write_to_bytes().expect("a payload encodes")
}

/// An edge node `edge-1` with one device `pump-1`, publishing as a Sparkplug edge node would.
struct EdgeNode<'a> {
    broker: &'a Broker,
    seq: u64,
}

impl EdgeNode<'_> {
    fn next_seq(&mut self) -> u64 {
        self.seq = (self.seq + 1) % 256;
        self.seq
    }

    fn birth(&mut self, session: u64, pressure: f64) {
        self.seq = 0;
        self.broker.publish("spBv1.0/plant/NBIRTH/edge-1", &encode(Some(0), vec![bd_seq(session)]));
        let seq = self.next_seq();
        let metrics = vec![metric(Some("Pressure/PT-101"), 1, Some(pressure)), metric(Some("Flow"), 2, Some(60.0))];
        self.broker.publish("spBv1.0/plant/DBIRTH/edge-1/pump-1", &encode(Some(seq), metrics));
    }

    /// Device data by alias only, as births allow.
    fn data(&mut self, pressure: f64) {
        let seq = self.next_seq();
        self.broker
            .publish("spBv1.0/plant/DDATA/edge-1/pump-1", &encode(Some(seq), vec![metric(None, 1, Some(pressure))]));
    }

    /// The node's death certificate, as the broker publishes its will when the node drops off.
    fn death(&self, session: u64) {
        self.broker.publish("spBv1.0/plant/NDEATH/edge-1", &encode(None, vec![bd_seq(session)]));
    }
}

#[tokio::test]
async fn a_sparkplug_edge_node_births_reports_dies_at_once_and_is_reborn() {
    let broker = Broker::start();
    // The default 10 s dropout: a death must not wait for it.
    let daemon = start(&broker, "sparkplug", "10s").await;
    let mut node = EdgeNode { broker: &broker, seq: 0 };
    node.birth(0, 2.0);
    node.data(2.1);
    node.data(5.5);
    wait_for_anomaly(&daemon, "edge-1.pump-1", "pressure", "spike").await;
    let (_, sensor) = daemon.get_json("/status").await;
    assert_eq!(sensor["sensors"]["edge-1.pump-1"]["active"], true);

    let died = std::time::Instant::now();
    node.death(0);
    wait_for_anomaly(&daemon, "edge-1.pump-1", "pressure", "dropout").await;
    wait_for_anomaly(&daemon, "edge-1.pump-1", "flow", "dropout").await;
    assert!(died.elapsed() < Duration::from_secs(5), "raised at once, not after the 10 s timeout");
    let (_, body) = daemon.get_json("/anomalies?type=dropout").await;
    for dropout in body.as_array().expect("a list") {
        let message = dropout["message"].as_str().unwrap_or_default();
        assert!(message.contains("went offline"), "{message}");
    }
    let (_, status) = daemon.get_json("/status").await;
    assert_eq!(status["sensors"]["edge-1.pump-1"]["active"], false);
    assert_eq!(status["mqtt"]["deaths"], 1);

    // Reborn: the birth's values end the dropouts, and data by alias raise anomalies again.
    node.birth(1, 2.0);
    daemon
        .wait_for("the device active again", WAIT, || async {
            (daemon.get_json("/status").await.1["sensors"]["edge-1.pump-1"]["active"] == true).then_some(())
        })
        .await;
    node.data(2.0);
    node.data(6.0);
    daemon
        .wait_for("a second spike", WAIT, || async {
            (count(&anomalies(&daemon).await, "edge-1.pump-1", "pressure", "spike") == 2).then_some(())
        })
        .await;
    // A stale will of the first session, delivered late, takes nothing offline.
    node.death(0);
    // A lost message shows as a sequence gap.
    node.next_seq();
    node.data(2.0);
    daemon
        .wait_for("the sequence gap counted", WAIT, || async {
            (mqtt(&daemon).await["sequence_gaps"] == 1).then_some(())
        })
        .await;
    let seen = anomalies(&daemon).await;
    assert_eq!(count(&seen, "edge-1.pump-1", "pressure", "dropout"), 1, "{seen:?}");
    assert_eq!(mqtt(&daemon).await["deaths"], 1, "the stale will is not a death");
}

// --- Restarts -------------------------------------------------------------------------------

/// Reading `index` of a stream: alternately a pressure spike and a temperature spike, each
/// value unique, so every reading raises exactly one anomaly and a lost one shows by its value.
/// Stamped a millisecond apart from a minute ago, so readings made in the same instant are in
/// order.
fn stream_reading(index: usize) -> (String, f64) {
    static START: std::sync::OnceLock<chrono::DateTime<Utc>> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| Utc::now() - chrono::TimeDelta::seconds(60));
    let timestamp =
        (start + chrono::TimeDelta::milliseconds(index as i64)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let (line, value) = if index % 2 == 0 {
        let value = 5.0 + index as f64 / 10_000.0;
        (format!(r#"{{"timestamp": "{timestamp}", "pressure": {value}, "temperature": 20.0}}"#), value)
    } else {
        let value = 50.0 + index as f64 / 10_000.0;
        (format!(r#"{{"timestamp": "{timestamp}", "pressure": 2.0, "temperature": {value}}}"#), value)
    };
    (line, value)
}

/// The values of every spike a daemon logged (JSON logs), as integers of 1/10,000.
fn spike_values(logs: &str) -> BTreeSet<i64> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "anomaly raised" && line["kind"] == "spike")
        .filter_map(|line| line["value"].as_f64())
        .map(|value| (value * 10_000.0).round() as i64)
        .collect()
}

fn expected_values(count: usize) -> BTreeSet<i64> {
    (0..count).map(|index| (stream_reading(index).1 * 10_000.0).round() as i64).collect()
}

#[tokio::test]
async fn the_broker_restarted_mid_stream_loses_nothing_published_with_qos_1() {
    let mut broker = Broker::start();
    let daemon = Daemon::builder(&config(&broker, "broker-restart", "2s")).env("WTF_LOG__FORMAT", "json").start().await;
    wait_connected(&daemon).await;
    let mut index = 0;
    let mut publish = |broker: &Broker, count: usize| {
        let lines: Vec<String> = (index..index + count).map(|index| stream_reading(index).0).collect();
        broker.publish_lines("wtf/wtf-pipe-1", &lines);
        index += count;
    };
    publish(&broker, 50);
    broker.stop();
    daemon
        .wait_for("the daemon to notice", WAIT, || async {
            (mqtt(&daemon).await["state"] == "connecting").then_some(())
        })
        .await;
    // Let its backoff grow, then bring the broker back and publish at once: the daemon is still
    // away, and the broker keeps the messages in its session.
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.resume();
    publish(&broker, 50);
    let away = mqtt(&daemon).await;
    publish(&broker, 50);
    wait_connected(&daemon).await;
    let expected = expected_values(150);
    daemon
        .wait_for("every reading's spike", WAIT, || async { (spike_values(&daemon.logs()) == expected).then_some(()) })
        .await;
    assert_eq!(away["state"], "connecting", "published while the daemon was away: {away}");
    assert!(away["last_error"].is_string(), "says why it is away: {away}");
}

#[tokio::test]
async fn a_daemon_restarted_while_readings_are_published_loses_none() {
    let broker = Broker::start();
    let start_daemon = || async {
        let daemon =
            Daemon::builder(&config(&broker, "daemon-restart", "2s")).env("WTF_LOG__FORMAT", "json").start().await;
        wait_connected(&daemon).await;
        daemon
    };
    let mut first = start_daemon().await;
    // A publisher streaming 400 readings at about 200 a second, through the restart.
    let total = 400;
    let lines = (0..total).map(|index| stream_reading(index).0).collect();
    let stream = broker.stream_lines("wtf/wtf-pipe-2", lines, Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(600)).await;
    first.signal("TERM");
    first.wait_exit(Duration::from_secs(10)).await.expect("the first daemon stops");
    let second = start_daemon().await;
    stream.finish();

    let before = spike_values(&first.logs());
    assert!(!before.is_empty() && before.len() < total, "the restart fell mid-stream: {} before", before.len());
    let expected = expected_values(total);
    second
        .wait_for("every reading's spike, across both runs", WAIT, || async {
            let seen: BTreeSet<i64> = before.union(&spike_values(&second.logs())).copied().collect();
            (seen == expected).then_some(())
        })
        .await;
}

#[tokio::test]
async fn a_crashed_mqtt_actor_leaves_nothing_running_and_its_successor_gets_what_came_meanwhile() {
    let broker = Broker::start();
    let drill = "[debug]\nfault_injection = true\n[supervisor]\nbackoff_initial = \"1s\"\n";
    let daemon = Daemon::start(&format!("{}{drill}", config(&broker, "crash-drill", "10s"))).await;
    wait_connected(&daemon).await;
    let answer = daemon.request(reqwest::Method::POST, "/debug/fail/mqtt?fault=panic").await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    // Published while no MQTT actor runs (the crash seen, the restart in its 1 s backoff): the
    // broker keeps it in the daemon's session.
    daemon
        .wait_for("the crash seen", WAIT, || async {
            (daemon.get_json("/status").await.1["actors"]["mqtt"]["alive"] == false).then_some(())
        })
        .await;
    broker.publish("wtf/wtf-pipe-1/pressure", b"5.5");
    wait_for_anomaly(&daemon, "wtf-pipe-1", "pressure", "spike").await;
    let (_, status) = daemon.get_json("/status").await;
    assert_eq!(status["actors"]["mqtt"]["restarts"], 1, "{}", status["actors"]);
    assert_eq!(status["actors"]["mqtt"]["alive"], true);
    // The crashed actor's connection went with it: the successor did not have to push it out.
    assert!(!broker.log().contains("already connected"), "{}", broker.log());
}
