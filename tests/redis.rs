//! The Redis mirror against a real Redis: what it writes, retention, outages, the backlog, the
//! restore at start, the final flush. The daemon as a whole is tested in `redis_daemon.rs`.
//!
//! Each test starts its own `redis-server` on a free port (or uses `WTF_TEST_REDIS_URL` with a
//! key prefix of its own); see `redis_support` for how to skip them.
//!
//! `mirror_throughput` is a benchmark, not a test: `cargo test --release --test redis --
//! --ignored --nocapture mirror_throughput`.

mod redis_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use chrono::{DateTime, TimeDelta, Utc};
use http_body_util::BodyExt;
use ractor::{Actor, ActorRef};
use redis::AsyncCommands;
use serde_json::Value;
use tower::ServiceExt;
use wtf_monitor::actors::mirror::{self, Mirror, MirrorArgs, MirrorMsg, MirrorTuning};
use wtf_monitor::clock::Clock;
use wtf_monitor::config::{Config, ValidConfig};
use wtf_monitor::domain::{Anomaly, AnomalyKind, Parameter, Reading, SensorId, Summary, SummaryAuthor};
use wtf_monitor::health::RedisState;
use wtf_monitor::http::{AppState, router};
use wtf_monitor::ingress::{Ingress, Source};
use wtf_monitor::redis_layout::score;
use wtf_monitor::store::{AnomalyQuery, Store};

use redis_support::{
    TestRedis, free_port, holds_within, own_redis_or_skip, redis_or_skip, reserved_redis_or_skip, wait_until,
};

/// An anomaly as a detector raises it, with the default wording of its parameter.
fn anomaly(
    kind: AnomalyKind,
    at: DateTime<Utc>,
    sensor: SensorId,
    parameter: &str,
    value: Option<f64>,
    threshold: f64,
    duration: Option<f64>,
) -> Anomaly {
    let episode = wtf_monitor::domain::EpisodeKey { sensor_id: sensor, parameter: parameter.into(), kind, started: at };
    Anomaly::new(&episode, at, value, threshold, duration, &Config::default().wording(parameter))
}

const PATIENCE: Duration = Duration::from_secs(15);

fn config(redis: &TestRedis, tweak: impl FnOnce(&mut Config)) -> ValidConfig {
    let mut config = Config::default();
    config.redis.url = redis.url.clone();
    config.redis.key_prefix = redis.prefix.clone();
    config.llm.url = String::new();
    tweak(&mut config);
    config.validate().expect("a valid test config")
}

/// Short timeouts and delays, so an outage test takes seconds.
fn fast() -> MirrorTuning {
    MirrorTuning {
        batch: 1_000,
        tick: Duration::from_millis(50),
        status_every: Duration::from_millis(200),
        // Generous for a loaded test machine: a write that succeeds late would count as failed.
        write_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
    }
}

struct Fixture {
    config: ValidConfig,
    store: Arc<Store>,
    ingress: Arc<Ingress>,
    clock: Clock,
}

impl Fixture {
    fn new(config: ValidConfig) -> Self {
        let clock = Clock::start();
        let ingress = Arc::new(Ingress::new(&config, clock));
        for sensor in &config.sensors.ids {
            ingress.add_sensor(&SensorId::new(sensor));
        }
        Self { store: Arc::new(Store::new(config.clone(), clock)), ingress, config, clock }
    }

    async fn spawn_mirror(&self, tuning: MirrorTuning) -> ActorRef<MirrorMsg> {
        let args = MirrorArgs {
            redis: self.config.redis.clone(),
            store: Arc::clone(&self.store),
            ingress: Arc::clone(&self.ingress),
            clock: self.clock,
            tuning,
        };
        let (mirror, _) = Actor::spawn(None, Mirror, args).await.expect("the mirror starts");
        mirror
    }

    /// Records `count` spikes, one millisecond apart, ending `age` ago; returns them oldest first.
    fn record(&self, count: usize, age: TimeDelta) -> Vec<Anomaly> {
        let end = self.clock.now() - age;
        let anomalies: Vec<Anomaly> = (0..count)
            .map(|i| {
                let at = end - TimeDelta::milliseconds((count - i) as i64);
                let sensor = SensorId::new(["wtf-pipe-1", "wtf-pipe-2", "wtf-pipe-3"][i % 3]);
                anomaly(AnomalyKind::Spike, at, sensor, "flow", Some(120.5 + i as f64), 120.0, None)
            })
            .collect();
        for anomaly in &anomalies {
            // Recorded at its own time, so the store keeps even an old one for the test.
            self.store.record_anomaly(anomaly.clone(), anomaly.timestamp.max(self.clock.now() - age));
        }
        anomalies
    }
}

fn summary(at: DateTime<Utc>, text: &str) -> Summary {
    Summary {
        summary: text.into(),
        timestamp: at,
        generated_by: SummaryAuthor::Fallback,
        model: Some("llama3.2:1b".into()),
        anomaly_count: 3,
        window_start: at - TimeDelta::seconds(60),
        window_end: at,
    }
}

async fn members(redis: &TestRedis) -> Vec<String> {
    redis.connection().await.zrange(redis.keys().anomalies, 0, -1).await.expect("ZRANGE")
}

async fn zcard(redis: &TestRedis) -> usize {
    redis.connection().await.zcard(redis.keys().anomalies).await.expect("ZCARD")
}

async fn get_json(state: AppState, uri: &str) -> Value {
    let request = axum::http::Request::get(uri).body(Body::empty()).expect("a request");
    let response = router(state).oneshot(request).await.expect("an answer");
    let body = response.into_body().collect().await.expect("a body").to_bytes();
    serde_json::from_slice(&body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_writes_what_the_api_serves() {
    let Some(redis) = redis_or_skip("the_mirror_writes_what_the_api_serves") else { return };
    let fixture = Fixture::new(config(&redis, |_| {}));
    let store = &fixture.store;
    let mut recorded = fixture.record(3, TimeDelta::seconds(5));
    let dropout =
        anomaly(AnomalyKind::Dropout, fixture.clock.now(), "wtf-pipe-2".into(), "pressure", None, 10.0, Some(10.5));
    store.record_anomaly(dropout.clone(), fixture.clock.now());
    recorded.push(dropout);
    store.record_summary(summary(fixture.clock.now(), "Three flow spikes on the pipes."), Utc::now());
    let values = [("temperature", 21.25), ("pressure", 2.5), ("flow", 60.0)];
    let reading = Reading {
        sensor_id: "wtf-pipe-1".into(),
        timestamp: fixture.clock.now(),
        values: values.into_iter().map(|(name, value)| (Parameter::new(name), value)).collect(),
    };
    fixture.ingress.submit(Source::Http, reading.clone()).expect("a reading in order");

    let _mirror = fixture.spawn_mirror(fast()).await;
    let keys = redis.keys();
    wait_until("everything is mirrored and /status says connected", PATIENCE, || async {
        let mut connection = redis.connection().await;
        let status: Option<String> = connection.hget(&keys.status, "redis").await.expect("HGET");
        zcard(&redis).await == recorded.len()
            && connection.exists::<_, bool>(&keys.summary_latest).await.expect("EXISTS")
            && status.is_some_and(|redis| redis.contains("\"connected\""))
    })
    .await;

    // Anomalies: the members are the API's JSON, byte for byte, oldest first.
    let state =
        AppState::new(fixture.config.clone(), Arc::clone(store), Arc::clone(&fixture.ingress), fixture.clock, None);
    let served = get_json(state.clone(), "/anomalies?limit=1000").await;
    let mut served: Vec<Value> = served.as_array().expect("an array").clone();
    served.reverse();
    let members = members(&redis).await;
    let mirrored: Vec<Value> = members.iter().map(|member| serde_json::from_str(member).expect("JSON")).collect();
    assert_eq!(mirrored, served);
    let exact: Vec<String> = recorded.iter().map(|anomaly| serde_json::to_string(anomaly).unwrap()).collect();
    assert_eq!(members, exact);
    let mut connection = redis.connection().await;
    let scored: Vec<(String, f64)> = connection.zrange_withscores(&keys.anomalies, 0, 0).await.expect("ZRANGE");
    assert_eq!(scored[0].1 as i64, score(recorded[0].timestamp));
    let ttl: i64 = connection.ttl(&keys.anomalies).await.expect("TTL");
    assert_eq!(ttl, -1, "retention is per anomaly, not a TTL on the whole set");

    // Summaries: the latest as `/summary` serves it, and the history.
    let latest: String = connection.get(&keys.summary_latest).await.expect("GET");
    assert_eq!(serde_json::from_str::<Value>(&latest).unwrap(), get_json(state.clone(), "/summary").await);
    let history: usize = connection.zcard(&keys.summaries).await.expect("ZCARD");
    assert_eq!(history, 1);

    // Readings: the last per sensor, and the stream.
    let last: Option<String> = connection.hget(&keys.readings_last, "wtf-pipe-1").await.expect("HGET");
    let last: Value = serde_json::from_str(&last.expect("a last reading")).unwrap();
    assert_eq!(last, serde_json::to_value(&reading).unwrap(), "as /status serves it");
    let streamed: usize = connection.xlen(&keys.readings_stream).await.expect("XLEN");
    assert_eq!(streamed, 1);

    // Status: what `/status` says of Redis, with the layout version.
    let version: Option<String> = connection.hget(&keys.status, "layout_version").await.expect("HGET");
    assert_eq!(version.as_deref(), Some("1"));
    let health = store.health.redis();
    assert_eq!(health.state, RedisState::Connected);
    assert_eq!((health.mirrored, health.backlog, health.dropped), (4, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_leave_redis_one_by_one_when_older_than_24_hours() {
    let Some(redis) = redis_or_skip("anomalies_leave_redis_one_by_one_when_older_than_24_hours") else { return };
    let fixture = Fixture::new(config(&redis, |_| {}));
    let keys = redis.keys();
    // As a run of yesterday left them: three past the 24 hours, one still inside them.
    let now = fixture.clock.now();
    let mut connection = redis.connection().await;
    for (age, name) in [(26, "a"), (25, "b"), (24, "c"), (23, "d")] {
        let at = now - TimeDelta::hours(age) - TimeDelta::seconds(1);
        let () = connection.zadd(&keys.anomalies, format!("old-{name}"), score(at)).await.expect("ZADD");
    }
    // And one the store still holds, as if the mirror had been away for a day.
    let fresh = fixture.record(2, TimeDelta::zero());
    let old = serde_json::to_string(&fixture.record(1, TimeDelta::hours(25))[0]).unwrap();

    let _mirror = fixture.spawn_mirror(fast()).await;
    let fresh_json: BTreeSet<String> = fresh.iter().map(|anomaly| serde_json::to_string(anomaly).unwrap()).collect();
    wait_until("the fresh anomalies are mirrored", PATIENCE, || async {
        fresh_json.is_subset(&members(&redis).await.into_iter().collect())
    })
    .await;
    let kept: BTreeSet<String> = members(&redis).await.into_iter().collect();
    let mut expected = fresh_json.clone();
    expected.insert("old-d".into());
    assert_eq!(kept, expected);
    assert!(!kept.contains(&old));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_at_most_max_anomalies_the_newest() {
    let Some(redis) = redis_or_skip("redis_keeps_at_most_max_anomalies_the_newest") else { return };
    let fixture = Fixture::new(config(&redis, |config| config.redis.max_anomalies = 10));
    let recorded = fixture.record(25, TimeDelta::zero());
    let _mirror = fixture.spawn_mirror(fast()).await;
    wait_until("all 25 are mirrored", PATIENCE, || async { fixture.store.health.redis().mirrored == 25 }).await;
    let newest: Vec<String> = recorded[15..].iter().map(|anomaly| serde_json::to_string(anomaly).unwrap()).collect();
    assert_eq!(members(&redis).await, newest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_raised_while_redis_is_down_arrive_when_it_returns() {
    let Some(mut redis) = own_redis_or_skip("anomalies_raised_while_redis_is_down_arrive_when_it_returns") else {
        return;
    };
    let fixture = Fixture::new(config(&redis, |_| {}));
    let store = &fixture.store;
    let _mirror = fixture.spawn_mirror(fast()).await;
    let before = fixture.record(5, TimeDelta::seconds(10));
    wait_until("the mirror has written the first five", PATIENCE, || async {
        let health = store.health.redis();
        health.state == RedisState::Connected && health.mirrored == 5
    })
    .await;
    assert_eq!(zcard(&redis).await, 5);

    redis.server().kill();
    let during = fixture.record(50, TimeDelta::zero());
    let held = holds_within(PATIENCE, || async {
        let health = store.health.redis();
        health.state == RedisState::Reconnecting && health.backlog == 50 && health.last_error.is_some()
    })
    .await;
    assert!(held, "timed out waiting until /status shows the outage and the backlog: {:?}", store.health.redis());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(store.health.redis().backlog, 50, "nothing is lost or written while Redis is away");

    // The restarted server saves nothing (`--save ""`): it comes back empty, and gets the first
    // five again with the backlog.
    redis.server().resume();
    let held = holds_within(PATIENCE, || async {
        let health = store.health.redis();
        health.state == RedisState::Connected && health.backlog == 0
    })
    .await;
    assert!(held, "timed out waiting until the backlog is flushed: {:?}", store.health.redis());
    let expected: Vec<String> =
        before.iter().chain(&during).map(|anomaly| serde_json::to_string(anomaly).unwrap()).collect();
    assert_eq!(members(&redis).await, expected);
    let health = store.health.redis();
    assert_eq!((health.mirrored, health.dropped), (60, 0), "55, and the first five written again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_drops_the_oldest_and_counts_them() {
    let Some(mut redis) = reserved_redis_or_skip("a_full_backlog_drops_the_oldest_and_counts_them") else { return };
    let fixture = Fixture::new(config(&redis, |config| config.redis.backlog_capacity = 10));
    let store = &fixture.store;
    // Redis is unreachable from the start: not fatal, the mirror keeps what it can.
    let _mirror = fixture.spawn_mirror(fast()).await;
    let recorded = fixture.record(25, TimeDelta::zero());
    let held = holds_within(PATIENCE, || async {
        let health = store.health.redis();
        health.state == RedisState::Connecting && health.backlog == 10 && health.dropped == 15
    })
    .await;
    assert!(held, "timed out waiting until the backlog is full and the drops counted: {:?}", store.health.redis());

    redis.server().resume();
    let held = holds_within(PATIENCE, || async { store.health.redis().backlog == 0 }).await;
    assert!(held, "timed out waiting until the backlog is flushed: {:?}", store.health.redis());
    let newest: Vec<String> = recorded[15..].iter().map(|anomaly| serde_json::to_string(anomaly).unwrap()).collect();
    assert_eq!(members(&redis).await, newest);
    let health = store.health.redis();
    assert_eq!((health.state, health.mirrored, health.dropped), (RedisState::Connected, 10, 15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_the_last_24_hours_and_the_summaries() {
    let Some(redis) = redis_or_skip("a_restart_restores_the_last_24_hours_and_the_summaries") else { return };
    let before = Fixture::new(config(&redis, |_| {}));
    before.record(20, TimeDelta::minutes(5));
    let now = before.clock.now();
    before.store.record_summary(summary(now - TimeDelta::seconds(60), "first"), Utc::now());
    before.store.record_summary(summary(now, "second"), Utc::now());
    let mirror = before.spawn_mirror(fast()).await;
    wait_until("everything is mirrored", PATIENCE, || async { before.store.health.redis().mirrored == 20 }).await;
    mirror.drain_and_wait(Some(Duration::from_secs(5))).await.expect("the mirror stops");
    let keys = redis.keys();
    let stale_anomaly = before.record(1, TimeDelta::hours(25)).remove(0);
    let stale = serde_json::to_string(&stale_anomaly).unwrap();
    let mut connection = redis.connection().await;
    let () = connection.zadd(&keys.anomalies, &stale, score(now - TimeDelta::hours(25))).await.expect("ZADD");
    let () = connection.zadd(&keys.anomalies, "not an anomaly", score(now)).await.expect("ZADD");

    let after = Fixture::new(before.config.clone());
    let restored = mirror::restore(&after.config, &after.store, after.clock.now(), Duration::from_secs(5))
        .await
        .expect("the restore reads Redis");
    assert_eq!((restored.anomalies, restored.summaries, restored.unreadable), (20, 2, 1));
    assert_eq!(restored.incomplete, None);
    let all = AnomalyQuery::newest(1000);
    let json = |store: &Store| serde_json::to_value(store.anomalies.query(&all)).unwrap();
    // Everything held before but the stale one, past the 24 hours.
    let expected: Vec<Value> = json(&before.store)
        .as_array()
        .unwrap()
        .iter()
        .filter(|anomaly| anomaly["id"] != stale_anomaly.id.as_str())
        .cloned()
        .collect();
    assert_eq!(expected.len(), 20);
    assert_eq!(json(&after.store), Value::Array(expected));
    let summaries: Vec<String> =
        after.store.summaries.recent(10).iter().map(|summary| summary.summary.clone()).collect();
    assert_eq!(summaries, ["second", "first"]);

    // The new mirror writes the restored anomalies again: the same members, nothing doubled.
    let _mirror = after.spawn_mirror(fast()).await;
    wait_until("the restored are written again", PATIENCE, || async { after.store.health.redis().mirrored == 20 })
        .await;
    assert_eq!(zcard(&redis).await, 21, "20 restored and the unreadable member; the stale one trimmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_24_hour_count_includes_what_the_store_could_not_take_back() {
    let Some(redis) = redis_or_skip("after_a_restart_the_24_hour_count_includes") else { return };
    let before = Fixture::new(config(&redis, |_| {}));
    before.record(50, TimeDelta::minutes(1));
    let mirror = before.spawn_mirror(fast()).await;
    wait_until("everything is mirrored", PATIENCE, || async { before.store.health.redis().mirrored == 50 }).await;
    mirror.drain_and_wait(Some(Duration::from_secs(5))).await.expect("the mirror stops");

    let after = Fixture::new(config(&redis, |config| config.store.max_anomalies = 10));
    let now = after.clock.now();
    let restored = mirror::restore(&after.config, &after.store, now, Duration::from_secs(5)).await.expect("restored");
    assert_eq!(restored.anomalies, 10, "the store holds at most 10");
    assert_eq!(after.store.anomalies.count_24h(now), 50, "but the 24-hour count is not capped by it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_starts_without_history_when_redis_is_down() {
    // No Redis needed: a port nothing listens on.
    let nowhere =
        TestRedis { url: format!("redis://127.0.0.1:{}", free_port()), prefix: "wtf-test:".into(), server: None };
    let fixture = Fixture::new(config(&nowhere, |_| {}));
    mirror::restore_at_start(&fixture.config, &fixture.store, &fixture.clock).await;
    let health = fixture.store.health.redis();
    assert_eq!(health.state, RedisState::Connecting);
    assert!(health.last_error.is_some_and(|error| error.starts_with("restore at start")));
    assert!(fixture.store.anomalies.query(&AnomalyQuery::newest(10)).is_empty());

    let in_memory = Fixture::new(config(&nowhere, |config| config.redis.url = String::new()));
    mirror::restore_at_start(&in_memory.config, &in_memory.store, &in_memory.clock).await;
    assert_eq!(in_memory.store.health.redis().state, RedisState::Disabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_flushes_everything_recorded_before_it() {
    let Some(redis) = redis_or_skip("a_graceful_stop_flushes_everything_recorded_before_it") else { return };
    let fixture = Fixture::new(config(&redis, |_| {}));
    let mirror = fixture.spawn_mirror(MirrorTuning { batch: 2_000, ..fast() }).await;
    fixture.record(20_000, TimeDelta::zero());
    mirror.drain_and_wait(Some(Duration::from_secs(10))).await.expect("the mirror stops");
    assert_eq!(zcard(&redis).await, 20_000);
    assert_eq!(fixture.store.health.redis().mirrored, 20_000);
}

/// Anomalies per second mirrored end to end, and Redis memory per anomaly. Not a test: run it
/// in release mode with `--ignored --nocapture`; it prints its figures and asserts no timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
async fn mirror_throughput() {
    const N: usize = 200_000;
    let Some(mut redis) = own_redis_or_skip("mirror_throughput") else { return };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load.trim());
    let port = redis.server.as_ref().map(|server| server.port().to_string()).unwrap_or_default();
    for args in [
        vec!["-q", "-P", "100", "-n", "1000000", "-t", "set"],
        // `-r` makes `__rand_int__` a random number; without it ZADD is sent the literal text.
        vec!["-q", "-P", "100", "-n", "1000000", "-r", "1000000", "zadd", "bench:z", "__rand_int__", "m__rand_int__"],
    ] {
        let output = std::process::Command::new("redis-benchmark").args(["-p", &port]).args(&args).output();
        match output {
            Ok(output) => {
                // Progress lines end in a carriage return; the figure is the last line.
                let stdout = String::from_utf8_lossy(&output.stdout);
                let figure = stdout.split(['\r', '\n']).map(str::trim).rfind(|line| !line.is_empty());
                println!("redis-benchmark {}: {}", args.join(" "), figure.unwrap_or("no output"));
            }
            Err(err) => println!("redis-benchmark not run: {err}"),
        }
    }
    // A fresh server for the mirror, so the memory it reports is the anomalies' alone.
    redis.server().kill();
    redis.server().resume();
    let mut connection = redis.connection().await;
    let used_memory = |info: String| -> u64 {
        info.lines().find_map(|line| line.strip_prefix("used_memory:")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    };
    let memory = |connection: &mut redis::aio::MultiplexedConnection| {
        let mut connection = connection.clone();
        async move { used_memory(redis::cmd("INFO").arg("memory").query_async(&mut connection).await.unwrap_or_default()) }
    };

    // End to end: the mirror runs while the anomalies are recorded as fast as a loop can.
    let fixture = Fixture::new(config(&redis, |config| config.store.max_anomalies = N));
    let memory_before = memory(&mut connection).await;
    let started = std::time::Instant::now();
    let mirror = fixture.spawn_mirror(MirrorTuning::default()).await;
    fixture.record(N, TimeDelta::zero());
    let recorded_in = started.elapsed();
    wait_until("all are mirrored", Duration::from_secs(120), || async { zcard(&redis).await == N }).await;
    let elapsed = started.elapsed();
    let per_anomaly = memory(&mut connection).await.saturating_sub(memory_before) as f64 / N as f64;
    println!(
        "end to end: {N} anomalies recorded in {recorded_in:.2?}, all in Redis after {elapsed:.2?}: {:.0} anomalies/s",
        N as f64 / elapsed.as_secs_f64()
    );
    println!(
        "redis memory: {per_anomaly:.0} bytes per anomaly; the default cap (redis.max_anomalies = {}) at most {:.0} MB",
        fixture.config.redis.max_anomalies,
        per_anomaly * fixture.config.redis.max_anomalies as f64 / 1e6
    );
    mirror.drain_and_wait(Some(Duration::from_secs(10))).await.expect("the mirror stops");

    // Catching up: N anomalies wait in the store when the mirror starts (as after an outage).
    let () = redis::cmd("DEL").arg(redis.keys().anomalies).query_async(&mut connection).await.expect("DEL");
    let fixture = Fixture::new(config(&redis, |config| config.store.max_anomalies = N));
    let recording = std::time::Instant::now();
    fixture.record(N, TimeDelta::zero());
    println!("the same {N} recorded with no mirror running: {:.2?}", recording.elapsed());
    let started = std::time::Instant::now();
    let _mirror = fixture.spawn_mirror(MirrorTuning::default()).await;
    wait_until("all are mirrored", Duration::from_secs(120), || async { zcard(&redis).await == N }).await;
    let elapsed = started.elapsed();
    println!("catching up: {N} anomalies in {elapsed:.2?}: {:.0} anomalies/s", N as f64 / elapsed.as_secs_f64());
}

/// A server that accepts connections and reads what is sent, but never answers; it counts the
/// connections still open.
struct SilentRedis {
    url: String,
    open: Arc<std::sync::atomic::AtomicUsize>,
}

impl SilentRedis {
    async fn start() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("redis://{}", listener.local_addr().expect("its address"));
        let open = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&open);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = Arc::clone(&counted);
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    while socket.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
                    counted.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { url, open }
    }

    fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_mirror_leaves_nothing_running() {
    let silent = SilentRedis::start().await;
    let nowhere = TestRedis { url: silent.url.clone(), prefix: "wtf-test:".into(), server: None };
    let fixture = Fixture::new(config(&nowhere, |_| {}));
    let followers_before = fixture.store.journal.followers();
    // A write that would wait half a minute for its answer.
    let patient =
        MirrorTuning { write_timeout: Duration::from_secs(30), connect_timeout: Duration::from_secs(30), ..fast() };
    let mirror = fixture.spawn_mirror(patient).await;
    fixture.record(5, TimeDelta::zero());
    wait_until("the write is on its way", PATIENCE, || async { silent.open() > 0 }).await;
    assert_eq!(fixture.store.journal.followers(), followers_before + 1, "the mirror follows the journal");

    mirror.cast(MirrorMsg::InjectFault(wtf_monitor::actors::Fault::Panic)).expect("the mirror takes the fault");
    wait_until("the mirror has crashed", PATIENCE, || async { mirror.get_status() == ractor::ActorStatus::Stopped })
        .await;
    // Its write went with it, so an old write cannot land after a successor's; and so did its
    // follower.
    wait_until("the crashed mirror's connection is closed", Duration::from_secs(5), || async { silent.open() == 0 })
        .await;
    assert_eq!(fixture.store.journal.followers(), followers_before, "the follower is gone too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_notifier_leaves_nothing_running_and_its_successor_gets_the_unwritten() {
    use wtf_monitor::actors::notifier::{Notifier, NotifierArgs, NotifierMsg};
    use wtf_monitor::notify::NotifyShared;
    let silent = SilentRedis::start().await;
    let nowhere = TestRedis { url: silent.url.clone(), prefix: "wtf-test:".into(), server: None };
    let fixture = Fixture::new(config(&nowhere, |config| {
        let hook = serde_json::json!({"name": "pager", "url": format!("http://127.0.0.1:{}/hook", free_port())});
        config.notify.webhook = vec![serde_json::from_value(hook).expect("a webhook")];
    }));
    let receivers = wtf_monitor::notify::receivers(&fixture.config.notify).expect("receivers");
    let shared = Arc::new(NotifyShared::new(&receivers, &fixture.config.notify, false));
    let args = NotifierArgs {
        config: fixture.config.notify.clone(),
        redis: fixture.config.redis.clone(),
        receivers,
        shared: Arc::clone(&shared),
        store: Arc::clone(&fixture.store),
        clock: fixture.clock,
        instance: "test".into(),
    };
    let (notifier, _) = Actor::spawn(None, Notifier, args).await.expect("the notifier starts");
    fixture.record(1, TimeDelta::zero());
    let staged = || wtf_monitor::store::lock(&shared.progress).staged.len();
    wait_until("the alarm is derived and its write is on its way", PATIENCE, || async {
        silent.open() > 0 && wtf_monitor::store::lock(&shared.progress).cursor > 0 && staged() == 0
    })
    .await;

    notifier.cast(NotifierMsg::InjectFault(wtf_monitor::actors::Fault::Panic)).expect("the notifier takes the fault");
    wait_until("the notifier has crashed", PATIENCE, || async {
        notifier.get_status() == ractor::ActorStatus::Stopped
    })
    .await;
    assert_eq!(staged(), 1, "the write that did not get through waits for the next notifier");
    wait_until("the crashed notifier's connections are closed", Duration::from_secs(4), || async {
        silent.open() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_comes_back_empty_gets_the_whole_retained_state_again() {
    let Some(mut redis) = own_redis_or_skip("a_redis_that_comes_back_empty") else { return };
    let fixture = Fixture::new(config(&redis, |_| {}));
    let store = &fixture.store;
    let _mirror = fixture.spawn_mirror(fast()).await;
    fixture.record(10, TimeDelta::seconds(30));
    store.record_summary(summary(fixture.clock.now(), "Ten flow spikes."), Utc::now());
    let keys = redis.keys();
    wait_until("the first ten are mirrored", PATIENCE, || async {
        store.health.redis().mirrored == 10 && zcard(&redis).await == 10
    })
    .await;
    let alarms: usize = redis.connection().await.hlen(&keys.alarms).await.expect("HLEN");
    assert_eq!(alarms, 10);

    // Restarted without persistence: it comes back empty, and meanwhile ten more were raised.
    redis.server().kill();
    fixture.record(10, TimeDelta::zero());
    wait_until("the outage is seen", PATIENCE, || async { store.health.redis().state == RedisState::Reconnecting })
        .await;
    redis.server().resume();
    wait_until("every retained anomaly is in redis again", PATIENCE, || async {
        let mut connection = redis.connection().await;
        let alarms: usize = connection.hlen(&keys.alarms).await.expect("HLEN");
        let summary: bool = connection.exists(&keys.summary_latest).await.expect("EXISTS");
        let status: bool = connection.exists(&keys.status).await.expect("EXISTS");
        zcard(&redis).await == 20 && alarms == 20 && summary && status
    })
    .await;

    // And a restart gets the full set back.
    let after = Fixture::new(fixture.config.clone());
    let restored = mirror::restore(&after.config, &after.store, after.clock.now(), Duration::from_secs(5))
        .await
        .expect("the restore reads Redis");
    assert_eq!((restored.anomalies, restored.summaries, restored.alarms), (20, 1, 20));
    let all = AnomalyQuery::newest(1000);
    let json = |store: &Store| serde_json::to_value(store.anomalies.query(&all)).unwrap();
    assert_eq!(json(&after.store), json(store), "served after the restart as before it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_rewrites_only_its_own_anomalies_into_a_redis_that_came_back_empty() {
    let Some(mut redis) = own_redis_or_skip("a_shard_rewrites_only_its_own") else { return };
    let fixture = Fixture::new(config(&redis, |config| config.cluster.shards = 2));
    let store = &fixture.store;
    let sharding = fixture.config.cluster.sharding();
    let _mirror = fixture.spawn_mirror(fast()).await;
    let recorded = fixture.record(30, TimeDelta::seconds(30));
    let own = recorded.iter().filter(|anomaly| sharding.owns(anomaly.sensor_id.as_str())).count();
    assert!(own > 0 && own < recorded.len(), "the three pipes fall on both shards");
    let keys = redis.keys().for_shard(&redis.prefix, 2, 0);
    let client = redis.client();
    let held = || async {
        let mut connection = client.get_multiplexed_async_connection().await.expect("a connection");
        connection.zcard::<_, usize>(&keys.anomalies).await.expect("ZCARD")
    };
    wait_until("this shard's are mirrored", PATIENCE, || async { held().await == own }).await;

    redis.server().kill();
    wait_until("the outage is seen", PATIENCE, || async { store.health.redis().state == RedisState::Reconnecting })
        .await;
    redis.server().resume();
    fixture.record(1, TimeDelta::zero());
    // The rewrite goes in one batch: once this shard's are back, anything more would be another's.
    wait_until("this shard's are written again", PATIENCE, || async { held().await >= own }).await;
    let again = held().await;
    assert!(again <= own + 1, "{again} anomalies under this shard's key, of which {own} + at most 1 are its own");
}

#[tokio::test]
async fn the_registry_forgets_a_silent_peer_only_if_it_did_not_come_back_meanwhile() {
    let Some(redis) = redis_or_skip("the_registry_forgets_a_silent_peer_only_if_it_did_not_come_back_meanwhile") else {
        return;
    };
    let peers = redis.keys().peers;
    let mut connection = redis.connection().await;
    let _: () = redis::pipe()
        .hset(&peers, "retired", "seen a day ago")
        .hset(&peers, "returned", "written just now")
        .query_async(&mut connection)
        .await
        .expect("HSET");
    // Both were silent when read; `returned` has rewritten its entry since.
    let removed: u32 = redis::cmd("EVAL")
        .arg(wtf_monitor::peers::FORGET_SCRIPT)
        .arg(1)
        .arg(&peers)
        .arg(&["retired", "seen a day ago", "returned", "seen a day ago"][..])
        .query_async(&mut connection)
        .await
        .expect("EVAL");
    assert_eq!(removed, 1);
    let left: std::collections::BTreeMap<String, String> = connection.hgetall(&peers).await.expect("HGETALL");
    assert_eq!(left, [("returned".to_owned(), "written just now".to_owned())].into());
}
