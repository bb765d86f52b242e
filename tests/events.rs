//! The live stream and the readings history on the real binary, as the dashboard uses them.

mod common;

use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::{Value, json};

const GATEWAY: &str = "Bearer gateway-token-0123456789";

const CONFIG: &str = r#"
[sensors]
ids = ["wtf-pipe-1", "wtf-pipe-2"]

[simulation]
enabled = false

[[auth.tokens]]
name = "gateway"
role = "ingest"
token = "gateway-token-0123456789"
"#;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    id: Option<String>,
    event: String,
    data: Value,
}

/// A client of `/events` that reads frames as they come.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(daemon: &Daemon, query: &str, last_event_id: Option<&str>) -> Stream {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut request = client.get(daemon.url(&format!("/events{query}")));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("the stream opens");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream { response, buffer: String::new() }
    }

    /// The next event (comments skipped), within `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
                for line in frame.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(Sse { id, event, data: serde_json::from_str(&data).unwrap_or(Value::Null) });
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    async fn next_of(&mut self, event: &str, limit: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let found = self.next(left).await?;
            if found.event == event {
                return Some(found);
            }
        }
    }
}

async fn send(daemon: &Daemon, readings: Vec<Value>) {
    let answer = daemon
        .post("/readings", "application/json", Some(GATEWAY), Value::Array(readings).to_string().into_bytes())
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

fn reading(sensor: &str, seconds_ago: f64, pressure: f64) -> Value {
    let at = chrono::Utc::now() - chrono::TimeDelta::milliseconds((seconds_ago * 1000.0) as i64);
    json!({"sensor_id": sensor, "timestamp": at.to_rfc3339(), "pressure": pressure})
}

#[tokio::test]
async fn an_anomaly_reaches_the_stream_within_100_ms() {
    let daemon = Daemon::start(CONFIG).await;
    let mut stream = Stream::open(&daemon, "?types=anomaly", None).await;
    send(&daemon, vec![reading("wtf-pipe-1", 2.0, 2.0)]).await;
    let mut delays = Vec::new();
    for round in 0..5 {
        let sent = Instant::now();
        send(
            &daemon,
            vec![
                reading("wtf-pipe-1", 1.0 - round as f64 * 0.1, 4.6),
                reading("wtf-pipe-1", 0.95 - round as f64 * 0.1, 2.0),
            ],
        )
        .await;
        let event = stream.next_of("anomaly", Duration::from_secs(5)).await.expect("an anomaly event");
        delays.push(sent.elapsed());
        assert_eq!(event.data["type"], "spike");
        assert!(event.id.as_deref().is_some_and(|id| id.parse::<u64>().is_ok()), "{event:?}");
    }
    delays.sort();
    // From the POST being sent: its round trip is included.
    assert!(delays[2] < Duration::from_millis(100), "median {:?} of {delays:?}", delays[2]);
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_misses_nothing_and_repeats_nothing() {
    let daemon = Daemon::start(CONFIG).await;
    let mut first = Stream::open(&daemon, "?types=anomaly,cleared", None).await;
    // Ten spikes, each cleared by the next reading: twenty events.
    let burst = |from: usize| -> Vec<Value> {
        (from..from + 10)
            .flat_map(|i| [reading("wtf-pipe-2", 30.0 - i as f64, 4.5), reading("wtf-pipe-2", 29.5 - i as f64, 2.0)])
            .collect()
    };
    send(&daemon, burst(0)).await;
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(first.next(Duration::from_secs(5)).await.expect("an event"));
    }
    let last = seen.last().unwrap().id.clone().unwrap();
    drop(first);
    send(&daemon, burst(10)).await;
    let mut second = Stream::open(&daemon, "?types=anomaly,cleared", Some(&last)).await;
    while let Some(event) = second.next(Duration::from_millis(1500)).await {
        seen.push(event);
    }
    let ids: Vec<u64> = seen.iter().map(|event| event.id.as_ref().unwrap().parse().unwrap()).collect();
    assert_eq!(seen.len(), 40, "every anomaly and clear exactly once: {ids:?}");
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "in order, no repeat: {ids:?}");
    let kinds: Vec<&str> = seen.iter().map(|event| event.event.as_str()).collect();
    assert_eq!(kinds.iter().filter(|kind| **kind == "anomaly").count(), 20);
}

#[tokio::test]
async fn a_replay_point_that_is_gone_starts_with_a_reset() {
    let daemon = Daemon::start(&format!("{CONFIG}\n[store]\nmax_events = 100\n")).await;
    let spikes: Vec<Value> = (0..80)
        .flat_map(|i| {
            [reading("wtf-pipe-1", 60.0 - i as f64 * 0.5, 4.5), reading("wtf-pipe-1", 59.8 - i as f64 * 0.5, 2.0)]
        })
        .collect();
    send(&daemon, spikes).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut stream = Stream::open(&daemon, "", Some("1")).await;
    let first = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(first.event, "reset", "{first:?}");
    assert!(first.data["oldest"].as_u64().unwrap() > 2);
}

#[tokio::test]
async fn filters_and_thinned_readings() {
    let daemon = Daemon::start(CONFIG).await;
    let mut pipe_2 = Stream::open(&daemon, "?sensor_id=wtf-pipe-2&readings=1", None).await;
    send(&daemon, vec![reading("wtf-pipe-1", 0.5, 4.5), reading("wtf-pipe-2", 0.4, 2.2)]).await;
    let event = pipe_2.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!((event.event.as_str(), event.data["sensor_id"].as_str()), ("reading", Some("wtf-pipe-2")));
    assert_eq!(event.id, None, "readings are not replayed, so they carry no id");
    assert_eq!(event.data["pressure"], 2.2);
    // Many readings in one second: one reading event.
    let many: Vec<Value> = (0..20).map(|i| reading("wtf-pipe-2", 0.3 - i as f64 * 0.01, 2.0)).collect();
    send(&daemon, many).await;
    let mut readings = 0;
    while let Some(event) = pipe_2.next(Duration::from_millis(500)).await {
        assert_eq!(event.data["sensor_id"], "wtf-pipe-2", "{event:?}");
        readings += usize::from(event.event == "reading");
    }
    assert!(readings <= 1, "{readings} reading events within a second");
    let (status, body) = daemon.get_json("/events?types=nonsense").await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("types")));
}

#[tokio::test]
async fn a_slow_client_does_not_hold_up_another() {
    let daemon = Daemon::start(CONFIG).await;
    // Opened and never read again.
    let _stalled = Stream::open(&daemon, "?readings=1", None).await;
    let mut reader = Stream::open(&daemon, "?types=anomaly", None).await;
    for round in 0..20 {
        let batch: Vec<Value> = (0..100)
            .map(|i| reading("wtf-pipe-1", 30.0 - round as f64 - i as f64 * 0.009, if i == 50 { 4.5 } else { 2.0 }))
            .collect();
        send(&daemon, batch).await;
        assert!(reader.next_of("anomaly", Duration::from_secs(5)).await.is_some(), "round {round}");
    }
    let (_, status) = daemon.get_json("/status").await;
    assert_eq!(status["live_clients"], 2);
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_while_another_keeps_receiving() {
    let daemon = Daemon::start(&format!("{CONFIG}\n[api]\nwrite_timeout = \"2s\"\n")).await;
    // A raw client with a tiny receive window that asks for the stream and never reads it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address: std::net::SocketAddr =
        daemon.url("").trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
    let mut stalled = socket.connect(address).await.unwrap();
    use tokio::io::AsyncWriteExt;
    stalled.write_all(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let mut reader = Stream::open(&daemon, "?types=anomaly", None).await;
    let clients = || async { daemon.get_json("/status").await.1["live_clients"].as_u64() };
    daemon
        .wait_for("both clients", Duration::from_secs(5), || async { (clients().await == Some(2)).then_some(()) })
        .await;
    // Enough events (each anomaly with its alarm and its clear) to fill the stalled socket.
    for round in 0..30 {
        let batch: Vec<Value> = (0..200)
            .map(|i| {
                reading("wtf-pipe-1", 60.0 - round as f64 * 1.5 - i as f64 * 0.007, if i % 2 == 0 { 4.5 } else { 2.0 })
            })
            .collect();
        send(&daemon, batch).await;
        assert!(
            reader.next_of("anomaly", Duration::from_secs(5)).await.is_some(),
            "round {round}: the reader is held up"
        );
    }
    daemon
        .wait_for("the stalled client to be dropped", Duration::from_secs(15), || async {
            (clients().await == Some(1)).then_some(())
        })
        .await;
    drop(stalled);
}

#[tokio::test]
async fn the_readings_history_keeps_a_spike_when_downsampled() {
    let daemon = Daemon::start(CONFIG).await;
    let readings: Vec<Value> =
        (0..300).map(|i| reading("wtf-pipe-1", 300.0 - i as f64, if i == 123 { 4.71 } else { 2.0 })).collect();
    send(&daemon, readings).await;
    let (status, body) = daemon.get_json("/readings?sensor_id=wtf-pipe-1&parameter=pressure&max_points=20").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["unit"].as_str(), body["parameter"].as_str()), (Some("bar"), Some("pressure")));
    let points = body["points"].as_array().unwrap();
    assert!(points.len() <= 20 && points.len() >= 10, "{}", points.len());
    let highest = points.iter().map(|point| point["max"].as_f64().unwrap()).fold(0.0, f64::max);
    assert_eq!(highest, 4.71, "the spike is in a point's max");
    let (status, all) = daemon.get_json("/readings?sensor_id=wtf-pipe-1&parameter=pressure&max_points=10000").await;
    assert_eq!((status, all["points"].as_array().unwrap().len()), (200, 300));
    for (query, parameter) in [
        ("sensor_id=pump-9&parameter=pressure", "sensor_id"),
        ("sensor_id=wtf-pipe-1&parameter=humidity", "parameter"),
        ("sensor_id=wtf-pipe-1&parameter=pressure&max_points=1", "max_points"),
        ("parameter=pressure", "sensor_id"),
    ] {
        let (status, body) = daemon.get_json(&format!("/readings?{query}")).await;
        assert_eq!((status, body["parameter"].as_str()), (400, Some(parameter)), "{query}: {body}");
    }
}
