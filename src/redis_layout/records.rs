//! The records that let a restarted daemon carry on where it stopped, beside the anomalies:
//! the alarms with their acknowledgements and shelves, the audit trail, and the detectors'
//! episode checkpoints. How each is laid out, and the commands one batch adds for them.
//!
//! - alarms: hash, field = alarm id, value = the alarm's JSON as `GET /alarms` serves it; an alarm
//!   gone (cleared and acknowledged) is deleted.
//! - audit: sorted set, score = the entry's time in Unix ms, member = its JSON as `GET /audit`
//!   serves it; trimmed by `audit.retention` and `audit.max_entries`.
//! - episodes: hash, field = `<sensor_id>/<parameter>`, value = the [`Checkpoint`]'s JSON; a
//!   detector whose episodes are all idle again is deleted.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Keys, add_scored, retention_cutoff, trim_scored};
use crate::alarms::Alarm;
use crate::audit::AuditEntry;
use crate::detection::Checkpoint;
use crate::domain::{AnomalyId, Parameter, SensorId};
use crate::store::DetectorKey;

/// The alarms, audit entries and checkpoints one batch writes.
#[derive(Clone, Debug, Default)]
pub struct Records {
    /// Alarm id → its newest state, or None when it is gone.
    pub alarms: Vec<(AnomalyId, Option<Arc<Alarm>>)>,
    pub audit: Vec<Arc<AuditEntry>>,
    /// None: every episode of that detector is idle again.
    pub episodes: Vec<(DetectorKey, Option<Checkpoint>)>,
}

impl Records {
    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty() && self.audit.is_empty() && self.episodes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.alarms.len() + self.audit.len() + self.episodes.len()
    }
}

/// How long the audit trail is kept in Redis (`audit.retention`, `audit.max_entries`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AuditLimits {
    pub now: DateTime<Utc>,
    pub retention: Duration,
    pub max_entries: usize,
}

/// The hash field of a detector's checkpoint.
fn episode_field(key: &DetectorKey) -> String {
    format!("{}/{}", key.0.as_str(), key.1.as_str())
}

/// The detector a hash field names; parameters have no `/`, sensor ids may.
pub fn parse_episode_field(field: &str) -> Option<DetectorKey> {
    let (sensor, parameter) = field.rsplit_once('/')?;
    (!sensor.is_empty() && !parameter.is_empty()).then(|| (SensorId::new(sensor), Parameter::new(parameter)))
}

/// Adds the commands that write `records` to `pipe`, and trims the audit trail.
pub fn write(pipe: &mut redis::Pipeline, keys: &Keys, records: &Records, audit: &AuditLimits) {
    let (set, gone): (Vec<_>, Vec<_>) = records.alarms.iter().partition(|(_, alarm)| alarm.is_some());
    let fields: Vec<(&str, String)> = set
        .iter()
        .filter_map(|(id, alarm)| Some((id.as_str(), serde_json::to_string(alarm.as_deref()?).ok()?)))
        .collect();
    if !fields.is_empty() {
        pipe.cmd("HSET").arg(&keys.alarms).arg(fields).ignore();
    }
    let gone: Vec<&str> = gone.iter().map(|(id, _)| id.as_str()).collect();
    if !gone.is_empty() {
        pipe.cmd("HDEL").arg(&keys.alarms).arg(gone).ignore();
    }

    let cutoff = retention_cutoff(audit.now, audit.retention);
    add_scored(pipe, &keys.audit, records.audit.iter().map(|entry| (entry.at, entry.as_ref())), cutoff);
    if !records.audit.is_empty() {
        trim_scored(pipe, &keys.audit, cutoff, audit.max_entries);
    }

    let (set, idle): (Vec<_>, Vec<_>) = records.episodes.iter().partition(|(_, checkpoint)| checkpoint.is_some());
    let fields: Vec<(String, String)> = set
        .iter()
        .filter_map(|(key, checkpoint)| Some((episode_field(key), serde_json::to_string(checkpoint.as_ref()?).ok()?)))
        .collect();
    if !fields.is_empty() {
        pipe.cmd("HSET").arg(&keys.episodes).arg(fields).ignore();
    }
    let idle: Vec<String> = idle.iter().map(|(key, _)| episode_field(key)).collect();
    if !idle.is_empty() {
        pipe.cmd("HDEL").arg(&keys.episodes).arg(idle).ignore();
    }
}
