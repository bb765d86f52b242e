//! The daemon and its Redis mirror, black box: the real binary with a temporary config, a fast
//! simulation, its own `redis-server`, checked over HTTP and in Redis as an operator would.
//!
//! See `redis_support` for where the Redis comes from and how to skip these tests.

mod redis_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::Value;

use redis_support::{TestRedis, free_port, own_redis_or_skip, redis_or_skip, wait_until};

const PATIENCE: Duration = Duration::from_secs(30);

/// A running `wtf-monitor`; killed when dropped.
struct Daemon {
    process: Child,
    api: String,
    log: PathBuf,
}

impl Daemon {
    /// Starts the binary with `config` and only the `WTF_…` variables given, and waits for `/health`.
    async fn start(config: &Path, env: &[(&str, &str)]) -> Self {
        let api_port = free_port();
        let log = config.with_extension(format!("{api_port}.log"));
        let output = std::fs::File::create(&log).expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_wtf-monitor"));
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("WTF_")) {
            command.env_remove(name);
        }
        let process = command
            .arg("--config")
            .arg(config)
            .env("WTF_API__LISTEN", format!("127.0.0.1:{api_port}"))
            .env("WTF_LLM__URL", "")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("a log file"))
            .stderr(output)
            .spawn()
            .expect("the daemon starts");
        let mut daemon = Self { process, api: format!("http://127.0.0.1:{api_port}"), log };
        let deadline = Instant::now() + PATIENCE;
        while daemon.get("/health").await.is_none() {
            if let Ok(Some(status)) = daemon.process.try_wait() {
                panic!("the daemon exited with {status}:\n{}", daemon.log());
            }
            assert!(Instant::now() < deadline, "the daemon did not answer /health:\n{}", daemon.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
        let response = client.get(format!("{}{path}", self.api)).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        serde_json::from_str(&response.text().await.ok()?).ok()
    }

    async fn anomalies(&self) -> Vec<Value> {
        let served = self.get("/anomalies?limit=1000").await.expect("/anomalies answers");
        served.as_array().expect("an array").clone()
    }

    /// SIGKILL: no shutdown, no final flush, as after a power cut.
    fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// SIGTERM, then waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let pid = self.process.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill(1) runs");
        assert!(sent.success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop on SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fast simulation: readings every 100 ms, about one spike per sensor per second.
fn write_config(dir: &Path, redis_url: &str, prefix: &str) -> PathBuf {
    let path = dir.join("wtf-monitor.toml");
    let config = format!(
        r#"
[sensors]
interval = "100ms"

[simulation]
seed = 7
spikes_per_hour = 3600.0
drifts_per_hour = 0.0
dropouts_per_hour = 0.0

[detection]
dropout_timeout = "2s"

[redis]
url = "{redis_url}"
key_prefix = "{prefix}"
"#
    );
    std::fs::write(&path, config).expect("the config is written");
    path
}

async fn mirrored(redis: &TestRedis) -> Vec<Value> {
    let members: Vec<String> = redis.connection().await.zrange(redis.keys().anomalies, 0, -1).await.expect("ZRANGE");
    members.iter().map(|member| serde_json::from_str(member).expect("a member is JSON")).collect()
}

fn by_id(anomalies: &[Value]) -> BTreeMap<String, Value> {
    anomalies.iter().map(|anomaly| (anomaly["id"].as_str().expect("an id").to_owned(), anomaly.clone())).collect()
}

fn includes(whole: &[Value], part: &[Value]) -> bool {
    let whole = by_id(whole);
    part.iter().all(|anomaly| anomaly["id"].as_str().and_then(|id| whole.get(id)) == Some(anomaly))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_what_the_api_serves_and_a_killed_daemon_gets_it_back() {
    let Some(redis) = redis_or_skip("redis_holds_what_the_api_serves_and_a_killed_daemon_gets_it_back") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), &redis.url, &redis.prefix);
    let mut first = Daemon::start(&config, &[]).await;

    wait_until("some twenty anomalies are raised", PATIENCE, || async { first.anomalies().await.len() >= 20 }).await;
    // Everything served reaches Redis, with the same JSON; and Redis holds nothing the API does not serve.
    wait_until("what /anomalies serves is mirrored", PATIENCE, || async {
        let served = first.anomalies().await;
        includes(&mirrored(&redis).await, &served)
    })
    .await;
    let in_redis = mirrored(&redis).await;
    assert!(includes(&first.anomalies().await, &in_redis));

    let keys = redis.keys();
    let mut connection = redis.connection().await;
    let sensors: usize = connection.hlen(&keys.readings_last).await.expect("HLEN");
    assert_eq!(sensors, 3);
    wait_until("the status hash shows the mirror", PATIENCE, || async {
        let actor: Option<String> = redis.connection().await.hget(&keys.status, "actor:mirror").await.expect("HGET");
        actor.is_some_and(|actor| serde_json::from_str::<Value>(&actor).is_ok_and(|actor| actor["alive"] == true))
    })
    .await;
    let status = first.get("/status").await.expect("/status answers");
    assert_eq!(status["redis"]["state"], "connected", "{status}");
    assert!(status["redis"]["mirrored"].as_u64() >= Some(in_redis.len() as u64));

    first.kill();
    let before_kill = mirrored(&redis).await;
    assert!((20..900).contains(&before_kill.len()), "{} anomalies: too many for one page", before_kill.len());

    // Another seed, so nothing the second run raises can pass for a restored anomaly.
    let mut second = Daemon::start(&config, &[("WTF_SIMULATION__SEED", "8")]).await;
    let served = second.anomalies().await;
    let served_ids = by_id(&served);
    let missing: BTreeSet<String> = by_id(&before_kill).into_keys().filter(|id| !served_ids.contains_key(id)).collect();
    assert!(missing.is_empty(), "not served after the restart: {missing:?}\n{}", second.log());
    assert!(includes(&served, &before_kill), "restored anomalies are served exactly as before");
    let status = second.get("/status").await.expect("/status answers");
    assert!(status["anomaly_count_24h"].as_u64() >= Some(before_kill.len() as u64), "{status}");

    // A graceful stop writes what was raised up to the end.
    let last_served = second.anomalies().await;
    let exit = second.terminate();
    assert!(exit.success(), "exit {exit}:\n{}", second.log());
    assert!(includes(&mirrored(&redis).await, &last_served), "{}", second.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_redis_url_the_daemon_runs_in_memory_and_says_so() {
    // No Redis needed: nothing may try to reach one.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), "redis://127.0.0.1:1", "wtf-test:");
    let daemon = Daemon::start(&config, &[("WTF_REDIS__URL", "")]).await;
    let status = daemon.get("/status").await.expect("/status answers");
    assert_eq!(status["redis"]["state"], "disabled", "{status}");
    assert!(status["actors"].get("mirror").is_none(), "no mirror actor: {status}");
    assert!(status["actors"]["api"]["alive"] == true, "{status}");
    assert!(!daemon.log().contains("cannot restore"), "{}", daemon.log());
}

/// A server that accepts connections and reads what is sent, but never answers.
async fn silent_redis() -> String {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let url = format!("redis://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while socket.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
            });
        }
    });
    url
}

/// Stops the daemon once anomalies wait for Redis; it must say how many it leaves behind, at
/// WARN, exit with status 5, and not take long about it.
async fn stop_with_a_backlog(url: &str) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), url, "wtf-test:left-behind:");
    let mut daemon = Daemon::start(&config, &[]).await;
    wait_until("anomalies wait for redis", PATIENCE, || async {
        daemon.get("/status").await.is_some_and(|status| status["redis"]["backlog"].as_u64() > Some(2))
    })
    .await;
    let asked = Instant::now();
    let exit = daemon.terminate();
    let took = asked.elapsed();
    let log = daemon.log();
    assert_eq!(exit.code(), Some(5), "exit {exit}:\n{log}");
    assert!(took < Duration::from_secs(8), "the stop took {took:?}:\n{log}");
    let warning = log
        .lines()
        .find(|line| line.contains("WARN") && line.contains("left_behind=") && line.contains("final flush"))
        .unwrap_or_else(|| panic!("no warning with the count:\n{log}"));
    let count: u64 = warning
        .split("left_behind=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no count in {warning}"));
    assert!(count > 2, "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_against_a_redis_that_never_answers_says_what_it_left_behind_and_exits_5() {
    stop_with_a_backlog(&silent_redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_against_a_refused_redis_says_what_it_left_behind_and_exits_5() {
    stop_with_a_backlog(&format!("redis://127.0.0.1:{}", free_port())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_redis_is_back_status_shows_no_error_and_the_log_the_backlog_it_flushes() {
    let Some(mut redis) = own_redis_or_skip("once_redis_is_back_status_shows_no_error") else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), &redis.url, &redis.prefix);
    let daemon = Daemon::start(&config, &[]).await;
    let redis_status = || async { daemon.get("/status").await.map(|status| status["redis"].clone()) };
    wait_until("connected", PATIENCE, || async { redis_status().await.is_some_and(|r| r["state"] == "connected") })
        .await;

    redis.server().kill();
    wait_until("an outage with anomalies waiting", PATIENCE, || async {
        redis_status().await.is_some_and(|r| {
            r["state"] == "reconnecting" && r["backlog"].as_u64() >= Some(3) && r["last_error"].is_string()
        })
    })
    .await;
    redis.server().resume();
    wait_until("connected again", PATIENCE, || async {
        redis_status().await.is_some_and(|r| r["state"] == "connected")
    })
    .await;
    let status = redis_status().await.expect("/status answers");
    assert_eq!(status["last_error"], Value::Null, "the error is over: {status}");

    let log = daemon.log();
    let line = log
        .lines()
        .find(|line| line.contains("redis reachable again"))
        .unwrap_or_else(|| panic!("no line for the return:\n{log}"));
    let flushed: u64 = line
        .split("backlog=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no backlog in {line}"));
    assert!(flushed >= 3, "the backlog flushed is counted: {line}");
}

const OPERATOR: &str = "operator-token-0123456789";
const GATEWAY: &str = "gateway-token-0123456789";

/// No simulation: readings come over HTTP, so the test decides every episode.
fn write_plant_config(dir: &Path, redis: &TestRedis) -> PathBuf {
    let path = dir.join("plant.toml");
    let config = format!(
        r#"
[simulation]
enabled = false

[detection]
drift_duration = "3s"
dropout_timeout = "60s"

[redis]
url = "{}"
key_prefix = "{}"

[[auth.tokens]]
name = "gateway"
role = "ingest"
token = "{GATEWAY}"

[[auth.tokens]]
name = "night-shift"
role = "operator"
token = "{OPERATOR}"
"#,
        redis.url, redis.prefix
    );
    std::fs::write(&path, config).expect("the config is written");
    path
}

impl Daemon {
    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("a client");
        let answer = client
            .post(format!("{}{path}", self.api))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("an answer");
        let status = answer.status().as_u16();
        (status, serde_json::from_str(&answer.text().await.unwrap_or_default()).unwrap_or(Value::Null))
    }

    /// One reading of `sensor`, stamped now.
    async fn reading(&self, sensor: &str, values: &[(&str, f64)]) {
        let mut reading = serde_json::json!({"sensor_id": sensor, "timestamp": chrono::Utc::now().to_rfc3339()});
        for (parameter, value) in values {
            reading[*parameter] = serde_json::json!(value);
        }
        let (status, answer) = self.post("/readings", GATEWAY, reading).await;
        assert_eq!(status, 200, "{answer}");
    }

    async fn list(&self, path: &str) -> Vec<Value> {
        self.get(path).await.and_then(|list| list.as_array().cloned()).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_gets_its_alarms_acks_shelves_and_open_episodes_back_and_raises_nothing_twice() {
    let Some(redis) = redis_or_skip("a_killed_daemon_gets_its_alarms_back") else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_plant_config(dir.path(), &redis);
    let mut first = Daemon::start(&config, &[]).await;

    // Three spikes, each of which starts a drift too (above the drift limit as well).
    let started = Instant::now();
    first.reading("wtf-pipe-1", &[("pressure", 5.0), ("temperature", 40.0)]).await;
    first.reading("wtf-pipe-2", &[("flow", 130.0)]).await;
    first.reading("wtf-pipe-3", &[("pressure", 4.5)]).await;
    wait_until("three alarms", PATIENCE, || async { first.list("/alarms").await.len() == 3 }).await;
    let alarms = first.list("/alarms").await;
    let id_of = |sensor: &str| {
        alarms.iter().find(|alarm| alarm["sensor_id"] == sensor).expect("an alarm of the sensor")["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    };
    let (status, acked) = first
        .post(&format!("/alarms/{}/ack", id_of("wtf-pipe-2")), OPERATOR, serde_json::json!({"comment": "seen"}))
        .await;
    assert_eq!(status, 200, "{acked}");
    let shelve = serde_json::json!({"duration": "30m", "reason": "maintenance"});
    let (status, shelved) = first.post(&format!("/alarms/{}/shelve", id_of("wtf-pipe-3")), OPERATOR, shelve).await;
    assert_eq!(status, 200, "{shelved}");

    // Everything in Redis before the power cut.
    let keys = redis.keys();
    wait_until("alarms, audit and episodes are mirrored", PATIENCE, || async {
        let mut connection = redis.connection().await;
        let alarms: BTreeMap<String, String> = connection.hgetall(&keys.alarms).await.expect("HGETALL");
        let audit: usize = connection.zcard(&keys.audit).await.expect("ZCARD");
        let episodes: usize = connection.hlen(&keys.episodes).await.expect("HLEN");
        let has = |needle: &str| alarms.values().any(|alarm| alarm.contains(needle));
        alarms.len() == 3 && has("\"active_ack\"") && has("\"maintenance\"") && audit == 2 && episodes == 4
    })
    .await;
    let anomalies_before = first.anomalies().await;
    let alarms_before = first.list("/alarms").await;
    let audit_before = first.list("/audit").await;
    assert_eq!(anomalies_before.len(), 3);
    first.kill();

    let mut second = Daemon::start(&config, &[]).await;
    assert_eq!(second.anomalies().await, anomalies_before);
    assert_eq!(second.list("/alarms").await, alarms_before, "alarms, acks and shelves come back as they were");
    assert_eq!(second.list("/audit").await, audit_before);

    // Still above the limits, after the drift duration has passed since the episodes began: the
    // spikes are not raised again; the drifts, in progress since before the restart, are raised
    // with their first start.
    let wait = Duration::from_secs(5).saturating_sub(started.elapsed());
    tokio::time::sleep(wait).await;
    second.reading("wtf-pipe-1", &[("pressure", 5.0), ("temperature", 40.0)]).await;
    second.reading("wtf-pipe-2", &[("flow", 130.0)]).await;
    second.reading("wtf-pipe-3", &[("pressure", 4.5)]).await;
    wait_until("the four drifts", PATIENCE, || async { second.anomalies().await.len() == 7 }).await;
    let anomalies = second.anomalies().await;
    let new: Vec<&Value> = anomalies.iter().filter(|anomaly| !anomalies_before.contains(anomaly)).collect();
    assert_eq!(new.len(), 4, "{new:?}");
    for drift in &new {
        assert_eq!(drift["type"], "drift", "nothing but the drifts is new: {drift}");
        assert!(drift["duration_seconds"].as_f64() >= Some(4.5), "the drift kept its start: {drift}");
    }
    let alarms = second.list("/alarms").await;
    assert_eq!(alarms.len(), 7, "{alarms:?}");
    for before in &alarms_before {
        let after = alarms.iter().find(|alarm| alarm["id"] == before["id"]).expect("still there");
        for field in ["state", "acked_by", "shelved_until", "raised_at"] {
            assert_eq!(after[field], before[field], "{field} of {before}");
        }
    }
    second.terminate();
}
