//! `GET /status`: the truth about the daemon's parts, built from live state.
//!
//! The prototype's six fields come first and keep their meaning, but each is computed rather
//! than remembered: `detector_active` is false while any detector is down, `llm_active` reflects
//! the last call to the model, `anomaly_count_24h` counts every anomaly of the last 24 hours even
//! when the memory bound holds fewer. The rest is what an operator asks next: which sensor, which
//! actor and how often restarted, Redis, the model, the configuration in force.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Reading, SensorId};
use crate::health::{ActorHealth, Component, ConfigHealth, LlmHealth, RedisHealth};
use crate::store::Store;

/// One sensor as `/status` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SensorStatus {
    /// Reporting: its simulator runs (when simulated) and its last reading is no older than the
    /// dropout timeout.
    pub active: bool,
    /// Null until the sensor's first reading.
    pub last_reading: Option<Reading>,
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
    /// Every configured sensor by name.
    pub sensors: BTreeMap<String, SensorStatus>,
    /// Every actor by name, with its liveness and restart count.
    pub actors: BTreeMap<String, ActorHealth>,
    pub llm: LlmHealth,
    pub redis: RedisHealth,
    pub config: ConfigHealth,
}

/// Builds `/status` from live state at `now`.
pub fn status_now(store: &Store, now: DateTime<Utc>) -> StatusBody {
    let config = store.config();
    let health = &store.health;
    let dropout = TimeDelta::from_std(config.detection.dropout_timeout).unwrap_or(TimeDelta::MAX);
    let mut last_readings = store.last_readings();
    // Every configured sensor is listed, also one that has not reported yet: its absence is news.
    let sensors: BTreeMap<String, SensorStatus> = config
        .sensors
        .ids
        .iter()
        .map(|sensor_id| {
            let last_reading = last_readings.remove(&SensorId::new(sensor_id)).flatten();
            let simulator_alive = !config.simulation.enabled || health.is_alive(&format!("simulator:{sensor_id}"));
            let recent = last_reading.as_ref().is_some_and(|reading| now - reading.timestamp <= dropout);
            (sensor_id.clone(), SensorStatus { active: simulator_alive && recent, last_reading })
        })
        .collect();
    let last_reading_time =
        sensors.values().filter_map(|sensor| sensor.last_reading.as_ref().map(|reading| reading.timestamp)).max();
    let (anomalies_held, anomalies_evicted_early) = store.anomaly_holdings();
    let llm = health.llm();
    StatusBody {
        sensor_active: !sensors.is_empty() && sensors.values().all(|sensor| sensor.active),
        detector_active: health.all_alive(Component::Detector),
        llm_active: llm.state.is_answering(),
        api_active: health.all_alive(Component::Api),
        last_reading_time,
        anomaly_count_24h: store.anomaly_count_24h(now),
        anomalies_held,
        anomalies_evicted_early,
        started_at: health.started_at(),
        uptime_seconds: (now - health.started_at()).num_milliseconds() as f64 / 1000.0,
        sensors,
        actors: health.actors(),
        llm,
        redis: health.redis(),
        config: health.config(),
    }
}
