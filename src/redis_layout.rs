//! How the daemon's state is laid out in Redis, and the Redis mirror's decisions that need no
//! Redis: key names, member and score encoding, what one pipeline writes, how far to read
//! ahead of the store, the bounded backlog kept during an outage and the retry delay.
//!
//! Every key starts with `redis.key_prefix` and carries the hash tag `{plant}`, so all of them
//! hash to one Redis Cluster slot and a pipeline (or a `MULTI`/`EXEC`) may touch several keys.
//! With `cluster.shards > 1`, the keys a shard owns (anomalies, summaries, readings, alarms, the
//! audit trail, episodes, the layout marker, the journal stream, the status of its daemons) carry
//! `{plant-<i>}` instead ([`Keys::for_shard`]), so the shards land on different Redis Cluster
//! nodes and each shard's batch is still one `MULTI`/`EXEC` in one slot; what every daemon shares
//! (the peers registry, the notification outboxes) keeps `{plant}`.
//! The README's "Redis key layout" section documents the same layout for other programs.
//!
//! Nothing here does I/O or reads a clock: the actor in [`crate::actors::mirror`] passes `now` in.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::{Anomaly, Reading, Summary};
use crate::health::{ActorHealth, LlmHealth, RedisHealth};

pub mod records;
pub use records::{AuditLimits, Records};

/// The hash tag shared by every key: Redis Cluster hashes only the text between the braces.
pub const HASH_TAG: &str = "{plant}";
/// Written to the status hash; bumped when the layout changes in a way readers must know.
const LAYOUT_VERSION: u32 = 1;
/// Members per `ZADD`: big enough to amortise the command, small enough that one command
/// never holds Redis (single-threaded) for more than about a millisecond.
pub const ZADD_CHUNK: usize = 1_000;
/// Approximate length of the readings stream (`XADD … MAXLEN ~`).
const READINGS_STREAM_MAXLEN: usize = 10_000;

/// The names of every key the mirror writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// Sorted set: score = anomaly timestamp in Unix milliseconds, member = the anomaly's JSON
    /// exactly as `GET /anomalies` serves it.
    pub anomalies: String,
    /// Sorted set of recent summaries: score = summary timestamp in ms, member = its JSON.
    pub summaries: String,
    /// String: the JSON of the latest summary, as `GET /summary` serves it.
    pub summary_latest: String,
    /// Prefix of the strings `summary:claim:<window end, Unix ms>` → the instance that writes
    /// that window's summary, each with a TTL ([`crate::actors::summarizer`]). Not a key itself.
    pub summary_claims: String,
    /// Hash: sensor id → JSON of that sensor's last reading.
    pub readings_last: String,
    /// Stream of readings (fields `sensor_id`, `timestamp`, `temperature`, `pressure`, `flow`).
    pub readings_stream: String,
    /// Hash: the daemon's components as `/status` reports them (see [`status_fields`]); one per
    /// instance, `status:<instance>`, once [`Keys::for_instance`] named it.
    pub status: String,
    /// Hash: alarm id → the alarm's JSON as `GET /alarms` serves it (see [`records`]).
    pub alarms: String,
    /// Sorted set: score = audit entry time in ms, member = its JSON as `GET /audit` serves it.
    pub audit: String,
    /// Hash: `<sensor_id>/<parameter>` → the detector's episode checkpoint JSON.
    pub episodes: String,
    /// String: `LAYOUT_VERSION`, set by the first write into an empty Redis. Its absence at a
    /// later write means Redis lost its data (restarted without persistence, flushed).
    pub layout: String,
    /// Stream of what this shard's daemons tell the others ([`crate::peers`]).
    pub journal: String,
    /// Hash: instance → its registry entry ([`crate::peers::PeerRecord`]). Shared by all shards.
    pub peers: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self::tagged(prefix, HASH_TAG, format!("{prefix}{HASH_TAG}:peers"))
    }

    /// The keys of shard `shard` of `shards`: with more than one, the keys the shard owns carry
    /// the hash tag `{plant-<shard>}`; with one, the keys are those of [`Keys::new`].
    pub fn for_shard(self, prefix: &str, shards: u32, shard: u32) -> Self {
        if shards <= 1 {
            return self;
        }
        Self::tagged(prefix, &format!("{{plant-{shard}}}"), self.peers)
    }

    /// Every key under the hash tag `tag`, but the peers registry, which all shards share.
    fn tagged(prefix: &str, tag: &str, peers: String) -> Self {
        let key = |name: &str| format!("{prefix}{tag}:{name}");
        Self {
            anomalies: key("anomalies"),
            summaries: key("summaries"),
            summary_latest: key("summary:latest"),
            summary_claims: key("summary:claim:"),
            readings_last: key("readings:last"),
            readings_stream: key("readings:stream"),
            status: key("status"),
            alarms: key("alarms"),
            audit: key("audit"),
            episodes: key("episodes"),
            layout: key("layout"),
            journal: key("journal"),
            peers,
        }
    }

    /// Names the status hash after the instance writing it: `status:<instance>`.
    pub fn for_instance(mut self, instance: &str) -> Self {
        self.status = format!("{}:{instance}", self.status);
        self
    }

    /// The keys of every shard, shard 0 first.
    pub fn every_shard(prefix: &str, shards: u32) -> Vec<Self> {
        (0..shards.max(1)).map(|shard| Keys::new(prefix).for_shard(prefix, shards, shard)).collect()
    }

    pub fn all(&self) -> [&str; 12] {
        [
            &self.anomalies,
            &self.summaries,
            &self.summary_latest,
            &self.readings_last,
            &self.readings_stream,
            &self.status,
            &self.alarms,
            &self.audit,
            &self.episodes,
            &self.layout,
            &self.journal,
            &self.peers,
        ]
    }
}

/// The sorted-set score of a time: Unix milliseconds, exact in a double until the year 285,000.
pub fn score(timestamp: DateTime<Utc>) -> i64 {
    timestamp.timestamp_millis()
}

/// Anomalies scored below this have outlived `retention` at `now`.
pub fn retention_cutoff(now: DateTime<Utc>, retention: Duration) -> i64 {
    let retention = TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX);
    now.checked_sub_signed(retention).map_or(i64::MIN, score)
}

/// What bounds the mirrored data at the moment a pipeline is built.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub now: DateTime<Utc>,
    /// Each anomaly is kept this long by its own timestamp (`store.retention`, 24 h by default).
    pub retention: Duration,
    /// `redis.max_anomalies`: past this, the oldest are removed.
    pub max_anomalies: usize,
    /// Recent summaries kept (`store.max_summaries`).
    pub max_summaries: usize,
    pub audit: AuditLimits,
}

/// What one pipeline writes. Anomalies are the only part that accumulates; the rest are
/// snapshots of the store, written whole whenever they changed, so a write that failed is
/// simply made again from the newer snapshot.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub anomalies: Vec<Arc<Anomaly>>,
    /// Recent summaries, newest first, when they changed.
    pub summaries: Option<Vec<Arc<Summary>>>,
    /// The last reading of each sensor whose last reading changed (written field by field, so
    /// two daemons writing the same hash never erase each other's sensors).
    pub last_readings: Option<Vec<Reading>>,
    /// Readings not yet appended to the stream.
    pub new_readings: Vec<Reading>,
    /// The status hash, when it is due.
    pub status: Option<Vec<(String, String)>>,
    /// Alarms, audit entries and episode checkpoints that changed.
    pub records: Records,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.anomalies.is_empty()
            && self.summaries.is_none()
            && self.last_readings.is_none()
            && self.new_readings.is_empty()
            && self.status.is_none()
            && self.records.is_empty()
    }
}

/// The pipeline that writes `batch`, trims anomalies past their retention and the cap, and
/// caps the summaries. It runs as one `MULTI`/`EXEC`: a reader never sees a batch half written,
/// and a retried batch is idempotent (the same anomaly is the same member).
///
/// Its one answer (see [`marker_was_missing`]) says whether the layout marker was missing, that
/// is whether this write went into an empty Redis.
pub fn batch_pipeline(keys: &Keys, batch: &Batch, limits: &Limits) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.cmd("SETNX").arg(&keys.layout).arg(LAYOUT_VERSION);
    let cutoff = retention_cutoff(limits.now, limits.retention);

    let anomalies = batch.anomalies.iter().map(|anomaly| (anomaly.timestamp, anomaly.as_ref()));
    add_scored(&mut pipe, &keys.anomalies, anomalies, cutoff);
    trim_scored(&mut pipe, &keys.anomalies, cutoff, limits.max_anomalies);

    if let Some(summaries) = &batch.summaries {
        if let Some(latest) = summaries.first().and_then(|summary| serde_json::to_string(summary.as_ref()).ok()) {
            pipe.cmd("SET").arg(&keys.summary_latest).arg(latest).ignore();
        }
        let members: Vec<(i64, String)> = summaries
            .iter()
            .filter_map(|summary| Some((score(summary.timestamp), serde_json::to_string(summary.as_ref()).ok()?)))
            .collect();
        if !members.is_empty() {
            pipe.cmd("ZADD").arg(&keys.summaries).arg(members).ignore();
        }
        pipe.cmd("ZREMRANGEBYRANK").arg(&keys.summaries).arg(0).arg(-(rank(limits.max_summaries) + 1)).ignore();
    }

    if let Some(readings) = &batch.last_readings {
        let fields: Vec<(&str, String)> = readings
            .iter()
            .filter_map(|reading| Some((reading.sensor_id.as_str(), serde_json::to_string(reading).ok()?)))
            .collect();
        if !fields.is_empty() {
            pipe.cmd("HSET").arg(&keys.readings_last).arg(fields).ignore();
        }
    }
    for reading in &batch.new_readings {
        let command = pipe
            .cmd("XADD")
            .arg(&keys.readings_stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(READINGS_STREAM_MAXLEN)
            .arg("*")
            .arg("sensor_id")
            .arg(reading.sensor_id.as_str())
            .arg("timestamp")
            .arg(crate::domain::rfc3339::format(&reading.timestamp));
        for (parameter, value) in reading.values.iter() {
            command.arg(parameter.as_str()).arg(value);
        }
        command.ignore();
    }

    records::write(&mut pipe, keys, &batch.records, &limits.audit);

    if let Some(fields) = &batch.status
        && !fields.is_empty()
    {
        // Replaced whole, so an actor that no longer exists is not reported forever.
        pipe.cmd("DEL").arg(&keys.status).ignore();
        pipe.cmd("HSET").arg(&keys.status).arg(fields).ignore();
    }
    pipe
}

/// Reads the answer of a [`batch_pipeline`]: true when the layout marker had to be set.
pub fn marker_was_missing(answer: &[i64]) -> bool {
    answer.first() == Some(&1)
}

fn rank(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX - 1)
}

/// Adds to the sorted set `key` each item scored by its time, leaving out those already older
/// than `cutoff`, in chunks of [`ZADD_CHUNK`].
fn add_scored<'a, T: serde::Serialize + 'a>(
    pipe: &mut redis::Pipeline,
    key: &str,
    items: impl Iterator<Item = (DateTime<Utc>, &'a T)>,
    cutoff: i64,
) {
    let members: Vec<(i64, String)> = items
        .filter(|(at, _)| score(*at) >= cutoff)
        .filter_map(|(at, item)| Some((score(at), serde_json::to_string(item).ok()?)))
        .collect();
    for chunk in members.chunks(ZADD_CHUNK) {
        pipe.cmd("ZADD").arg(key).arg(chunk).ignore();
    }
}

/// Keeps the sorted set `key` within its retention (members scored below `cutoff` leave, each by
/// its own time) and its newest `max`.
fn trim_scored(pipe: &mut redis::Pipeline, key: &str, cutoff: i64, max: usize) {
    pipe.cmd("ZREMRANGEBYSCORE").arg(key).arg("-inf").arg(format!("({cutoff}")).ignore();
    pipe.cmd("ZREMRANGEBYRANK").arg(key).arg(0).arg(-(rank(max) + 1)).ignore();
}

/// The status hash: one field per actor (`actor:<name>`), `llm`, `redis` (each a JSON object
/// shaped as in `/status`), and plain `started_at`, `updated_at`, `layout_version`.
pub fn status_fields(
    actors: &BTreeMap<String, ActorHealth>,
    llm: &LlmHealth,
    redis: &RedisHealth,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = actors
        .iter()
        .filter_map(|(name, health)| Some((format!("actor:{name}"), serde_json::to_string(health).ok()?)))
        .collect();
    fields.extend(serde_json::to_string(llm).ok().map(|json| ("llm".to_owned(), json)));
    fields.extend(serde_json::to_string(redis).ok().map(|json| ("redis".to_owned(), json)));
    fields.push(("started_at".into(), crate::domain::rfc3339::format(&started_at)));
    fields.push(("updated_at".into(), crate::domain::rfc3339::format(&now)));
    fields.push(("layout_version".into(), LAYOUT_VERSION.to_string()));
    fields
}

/// How many anomalies to move from the store into the backlog now.
///
/// While Redis answers, the mirror reads only a little ahead of what it writes: the store holds
/// the rest, and a flood that outpaces Redis must not turn into drops from a backlog filled for
/// nothing. While Redis is away, everything is moved (up to the capacity each time), so the
/// backlog, bounded by `redis.backlog_capacity`, holds what waits, and drops its oldest when full.
pub fn pull_budget(redis_answering: bool, queued: usize, capacity: usize, batch: usize) -> usize {
    if redis_answering { batch.saturating_mul(2).min(capacity).saturating_sub(queued) } else { capacity }
}

/// Writes waiting for Redis, oldest first, never more than `capacity`: past it the oldest are
/// dropped and counted.
#[derive(Clone, Debug)]
pub struct Backlog<T> {
    items: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> Backlog<T> {
    pub fn new(capacity: usize) -> Self {
        Self { items: VecDeque::new(), capacity: capacity.max(1), dropped: 0 }
    }

    /// Queues an item; returns how many old ones were dropped to make room.
    pub fn push(&mut self, item: T) -> u64 {
        self.items.push_back(item);
        self.trim()
    }

    /// Takes up to `max` of the oldest items to write.
    pub fn take(&mut self, max: usize) -> Vec<T> {
        let count = max.min(self.items.len());
        self.items.drain(..count).collect()
    }

    /// Puts back a batch that could not be written, ahead of everything queued since (it is
    /// older); returns how many were dropped because the backlog filled up meanwhile.
    pub fn requeue(&mut self, batch: Vec<T>) -> u64 {
        for item in batch.into_iter().rev() {
            self.items.push_front(item);
        }
        self.trim()
    }

    fn trim(&mut self) -> u64 {
        let excess = self.items.len().saturating_sub(self.capacity);
        self.items.drain(..excess);
        self.dropped += excess as u64;
        excess as u64
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Dropped since this backlog was created.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests;
