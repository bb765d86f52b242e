//! Benchmark, not run by default: a flood of about 10,000 alarms in a minute, with and without a
//! webhook receiver on loopback taking every transition (raised and cleared, ~20,000
//! notifications). Reports detection latency both ways, notifications per second, the most that
//! waited in the outbox, and memory. Run with:
//!
//! ```sh
//! cargo test --release --test notify_flood -- --ignored --nocapture
//! ```
//!
//! It checks one thing: every notification the daemon says it delivered reached the receiver,
//! and none twice. The figures are for BENCHMARKS.md.

mod peers;
mod redis_support;

use std::collections::BTreeMap;
use std::process::Command;

use peers::Receiver;

/// 100 sensors at 10 readings/s, 6,000 spikes per sensor per hour: 10,000 spikes a minute.
const PLAN: [&str; 8] = ["--sensors", "100", "--rate", "10", "--duration", "60s", "--spikes-per-hour", "6000"];

fn load(extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_wtf-monitor"))
        .arg("load")
        .args(PLAN)
        .args(extra)
        .output()
        .expect("run wtf-monitor load");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "a one-minute benchmark: cargo test --release --test notify_flood -- --ignored --nocapture"]
async fn a_flood_of_alarms_neither_slows_detection_nor_grows_memory_without_bound() {
    let without = tokio::task::spawn_blocking(|| load(&[])).await.unwrap();
    println!("--- without notifications ---\n{without}");

    let receiver = Receiver::start().await;
    let url = receiver.url("/hook");
    let with = tokio::task::spawn_blocking(move || load(&["--webhook", &url])).await.unwrap();
    println!("--- with a webhook taking every transition ---\n{with}");

    check(&receiver, &with);

    // The same with the outbox in Redis (its own redis-server), the mirror writing too.
    let Some(redis) = redis_support::redis_or_skip("notify_flood") else { return };
    let receiver = Receiver::start().await;
    let url = receiver.url("/hook");
    let redis_url = redis.url.clone();
    let in_redis =
        tokio::task::spawn_blocking(move || load(&["--webhook", &url, "--redis", &redis_url])).await.unwrap();
    println!("--- with a webhook, the outbox in Redis ---\n{in_redis}");
    check(&receiver, &in_redis);
}

/// The receiver got every notification the report counts, each once.
fn check(receiver: &Receiver, report: &str) {
    let received = receiver.received();
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    for got in &received {
        *keys.entry(got.body["idempotency_key"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    println!("receiver           {} notifications, {} distinct keys", received.len(), keys.len());
    assert!(keys.values().all(|count| *count == 1), "a notification arrived twice");
    let delivered: u64 = report
        .lines()
        .find_map(|line| line.strip_prefix("notifications")?.split_whitespace().next()?.parse().ok())
        .expect("the report counts notifications");
    assert_eq!(delivered, received.len() as u64, "the daemon's count is the receiver's");
}
