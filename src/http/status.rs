//! `GET /status`: the truth about the daemon's parts, built from live state.
//!
//! The prototype's six fields come first and keep their meaning, but each is computed rather
//! than remembered: `detector_active` is false while any detector is down, `llm_active` reflects
//! the last call to the model, `anomaly_count_24h` counts every anomaly of the last 24 hours even
//! when the memory bound holds fewer. The rest is what an operator asks next: which sensor, which
//! actor and how often restarted, Redis, the model, the configuration in force.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::supervisor::simulator_name;
use crate::domain::Reading;
use crate::health::{ActorHealth, Component, ConfigHealth, LlmHealth, RedisHealth};
use crate::ingress::{IngestStatus, Ingress, SensorLane};
use crate::notify::ReceiverStatus;
use crate::store::Store;

/// Sensors `/status` lists one by one; past this it lists the first ones by id and the inactive
/// ones, and `GET /sensors` pages through all of them.
const STATUS_SENSORS: usize = 100;

/// One sensor as `/status` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SensorStatus {
    /// Reporting: it has reported, no parameter of it is silent (a dropout in progress), and its
    /// simulator runs when it is simulated.
    pub active: bool,
    /// Null until the sensor's first reading; each parameter's last value.
    pub last_reading: Option<Reading>,
}

impl SensorStatus {
    pub fn of(lane: &SensorLane, simulated: bool, store: &Store) -> Self {
        let last_reading = lane.last_reading();
        let silent = lane.inboxes().iter().any(|(_, inbox)| inbox.lock().detector.is_silent());
        let simulator_alive = !simulated || store.health.is_alive(&simulator_name(lane.id.as_str()));
        SensorStatus { active: simulator_alive && last_reading.is_some() && !silent, last_reading }
    }
}

/// This daemon's place in a cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatus {
    pub instance: String,
    pub shards: u32,
    pub shard: u32,
}

/// The history kept per series, as fitted to `history.max_memory_mb`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryStatus {
    /// Readings kept per series, as read.
    pub recent_points: usize,
    /// Minute buckets (last, min, max) kept per series.
    pub minute_buckets: usize,
    /// The number of series these bounds were fitted for.
    pub series_fitted: usize,
}

/// The state of every part of the daemon.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "sensor_active": true,
    "detector_active": true,
    "llm_active": false,
    "api_active": true,
    "last_reading_time": "2025-05-19T10:25:00.000Z",
    "anomaly_count_24h": 12,
    "anomalies_held": 12,
    "anomalies_evicted_early": 0,
    "started_at": "2025-05-19T08:00:00.000Z",
    "uptime_seconds": 8700.0,
    "sensors": {"wtf-pipe-1": {"active": true, "last_reading": {
        "sensor_id": "wtf-pipe-1", "timestamp": "2025-05-19T10:25:00.000Z",
        "temperature": 22.4, "pressure": 2.1, "flow": 64.2}}},
    "actors": {"detector:wtf-pipe-1:pressure": {
        "component": "detector", "alive": true, "restarts": 1,
        "last_failure": "fault injected into detector:wtf-pipe-1:pressure",
        "last_failure_at": "2025-05-19T09:12:03.512Z"}},
    "llm": {"state": "inactive", "model": "llama3.2:1b",
        "reason": "ollama unreachable: connection refused", "last_call": "2025-05-19T10:24:00.000Z",
        "answers_accepted": 41, "answers_refused": 3, "calls_failed": 2,
        "last_refusal": "answer refused: the answer is not JSON: expected value at line 1 column 1: All quiet"},
    "redis": {"state": "disabled", "backlog": 0, "dropped": 0, "mirrored": 0, "last_error": null},
    "mqtt": {"state": "connected", "last_error": null, "messages": 5120, "refused": {"not_json": 2, "unknown_sensor": 1},
        "sequence_gaps": 0, "deaths": 1},
    "notify": {"alertmanager-1": {"kind": "alertmanager", "url": "http://127.0.0.1:9093", "outbox": "memory",
        "state": "ok", "backlog": 0, "delivered": 12, "failures": 0, "dropped": 0,
        "last_error": null, "last_error_at": null, "last_delivery_at": "2025-05-19T10:24:58.000Z"}},
    "config": {"source": "/etc/wtf-monitor/wtf-monitor.toml", "loaded_at": "2025-05-19T08:00:00.000Z", "last_reload": null}
}))]
pub struct StatusBody {
    /// Every configured sensor is reporting (see `sensors` for which is not).
    pub sensor_active: bool,
    /// Every detector actor is running.
    pub detector_active: bool,
    /// The model is reachable and answering: its last call got an answer, whether that answer
    /// was used or refused (`llm.state` tells which, `llm.answers_refused` how often).
    pub llm_active: bool,
    /// The API actor is running.
    pub api_active: bool,
    /// The newest reading of any sensor; null before the first.
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_reading_time: Option<DateTime<Utc>>,
    /// Anomalies raised in the last 24 hours, all of them, whatever the memory bound holds.
    pub anomaly_count_24h: u64,
    /// Anomalies held in memory (and served by `/anomalies`).
    pub anomalies_held: usize,
    /// Anomalies the memory bound (`store.max_anomalies`) evicted before their 24 hours.
    pub anomalies_evicted_early: u64,
    #[serde(with = "crate::domain::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    pub uptime_seconds: f64,
    /// The sensors by name: all of them up to 100; past that the first 100 by id and every
    /// inactive one up to another 100. `GET /sensors` lists them all, page by page.
    pub sensors: BTreeMap<String, SensorStatus>,
    /// How many sensors are watched (configured and registered); how many are active.
    pub sensors_total: usize,
    pub sensors_active: usize,
    /// Readings accepted and refused per source, and the last refusal.
    pub ingest: IngestStatus,
    /// This daemon among its peers: its instance id and shard.
    pub cluster: ClusterStatus,
    /// Every daemon of the plant in the peers registry in Redis (this one included): its shard,
    /// when it started and last wrote, and whether it went quiet. Empty without Redis.
    pub peers: Vec<crate::peers::PeerView>,
    /// Clients following the live stream (`GET /events`) now.
    pub live_clients: usize,
    /// How much of each sensor × parameter's readings `GET /readings` can give.
    pub history: HistoryStatus,
    /// The actors by name, with their liveness and restart counts: all of them up to 100; past
    /// that the ones that are down or were restarted, and those that are not a sensor's.
    pub actors: BTreeMap<String, ActorHealth>,
    pub actors_total: usize,
    pub llm: LlmHealth,
    pub redis: RedisHealth,
    /// The MQTT subscription: `disabled` while `mqtt.url` is empty.
    pub mqtt: crate::mqtt::MqttStatus,
    /// The notification receivers by name (`alertmanager-1`, …, and the webhooks): state, backlog,
    /// last error, and where their outbox is. Empty when none is configured.
    pub notify: BTreeMap<String, ReceiverStatus>,
    pub config: ConfigHealth,
}

/// Builds `/status` from live state at `now`.
pub fn status_now(store: &Store, ingress: &Ingress, now: DateTime<Utc>) -> StatusBody {
    let config = store.config();
    let health = &store.health;
    let simulated = config.simulation.enabled;
    // Every sensor watched is looked at, also one that has not reported yet: its absence is news.
    let mut sensors = BTreeMap::new();
    let (mut total, mut active, mut inactive_listed) = (0, 0, 0);
    let mut last_reading_time: Option<DateTime<Utc>> = None;
    for lane in ingress.lanes() {
        let status = SensorStatus::of(&lane, simulated && !lane.registered, store);
        total += 1;
        if status.active {
            active += 1;
        }
        if let Some(reading) = &status.last_reading {
            last_reading_time = last_reading_time.max(Some(reading.timestamp));
        }
        let listed = if sensors.len() < STATUS_SENSORS {
            true
        } else if !status.active && inactive_listed < STATUS_SENSORS {
            inactive_listed += 1;
            true
        } else {
            false
        };
        if listed {
            sensors.insert(lane.id.to_string(), status);
        }
    }
    let (anomalies_held, anomalies_evicted_early) = store.anomalies.holdings();
    let llm = health.llm();
    StatusBody {
        sensor_active: total > 0 && active == total,
        detector_active: health.all_alive(Component::Detector),
        llm_active: llm.state.is_answering(),
        api_active: health.all_alive(Component::Api),
        last_reading_time,
        anomaly_count_24h: store.anomalies.count_24h(now),
        anomalies_held,
        anomalies_evicted_early,
        started_at: health.started_at(),
        uptime_seconds: (now - health.started_at()).num_milliseconds() as f64 / 1000.0,
        sensors,
        sensors_total: total,
        sensors_active: active,
        ingest: ingress.status(),
        cluster: ClusterStatus {
            instance: config.cluster.instance_id(),
            shards: config.cluster.shards,
            shard: config.cluster.shard,
        },
        peers: store
            .peers
            .views()
            .into_iter()
            .map(|mut peer| {
                peer.stale = now - peer.updated_at > crate::peers::STALE_AFTER;
                peer
            })
            .collect(),
        live_clients: health.sse_clients.load(std::sync::atomic::Ordering::Relaxed),
        history: {
            let (bounds, series) = ingress.history_bounds();
            HistoryStatus { recent_points: bounds.recent, minute_buckets: bounds.minutes, series_fitted: series }
        },
        actors_total: health.actor_count(),
        actors: health.notable_actors(STATUS_SENSORS),
        llm,
        redis: health.redis(),
        mqtt: health.mqtt.status(),
        notify: store.notify.receivers(),
        config: health.config(),
    }
}
