//! The process's shared state, in parts that each keep their own lock: the [`Journal`] readers
//! follow, the [`AnomalyLog`] `/anomalies` serves, the [`SummaryLog`], and [`Health`].
//!
//! Writers (detectors, the summarizer, the supervisor) and readers (the API, the summarizer, the
//! Redis mirror) meet here instead of exchanging messages, so a reader never waits on an actor
//! and a restarted actor finds its predecessor's state. Every lock is held for a few memory
//! operations only, never across an `.await`; a filtered `/anomalies` scans a snapshot outside
//! the anomaly log's lock, so detectors never wait for a query.
//!
//! The detectors' episode state and the last reading of each sensor live with the ingress
//! ([`crate::ingress`]), beside the queues they are bound up with.

mod anomalies;
mod summaries;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use chrono::{DateTime, TimeDelta, Utc};

pub use anomalies::{AnomalyLog, AnomalyQuery, METRICS_WINDOW, Metrics};
pub use summaries::{LlmRetry, SummaryLog};

use crate::auth::Auth;
use crate::clock::Clock;
use crate::config::ValidConfig;
use crate::domain::{Anomaly, Summary, Transition};
use crate::health::Health;
use crate::journal::{Event, Journal, JournalLimits};

pub struct Store {
    /// The configuration in force; replaced on reload.
    config: ArcSwap<ValidConfig>,
    /// The API tokens of that configuration, read once per reload (token files included).
    auth: ArcSwap<Auth>,
    pub journal: Arc<Journal>,
    pub anomalies: AnomalyLog,
    pub summaries: SummaryLog,
    /// Liveness, restarts and the state of Redis and the model: what `/status` reports.
    pub health: Health,
}

impl Store {
    pub fn new(config: ValidConfig, clock: Clock) -> Self {
        let journal = Arc::new(Journal::new(journal_limits(&config)));
        Self {
            anomalies: AnomalyLog::new(&config.store),
            summaries: SummaryLog::new(config.store.max_summaries),
            health: Health::new(clock, Arc::clone(&journal)),
            journal,
            auth: ArcSwap::from_pointee(Auth::from_config(&config.auth)),
            config: ArcSwap::from_pointee(config),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<ValidConfig> {
        self.config.load_full()
    }

    /// A reload replaces the configuration; new bounds apply from the next write.
    pub fn set_config(&self, config: ValidConfig) {
        self.anomalies.set_limits(&config.store);
        self.summaries.set_max(config.store.max_summaries);
        self.journal.set_limits(journal_limits(&config));
        self.auth.store(Arc::new(Auth::from_config(&config.auth)));
        self.config.store(Arc::new(config));
    }

    /// The API tokens in force.
    pub fn auth(&self) -> Arc<Auth> {
        self.auth.load_full()
    }

    /// Records what a detector produced: an anomaly goes to the log `/anomalies` serves and to
    /// the journal, a clear to the journal. Returns the journal's sequence number.
    pub fn record(&self, transition: Transition, now: DateTime<Utc>) -> u64 {
        match transition {
            Transition::Raised(anomaly) => {
                let anomaly = Arc::new(anomaly);
                self.anomalies.push(Arc::clone(&anomaly), now);
                self.journal.append(now, Event::Anomaly(anomaly))
            }
            Transition::Cleared(cleared) => self.journal.append(now, Event::Cleared(Arc::new(cleared))),
        }
    }

    /// Records a raised anomaly (what a detector records through [`Store::record`]).
    pub fn record_anomaly(&self, anomaly: Anomaly, now: DateTime<Utc>) -> u64 {
        self.record(Transition::Raised(anomaly), now)
    }

    /// Publishes a summary: kept for `/summary` and journalled.
    pub fn record_summary(&self, summary: Summary, now: DateTime<Utc>) -> u64 {
        let summary = Arc::new(summary);
        self.summaries.push(Arc::clone(&summary));
        self.journal.append(now, Event::Summary(summary))
    }

    /// Drops what has outlived the retention even when nothing new arrives.
    pub fn expire(&self, now: DateTime<Utc>) {
        self.anomalies.expire(now);
    }
}

fn journal_limits(config: &ValidConfig) -> JournalLimits {
    JournalLimits {
        retention: TimeDelta::from_std(config.store.retention).unwrap_or(TimeDelta::MAX),
        max_events: config.store.max_events,
    }
}

/// Locks a mutex; a panic elsewhere while holding it leaves plain data that is still usable,
/// so poisoning is ignored rather than spreading the panic.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn read<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub fn write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
