//! The process's shared state: anomalies of the last 24 hours, summaries, the last reading of
//! each sensor and the detectors' episode state.
//!
//! Writers (detectors, simulators, the summarizer) and readers (the API, the summarizer, the
//! Redis mirror) meet here instead of exchanging messages, so a reader never waits on an actor
//! and a restarted actor finds its predecessor's state. Every lock is held for a few memory
//! operations only, never across an `.await`.
//!
//! Anomalies carry a sequence number in the order they were recorded. Followers (the mirror,
//! the summarizer) remember the last number they handled and ask for what came after, so a
//! follower that restarts resumes where it stopped, and one that falls too far behind learns
//! how many it missed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use arc_swap::ArcSwap;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::config::{StoreConfig, ValidConfig};
use crate::detection::ParameterDetector;
use crate::domain::{Anomaly, AnomalyKind, Parameter, Reading, SensorId, Summary};
use crate::health::Health;

/// How many of the newest anomalies `/metrics` describes, as in the prototype.
pub const METRICS_WINDOW: usize = 100;

/// The window of `anomaly_count_24h`, whatever the retention.
const COUNT_WINDOW_MINUTES: i64 = 24 * 60;

pub struct Store {
    /// The configuration in force; replaced on reload.
    config: ArcSwap<ValidConfig>,
    limits: Mutex<StoreLimits>,
    anomalies: Mutex<AnomalyLog>,
    anomaly_seq: watch::Sender<u64>,
    /// Bumped after every change to the anomalies held (recorded, restored, expired), so the API
    /// can tell whether a body it serialised is still current with one atomic load, no lock.
    anomalies_version: AtomicU64,
    summaries: Mutex<VecDeque<Arc<Summary>>>,
    summary_seq: watch::Sender<u64>,
    sensors: RwLock<BTreeMap<SensorId, Arc<SensorSlot>>>,
    detectors: RwLock<BTreeMap<(SensorId, Parameter), DetectorSlot>>,
    /// Liveness, restarts and the state of Redis and the model: what `/status` reports.
    pub health: Health,
    /// Readings produced by the simulators since start.
    pub readings_produced: Arc<AtomicU64>,
    /// The last anomaly sequence number in a closed summary window, and that window's end: where
    /// a restarted summarizer carries on.
    summarized_through: Mutex<Option<(u64, DateTime<Utc>)>>,
    /// The summarizer's backoff from a failing model, kept here so that a summarizer restarted in
    /// a crash loop waits it out instead of calling the model at every start.
    llm_retry: Mutex<LlmRetry>,
}

/// When the summarizer may call the model again after failed calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LlmRetry {
    /// Failed calls in a row.
    pub failures: u32,
    /// Not before this; `None`: at the next window.
    pub after: Option<tokio::time::Instant>,
}

#[derive(Clone, Copy, Debug)]
struct StoreLimits {
    retention: TimeDelta,
    max_anomalies: usize,
    max_summaries: usize,
}

impl StoreLimits {
    fn from_config(config: &StoreConfig) -> Self {
        Self {
            retention: TimeDelta::from_std(config.retention).unwrap_or(TimeDelta::MAX),
            max_anomalies: config.max_anomalies,
            max_summaries: config.max_summaries,
        }
    }
}

/// A detector's episode state, kept here so a restarted detector actor carries on with it.
pub type DetectorSlot = Arc<Mutex<ParameterDetector>>;

/// The last reading of one sensor; each simulator holds its own slot, so recording a reading
/// touches no lock another sensor uses.
#[derive(Debug, Default)]
pub struct SensorSlot {
    last: Mutex<Option<Reading>>,
}

impl SensorSlot {
    pub fn record(&self, reading: Reading) {
        *lock(&self.last) = Some(reading);
    }

    pub fn last(&self) -> Option<Reading> {
        lock(&self.last).clone()
    }
}

/// The anomalies kept, oldest first, with the counts `/status` needs.
#[derive(Default)]
struct AnomalyLog {
    entries: VecDeque<(u64, Arc<Anomaly>)>,
    next_seq: u64,
    /// Anomalies recorded per minute (by their timestamp), for an exact 24-hour count that the
    /// memory bound cannot cap.
    per_minute: BTreeMap<i64, u64>,
    /// Evicted before their 24 hours because of `store.max_anomalies`.
    evicted_early: u64,
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
            && self.parameter.is_none_or(|parameter| anomaly.parameter == parameter)
            && self.kind.is_none_or(|kind| anomaly.kind == kind)
            && self.since.is_none_or(|since| anomaly.timestamp >= since)
    }
}

/// What a follower gets: the anomalies after its cursor, and how many it can no longer have.
#[derive(Debug, Default)]
pub struct Followed {
    pub anomalies: Vec<(u64, Arc<Anomaly>)>,
    pub missed: u64,
}

/// `GET /metrics`: statistics over the newest anomalies.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Metrics {
    /// Anomalies described (at most 100).
    pub total_anomalies: usize,
    #[schema(example = json!({"spike": 79, "drift": 7, "dropout": 14}))]
    pub anomalies_by_type: BTreeMap<AnomalyKind, usize>,
    #[schema(example = json!({"temperature": 4, "pressure": 8, "flow": 74}))]
    pub anomalies_by_parameter: BTreeMap<Parameter, usize>,
    /// Anomalies per sensor over the same window.
    pub anomalies_by_sensor: BTreeMap<String, usize>,
    /// When the newest anomaly described was raised; null when there is none.
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>, example = "2025-05-19T14:11:18.009Z")]
    pub last_update: Option<DateTime<Utc>>,
}

impl Store {
    pub fn new(config: ValidConfig, started_at: DateTime<Utc>) -> Self {
        Self {
            limits: Mutex::new(StoreLimits::from_config(&config.store)),
            config: ArcSwap::from_pointee(config),
            anomalies: Mutex::new(AnomalyLog::default()),
            anomaly_seq: watch::Sender::new(0),
            anomalies_version: AtomicU64::new(0),
            summaries: Mutex::new(VecDeque::new()),
            summary_seq: watch::Sender::new(0),
            sensors: RwLock::new(BTreeMap::new()),
            detectors: RwLock::new(BTreeMap::new()),
            health: Health::new(started_at),
            readings_produced: Arc::new(AtomicU64::new(0)),
            summarized_through: Mutex::new(None),
            llm_retry: Mutex::new(LlmRetry::default()),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<ValidConfig> {
        self.config.load_full()
    }

    /// A reload replaces the configuration; new bounds apply from the next write.
    pub fn set_config(&self, config: ValidConfig) {
        *lock(&self.limits) = StoreLimits::from_config(&config.store);
        self.config.store(Arc::new(config));
    }

    /// Records an anomaly; returns its sequence number. `now` drives expiry.
    pub fn record_anomaly(&self, anomaly: Anomaly, now: DateTime<Utc>) -> u64 {
        let limits = *lock(&self.limits);
        let seq = {
            let mut log = lock(&self.anomalies);
            log.next_seq += 1;
            let seq = log.next_seq;
            *log.per_minute.entry(minute_of(anomaly.timestamp)).or_default() += 1;
            log.entries.push_back((seq, Arc::new(anomaly)));
            log.expire(now, limits);
            seq
        };
        self.anomalies_changed();
        self.anomaly_seq.send_replace(seq);
        seq
    }

    /// Puts back anomalies restored from Redis at start, before detection begins. Ones already
    /// held (the same id) are skipped, so restoring twice does not duplicate. Returns how many
    /// were added.
    pub fn restore_anomalies(&self, mut restored: Vec<Anomaly>, now: DateTime<Utc>) -> usize {
        restored.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
        let limits = *lock(&self.limits);
        let cutoff = retention_start(now, limits.retention);
        let mut log = lock(&self.anomalies);
        let mut known: std::collections::HashSet<_> =
            log.entries.iter().map(|(_, anomaly)| anomaly.id.clone()).collect();
        let mut added = 0;
        for anomaly in restored {
            if anomaly.timestamp < cutoff || !known.insert(anomaly.id.clone()) {
                continue;
            }
            log.next_seq += 1;
            let seq = log.next_seq;
            *log.per_minute.entry(minute_of(anomaly.timestamp)).or_default() += 1;
            log.entries.push_back((seq, Arc::new(anomaly)));
            added += 1;
        }
        log.expire(now, limits);
        let seq = log.next_seq;
        drop(log);
        self.anomalies_changed();
        self.anomaly_seq.send_replace(seq);
        added
    }

    /// Puts back the per-minute counts behind `anomaly_count_24h` when Redis holds more anomalies
    /// than were restored (a minute keeps the larger of the two counts).
    pub fn restore_minute_counts(&self, counts: BTreeMap<i64, u64>) {
        let mut log = lock(&self.anomalies);
        for (minute, count) in counts {
            let held = log.per_minute.entry(minute).or_default();
            *held = (*held).max(count);
        }
    }

    /// Drops what has outlived the retention even when nothing new arrives.
    pub fn expire(&self, now: DateTime<Utc>) {
        let limits = *lock(&self.limits);
        let mut log = lock(&self.anomalies);
        let held = log.entries.len();
        log.expire(now, limits);
        let changed = log.entries.len() != held;
        drop(log);
        if changed {
            self.anomalies_changed();
        }
    }

    /// Changes whenever the anomalies held change, expiry included (unlike [`Self::anomaly_seq`],
    /// which numbers recorded anomalies only). Read before the data it versions, a copy made
    /// afterwards is at least as new as the version it is filed under.
    pub fn anomalies_version(&self) -> u64 {
        self.anomalies_version.load(Ordering::Acquire)
    }

    fn anomalies_changed(&self) {
        self.anomalies_version.fetch_add(1, Ordering::Release);
    }

    /// The newest anomalies matching `query`, newest first.
    pub fn anomalies(&self, query: &AnomalyQuery) -> Vec<Arc<Anomaly>> {
        let log = lock(&self.anomalies);
        log.entries
            .iter()
            .rev()
            .map(|(_, anomaly)| anomaly)
            .filter(|anomaly| query.matches(anomaly))
            .take(query.limit)
            .cloned()
            .collect()
    }

    /// The anomalies recorded after sequence number `after`, oldest first, at most `max`.
    pub fn anomalies_after(&self, after: u64, max: usize) -> Followed {
        let log = lock(&self.anomalies);
        let first_kept = log.entries.front().map_or(log.next_seq + 1, |(seq, _)| *seq);
        let missed = first_kept.saturating_sub(after + 1);
        let start = log.entries.partition_point(|(seq, _)| *seq <= after);
        let anomalies = log.entries.range(start..).take(max).cloned().collect();
        Followed { anomalies, missed }
    }

    /// Sequence number of the newest anomaly; followers wait on changes of it.
    pub fn anomaly_seq(&self) -> u64 {
        *self.anomaly_seq.borrow()
    }

    pub fn subscribe_anomalies(&self) -> watch::Receiver<u64> {
        self.anomaly_seq.subscribe()
    }

    /// Anomalies raised in the 24 hours before `now`, counted whether or not they are still held.
    pub fn anomaly_count_24h(&self, now: DateTime<Utc>) -> u64 {
        let cutoff = minute_of(now) - COUNT_WINDOW_MINUTES;
        lock(&self.anomalies).per_minute.range(cutoff + 1..).map(|(_, count)| count).sum()
    }

    /// How many anomalies are held, and how many the memory bound evicted early.
    pub fn anomaly_holdings(&self) -> (usize, u64) {
        let log = lock(&self.anomalies);
        (log.entries.len(), log.evicted_early)
    }

    pub fn metrics(&self) -> Metrics {
        let log = lock(&self.anomalies);
        let newest: Vec<&Arc<Anomaly>> = log.entries.iter().rev().take(METRICS_WINDOW).map(|(_, a)| a).collect();
        let mut metrics = Metrics {
            total_anomalies: newest.len(),
            anomalies_by_type: AnomalyKind::ALL.into_iter().map(|kind| (kind, 0)).collect(),
            anomalies_by_parameter: Parameter::ALL.into_iter().map(|parameter| (parameter, 0)).collect(),
            anomalies_by_sensor: BTreeMap::new(),
            last_update: newest.first().map(|anomaly| anomaly.timestamp),
        };
        for anomaly in newest {
            *metrics.anomalies_by_type.entry(anomaly.kind).or_default() += 1;
            *metrics.anomalies_by_parameter.entry(anomaly.parameter).or_default() += 1;
            *metrics.anomalies_by_sensor.entry(anomaly.sensor_id.to_string()).or_default() += 1;
        }
        metrics
    }

    pub fn record_summary(&self, summary: Summary) -> u64 {
        let max = lock(&self.limits).max_summaries;
        let mut summaries = lock(&self.summaries);
        summaries.push_back(Arc::new(summary));
        while summaries.len() > max {
            summaries.pop_front();
        }
        drop(summaries);
        let mut seq = 0;
        self.summary_seq.send_modify(|value| {
            *value += 1;
            seq = *value;
        });
        seq
    }

    /// Puts back summaries restored from Redis at start (oldest first), unless newer ones exist.
    pub fn restore_summaries(&self, restored: Vec<Summary>) {
        let mut summaries = lock(&self.summaries);
        if !summaries.is_empty() {
            return;
        }
        summaries.extend(restored.into_iter().map(Arc::new));
        drop(summaries);
        self.summary_seq.send_modify(|value| *value += 1);
    }

    /// Notes that the anomalies up to `seq` are in a published summary whose window closed at
    /// `window_end`: a restarted summarizer carries on from there.
    pub fn set_summarized_through(&self, seq: u64, window_end: DateTime<Utc>) {
        *lock(&self.summarized_through) = Some((seq, window_end));
    }

    pub fn summarized_through(&self) -> Option<(u64, DateTime<Utc>)> {
        *lock(&self.summarized_through)
    }

    pub fn llm_retry(&self) -> LlmRetry {
        *lock(&self.llm_retry)
    }

    pub fn set_llm_retry(&self, retry: LlmRetry) {
        *lock(&self.llm_retry) = retry;
    }

    pub fn latest_summary(&self) -> Option<Arc<Summary>> {
        lock(&self.summaries).back().cloned()
    }

    /// Recent summaries, newest first.
    pub fn summaries(&self, limit: usize) -> Vec<Arc<Summary>> {
        lock(&self.summaries).iter().rev().take(limit).cloned().collect()
    }

    pub fn summary_seq(&self) -> u64 {
        *self.summary_seq.borrow()
    }

    pub fn subscribe_summaries(&self) -> watch::Receiver<u64> {
        self.summary_seq.subscribe()
    }

    /// The slot a sensor's readings are recorded in, created on first use.
    pub fn sensor_slot(&self, sensor_id: &SensorId) -> Arc<SensorSlot> {
        if let Some(slot) = read(&self.sensors).get(sensor_id) {
            return Arc::clone(slot);
        }
        Arc::clone(write(&self.sensors).entry(sensor_id.clone()).or_default())
    }

    /// The last reading of every sensor watched.
    pub fn last_readings(&self) -> BTreeMap<SensorId, Option<Reading>> {
        read(&self.sensors).iter().map(|(id, slot)| (id.clone(), slot.last())).collect()
    }

    /// The detector state of one sensor × parameter, created fresh on first use and kept across
    /// restarts of its actor.
    pub fn detector_slot(&self, sensor_id: &SensorId, parameter: Parameter, now: DateTime<Utc>) -> DetectorSlot {
        let key = (sensor_id.clone(), parameter);
        if let Some(slot) = read(&self.detectors).get(&key) {
            return Arc::clone(slot);
        }
        let mut detectors = write(&self.detectors);
        let slot = detectors
            .entry(key)
            .or_insert_with(|| Arc::new(Mutex::new(ParameterDetector::new(sensor_id.clone(), parameter, now))));
        Arc::clone(slot)
    }

    /// Forgets a sensor that was removed from the configuration.
    pub fn remove_sensor(&self, sensor_id: &SensorId) {
        write(&self.sensors).remove(sensor_id);
        write(&self.detectors).retain(|(id, _), _| id != sensor_id);
    }

    /// Every detector's state, for the drifts and silences in progress.
    pub fn detector_states(&self) -> Vec<ParameterDetector> {
        read(&self.detectors).values().map(|slot| lock(slot).clone()).collect()
    }
}

impl AnomalyLog {
    fn expire(&mut self, now: DateTime<Utc>, limits: StoreLimits) {
        let cutoff = retention_start(now, limits.retention);
        while self.entries.front().is_some_and(|(_, anomaly)| anomaly.timestamp < cutoff) {
            self.entries.pop_front();
        }
        while self.entries.len() > limits.max_anomalies {
            self.entries.pop_front();
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

/// Locks a mutex; a panic elsewhere while holding it leaves plain data that is still usable,
/// so poisoning is ignored rather than spreading the panic.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
