//! What the daemons of one plant tell each other through Redis, without I/O: the records of
//! the journal stream, the peers registry, and which local events are shared.
//!
//! Each daemon appends what the others need and cannot see for themselves to its shard's stream
//! `<prefix>{plant}:journal` (`{plant-<i>}` with shards) — the anomalies it raised and the
//! episodes it cleared, the summaries it wrote, what operators did to alarms through it, the
//! audit entries of its reloads and refusals — as entries with the fields `instance`, `kind` and
//! `json`. Every daemon follows every shard's stream ([`crate::actors::peers`]) and applies the
//! other instances' entries to its store ([`crate::store::Store::apply_peer`]); applying is
//! idempotent (an anomaly held is not added again, an ack of an acked alarm changes nothing) and
//! what was applied is journalled as a peer's ([`crate::journal::Entry::from_peer`]), so it is
//! never published again: no loops, no echoes.
//!
//! The registry `<prefix>{plant}:peers` is a hash: instance → `{"shard", "started_at",
//! "updated_at"}`, refreshed by each daemon every few seconds; `/status` → `peers` lists it.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{AuditAction, AuditEntry};
use crate::domain::{Anomaly, Cleared, Summary};
use crate::journal::{Entry, Event};

/// Approximate length of each journal stream (`XADD … MAXLEN ~`): hours of a busy plant, and
/// far more than a daemon restarting needs to catch up.
pub const JOURNAL_STREAM_MAXLEN: usize = 100_000;
/// Longest JSON of one entry read from the stream; a longer one is skipped as not ours.
const MAX_ENTRY_JSON: usize = 64 * 1024;
/// A peer whose registry entry is older than this is listed as stale.
pub const STALE_AFTER: TimeDelta = TimeDelta::seconds(15);
/// A peer silent this long is taken out of the registry: a daemon moved or retired, not one
/// that restarts.
const FORGET_AFTER: TimeDelta = TimeDelta::days(1);
/// Peers `/status` lists at most (this daemon and the freshest others): a plant runs a few.
const MAX_PEERS_LISTED: usize = 32;
/// Longest registry entry read; a longer one is not ours and is skipped.
const MAX_RECORD_JSON: usize = 1024;

/// An operator acknowledged an alarm through one daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmAck {
    pub id: String,
    pub by: String,
    pub comment: Option<String>,
    #[serde(with = "crate::domain::rfc3339")]
    pub at: DateTime<Utc>,
}

/// An operator shelved an alarm through one daemon, until `until`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmShelve {
    pub id: String,
    pub by: String,
    #[serde(with = "crate::domain::rfc3339")]
    pub until: DateTime<Utc>,
    pub reason: Option<String>,
    #[serde(with = "crate::domain::rfc3339")]
    pub at: DateTime<Utc>,
}

/// An operator unshelved an alarm through one daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmUnshelve {
    pub id: String,
    pub by: String,
    #[serde(with = "crate::domain::rfc3339")]
    pub at: DateTime<Utc>,
}

/// One entry of the journal stream.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerOp {
    Anomaly(Anomaly),
    Cleared(Cleared),
    Summary(Summary),
    Ack(AlarmAck),
    Shelve(AlarmShelve),
    Unshelve(AlarmUnshelve),
    /// An audit entry no alarm operation stands for (a reload, a refused write).
    Audit(AuditEntry),
}

impl PeerOp {
    /// The entry's `kind` field.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerOp::Anomaly(_) => "anomaly",
            PeerOp::Cleared(_) => "cleared",
            PeerOp::Summary(_) => "summary",
            PeerOp::Ack(_) => "ack",
            PeerOp::Shelve(_) => "shelve",
            PeerOp::Unshelve(_) => "unshelve",
            PeerOp::Audit(_) => "audit",
        }
    }

    /// The alarm an operator's action is about.
    pub fn alarm_id(&self) -> Option<&str> {
        match self {
            PeerOp::Ack(ack) => Some(&ack.id),
            PeerOp::Shelve(shelve) => Some(&shelve.id),
            PeerOp::Unshelve(unshelve) => Some(&unshelve.id),
            _ => None,
        }
    }

    /// The entry's `json` field.
    pub fn to_json(&self) -> String {
        let json = match self {
            PeerOp::Anomaly(anomaly) => serde_json::to_string(anomaly),
            PeerOp::Cleared(cleared) => serde_json::to_string(cleared),
            PeerOp::Summary(summary) => serde_json::to_string(summary),
            PeerOp::Ack(ack) => serde_json::to_string(ack),
            PeerOp::Shelve(shelve) => serde_json::to_string(shelve),
            PeerOp::Unshelve(unshelve) => serde_json::to_string(unshelve),
            PeerOp::Audit(entry) => serde_json::to_string(entry),
        };
        // Plain data with string keys always serialises.
        json.unwrap_or_else(|_| "null".to_owned())
    }

    /// Reads an entry's `kind` and `json`; `None` for a kind this build does not know or JSON
    /// that does not parse (a newer daemon's entry, or something else's).
    pub fn parse(kind: &str, json: &[u8]) -> Option<Self> {
        if json.len() > MAX_ENTRY_JSON {
            return None;
        }
        Some(match kind {
            "anomaly" => PeerOp::Anomaly(serde_json::from_slice(json).ok()?),
            "cleared" => PeerOp::Cleared(serde_json::from_slice(json).ok()?),
            "summary" => PeerOp::Summary(serde_json::from_slice(json).ok()?),
            "ack" => PeerOp::Ack(serde_json::from_slice(json).ok()?),
            "shelve" => PeerOp::Shelve(serde_json::from_slice(json).ok()?),
            "unshelve" => PeerOp::Unshelve(serde_json::from_slice(json).ok()?),
            "audit" => PeerOp::Audit(serde_json::from_slice(json).ok()?),
            _ => return None,
        })
    }

    /// What of a local journal entry the peers need, if anything. `shelved` gives a shelved
    /// alarm's end and reason (the audit entry of a shelve words them for people).
    pub fn from_entry(
        entry: &Entry,
        shelved: impl FnOnce(&str) -> Option<(DateTime<Utc>, Option<String>)>,
    ) -> Option<Self> {
        if entry.from_peer {
            return None;
        }
        match &entry.event {
            Event::Anomaly(anomaly) => Some(PeerOp::Anomaly(anomaly.as_ref().clone())),
            Event::Cleared(cleared) => Some(PeerOp::Cleared(cleared.as_ref().clone())),
            Event::Summary(summary) => Some(PeerOp::Summary(summary.as_ref().clone())),
            Event::Audit(audit) => {
                let (id, by, at) = (audit.target.clone(), audit.actor.clone(), audit.at);
                match audit.action {
                    AuditAction::Ack => {
                        let comment = (!audit.detail.is_empty()).then(|| audit.detail.clone());
                        Some(PeerOp::Ack(AlarmAck { id, by, comment, at }))
                    }
                    AuditAction::Shelve => {
                        let (until, reason) = shelved(&id)?;
                        Some(PeerOp::Shelve(AlarmShelve { id, by, until, reason, at }))
                    }
                    AuditAction::Unshelve => Some(PeerOp::Unshelve(AlarmUnshelve { id, by, at })),
                    // Every daemon runs out the shelves itself.
                    AuditAction::UnshelveExpired => None,
                    AuditAction::Reload | AuditAction::Refused => Some(PeerOp::Audit(audit.as_ref().clone())),
                }
            }
            // Alarm states follow from the rest; status changes are each daemon's own.
            Event::Alarm(_) | Event::Status(_) => None,
        }
    }
}

/// A daemon's entry in the peers registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerRecord {
    pub shard: u32,
    #[serde(with = "crate::domain::rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "crate::domain::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// A peer as `/status` → `peers` lists it (this daemon included).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"instance": "wtf-b", "shard": 0, "started_at": "2025-05-19T10:00:00.000Z",
    "updated_at": "2025-05-19T10:15:02.000Z", "stale": false, "this": false}))]
pub struct PeerView {
    pub instance: String,
    pub shard: u32,
    #[serde(with = "crate::domain::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    /// When it last wrote its registry entry.
    #[serde(with = "crate::domain::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    /// Nothing from it for [`STALE_AFTER`]: it stopped, or cannot reach Redis.
    pub stale: bool,
    /// This daemon.
    pub this: bool,
}

/// The registry read back (`HGETALL`), as `/status` lists it: this daemon first, then the others
/// most recently heard from, at most [`MAX_PEERS_LISTED`]; fields that do not parse are left out.
pub fn peer_views(fields: &BTreeMap<String, String>, me: &str, now: DateTime<Utc>) -> Vec<PeerView> {
    let mut views: Vec<PeerView> = fields
        .iter()
        .filter_map(|(instance, json)| {
            let record = read_record(json)?;
            Some(PeerView {
                instance: crate::ingress::bounded(instance, 64),
                shard: record.shard,
                started_at: record.started_at,
                updated_at: record.updated_at,
                stale: now - record.updated_at > STALE_AFTER,
                this: instance == me,
            })
        })
        .collect();
    views.sort_by(|a, b| b.this.cmp(&a.this).then(b.updated_at.cmp(&a.updated_at)).then(a.instance.cmp(&b.instance)));
    views.truncate(MAX_PEERS_LISTED);
    views
}

/// The registry entries to remove, each with the value seen: daemons silent for [`FORGET_AFTER`],
/// never this one. An entry this version cannot read is left (another version may have written
/// it) and only not listed.
pub fn forgotten(fields: &BTreeMap<String, String>, me: &str, now: DateTime<Utc>) -> Vec<(String, String)> {
    fields
        .iter()
        .filter(|(instance, json)| {
            *instance != me && read_record(json).is_some_and(|record| now - record.updated_at > FORGET_AFTER)
        })
        .map(|(instance, json)| (instance.clone(), json.clone()))
        .collect()
}

/// Removes each `(instance, value)` pair of `ARGV` from the hash `KEYS[1]` only if the instance
/// still holds the value seen: a daemon that came back meanwhile has rewritten its entry, and
/// keeps it.
pub const FORGET_SCRIPT: &str = r#"
local removed = 0
for i = 1, #ARGV, 2 do
    if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
        removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
    end
end
return removed
"#;

fn read_record(json: &str) -> Option<PeerRecord> {
    if json.len() > MAX_RECORD_JSON {
        return None;
    }
    serde_json::from_str(json).ok()
}

/// The stream id to follow from when the position read at start is not known: a minute before
/// `started_at` (stream ids begin with Unix milliseconds), so what peers wrote around the start
/// is applied (idempotently) rather than missed.
pub fn fallback_position(started_at: DateTime<Utc>) -> String {
    format!("{}-0", (started_at.timestamp_millis() - 60_000).max(0))
}

#[cfg(test)]
mod tests;
