//! The anomalies of the last 24 hours, as `/anomalies` and `/metrics` serve them.
//!
//! Appends take the lock for a push; queries copy a snapshot under it — the `Arc`s of sealed,
//! immutable chunks and the short open tail — and scan outside it, so a filtered query over
//! 100,000 anomalies never makes a detector wait.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

use super::lock;
use crate::config::StoreConfig;
use crate::domain::{Anomaly, AnomalyId, AnomalyKind, Parameter, SensorId};

/// How many of the newest anomalies `/metrics` describes, as in the prototype.
pub const METRICS_WINDOW: usize = 100;
/// The window of `anomaly_count_24h`, whatever the retention.
const COUNT_WINDOW_MINUTES: i64 = 24 * 60;
/// Anomalies per sealed chunk: small enough that the open tail is cheap to copy, large enough
/// that a snapshot of 100,000 anomalies is a few hundred `Arc`s.
const CHUNK: usize = 256;

pub struct AnomalyLog {
    log: Mutex<Log>,
    /// Bumped after every change to the anomalies held (recorded, restored, expired), so the API
    /// can tell whether a body it serialised is still current with one atomic load, no lock.
    version: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    retention: TimeDelta,
    max_anomalies: usize,
}

impl Limits {
    fn from_config(config: &StoreConfig) -> Self {
        Self {
            retention: TimeDelta::from_std(config.retention).unwrap_or(TimeDelta::MAX),
            max_anomalies: config.max_anomalies,
        }
    }
}

/// Oldest first: sealed chunks, then the open tail.
#[derive(Default)]
struct Log {
    sealed: VecDeque<Arc<Vec<Arc<Anomaly>>>>,
    /// Entries of the oldest sealed chunk already gone (expired or evicted).
    skip: usize,
    tail: Vec<Arc<Anomaly>>,
    len: usize,
    /// Anomalies held per sensor, so a query can tell a sensor it has never heard of.
    per_sensor: HashMap<SensorId, usize>,
    /// The ids held: the same episode told twice (by this daemon's detector and by a peer's
    /// journal, or again after a restore) is held once.
    ids: HashSet<AnomalyId>,
    /// Anomalies recorded per minute (by their timestamp), for an exact 24-hour count that the
    /// memory bound cannot cap.
    per_minute: BTreeMap<i64, u64>,
    /// Evicted before their 24 hours because of `store.max_anomalies`.
    evicted_early: u64,
    limits: Option<Limits>,
}

/// Filters of `GET /anomalies`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnomalyQuery {
    pub limit: usize,
    pub sensor_id: Option<String>,
    pub parameter: Option<Parameter>,
    pub kind: Option<AnomalyKind>,
    pub since: Option<DateTime<Utc>>,
}

impl AnomalyQuery {
    pub fn newest(limit: usize) -> Self {
        Self { limit, ..Self::default() }
    }

    fn matches(&self, anomaly: &Anomaly) -> bool {
        self.sensor_id.as_deref().is_none_or(|sensor| anomaly.sensor_id.as_str() == sensor)
            && self.parameter.as_ref().is_none_or(|parameter| anomaly.parameter == *parameter)
            && self.kind.is_none_or(|kind| anomaly.kind == kind)
            && self.since.is_none_or(|since| anomaly.timestamp >= since)
    }
}

/// `GET /metrics`: statistics over the newest anomalies.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Metrics {
    /// Anomalies described (at most 100).
    pub total_anomalies: usize,
    /// Per type: `spike`, `drift` and `dropout` always, the others once a rule raises them.
    #[schema(value_type = Object, example = json!({"spike": 79, "drift": 7, "dropout": 14}))]
    pub anomalies_by_type: BTreeMap<AnomalyKind, usize>,
    /// Per configured parameter, zero included.
    #[schema(value_type = Object, example = json!({"temperature": 4, "pressure": 8, "flow": 74}))]
    pub anomalies_by_parameter: BTreeMap<Parameter, usize>,
    /// Anomalies per sensor over the same window.
    pub anomalies_by_sensor: BTreeMap<String, usize>,
    /// When the newest anomaly described was raised; null when there is none.
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>, example = "2025-05-19T14:11:18.009Z")]
    pub last_update: Option<DateTime<Utc>>,
}

impl AnomalyLog {
    pub fn new(config: &StoreConfig) -> Self {
        let log = Log { limits: Some(Limits::from_config(config)), ..Log::default() };
        Self { log: Mutex::new(log), version: AtomicU64::new(0) }
    }

    pub fn set_limits(&self, config: &StoreConfig) {
        lock(&self.log).limits = Some(Limits::from_config(config));
    }

    /// Records an anomaly; `now` drives expiry. An anomaly already held (the same id) is not
    /// added again: returns whether it was added.
    pub fn push(&self, anomaly: Arc<Anomaly>, now: DateTime<Utc>) -> bool {
        let mut log = lock(&self.log);
        if log.ids.contains(&anomaly.id) {
            return false;
        }
        *log.per_minute.entry(minute_of(anomaly.timestamp)).or_default() += 1;
        log.push(anomaly);
        log.expire(now);
        drop(log);
        self.changed();
        true
    }

    /// Puts back anomalies restored from Redis at start, before detection begins. Ones already
    /// held (the same id) are skipped, so restoring twice does not duplicate. Returns how many
    /// were added.
    pub fn restore(&self, mut restored: Vec<Anomaly>, now: DateTime<Utc>) -> usize {
        restored.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
        let mut log = lock(&self.log);
        let limits = log.limits();
        let cutoff = retention_start(now, limits.retention);
        let mut added = 0;
        for anomaly in restored {
            if anomaly.timestamp < cutoff || log.ids.contains(&anomaly.id) {
                continue;
            }
            *log.per_minute.entry(minute_of(anomaly.timestamp)).or_default() += 1;
            log.push(Arc::new(anomaly));
            added += 1;
        }
        log.expire(now);
        drop(log);
        self.changed();
        added
    }

    /// Puts back the per-minute counts behind `anomaly_count_24h` when Redis holds more anomalies
    /// than were restored (a minute keeps the larger of the two counts).
    pub fn restore_minute_counts(&self, counts: BTreeMap<i64, u64>) {
        let mut log = lock(&self.log);
        for (minute, count) in counts {
            let held = log.per_minute.entry(minute).or_default();
            *held = (*held).max(count);
        }
    }

    /// Drops what has outlived the retention even when nothing new arrives.
    pub fn expire(&self, now: DateTime<Utc>) {
        let mut log = lock(&self.log);
        let held = log.len;
        log.expire(now);
        let changed = log.len != held;
        drop(log);
        if changed {
            self.changed();
        }
    }

    /// Changes whenever the anomalies held change. Read before the data it versions, a copy made
    /// afterwards is at least as new as the version it is filed under.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The newest anomalies matching `query`, newest first.
    pub fn query(&self, query: &AnomalyQuery) -> Vec<Arc<Anomaly>> {
        let snapshot = lock(&self.log).snapshot();
        snapshot.newest_first().filter(|anomaly| query.matches(anomaly)).take(query.limit).cloned().collect()
    }

    /// Every anomaly held, oldest first (a snapshot: for the mirror's full rewrite).
    pub fn oldest_first(&self) -> Vec<Arc<Anomaly>> {
        let snapshot = lock(&self.log).snapshot();
        let mut all: Vec<Arc<Anomaly>> = snapshot.newest_first().cloned().collect();
        all.reverse();
        all
    }

    /// True when some anomaly of `sensor_id` is held.
    pub fn holds_sensor(&self, sensor_id: &str) -> bool {
        lock(&self.log).per_sensor.contains_key(sensor_id)
    }

    /// Anomalies raised in the 24 hours before `now`, counted whether or not they are still held.
    pub fn count_24h(&self, now: DateTime<Utc>) -> u64 {
        let cutoff = minute_of(now) - COUNT_WINDOW_MINUTES;
        lock(&self.log).per_minute.range(cutoff + 1..).map(|(_, count)| count).sum()
    }

    /// How many anomalies are held, and how many the memory bound evicted early.
    pub fn holdings(&self) -> (usize, u64) {
        let log = lock(&self.log);
        (log.len, log.evicted_early)
    }

    /// `/metrics` over the newest [`METRICS_WINDOW`] anomalies; every parameter of `parameters`
    /// and every kind in [`AnomalyKind::ALWAYS`] is listed, zero or not.
    pub fn metrics(&self, parameters: &[Parameter]) -> Metrics {
        let newest = self.query(&AnomalyQuery::newest(METRICS_WINDOW));
        let mut metrics = Metrics {
            total_anomalies: newest.len(),
            anomalies_by_type: AnomalyKind::ALWAYS.into_iter().map(|kind| (kind, 0)).collect(),
            anomalies_by_parameter: parameters.iter().map(|parameter| (parameter.clone(), 0)).collect(),
            anomalies_by_sensor: BTreeMap::new(),
            last_update: newest.first().map(|anomaly| anomaly.timestamp),
        };
        for anomaly in &newest {
            *metrics.anomalies_by_type.entry(anomaly.kind).or_default() += 1;
            *metrics.anomalies_by_parameter.entry(anomaly.parameter.clone()).or_default() += 1;
            *metrics.anomalies_by_sensor.entry(anomaly.sensor_id.to_string()).or_default() += 1;
        }
        metrics
    }
}

/// A consistent copy of the log's contents, cheap to take.
struct Snapshot {
    sealed: Vec<Arc<Vec<Arc<Anomaly>>>>,
    skip: usize,
    tail: Vec<Arc<Anomaly>>,
}

impl Snapshot {
    fn newest_first(&self) -> impl Iterator<Item = &Arc<Anomaly>> {
        let skip = self.skip;
        let sealed = self.sealed.iter().enumerate().rev().flat_map(move |(index, chunk)| {
            let start = if index == 0 { skip } else { 0 };
            chunk[start.min(chunk.len())..].iter().rev()
        });
        self.tail.iter().rev().chain(sealed)
    }
}

impl Log {
    fn limits(&self) -> Limits {
        self.limits.unwrap_or(Limits { retention: TimeDelta::MAX, max_anomalies: usize::MAX })
    }

    fn push(&mut self, anomaly: Arc<Anomaly>) {
        *self.per_sensor.entry(anomaly.sensor_id.clone()).or_default() += 1;
        self.ids.insert(anomaly.id.clone());
        // Detectors of different sensors record side by side, so anomalies may arrive a little
        // out of time order: the open tail keeps them in order, as Redis (scored by time) does.
        // Sealed chunks are shared with snapshots and stay as they are.
        let at = self.tail.partition_point(|held| held.timestamp <= anomaly.timestamp);
        self.tail.insert(at, anomaly);
        self.len += 1;
        if self.tail.len() == CHUNK {
            let chunk = std::mem::replace(&mut self.tail, Vec::with_capacity(CHUNK));
            self.sealed.push_back(Arc::new(chunk));
        }
    }

    fn oldest(&self) -> Option<&Arc<Anomaly>> {
        match self.sealed.front() {
            Some(chunk) => chunk.get(self.skip),
            None => self.tail.first(),
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(id) = self.oldest().map(|anomaly| anomaly.id.clone()) {
            self.ids.remove(&id);
        }
        if let Some(oldest) = self.oldest().map(|anomaly| anomaly.sensor_id.clone())
            && let Some(count) = self.per_sensor.get_mut(&oldest)
        {
            *count -= 1;
            if *count == 0 {
                self.per_sensor.remove(&oldest);
            }
        }
        if let Some(chunk) = self.sealed.front() {
            self.skip += 1;
            if self.skip >= chunk.len() {
                self.sealed.pop_front();
                self.skip = 0;
            }
        } else if !self.tail.is_empty() {
            self.tail.remove(0);
        } else {
            return;
        }
        self.len -= 1;
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot { sealed: self.sealed.iter().cloned().collect(), skip: self.skip, tail: self.tail.clone() }
    }

    fn expire(&mut self, now: DateTime<Utc>) {
        let limits = self.limits();
        let cutoff = retention_start(now, limits.retention);
        while self.oldest().is_some_and(|anomaly| anomaly.timestamp < cutoff) {
            self.pop_oldest();
        }
        while self.len > limits.max_anomalies {
            self.pop_oldest();
            self.evicted_early += 1;
        }
        let oldest_counted = minute_of(now) - COUNT_WINDOW_MINUTES;
        while self.per_minute.first_key_value().is_some_and(|(minute, _)| *minute <= oldest_counted) {
            self.per_minute.pop_first();
        }
    }
}

/// The oldest time still kept: `now` less the retention, or the beginning of time.
fn retention_start(now: DateTime<Utc>, retention: TimeDelta) -> DateTime<Utc> {
    now.checked_sub_signed(retention).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn minute_of(timestamp: DateTime<Utc>) -> i64 {
    timestamp.timestamp().div_euclid(60)
}
