use chrono::{TimeDelta, TimeZone};

use super::*;
use crate::config::Config;
use crate::domain::{Anomaly, AnomalyKind, EpisodeKey, Parameter, Wording};
use crate::journal::Event;

fn opening() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap()
}

fn store_with(edit: impl FnOnce(&mut Config)) -> Store {
    let mut config = Config::default();
    edit(&mut config);
    Store::new(config.validate().expect("valid"), Clock::starting_at(opening()))
}

fn spike(sensor: &str, parameter: &str, at: DateTime<Utc>) -> Anomaly {
    let episode =
        EpisodeKey { sensor_id: sensor.into(), parameter: parameter.into(), kind: AnomalyKind::Spike, started: at };
    Anomaly::new(&episode, at, Some(99.0), 4.0, None, &Wording::new("Flow", "L/min"))
}

fn record(store: &Store, anomaly: Anomaly) -> u64 {
    let at = anomaly.timestamp;
    store.record(Transition::Raised(anomaly), at)
}

fn minutes(count: i64) -> TimeDelta {
    TimeDelta::minutes(count)
}

#[test]
fn anomalies_recorded_out_of_time_order_are_served_newest_first_by_time() {
    // Two detectors side by side: the later reading's spike is recorded first.
    let store = store_with(|_| {});
    record(&store, spike("wtf-pipe-1", "flow", opening() + TimeDelta::milliseconds(1_002)));
    record(&store, spike("wtf-pipe-2", "flow", opening() + TimeDelta::milliseconds(1_001)));
    record(&store, spike("wtf-pipe-3", "flow", opening() + TimeDelta::milliseconds(1_003)));
    let times: Vec<_> =
        store.anomalies.query(&AnomalyQuery::newest(3)).iter().map(|anomaly| anomaly.timestamp).collect();
    let expected: Vec<_> = [1_003, 1_002, 1_001].map(|ms| opening() + TimeDelta::milliseconds(ms)).into();
    assert_eq!(times, expected);
}

#[test]
fn anomalies_come_back_newest_first_and_filtered() {
    let store = store_with(|_| {});
    for minute in 0..10 {
        let sensor = if minute % 2 == 0 { "wtf-pipe-1" } else { "wtf-pipe-2" };
        record(&store, spike(sensor, "flow", opening() + minutes(minute)));
    }
    let newest = store.anomalies.query(&AnomalyQuery::newest(3));
    let times: Vec<_> = newest.iter().map(|anomaly| anomaly.timestamp).collect();
    assert_eq!(times, [opening() + minutes(9), opening() + minutes(8), opening() + minutes(7)]);

    let query = AnomalyQuery {
        limit: 100,
        sensor_id: Some("wtf-pipe-2".into()),
        since: Some(opening() + minutes(4)),
        ..AnomalyQuery::default()
    };
    let filtered = store.anomalies.query(&query);
    assert_eq!(filtered.len(), 3, "minutes 5, 7 and 9");
    assert!(filtered.iter().all(|anomaly| anomaly.sensor_id.as_str() == "wtf-pipe-2"));
    assert!(store.anomalies.holds_sensor("wtf-pipe-2"));
    assert!(!store.anomalies.holds_sensor("wtf-pipe-3"));
}

#[test]
fn a_query_over_many_chunks_sees_every_anomaly_in_order() {
    let store = store_with(|_| {});
    for second in 0..1000 {
        record(&store, spike("wtf-pipe-1", "flow", opening() + TimeDelta::seconds(second)));
    }
    let all = store.anomalies.query(&AnomalyQuery::newest(1000));
    assert_eq!(all.len(), 1000);
    assert!(all.windows(2).all(|pair| pair[0].timestamp > pair[1].timestamp));
}

#[test]
fn each_anomaly_expires_by_its_own_age() {
    let store = store_with(|_| {});
    record(&store, spike("wtf-pipe-1", "flow", opening()));
    record(&store, spike("wtf-pipe-1", "flow", opening() + minutes(60)));
    store.expire(opening() + TimeDelta::hours(24) + minutes(1));
    let kept = store.anomalies.query(&AnomalyQuery::newest(10));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].timestamp, opening() + minutes(60));
    assert_eq!(store.anomalies.count_24h(opening() + TimeDelta::hours(24) + minutes(1)), 1);
}

#[test]
fn the_24_hour_count_is_not_capped_by_the_memory_bound() {
    let store = store_with(|config| config.store.max_anomalies = 10);
    for second in 0..600 {
        record(&store, spike("wtf-pipe-1", "pressure", opening() + TimeDelta::seconds(second)));
    }
    let now = opening() + TimeDelta::seconds(600);
    assert_eq!(store.anomalies.count_24h(now), 600);
    assert_eq!(store.anomalies.holdings(), (10, 590));
    assert_eq!(store.anomalies.query(&AnomalyQuery::newest(100)).len(), 10);
}

#[test]
fn metrics_describe_the_newest_hundred_and_every_configured_parameter() {
    let store = store_with(|config| {
        config.parameters.insert(
            "turbidity".into(),
            crate::config::ParameterSpec { unit: "NTU".into(), normal: [0.0, 1.0], label: None },
        );
    });
    for second in 0..150 {
        let parameter = if second < 50 { "temperature" } else { "flow" };
        record(&store, spike("wtf-pipe-1", parameter, opening() + TimeDelta::seconds(second)));
    }
    let metrics = store.anomalies.metrics(&store.config().parameter_list());
    assert_eq!(metrics.total_anomalies, 100);
    assert_eq!(metrics.anomalies_by_parameter[&Parameter::new("flow")], 100);
    assert_eq!(metrics.anomalies_by_parameter[&Parameter::new("temperature")], 0);
    assert_eq!(metrics.anomalies_by_parameter[&Parameter::new("turbidity")], 0);
    assert_eq!(metrics.anomalies_by_type[&AnomalyKind::Spike], 100);
    assert_eq!(metrics.anomalies_by_type[&AnomalyKind::Drift], 0);
    assert_eq!(metrics.anomalies_by_type[&AnomalyKind::Dropout], 0);
    assert!(!metrics.anomalies_by_type.contains_key(&AnomalyKind::Stuck), "listed once it is raised");
    assert_eq!(metrics.last_update, Some(opening() + TimeDelta::seconds(149)));
}

#[test]
fn what_is_recorded_is_journalled_in_order() {
    let store = store_with(|_| {});
    let first = record(&store, spike("wtf-pipe-1", "flow", opening()));
    let second = record(&store, spike("wtf-pipe-2", "flow", opening() + minutes(1)));
    assert_eq!(second, first + 2, "each anomaly, then its alarm");
    let entries = store.journal.after(0, 10).entries;
    let told: Vec<(&str, &str)> = entries
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::Anomaly(anomaly) => Some(("anomaly", anomaly.sensor_id.as_str())),
            Event::Alarm(alarm) => Some(("alarm", alarm.sensor_id.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        [("anomaly", "wtf-pipe-1"), ("alarm", "wtf-pipe-1"), ("anomaly", "wtf-pipe-2"), ("alarm", "wtf-pipe-2")]
    );
}

#[test]
fn restoring_twice_does_not_duplicate_and_skips_the_expired() {
    let store = store_with(|_| {});
    let now = opening() + TimeDelta::hours(30);
    let restored = vec![
        spike("wtf-pipe-1", "flow", opening()),
        spike("wtf-pipe-1", "flow", now - minutes(5)),
        spike("wtf-pipe-2", "flow", now - minutes(3)),
    ];
    assert_eq!(store.anomalies.restore(restored.clone(), now), 2);
    assert_eq!(store.anomalies.restore(restored, now), 0);
    assert_eq!(store.anomalies.query(&AnomalyQuery::newest(10)).len(), 2);
    assert_eq!(store.anomalies.count_24h(now), 2);
}

#[test]
fn summaries_are_bounded_and_newest_first() {
    let store = store_with(|config| config.store.max_summaries = 2);
    assert!(store.summaries.latest().is_none());
    for minute in 0..3 {
        let summary = Summary {
            summary: format!("summary {minute}"),
            timestamp: opening() + minutes(minute),
            generated_by: crate::domain::SummaryAuthor::Fallback,
            model: Some("llama3.2:1b".into()),
            anomaly_count: 0,
            window_start: opening(),
            window_end: opening() + minutes(minute),
        };
        store.record_summary(summary, opening() + minutes(minute));
    }
    let texts: Vec<_> = store.summaries.recent(10).iter().map(|summary| summary.summary.clone()).collect();
    assert_eq!(texts, ["summary 2", "summary 1"]);
    assert_eq!(store.summaries.latest().map(|summary| summary.summary.clone()), Some("summary 2".into()));
}

#[test]
fn what_a_peer_told_is_applied_once_and_never_published_again() {
    use crate::peers::{AlarmAck, PeerOp};
    let store = store_with(|_| {});
    let anomaly = spike("wtf-pipe-1", "pressure", opening());
    assert!(store.apply_peer(PeerOp::Anomaly(anomaly.clone()), opening()));
    assert!(!store.apply_peer(PeerOp::Anomaly(anomaly.clone()), opening()), "held once");
    // This daemon's own detector raising the same episode later adds nothing either.
    record(&store, anomaly.clone());
    assert_eq!(store.anomalies.query(&AnomalyQuery::newest(10)).len(), 1);
    assert_eq!(store.alarms().len(), 1);

    let ack =
        AlarmAck { id: anomaly.id.to_string(), by: "night-shift".into(), comment: Some("ok".into()), at: opening() };
    assert!(store.apply_peer(PeerOp::Ack(ack.clone()), opening()));
    assert!(!store.apply_peer(PeerOp::Ack(ack), opening()), "an ack of an acked alarm changes nothing");
    let audit = store.audit_entries(10, None);
    assert_eq!((audit.len(), audit[0].actor.as_str(), audit[0].detail.as_str()), (1, "night-shift", "ok"));

    let journalled = store.journal.after(0, 100).entries;
    assert!(!journalled.is_empty());
    assert!(journalled.iter().all(|entry| entry.from_peer), "applied entries are marked as a peer's");
    assert!(journalled.iter().all(|entry| PeerOp::from_entry(entry, |_| None).is_none()), "and never published");
}

#[test]
fn a_peer_cannot_shelve_an_alarm_for_longer_than_this_daemon_allows() {
    use crate::peers::{AlarmShelve, PeerOp};
    let store = store_with(|config| config.alarms.max_shelve = std::time::Duration::from_secs(3600));
    let anomaly = spike("wtf-pipe-1", "pressure", opening());
    assert!(store.apply_peer(PeerOp::Anomaly(anomaly.clone()), opening()));
    let shelve = AlarmShelve {
        id: anomaly.id.to_string(),
        by: "night-shift".into(),
        until: opening() + TimeDelta::days(365),
        reason: Some("forever".into()),
        at: opening(),
    };
    assert!(store.apply_peer(PeerOp::Shelve(shelve.clone()), opening()));
    let alarm = store.alarm(&anomaly.id.to_string()).expect("held");
    assert_eq!(alarm.shelved_until, Some(opening() + TimeDelta::hours(1)), "bounded by alarms.max_shelve");
    assert!(!store.apply_peer(PeerOp::Shelve(shelve), opening()), "told again, it changes nothing");
}
