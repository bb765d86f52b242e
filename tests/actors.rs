//! The actors on tokio's paused clock: a 15 s drift, a 10 s dropout, a crash and a crash loop
//! take microseconds of real time, and every timestamp is virtual.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ractor::{Actor, ActorRef};
use wtf_monitor::actors::Fault;
use wtf_monitor::actors::detector::{Detector, DetectorArgs, DetectorMsg};
use wtf_monitor::actors::simulator::Pace;
use wtf_monitor::actors::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg, Verdict};
use wtf_monitor::clock::Clock;
use wtf_monitor::config::{Config, ValidConfig};
use wtf_monitor::detection::Rules;
use wtf_monitor::domain::{Anomaly, AnomalyKind, Parameter, SensorId};
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
    let mut anomalies = store.anomalies(&AnomalyQuery::newest(usize::MAX));
    anomalies.reverse();
    anomalies
}

/// One detector actor on its own, fed by the test.
struct LoneDetector {
    actor: ActorRef<DetectorMsg>,
    store: Arc<Store>,
    clock: Clock,
}

impl LoneDetector {
    async fn start(parameter: Parameter) -> Self {
        let config = test_config(|_| {});
        let clock = Clock::starting_at(plant_opening());
        let store = Arc::new(Store::new(config.clone(), clock.now()));
        let args = DetectorArgs {
            slot: store.detector_slot(&SensorId::new("wtf-pipe-1"), parameter, clock.now()),
            rules: Rules::for_parameter(&config.detection, parameter),
            store: Arc::clone(&store),
            clock,
        };
        let (actor, _) = Actor::spawn(None, Detector, args).await.expect("detector starts");
        Self { actor, store, clock }
    }

    /// Sends one reading stamped now, then lets a second of virtual time pass.
    async fn reading_then_a_second(&self, value: f64) {
        let timestamp = self.clock.now();
        self.actor.cast(DetectorMsg::Sample { timestamp, value }).expect("detector alive");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    fn kinds(&self) -> Vec<AnomalyKind> {
        all_anomalies(&self.store).iter().map(|anomaly| anomaly.kind).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_drift_fires_once_just_after_fifteen_seconds_above_the_threshold() {
    let detector = LoneDetector::start(Parameter::Temperature).await;
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
    let detector = LoneDetector::start(Parameter::Flow).await;
    detector.reading_then_a_second(60.0).await;
    // The last reading came at 0 s; at 10 s the silence is exactly the timeout.
    tokio::time::sleep(Duration::from_millis(9_000)).await;
    assert_eq!(detector.kinds(), []);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(detector.kinds(), [AnomalyKind::Dropout]);
    let dropout = &all_anomalies(&detector.store)[0];
    assert_eq!(dropout.value, Some(60.0), "a dropout reports the last value seen");
    assert!(dropout.duration_seconds.unwrap() > 10.0 && dropout.duration_seconds.unwrap() < 10.1);

    // A long silence is still one dropout.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(detector.kinds(), [AnomalyKind::Dropout]);

    // Readings return, then stop again: a second dropout.
    for _ in 0..5 {
        detector.reading_then_a_second(61.0).await;
    }
    assert_eq!(detector.kinds(), [AnomalyKind::Dropout]);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(detector.kinds(), [AnomalyKind::Dropout, AnomalyKind::Dropout]);
}

/// A whole actor tree on the paused clock.
struct Plant {
    supervisor: ActorRef<SupervisorMsg>,
    done: ractor::concurrency::JoinHandle<()>,
    store: Arc<Store>,
    verdict: Arc<Verdict>,
}

impl Plant {
    async fn start(config: ValidConfig) -> Self {
        let clock = Clock::starting_at(plant_opening());
        let store = Arc::new(Store::new(config.clone(), clock.now()));
        let verdict = Arc::new(Verdict::default());
        let args = SupervisorArgs {
            seed: config.simulation.seed.unwrap_or_default(),
            config,
            store: Arc::clone(&store),
            clock,
            verdict: Arc::clone(&verdict),
            pace: Pace::Scheduled,
        };
        let (supervisor, done) = Actor::spawn(None, Supervisor, args).await.expect("supervisor starts");
        Self { supervisor, done, store, verdict }
    }

    async fn fail(&self, actor: &str, fault: Fault) {
        let outcome =
            ractor::call!(self.supervisor, |reply| SupervisorMsg::InjectFault { actor: actor.into(), fault, reply })
                .expect("supervisor answers");
        outcome.expect("fault delivered");
    }

    /// Anomalies as (sensor, parameter, kind, time): comparable across runs.
    fn episodes(&self) -> Vec<(String, Parameter, AnomalyKind, DateTime<Utc>)> {
        let mut episodes: Vec<_> = all_anomalies(&self.store)
            .iter()
            .map(|anomaly| (anomaly.sensor_id.to_string(), anomaly.parameter, anomaly.kind, anomaly.timestamp))
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
async fn an_actor_that_keeps_failing_makes_the_supervisor_give_up() {
    let plant = Plant::start(test_config(|config| config.supervisor.max_restarts = 2)).await;
    let actor = "simulator:wtf-pipe-2";
    for _ in 0..3 {
        plant.fail(actor, Fault::Error).await;
        // Past the backoff, so the next fault meets the restarted actor.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), plant.done).await.expect("supervisor stops").ok();
    let reason = plant.verdict.gave_up().expect("a reason to give up");
    assert!(reason.contains("simulator:wtf-pipe-2 failed 3 times"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn status_tells_when_a_detector_is_down() {
    let plant = Plant::start(test_config(|config| config.supervisor.backoff_initial = Duration::from_secs(5))).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = plant_opening() + chrono::TimeDelta::seconds(3);
    assert!(wtf_monitor::http::status_now(&plant.store, now).detector_active);
    plant.fail("detector:wtf-pipe-3:flow", Fault::Panic).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!wtf_monitor::http::status_now(&plant.store, now).detector_active, "down during its backoff");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(wtf_monitor::http::status_now(&plant.store, now).detector_active, "back after its restart");
    plant.stop().await;
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_the_open_window_is_summarised_with_every_anomaly_raised_before_it() {
    let plant = Plant::start(busy_plant()).await;
    // The first window closes at 15 s, the next would at 75 s: stop at 70 s, mid-window.
    tokio::time::sleep(Duration::from_secs(70)).await;
    assert_eq!(plant.store.summaries(10).len(), 1);
    let store = Arc::clone(&plant.store);
    plant.stop().await;
    let summaries = store.summaries(10);
    assert_eq!(summaries.len(), 2, "the open window is published at the stop");
    let (last, first) = (&summaries[0], &summaries[1]);
    assert_eq!(last.window_start, first.window_end);
    assert!(last.window_end >= plant_opening() + chrono::TimeDelta::seconds(70), "{}", last.window_end);
    let summarised = first.anomaly_count + last.anomaly_count;
    assert_eq!(summarised, all_anomalies(&store).len() as u64, "every anomaly is in a published window");
    assert!(last.anomaly_count > 0, "a busy minute raises anomalies");
}
