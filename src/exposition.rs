//! `GET /metrics/prometheus`: the daemon in the Prometheus text exposition format (0.0.4),
//! encoded by `prometheus-client` from the live state at each scrape.
//!
//! Nothing is counted twice: a scrape reads the ingress's counts, [`crate::health`], the alarm
//! book, the journal, the notification board and [`crate::telemetry`] (the totals no other part
//! keeps) and encodes them as constant metrics through one custom collector. Names follow the
//! Prometheus conventions: the `wtf_` prefix, `_total` on counters (added by the encoder), base
//! units (`_seconds`). Every label's values are bounded: sources, reasons, types, states and
//! priorities are fixed sets; parameters come from the configuration; receivers too; sensor ids
//! are bounded by `ingest.max_sensors`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `wtf_build_info` | gauge (1) | `version` |
//! | `wtf_start_time_seconds` | gauge | |
//! | `wtf_readings_total` | counter | `source` |
//! | `wtf_readings_refused_total` | counter | `source`, `reason` |
//! | `wtf_ingest_queued` | gauge | |
//! | `wtf_sensors` | gauge | |
//! | `wtf_sensor_last_reading_timestamp_seconds` | gauge | `sensor_id` |
//! | `wtf_anomalies_total` | counter | `type`, `parameter` |
//! | `wtf_anomalies_cleared_total` | counter | `type`, `parameter` |
//! | `wtf_anomalies_24h` | gauge | |
//! | `wtf_alarms` | gauge | `state`, `priority` |
//! | `wtf_alarms_shelved`, `wtf_alarms_suppressed` | gauge | |
//! | `wtf_actors` | gauge | `component`, `state` (`up`, `down`) |
//! | `wtf_actor_restarts_total` | counter | `component` |
//! | `wtf_summaries_total` | counter | `generated_by` |
//! | `wtf_llm_up` | gauge (0/1) | |
//! | `wtf_llm_request_duration_seconds` | histogram | |
//! | `wtf_redis_state` | gauge (1 for the current state) | `state` |
//! | `wtf_redis_backlog` | gauge | |
//! | `wtf_redis_dropped_total`, `wtf_redis_anomalies_mirrored_total` | counter | |
//! | `wtf_mqtt_connected` | gauge (0/1) | |
//! | `wtf_journal_events` | gauge | |
//! | `wtf_journal_appended_total` | counter | |
//! | `wtf_sse_clients` | gauge | |
//! | `wtf_notify_up` | gauge (0/1) | `receiver` |
//! | `wtf_notify_backlog` | gauge | `receiver` |
//! | `wtf_notify_delivered_total`, `wtf_notify_failures_total`, `wtf_notify_dropped_total` | counter | `receiver` |

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use strum::VariantArray;

use crate::alarms::{AlarmState, Priority};
use crate::clock::Clock;
use crate::domain::{AnomalyKind, SummaryAuthor};
use crate::health::{LlmState, RedisState};
use crate::ingress::{Ingress, Reason, Source};
use crate::notify::ReceiverState;
use crate::store::Store;

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type Labels = Vec<(&'static str, String)>;

/// The collector behind `/metrics/prometheus`.
#[derive(Clone)]
pub struct Exposition {
    store: Arc<Store>,
    ingress: Arc<Ingress>,
    clock: Clock,
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exposition")
    }
}

impl Exposition {
    pub fn new(store: Arc<Store>, ingress: Arc<Ingress>, clock: Clock) -> Self {
        Self { store, ingress, clock }
    }

    /// The whole exposition, as of now.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut text = String::new();
        // Writing into a String cannot fail, and every family encodes plain numbers.
        if prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).is_err() {
            tracing::error!("cannot encode the metrics");
        }
        text
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, rows: Vec<(Labels, u64)>) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in &rows {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, rows: Vec<(Labels, f64)>) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in &rows {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn one(value: f64) -> Vec<(Labels, f64)> {
    vec![(Vec::new(), value)]
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let store = &self.store;
        let health = &store.health;
        let now = self.clock.now();
        let enc = &mut encoder;

        gauge(
            enc,
            "wtf_build_info",
            "The running version (always 1).",
            vec![(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], 1.0)],
        )?;
        let started = health.started_at().timestamp_millis() as f64 / 1000.0;
        gauge(enc, "wtf_start_time_seconds", "When the daemon started, in Unix seconds.", one(started))?;

        // Readings, from the ingress's own counts.
        let stats = &self.ingress.stats;
        let accepted = Source::VARIANTS
            .iter()
            .map(|&source| (vec![("source", source.as_str().to_owned())], stats.accepted(source)));
        counter(enc, "wtf_readings", "Readings accepted, by source.", accepted.collect())?;
        let mut refused = Vec::new();
        for &source in Source::VARIANTS {
            for &reason in Reason::VARIANTS {
                let labels = vec![("source", source.as_str().to_owned()), ("reason", <&str>::from(reason).to_owned())];
                refused.push((labels, stats.refusals(source, reason)));
            }
        }
        counter(enc, "wtf_readings_refused", "Readings refused, by source and reason.", refused)?;
        gauge(
            enc,
            "wtf_ingest_queued",
            "Values accepted and waiting for their detector.",
            one(self.ingress.queued() as f64),
        )?;
        let lanes = self.ingress.lanes();
        gauge(enc, "wtf_sensors", "Sensors watched, configured and registered.", one(lanes.len() as f64))?;
        let last_readings = lanes
            .iter()
            .filter_map(|lane| lane.last_reading())
            .map(|reading| {
                let at = reading.timestamp.timestamp_millis() as f64 / 1000.0;
                (vec![("sensor_id", reading.sensor_id.to_string())], at)
            })
            .collect();
        gauge(
            enc,
            "wtf_sensor_last_reading_timestamp_seconds",
            "The timestamp of each sensor's last reading, in Unix seconds.",
            last_readings,
        )?;

        // Anomalies: totals since start; every configured parameter's spike, drift and dropout
        // are listed from zero, so a rate is defined before the first one.
        let parameters = store.config().parameter_list();
        let mut raised = store.telemetry.raised();
        let mut cleared = store.telemetry.cleared();
        for parameter in &parameters {
            for kind in AnomalyKind::ALWAYS {
                raised.entry((kind, parameter.clone())).or_default();
                cleared.entry((kind, parameter.clone())).or_default();
            }
        }
        let rows = |counts: std::collections::BTreeMap<(AnomalyKind, crate::domain::Parameter), u64>| {
            counts
                .into_iter()
                .map(|((kind, parameter), count)| {
                    (vec![("type", kind.as_str().to_owned()), ("parameter", parameter.to_string())], count)
                })
                .collect()
        };
        counter(enc, "wtf_anomalies", "Anomalies raised since start, by type and parameter.", rows(raised))?;
        counter(
            enc,
            "wtf_anomalies_cleared",
            "Anomaly episodes ended since start, by type and parameter.",
            rows(cleared),
        )?;
        gauge(
            enc,
            "wtf_anomalies_24h",
            "Anomalies raised in the last 24 hours.",
            one(store.anomalies.count_24h(now) as f64),
        )?;

        // Alarms, counted in the book as it is now.
        let alarms = store.alarm_counts(now);
        let mut by_state = Vec::new();
        for &state in AlarmState::VARIANTS.iter().filter(|state| **state != AlarmState::Normal) {
            for &priority in Priority::VARIANTS {
                let count = alarms.by_state.get(&(state, priority)).copied().unwrap_or(0);
                let labels = vec![("state", state.as_str().to_owned()), ("priority", priority.as_str().to_owned())];
                by_state.push((labels, count as f64));
            }
        }
        gauge(enc, "wtf_alarms", "Alarms now, by state and priority.", by_state)?;
        gauge(enc, "wtf_alarms_shelved", "Alarms shelved now.", one(alarms.shelved as f64))?;
        gauge(
            enc,
            "wtf_alarms_suppressed",
            "Alarms suppressed now (their sensor is silent).",
            one(alarms.suppressed as f64),
        )?;

        // Actors.
        let mut actors: std::collections::BTreeMap<(&'static str, bool), u64> = std::collections::BTreeMap::new();
        for actor in health.actors().values() {
            *actors.entry((actor.component.as_str(), actor.alive)).or_default() += 1;
        }
        let actors = actors
            .into_iter()
            .map(|((component, alive), count)| {
                let state = if alive { "up" } else { "down" };
                (vec![("component", component.to_owned()), ("state", state.to_owned())], count as f64)
            })
            .collect();
        gauge(enc, "wtf_actors", "Actors, by component and whether they run.", actors)?;
        let restarts = health
            .restarts_by_component()
            .into_iter()
            .map(|(component, count)| (vec![("component", component.as_str().to_owned())], count))
            .collect();
        counter(enc, "wtf_actor_restarts", "Actor restarts after a failure since start, by component.", restarts)?;

        // Summaries and the model.
        let summaries = store
            .telemetry
            .summaries()
            .into_iter()
            .map(|(author, count)| {
                let author = match author {
                    SummaryAuthor::LlmSummarizer => "llm_summarizer",
                    SummaryAuthor::Fallback => "fallback",
                };
                (vec![("generated_by", author.to_owned())], count)
            })
            .collect();
        counter(enc, "wtf_summaries", "Summaries published since start, by who wrote them.", summaries)?;
        gauge(
            enc,
            "wtf_llm_up",
            "1 when the last call to the model succeeded.",
            one(flag(health.llm().state == LlmState::Active)),
        )?;
        let histogram = store.telemetry.llm_request_duration();
        let durations = enc.encode_descriptor(
            "wtf_llm_request_duration_seconds",
            "How long each call to the model took, whatever its outcome.",
            None,
            MetricType::Histogram,
        )?;
        histogram.encode(durations)?;

        // Redis.
        let redis = health.redis();
        let states = [RedisState::Disabled, RedisState::Connecting, RedisState::Connected, RedisState::Reconnecting]
            .into_iter()
            .map(|state| {
                let name =
                    serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                (vec![("state", name)], flag(state == redis.state))
            })
            .collect();
        gauge(enc, "wtf_redis_state", "The link to Redis: 1 for the state it is in.", states)?;
        gauge(enc, "wtf_redis_backlog", "Writes waiting for Redis.", one(redis.backlog as f64))?;
        counter(
            enc,
            "wtf_redis_dropped",
            "Writes dropped because the Redis backlog was full.",
            vec![(Vec::new(), redis.dropped)],
        )?;
        counter(
            enc,
            "wtf_redis_anomalies_mirrored",
            "Anomalies written to Redis since start.",
            vec![(Vec::new(), redis.mirrored)],
        )?;

        gauge(
            enc,
            "wtf_mqtt_connected",
            "1 while connected to the MQTT broker.",
            one(flag(store.health.mqtt.state() == crate::mqtt::MqttState::Connected)),
        )?;
        gauge(enc, "wtf_journal_events", "Events the journal holds in memory.", one(store.journal.len() as f64))?;
        counter(
            enc,
            "wtf_journal_appended",
            "Events appended to the journal since start.",
            vec![(Vec::new(), store.journal.newest_seq())],
        )?;
        gauge(
            enc,
            "wtf_sse_clients",
            "Live streams (GET /events) open now.",
            one(health.sse_clients.load(std::sync::atomic::Ordering::Relaxed) as f64),
        )?;

        // Notifications.
        let receivers = store.notify.receivers();
        let by_receiver = |value: &dyn Fn(&crate::notify::ReceiverStatus) -> f64| -> Vec<(Labels, f64)> {
            receivers.iter().map(|(name, status)| (vec![("receiver", name.clone())], value(status))).collect()
        };
        let counted = |value: &dyn Fn(&crate::notify::ReceiverStatus) -> u64| -> Vec<(Labels, u64)> {
            receivers.iter().map(|(name, status)| (vec![("receiver", name.clone())], value(status))).collect()
        };
        gauge(
            enc,
            "wtf_notify_up",
            "1 when the receiver's last delivery did not fail.",
            by_receiver(&|status| flag(status.state == ReceiverState::Ok)),
        )?;
        gauge(
            enc,
            "wtf_notify_backlog",
            "Notifications waiting for the receiver.",
            by_receiver(&|status| status.backlog as f64),
        )?;
        counter(
            enc,
            "wtf_notify_delivered",
            "Deliveries the receiver took since start.",
            counted(&|status| status.delivered),
        )?;
        counter(
            enc,
            "wtf_notify_failures",
            "Delivery attempts that failed since start.",
            counted(&|status| status.failures),
        )?;
        counter(enc, "wtf_notify_dropped", "Notifications given up since start.", counted(&|status| status.dropped))?;
        Ok(())
    }
}
