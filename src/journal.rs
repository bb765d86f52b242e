//! The journal: one append-only, sequence-numbered record of everything readers follow —
//! anomalies raised, episodes cleared, summaries written, components changing state.
//!
//! Writers append and never wait on a reader; readers (the Redis mirror, the summarizer, the live
//! stream, alarms, notifications) remember the sequence number of the last entry they handled
//! and ask for what came after ([`Journal::after`]), so a reader that restarts resumes where it
//! stopped, and one that fell too far behind learns how many entries it missed.
//!
//! It is held in memory, bounded by age (`store.retention`) and by count (`store.max_events`);
//! the mirror copies it to the Redis stream `<prefix>{plant}:journal`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::alarms::Alarm;
use crate::audit::AuditEntry;
use crate::domain::{Anomaly, Cleared, Summary};
use crate::store::lock;

/// One thing that happened, as readers see it.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An episode began: the anomaly, as `/anomalies` serves it.
    Anomaly(Arc<Anomaly>),
    /// An episode ended.
    Cleared(Arc<Cleared>),
    Summary(Arc<Summary>),
    /// A component or a sensor changed state.
    Status(Arc<StatusChange>),
    /// An alarm changed state (raised, acknowledged, cleared, shelved, suppressed, …).
    Alarm(Arc<Alarm>),
    /// An operator or the daemon did something the audit trail records.
    Audit(Arc<AuditEntry>),
}

impl Event {
    /// The event's name on the live stream and in the Redis stream.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Anomaly(_) => "anomaly",
            Event::Cleared(_) => "cleared",
            Event::Summary(_) => "summary",
            Event::Status(_) => "status",
            Event::Alarm(_) => "alarm",
            Event::Audit(_) => "audit",
        }
    }

    /// The event's JSON: the anomaly, the clear, the summary or the status change.
    pub fn to_json(&self) -> String {
        let json = match self {
            Event::Anomaly(anomaly) => serde_json::to_string(anomaly.as_ref()),
            Event::Cleared(cleared) => serde_json::to_string(cleared.as_ref()),
            Event::Summary(summary) => serde_json::to_string(summary.as_ref()),
            Event::Status(change) => serde_json::to_string(change.as_ref()),
            Event::Alarm(alarm) => serde_json::to_string(alarm.as_ref()),
            Event::Audit(entry) => serde_json::to_string(entry.as_ref()),
        };
        // Plain data with string keys always serialises.
        json.unwrap_or_else(|_| "null".to_owned())
    }
}

/// A component (an actor, Redis, the model) or a sensor that changed state.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct StatusChange {
    /// `detector:wtf-pipe-1:pressure`, `redis`, `llm`, `sensor:wtf-pipe-1`, …
    pub component: String,
    /// `up`, `down`, `connected`, `reconnecting`, `active`, `inactive`, `registered`, `removed`, …
    pub state: String,
    pub detail: Option<String>,
}

/// One journal entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub seq: u64,
    /// When it was appended, on the daemon's clock.
    pub at: DateTime<Utc>,
    pub event: Event,
    /// Applied from another daemon's journal stream ([`crate::peers`]): not published again.
    pub from_peer: bool,
}

/// What a reader gets: the entries after its cursor, and how many it can no longer have.
#[derive(Debug, Default)]
pub struct Followed {
    pub entries: Vec<Entry>,
    pub missed: u64,
}

/// How much the journal keeps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JournalLimits {
    pub retention: TimeDelta,
    pub max_events: usize,
}

pub struct Journal {
    entries: Mutex<Entries>,
    /// The newest sequence number, for readers to wait on.
    newest: watch::Sender<u64>,
}

struct Entries {
    /// Oldest first; sequence numbers are consecutive, so the one of `log[i]` is `first + i`.
    log: VecDeque<Entry>,
    next_seq: u64,
    limits: JournalLimits,
}

impl Journal {
    pub fn new(limits: JournalLimits) -> Self {
        Self {
            entries: Mutex::new(Entries { log: VecDeque::new(), next_seq: 1, limits }),
            newest: watch::Sender::new(0),
        }
    }

    pub fn set_limits(&self, limits: JournalLimits) {
        lock(&self.entries).limits = limits;
    }

    /// Appends an event at `at`; returns its sequence number. Old entries past the bounds go.
    pub fn append(&self, at: DateTime<Utc>, event: Event) -> u64 {
        self.append_entry(at, event, false)
    }

    /// Appends an event another daemon told (see [`Entry::from_peer`]).
    pub fn append_from_peer(&self, at: DateTime<Utc>, event: Event) -> u64 {
        self.append_entry(at, event, true)
    }

    fn append_entry(&self, at: DateTime<Utc>, event: Event, from_peer: bool) -> u64 {
        let seq = {
            let mut entries = lock(&self.entries);
            let seq = entries.next_seq;
            entries.next_seq += 1;
            entries.log.push_back(Entry { seq, at, event, from_peer });
            entries.expire(at);
            seq
        };
        self.newest.send_replace(seq);
        seq
    }

    /// The entries after sequence number `after`, oldest first, at most `max`.
    pub fn after(&self, after: u64, max: usize) -> Followed {
        let entries = lock(&self.entries);
        let first = entries.first_seq();
        let missed = first.saturating_sub(after.saturating_add(1));
        let start = usize::try_from(after.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        let taken = entries.log.iter().skip(start).take(max).cloned().collect();
        Followed { entries: taken, missed }
    }

    /// The sequence number of the newest entry (0 before the first).
    pub fn newest_seq(&self) -> u64 {
        *self.newest.borrow()
    }

    /// The sequence number of the oldest entry still held (the next one when empty).
    pub fn oldest_seq(&self) -> u64 {
        lock(&self.entries).first_seq()
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).log.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes whenever an entry is appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    /// How many subscriptions are alive: each is a reader's follower task.
    pub fn followers(&self) -> usize {
        self.newest.receiver_count()
    }
}

impl Entries {
    fn first_seq(&self) -> u64 {
        self.log.front().map_or(self.next_seq, |entry| entry.seq)
    }

    fn expire(&mut self, now: DateTime<Utc>) {
        let cutoff = now.checked_sub_signed(self.limits.retention).unwrap_or(DateTime::<Utc>::MIN_UTC);
        while self.log.front().is_some_and(|entry| entry.at < cutoff) || self.log.len() > self.limits.max_events {
            self.log.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    fn status(name: &str) -> Event {
        Event::Status(Arc::new(StatusChange { component: name.into(), state: "up".into(), detail: None }))
    }

    fn journal(max_events: usize) -> Journal {
        Journal::new(JournalLimits { retention: TimeDelta::hours(24), max_events })
    }

    #[test]
    fn readers_resume_after_their_cursor_in_order() {
        let journal = journal(100);
        for i in 0..5 {
            journal.append(at(i), status(&format!("c{i}")));
        }
        let followed = journal.after(2, 10);
        assert_eq!(followed.missed, 0);
        assert_eq!(followed.entries.iter().map(|entry| entry.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(journal.after(5, 10).entries.len(), 0);
        assert_eq!(journal.after(0, 2).entries.iter().map(|entry| entry.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(journal.newest_seq(), 5);
    }

    #[test]
    fn a_reader_left_behind_learns_how_many_it_missed() {
        let journal = journal(3);
        for i in 0..10 {
            journal.append(at(i), status("c"));
        }
        assert_eq!(journal.len(), 3);
        let followed = journal.after(2, 10);
        assert_eq!(followed.missed, 5);
        assert_eq!(followed.entries.first().map(|entry| entry.seq), Some(8));
        assert_eq!(journal.oldest_seq(), 8);
    }

    #[test]
    fn entries_older_than_the_retention_go() {
        let journal = journal(100);
        journal.append(at(0), status("old"));
        journal.append(at(25 * 3600), status("new"));
        assert_eq!(journal.len(), 1);
        assert_eq!(journal.after(0, 10).missed, 1);
    }
}
