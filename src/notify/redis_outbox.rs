//! The outbox of one receiver in Redis, so that a daemon restart or a receiver's outage loses no
//! notification and a delivered one is never sent again.
//!
//! Keys, under `<redis.key_prefix>{plant}:notify:<receiver>:` (the same hash tag as every other
//! key, so one Redis Cluster slot holds them all):
//!
//! | key | type | contents |
//! |---|---|---|
//! | `outbox` | hash | idempotency key → the item's JSON (transition, alarm, time, attempts) |
//! | `due` | sorted set | idempotency key, scored by when it is due next (Unix µs) |
//! | `mark:<idempotency key>` | string | `sending:<instance>` while a courier holds it (expires after the call's timeout and a margin), then `sent` for `notify.dedup_window` |
//!
//! A courier **claims** a key with `SET mark:<key> sending:<instance> NX PX <lease>` before it
//! sends, and on success sets the mark to `sent` and removes the item in one `MULTI`/`EXEC`; on
//! failure it deletes its claim and reschedules the item. A key whose mark says `sent` is removed
//! unsent; one claimed by another daemon is left to it. So however many daemons share the Redis,
//! each notification is sent once — save a daemon dying between the receiver's answer and the
//! mark, after which its claim expires and the item goes again, with the same idempotency key.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Value;

use super::{Item, Settled};
use crate::redis_layout::HASH_TAG;
use crate::redis_link::RedisLink;

/// The names of one receiver's outbox keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxKeys {
    pub outbox: String,
    pub due: String,
    mark_prefix: String,
}

impl OutboxKeys {
    pub fn new(prefix: &str, receiver: &str) -> Self {
        let base = format!("{prefix}{HASH_TAG}:notify:{receiver}:");
        Self { outbox: format!("{base}outbox"), due: format!("{base}due"), mark_prefix: format!("{base}mark:") }
    }

    pub fn mark(&self, key: &str) -> String {
        format!("{}{key}", self.mark_prefix)
    }
}

/// What the outbox needs besides its keys.
#[derive(Clone, Debug)]
pub struct OutboxSettings {
    pub capacity: usize,
    /// How long a claim holds: the call's timeout and a margin.
    pub lease: Duration,
    pub dedup_window: Duration,
    /// Each Redis round trip.
    pub timeout: Duration,
    /// Written into claims, so a daemon can tell its own.
    pub instance: String,
}

#[derive(Clone)]
pub struct RedisOutbox {
    link: RedisLink,
    keys: OutboxKeys,
    settings: OutboxSettings,
}

const SENT: &str = "sent";

impl RedisOutbox {
    pub fn new(link: RedisLink, keys: OutboxKeys, settings: OutboxSettings) -> Self {
        Self { link, keys, settings }
    }

    pub fn keys(&self) -> &OutboxKeys {
        &self.keys
    }

    /// Queues items, each due at its transition's time (scores are Unix microseconds, so items keep
    /// the journal's order); a key already queued stays as it is. Past the capacity the soonest
    /// due (the oldest, mostly) are dropped; returns how many.
    pub async fn push(&self, items: &[Arc<Item>]) -> Result<u64, String> {
        if items.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for item in items {
            let json = serde_json::to_string(item.as_ref()).map_err(|err| err.to_string())?;
            pipe.hset_nx(&self.keys.outbox, &item.key, json).ignore();
            pipe.cmd("ZADD").arg(&self.keys.due).arg("NX").arg(item.at.timestamp_micros()).arg(&item.key).ignore();
        }
        pipe.zcard(&self.keys.due);
        let (count,): (usize,) = self.link.query(&pipe, self.settings.timeout).await?;
        if count <= self.settings.capacity {
            return Ok(0);
        }
        let excess = count - self.settings.capacity;
        let popped: Vec<(String, f64)> =
            self.link.query(redis::cmd("ZPOPMIN").arg(&self.keys.due).arg(excess), self.settings.timeout).await?;
        if !popped.is_empty() {
            let keys: Vec<&str> = popped.iter().map(|(key, _)| key.as_str()).collect();
            let mut pipe = redis::pipe();
            pipe.hdel(&self.keys.outbox, &keys).ignore();
            self.link.exec(&pipe, self.settings.timeout).await?;
        }
        Ok(popped.len() as u64)
    }

    /// Claims at most `max` items due by `now`. Items another daemon delivered are removed;
    /// items another daemon holds are left to it and looked at again after a lease.
    pub async fn take_due(&self, now: DateTime<Utc>, max: usize) -> Result<Vec<Item>, String> {
        let keys: Vec<String> = self
            .link
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&self.keys.due)
                    .arg("-inf")
                    .arg(now.timestamp_micros())
                    .arg("LIMIT")
                    .arg(0)
                    .arg(max),
                self.settings.timeout,
            )
            .await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let claim = format!("sending:{}", self.settings.instance);
        let lease = self.settings.lease.as_millis() as u64;
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("SET").arg(self.keys.mark(key)).arg(&claim).arg("NX").arg("PX").arg(lease);
            pipe.hget(&self.keys.outbox, key);
        }
        let answers: Vec<Value> = self.link.query(&pipe, self.settings.timeout).await?;
        let mut claimed = Vec::new();
        let mut cleanup = redis::pipe();
        let mut held_elsewhere = Vec::new();
        for (key, pair) in keys.iter().zip(answers.chunks(2)) {
            let [got_claim, json] = pair else { continue };
            let got_claim = !matches!(got_claim, Value::Nil);
            let item = text(json).and_then(|json| serde_json::from_str::<Item>(&json).ok());
            match (got_claim, item) {
                (true, Some(item)) => claimed.push(item),
                // Gone from the outbox (trimmed, or delivered by another daemon), or unreadable.
                (true, None) => {
                    cleanup.del(self.keys.mark(key)).ignore();
                    cleanup.hdel(&self.keys.outbox, key).ignore();
                    cleanup.zrem(&self.keys.due, key).ignore();
                }
                (false, _) => held_elsewhere.push(key.clone()),
            }
        }
        if !held_elsewhere.is_empty() {
            let mut marks = redis::pipe();
            for key in &held_elsewhere {
                marks.get(self.keys.mark(key));
            }
            let marks: Vec<Option<String>> = self.link.query(&marks, self.settings.timeout).await?;
            let later = now.timestamp_micros().saturating_add(lease as i64 * 1000);
            for (key, mark) in held_elsewhere.iter().zip(marks) {
                if mark.as_deref() == Some(SENT) {
                    cleanup.hdel(&self.keys.outbox, key).ignore();
                    cleanup.zrem(&self.keys.due, key).ignore();
                } else {
                    cleanup.cmd("ZADD").arg(&self.keys.due).arg("XX").arg(later).arg(key).ignore();
                }
            }
        }
        if cleanup.cmd_iter().next().is_some() {
            self.link.exec(&cleanup, self.settings.timeout).await?;
        }
        Ok(claimed)
    }

    /// Settles claimed items, all in one `MULTI`/`EXEC`.
    pub async fn settle(&self, outcomes: &[(Item, Settled)]) -> Result<(), String> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let remember = self.settings.dedup_window.as_millis() as u64;
        for (item, outcome) in outcomes {
            let mark = self.keys.mark(&item.key);
            match outcome {
                Settled::Delivered => {
                    pipe.cmd("SET").arg(&mark).arg(SENT).arg("PX").arg(remember).ignore();
                    pipe.hdel(&self.keys.outbox, &item.key).ignore();
                    pipe.zrem(&self.keys.due, &item.key).ignore();
                }
                Settled::Retry { at } => {
                    let mut item = item.clone();
                    item.attempts = item.attempts.saturating_add(1);
                    let json = serde_json::to_string(&item).map_err(|err| err.to_string())?;
                    pipe.hset(&self.keys.outbox, &item.key, json).ignore();
                    pipe.zadd(&self.keys.due, &item.key, at.timestamp_micros()).ignore();
                    pipe.del(&mark).ignore();
                }
                Settled::Later { at } => {
                    pipe.zadd(&self.keys.due, &item.key, at.timestamp_micros()).ignore();
                    pipe.del(&mark).ignore();
                }
                Settled::Dropped => {
                    pipe.hdel(&self.keys.outbox, &item.key).ignore();
                    pipe.zrem(&self.keys.due, &item.key).ignore();
                    pipe.del(&mark).ignore();
                }
            }
        }
        self.link.exec(&pipe, self.settings.timeout).await
    }

    /// Items waiting (or on their way).
    pub async fn backlog(&self) -> Result<u64, String> {
        self.link.query(redis::cmd("ZCARD").arg(&self.keys.due), self.settings.timeout).await
    }

    /// When the soonest item is due, if any waits.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, String> {
        let soonest: Vec<(String, f64)> = self
            .link
            .query(redis::cmd("ZRANGE").arg(&self.keys.due).arg(0).arg(0).arg("WITHSCORES"), self.settings.timeout)
            .await?;
        Ok(soonest.first().and_then(|(_, score)| DateTime::from_timestamp_micros(*score as i64)))
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}
