//! Raise-to-delivery latency of `GET /events` with many clients, and what the clients cost the
//! daemon: `scripts/sse_bench.sh` runs it against a release daemon on loopback.
//!
//! ```text
//! sse_bench API_PORT DAEMON_PID CLIENTS ROUNDS
//! ```
//!
//! Opens `CLIENTS` streams (`/events?types=anomaly`, plain sockets, HTTP/1.0 so the body is not
//! chunked), waits until `/status` counts them all (`live_clients`), and reads the daemon's RSS
//! before and after (`/proc/<pid>/status` VmRSS): the difference over `CLIENTS` is the memory of
//! one idle client. Then, `ROUNDS` times, it posts a pressure spike (a value of its own, 100 +
//! round) and the reading that clears it, and times from just before the POST is written to each
//! client reading the anomaly's event: the latency includes the POST's own handling, detection
//! and the journal. The daemon's CPU over those rounds is read from `/proc/<pid>/stat`.
//!
//! Prints one line of `key=value` figures.

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, TimeDelta, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const SENSOR: &str = "bench-1";
const TOKEN: &str = "bench-ingest-token-0123456789";
/// Pause between rounds, so each round's deliveries are timed alone.
const PAUSE: Duration = Duration::from_millis(20);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |index: usize| -> u64 {
        args.get(index).and_then(|arg| arg.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: sse_bench API_PORT DAEMON_PID CLIENTS ROUNDS");
            std::process::exit(2)
        })
    };
    let (port, pid, clients, rounds) = (number(0) as u16, number(1) as u32, number(2) as usize, number(3) as usize);

    let rss_before = rss_kib(pid);
    let (delivered, mut deliveries) = mpsc::unbounded_channel::<(usize, Instant)>();
    for _ in 0..clients {
        let delivered = delivered.clone();
        tokio::spawn(async move {
            if let Err(err) = follow(port, delivered).await {
                eprintln!("a stream ended: {err}");
            }
        });
    }
    let opened = Instant::now();
    loop {
        let status = get(port, "/status").await.unwrap_or_default();
        let live = serde_json::from_str::<serde_json::Value>(&status)
            .ok()
            .and_then(|status| status["live_clients"].as_u64())
            .unwrap_or(0);
        if live as usize >= clients {
            break;
        }
        assert!(opened.elapsed() < Duration::from_secs(60), "only {live} of {clients} streams opened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(pid);

    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(clients * rounds);
    let mut lost = 0usize;
    for round in 0..rounds {
        let now = Utc::now();
        let at = |offset: i64| (now + TimeDelta::microseconds(offset)).to_rfc3339_opts(SecondsFormat::Micros, true);
        let body = format!(
            r#"[{{"sensor_id":"{SENSOR}","timestamp":"{}","pressure":{}}},{{"sensor_id":"{SENSOR}","timestamp":"{}","pressure":2.0}}]"#,
            at(0),
            100 + round,
            at(1000)
        );
        let sent = Instant::now();
        post(port, "/readings", &body).await.expect("POST /readings");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut seen = 0;
        while seen < clients {
            match tokio::time::timeout_at(deadline, deliveries.recv()).await {
                Ok(Some((got, at))) if got == round => {
                    latencies.push(at.duration_since(sent));
                    seen += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        lost += clients - seen;
        tokio::time::sleep(PAUSE).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / 100.0 / wall * 100.0;
    let rss_after = rss_kib(pid);

    latencies.sort();
    let pick = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    let ms = |value: Option<&Duration>| value.map_or(f64::NAN, |value| value.as_secs_f64() * 1000.0);
    let per_client = (rss_idle as f64 - rss_before as f64) * 1024.0 / clients as f64;
    println!(
        "clients={clients} rounds={rounds} deliveries={} lost={lost} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} \
         cpu_percent={cpu:.1} rss_before_kib={rss_before} rss_idle_kib={rss_idle} rss_after_kib={rss_after} \
         idle_bytes_per_client={per_client:.0}",
        latencies.len(),
        ms(pick(0.50)),
        ms(pick(0.99)),
        ms(latencies.last()),
    );
}

/// One client: reads the stream and reports each anomaly's round as it arrives.
async fn follow(port: u16, delivered: mpsc::UnboundedSender<(usize, Instant)>) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"GET /events?types=anomaly HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await?;
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::Error::other("closed by the daemon"));
        }
        let arrived = Instant::now();
        buffer.extend_from_slice(&chunk[..read]);
        while let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Some(data) = line.strip_prefix(b"data: ") else { continue };
            let Ok(anomaly) = serde_json::from_slice::<serde_json::Value>(data) else { continue };
            if let Some(value) = anomaly["value"].as_f64()
                && value >= 100.0
            {
                let _ = delivered.send(((value - 100.0).round() as usize, arrived));
            }
        }
    }
}

async fn request(port: u16, head: &str, body: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (status, rest) = answer.split_once("\r\n").unwrap_or((&answer, ""));
    if !status.contains(" 200 ") {
        return Err(std::io::Error::other(format!("{status}: {rest}")));
    }
    Ok(rest.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_owned()))
}

async fn get(port: u16, path: &str) -> std::io::Result<String> {
    request(port, &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"), "").await
}

async fn post(port: u16, path: &str, body: &str) -> std::io::Result<String> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
    );
    request(port, &head, body).await
}

/// The daemon's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The daemon's user and system CPU time so far, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let field = |index: usize| fields.get(index).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 counting from the state.
    field(11) + field(12)
}
