//! The audit trail: who did what, and when — every acknowledgement, shelve and unshelve, every
//! shelve that ran out, every configuration reload (what changed, old → new), every write that
//! was refused. `GET /audit` serves it newest first; it is journalled (and so mirrored to Redis)
//! and kept `audit.retention` (400 days by default), bounded in memory by `audit.max_entries`.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AuditAction {
    Ack,
    Shelve,
    Unshelve,
    /// A shelve ran out by itself.
    UnshelveExpired,
    Reload,
    /// A write was refused: no token, a wrong one, or too weak a role.
    Refused,
}

/// One entry of the trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"at": "2025-05-19T10:16:02.114Z", "actor": "night-shift", "action": "ack",
    "target": "01JVKZ1E00M4Q5V9D2K7XW3F8A", "detail": "valve checked"}))]
pub struct AuditEntry {
    #[serde(with = "crate::domain::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// The token's name, `system` for what the daemon did by itself, `anonymous` for a request
    /// without a valid token.
    pub actor: String,
    pub action: AuditAction,
    /// The alarm's id, the endpoint, or the configuration file.
    pub target: String,
    pub detail: String,
}

/// The entries kept, oldest first.
#[derive(Debug)]
pub struct AuditLog {
    entries: VecDeque<AuditEntry>,
    retention: TimeDelta,
    max_entries: usize,
}

impl AuditLog {
    pub fn new(retention: std::time::Duration, max_entries: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            retention: TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX),
            max_entries,
        }
    }

    pub fn set_limits(&mut self, retention: std::time::Duration, max_entries: usize) {
        self.retention = TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX);
        self.max_entries = max_entries;
    }

    pub fn push(&mut self, entry: AuditEntry) {
        let now = entry.at;
        // Entries restored from Redis may come out of order; keep the log sorted by time.
        let position = self.entries.partition_point(|kept| kept.at <= entry.at);
        self.entries.insert(position, entry);
        let cutoff = now.checked_sub_signed(self.retention).unwrap_or(DateTime::<Utc>::MIN_UTC);
        while self.entries.front().is_some_and(|entry| entry.at < cutoff) || self.entries.len() > self.max_entries {
            self.entries.pop_front();
        }
    }

    /// Like [`AuditLog::push`], unless the same entry is held already (one a peer tells again, or
    /// restored from several shards); true when it was added.
    pub fn push_once(&mut self, entry: AuditEntry) -> bool {
        let start = self.entries.partition_point(|kept| kept.at < entry.at);
        if self.entries.range(start..).take_while(|kept| kept.at == entry.at).any(|kept| *kept == entry) {
            return false;
        }
        self.push(entry);
        true
    }

    /// Newest first, at or after `since`, at most `limit`.
    pub fn newest(&self, limit: usize, since: Option<DateTime<Utc>>) -> Vec<AuditEntry> {
        self.entries
            .iter()
            .rev()
            .take_while(|entry| since.is_none_or(|since| entry.at >= since))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(seconds: i64, action: AuditAction) -> AuditEntry {
        AuditEntry {
            at: Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap() + TimeDelta::seconds(seconds),
            actor: "night-shift".into(),
            action,
            target: "01JVKZ1E00M4Q5V9D2K7XW3F8A".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn entries_come_back_newest_first_bounded_by_count_and_age() {
        let mut log = AuditLog::new(std::time::Duration::from_secs(3600), 3);
        for second in 0..5 {
            log.push(entry(second, AuditAction::Ack));
        }
        let seconds: Vec<i64> = log.newest(10, None).iter().map(|entry| entry.at.timestamp() % 60).collect();
        assert_eq!(seconds, [4, 3, 2]);
        log.push(entry(7200, AuditAction::Reload));
        assert_eq!(log.len(), 1, "an hour's retention");
        let since = Some(entry(7200, AuditAction::Ack).at);
        assert_eq!(log.newest(10, since).len(), 1);
    }

    #[test]
    fn an_entry_told_again_is_held_once() {
        let mut log = AuditLog::new(std::time::Duration::from_secs(3600), 10);
        assert!(log.push_once(entry(1, AuditAction::Ack)));
        assert!(log.push_once(entry(1, AuditAction::Shelve)), "another action at the same time is another entry");
        assert!(!log.push_once(entry(1, AuditAction::Ack)));
        assert_eq!(log.len(), 2);
    }

    #[test]
    fn actions_have_the_spec_names() {
        assert_eq!(serde_json::to_value(AuditAction::UnshelveExpired).unwrap(), "unshelve_expired");
        assert_eq!(serde_json::to_value(AuditAction::Refused).unwrap(), "refused");
    }
}
