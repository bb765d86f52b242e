//! The router answered without a socket: `router(state).oneshot(request)` over a [`Store`] filled
//! by hand, so every shape, bound and error is checked against known data.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::config::Config;
use crate::domain::{EpisodeKey, Reading, SensorId, SummaryAuthor, Transition};
use crate::health::{Component, LlmState};
use crate::ingress::Source;

const SENSORS: [&str; 3] = ["wtf-pipe-1", "wtf-pipe-2", "wtf-pipe-3"];
const PARAMETERS: [&str; 3] = ["temperature", "pressure", "flow"];

/// Every route a client may GET (and so HEAD), with the documentation pages.
const GET_ROUTES: [&str; 16] = [
    "/",
    "/dashboard/app.js",
    "/dashboard/uPlot.iife.min.js",
    "/limits",
    "/anomalies",
    "/summary",
    "/summaries",
    "/status",
    "/sensors",
    "/metrics",
    "/health",
    "/openapi.json",
    "/docs",
    "/docs/",
    "/docs/swagger-ui.css",
    "/docs/swagger-initializer.js",
];

/// 2025-05-19T10:00:00Z, the clock's start in every test.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap()
}

fn seconds(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

struct Fixture {
    store: Arc<Store>,
    ingress: Arc<Ingress>,
    state: AppState,
    app: Router,
}

impl Fixture {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::default();
        adjust(&mut config);
        let config = config.validate().expect("a valid test config");
        let clock = Clock::starting_at(t0());
        let store = Arc::new(Store::new(config.clone(), clock));
        let ingress = Arc::new(Ingress::new(&config, clock));
        for sensor in &config.sensors.ids {
            ingress.add_sensor(&SensorId::new(sensor));
        }
        let state = AppState::new(config, Arc::clone(&store), Arc::clone(&ingress), clock, None);
        let app = router(state.clone());
        Self { store, ingress, state, app }
    }

    fn record(&self, anomaly: Anomaly) {
        self.store.record(Transition::Raised(anomaly), t0());
    }

    async fn call(&self, method: Method, uri: &str) -> (StatusCode, HeaderMap, Bytes) {
        self.send(Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()).await
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
    }

    /// GETs `uri` and parses the answer, which must be JSON whatever the status.
    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (status, headers, body) = self.call(Method::GET, uri).await;
        assert_json(uri, &headers, &body);
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn get_ok(&self, uri: &str) -> Value {
        let (status, body) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "GET {uri}: {body}");
        body
    }
}

fn assert_json(what: &str, headers: &HeaderMap, body: &[u8]) {
    assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{what}: content type");
    assert!(serde_json::from_slice::<Value>(body).is_ok(), "{what}: not JSON: {}", String::from_utf8_lossy(body));
}

fn anomaly(kind: AnomalyKind, at: DateTime<Utc>, sensor: &str, parameter: &str) -> Anomaly {
    let (value, threshold, duration) = match kind {
        AnomalyKind::Drift => (Some(3.7), 3.5, Some(16.0)),
        AnomalyKind::Dropout => (None, 10.0, Some(10.0)),
        _ => (Some(4.5), 4.0, None),
    };
    let episode = EpisodeKey { sensor_id: sensor.into(), parameter: parameter.into(), kind, started: at };
    Anomaly::new(&episode, at, value, threshold, duration, &Config::default().wording(parameter))
}

fn spike(at: DateTime<Utc>) -> Anomaly {
    anomaly(AnomalyKind::Spike, at, "wtf-pipe-1", "pressure")
}

/// `n` spikes one second apart, the newest at `t0`.
fn record_spikes(fixture: &Fixture, n: i64) {
    for i in (0..n).rev() {
        fixture.record(spike(t0() - seconds(i)));
    }
}

fn timestamps(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|item| item["timestamp"].as_str().unwrap().to_owned()).collect()
}

fn summary_at(at: DateTime<Utc>) -> Summary {
    Summary {
        summary: "Between 09:57 and 10:00, wtf-pipe-1 reported 3 pressure spikes.".into(),
        timestamp: at,
        generated_by: SummaryAuthor::Fallback,
        model: Some("llama3.2:1b".into()),
        anomaly_count: 3,
        window_start: at - seconds(180),
        window_end: at,
    }
}

/// Registers every actor of a running daemon as alive and gives each sensor a fresh reading.
fn everything_running(fixture: &Fixture) {
    let health = &fixture.store.health;
    for sensor in SENSORS {
        health.actor_started(&format!("simulator:{sensor}"), Component::Sensor);
        for parameter in PARAMETERS {
            health.actor_started(&format!("detector:{sensor}:{parameter}"), Component::Detector);
        }
        record_reading(fixture, sensor, t0());
    }
    health.actor_started("api", Component::Api);
}

fn record_reading(fixture: &Fixture, sensor: &str, at: DateTime<Utc>) {
    let values = [("temperature", 22.0), ("pressure", 2.0), ("flow", 60.0)];
    let values = values.into_iter().map(|(name, value)| (Parameter::new(name), value)).collect();
    let reading = Reading { sensor_id: SensorId::new(sensor), timestamp: at, values };
    fixture.ingress.submit(Source::Http, reading).expect("a reading in order");
}

/// Makes a sensor's detectors silent, as their dropout timers would after its readings stop.
fn fall_silent(fixture: &Fixture, sensor: &str) {
    let rules = crate::detection::Rules::for_sensor(&fixture.store.config(), sensor, "pressure");
    for (_, inbox) in fixture.ingress.lane(sensor).unwrap().inboxes().iter() {
        let mut inbox = inbox.lock();
        while let Some(crate::ingress::Queued::Value(sample)) = inbox.pop() {
            let (timestamp, value, arrival) = (sample.timestamp, sample.value, sample.arrival);
            inbox.detector.observe(&rules, timestamp, value, arrival).unwrap();
        }
        inbox.detector.check_silence(&rules, t0() + seconds(60));
    }
}

// --- /anomalies ---------------------------------------------------------------------------------

#[tokio::test]
async fn anomalies_have_the_spec_shape_newest_first() {
    let fixture = Fixture::new();
    fixture.record(anomaly(AnomalyKind::Drift, t0() - seconds(20), "wtf-pipe-2", "temperature"));
    fixture.record(anomaly(AnomalyKind::Dropout, t0() - seconds(10), "wtf-pipe-3", "flow"));
    fixture.record(spike(t0()));

    let list = fixture.get_ok("/anomalies").await;
    assert_eq!(timestamps(&list), ["2025-05-19T10:00:00.000Z", "2025-05-19T09:59:50.000Z", "2025-05-19T09:59:40.000Z"]);
    let newest = list[0].as_object().unwrap();
    let mut keys: Vec<&str> = newest.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["duration_seconds", "id", "message", "parameter", "sensor_id", "threshold", "timestamp", "type", "value"]
    );
    assert_eq!(list[0]["type"], "spike");
    assert_eq!(list[0]["sensor_id"], "wtf-pipe-1");
    assert_eq!(list[0]["parameter"], "pressure");
    assert_eq!(list[0]["value"], 4.5);
    assert_eq!(list[0]["threshold"], 4.0);
    assert_eq!(list[0]["duration_seconds"], Value::Null);
    assert_eq!(list[0]["message"], "Pressure spike detected: 4.5 bar exceeds threshold 4 bar");
    assert_eq!(list[1]["type"], "dropout");
    assert_eq!(list[1]["value"], Value::Null);
    assert_eq!(list[2]["duration_seconds"], 16.0);
    // Ids sort like time, so a client can page or de-duplicate by them.
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
}

#[tokio::test]
async fn anomalies_are_empty_before_the_first() {
    assert_eq!(Fixture::new().get_ok("/anomalies").await, json!([]));
}

#[tokio::test]
async fn limit_defaults_to_50_and_accepts_1_to_1000() {
    let fixture = Fixture::new();
    record_spikes(&fixture, 1200);
    let newest_first = |list: &Value| {
        let times = timestamps(list);
        times.first().map(String::as_str) == Some("2025-05-19T10:00:00.000Z") && times.windows(2).all(|p| p[0] > p[1])
    };
    for (uri, expected) in [
        ("/anomalies", 50),
        ("/anomalies?limit=50", 50),
        ("/anomalies?limit=1", 1),
        ("/anomalies?limit=7", 7),
        ("/anomalies?limit=1000", 1000),
    ] {
        let list = fixture.get_ok(uri).await;
        assert_eq!(list.as_array().unwrap().len(), expected, "{uri}");
        assert!(newest_first(&list), "{uri} is not newest first");
    }
}

#[tokio::test]
async fn filters_select_by_sensor_parameter_type_and_time() {
    let fixture = Fixture::new();
    let kinds = [AnomalyKind::Spike, AnomalyKind::Drift, AnomalyKind::Dropout];
    // 27 anomalies: every sensor × parameter × kind, one second apart, the newest at t0.
    let mut at = t0() - seconds(26);
    for sensor in SENSORS {
        for parameter in PARAMETERS {
            for kind in kinds {
                fixture.record(anomaly(kind, at, sensor, parameter));
                at += seconds(1);
            }
        }
    }
    let count = |list: Value| list.as_array().unwrap().len();
    let all_have = |list: &Value, field: &str, value: &str| list.as_array().unwrap().iter().all(|a| a[field] == value);

    let by_sensor = fixture.get_ok("/anomalies?sensor_id=wtf-pipe-2").await;
    assert_eq!(by_sensor.as_array().unwrap().len(), 9);
    assert!(all_have(&by_sensor, "sensor_id", "wtf-pipe-2"));
    let by_parameter = fixture.get_ok("/anomalies?parameter=flow").await;
    assert_eq!(by_parameter.as_array().unwrap().len(), 9);
    assert!(all_have(&by_parameter, "parameter", "flow"));
    let by_type = fixture.get_ok("/anomalies?type=drift").await;
    assert_eq!(by_type.as_array().unwrap().len(), 9);
    assert!(all_have(&by_type, "type", "drift"));
    let since = fixture.get_ok("/anomalies?since=2025-05-19T09:59:55Z").await;
    assert_eq!(timestamps(&since).len(), 6, "since is inclusive");
    assert!(timestamps(&since).iter().all(|at| at.as_str() >= "2025-05-19T09:59:55.000Z"));

    let combined = fixture.get_ok("/anomalies?sensor_id=wtf-pipe-3&parameter=pressure&type=spike").await;
    assert_eq!(combined.as_array().unwrap().len(), 1);
    assert_eq!(count(fixture.get_ok("/anomalies?sensor_id=wtf-pipe-1&limit=2").await), 2);
    let (status, body) = fixture.get("/anomalies?sensor_id=wtf-pipe-9").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an unknown sensor is named, like an unknown parameter");
    assert_eq!(body["parameter"], "sensor_id");
    assert!(body["error"].as_str().unwrap().contains("wtf-pipe-9"));
    assert_eq!(count(fixture.get_ok("/anomalies?since=2025-05-19T10:00:01Z").await), 0);
    // An offset written with an unescaped `+` arrives as a space; it is still read as meant.
    assert_eq!(count(fixture.get_ok("/anomalies?since=2025-05-19T11:59:55+02:00").await), 6);
    assert_eq!(count(fixture.get_ok("/anomalies?since=2025-05-19T11:59:55%2B02:00").await), 6);
}

// --- /summary -----------------------------------------------------------------------------------

#[tokio::test]
async fn summary_is_the_state_so_far_until_the_first_then_the_latest() {
    let fixture = Fixture::new();
    let so_far = fixture.get_ok("/summary").await;
    assert_eq!(
        so_far["summary"],
        "Started at 10:00:00 UTC; 0 of 3 sensors reporting; no anomaly yet. The first summary comes within 30 \
         seconds of start."
    );
    assert_eq!((&so_far["generated_by"], &so_far["model"]), (&json!("fallback"), &json!(null)));
    assert_eq!(so_far["anomaly_count"], 0);
    assert_eq!(so_far["window_start"], "2025-05-19T10:00:00.000Z", "from the start");
    assert_eq!(so_far["window_end"], so_far["timestamp"], "to now");
    everything_running(&fixture);
    // Raised after the start (the store's clock started a moment after t0).
    fixture.record(spike(t0() + seconds(1)));
    let so_far = fixture.get_ok("/summary").await;
    let text = so_far["summary"].as_str().unwrap_or_default();
    assert!(text.starts_with("Started at 10:00:00 UTC; 3 of 3 sensors reporting. So far: 1 anomaly between"), "{text}");
    assert!(text.contains("wtf-pipe-1 pressure: spike to 4.5 bar"), "{text}");
    assert_eq!(so_far["anomaly_count"], 1);
    assert_eq!(fixture.get_ok("/summaries").await, json!([]), "the state so far is not a summary written");

    fixture.store.record_summary(summary_at(t0() - seconds(60)), t0());
    fixture.store.record_summary(summary_at(t0()), t0());
    let latest = fixture.get_ok("/summary").await;
    assert_eq!(
        latest,
        json!({
            "summary": "Between 09:57 and 10:00, wtf-pipe-1 reported 3 pressure spikes.",
            "timestamp": "2025-05-19T10:00:00.000Z",
            "generated_by": "fallback",
            "model": "llama3.2:1b",
            "anomaly_count": 3,
            "window_start": "2025-05-19T09:57:00.000Z",
            "window_end": "2025-05-19T10:00:00.000Z"
        })
    );
    let recent = fixture.get_ok("/summaries").await;
    assert_eq!(timestamps(&recent), ["2025-05-19T10:00:00.000Z", "2025-05-19T09:59:00.000Z"]);
    assert_eq!(timestamps(&fixture.get_ok("/summaries?limit=1").await), ["2025-05-19T10:00:00.000Z"]);
}

// --- /status ------------------------------------------------------------------------------------

#[tokio::test]
async fn status_has_the_prototype_fields_and_the_operator_extras() {
    let fixture = Fixture::new();
    everything_running(&fixture);
    let status = fixture.get_ok("/status").await;
    for field in ["sensor_active", "detector_active", "llm_active", "api_active"] {
        assert!(status[field].is_boolean(), "{field}: {status}");
    }
    assert_eq!(status["last_reading_time"], "2025-05-19T10:00:00.000Z");
    assert_eq!(status["anomaly_count_24h"], 0);
    for field in ["started_at", "uptime_seconds", "sensors", "actors", "llm", "redis", "config", "anomalies_held"] {
        assert!(!status[field].is_null(), "{field} missing: {status}");
    }
    assert_eq!(status["started_at"], "2025-05-19T10:00:00.000Z");
    assert_eq!(status["sensors"].as_object().unwrap().len(), 3);
    assert_eq!(status["sensors"]["wtf-pipe-1"]["last_reading"]["pressure"], 2.0);
    assert_eq!(status["actors"].as_object().unwrap().len(), 3 + 9 + 1);
    assert_eq!(status["actors"]["detector:wtf-pipe-2:flow"]["restarts"], 0);
    assert_eq!(status["redis"]["state"], "disabled");
}

#[tokio::test]
async fn status_flags_follow_live_state_at_once() {
    let fixture = Fixture::new();
    let flags = |status: &Value| {
        ["sensor_active", "detector_active", "llm_active", "api_active"].map(|field| status[field].as_bool().unwrap())
    };
    // Nothing started yet: nothing is active.
    assert_eq!(flags(&fixture.get_ok("/status").await), [false, false, false, false]);
    everything_running(&fixture);
    assert_eq!(flags(&fixture.get_ok("/status").await), [true, true, false, true]);

    let health = &fixture.store.health;
    health.set_llm(|llm| llm.state = LlmState::Active);
    assert_eq!(flags(&fixture.get_ok("/status").await), [true, true, true, true]);

    // Within the same refresh period as the answers above: a change must still show at once.
    health.actor_down("detector:wtf-pipe-2:flow", Some(("fault injected".into(), t0())));
    let status = fixture.get_ok("/status").await;
    assert_eq!(flags(&status), [true, false, true, true]);
    assert_eq!(status["actors"]["detector:wtf-pipe-2:flow"]["alive"], false);
    assert_eq!(status["actors"]["detector:wtf-pipe-2:flow"]["last_failure"], "fault injected");

    health.actor_restarting("detector:wtf-pipe-2:flow");
    health.actor_started("detector:wtf-pipe-2:flow", Component::Detector);
    let status = fixture.get_ok("/status").await;
    assert_eq!(flags(&status), [true, true, true, true]);
    assert_eq!(status["actors"]["detector:wtf-pipe-2:flow"]["restarts"], 1);

    // A refused answer is an answer: the model is reachable, and the refusal is reported.
    health.set_llm(|llm| {
        llm.state = LlmState::Refused;
        llm.answers_refused = 1;
        llm.last_refusal = Some("answer refused: the answer is not JSON".into());
    });
    let status = fixture.get_ok("/status").await;
    assert_eq!(flags(&status), [true, true, true, true]);
    assert_eq!(status["llm"]["state"], "refused");
    assert_eq!(status["llm"]["answers_refused"], 1);
    assert_eq!(status["llm"]["last_refusal"], "answer refused: the answer is not JSON");

    health.set_llm(|llm| {
        llm.state = LlmState::Inactive;
        llm.calls_failed = 1;
    });
    health.actor_down("simulator:wtf-pipe-3", None);
    let status = fixture.get_ok("/status").await;
    assert_eq!(flags(&status), [false, true, false, true]);
    assert_eq!((&status["llm"]["state"], &status["llm"]["calls_failed"]), (&json!("inactive"), &json!(1)));
}

#[tokio::test]
async fn a_sensor_is_inactive_when_silent_past_the_dropout_timeout_or_never_heard() {
    let fixture = Fixture::new();
    everything_running(&fixture);
    fall_silent(&fixture, "wtf-pipe-2");
    let status = fixture.get_ok("/status").await;
    assert_eq!(status["sensor_active"], false);
    assert_eq!(status["sensors"]["wtf-pipe-1"]["active"], true);
    assert_eq!(status["sensors"]["wtf-pipe-2"]["active"], false);
    assert_eq!(status["sensors_active"], 2);

    let fresh = Fixture::new();
    let status = fresh.get_ok("/status").await;
    assert_eq!(status["sensor_active"], false);
    assert_eq!(status["sensors"]["wtf-pipe-3"], json!({"active": false, "last_reading": null}));
}

#[tokio::test]
async fn anomaly_count_24h_is_not_capped_by_the_memory_bound() {
    let fixture = Fixture::with(|config| config.store.max_anomalies = 10);
    record_spikes(&fixture, 25);
    let status = fixture.get_ok("/status").await;
    assert_eq!(status["anomaly_count_24h"], 25);
    assert_eq!(status["anomalies_held"], 10);
    assert_eq!(status["anomalies_evicted_early"], 15);
    assert_eq!(fixture.get_ok("/anomalies?limit=1000").await.as_array().unwrap().len(), 10);
}

// --- /metrics -----------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_describe_the_newest_100_only() {
    let fixture = Fixture::new();
    // 50 old flow dropouts, then 100 newer pressure drifts: only the drifts are described.
    for i in 0..50 {
        fixture.record(anomaly(AnomalyKind::Dropout, t0() - seconds(200 - i), "wtf-pipe-3", "flow"));
    }
    for i in 0..100 {
        fixture.record(anomaly(AnomalyKind::Drift, t0() - seconds(99 - i), "wtf-pipe-1", "pressure"));
    }
    let metrics = fixture.get_ok("/metrics").await;
    assert_eq!(
        metrics,
        json!({
            "total_anomalies": 100,
            "anomalies_by_type": {"spike": 0, "drift": 100, "dropout": 0},
            "anomalies_by_parameter": {"temperature": 0, "pressure": 100, "flow": 0},
            "anomalies_by_sensor": {"wtf-pipe-1": 100},
            "last_update": "2025-05-19T10:00:00.000Z"
        })
    );
}

#[tokio::test]
async fn metrics_before_any_anomaly_are_zeros() {
    let metrics = Fixture::new().get_ok("/metrics").await;
    assert_eq!(metrics["total_anomalies"], 0);
    assert_eq!(metrics["anomalies_by_type"], json!({"spike": 0, "drift": 0, "dropout": 0}));
    assert_eq!(metrics["anomalies_by_parameter"], json!({"temperature": 0, "pressure": 0, "flow": 0}));
    assert_eq!(metrics["last_update"], Value::Null);
}

// --- caching ------------------------------------------------------------------------------------

#[test]
fn a_cached_body_is_made_once_per_key() {
    let cache = BodyCache::default();
    let made = AtomicUsize::new(0);
    let make = |text: &'static str| {
        made.fetch_add(1, Ordering::SeqCst);
        Bytes::from_static(text.as_bytes())
    };
    assert_eq!(cache.get_or_make(1, || make("one")), "one");
    assert_eq!(cache.get_or_make(1, || make("again")), "one");
    assert_eq!(made.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get_or_make(2, || make("two")), "two");
    assert_eq!(made.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unchanged_data_is_served_from_the_same_bytes() {
    let fixture = Fixture::new();
    everything_running(&fixture);
    record_spikes(&fixture, 5);
    let shared = &fixture.state.inner;
    fn slot_of<K>(cache: &BodyCache<K>) -> Arc<(K, Bytes)> {
        cache.slot.load_full().expect("filled by the first request")
    }
    for uri in ["/anomalies", "/metrics", "/status"] {
        fixture.get_ok(uri).await;
    }
    let (anomalies, metrics, status) =
        (slot_of(&shared.anomalies_body), slot_of(&shared.metrics_body), slot_of(&shared.status_body));
    for uri in ["/anomalies", "/anomalies?limit=50", "/metrics", "/status"] {
        fixture.get_ok(uri).await;
    }
    assert!(Arc::ptr_eq(&anomalies, &slot_of(&shared.anomalies_body)), "/anomalies was serialised again");
    assert!(Arc::ptr_eq(&metrics, &slot_of(&shared.metrics_body)), "/metrics was serialised again");
    // /status is also re-made every STATUS_REFRESH; a test slower than that may see a new one.
    let again = slot_of(&shared.status_body);
    assert!(Arc::ptr_eq(&status, &again) || again.0.2 != status.0.2, "/status was re-made within a period");
}

#[tokio::test]
async fn cached_bodies_refresh_as_soon_as_the_anomalies_change() {
    let fixture = Fixture::new();
    record_spikes(&fixture, 3);
    for uri in ["/anomalies", "/anomalies?limit=2", "/metrics", "/status"] {
        fixture.get_ok(uri).await;
    }
    let newest = anomaly(AnomalyKind::Drift, t0() + seconds(1), "wtf-pipe-2", "flow");
    fixture.store.record(Transition::Raised(newest.clone()), t0() + seconds(1));

    let list = fixture.get_ok("/anomalies").await;
    assert_eq!(list.as_array().unwrap().len(), 4);
    assert_eq!(list[0]["id"], newest.id.as_str());
    let two = fixture.get_ok("/anomalies?limit=2").await;
    assert_eq!(two[0]["id"], newest.id.as_str());
    // The single slot is keyed by limit too: alternating limits never mix their bodies.
    assert_eq!(fixture.get_ok("/anomalies?limit=1").await.as_array().unwrap().len(), 1);
    assert_eq!(fixture.get_ok("/anomalies").await.as_array().unwrap().len(), 4);
    let metrics = fixture.get_ok("/metrics").await;
    assert_eq!(metrics["total_anomalies"], 4);
    assert_eq!(metrics["anomalies_by_type"]["drift"], 1);
    assert_eq!(metrics["last_update"], "2025-05-19T10:00:01.000Z");
    assert_eq!(fixture.get_ok("/status").await["anomaly_count_24h"], 4);
}

#[tokio::test]
async fn cached_bodies_refresh_when_anomalies_expire() {
    let fixture = Fixture::new();
    fixture.record(spike(t0() - TimeDelta::hours(23)));
    fixture.record(spike(t0()));
    assert_eq!(fixture.get_ok("/anomalies").await.as_array().unwrap().len(), 2);
    assert_eq!(fixture.get_ok("/metrics").await["total_anomalies"], 2);

    // Two hours on, the older one is past its 24 hours; nothing new arrived.
    fixture.store.expire(t0() + TimeDelta::hours(2));
    assert_eq!(fixture.get_ok("/anomalies").await.as_array().unwrap().len(), 1);
    assert_eq!(fixture.get_ok("/metrics").await["total_anomalies"], 1);
}

mod dashboard;
mod hardening;
mod prometheus;
