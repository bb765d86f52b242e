//! Readings from outside, on the real binary: `POST /readings` (JSON, NDJSON) and the InfluxDB
//! line protocol, as a gateway, a SCADA export or Telegraf would send them.

mod common;

use std::time::Duration;

use common::Daemon;
use serde_json::{Value, json};

const GATEWAY: &str = "Bearer gateway-token-0123456789";
const VIEWER: &str = "Bearer viewer-token-0123456789";

/// Two configured sensors, no simulator: only what the test sends is read.
fn config(extra: &str) -> String {
    format!(
        r#"
[sensors]
ids = ["wtf-pipe-1", "wtf-pipe-2"]

[simulation]
enabled = false

[debug]
fault_injection = true

[[auth.tokens]]
name = "gateway"
role = "ingest"
token = "gateway-token-0123456789"

[[auth.tokens]]
name = "viewer"
role = "viewer"
token = "viewer-token-0123456789"
{extra}
"#
    )
}

/// An RFC 3339 time `seconds` before now.
fn ago(seconds: f64) -> String {
    let at = chrono::Utc::now() - chrono::TimeDelta::milliseconds((seconds * 1000.0) as i64);
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn post_json(daemon: &Daemon, body: &Value) -> (u16, Value) {
    let answer = daemon.post("/readings", "application/json", Some(GATEWAY), body.to_string().into_bytes()).await;
    (answer.status, answer.json())
}

async fn anomalies(daemon: &Daemon, query: &str) -> Vec<Value> {
    let (status, body) = daemon.get_json(&format!("/anomalies?limit=1000{query}")).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

async fn wait_for_anomalies(daemon: &Daemon, query: &str, count: usize) -> Vec<Value> {
    daemon
        .wait_for(&format!("{count} anomalies matching {query:?}"), Duration::from_secs(10), || async {
            let found = anomalies(daemon, query).await;
            (found.len() >= count).then_some(found)
        })
        .await
}

#[tokio::test]
async fn a_batch_with_good_and_bad_readings_takes_the_good_and_names_the_bad() {
    let daemon = Daemon::start(&config("")).await;
    let body = json!([
        {"sensor_id": "wtf-pipe-1", "timestamp": ago(3.0), "pressure": 2.1, "flow": 61.5},
        {"sensor_id": "wtf-pipe-1", "timestamp": ago(2.0), "pressure": 4.6},
        {"sensor_id": "pump-9", "pressure": 2.0},
        {"sensor_id": "wtf-pipe-2", "pressure": "high"},
        {"sensor_id": "wtf-pipe-2", "timestamp": ago(-60.0), "pressure": 2.0},
        {"sensor_id": "wtf-pipe-2", "humidity": 40.0},
        {"sensor_id": "wtf-pipe-1", "timestamp": ago(3.0), "pressure": 2.2}
    ]);
    let (status, answer) = post_json(&daemon, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    let rejected: Vec<(u64, String)> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["index"].as_u64().unwrap(), item["error"].as_str().unwrap().to_owned()))
        .collect();
    let indices: Vec<u64> = rejected.iter().map(|(index, _)| *index).collect();
    assert_eq!(indices, [2, 3, 4, 5, 6]);
    assert!(rejected[0].1.contains("unknown sensor \"pump-9\""), "{}", rejected[0].1);
    assert!(rejected[1].1.contains("pressure: not a number"), "{}", rejected[1].1);
    assert!(rejected[2].1.contains("ahead of the clock"), "{}", rejected[2].1);
    assert!(rejected[3].1.contains("unknown parameter \"humidity\""), "{}", rejected[3].1);
    assert!(rejected[4].1.contains("at or before the last accepted"), "{}", rejected[4].1);

    let spikes = wait_for_anomalies(&daemon, "&type=spike", 1).await;
    assert_eq!(
        (spikes[0]["sensor_id"].as_str(), spikes[0]["parameter"].as_str()),
        (Some("wtf-pipe-1"), Some("pressure"))
    );
    let (_, status) = daemon.get_json("/status").await;
    assert_eq!(status["ingest"]["accepted"]["http"], 2, "{}", status["ingest"]);
    assert_eq!(status["ingest"]["refused"]["http"], 5, "{}", status["ingest"]);
    assert!(status["ingest"]["last_refusal"]["message"].as_str().is_some(), "{}", status["ingest"]);
    let last = &status["sensors"]["wtf-pipe-1"]["last_reading"];
    assert_eq!((last["pressure"].as_f64(), last["flow"].as_f64()), (Some(4.6), Some(61.5)), "{last}");
}

#[tokio::test]
async fn ndjson_and_a_reading_with_only_flow_are_taken() {
    let daemon = Daemon::start(&config("")).await;
    let lines = format!(
        "{}\n\n{}\nnot json\n",
        json!({"sensor_id": "wtf-pipe-2", "timestamp": ago(2.0), "flow": 60.0}),
        json!({"sensor_id": "wtf-pipe-2", "timestamp": ago(1.0), "flow": 130.0})
    );
    let answer = daemon.post("/readings", "application/x-ndjson", Some(GATEWAY), lines.into_bytes()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 2, "{body}");
    let spikes = wait_for_anomalies(&daemon, "&sensor_id=wtf-pipe-2", 1).await;
    assert_eq!(spikes[0]["parameter"], "flow");
    assert_eq!(spikes[0]["message"], "Flow spike detected: 130 L/min exceeds threshold 120 L/min");
    // It never reported pressure or temperature: no dropout for them, ever.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(anomalies(&daemon, "&type=dropout").await.is_empty());
}

#[tokio::test]
async fn every_refusal_has_its_status_code_and_a_json_reason() {
    let daemon = Daemon::start(&config("[ingest]\nmax_body = 2048\n")).await;
    let reading = json!({"sensor_id": "wtf-pipe-1", "pressure": 2.0}).to_string().into_bytes();
    // Content type, token, body, the status expected, and what its error must say.
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: [Case; 7] = [
        ("application/json", None, reading.clone(), 401, "token"),
        ("application/json", Some("Bearer not-a-token-at-all-0000"), reading.clone(), 401, "token"),
        ("application/json", Some(VIEWER), reading.clone(), 403, "viewer"),
        ("text/plain", Some(GATEWAY), reading.clone(), 415, "application/json"),
        ("application/json", Some(GATEWAY), b"{not json".to_vec(), 400, "not JSON"),
        ("application/json", Some(GATEWAY), b"\"a string\"".to_vec(), 400, "reading object"),
        ("application/json", Some(GATEWAY), vec![b' '; 4096], 413, "larger than 2048"),
    ];
    for (content_type, token, body, expected, says) in cases {
        let answer = daemon.post("/readings", content_type, token, body).await;
        assert_eq!(answer.status, expected, "{content_type} {token:?}: {}", answer.text());
        let error = answer.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(says), "{expected}: {error:?} should say {says:?}");
        if expected == 401 {
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        }
    }
    assert!(!daemon.logs().contains("gateway-token-0123456789"), "a token never reaches the log");
}

#[tokio::test]
async fn without_a_token_configured_writes_are_refused_with_how_to_add_one() {
    let daemon = Daemon::start("[simulation]\nenabled = false\n").await;
    let answer = daemon
        .post(
            "/readings",
            "application/json",
            Some(GATEWAY),
            json!({"sensor_id": "wtf-pipe-1", "flow": 1.0}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(answer.status, 401);
    assert!(answer.json()["error"].as_str().unwrap().contains("[[auth.tokens]]"), "{}", answer.text());
}

#[tokio::test]
async fn a_full_queue_is_a_429_and_what_was_taken_is_not_lost() {
    let daemon = Daemon::start(&config(
        "[ingest]\nqueue_capacity = 16\n[supervisor]\nbackoff_initial = \"3s\"\nbackoff_max = \"3s\"\n",
    ))
    .await;
    // The detector is down for its 3 s backoff: its queue fills and then refuses.
    let failed = daemon.request(reqwest::Method::POST, "/debug/fail/detector:wtf-pipe-1:pressure").await;
    assert_eq!(failed.status, 202);
    daemon
        .wait_for("the detector to be down", Duration::from_secs(5), || async {
            let (_, status) = daemon.get_json("/status").await;
            (status["actors"]["detector:wtf-pipe-1:pressure"]["alive"] == false).then_some(())
        })
        .await;
    let readings: Vec<Value> = (0..20)
        .map(|i| {
            let pressure = if i % 2 == 0 { 4.5 } else { 2.0 };
            json!({"sensor_id": "wtf-pipe-1", "timestamp": ago(2.0 - i as f64 * 0.05), "pressure": pressure})
        })
        .collect();
    let answer = daemon
        .post("/readings", "application/json", Some(GATEWAY), Value::Array(readings).to_string().into_bytes())
        .await;
    assert_eq!(answer.status, 429, "{}", answer.text());
    assert_eq!(answer.header("retry-after"), Some("1"));
    let body = answer.json();
    assert_eq!(body["accepted"], 16, "{body}");
    assert!(
        body["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["error"].as_str().unwrap().contains("queue is full"))
    );
    // Once the detector is back, the 16 taken are all handled: 8 spikes.
    let spikes = daemon
        .wait_for("the queued readings handled", Duration::from_secs(10), || async {
            let found = anomalies(&daemon, "&type=spike").await;
            (found.len() >= 8).then_some(found)
        })
        .await;
    assert_eq!(spikes.len(), 8);
}

#[tokio::test]
async fn an_unknown_sensor_is_refused_or_registered_as_configured() {
    let reading = |sensor: &str| json!({"sensor_id": sensor, "timestamp": ago(1.0), "flow": 125.0});
    let strict = Daemon::start(&config("")).await;
    let (status, answer) = post_json(&strict, &reading("meter-7")).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(0)), "{answer}");
    assert!(answer["rejected"][0]["error"].as_str().unwrap().contains("\"meter-7\""));
    drop(strict);

    let open = Daemon::start(&config("[ingest]\nunknown_sensors = \"register\"\n")).await;
    let (status, answer) = post_json(&open, &reading("meter-7")).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");
    let spikes = wait_for_anomalies(&open, "&sensor_id=meter-7", 1).await;
    assert_eq!(spikes[0]["parameter"], "flow");
    let (_, status) = open.get_json("/status").await;
    assert!(status["sensors"]["meter-7"]["last_reading"]["flow"].is_number(), "{}", status["sensors"]);
    assert_eq!(status["actors"]["detector:meter-7:flow"]["alive"], true, "started live under supervision");
    let (_, page) = open.get_json("/sensors?limit=10").await;
    let listed: Vec<&str> =
        page["sensors"].as_array().unwrap().iter().map(|sensor| sensor["sensor_id"].as_str().unwrap()).collect();
    assert_eq!(listed, ["meter-7", "wtf-pipe-1", "wtf-pipe-2"]);
    assert_eq!(page["sensors"][0]["registered"], true);
}

#[tokio::test]
async fn line_protocol_is_taken_like_influxdb_takes_it() {
    let daemon = Daemon::start(&config("")).await;
    let nanos = |seconds_ago: i64| {
        (chrono::Utc::now() - chrono::TimeDelta::seconds(seconds_ago)).timestamp_nanos_opt().unwrap()
    };
    let body = format!(
        "modbus,sensor_id=wtf-pipe-1,site=north pressure=2.1,flow=61i {}\nmodbus,sensor_id=wtf-pipe-1 pressure=4.7 {}\n",
        nanos(3),
        nanos(2)
    );
    let answer = daemon
        .post(
            "/api/v2/write?org=plant&bucket=wtf&precision=ns",
            "text/plain",
            Some("Token gateway-token-0123456789"),
            body.into_bytes(),
        )
        .await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    wait_for_anomalies(&daemon, "&type=spike&sensor_id=wtf-pipe-1", 1).await;

    // A bad line among good ones: the good are taken, the answer says which line was not.
    let seconds = chrono::Utc::now().timestamp() - 1;
    let body = format!("m,sensor_id=wtf-pipe-2 flow=60 {seconds}\nthis is not line protocol\nm flow=3 {seconds}\n");
    let answer = daemon
        .post("/write?db=wtf&precision=s&u=gateway&p=gateway-token-0123456789", "text/plain", None, body.into_bytes())
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    let error = answer.json();
    assert_eq!(error["code"], "invalid");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("line 2") && message.contains("line 3") && !message.contains("line 1"), "{message}");
    let (_, status) = daemon.get_json("/status").await;
    assert_eq!(status["ingest"]["accepted"]["line_protocol"], 3, "{}", status["ingest"]);

    let unauthorized =
        daemon.post("/api/v2/write", "text/plain", None, b"m,sensor_id=wtf-pipe-1 flow=1".to_vec()).await;
    assert_eq!(unauthorized.status, 401);
    assert_eq!(unauthorized.json()["code"], "unauthorized");
}

#[tokio::test]
async fn the_influxdb_client_library_writes_to_the_v2_endpoint() {
    let Some(python) = common::python_with("influxdb_client") else {
        eprintln!(
            "skipped: the influxdb-client Python package is not installed (pip install influxdb-client; .ci/run does)"
        );
        return;
    };
    let daemon = Daemon::start(&config("")).await;
    let script = format!(
        r#"
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
with InfluxDBClient(url="{url}", token="gateway-token-0123456789", org="plant") as client:
    write = client.write_api(write_options=SYNCHRONOUS)
    write.write(bucket="wtf", record=[
        Point("plant").tag("sensor_id", "wtf-pipe-2").field("temperature", 21.5),
        Point("plant").tag("sensor_id", "wtf-pipe-1").field("temperature", 47.0),
    ], write_precision=WritePrecision.NS)
print("written")
"#,
        url = daemon.url("")
    );
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(&script)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .expect("run python");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let spikes = wait_for_anomalies(&daemon, "&type=spike", 1).await;
    assert_eq!(
        (spikes[0]["sensor_id"].as_str(), spikes[0]["parameter"].as_str()),
        (Some("wtf-pipe-1"), Some("temperature"))
    );
}

#[tokio::test]
async fn two_daemons_fed_the_same_readings_serve_byte_identical_anomalies() {
    let first = Daemon::start(&config("[detection]\ndropout_timeout = \"2s\"\n")).await;
    let second = Daemon::start(&config("[detection]\ndropout_timeout = \"2s\"\n")).await;
    // A spike, a drift over more than 15 s of reading time, and a silence long enough for a dropout.
    let start = chrono::Utc::now() - chrono::TimeDelta::seconds(30);
    let readings: Vec<Value> = (0..25)
        .map(|i| {
            let at = (start + chrono::TimeDelta::seconds(i)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let pressure = match i {
                3 => 4.4,
                5..=23 => 3.7,
                _ => 2.0,
            };
            json!({"sensor_id": "wtf-pipe-1", "timestamp": at, "pressure": pressure})
        })
        .collect();
    for daemon in [&first, &second] {
        let (status, answer) = post_json(daemon, &Value::Array(readings.clone())).await;
        assert_eq!((status, answer["accepted"].as_u64()), (200, Some(25)), "{answer}");
    }
    for daemon in [&first, &second] {
        wait_for_anomalies(daemon, "&type=dropout", 1).await;
    }
    let bodies = [first.get("/anomalies?limit=1000").await.body, second.get("/anomalies?limit=1000").await.body];
    let listed: Vec<Value> = serde_json::from_slice(&bodies[0]).unwrap();
    let kinds: Vec<&str> = listed.iter().map(|anomaly| anomaly["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["dropout", "drift", "spike"], "{listed:?}");
    assert_eq!(bodies[0], bodies[1], "the same readings, the same bytes");
}

#[tokio::test]
async fn a_reading_for_another_shards_sensor_is_a_421_naming_the_shard() {
    // The documented hash: FNV-1a-64 of the id, mod the shard count.
    let shard_of = |id: &str| {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash % 2
    };
    let ids: Vec<String> = (0..8).map(|i| format!("pump-{i}")).collect();
    let mine = ids.iter().find(|id| shard_of(id) == 0).unwrap().clone();
    let theirs = ids.iter().find(|id| shard_of(id) == 1).unwrap().clone();
    let daemon = Daemon::start(
        &config("[cluster]\nshards = 2\nshard = 0\ninstance = \"plant-a\"\n")
            .replace("ids = [\"wtf-pipe-1\", \"wtf-pipe-2\"]", &format!("ids = {ids:?}")),
    )
    .await;
    let (status, answer) = post_json(&daemon, &json!({"sensor_id": theirs, "flow": 61.0})).await;
    assert_eq!(status, 421, "{answer}");
    assert_eq!(answer["shard"], 1);
    assert!(answer["error"].as_str().unwrap().contains("shard 1"), "{answer}");
    let (status, answer) = post_json(&daemon, &json!({"sensor_id": mine, "flow": 61.0})).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");
    let (_, status) = daemon.get_json("/status").await;
    assert_eq!(status["cluster"], json!({"instance": "plant-a", "shards": 2, "shard": 0}));
    let watched: Vec<String> = status["sensors"].as_object().unwrap().keys().cloned().collect();
    assert!(watched.iter().all(|id| shard_of(id) == 0) && watched.contains(&mine), "{watched:?}");
}
