//! Publish-to-`/anomalies` latency through a real broker, beside the broker's own delivery
//! latency measured on the same messages: `scripts/mqtt_bench.sh` runs it.
//!
//! ```text
//! mqtt_bench BROKER_PORT API_PORT SENSORS RATE_HZ SECONDS
//! ```
//!
//! Publishes, QoS 1, `SENSORS` sensors at `RATE_HZ` each (`wtf/bench-<i>`, a JSON reading with
//! its timestamp), staggered evenly over each period; every tenth reading of a sensor is a
//! pressure spike with a value of its own. For each spike it takes the time from the publish
//! call to (a) a bare subscriber of its own on the same broker receiving the message, the
//! broker's own latency, and (b) the daemon's `GET /events?types=anomaly` stream announcing the
//! anomaly, which is the moment `/anomalies` serves it (both read the same journal entry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

type Sent = Arc<Mutex<HashMap<i64, Instant>>>;
type Seen = Arc<Mutex<Vec<Duration>>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |index: usize| -> f64 {
        args.get(index).and_then(|arg| arg.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: mqtt_bench BROKER_PORT API_PORT SENSORS RATE_HZ SECONDS");
            std::process::exit(2)
        })
    };
    let (broker, api) = (number(0) as u16, number(1) as u16);
    let (sensors, rate, seconds) = (number(2) as usize, number(3), number(4));

    let sent: Sent = Arc::default();
    let broker_seen: Seen = Arc::default();
    let daemon_seen: Seen = Arc::default();
    let subscriber = tokio::spawn(subscribe(broker, Arc::clone(&sent), Arc::clone(&broker_seen)));
    let stream = tokio::spawn(follow_events(api, Arc::clone(&sent), Arc::clone(&daemon_seen)));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut options = MqttOptions::new(format!("mqtt-bench-pub-{}", std::process::id()), "127.0.0.1", broker);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });

    let period = Duration::from_secs_f64(1.0 / rate);
    let step = period / sensors as u32;
    let start = tokio::time::Instant::now();
    let mut published = 0u64;
    let mut spikes = 0i64;
    let mut tick = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let round = tick / sensors as u64;
        let sensor = (tick % sensors as u64) as usize;
        tokio::time::sleep_until(start + step * tick as u32).await;
        let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let spike = round % 10 == 9;
        let pressure = if spike {
            spikes += 1;
            5.0 + spikes as f64 / 1e6
        } else {
            2.0
        };
        let payload = format!(r#"{{"timestamp":"{timestamp}","pressure":{pressure},"flow":60.0,"temperature":20.0}}"#);
        if spike {
            sent.lock().unwrap().insert(key(pressure), Instant::now());
        }
        client.publish(format!("wtf/bench-{sensor}"), QoS::AtLeastOnce, false, payload).await.expect("publish");
        published += 1;
        tick += 1;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    poller.abort();
    subscriber.abort();
    stream.abort();

    let report = |name: &str, seen: &Seen| {
        let mut latencies = seen.lock().unwrap().clone();
        latencies.sort();
        let at = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
        let us = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e6);
        println!(
            "{name}: {} of {spikes} spikes, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
            latencies.len(),
            us(at(0.5)),
            us(at(0.99)),
            us(latencies.last())
        );
    };
    println!("published {published} readings ({sensors} sensors × {rate} Hz for {seconds} s), QoS 1");
    report("broker to a bare subscriber (ceiling)", &broker_seen);
    report("publish to /anomalies (daemon)      ", &daemon_seen);
}

fn key(value: f64) -> i64 {
    (value * 1e6).round() as i64
}

fn note(sent: &Sent, seen: &Seen, value: f64) {
    if let Some(at) = sent.lock().unwrap().get(&key(value)) {
        seen.lock().unwrap().push(at.elapsed());
    }
}

/// A bare QoS 1 subscriber on the same broker: the broker's own delivery latency.
async fn subscribe(broker: u16, sent: Sent, seen: Seen) {
    let options = MqttOptions::new(format!("mqtt-bench-sub-{}", std::process::id()), "127.0.0.1", broker);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client.subscribe("wtf/#", QoS::AtLeastOnce).await.expect("subscribe");
    while let Ok(event) = eventloop.poll().await {
        if let Event::Incoming(Packet::Publish(publish)) = event
            && let Ok(reading) = serde_json::from_slice::<serde_json::Value>(&publish.payload)
            && let Some(pressure) = reading["pressure"].as_f64()
            && pressure > 4.0
        {
            note(&sent, &seen, pressure);
        }
    }
}

/// The daemon's live stream of anomalies, read as it comes.
async fn follow_events(api: u16, sent: Sent, seen: Seen) {
    let client = reqwest::Client::builder().no_proxy().build().expect("an http client");
    let url = format!("http://127.0.0.1:{api}/events?types=anomaly");
    let mut response = client.get(url).send().await.expect("GET /events");
    let mut buffer = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data:")
                    && let Ok(anomaly) = serde_json::from_str::<serde_json::Value>(data.trim())
                    && anomaly["type"] == "spike"
                    && let Some(value) = anomaly["value"].as_f64()
                {
                    note(&sent, &seen, value);
                }
            }
        }
    }
}
