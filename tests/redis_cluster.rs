//! The mirror and the restore against a real three-node Redis Cluster, made by the test from
//! `redis-server --cluster-enabled yes` and `redis-cli --cluster create` on free ports. The
//! daemon is given one seed node that does not own the keys' slot, so it must follow the
//! cluster's redirections. `WTF_SKIP_REDIS_TESTS=1` skips it, as it does the other Redis tests.
//! Two shards' daemons on the cluster, fed by a real Mosquitto, each hold only their sensors
//! there while either serves the whole fleet.

mod common;
mod mqtt_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use ractor::Actor;
use wtf_monitor::actors::mirror::{Mirror, MirrorArgs, MirrorTuning, restore_at_start};
use wtf_monitor::clock::Clock;
use wtf_monitor::config::{Config, ValidConfig};
use wtf_monitor::domain::{Anomaly, AnomalyKind, SensorId};
use wtf_monitor::ingress::Ingress;
use wtf_monitor::redis_layout::Keys;
use wtf_monitor::store::{AnomalyQuery, Store};

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

/// Three cluster nodes in a temporary directory; killed when dropped.
struct Cluster {
    nodes: Vec<(u16, Child)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let nodes: Vec<(u16, Child)> = (0..3)
            .map(|_| {
                let port = free_port();
                let child = Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                    .args(["--cluster-config-file", &format!("nodes-{port}.conf"), "--save", "", "--appendonly", "no"])
                    .arg("--dir")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start redis-server");
                (port, child)
            })
            .collect();
        let cluster = Self { nodes, _dir: dir };
        for (port, _) in &cluster.nodes {
            wait(&format!("node {port} answers"), || ping(*port));
        }
        let addresses: Vec<String> = cluster.nodes.iter().map(|(port, _)| format!("127.0.0.1:{port}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));
        for (port, _) in &cluster.nodes {
            wait(&format!("node {port} sees the cluster ok"), || cluster_ok(*port));
        }
        cluster
    }

    /// A node that does not own `key`'s slot (it answers MOVED), so a client seeded with it
    /// must follow the cluster's redirection.
    fn node_not_owning(&self, key: &str) -> u16 {
        let owns = |port: u16| {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
            let mut connection = client.get_connection().unwrap();
            redis::cmd("EXISTS").arg(key).query::<i64>(&mut connection).is_ok()
        };
        self.nodes.iter().map(|(port, _)| *port).find(|port| !owns(*port)).expect("a node without the slot")
    }

    fn seeds(&self) -> String {
        self.nodes.iter().map(|(port, _)| format!("redis://127.0.0.1:{port}")).collect::<Vec<_>>().join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn ping(port: u16) -> bool {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_millis(200)))
        .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
        .is_ok()
}

fn cluster_ok(port: u16) -> bool {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|client| client.get_connection())
        .and_then(|mut connection| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut connection))
        .is_ok_and(|info| info.contains("cluster_state:ok"))
}

fn wait(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn installed(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| Path::new(&dir).join(binary).is_file()))
}

fn config(seeds: String) -> ValidConfig {
    let mut config = Config::default();
    config.redis.url = seeds;
    config.redis.cluster = true;
    config.redis.key_prefix = "wtf-cluster-test:".into();
    config.validate().expect("a valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_writes_to_a_cluster_and_a_restart_reads_it_back() {
    if std::env::var("WTF_SKIP_REDIS_TESTS").is_ok_and(|value| value == "1") {
        eprintln!("skipped (WTF_SKIP_REDIS_TESTS=1)");
        return;
    }
    assert!(
        installed("redis-server") && installed("redis-cli"),
        "this test makes its own Redis Cluster: it needs redis-server and redis-cli on PATH \
         (or WTF_SKIP_REDIS_TESTS=1 to skip)"
    );
    let cluster = Cluster::start();
    let keys = Keys::new("wtf-cluster-test:");
    let seed = cluster.node_not_owning(&keys.anomalies);
    let config = config(format!("redis://127.0.0.1:{seed}"));

    let clock = Clock::starting_at(Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap());
    let store = Arc::new(Store::new(config.clone(), clock));
    let ingress = Arc::new(Ingress::new(&config, clock));
    let args = MirrorArgs {
        redis: config.redis.clone(),
        store: Arc::clone(&store),
        ingress,
        clock,
        tuning: MirrorTuning::default(),
    };
    let (mirror, _) = Actor::spawn(None, Mirror, args).await.expect("the mirror starts");
    for second in 0..200 {
        let at = Utc::now() - chrono::TimeDelta::seconds(200 - second);
        let anomaly = anomaly(AnomalyKind::Spike, at, "wtf-pipe-1".into(), "flow", Some(130.0), 120.0, None);
        store.record_anomaly(anomaly, Utc::now());
    }

    let seeds = cluster.seeds();
    let reader = redis::cluster::ClusterClient::new(seeds.split(',').collect::<Vec<_>>()).unwrap();
    let mut connection = reader.get_async_connection().await.expect("a cluster connection");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let held: usize = redis::cmd("ZCARD").arg(&keys.anomalies).query_async(&mut connection).await.unwrap_or(0);
        if held == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster holds {held} of 200 anomalies");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.health.redis().state, wtf_monitor::health::RedisState::Connected);
    mirror.stop(None);

    let restarted = Arc::new(Store::new(config.clone(), clock));
    restore_at_start(&config, &restarted, &clock).await;
    assert_eq!(restarted.anomalies.query(&AnomalyQuery::newest(1000)).len(), 200, "a restart reads the cluster back");

    let _: () = redis::cmd("DEL").arg(&keys.all()[..]).query_async(&mut connection).await.unwrap();
}

/// `cluster.shards = 2`: a daemon per shard (real binaries, fed by one Mosquitto, on the cluster).
/// Each keeps its own sensors' anomalies under its own hash tag, on its own slot, and leaves the
/// other shard's readings alone; either one answers for the whole fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_each_hold_their_sensors_and_either_serves_the_fleet() {
    if std::env::var("WTF_SKIP_REDIS_TESTS").is_ok_and(|value| value == "1") {
        eprintln!("skipped (WTF_SKIP_REDIS_TESTS=1)");
        return;
    }
    assert!(installed("redis-server") && installed("redis-cli"), "needs redis-server and redis-cli on PATH");
    let cluster = Cluster::start();
    let broker = mqtt_support::Broker::start();
    let sensors: Vec<String> = (1..=6).map(|i| format!("wtf-pipe-{i}")).collect();
    let owner = |sensor: &str| wtf_monitor::cluster::shard_of(sensor, 2);
    assert!((0..2).all(|shard| sensors.iter().any(|sensor| owner(sensor) == shard)), "both shards own a sensor");
    let prefix = "wtf-shards-test:";
    let config = |shard: u32| {
        format!(
            "[sensors]\nids = {sensors:?}\n[simulation]\nenabled = false\n[detection]\ndropout_timeout = \"10m\"\n\
             [mqtt]\nurl = \"{}\"\n[redis]\ncluster = true\nkey_prefix = \"{prefix}\"\n[cluster]\nshards = 2\nshard = {shard}\n",
            broker.url()
        )
    };
    let mut daemons = Vec::new();
    for shard in 0..2 {
        let daemon = common::Daemon::builder(&config(shard))
            .env("WTF_REDIS__URL", &cluster.seeds())
            .arg("--instance")
            .arg(&format!("shard-{shard}"))
            .start()
            .await;
        daemon
            .wait_for("the mqtt subscription", Duration::from_secs(15), || async {
                (daemon.get_json("/status").await.1["mqtt"]["state"] == "connected").then_some(())
            })
            .await;
        daemons.push(daemon);
    }
    // A spike and its clear from every sensor, on the shared topics.
    let start = Utc::now() - chrono::TimeDelta::seconds(10);
    for sensor in &sensors {
        let lines: Vec<String> = [5.0, 2.0]
            .iter()
            .enumerate()
            .map(|(index, pressure)| {
                let at = start + chrono::TimeDelta::milliseconds(index as i64 * 100);
                serde_json::json!({"timestamp": at.to_rfc3339(), "pressure": pressure, "temperature": 20.0, "flow": 50.0})
                    .to_string()
            })
            .collect();
        broker.publish_lines(&format!("wtf/{sensor}"), &lines);
    }
    let fleet: std::collections::BTreeSet<String> = sensors.iter().cloned().collect();
    for daemon in &daemons {
        daemon
            .wait_for("every sensor's anomaly", Duration::from_secs(15), || async {
                let (_, body) = daemon.get_json("/anomalies?limit=1000").await;
                let seen: std::collections::BTreeSet<String> = body
                    .as_array()?
                    .iter()
                    .filter_map(|anomaly| anomaly["sensor_id"].as_str().map(str::to_owned))
                    .collect();
                (seen == fleet && body.as_array()?.len() == fleet.len()).then_some(())
            })
            .await;
    }

    let seeds = cluster.seeds();
    let reader = redis::cluster::ClusterClient::new(seeds.split(',').collect::<Vec<_>>()).unwrap();
    let mut connection = reader.get_async_connection().await.expect("a cluster connection");
    let mut slots = std::collections::BTreeSet::new();
    for shard in 0..2u32 {
        let keys = Keys::new(prefix).for_shard(prefix, 2, shard);
        let deadline = Instant::now() + Duration::from_secs(15);
        let owned: Vec<&String> = sensors.iter().filter(|sensor| owner(sensor) == shard).collect();
        loop {
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(&keys.anomalies)
                .arg(0)
                .arg(-1)
                .query_async(&mut connection)
                .await
                .unwrap_or_default();
            let held: Vec<String> = members
                .iter()
                .filter_map(|member| serde_json::from_str::<serde_json::Value>(member).ok())
                .filter_map(|anomaly| anomaly["sensor_id"].as_str().map(str::to_owned))
                .collect();
            assert!(
                held.iter().all(|sensor| owner(sensor) == shard),
                "{} holds another shard's sensor: {held:?}",
                keys.anomalies
            );
            if held.len() == owned.len() {
                break;
            }
            assert!(Instant::now() < deadline, "{} holds {held:?}, not {owned:?}", keys.anomalies);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let slot: u16 =
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(&keys.anomalies).query_async(&mut connection).await.unwrap();
        slots.insert(slot);
        let other = daemons[shard as usize].get_json("/status").await.1["mqtt"]["other_shard"].as_u64().unwrap_or(0);
        let others = sensors.iter().filter(|sensor| owner(sensor) != shard).count() as u64;
        assert_eq!(other, 2 * others, "the other shard's readings are left to it, not refused");
        let refused = daemons[shard as usize].get_json("/status").await.1["mqtt"]["refused"].clone();
        assert_eq!(refused, serde_json::json!({}), "nothing refused");
    }
    assert_eq!(slots.len(), 2, "the shards' keys hash to different slots");
}
