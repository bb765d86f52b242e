use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

/// 2025-05-19T10:15:00Z plus `millis`.
fn at(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_747_649_700, 0).unwrap() + TimeDelta::milliseconds(millis)
}

/// Temperature defaults: spike above 45, drift above 38 for more than 15 s, dropout after 10 s.
fn rules() -> Rules {
    Rules::for_parameter(&DetectionConfig::default(), Parameter::Temperature)
}

fn detector() -> ParameterDetector {
    ParameterDetector::new(SensorId::new("wtf-pipe-1"), Parameter::Temperature, at(0))
}

/// Feeds readings that arrive the moment they are taken; returns everything raised.
fn feed(detector: &mut ParameterDetector, rules: &Rules, readings: &[(i64, f64)]) -> Vec<Anomaly> {
    readings
        .iter()
        .flat_map(|&(millis, value)| detector.observe(rules, at(millis), value, at(millis)).unwrap())
        .collect()
}

fn kinds(anomalies: &[Anomaly]) -> Vec<AnomalyKind> {
    anomalies.iter().map(|anomaly| anomaly.kind).collect()
}

/// One reading per second from `from` (inclusive) to `to` (exclusive) seconds, all at `value`.
fn steady(from: i64, to: i64, value: f64) -> Vec<(i64, f64)> {
    (from..to).map(|second| (second * 1000, value)).collect()
}

#[test]
fn rules_for_a_parameter_come_from_the_detection_config() {
    let rules = Rules::for_parameter(&DetectionConfig::default(), Parameter::Pressure);
    assert_eq!(
        rules,
        Rules {
            spike_threshold: 4.0,
            drift_threshold: 3.5,
            drift_duration: Duration::from_secs(15),
            dropout_timeout: Duration::from_secs(10),
        }
    );
}

#[test]
fn a_spike_fires_only_strictly_above_its_threshold() {
    for (value, fires) in [(44.0, false), (45.0, false), (45.000_001, true), (46.0, true), (f64::MAX, true)] {
        let raised = detector().observe(&rules(), at(0), value, at(0)).unwrap();
        assert_eq!(raised.spike.is_some(), fires, "value {value}");
    }
}

#[test]
fn a_drift_fires_only_strictly_above_its_threshold() {
    for (value, fires) in [(37.0, false), (38.0, false), (38.000_001, true), (44.0, true)] {
        let raised = feed(&mut detector(), &rules(), &steady(0, 20, value));
        assert_eq!(raised.iter().any(|anomaly| anomaly.kind == AnomalyKind::Drift), fires, "value {value}");
    }
}

#[test]
fn a_spike_fires_once_for_a_long_run_above() {
    let raised = feed(&mut detector(), &rules(), &steady(0, 5, 50.0));
    assert_eq!(kinds(&raised), [AnomalyKind::Spike]);
    assert_eq!(raised[0].timestamp, at(0));
}

#[test]
fn a_spike_fires_again_after_a_reading_at_its_threshold() {
    let raised = feed(&mut detector(), &rules(), &[(0, 50.0), (1000, 45.0), (2000, 50.0), (3000, 50.0)]);
    assert_eq!(kinds(&raised), [AnomalyKind::Spike, AnomalyKind::Spike]);
    assert_eq!(raised[1].timestamp, at(2000));
}

#[test]
fn a_dropout_does_not_rearm_a_spike() {
    let mut detector = detector();
    assert_eq!(feed(&mut detector, &rules(), &[(0, 50.0)]).len(), 1);
    assert!(detector.check_silence(&rules(), at(10_001)).is_some());
    let raised = detector.observe(&rules(), at(12_000), 50.0, at(12_000)).unwrap();
    assert!(raised.is_empty());
}

#[test]
fn a_drift_needs_strictly_longer_than_its_duration_above() {
    for (millis, fires) in [(14_999, false), (15_000, false), (15_001, true)] {
        let raised = feed(&mut detector(), &rules(), &[(0, 40.0), (millis, 40.0)]);
        assert_eq!(!raised.is_empty(), fires, "after {millis} ms");
    }
}

#[test]
fn a_long_drift_fires_once() {
    let raised = feed(&mut detector(), &rules(), &steady(0, 600, 40.0));
    assert_eq!(kinds(&raised), [AnomalyKind::Drift]);
    assert_eq!(raised[0].timestamp, at(16_000));
}

#[test]
fn a_drift_rearms_after_a_reading_at_its_threshold() {
    let mut readings = steady(0, 20, 40.0);
    readings.push((20_000, 38.0));
    readings.extend(steady(21, 40, 40.0));
    let raised = feed(&mut detector(), &rules(), &readings);
    assert_eq!(kinds(&raised), [AnomalyKind::Drift, AnomalyKind::Drift]);
    // The second episode starts at 21 s, so it needs a reading after 36 s.
    assert_eq!(raised[1].timestamp, at(37_000));
}

#[test]
fn a_spike_reading_continues_a_drift_episode() {
    let raised = feed(&mut detector(), &rules(), &[(0, 40.0), (8_000, 50.0), (16_000, 40.0)]);
    assert_eq!(kinds(&raised), [AnomalyKind::Spike, AnomalyKind::Drift]);
    assert_eq!(raised[1].duration_seconds, Some(16.0));
}

#[test]
fn one_reading_can_raise_a_spike_and_a_drift_in_that_order() {
    let mut detector = detector();
    feed(&mut detector, &rules(), &[(0, 40.0)]);
    let raised = detector.observe(&rules(), at(16_000), 50.0, at(16_000)).unwrap();
    assert_eq!(kinds(&raised.into_iter().collect::<Vec<_>>()), [AnomalyKind::Spike, AnomalyKind::Drift]);
}

#[test]
fn drift_time_is_the_readings_timestamp_not_the_arrival_clock() {
    // Twenty seconds of readings delivered in one late batch still make a drift…
    let mut batched = detector();
    let raised: Vec<_> =
        (0..20).flat_map(|second| batched.observe(&rules(), at(second * 1000), 40.0, at(60_000)).unwrap()).collect();
    assert_eq!(kinds(&raised), [AnomalyKind::Drift]);
    // …and readings stamped a second apart do not, however slowly they arrive.
    let mut slow = detector();
    let raised: Vec<_> =
        (0..5).flat_map(|step| slow.observe(&rules(), at(step * 1000), 40.0, at(step * 9_000)).unwrap()).collect();
    assert!(raised.is_empty());
}

#[test]
fn a_dropout_fires_once_after_just_over_the_timeout_and_not_at_it() {
    let mut detector = detector();
    feed(&mut detector, &rules(), &[(0, 20.0)]);
    assert_eq!(detector.check_silence(&rules(), at(5_000)), None);
    assert_eq!(detector.check_silence(&rules(), at(10_000)), None);
    assert!(detector.check_silence(&rules(), at(10_001)).is_some());
    assert_eq!(detector.check_silence(&rules(), at(20_000)), None);
    assert_eq!(detector.check_silence(&rules(), at(3_600_000)), None);
}

#[test]
fn a_dropout_rearms_on_the_next_reading() {
    let mut detector = detector();
    feed(&mut detector, &rules(), &[(0, 20.0)]);
    assert!(detector.check_silence(&rules(), at(11_000)).is_some());
    feed(&mut detector, &rules(), &[(12_000, 20.0)]);
    assert_eq!(detector.check_silence(&rules(), at(22_000)), None);
    assert!(detector.check_silence(&rules(), at(22_001)).is_some());
}

#[test]
fn a_dropout_resets_the_drift_timer() {
    let mut detector = detector();
    feed(&mut detector, &rules(), &steady(0, 10, 40.0));
    assert!(detector.check_silence(&rules(), at(19_500)).is_some());
    // 20 s after the first reading above, but only 10 s into the episode after the gap.
    assert!(feed(&mut detector, &rules(), &steady(20, 36, 40.0)).is_empty());
    assert_eq!(kinds(&feed(&mut detector, &rules(), &[(36_000, 40.0)])), [AnomalyKind::Drift]);
}

#[test]
fn silence_before_any_reading_counts_from_the_start() {
    let mut detector = detector();
    assert_eq!(detector.silence_deadline(&rules()), Some(at(10_000)));
    assert_eq!(detector.check_silence(&rules(), at(10_000)), None);
    let dropout = detector.check_silence(&rules(), at(10_500)).unwrap();
    assert_eq!(dropout.value, None);
    assert_eq!(dropout.duration_seconds, Some(10.5));
}

#[test]
fn a_clock_that_went_backwards_raises_no_dropout() {
    let mut detector = detector();
    feed(&mut detector, &rules(), &[(60_000, 20.0)]);
    assert_eq!(detector.check_silence(&rules(), at(0)), None);
    assert_eq!(detector.check_silence(&rules(), DateTime::<Utc>::MIN_UTC), None);
}

#[test]
fn values_that_are_not_finite_are_refused_and_raise_nothing() {
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut detector = detector();
        feed(&mut detector, &rules(), &[(0, 50.0), (1_000, 40.0)]);
        let before = detector.clone();
        assert_eq!(detector.observe(&rules(), at(20_000), value, at(20_000)), Err(Rejection::NotFinite));
        assert_eq!(detector, before, "value {value}");
    }
}

#[test]
fn readings_at_or_before_the_last_timestamp_are_refused() {
    for millis in [5_000, 4_999, -1_000_000] {
        let mut detector = detector();
        feed(&mut detector, &rules(), &[(0, 40.0), (5_000, 40.0)]);
        let before = detector.clone();
        let refused = detector.observe(&rules(), at(millis), 50.0, at(20_000));
        assert_eq!(refused, Err(Rejection::OutOfOrder { last: at(5_000) }), "at {millis} ms");
        assert_eq!(detector, before);
    }
}

#[test]
fn refused_readings_do_not_refresh_the_silence_clock() {
    let mut detector = detector();
    feed(&mut detector, &rules(), &[(5_000, 20.0)]);
    for second in 6..=15 {
        let _ = detector.observe(&rules(), at(second * 1000), f64::NAN, at(second * 1000));
        let _ = detector.observe(&rules(), at(1_000), 20.0, at(second * 1000));
    }
    assert_eq!(detector.last_arrival(), Some(at(5_000)));
    let dropout = detector.check_silence(&rules(), at(15_001)).unwrap();
    assert_eq!(dropout.value, Some(20.0));
}

#[test]
fn a_sensor_whose_clock_stepped_back_recovers_after_a_dropout() {
    let mut detector = detector();
    feed(&mut detector, &rules(), &[(3_600_000, 20.0)]);
    // Its clock now says an hour earlier: refused, so silent, so a dropout…
    assert!(detector.observe(&rules(), at(1_000), 20.0, at(3_601_000)).is_err());
    assert!(detector.check_silence(&rules(), at(3_611_000)).is_some());
    // …after which its readings are accepted again, and only increasing ones from then on.
    assert!(detector.observe(&rules(), at(12_000), 50.0, at(3_612_000)).unwrap().spike.is_some());
    assert!(detector.observe(&rules(), at(13_000), 20.0, at(3_613_000)).is_ok());
    assert!(detector.observe(&rules(), at(12_500), 20.0, at(3_613_500)).is_err());
}

#[test]
fn a_spike_carries_its_reading_and_threshold() {
    let spike = detector().observe(&rules(), at(2_000), 46.5, at(2_300)).unwrap().spike.unwrap();
    assert_eq!(spike.kind, AnomalyKind::Spike);
    assert_eq!(spike.timestamp, at(2_000));
    assert_eq!(spike.sensor_id.as_str(), "wtf-pipe-1");
    assert_eq!(spike.parameter, Parameter::Temperature);
    assert_eq!(spike.value, Some(46.5));
    assert_eq!(spike.threshold, 45.0);
    assert_eq!(spike.duration_seconds, None);
}

#[test]
fn a_drift_carries_how_long_the_value_had_been_above() {
    let raised = feed(&mut detector(), &rules(), &[(1_000, 39.0), (9_000, 40.0), (16_250, 41.5)]);
    let drift = &raised[0];
    assert_eq!(drift.kind, AnomalyKind::Drift);
    assert_eq!(drift.timestamp, at(16_250));
    assert_eq!(drift.value, Some(41.5));
    assert_eq!(drift.threshold, 38.0);
    assert_eq!(drift.duration_seconds, Some(15.25));
}

#[test]
fn a_dropout_carries_the_clock_the_last_value_and_the_silence() {
    let mut detector = detector();
    // Taken at 1 s, arrived at 2 s: silence runs from the arrival.
    detector.observe(&rules(), at(1_000), 21.5, at(2_000)).unwrap();
    let dropout = detector.check_silence(&rules(), at(14_500)).unwrap();
    assert_eq!(dropout.kind, AnomalyKind::Dropout);
    assert_eq!(dropout.timestamp, at(14_500));
    assert_eq!(dropout.value, Some(21.5));
    assert_eq!(dropout.threshold, 10.0);
    assert_eq!(dropout.duration_seconds, Some(12.5));
}

#[test]
fn the_silence_deadline_follows_the_last_arrival_and_is_none_while_raised() {
    let mut detector = detector();
    detector.observe(&rules(), at(0), 20.0, at(3_000)).unwrap();
    assert_eq!(detector.silence_deadline(&rules()), Some(at(13_000)));
    detector.check_silence(&rules(), at(13_001)).unwrap();
    assert_eq!(detector.silence_deadline(&rules()), None);
    detector.observe(&rules(), at(14_000), 20.0, at(14_000)).unwrap();
    assert_eq!(detector.silence_deadline(&rules()), Some(at(24_000)));
}

#[test]
fn ongoing_reports_a_drift_from_its_first_reading_and_a_raised_silence() {
    let mut detector = detector();
    assert_eq!(detector.ongoing(), None);
    feed(&mut detector, &rules(), &[(0, 30.0), (1_000, 39.0), (2_000, 40.0)]);
    assert_eq!(detector.ongoing(), Some(Ongoing::Drifting { since: at(1_000), value: 40.0 }));
    assert!(detector.check_silence(&rules(), at(12_001)).is_some());
    assert_eq!(detector.ongoing(), Some(Ongoing::Silent { since: at(2_000) }));
    feed(&mut detector, &rules(), &[(13_000, 30.0)]);
    assert_eq!(detector.ongoing(), None);
}

#[test]
fn rules_changed_between_calls_take_effect_without_losing_episode_state() {
    let mut detector = detector();
    feed(&mut detector, &rules(), &[(0, 40.0), (1_000, 46.0), (5_000, 46.0)]);
    let shorter = Rules { drift_duration: Duration::from_secs(5), ..rules() };
    // The drift timer still counts from 0 s, under the new duration.
    let raised = feed(&mut detector, &shorter, &[(5_500, 46.0)]);
    assert_eq!(kinds(&raised), [AnomalyKind::Drift]);
    assert_eq!(raised[0].duration_seconds, Some(5.5));
    // The spike raised at 1 s is still raised: 46 again is the same episode.
    assert!(feed(&mut detector, &shorter, &[(6_000, 46.0)]).is_empty());
    // A higher threshold makes 46 "at or below", which re-arms it.
    let higher = Rules { spike_threshold: 47.0, ..shorter };
    assert!(feed(&mut detector, &higher, &[(7_000, 46.0)]).is_empty());
    assert_eq!(kinds(&feed(&mut detector, &shorter, &[(8_000, 46.0)])), [AnomalyKind::Spike]);
    // A new timeout moves the deadline at once.
    let patient = Rules { dropout_timeout: Duration::from_secs(30), ..shorter };
    assert_eq!(detector.silence_deadline(&patient), Some(at(38_000)));
}

#[test]
fn a_clone_handed_to_a_restarted_actor_raises_nothing_twice() {
    let mut original = detector();
    assert_eq!(feed(&mut original, &rules(), &steady(0, 17, 46.0)).len(), 2);
    let mut restarted = original.clone();
    assert!(feed(&mut restarted, &rules(), &steady(17, 30, 46.0)).is_empty());
    assert_eq!(restarted.sensor_id(), original.sensor_id());
    assert_eq!(restarted.parameter(), Parameter::Temperature);
}

#[test]
fn extreme_rules_and_times_do_not_panic() {
    let zero = Rules { drift_duration: Duration::ZERO, dropout_timeout: Duration::ZERO, ..rules() };
    let forever = Rules { drift_duration: Duration::MAX, dropout_timeout: Duration::MAX, ..rules() };
    let nan = Rules { spike_threshold: f64::NAN, drift_threshold: f64::NAN, ..rules() };
    let times = [DateTime::<Utc>::MIN_UTC, at(0), DateTime::<Utc>::MAX_UTC];
    for rules in [zero, forever, nan] {
        let mut detector = ParameterDetector::new("s".into(), Parameter::Flow, DateTime::<Utc>::MIN_UTC);
        for timestamp in times {
            for now in times {
                let _ = detector.observe(&rules, timestamp, f64::MAX, now);
                let _ = detector.check_silence(&rules, now);
                let _ = detector.silence_deadline(&rules);
                let _ = detector.observe(&rules, timestamp, f64::MIN, now);
            }
        }
    }
    // With no duration at all, the second instant above is a drift and any silence a dropout.
    let mut detector = detector();
    assert_eq!(kinds(&feed(&mut detector, &zero, &[(0, 40.0), (1, 40.0)])), [AnomalyKind::Drift]);
    assert!(detector.check_silence(&zero, at(2)).is_some());
    // Thresholds that are not numbers never fire; a timeout of forever has no deadline.
    assert!(feed(&mut detector, &nan, &steady(1, 30, 1e300)).is_empty());
    assert_eq!(detector.silence_deadline(&forever), None);
}

#[test]
fn raised_iterates_the_spike_before_the_drift() {
    assert!(Raised::default().is_empty());
    assert_eq!(Raised::default().into_iter().count(), 0);
    let anomaly = |kind| Anomaly::new(kind, at(0), "s".into(), Parameter::Flow, Some(1.0), 0.0, None);
    let raised = Raised { spike: Some(anomaly(AnomalyKind::Spike)), drift: Some(anomaly(AnomalyKind::Drift)) };
    assert!(!raised.is_empty());
    assert_eq!(kinds(&raised.into_iter().collect::<Vec<_>>()), [AnomalyKind::Spike, AnomalyKind::Drift]);
    let drift_only = Raised { spike: None, drift: Some(anomaly(AnomalyKind::Drift)) };
    assert_eq!(kinds(&drift_only.into_iter().collect::<Vec<_>>()), [AnomalyKind::Drift]);
}

/// One step of a property-test run.
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
        8 => 30.0..50.0f64,
        2 => prop_oneof![Just(38.0), Just(45.0)],
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
    (40.0..48.0f64, 35.0..42.0f64, duration.clone(), duration).prop_map(
        |(spike_threshold, drift_threshold, drift_duration, dropout_timeout)| Rules {
            spike_threshold,
            drift_threshold,
            drift_duration,
            dropout_timeout,
        },
    )
}

/// Moves a time by `ms`, staying put at the ends of chrono's range.
fn shifted(time: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    TimeDelta::try_milliseconds(ms).and_then(|delta| time.checked_add_signed(delta)).unwrap_or(time)
}

proptest! {
    #[test]
    fn any_sequence_keeps_one_anomaly_per_episode(
        rules in any_rules(),
        steps in prop::collection::vec(step(), 0..200),
    ) {
        let mut detector = detector();
        let (mut stamp, mut clock) = (at(0), at(0));
        // Whether each kind may fire again: armed at the start, disarmed when raised.
        let (mut spike_armed, mut drift_armed, mut dropout_armed) = (true, true, true);
        for step in steps {
            match step {
                Step::Reading { taken, delay, value } => {
                    stamp = shifted(stamp, taken);
                    clock = shifted(clock, delay);
                    let before = detector.clone();
                    match detector.observe(&rules, stamp, value, clock) {
                        Err(_) => prop_assert_eq!(&detector, &before),
                        Ok(raised) => {
                            prop_assert!(value.is_finite());
                            dropout_armed = true;
                            if let Some(spike) = raised.spike {
                                prop_assert!(spike_armed, "two spikes without a re-arm");
                                prop_assert!(spike.value.is_some_and(|value| value > spike.threshold));
                                spike_armed = false;
                            } else if value <= rules.spike_threshold {
                                spike_armed = true;
                            }
                            if let Some(drift) = raised.drift {
                                prop_assert!(drift_armed, "two drifts without a re-arm");
                                prop_assert!(drift.value.is_some_and(|value| value > drift.threshold));
                                let limit = saturating_delta(rules.drift_duration).as_seconds_f64();
                                prop_assert!(drift.duration_seconds.is_some_and(|seconds| seconds > limit));
                                drift_armed = false;
                            } else if value <= rules.drift_threshold {
                                drift_armed = true;
                            }
                        }
                    }
                }
                Step::Silence { ms } => {
                    clock = shifted(clock, ms);
                    let deadline = detector.silence_deadline(&rules);
                    if let Some(dropout) = detector.check_silence(&rules, clock) {
                        prop_assert!(dropout_armed, "two dropouts without a reading between");
                        prop_assert_eq!(dropout.timestamp, clock);
                        let limit = saturating_delta(rules.dropout_timeout).as_seconds_f64();
                        prop_assert!(dropout.duration_seconds.is_some_and(|seconds| seconds > limit));
                        prop_assert!(deadline.is_some_and(|deadline| clock > deadline));
                        prop_assert_eq!(detector.silence_deadline(&rules), None);
                        dropout_armed = false;
                        drift_armed = true;
                    }
                }
            }
        }
    }
}
