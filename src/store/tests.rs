use chrono::{TimeDelta, TimeZone};

use super::*;
use crate::config::Config;

fn opening() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap()
}

fn store_with(edit: impl FnOnce(&mut Config)) -> Store {
    let mut config = Config::default();
    edit(&mut config);
    Store::new(config.validate().expect("valid"), opening())
}

fn spike(sensor: &str, parameter: Parameter, at: DateTime<Utc>) -> Anomaly {
    Anomaly::new(AnomalyKind::Spike, at, sensor.into(), parameter, Some(99.0), 4.0, None)
}

fn minutes(count: i64) -> TimeDelta {
    TimeDelta::minutes(count)
}

#[test]
fn anomalies_come_back_newest_first_and_filtered() {
    let store = store_with(|_| {});
    for minute in 0..10 {
        let sensor = if minute % 2 == 0 { "wtf-pipe-1" } else { "wtf-pipe-2" };
        store.record_anomaly(spike(sensor, Parameter::Flow, opening() + minutes(minute)), opening() + minutes(minute));
    }
    let newest = store.anomalies(&AnomalyQuery::newest(3));
    let times: Vec<_> = newest.iter().map(|anomaly| anomaly.timestamp).collect();
    assert_eq!(times, [opening() + minutes(9), opening() + minutes(8), opening() + minutes(7)]);

    let query = AnomalyQuery {
        limit: 100,
        sensor_id: Some("wtf-pipe-2".into()),
        since: Some(opening() + minutes(4)),
        ..AnomalyQuery::default()
    };
    let filtered = store.anomalies(&query);
    assert_eq!(filtered.len(), 3, "minutes 5, 7 and 9");
    assert!(filtered.iter().all(|anomaly| anomaly.sensor_id.as_str() == "wtf-pipe-2"));
}

#[test]
fn each_anomaly_expires_by_its_own_age() {
    let store = store_with(|_| {});
    store.record_anomaly(spike("wtf-pipe-1", Parameter::Flow, opening()), opening());
    store.record_anomaly(spike("wtf-pipe-1", Parameter::Flow, opening() + minutes(60)), opening() + minutes(60));
    store.expire(opening() + TimeDelta::hours(24) + minutes(1));
    let kept = store.anomalies(&AnomalyQuery::newest(10));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].timestamp, opening() + minutes(60));
    assert_eq!(store.anomaly_count_24h(opening() + TimeDelta::hours(24) + minutes(1)), 1);
}

#[test]
fn the_24_hour_count_is_not_capped_by_the_memory_bound() {
    let store = store_with(|config| config.store.max_anomalies = 10);
    for second in 0..250 {
        let at = opening() + TimeDelta::seconds(second);
        store.record_anomaly(spike("wtf-pipe-1", Parameter::Pressure, at), at);
    }
    let now = opening() + TimeDelta::seconds(250);
    assert_eq!(store.anomaly_count_24h(now), 250);
    assert_eq!(store.anomaly_holdings(), (10, 240));
}

#[test]
fn metrics_describe_the_newest_hundred() {
    let store = store_with(|_| {});
    for second in 0..150 {
        let parameter = if second < 50 { Parameter::Temperature } else { Parameter::Flow };
        let at = opening() + TimeDelta::seconds(second);
        store.record_anomaly(spike("wtf-pipe-1", parameter, at), at);
    }
    let metrics = store.metrics();
    assert_eq!(metrics.total_anomalies, 100);
    assert_eq!(metrics.anomalies_by_parameter[&Parameter::Flow], 100);
    assert_eq!(metrics.anomalies_by_parameter[&Parameter::Temperature], 0);
    assert_eq!(metrics.anomalies_by_type[&AnomalyKind::Spike], 100);
    assert_eq!(metrics.anomalies_by_type[&AnomalyKind::Drift], 0);
    assert_eq!(metrics.last_update, Some(opening() + TimeDelta::seconds(149)));
}

#[test]
fn followers_resume_after_their_cursor_and_learn_what_they_missed() {
    let store = store_with(|config| config.store.max_anomalies = 5);
    for second in 0..3 {
        let at = opening() + TimeDelta::seconds(second);
        store.record_anomaly(spike("wtf-pipe-1", Parameter::Flow, at), at);
    }
    let first = store.anomalies_after(0, 2);
    assert_eq!(first.anomalies.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(first.missed, 0);
    for second in 3..10 {
        let at = opening() + TimeDelta::seconds(second);
        store.record_anomaly(spike("wtf-pipe-1", Parameter::Flow, at), at);
    }
    let behind = store.anomalies_after(2, 100);
    assert_eq!(behind.missed, 3, "3, 4 and 5 were evicted before being followed");
    assert_eq!(behind.anomalies.first().map(|(seq, _)| *seq), Some(6));
    assert_eq!(store.anomaly_seq(), 10);
}

#[test]
fn restoring_twice_does_not_duplicate_and_skips_the_expired() {
    let store = store_with(|_| {});
    let now = opening() + TimeDelta::hours(30);
    let restored = vec![
        spike("wtf-pipe-1", Parameter::Flow, opening()),
        spike("wtf-pipe-1", Parameter::Flow, now - minutes(5)),
        spike("wtf-pipe-2", Parameter::Flow, now - minutes(3)),
    ];
    assert_eq!(store.restore_anomalies(restored.clone(), now), 2);
    assert_eq!(store.restore_anomalies(restored, now), 0);
    assert_eq!(store.anomalies(&AnomalyQuery::newest(10)).len(), 2);
    assert_eq!(store.anomaly_count_24h(now), 2);
}

#[test]
fn summaries_are_bounded_and_newest_first() {
    let store = store_with(|config| config.store.max_summaries = 2);
    assert!(store.latest_summary().is_none());
    for minute in 0..3 {
        store.record_summary(Summary {
            summary: format!("summary {minute}"),
            timestamp: opening() + minutes(minute),
            generated_by: crate::domain::SummaryAuthor::Fallback,
            model: Some("llama3.2:1b".into()),
            anomaly_count: 0,
            window_start: opening(),
            window_end: opening() + minutes(minute),
        });
    }
    let texts: Vec<_> = store.summaries(10).iter().map(|summary| summary.summary.clone()).collect();
    assert_eq!(texts, ["summary 2", "summary 1"]);
    assert_eq!(store.latest_summary().unwrap().summary, "summary 2");
}

#[test]
fn a_detectors_state_outlives_its_actor_and_goes_with_its_sensor() {
    let store = store_with(|_| {});
    let sensor = SensorId::new("wtf-pipe-1");
    let slot = store.detector_slot(&sensor, Parameter::Flow, opening());
    assert!(Arc::ptr_eq(&slot, &store.detector_slot(&sensor, Parameter::Flow, opening())));
    store.remove_sensor(&sensor);
    assert!(!Arc::ptr_eq(&slot, &store.detector_slot(&sensor, Parameter::Flow, opening())));
}
