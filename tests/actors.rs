//! The actors on tokio's paused clock: a 15 s drift, a 10 s dropout, a crash and a crash loop
//! take microseconds of real time, and every timestamp is virtual.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ractor::{Actor, ActorRef};
use wtf_monitor::actors::Fault;
use wtf_monitor::actors::detector::{Detector, DetectorArgs, DetectorMsg};
use wtf_monitor::actors::simulator::Pace;
use wtf_monitor::actors::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg, Verdict};
use wtf_monitor::clock::Clock;
use wtf_monitor::config::{Config, UnknownSensors, ValidConfig};
use wtf_monitor::detection::Rules;
use wtf_monitor::domain::{Anomaly, AnomalyKind, Parameter, Reading, SensorId};
use wtf_monitor::ingress::{Ingress, Source};
use wtf_monitor::journal::Event;
use wtf_monitor::store::{AnomalyQuery, Store};

fn plant_opening() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap()
}

fn test_config(edit: impl FnOnce(&mut Config)) -> ValidConfig {
    let mut config = Config::default();
    config.api.listen = "127.0.0.1:0".parse().unwrap();
    config.redis.url = String::new();
    config.llm.url = String::new();
    config.simulation.seed = Some(7);
    edit(&mut config);
    config.validate().expect("test config is valid")
}

fn all_anomalies(store: &Store) -> Vec<Arc<Anomaly>> {
    let mut anomalies = store.anomalies.query(&AnomalyQuery::newest(usize::MAX));
    anomalies.reverse();
    anomalies
}

fn reading(sensor: &str, at: DateTime<Utc>, values: &[(&str, f64)]) -> Reading {
    let values = values.iter().map(|(name, value)| (Parameter::new(name), *value)).collect();
    Reading { sensor_id: SensorId::new(sensor), timestamp: at, values }
}

/// One detector actor on its own, fed through the ingress by the test.
struct LoneDetector {
    _actor: ActorRef<DetectorMsg>,
    store: Arc<Store>,
    ingress: Arc<Ingress>,
    clock: Clock,
    parameter: &'static str,
}

impl LoneDetector {
    async fn start(parameter: &'static str) -> Self {
        Self::start_with(parameter, |_| {}).await
    }

    async fn start_with(parameter: &'static str, edit: impl FnOnce(&mut Config)) -> Self {
        let config = test_config(edit);
        let clock = Clock::starting_at(plant_opening());
        let store = Arc::new(Store::new(config.clone(), clock));
        let ingress = Arc::new(Ingress::new(&config, clock));
        let lane = ingress.add_sensor(&SensorId::new("wtf-pipe-1"));
        let args = DetectorArgs {
            inbox: lane.inbox(parameter).expect("a configured parameter"),
            rules: Rules::for_sensor(&config, "wtf-pipe-1", parameter),
            store: Arc::clone(&store),
            clock,
        };
        let (actor, _) = Actor::spawn(None, Detector, args).await.expect("detector starts");
        Self { _actor: actor, store, ingress, clock, parameter }
    }

    /// Sends one reading stamped now, then lets a second of virtual time pass.
    async fn reading_then_a_second(&self, value: f64) {
        let reading = reading("wtf-pipe-1", self.clock.now(), &[(self.parameter, value)]);
        self.ingress.submit(Source::Http, reading).expect("taken");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    fn kinds(&self) -> Vec<AnomalyKind> {
        all_anomalies(&self.store).iter().map(|anomaly| anomaly.kind).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_drift_fires_once_just_after_fifteen_seconds_above_the_threshold() {
    let detector = LoneDetector::start("temperature").await;
    // Readings at 0 s … 15 s are above 38 °C for exactly 15 s: not yet a drift.
    for _ in 0..=15 {
        detector.reading_then_a_second(39.0).await;
    }
    assert_eq!(detector.kinds(), [], "15.000 s above is not longer than 15 s");
    // The reading at 16 s is: one drift, and only one however long it lasts.
    for _ in 0..30 {
        detector.reading_then_a_second(39.5).await;
    }
    let anomalies = all_anomalies(&detector.store);
    assert_eq!(detector.kinds(), [AnomalyKind::Drift]);
    assert_eq!(anomalies[0].duration_seconds, Some(16.0));
    assert_eq!(anomalies[0].timestamp, plant_opening() + chrono::TimeDelta::seconds(16));
}

#[tokio::test(start_paused = true)]
async fn a_dropout_fires_once_just_after_ten_seconds_of_silence_and_rearms() {
    let detector = LoneDetector::start("flow").await;
    detector.reading_then_a_second(60.0).await;
    // The last reading came at 0 s; at 10 s the silence is exactly the timeout.
    tokio::time::sleep(Duration::from_millis(9_000)).await;
    assert_eq!(detector.kinds(), []);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(detector.kinds(), [AnomalyKind::Dropout]);
    let dropout = &all_anomalies(&detector.store)[0];
    assert_eq!(dropout.value, Some(60.0), "a dropout reports the last value seen");
    assert_eq!(dropout.timestamp, plant_opening() + chrono::TimeDelta::seconds(10), "stamped from the readings");

    // A long silence is still one dropout.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(detector.kinds(), [AnomalyKind::Dropout]);

    // Readings return (the dropout clears), then stop again: a second dropout.
    for _ in 0..5 {
        detector.reading_then_a_second(61.0).await;
    }
    assert_eq!(detector.kinds(), [AnomalyKind::Dropout]);
    let clears = detector
        .store
        .journal
        .after(0, 100)
        .entries
        .iter()
        .filter(|entry| matches!(entry.event, Event::Cleared(_)))
        .count();
    assert_eq!(clears, 1, "the returning reading ends the dropout");
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(detector.kinds(), [AnomalyKind::Dropout, AnomalyKind::Dropout]);
}

#[tokio::test(start_paused = true)]
async fn a_value_hovering_at_its_limit_for_ten_minutes_raises_one_alarm() {
    let detector = LoneDetector::start_with("pressure", |config| {
        config.detection.limits.deadband.insert("pressure".into(), 0.1);
        config.detection.limits.off_delay.insert("pressure".into(), Duration::from_secs(30));
    })
    .await;
    // 4 bar ± 0.01, once a second for ten minutes; the drift rule (above 3.5 bar) sees it too.
    for second in 0..600 {
        detector.reading_then_a_second(if second % 2 == 0 { 4.01 } else { 3.99 }).await;
    }
    let alarms = detector.store.alarms();
    let spikes: Vec<_> = alarms.iter().filter(|alarm| alarm.kind == AnomalyKind::Spike).collect();
    assert_eq!(spikes.len(), 1, "one alarm, not a chatter of them: {alarms:?}");
    assert_eq!(spikes[0].state, wtf_monitor::alarms::AlarmState::ActiveUnack);
}

#[tokio::test(start_paused = true)]
async fn a_parameter_a_sensor_never_reports_raises_no_dropout() {
    let detector = LoneDetector::start("temperature").await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(detector.kinds(), []);
}

/// A whole actor tree on the paused clock.
struct Plant {
    supervisor: ActorRef<SupervisorMsg>,
    done: ractor::concurrency::JoinHandle<()>,
    store: Arc<Store>,
    ingress: Arc<Ingress>,
    verdict: Arc<Verdict>,
}

impl Plant {
    async fn start(config: ValidConfig) -> Self {
        let clock = Clock::starting_at(plant_opening());
        let store = Arc::new(Store::new(config.clone(), clock));
        let ingress = Arc::new(Ingress::new(&config, clock));
        let verdict = Arc::new(Verdict::default());
        let args = SupervisorArgs {
            seed: config.simulation.seed.unwrap_or_default(),
            config,
            store: Arc::clone(&store),
            ingress: Arc::clone(&ingress),
            clock,
            verdict: Arc::clone(&verdict),
            stop_requested: Arc::new(AtomicBool::new(false)),
            pace: Pace::Scheduled,
        };
        let (supervisor, done) = Actor::spawn(None, Supervisor, args).await.expect("supervisor starts");
        Self { supervisor, done, store, ingress, verdict }
    }

    async fn fail(&self, actor: &str, fault: Fault) {
        let outcome =
            ractor::call!(self.supervisor, |reply| SupervisorMsg::InjectFault { actor: actor.into(), fault, reply })
                .expect("supervisor answers");
        outcome.expect("fault delivered");
    }

    /// Anomalies as (sensor, parameter, kind, time): comparable across runs.
    fn episodes(&self) -> Vec<(String, String, AnomalyKind, DateTime<Utc>)> {
        let mut episodes: Vec<_> = all_anomalies(&self.store)
            .iter()
            .map(|anomaly| {
                (anomaly.sensor_id.to_string(), anomaly.parameter.to_string(), anomaly.kind, anomaly.timestamp)
            })
            .collect();
        episodes.sort();
        episodes
    }

    async fn stop(self) {
        let _ = ractor::call!(self.supervisor, |reply| SupervisorMsg::Shutdown { reply });
        let _ = self.done.await;
    }
}

fn busy_plant() -> ValidConfig {
    test_config(|config| {
        config.sensors.ids = vec!["wtf-pipe-1".into()];
        config.simulation.spikes_per_hour = 600.0;
        config.simulation.drifts_per_hour = 120.0;
        config.simulation.dropouts_per_hour = 60.0;
    })
}

#[tokio::test(start_paused = true)]
async fn a_crashed_detector_is_restarted_without_losing_or_repeating_an_anomaly() {
    let calm = Plant::start(busy_plant()).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    let expected = calm.episodes();
    calm.stop().await;
    let kinds: std::collections::BTreeSet<_> = expected.iter().map(|episode| episode.2).collect();
    assert_eq!(kinds.len(), 3, "ten busy minutes raise every kind of anomaly: {expected:?}");

    let crashing = Plant::start(busy_plant()).await;
    let actor = "detector:wtf-pipe-1:pressure";
    let start = tokio::time::Instant::now();
    for (at, fault) in [(100, Fault::Panic), (250, Fault::Error), (420, Fault::Panic)] {
        tokio::time::sleep_until(start + Duration::from_secs(at)).await;
        crashing.fail(actor, fault).await;
    }
    tokio::time::sleep_until(start + Duration::from_secs(620)).await;
    let health = crashing.store.health.actors()[actor].clone();
    assert_eq!(health.restarts, 3);
    assert!(health.alive);
    assert!(health.last_failure.as_deref().unwrap_or_default().contains("fault injected"));

    let seen = crashing.episodes();
    let window_end = expected.iter().map(|episode| episode.3).max().unwrap();
    let seen_in_window: Vec<_> = seen.into_iter().filter(|episode| episode.3 <= window_end).collect();
    assert_eq!(seen_in_window, expected, "the same anomalies, none lost, none twice");
    crashing.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_detector_that_crashes_with_a_full_queue_loses_no_reading() {
    let plant = Plant::start(test_config(|config| {
        config.simulation.enabled = false;
        config.supervisor.backoff_initial = Duration::from_secs(2);
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let sensor = "wtf-pipe-1";
    let actor = "detector:wtf-pipe-1:pressure";
    let start = plant_opening();
    // 400 readings alternating 5 bar (a spike each) and 2 bar: 200 spikes if none is lost. The
    // detector crashes with the queue full of them, and more arrive during its restart.
    let mut sent = 0;
    let mut submit = |from: usize, to: usize| {
        for index in from..to {
            let value = if index % 2 == 0 { 5.0 } else { 2.0 };
            let at = start + chrono::TimeDelta::milliseconds(index as i64);
            plant.ingress.submit(Source::Http, reading(sensor, at, &[("pressure", value)])).expect("room in the queue");
            sent += 1;
        }
    };
    plant.fail(actor, Fault::Panic).await;
    submit(0, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!plant.store.health.is_alive(actor), "still in its backoff");
    submit(200, 400);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(plant.store.health.is_alive(actor));
    assert_eq!(sent, 400);
    let spikes = all_anomalies(&plant.store).iter().filter(|anomaly| anomaly.kind == AnomalyKind::Spike).count();
    assert_eq!(spikes, 200, "every queued reading was handled by the restarted detector");
    assert_eq!(plant.ingress.queued(), 0);
    plant.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_device_gone_offline_raises_its_dropout_at_once_after_the_values_before_it() {
    let detector = LoneDetector::start("pressure").await;
    detector.reading_then_a_second(2.0).await;
    // A spike, then the death certificate right behind it: the spike is judged first.
    let reading = reading("wtf-pipe-1", detector.clock.now(), &[("pressure", 5.0)]);
    detector.ingress.submit(Source::Mqtt, reading).expect("taken");
    detector.ingress.go_offline("wtf-pipe-1", detector.clock.now()).expect("a watched sensor");
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(detector.kinds(), [AnomalyKind::Spike, AnomalyKind::Dropout], "at once, not after 10 s");
    let dropout = &all_anomalies(&detector.store)[1];
    assert!(dropout.message.contains("went offline"), "{}", dropout.message);
    assert_eq!(dropout.value, Some(5.0), "the last value before it went offline");
    // Silence after that is the same dropout; a reading ends it and the timer is armed again.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(detector.kinds().len(), 2);
    detector.reading_then_a_second(2.0).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(detector.kinds(), [AnomalyKind::Spike, AnomalyKind::Dropout, AnomalyKind::Dropout]);
    assert!(detector.ingress.go_offline("pump-9", detector.clock.now()).is_err(), "not a watched sensor");
}

#[tokio::test(start_paused = true)]
async fn word_that_a_device_went_offline_waits_for_a_detector_being_restarted() {
    let plant = Plant::start(test_config(|config| {
        config.simulation.enabled = false;
        config.supervisor.backoff_initial = Duration::from_secs(2);
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let at = plant_opening();
    plant.ingress.submit(Source::Mqtt, reading("wtf-pipe-1", at, &[("flow", 60.0)])).expect("taken");
    tokio::time::sleep(Duration::from_millis(10)).await;
    plant.fail("detector:wtf-pipe-1:flow", Fault::Panic).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    plant.ingress.go_offline("wtf-pipe-1", at + chrono::TimeDelta::milliseconds(200)).expect("watched");
    assert!(!plant.store.health.is_alive("detector:wtf-pipe-1:flow"), "still in its backoff");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dropouts: Vec<_> =
        all_anomalies(&plant.store).into_iter().filter(|anomaly| anomaly.kind == AnomalyKind::Dropout).collect();
    assert_eq!(dropouts.len(), 1, "raised by the restarted detector: {dropouts:?}");
    assert!(dropouts[0].message.contains("went offline"));
    assert!(dropouts[0].duration_seconds.unwrap_or(f64::MAX) < 1.0, "raised for the death, not the timeout");
    plant.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_actor_that_keeps_failing_makes_the_supervisor_give_up_after_draining() {
    let plant = Plant::start(test_config(|config| {
        config.supervisor.max_restarts = 2;
        config.simulation.enabled = false;
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let actor = "summarizer";
    for _ in 0..2 {
        plant.fail(actor, Fault::Error).await;
        // Past the backoff, so the next fault meets the restarted actor.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Readings accepted just before the last failure are still handled on the way out.
    for index in 0..50 {
        let at = plant_opening() - chrono::TimeDelta::seconds(100 - index);
        let flow = if index % 2 == 0 { 130.0 } else { 70.0 };
        plant.ingress.submit(Source::Http, reading("wtf-pipe-2", at, &[("flow", flow)])).unwrap();
    }
    plant.fail(actor, Fault::Error).await;
    tokio::time::timeout(Duration::from_secs(30), plant.done).await.expect("supervisor stops").ok();
    let reason = plant.verdict.gave_up().expect("a reason to give up");
    assert!(reason.contains("summarizer failed 3 times"), "{reason}");
    let spikes = all_anomalies(&plant.store).iter().filter(|anomaly| anomaly.kind == AnomalyKind::Spike).count();
    assert_eq!(spikes, 25, "the stop path drained the detectors before giving up");
    assert_eq!(plant.ingress.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_sensor_registered_by_its_readings_gets_detectors_under_supervision() {
    let plant = Plant::start(test_config(|config| {
        config.simulation.enabled = false;
        config.ingest.unknown_sensors = UnknownSensors::Register;
    }))
    .await;
    let at = plant_opening();
    plant.ingress.submit(Source::Http, reading("meter-7", at, &[("flow", 61.0)])).unwrap();
    plant
        .ingress
        .submit(Source::Http, reading("meter-7", at + chrono::TimeDelta::seconds(1), &[("flow", 130.0)]))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let actors = plant.store.health.actors();
    assert!(actors.get("detector:meter-7:flow").is_some_and(|actor| actor.alive), "{:?}", actors.keys());
    let spikes: Vec<_> =
        all_anomalies(&plant.store).iter().map(|anomaly| (anomaly.sensor_id.to_string(), anomaly.kind)).collect();
    assert_eq!(spikes, [("meter-7".to_owned(), AnomalyKind::Spike)]);
    // It is supervised like any other: a crash is restarted.
    plant.fail("detector:meter-7:flow", Fault::Panic).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(plant.store.health.actors()["detector:meter-7:flow"].restarts, 1);
    plant.stop().await;
}

#[tokio::test(start_paused = true)]
async fn status_tells_when_a_detector_is_down() {
    let plant = Plant::start(test_config(|config| config.supervisor.backoff_initial = Duration::from_secs(5))).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = plant_opening() + chrono::TimeDelta::seconds(3);
    let status = || wtf_monitor::http::status_now(&plant.store, &plant.ingress, now);
    assert!(status().detector_active);
    plant.fail("detector:wtf-pipe-3:flow", Fault::Panic).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!status().detector_active, "down during its backoff");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(status().detector_active, "back after its restart");
    plant.stop().await;
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_the_open_window_is_summarised_with_every_anomaly_raised_before_it() {
    let plant = Plant::start(busy_plant()).await;
    // The first window closes at 15 s, the next would at 75 s: stop at 70 s, mid-window.
    tokio::time::sleep(Duration::from_secs(70)).await;
    assert_eq!(plant.store.summaries.recent(10).len(), 1);
    let store = Arc::clone(&plant.store);
    plant.stop().await;
    let summaries = store.summaries.recent(10);
    assert_eq!(summaries.len(), 2, "the open window is published at the stop");
    let (last, first) = (&summaries[0], &summaries[1]);
    assert_eq!(last.window_start, first.window_end);
    assert!(last.window_end >= plant_opening() + chrono::TimeDelta::seconds(70), "{}", last.window_end);
    let summarised = first.anomaly_count + last.anomaly_count;
    assert_eq!(summarised, all_anomalies(&store).len() as u64, "every anomaly is in a published window");
    assert!(last.anomaly_count > 0, "a busy minute raises anomalies");
}
