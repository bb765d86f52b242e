use chrono::TimeZone;

use super::*;
use crate::domain::{EpisodeKey, Wording};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap() + TimeDelta::seconds(seconds)
}

fn anomaly(kind: AnomalyKind, parameter: &str, seconds: i64) -> Anomaly {
    let episode =
        EpisodeKey { sensor_id: "wtf-pipe-1".into(), parameter: parameter.into(), kind, started: at(seconds) };
    Anomaly::new(&episode, at(seconds), Some(4.6), 4.0, None, &Wording::new("Pressure", "bar"))
}

fn cleared(anomaly: &Anomaly, seconds: i64) -> Cleared {
    Cleared {
        anomaly_id: anomaly.id.clone(),
        kind: anomaly.kind,
        sensor_id: anomaly.sensor_id.clone(),
        parameter: anomaly.parameter.clone(),
        timestamp: at(seconds),
        value: Some(3.0),
        peak: Some(4.9),
    }
}

fn book_with(anomaly: &Anomaly) -> AlarmBook {
    let mut book = AlarmBook::default();
    book.raise(anomaly, Priority::High, "bar");
    book
}

#[test]
fn an_alarm_acknowledged_then_cleared_goes_away() {
    let spike = anomaly(AnomalyKind::Spike, "pressure", 0);
    let mut book = book_with(&spike);
    let raised = book.get(spike.id.as_str()).unwrap().clone();
    assert_eq!(raised.state, AlarmState::ActiveUnack);
    assert_eq!((raised.priority, raised.unit.as_str(), raised.limit), (Priority::High, "bar", 4.0));
    let (acked, _) = book.ack(spike.id.as_str(), "night-shift", Some("valve checked"), at(5)).unwrap();
    assert_eq!(acked.state, AlarmState::ActiveAck, "acknowledging never clears an active alarm");
    assert_eq!((acked.acked_by.as_deref(), acked.ack_comment.as_deref()), (Some("night-shift"), Some("valve checked")));
    let changed = book.clear(&cleared(&spike, 9));
    assert_eq!(changed[0].state, AlarmState::Normal);
    assert_eq!(changed[0].peak, Some(4.9));
    assert!(book.get(spike.id.as_str()).is_none());
}

#[test]
fn an_alarm_cleared_before_its_ack_waits_for_it_then_goes_away() {
    let spike = anomaly(AnomalyKind::Spike, "pressure", 0);
    let mut book = book_with(&spike);
    let changed = book.clear(&cleared(&spike, 3));
    assert_eq!(changed[0].state, AlarmState::ClearedUnack);
    assert_eq!(changed[0].cleared_at, Some(at(3)));
    assert_eq!(book.len(), 1);
    let (acked, _) = book.ack(spike.id.as_str(), "day-shift", None, at(10)).unwrap();
    assert_eq!(acked.state, AlarmState::Normal);
    assert!(book.is_empty());
}

#[test]
fn acknowledging_twice_keeps_the_first_and_is_not_an_error() {
    let spike = anomaly(AnomalyKind::Spike, "pressure", 0);
    let mut book = book_with(&spike);
    assert!(book.ack(spike.id.as_str(), "first", Some("one"), at(1)).unwrap().1);
    let (again, changed) = book.ack(spike.id.as_str(), "second", Some("two"), at(2)).unwrap();
    assert!(!changed);
    assert_eq!((again.acked_by.as_deref(), again.acked_at), (Some("first"), Some(at(1))));
    assert_eq!(book.ack("nope", "first", None, at(3)), Err(AlarmRefusal::Unknown("nope".into())));
}

#[test]
fn a_shelve_is_bounded_and_runs_out_by_itself() {
    let spike = anomaly(AnomalyKind::Spike, "pressure", 0);
    let mut book = book_with(&spike);
    let most = Duration::from_secs(8 * 3600);
    let refused = book.shelve(spike.id.as_str(), "op", Duration::from_secs(9 * 3600), most, None, at(0));
    assert!(matches!(refused, Err(AlarmRefusal::ShelveTooLong(_))));
    let shelved =
        book.shelve(spike.id.as_str(), "op", Duration::from_secs(1800), most, Some("maintenance"), at(0)).unwrap();
    assert_eq!(shelved.shelved_until, Some(at(1800)));
    assert!(shelved.is_shelved(at(1799)) && !shelved.is_shelved(at(1800)));
    assert!(book.expire_shelves(at(1799)).is_empty());
    let expired = book.expire_shelves(at(1800));
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].shelved_until, None);
    assert!(book.expire_shelves(at(5000)).is_empty(), "once");
}

#[test]
fn a_silent_sensor_suppresses_its_process_alarms_until_it_reports_again() {
    let spike = anomaly(AnomalyKind::Spike, "pressure", 0);
    let flow = anomaly(AnomalyKind::Spike, "flow", 0);
    let mut book = book_with(&spike);
    book.raise(&flow, Priority::High, "L/min");
    let dropout = anomaly(AnomalyKind::Dropout, "pressure", 20);
    let changed = book.raise(&dropout, Priority::High, "bar");
    let suppressed: Vec<(&str, bool)> =
        changed.iter().map(|alarm| (alarm.parameter.as_str(), alarm.suppressed)).collect();
    assert_eq!(suppressed, [("pressure", true), ("pressure", false)], "the spike suppressed, then the dropout itself");
    assert!(!book.get(flow.id.as_str()).unwrap().suppressed, "another parameter is not silent");
    let back = book.clear(&cleared(&dropout, 40));
    assert!(back.iter().any(|alarm| alarm.id == spike.id && !alarm.suppressed));
}

#[test]
fn the_same_episode_raised_twice_is_one_alarm() {
    let spike = anomaly(AnomalyKind::Spike, "pressure", 0);
    let mut book = book_with(&spike);
    book.ack(spike.id.as_str(), "op", None, at(1)).unwrap();
    assert!(book.raise(&spike, Priority::High, "bar").is_empty());
    assert_eq!(book.get(spike.id.as_str()).unwrap().state, AlarmState::ActiveAck);
}

#[test]
fn the_json_has_the_spec_shape() {
    let spike = anomaly(AnomalyKind::Spike, "pressure", 0);
    let book = book_with(&spike);
    let json = serde_json::to_value(book.get(spike.id.as_str()).unwrap()).unwrap();
    let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "ack_comment",
            "acked_at",
            "acked_by",
            "anomaly_id",
            "cleared_at",
            "id",
            "limit",
            "message",
            "parameter",
            "peak",
            "priority",
            "raised_at",
            "sensor_id",
            "shelve_reason",
            "shelved_by",
            "shelved_until",
            "state",
            "suppressed",
            "type",
            "unit",
            "value"
        ]
    );
    assert_eq!(
        (json["state"].as_str(), json["priority"].as_str(), json["type"].as_str()),
        (Some("active_unack"), Some("high"), Some("spike"))
    );
}
