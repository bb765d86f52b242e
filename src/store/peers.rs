//! What other daemons of the plant told this one, applied to the store ([`Store::apply_peer`]),
//! and what this daemon knows of them ([`PeerBoard`]). See [`crate::peers`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

use super::{Store, lock};
use crate::audit::{AuditAction, AuditEntry};
use crate::journal::Event;
use crate::peers::{PeerOp, PeerView};

/// The peers as last read from the registry, and where this daemon is in the journal streams;
/// kept in the store so a restarted peers actor resumes where its predecessor stopped.
#[derive(Default)]
pub struct PeerBoard {
    views: Mutex<Vec<PeerView>>,
    /// Stream key → the id of the last entry applied (or the position read before the restore).
    positions: Mutex<BTreeMap<String, String>>,
    /// The local journal's sequence number up to which events were published.
    published: AtomicU64,
}

impl PeerBoard {
    pub fn views(&self) -> Vec<PeerView> {
        lock(&self.views).clone()
    }

    pub fn set_views(&self, views: Vec<PeerView>) {
        *lock(&self.views) = views;
    }

    pub fn position(&self, stream: &str) -> Option<String> {
        lock(&self.positions).get(stream).cloned()
    }

    pub fn set_position(&self, stream: &str, id: String) {
        lock(&self.positions).insert(stream.to_owned(), id);
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    pub fn set_published(&self, seq: u64) {
        self.published.store(seq, Ordering::Release);
    }
}

impl Store {
    /// Applies what another daemon journalled. Idempotent: what is already so changes nothing
    /// and is not journalled; what changes is journalled as a peer's, so it is not published
    /// again. Returns whether anything changed.
    pub fn apply_peer(&self, op: PeerOp, now: DateTime<Utc>) -> bool {
        match op {
            PeerOp::Anomaly(anomaly) => {
                let config = self.config();
                let anomaly = Arc::new(anomaly);
                let mut alarms = lock(&self.alarms);
                if !self.anomalies.push(Arc::clone(&anomaly), now) {
                    return false;
                }
                self.telemetry.anomaly_raised(anomaly.kind, &anomaly.parameter);
                let priority = config.alarms.priority(anomaly.kind);
                let changed = alarms.raise(&anomaly, priority, config.unit(anomaly.parameter.as_str()));
                self.journal.append_from_peer(now, Event::Anomaly(anomaly));
                for alarm in changed {
                    self.journal.append_from_peer(now, Event::Alarm(Arc::new(alarm)));
                }
                true
            }
            PeerOp::Cleared(cleared) => {
                let mut alarms = lock(&self.alarms);
                if alarms.get(cleared.anomaly_id.as_str()).is_none_or(|alarm| alarm.cleared_at.is_some()) {
                    return false;
                }
                let changed = alarms.clear(&cleared);
                self.journal.append_from_peer(now, Event::Cleared(Arc::new(cleared)));
                for alarm in changed {
                    self.journal.append_from_peer(now, Event::Alarm(Arc::new(alarm)));
                }
                true
            }
            PeerOp::Summary(summary) => {
                let held = self
                    .summaries
                    .recent(self.config().store.max_summaries)
                    .iter()
                    .any(|kept| kept.window_start == summary.window_start && kept.window_end == summary.window_end);
                if held {
                    return false;
                }
                let summary = Arc::new(summary);
                self.summaries.push(Arc::clone(&summary));
                self.journal.append_from_peer(now, Event::Summary(summary));
                true
            }
            PeerOp::Ack(ack) => {
                let Ok((alarm, true)) = lock(&self.alarms).ack(&ack.id, &ack.by, ack.comment.as_deref(), ack.at) else {
                    return false;
                };
                let detail = alarm.ack_comment.clone().unwrap_or_default();
                self.peer_changed(&ack.by, AuditAction::Ack, alarm, detail, ack.at);
                true
            }
            PeerOp::Shelve(shelve) => {
                // Told by a peer, but bounded by this daemon's `alarms.max_shelve` all the same: an
                // entry in the stream cannot shelve an alarm for longer than an operator here could.
                let most = self.config().alarms.max_shelve;
                let Ok(asked) = (shelve.until - shelve.at).to_std() else { return false };
                let duration = asked.min(most);
                let until =
                    TimeDelta::from_std(duration).ok().and_then(|duration| shelve.at.checked_add_signed(duration));
                let mut alarms = lock(&self.alarms);
                let Some(held) = alarms.get(&shelve.id) else { return false };
                if until.is_some() && held.shelved_until == until {
                    return false;
                }
                let Ok(alarm) =
                    alarms.shelve(&shelve.id, &shelve.by, duration, most, shelve.reason.as_deref(), shelve.at)
                else {
                    return false;
                };
                drop(alarms);
                let detail = format!(
                    "for {}{}",
                    humantime::format_duration(duration),
                    alarm.shelve_reason.as_deref().map(|reason| format!(": {reason}")).unwrap_or_default()
                );
                self.peer_changed(&shelve.by, AuditAction::Shelve, alarm, detail, shelve.at);
                true
            }
            PeerOp::Unshelve(unshelve) => {
                let mut alarms = lock(&self.alarms);
                if alarms.get(&unshelve.id).is_none_or(|alarm| alarm.shelved_until.is_none()) {
                    return false;
                }
                let Ok(alarm) = alarms.unshelve(&unshelve.id) else { return false };
                drop(alarms);
                self.peer_changed(&unshelve.by, AuditAction::Unshelve, alarm, String::new(), unshelve.at);
                true
            }
            PeerOp::Audit(entry) => {
                if !lock(&self.audit).push_once(entry.clone()) {
                    return false;
                }
                self.journal.append_from_peer(entry.at, Event::Audit(Arc::new(entry)));
                true
            }
        }
    }

    fn peer_changed(
        &self,
        by: &str,
        action: AuditAction,
        alarm: crate::alarms::Alarm,
        detail: String,
        at: DateTime<Utc>,
    ) {
        let entry = AuditEntry { at, actor: by.to_owned(), action, target: alarm.id.to_string(), detail };
        self.journal.append_from_peer(at, Event::Alarm(Arc::new(alarm)));
        lock(&self.audit).push(entry.clone());
        self.journal.append_from_peer(at, Event::Audit(Arc::new(entry)));
    }
}
