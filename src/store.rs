//! The process's shared state, in parts that each keep their own lock: the [`Journal`] readers
//! follow, the [`AnomalyLog`] `/anomalies` serves, the alarms ([`AlarmBook`]) and the audit
//! trail, the [`SummaryLog`], and [`Health`].
//!
//! Writers (detectors, the summarizer, the supervisor) and readers (the API, the summarizer, the
//! Redis mirror) meet here instead of exchanging messages, so a reader never waits on an actor
//! and a restarted actor finds its predecessor's state. Every lock is held for a few memory
//! operations only, never across an `.await`; a filtered `/anomalies` scans a snapshot outside
//! the anomaly log's lock, so detectors never wait for a query.
//!
//! The detectors' episode state and the last reading of each sensor live with the ingress
//! ([`crate::ingress`]), beside the queues they are bound up with; only their checkpoints pass
//! through here ([`EpisodeBook`]).

mod anomalies;
mod episodes;
mod peers;
mod summaries;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use chrono::{DateTime, TimeDelta, Utc};

pub use anomalies::{AnomalyLog, AnomalyQuery, METRICS_WINDOW, Metrics};
pub use episodes::{DetectorKey, EpisodeBook};
pub use peers::PeerBoard;
pub use summaries::{LlmRetry, SummaryLog};

use crate::alarms::{Alarm, AlarmBook, AlarmCounts, AlarmRefusal};
use crate::audit::{AuditAction, AuditEntry, AuditLog};
use crate::auth::Auth;
use crate::clock::Clock;
use crate::config::ValidConfig;
use crate::domain::{Anomaly, Summary, Transition};
use crate::health::Health;
use crate::journal::{Event, Journal, JournalLimits};
use crate::notify::NotifyBoard;
use crate::telemetry::Telemetry;

pub struct Store {
    /// The configuration in force; replaced on reload.
    config: ArcSwap<ValidConfig>,
    /// The API tokens of that configuration, read once per reload (token files included).
    auth: ArcSwap<Auth>,
    pub journal: Arc<Journal>,
    pub anomalies: AnomalyLog,
    pub summaries: SummaryLog,
    /// The detectors' episode checkpoints, to Redis and back at start.
    pub episodes: EpisodeBook,
    alarms: Mutex<AlarmBook>,
    audit: Mutex<AuditLog>,
    /// Liveness, restarts and the state of Redis and the model: what `/status` reports.
    pub health: Health,
    /// Totals since start for `/metrics/prometheus`, and the gauges other features set.
    pub telemetry: Telemetry,
    /// The notification receivers' state, backlog and last error, for `/status`.
    pub notify: NotifyBoard,
    /// The other daemons of the plant, and where this one is in their journal streams.
    pub peers: PeerBoard,
}

impl Store {
    pub fn new(config: ValidConfig, clock: Clock) -> Self {
        let journal = Arc::new(Journal::new(journal_limits(&config)));
        Self {
            anomalies: AnomalyLog::new(&config.store),
            summaries: SummaryLog::new(config.store.max_summaries),
            episodes: EpisodeBook::default(),
            alarms: Mutex::new(AlarmBook::default()),
            audit: Mutex::new(AuditLog::new(config.audit.retention, config.audit.max_entries)),
            health: Health::new(clock, Arc::clone(&journal)),
            telemetry: Telemetry::default(),
            notify: NotifyBoard::default(),
            peers: PeerBoard::default(),
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
        lock(&self.audit).set_limits(config.audit.retention, config.audit.max_entries);
        self.auth.store(Arc::new(Auth::from_config(&config.auth)));
        self.config.store(Arc::new(config));
    }

    /// The API tokens in force.
    pub fn auth(&self) -> Arc<Auth> {
        self.auth.load_full()
    }

    /// Records what a detector produced: an anomaly goes to the log `/anomalies` serves, to the
    /// journal, and raises its alarm; a clear goes to the journal and clears its alarm. Every
    /// alarm that changed is journalled after the transition. Returns the transition's sequence
    /// number in the journal.
    pub fn record(&self, transition: Transition, now: DateTime<Utc>) -> u64 {
        let config = self.config();
        // The alarm book's lock is held across the appends, so alarm events are journalled in
        // the order the book changed.
        let mut alarms = lock(&self.alarms);
        let (seq, changed) = match transition {
            Transition::Raised(anomaly) => {
                let anomaly = Arc::new(anomaly);
                if !self.anomalies.push(Arc::clone(&anomaly), now) {
                    // Already told by a peer's journal (or restored): the same episode, held once.
                    return self.journal.newest_seq();
                }
                self.telemetry.anomaly_raised(anomaly.kind, &anomaly.parameter);
                let priority = config.alarms.priority(anomaly.kind);
                let changed = alarms.raise(&anomaly, priority, config.unit(anomaly.parameter.as_str()));
                (self.journal.append(now, Event::Anomaly(anomaly)), changed)
            }
            Transition::Cleared(cleared) => {
                self.telemetry.anomaly_cleared(cleared.kind, &cleared.parameter);
                let changed = alarms.clear(&cleared);
                (self.journal.append(now, Event::Cleared(Arc::new(cleared))), changed)
            }
        };
        for alarm in changed {
            self.journal.append(now, Event::Alarm(Arc::new(alarm)));
        }
        seq
    }

    /// The current alarms, newest first.
    pub fn alarms(&self) -> Vec<Alarm> {
        lock(&self.alarms).list()
    }

    /// How many alarms are in each state and priority, and how many are shelved and suppressed.
    pub fn alarm_counts(&self, now: DateTime<Utc>) -> AlarmCounts {
        lock(&self.alarms).counts(now)
    }

    pub fn alarm(&self, id: &str) -> Option<Alarm> {
        lock(&self.alarms).get(id).cloned()
    }

    /// Whether the alarm `id` is current, without copying it.
    pub fn has_alarm(&self, id: &str) -> bool {
        lock(&self.alarms).get(id).is_some()
    }

    /// An operator acknowledged an alarm; journalled and audited (a second acknowledgement changes
    /// nothing and leaves no entry).
    pub fn ack(&self, id: &str, by: &str, comment: Option<&str>, now: DateTime<Utc>) -> Result<Alarm, AlarmRefusal> {
        let (alarm, changed) = lock(&self.alarms).ack(id, by, comment, now)?;
        if changed {
            let detail = alarm.ack_comment.clone().unwrap_or_default();
            self.changed_by(by, AuditAction::Ack, &alarm, detail, now);
        }
        Ok(alarm)
    }

    /// An operator shelved an alarm for `duration`; journalled and audited.
    pub fn shelve(
        &self,
        id: &str,
        by: &str,
        duration: std::time::Duration,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Alarm, AlarmRefusal> {
        let most = self.config().alarms.max_shelve;
        let alarm = lock(&self.alarms).shelve(id, by, duration, most, reason, now)?;
        let detail = format!(
            "for {}{}",
            humantime::format_duration(duration),
            alarm.shelve_reason.as_deref().map(|reason| format!(": {reason}")).unwrap_or_default()
        );
        self.changed_by(by, AuditAction::Shelve, &alarm, detail, now);
        Ok(alarm)
    }

    pub fn unshelve(&self, id: &str, by: &str, now: DateTime<Utc>) -> Result<Alarm, AlarmRefusal> {
        let alarm = lock(&self.alarms).unshelve(id)?;
        self.changed_by(by, AuditAction::Unshelve, &alarm, String::new(), now);
        Ok(alarm)
    }

    /// Unshelves the alarms whose shelve ran out; each is journalled and audited as the system's.
    pub fn expire_shelves(&self, now: DateTime<Utc>) {
        let expired = lock(&self.alarms).expire_shelves(now);
        for alarm in expired {
            self.changed_by("system", AuditAction::UnshelveExpired, &alarm, String::new(), now);
        }
    }

    fn changed_by(&self, actor: &str, action: AuditAction, alarm: &Alarm, detail: String, now: DateTime<Utc>) {
        self.journal.append(now, Event::Alarm(Arc::new(alarm.clone())));
        self.audit(AuditEntry { at: now, actor: actor.to_owned(), action, target: alarm.id.to_string(), detail });
    }

    /// Adds an entry to the audit trail, and journals it.
    pub fn audit(&self, entry: AuditEntry) {
        lock(&self.audit).push(entry.clone());
        self.journal.append(entry.at, Event::Audit(Arc::new(entry)));
    }

    /// The audit trail, newest first.
    pub fn audit_entries(&self, limit: usize, since: Option<DateTime<Utc>>) -> Vec<AuditEntry> {
        lock(&self.audit).newest(limit, since)
    }

    /// Puts back alarms and audit entries restored from Redis at start.
    pub fn restore_alarms(&self, alarms: Vec<Alarm>, audit: Vec<AuditEntry>) {
        let mut book = lock(&self.alarms);
        for alarm in alarms {
            book.restore(alarm);
        }
        drop(book);
        let mut trail = lock(&self.audit);
        for entry in audit {
            trail.push_once(entry);
        }
    }

    /// Records a raised anomaly (what a detector records through [`Store::record`]).
    pub fn record_anomaly(&self, anomaly: Anomaly, now: DateTime<Utc>) -> u64 {
        self.record(Transition::Raised(anomaly), now)
    }

    /// Publishes a summary: kept for `/summary` and journalled.
    pub fn record_summary(&self, summary: Summary, now: DateTime<Utc>) -> u64 {
        let summary = Arc::new(summary);
        self.telemetry.summary_published(summary.generated_by);
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
