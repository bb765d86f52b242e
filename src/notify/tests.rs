//! The pure parts of notifications: transitions from alarm events, who wants what, the memory
//! outbox's guarantees, and what receivers are sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

use super::message::{AlertContext, webhook_body};
use super::*;
use crate::alarms::{AlarmBook, Priority};
use crate::domain::{Anomaly, AnomalyKind, Cleared, EpisodeKey, Wording};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap() + TimeDelta::seconds(seconds)
}

fn spike(seconds: i64) -> Anomaly {
    let episode = EpisodeKey {
        sensor_id: "wtf-pipe-1".into(),
        parameter: "pressure".into(),
        kind: AnomalyKind::Spike,
        started: at(seconds),
    };
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

fn webhook(events: &[NotifyEvent]) -> Receiver {
    Receiver {
        name: "pager".into(),
        kind: ReceiverKind::Webhook { url: "http://127.0.0.1:1/".into(), token: None, events: events.to_vec() },
    }
}

fn alertmanager() -> Receiver {
    Receiver { name: "alertmanager-1".into(), kind: ReceiverKind::Alertmanager { url: "http://127.0.0.1:9093".into() } }
}

/// Every alarm event of a life, as the store journals them, with the tracker's reading of each.
#[test]
fn an_alarms_life_gives_each_transition_once() {
    let anomaly = spike(0);
    let mut book = AlarmBook::default();
    let mut tracker = AlarmTracker::default();
    let raised = book.raise(&anomaly, Priority::High, "bar");
    assert_eq!(tracker.observe(&raised[0], at(0)), [Transition::Raised]);
    let (acked, _) = book.ack(anomaly.id.as_str(), "night-shift", None, at(5)).unwrap();
    assert_eq!(tracker.observe(&acked, at(5)), [Transition::Acknowledged]);
    // Told again (a second acknowledgement journals nothing new, but a replay might): nothing.
    assert_eq!(tracker.observe(&acked, at(6)), []);
    let gone = book.clear(&cleared(&anomaly, 9));
    assert_eq!(tracker.observe(&gone[0], at(9)), [Transition::Cleared]);
    assert!(tracker.is_empty(), "an alarm seen normal is forgotten");
}

/// An alarm restored from Redis at start was notified before the restart: it is not raised again,
/// and what happens to it afterwards is.
#[test]
fn a_restored_alarm_is_not_raised_again() {
    let anomaly = spike(0);
    let mut book = AlarmBook::default();
    let (acked, _) = {
        book.raise(&anomaly, Priority::High, "bar");
        book.ack(anomaly.id.as_str(), "night-shift", None, at(5)).unwrap()
    };
    let mut tracker = AlarmTracker::default();
    tracker.know(&acked, at(10));
    assert_eq!(tracker.observe(&acked, at(11)), []);
    let gone = book.clear(&cleared(&anomaly, 12));
    assert_eq!(tracker.observe(&gone[0], at(12)), [Transition::Cleared]);
}

#[test]
fn shelving_and_unshelving_are_transitions_of_their_own() {
    let anomaly = spike(0);
    let mut book = AlarmBook::default();
    let mut tracker = AlarmTracker::default();
    tracker.observe(&book.raise(&anomaly, Priority::High, "bar")[0], at(0));
    let shelved = book.shelve(
        anomaly.id.as_str(),
        "night-shift",
        Duration::from_secs(600),
        Duration::from_secs(3600),
        None,
        at(1),
    );
    assert_eq!(tracker.observe(&shelved.unwrap(), at(1)), [Transition::Shelved]);
    // Cleared while shelved: the tracker says so; the receivers decide (below) not to be told.
    let cleared_while_shelved = book.clear(&cleared(&anomaly, 2));
    assert_eq!(tracker.observe(&cleared_while_shelved[0], at(2)), [Transition::Cleared]);
    let unshelved = book.unshelve(anomaly.id.as_str()).unwrap();
    assert_eq!(tracker.observe(&unshelved, at(3)), [Transition::Unshelved]);
}

#[test]
fn a_shelve_that_ran_out_by_the_event_time_counts_as_unshelved() {
    let anomaly = spike(0);
    let mut book = AlarmBook::default();
    let mut tracker = AlarmTracker::default();
    tracker.observe(&book.raise(&anomaly, Priority::High, "bar")[0], at(0));
    let shelved = book
        .shelve(anomaly.id.as_str(), "night-shift", Duration::from_secs(10), Duration::from_secs(3600), None, at(1))
        .unwrap();
    assert_eq!(tracker.observe(&shelved, at(1)), [Transition::Shelved]);
    assert_eq!(tracker.observe(&shelved, at(12)), [Transition::Unshelved]);
}

#[test]
fn an_alarm_first_seen_late_tells_all_it_went_through() {
    // Restored from Redis, or told by another daemon: raised, acknowledged and cleared at once.
    let anomaly = spike(0);
    let mut book = AlarmBook::default();
    book.raise(&anomaly, Priority::High, "bar");
    book.clear(&cleared(&anomaly, 2));
    let (gone, _) = book.ack(anomaly.id.as_str(), "day-shift", None, at(3)).unwrap();
    let mut tracker = AlarmTracker::default();
    assert_eq!(tracker.observe(&gone, at(3)), [Transition::Raised, Transition::Acknowledged, Transition::Cleared]);
}

#[test]
fn webhooks_get_their_events_and_nothing_of_a_shelved_alarm() {
    let anomaly = spike(0);
    let mut book = AlarmBook::default();
    let alarm = book.raise(&anomaly, Priority::High, "bar").remove(0);
    let only_raised = webhook(&[NotifyEvent::Raised]);
    assert!(only_raised.wants(Transition::Raised, &alarm, at(0)));
    assert!(!only_raised.wants(Transition::Cleared, &alarm, at(0)));
    assert!(!only_raised.wants(Transition::Shelved, &alarm, at(0)), "shelving is not a webhook event");
    let shelved = book
        .shelve(anomaly.id.as_str(), "op", Duration::from_secs(60), Duration::from_secs(3600), None, at(1))
        .unwrap();
    let everything = webhook(&[NotifyEvent::Raised, NotifyEvent::Cleared, NotifyEvent::Acknowledged]);
    assert!(!everything.wants(Transition::Cleared, &shelved, at(2)), "a shelved alarm is not sent");
    assert!(everything.wants(Transition::Cleared, &shelved, at(61)), "nor is it once the shelve ran out");
}

#[test]
fn alertmanager_is_told_what_fires_and_what_stopped() {
    let anomaly = spike(0);
    let mut book = AlarmBook::default();
    let alarm = book.raise(&anomaly, Priority::High, "bar").remove(0);
    let am = alertmanager();
    assert!(am.wants(Transition::Raised, &alarm, at(0)));
    assert!(!am.wants(Transition::Acknowledged, &alarm, at(0)), "an ack changes nothing in Alertmanager");
    assert!(am.wants(Transition::Shelved, &alarm, at(0)), "shelving resolves it there");
    let gone = book.clear(&cleared(&anomaly, 4)).remove(0);
    assert!(am.wants(Transition::Cleared, &gone, at(4)));
    assert!(!am.wants(Transition::Unshelved, &gone, at(5)), "a cleared alarm does not fire again");
}

#[test]
fn keys_are_the_alarm_and_the_transition() {
    let anomaly = spike(0);
    let alarm = AlarmBook::default().raise(&anomaly, Priority::High, "bar").remove(0);
    assert_eq!(Item::new(Transition::Raised, &alarm, at(0)).key, format!("{}:raised", alarm.id));
    assert_eq!(Item::new(Transition::Cleared, &alarm, at(9)).key, format!("{}:cleared", alarm.id));
    let first = Item::new(Transition::Shelved, &alarm, at(1)).key;
    let second = Item::new(Transition::Shelved, &alarm, at(7)).key;
    assert_ne!(first, second, "an alarm can be shelved twice; each is its own notification");
}

fn item(seconds: i64, transition: Transition) -> Arc<Item> {
    let alarm = AlarmBook::default().raise(&spike(seconds), Priority::High, "bar").remove(0);
    Arc::new(Item::new(transition, &alarm, at(seconds)))
}

#[test]
fn the_memory_outbox_never_takes_a_key_twice_nor_sends_one_delivered() {
    let outbox = MemoryOutbox::new(10, Duration::from_secs(3600));
    let raised = item(0, Transition::Raised);
    assert!(outbox.push(Arc::clone(&raised), at(0)));
    assert!(!outbox.push(Arc::clone(&raised), at(0)), "queued already");
    let taken = outbox.take_due(at(0), 10);
    assert_eq!(taken.len(), 1);
    assert!(!outbox.push(Arc::clone(&raised), at(0)), "on its way");
    outbox.settle(&raised.key, Settled::Delivered, at(1));
    assert!(!outbox.push(Arc::clone(&raised), at(2)), "delivered within the dedup window");
    assert_eq!(outbox.backlog(), 0);
    // Past the window the key is forgotten (the next settle looks).
    let other = item(1, Transition::Raised);
    outbox.push(Arc::clone(&other), at(4000));
    outbox.take_due(at(4000), 1);
    outbox.settle(&other.key, Settled::Delivered, at(4000));
    assert!(outbox.push(raised, at(4001)));
}

#[test]
fn a_failed_item_waits_for_its_retry_and_counts_its_attempts() {
    let outbox = MemoryOutbox::new(10, Duration::from_secs(3600));
    let raised = item(0, Transition::Raised);
    let cleared = item(0, Transition::Cleared);
    outbox.push(Arc::clone(&raised), at(0));
    outbox.push(Arc::clone(&cleared), at(0));
    let taken = outbox.take_due(at(0), 10);
    assert_eq!(taken.iter().map(|item| item.transition).collect::<Vec<_>>(), [Transition::Raised, Transition::Cleared]);
    outbox.settle(&raised.key, Settled::Retry { at: at(5) }, at(0));
    outbox.settle(&cleared.key, Settled::Later { at: at(5) }, at(0));
    assert_eq!(outbox.backlog(), 2);
    assert!(outbox.take_due(at(4), 10).is_empty(), "not before its time");
    assert_eq!(outbox.next_due(), Some(at(5)));
    let again = outbox.take_due(at(5), 10);
    assert_eq!(
        again.iter().map(|item| (item.transition, item.attempts)).collect::<Vec<_>>(),
        [(Transition::Raised, 1), (Transition::Cleared, 0)]
    );
}

#[test]
fn a_full_memory_outbox_drops_its_oldest_and_counts_them() {
    let outbox = MemoryOutbox::new(3, Duration::from_secs(3600));
    for second in 0..5 {
        outbox.push(item(second, Transition::Raised), at(second));
    }
    assert_eq!((outbox.backlog(), outbox.dropped()), (3, 2));
    let kept: Vec<DateTime<Utc>> = outbox.take_due(at(10), 10).iter().map(|item| item.at).collect();
    assert_eq!(kept, [at(2), at(3), at(4)]);
}

#[test]
fn an_alert_carries_the_contract_labels_and_what_changes_as_annotations() {
    let anomaly = spike(0);
    let alarm = AlarmBook::default().raise(&anomaly, Priority::High, "bar").remove(0);
    let labels = BTreeMap::from([("site".to_owned(), "north-works".to_owned())]);
    let context =
        AlertContext { labels: &labels, external_url: "http://scada:8000/", summary: Some("All quiet but one spike.") };
    let alert = serde_json::to_value(context.firing(&alarm, at(240))).unwrap();
    assert_eq!(
        alert["labels"],
        json!({"alertname": "WtfSpike", "sensor_id": "wtf-pipe-1", "parameter": "pressure", "type": "spike",
               "severity": "high", "site": "north-works"})
    );
    assert_eq!(alert["annotations"]["summary"], alarm.message.as_str());
    assert_eq!(alert["annotations"]["description"], "All quiet but one spike.");
    assert_eq!(alert["annotations"]["alarm_id"], alarm.id.as_str());
    assert_eq!(
        (alert["startsAt"].as_str(), alert["endsAt"].as_str()),
        (Some("2025-05-19T10:00:00.000Z"), Some("2025-05-19T10:04:00.000Z"))
    );
    assert_eq!(alert["generatorURL"], format!("http://scada:8000/alarms/{}", alarm.id));
    let resolved = serde_json::to_value(context.resolved(&alarm, at(9))).unwrap();
    assert_eq!(resolved["endsAt"], "2025-05-19T10:00:09.000Z");
    assert_eq!(resolved["labels"], alert["labels"], "the same alert, ended");
}

#[test]
fn a_webhook_body_is_the_event_the_alarm_and_the_key() {
    let raised = item(0, Transition::Raised);
    let body: Value = serde_json::from_slice(&webhook_body(&raised)).unwrap();
    assert_eq!(body["event"], "raised");
    assert_eq!(body["idempotency_key"], raised.key.as_str());
    assert_eq!(body["alarm"], serde_json::to_value(&raised.alarm).unwrap(), "the alarm as /alarms serves it");
    assert_eq!(body["at"], "2025-05-19T10:00:00.000Z");
}

#[test]
fn the_status_shows_no_query_string() {
    assert_eq!(display_url("http://hooks.local:8080/wtf?key=secret"), "http://hooks.local:8080/wtf");
}

#[test]
fn receivers_are_named_by_position_unless_named() {
    let mut config = crate::config::NotifyConfig::default();
    config.alertmanager.urls = vec!["http://a:9093/".into(), "http://b:9093".into()];
    config.webhook = vec![
        crate::config::WebhookConfig {
            name: None,
            url: "http://h/".into(),
            token: None,
            token_file: None,
            events: vec![NotifyEvent::Raised],
        },
        crate::config::WebhookConfig {
            name: Some("pager".into()),
            url: "http://p/".into(),
            token: Some(crate::config::Secret::new("t0ken")),
            token_file: None,
            events: vec![NotifyEvent::Cleared],
        },
    ];
    let receivers = receivers(&config).unwrap();
    let names: Vec<&str> = receivers.iter().map(|receiver| receiver.name.as_str()).collect();
    assert_eq!(names, ["alertmanager-1", "alertmanager-2", "webhook-1", "pager"]);
    assert_eq!(receivers[0].url(), "http://a:9093", "the API path is added to a base without its slash");
    assert!(matches!(&receivers[3].kind, ReceiverKind::Webhook { token: Some(token), .. } if token == "t0ken"));
}

#[test]
fn what_a_crashed_courier_had_taken_goes_again() {
    let outbox = MemoryOutbox::new(10, Duration::from_secs(3600));
    outbox.push(item(0, Transition::Raised), at(0));
    outbox.push(item(1, Transition::Raised), at(0));
    assert_eq!(outbox.take_due(at(0), 10).len(), 2);
    assert_eq!(outbox.recover(at(3)), 2);
    assert_eq!(outbox.take_due(at(3), 10).len(), 2);
}
