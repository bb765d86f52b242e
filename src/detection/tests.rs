use std::time::Duration;

use chrono::{TimeDelta, TimeZone};
use proptest::prelude::*;

use super::*;
use crate::config::Config;

/// 2025-05-19T10:15:00Z plus `millis`.
fn at(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_747_649_700, 0).unwrap() + TimeDelta::milliseconds(millis)
}

/// The rules of `parameter` on `wtf-pipe-1` with the defaults edited.
fn rules_with(parameter: &str, edit: impl FnOnce(&mut Config)) -> Rules {
    let mut config = Config::default();
    edit(&mut config);
    Rules::for_sensor(&config, "wtf-pipe-1", parameter)
}

/// Temperature defaults: spike above 45, drift above 38 for more than 15 s, dropout after 10 s.
fn rules() -> Rules {
    rules_with("temperature", |_| {})
}

/// Pressure with every rule on: low spike below 0.5, low drift below 1.0, rate 0.5 bar/s over
/// 10 s, stuck within 0.001 for 5 minutes.
fn every_rule(edit: impl FnOnce(&mut Config)) -> Rules {
    rules_with("pressure", |config| {
        let limits = &mut config.detection.limits;
        limits.low_spike_thresholds.insert("pressure".into(), 0.5);
        limits.low_drift_thresholds.insert("pressure".into(), 1.0);
        limits.rate_limits.insert("pressure".into(), 0.5);
        limits.stuck_tolerance.insert("pressure".into(), 0.001);
        limits.stuck_after.insert("pressure".into(), Duration::from_secs(300));
        edit(config);
    })
}

fn detector(parameter: &str) -> ParameterDetector {
    ParameterDetector::new(SensorId::new("wtf-pipe-1"), Parameter::new(parameter))
}

/// Feeds readings that arrive the moment they are taken; returns everything produced.
fn feed(detector: &mut ParameterDetector, rules: &Rules, readings: &[(i64, f64)]) -> Vec<Transition> {
    readings
        .iter()
        .flat_map(|&(millis, value)| detector.observe(rules, at(millis), value, at(millis)).unwrap())
        .collect()
}

fn raised(transitions: &[Transition]) -> Vec<&Anomaly> {
    transitions
        .iter()
        .filter_map(|transition| match transition {
            Transition::Raised(anomaly) => Some(anomaly),
            Transition::Cleared(_) => None,
        })
        .collect()
}

fn cleared(transitions: &[Transition]) -> Vec<&Cleared> {
    transitions
        .iter()
        .filter_map(|transition| match transition {
            Transition::Cleared(cleared) => Some(cleared),
            Transition::Raised(_) => None,
        })
        .collect()
}

fn kinds(transitions: &[Transition]) -> Vec<AnomalyKind> {
    raised(transitions).iter().map(|anomaly| anomaly.kind).collect()
}

/// One reading per second from `from` (inclusive) to `to` (exclusive) seconds, all at `value`.
fn steady(from: i64, to: i64, value: f64) -> Vec<(i64, f64)> {
    (from..to).map(|second| (second * 1000, value)).collect()
}

#[test]
fn rules_come_from_the_parameter_unless_the_sensor_overrides_them() {
    let defaults = rules_with("pressure", |_| {});
    assert_eq!(defaults.limit(AnomalyKind::Spike), Some(4.0));
    assert_eq!(defaults.limit(AnomalyKind::Drift), Some(3.5));
    assert_eq!(defaults.limit(AnomalyKind::LowSpike), None, "every new rule is off unless configured");
    assert_eq!(&*defaults.wording.unit, "bar");
    assert_eq!(&*defaults.wording.title, "Pressure");
    let overridden = rules_with("pressure", |config| {
        let own = config.detection.sensors.entry("wtf-pipe-1".into()).or_default();
        own.spike_thresholds.insert("pressure".into(), 4.5);
    });
    assert_eq!(overridden.limit(AnomalyKind::Spike), Some(4.5));
    assert_eq!(overridden.limit(AnomalyKind::Drift), Some(3.5), "what the sensor does not override stays");
    let mut config = Config::default();
    config.detection.sensors.entry("wtf-pipe-2".into()).or_default().spike_thresholds.insert("pressure".into(), 9.0);
    assert_eq!(Rules::for_sensor(&config, "wtf-pipe-1", "pressure").limit(AnomalyKind::Spike), Some(4.0));
}

#[test]
fn a_spike_fires_only_strictly_above_its_threshold() {
    for (value, fires) in [(44.0, false), (45.0, false), (45.000_001, true), (46.0, true), (f64::MAX, true)] {
        let produced = detector("temperature").observe(&rules(), at(0), value, at(0)).unwrap();
        assert_eq!(kinds(&produced).contains(&AnomalyKind::Spike), fires, "value {value}");
    }
}

#[test]
fn a_spike_fires_once_for_a_long_run_above_and_clears_at_its_threshold() {
    let mut detector = detector("temperature");
    let produced = feed(&mut detector, &rules(), &[(0, 50.0), (1000, 51.0), (2000, 45.0), (3000, 50.0)]);
    assert_eq!(kinds(&produced), [AnomalyKind::Spike, AnomalyKind::Spike]);
    let ends = cleared(&produced);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].anomaly_id, raised(&produced)[0].id);
    assert_eq!(ends[0].timestamp, at(2000));
    assert_eq!(ends[0].peak, Some(51.0));
}

#[test]
fn a_drift_needs_strictly_longer_than_its_duration_above() {
    let exactly = feed(&mut detector("temperature"), &rules(), &steady(0, 16, 40.0));
    assert!(kinds(&exactly).is_empty(), "15 s above is not longer than 15 s");
    let longer = feed(&mut detector("temperature"), &rules(), &steady(0, 17, 40.0));
    assert_eq!(kinds(&longer), [AnomalyKind::Drift]);
    let drift = raised(&longer)[0];
    assert_eq!(drift.timestamp, at(16_000));
    assert_eq!(drift.duration_seconds, Some(16.0));
    assert_eq!(drift.message, "Temperature drift detected: 40 °C above threshold 38 °C for 16 s");
}

#[test]
fn a_drift_below_its_duration_is_forgotten_at_the_first_reading_back() {
    let mut readings = steady(0, 10, 40.0);
    readings.push((10_000, 37.0));
    readings.extend(steady(11, 25, 40.0));
    assert!(kinds(&feed(&mut detector("temperature"), &rules(), &readings)).is_empty());
}

#[test]
fn drift_time_is_the_readings_timestamp_not_the_arrival_clock() {
    let mut detector = detector("temperature");
    // Twenty readings a second apart, all arriving in the same instant (a late batch).
    let produced: Vec<Transition> =
        (0..20).flat_map(|second| detector.observe(&rules(), at(second * 1000), 40.0, at(20_000)).unwrap()).collect();
    assert_eq!(kinds(&produced), [AnomalyKind::Drift]);
    assert_eq!(raised(&produced)[0].timestamp, at(16_000));
}

#[test]
fn a_spike_reading_continues_a_drift_episode() {
    let mut readings = steady(0, 8, 40.0);
    readings.push((8_000, 46.0));
    readings.extend(steady(9, 17, 40.0));
    assert_eq!(
        kinds(&feed(&mut detector("temperature"), &rules(), &readings)),
        [AnomalyKind::Spike, AnomalyKind::Drift]
    );
}

#[test]
fn low_rules_watch_the_other_side() {
    let rules = every_rule(|_| {});
    let mut detector = detector("pressure");
    let mut readings = vec![(0, 2.0), (1000, 0.4)];
    readings.extend(steady(2, 20, 0.8));
    let produced = feed(&mut detector, &rules, &readings);
    let kinds = kinds(&produced);
    assert!(kinds.contains(&AnomalyKind::LowSpike), "{kinds:?}");
    assert!(kinds.contains(&AnomalyKind::LowDrift), "{kinds:?}");
    let low = raised(&produced).into_iter().find(|anomaly| anomaly.kind == AnomalyKind::LowSpike).unwrap();
    assert_eq!(low.value, Some(0.4));
    assert_eq!(low.threshold, 0.5);
}

#[test]
fn a_burst_main_raises_a_low_spike_and_a_rate() {
    // Pressure collapsing from 2 bar to 0.3 bar in four seconds.
    let rules = every_rule(|config| config.detection.rate_window = Duration::from_secs(2));
    let mut readings = steady(0, 11, 2.0);
    readings.extend([(11_000, 1.2), (12_000, 0.5), (13_000, 0.3), (14_000, 0.3)]);
    let produced = feed(&mut detector("pressure"), &rules, &readings);
    let kinds = kinds(&produced);
    assert!(kinds.contains(&AnomalyKind::LowSpike), "{kinds:?}");
    assert!(kinds.contains(&AnomalyKind::Rate), "{kinds:?}");
    let rate = raised(&produced).into_iter().find(|anomaly| anomaly.kind == AnomalyKind::Rate).unwrap();
    assert!(rate.value.is_some_and(|rate| rate < -0.5), "a falling rate is negative: {:?}", rate.value);
    assert!(rate.message.contains("bar/s"), "{}", rate.message);
}

#[test]
fn a_rate_needs_half_a_window_of_history() {
    // A jump between two close readings is noise, not a rate.
    let rules = every_rule(|_| {});
    let produced = feed(&mut detector("pressure"), &rules, &[(0, 2.0), (100, 2.9), (200, 2.0)]);
    assert!(!kinds(&produced).contains(&AnomalyKind::Rate));
}

#[test]
fn a_stuck_value_is_raised_after_its_time_and_clears_when_it_moves() {
    let rules = every_rule(|_| {});
    let mut readings = steady(0, 302, 2.0);
    readings.push((302_000, 2.0005));
    readings.push((303_000, 2.1));
    let produced = feed(&mut detector("pressure"), &rules, &readings);
    assert_eq!(kinds(&produced), [AnomalyKind::Stuck]);
    let stuck = raised(&produced)[0];
    assert_eq!(stuck.timestamp, at(301_000), "more than 300 s since the value last moved");
    assert_eq!(cleared(&produced).len(), 1);
    assert_eq!(cleared(&produced)[0].timestamp, at(303_000));
}

#[test]
fn a_value_hovering_at_a_limit_raises_one_alarm_with_deadband_and_off_delay() {
    // Ten minutes of readings alternating 0.01 either side of the 4 bar spike threshold.
    let hovering: Vec<(i64, f64)> =
        (0..600).map(|second| (second * 1000, if second % 2 == 0 { 4.01 } else { 3.99 })).collect();
    let spikes =
        |transitions: &[Transition]| kinds(transitions).into_iter().filter(|kind| *kind == AnomalyKind::Spike).count();
    let chattering = feed(&mut detector("pressure"), &rules_with("pressure", |_| {}), &hovering);
    assert_eq!(spikes(&chattering), 300, "without a deadband every crossing is an episode");
    let calm = rules_with("pressure", |config| {
        config.detection.limits.deadband.insert("pressure".into(), 0.2);
        config.detection.limits.off_delay.insert("pressure".into(), Duration::from_secs(30));
    });
    let produced = feed(&mut detector("pressure"), &calm, &hovering);
    assert_eq!(spikes(&produced), 1);
    assert!(cleared(&produced).is_empty(), "never back below 3.8 bar: still the same episode");
}

#[test]
fn an_episode_clears_only_after_the_off_delay_back_within_the_deadband() {
    let rules = rules_with("pressure", |config| {
        config.detection.limits.deadband.insert("pressure".into(), 0.2);
        config.detection.limits.off_delay.insert("pressure".into(), Duration::from_secs(5));
    });
    let mut detector = detector("pressure");
    let mut readings = vec![(0, 4.5)];
    readings.extend(steady(1, 4, 3.7)); // back for 2 s, then above again: not cleared
    readings.push((4_000, 3.9)); // inside the deadband: the off-delay starts over
    readings.extend(steady(5, 12, 3.7));
    let produced = feed(&mut detector, &rules, &readings);
    assert_eq!(kinds(&produced), [AnomalyKind::Spike]);
    let ends = cleared(&produced);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].timestamp, at(10_000), "5 s after the run back began at 5 s");
}

#[test]
fn a_dropout_is_stamped_from_the_readings_not_the_timer() {
    let rules = rules();
    let mut detector = detector("temperature");
    detector.observe(&rules, at(0), 20.0, at(0)).unwrap();
    assert_eq!(detector.check_silence(&rules, at(10_000)), None, "10 s is not more than 10 s");
    // The timer fired late, at 14.2 s: the dropout is still the last reading's time plus 10 s.
    let dropout = detector.check_silence(&rules, at(14_200)).expect("a dropout");
    assert_eq!(dropout.timestamp, at(10_000));
    assert_eq!(dropout.duration_seconds, Some(10.0));
    assert_eq!(dropout.value, Some(20.0));
    assert_eq!(dropout.message, "Temperature dropout detected: no reading for 10 s (last value 20 °C)");
    assert_eq!(detector.check_silence(&rules, at(60_000)), None, "once per silence");
    let again = ParameterDetector::new(SensorId::new("wtf-pipe-1"), Parameter::new("temperature"));
    let mut again = again;
    again.observe(&rules, at(0), 20.0, at(0)).unwrap();
    assert_eq!(again.check_silence(&rules, at(11_000)), Some(dropout), "another daemon raises the same one");
}

#[test]
fn a_parameter_that_never_reported_raises_no_dropout() {
    let mut detector = detector("flow");
    assert_eq!(detector.silence_deadline(&rules()), None);
    assert_eq!(detector.check_silence(&rules(), at(3_600_000)), None);
}

#[test]
fn the_next_reading_ends_a_dropout() {
    let rules = rules();
    let mut detector = detector("temperature");
    detector.observe(&rules, at(0), 20.0, at(0)).unwrap();
    let dropout = detector.check_silence(&rules, at(11_000)).unwrap();
    let produced = detector.observe(&rules, at(30_000), 21.0, at(30_000)).unwrap();
    let ends = cleared(&produced);
    assert_eq!(ends.len(), 1);
    assert_eq!((ends[0].anomaly_id.clone(), ends[0].kind), (dropout.id, AnomalyKind::Dropout));
    assert_eq!(ends[0].timestamp, at(30_000));
    assert!(detector.silence_deadline(&rules).is_some(), "armed again");
}

#[test]
fn a_reading_that_arrives_after_the_deadline_gets_its_dropout_first() {
    // The timer has not fired yet (a paused process, a busy runtime): the reading's own arrival
    // decides, so the dropout is not lost and comes before the reading's own transitions.
    let rules = rules();
    let mut detector = detector("temperature");
    detector.observe(&rules, at(0), 40.0, at(0)).unwrap();
    let produced = detector.observe(&rules, at(15_000), 50.0, at(15_000)).unwrap();
    assert_eq!(kinds(&produced), [AnomalyKind::Dropout, AnomalyKind::Spike]);
    assert!(matches!(produced[1], Transition::Cleared(Cleared { kind: AnomalyKind::Dropout, .. })));
}

#[test]
fn a_silence_breaks_a_pending_drift_but_a_raised_one_carries_on() {
    let rules = rules();
    // Pending: 8 s above, a dropout, 8 s above again: no drift (not one continuous run).
    let mut pending = detector("temperature");
    feed(&mut pending, &rules, &steady(0, 8, 40.0));
    pending.check_silence(&rules, at(30_000)).unwrap();
    let after: Vec<Transition> = (31..40)
        .flat_map(|second| pending.observe(&rules, at(second * 1000), 40.0, at(second * 1000)).unwrap())
        .collect();
    assert!(!kinds(&after).contains(&AnomalyKind::Drift));
    // Raised: the drift outlives the dropout and is not raised anew when the value is still high.
    let mut raised_drift = detector("temperature");
    assert_eq!(kinds(&feed(&mut raised_drift, &rules, &steady(0, 20, 40.0))), [AnomalyKind::Drift]);
    raised_drift.check_silence(&rules, at(40_000)).unwrap();
    let back: Vec<Transition> = (50..80)
        .flat_map(|second| raised_drift.observe(&rules, at(second * 1000), 40.0, at(second * 1000)).unwrap())
        .collect();
    assert!(!kinds(&back).contains(&AnomalyKind::Drift), "the same episode, not a new one");
    assert!(raised_drift.ongoing().is_some());
}

#[test]
fn go_offline_raises_the_dropout_at_once_with_its_own_message() {
    let rules = rules();
    let mut detector = detector("temperature");
    detector.observe(&rules, at(0), 21.0, at(0)).unwrap();
    let dropout = detector.go_offline(&rules, at(2_000)).expect("raised at once");
    assert_eq!(dropout.timestamp, at(2_000));
    assert!(dropout.message.contains("went offline"), "{}", dropout.message);
    assert_eq!(detector.go_offline(&rules, at(3_000)), None);
    assert!(detector.is_silent());
}

#[test]
fn values_that_are_not_finite_are_refused_and_change_nothing() {
    let rules = rules();
    let mut detector = detector("temperature");
    detector.observe(&rules, at(0), 20.0, at(0)).unwrap();
    let before = detector.clone();
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(detector.observe(&rules, at(1000), value, at(1000)), Err(Rejection::NotFinite));
    }
    assert_eq!(detector, before);
}

#[test]
fn readings_at_or_before_the_last_timestamp_are_refused() {
    let rules = rules();
    let mut detector = detector("temperature");
    detector.observe(&rules, at(5_000), 20.0, at(5_000)).unwrap();
    for stamp in [5_000, 4_000] {
        assert_eq!(
            detector.observe(&rules, at(stamp), 50.0, at(6_000)),
            Err(Rejection::OutOfOrder { last: at(5_000) })
        );
    }
}

#[test]
fn a_sensor_whose_clock_stepped_back_recovers_after_a_dropout() {
    let rules = rules();
    let mut detector = detector("temperature");
    detector.observe(&rules, at(100_000), 20.0, at(0)).unwrap();
    detector.check_silence(&rules, at(11_000)).unwrap();
    assert!(detector.observe(&rules, at(50_000), 21.0, at(12_000)).is_ok(), "the first after a dropout");
    assert!(detector.observe(&rules, at(51_000), 21.0, at(13_000)).is_ok());
}

#[test]
fn rules_changed_between_calls_take_effect_without_losing_episode_state() {
    let mut detector = detector("temperature");
    feed(&mut detector, &rules(), &steady(0, 10, 40.0));
    let stricter = rules_with("temperature", |config| config.detection.drift_duration = Duration::from_secs(5));
    let produced = feed(&mut detector, &stricter, &[(10_000, 40.0)]);
    let drift = raised(&produced)[0];
    assert_eq!(drift.kind, AnomalyKind::Drift);
    assert_eq!(drift.duration_seconds, Some(10.0), "the episode still starts at 0 s");
}

#[test]
fn a_clone_handed_to_a_restarted_actor_raises_nothing_twice() {
    let mut detector = detector("temperature");
    feed(&mut detector, &rules(), &[(0, 50.0)]);
    let mut successor = detector.clone();
    assert!(kinds(&feed(&mut successor, &rules(), &[(1000, 50.0)])).is_empty());
}

#[test]
fn identical_readings_give_identical_anomalies_on_two_detectors() {
    let rules = every_rule(|_| {});
    let readings: Vec<(i64, f64)> =
        (0..400).map(|second| (second * 1000, 2.0 + (second as f64 / 7.0).sin() * 2.5)).collect();
    let first = feed(&mut detector("pressure"), &rules, &readings);
    let second = feed(&mut detector("pressure"), &rules, &readings);
    assert!(!first.is_empty());
    assert_eq!(first, second);
}

#[test]
fn extreme_rules_and_times_do_not_panic() {
    let extremes = [Duration::ZERO, Duration::from_nanos(1), Duration::MAX];
    for drift in extremes {
        for dropout in extremes {
            let rules = every_rule(|config| {
                config.detection.drift_duration = drift;
                config.detection.dropout_timeout = dropout;
                config.detection.rate_window = drift;
            });
            let mut detector = detector("pressure");
            for time in [DateTime::<Utc>::MIN_UTC, at(0), DateTime::<Utc>::MAX_UTC] {
                let _ = detector.observe(&rules, time, 1e308, time);
                let _ = detector.check_silence(&rules, time);
                let _ = detector.silence_deadline(&rules);
                let _ = detector.go_offline(&rules, time);
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// A reading stamped `taken` ms after the previous one's stamp, arriving `delay` ms after the
    /// clock's last tick.
    Reading { taken: i64, delay: i64, value: f64 },
    /// The clock moves on by `ms` and the silence is checked.
    Silence { ms: i64 },
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -1.0..6.0f64,
        2 => prop_oneof![Just(0.5), Just(1.0), Just(3.5), Just(4.0)],
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
        1 => prop_oneof![Just(f64::MAX), Just(f64::MIN), Just(f64::MIN_POSITIVE), any::<f64>()],
    ]
}

fn step() -> impl Strategy<Value = Step> {
    // Mostly plausible steps, some backwards; now and then a jump anywhere in (or out of) range.
    let millis = prop_oneof![6 => -2_000..20_000i64, 1 => any::<i64>()];
    let reading = (millis.clone(), 0..3_000i64, value());
    prop_oneof![
        4 => reading.prop_map(|(taken, delay, value)| Step::Reading { taken, delay, value }),
        1 => millis.prop_map(|ms| Step::Silence { ms }),
    ]
}

fn any_rules() -> impl Strategy<Value = Rules> {
    let duration = prop_oneof![
        4 => (0..30_000u64).prop_map(Duration::from_millis),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::MAX),
    ];
    (duration.clone(), duration.clone(), duration, 0.0..0.5f64).prop_map(|(drift, dropout, off_delay, deadband)| {
        every_rule(|config| {
            config.detection.drift_duration = drift;
            config.detection.dropout_timeout = dropout;
            config.detection.limits.deadband.insert("pressure".into(), deadband);
            config.detection.limits.off_delay.insert("pressure".into(), off_delay);
        })
    })
}

/// Moves a time by `ms`, staying put at the ends of chrono's range.
fn shifted(time: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    TimeDelta::try_milliseconds(ms).and_then(|delta| time.checked_add_signed(delta)).unwrap_or(time)
}

proptest! {
    /// Whatever arrives, each episode raises once and clears once, a clear always names an
    /// anomaly that was raised and not yet cleared, and a refused reading changes nothing.
    #[test]
    fn any_sequence_keeps_one_anomaly_per_episode(
        rules in any_rules(),
        steps in prop::collection::vec(step(), 0..200),
    ) {
        let mut detector = detector("pressure");
        let (mut stamp, mut clock) = (at(0), at(0));
        let mut open: Vec<(AnomalyKind, AnomalyId)> = Vec::new();
        let check = |transitions: Vec<Transition>, open: &mut Vec<(AnomalyKind, AnomalyId)>| -> Result<(), TestCaseError> {
            for transition in transitions {
                match transition {
                    Transition::Raised(anomaly) => {
                        prop_assert!(!open.iter().any(|(kind, _)| *kind == anomaly.kind), "two {} without a clear", anomaly.kind);
                        open.push((anomaly.kind, anomaly.id));
                    }
                    Transition::Cleared(cleared) => {
                        let position = open.iter().position(|(kind, id)| *kind == cleared.kind && *id == cleared.anomaly_id);
                        prop_assert!(position.is_some(), "a clear of nothing open: {:?}", cleared);
                        open.remove(position.unwrap_or_default());
                    }
                }
            }
            Ok(())
        };
        for step in steps {
            match step {
                Step::Reading { taken, delay, value } => {
                    stamp = shifted(stamp, taken);
                    clock = shifted(clock, delay);
                    let before = detector.clone();
                    match detector.observe(&rules, stamp, value, clock) {
                        Err(Rejection::NotFinite) => prop_assert_eq!(&detector, &before),
                        Err(Rejection::OutOfOrder { .. }) => {
                            // Only the silence up to the arrival may have moved on.
                            let mut expected = before.clone();
                            let dropout = expected.check_silence(&rules, clock);
                            prop_assert_eq!(&detector, &expected);
                            check(dropout.into_iter().map(Transition::Raised).collect(), &mut open)?;
                        }
                        Ok(transitions) => check(transitions, &mut open)?,
                    }
                }
                Step::Silence { ms } => {
                    clock = shifted(clock, ms);
                    let deadline = detector.silence_deadline(&rules);
                    if let Some(dropout) = detector.check_silence(&rules, clock) {
                        prop_assert!(deadline.is_some_and(|deadline| clock > deadline));
                        prop_assert_eq!(detector.silence_deadline(&rules), None);
                        check(vec![Transition::Raised(dropout)], &mut open)?;
                    }
                }
            }
        }
    }
}

/// What a restart leaves: the detector as the last checkpoint had it, through JSON as in Redis.
fn restarted(checkpoint: Option<&Checkpoint>, parameter: &str) -> ParameterDetector {
    match checkpoint {
        None => detector(parameter),
        Some(checkpoint) => {
            let json = serde_json::to_string(checkpoint).unwrap();
            let checkpoint = serde_json::from_str(&json).unwrap();
            ParameterDetector::resume(SensorId::new("wtf-pipe-1"), Parameter::new(parameter), checkpoint)
        }
    }
}

#[test]
fn a_checkpoint_is_due_when_an_episode_changes_phase_and_only_then() {
    let rules = rules();
    let mut detector = detector("temperature");
    let mut due = Vec::new();
    for (millis, value) in [(0, 20.0), (1000, 21.0), (2000, 39.0), (3000, 46.0), (4000, 47.0), (5000, 20.0)] {
        detector.observe(&rules, at(millis), value, at(millis)).unwrap();
        due.push(detector.checkpoint_due());
    }
    // Normal, normal, drift pending, spike raised, still raised, both back to idle.
    assert_eq!(due, [false, false, true, true, false, true]);
    assert_eq!(detector.checkpoint(), None, "nothing to keep once every episode is idle");
}

#[test]
fn a_value_still_above_its_limit_after_a_restart_raises_nothing_and_clears_the_same_anomaly() {
    let rules = rules();
    let mut before = detector("temperature");
    let spike = raised(&feed(&mut before, &rules, &[(0, 20.0), (1000, 46.0)]))[0].clone();
    assert!(before.checkpoint_due());
    let mut after = restarted(before.checkpoint().as_ref(), "temperature");
    assert!(!after.checkpoint_due(), "a resumed detector starts where its checkpoint was");
    let transitions = feed(&mut after, &rules, &[(2000, 46.5), (3000, 47.0)]);
    assert_eq!(kinds(&transitions), [], "the spike is the one raised before the restart");
    let transitions = feed(&mut after, &rules, &[(4000, 20.0)]);
    assert_eq!(cleared(&transitions).iter().map(|c| &c.anomaly_id).collect::<Vec<_>>(), [&spike.id]);
}

#[test]
fn a_drift_in_progress_keeps_its_start_across_a_restart() {
    let rules = rules();
    let mut reference = detector("temperature");
    let mut before = detector("temperature");
    let start = steady(0, 10, 39.0);
    feed(&mut reference, &rules, &start);
    feed(&mut before, &rules, &start);
    let mut after = restarted(before.checkpoint().as_ref(), "temperature");
    let rest = steady(10, 20, 39.0);
    let expected = feed(&mut reference, &rules, &rest);
    let drift = raised(&expected)[0].clone();
    assert_eq!(drift.duration_seconds, Some(16.0), "raised 16 s after its first reading at 0 s");
    assert_eq!(feed(&mut after, &rules, &rest), expected, "same drift, same id, same duration");
}

#[test]
fn a_raised_dropout_survives_a_restart_and_the_next_reading_clears_it() {
    let rules = rules();
    let mut before = detector("temperature");
    feed(&mut before, &rules, &[(0, 20.0)]);
    let dropout = before.check_silence(&rules, at(11_000)).unwrap();
    let mut after = restarted(before.checkpoint().as_ref(), "temperature");
    assert!(after.is_silent());
    assert_eq!(after.ongoing(), Some(Ongoing::Silent { since: at(0) }));
    assert_eq!(after.check_silence(&rules, at(60_000)), None, "raised once per silence, restart or not");
    let transitions = feed(&mut after, &rules, &[(61_000, 20.0)]);
    assert_eq!(cleared(&transitions).iter().map(|c| &c.anomaly_id).collect::<Vec<_>>(), [&dropout.id]);
}

proptest! {
    /// A restart at any point, resuming from the last checkpoint taken, raises and clears the
    /// same anomalies as a detector that never stopped (level rules: only their peaks may differ).
    #[test]
    fn a_restart_anywhere_raises_and_clears_what_no_restart_would(
        values in prop::collection::vec(prop_oneof![Just(20.0), Just(39.0), Just(46.0)], 1..80),
        restart_at in 0usize..80,
    ) {
        let rules = rules();
        let readings: Vec<(i64, f64)> =
            values.iter().enumerate().map(|(index, value)| (index as i64 * 1000, *value)).collect();
        let restart_at = restart_at.min(readings.len());
        let mut reference = detector("temperature");
        let mut before = detector("temperature");
        let mut last_checkpoint = None;
        for reading in &readings[..restart_at] {
            feed(&mut reference, &rules, std::slice::from_ref(reading));
            feed(&mut before, &rules, std::slice::from_ref(reading));
            if before.checkpoint_due() {
                last_checkpoint = before.checkpoint();
            }
        }
        let mut after = restarted(last_checkpoint.as_ref(), "temperature");
        let identities = |transitions: Vec<Transition>| -> Vec<(AnomalyKind, AnomalyId, bool)> {
            transitions
                .into_iter()
                .map(|transition| match transition {
                    Transition::Raised(anomaly) => (anomaly.kind, anomaly.id, true),
                    Transition::Cleared(cleared) => (cleared.kind, cleared.anomaly_id, false),
                })
                .collect()
        };
        let expected = identities(feed(&mut reference, &rules, &readings[restart_at..]));
        prop_assert_eq!(identities(feed(&mut after, &rules, &readings[restart_at..])), expected);
    }
}
