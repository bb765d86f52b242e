//! The mirror's queue of alarms, audit entries and episode checkpoints waiting for Redis.
//!
//! Alarms and audit entries come from the journal as the mirror follows it; checkpoints from the
//! store's [`EpisodeBook`](crate::store::EpisodeBook). Only the newest state of an alarm waits
//! (so this holds at most one entry per alarm of the book); audit entries wait in a bounded
//! backlog, like anomalies. A write that failed puts its records back, behind anything newer.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::alarms::{Alarm, AlarmState};
use crate::audit::AuditEntry;
use crate::domain::AnomalyId;
use crate::journal::Event;
use crate::redis_layout::{Backlog, Records};
use crate::store::Store;

pub struct RecordQueue {
    /// Newest state of each alarm that changed; None once it is gone.
    alarms: BTreeMap<AnomalyId, Option<Arc<Alarm>>>,
    audit: Backlog<Arc<AuditEntry>>,
}

impl RecordQueue {
    pub fn new(capacity: usize) -> Self {
        Self { alarms: BTreeMap::new(), audit: Backlog::new(capacity) }
    }

    /// Everything the store holds, to be written again: at a mirror's start (after a crash or a
    /// restore), and into a Redis that came back empty.
    pub fn queue_all(&mut self, store: &Store) {
        for alarm in store.alarms() {
            self.alarms.insert(alarm.id.clone(), Some(Arc::new(alarm)));
        }
        let mut entries = store.audit_entries(usize::MAX, None);
        entries.reverse();
        for entry in entries {
            self.audit.push(Arc::new(entry));
        }
        store.episodes.put_back(store.episodes.current());
    }

    /// Takes a journalled alarm change or audit entry; other events are not records.
    pub fn follow(&mut self, event: Event) {
        match event {
            Event::Alarm(alarm) => {
                let kept = (alarm.state != AlarmState::Normal).then_some(Arc::clone(&alarm));
                self.alarms.insert(alarm.id.clone(), kept);
            }
            Event::Audit(entry) => {
                self.audit.push(entry);
            }
            _ => {}
        }
    }

    /// What the next write carries: at most `max` alarms and `max` audit entries, so that a
    /// mirror far behind (or rewriting everything) still writes in batches Redis answers in time.
    pub fn take(&mut self, store: &Store, max: usize) -> Records {
        let mut alarms = Vec::with_capacity(max.min(self.alarms.len()));
        while alarms.len() < max {
            let Some(alarm) = self.alarms.pop_first() else { break };
            alarms.push(alarm);
        }
        Records { alarms, audit: self.audit.take(max), episodes: store.episodes.take_pending() }
    }

    /// A write that failed: its records wait again, unless something newer came meanwhile.
    pub fn requeue(&mut self, store: &Store, records: Records) {
        for (id, alarm) in records.alarms {
            self.alarms.entry(id).or_insert(alarm);
        }
        self.audit.requeue(records.audit);
        store.episodes.put_back(records.episodes);
    }

    /// Records waiting (checkpoints excepted: the store holds those).
    pub fn len(&self) -> usize {
        self.alarms.len() + self.audit.len()
    }
}
