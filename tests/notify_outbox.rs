//! The Redis outbox against a real Redis: two daemons' couriers sharing one outbox send each
//! notification once between them, a delivered key is never queued again, and the outbox stays
//! within its bound.

mod redis_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use redis::AsyncCommands;
use wtf_monitor::alarms::{AlarmBook, Priority};
use wtf_monitor::config::RedisConfig;
use wtf_monitor::domain::{Anomaly, AnomalyKind, EpisodeKey, Wording};
use wtf_monitor::notify::redis_outbox::{OutboxKeys, OutboxSettings, RedisOutbox};
use wtf_monitor::notify::{Item, Settled, Transition};
use wtf_monitor::redis_link::{LinkTimeouts, RedisLink};

fn items(count: usize) -> Vec<Arc<Item>> {
    let start = Utc::now() - TimeDelta::seconds(60);
    (0..count)
        .map(|n| {
            let at = start + TimeDelta::milliseconds(n as i64);
            let episode = EpisodeKey {
                sensor_id: format!("s-{n}").as_str().into(),
                parameter: "pressure".into(),
                kind: AnomalyKind::Spike,
                started: at,
            };
            let anomaly = Anomaly::new(&episode, at, Some(4.6), 4.0, None, &Wording::new("Pressure", "bar"));
            let alarm = AlarmBook::default().raise(&anomaly, Priority::High, "bar").remove(0);
            Arc::new(Item::new(Transition::Raised, &alarm, at))
        })
        .collect()
}

fn outbox(url: &str, prefix: &str, instance: &str, capacity: usize) -> RedisOutbox {
    let config = RedisConfig { url: url.to_owned(), key_prefix: prefix.to_owned(), ..RedisConfig::default() };
    let timeouts = LinkTimeouts {
        connect: Duration::from_secs(2),
        response: Duration::from_secs(2),
        retry_max: Duration::from_secs(1),
    };
    let link = RedisLink::open(&config, timeouts).expect("a usable URL");
    let settings = OutboxSettings {
        capacity,
        lease: Duration::from_secs(30),
        dedup_window: Duration::from_secs(3600),
        timeout: Duration::from_secs(2),
        instance: instance.to_owned(),
    };
    RedisOutbox::new(link, OutboxKeys::new(prefix, "pager"), settings)
}

#[tokio::test]
async fn two_daemons_sharing_an_outbox_send_each_notification_once() {
    let Some(redis) = redis_support::redis_or_skip("outbox_claims") else { return };
    let (a, b) = (outbox(&redis.url, &redis.prefix, "a", 1000), outbox(&redis.url, &redis.prefix, "b", 1000));
    let queued = items(300);
    // Both daemons saw the same alarms and queue the same notifications.
    a.push(&queued).await.unwrap();
    b.push(&queued).await.unwrap();
    assert_eq!(a.backlog().await.unwrap(), 300, "the same key queued twice is one item");

    // Both ask for the same keys at once, every round; whichever wins a claim sends it.
    let mut sent: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    loop {
        let now = Utc::now();
        let (from_a, from_b) = tokio::join!(a.take_due(now, 50), b.take_due(now, 50));
        let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
        if from_a.is_empty() && from_b.is_empty() {
            break;
        }
        for (who, outbox, taken) in [("a", &a, from_a), ("b", &b, from_b)] {
            for item in &taken {
                sent.entry(item.key.clone()).or_default().push(who);
            }
            let delivered: Vec<(Item, Settled)> = taken.into_iter().map(|item| (item, Settled::Delivered)).collect();
            outbox.settle(&delivered).await.unwrap();
        }
    }
    assert_eq!(sent.len(), 300);
    assert!(sent.values().all(|senders| senders.len() == 1), "each claimed by one daemon: {sent:?}");

    // A daemon that derives a delivered notification again (a restart, a late peer) queues it,
    // finds it delivered, and drops it unsent.
    b.push(&queued[..10]).await.unwrap();
    assert!(b.take_due(Utc::now(), 50).await.unwrap().is_empty());
    assert_eq!(b.backlog().await.unwrap(), 0);
    let mut connection = redis.connection().await;
    let mark: Option<String> = connection.get(a.keys().mark(&queued[0].key)).await.unwrap();
    assert_eq!(mark.as_deref(), Some("sent"));
}

#[tokio::test]
async fn a_failed_delivery_waits_its_turn_and_a_full_outbox_drops_the_oldest() {
    let Some(redis) = redis_support::redis_or_skip("outbox_retry") else { return };
    let outbox = outbox(&redis.url, &redis.prefix, "a", 5);
    let queued = items(8);
    assert_eq!(outbox.push(&queued).await.unwrap(), 3, "three over the bound");
    let taken = outbox.take_due(Utc::now(), 10).await.unwrap();
    let kept: Vec<&str> = taken.iter().map(|item| item.key.as_str()).collect();
    let newest: Vec<&str> = queued[3..].iter().map(|item| item.key.as_str()).collect();
    assert_eq!(kept, newest, "the oldest went");

    let later = Utc::now() + TimeDelta::seconds(2);
    let outcomes: Vec<(Item, Settled)> = taken.into_iter().map(|item| (item, Settled::Retry { at: later })).collect();
    outbox.settle(&outcomes).await.unwrap();
    assert!(outbox.take_due(Utc::now(), 10).await.unwrap().is_empty(), "not before the retry");
    let again = outbox.take_due(later + TimeDelta::milliseconds(1), 10).await.unwrap();
    assert_eq!(again.len(), 5);
    assert!(again.iter().all(|item| item.attempts == 1), "the attempt is counted in the outbox");
}
