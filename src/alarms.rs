//! Alarms, the ISA-18.2 way: every episode a detector raises is an alarm that an operator
//! acknowledges, that the process clears, and that may be shelved for a while.
//!
//! ```text
//!   raised ──► active_unack ──ack──► active_ack ──clears──► (normal: gone)
//!                   │
//!                   └──clears──► cleared_unack ──ack──► (normal: gone)
//! ```
//!
//! - Acknowledging never clears an active alarm: only the process does. Acknowledging twice is
//!   not an error; acknowledging a cleared alarm removes it.
//! - Shelving hides an alarm from notification until `shelved_until` (at most `alarms.max_shelve`);
//!   it is listed as shelved and unshelves by itself at expiry, which the audit log records.
//! - While a sensor × parameter is silent (its dropout is active), its process alarms are marked
//!   `suppressed`: they stay, they are not raised anew when the sensor returns in the same
//!   condition, and notifications can leave them out.
//!
//! The [`AlarmBook`] is plain data behind one lock in the store, changed by the store as the
//! detectors' transitions are recorded, and by operators through the API. Every change is
//! returned as the alarm's new state, which the store journals (the live stream, the mirror and
//! notifications follow the journal).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Anomaly, AnomalyId, AnomalyKind, Cleared, Parameter, SensorId};

/// How urgent an alarm is, lowest first.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where an alarm is in its life; `normal` is the last state an alarm is told in, as it goes.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AlarmState {
    /// Raised and not yet acknowledged.
    ActiveUnack,
    /// Raised and acknowledged; the process has not cleared it yet.
    ActiveAck,
    /// Cleared by the process before anyone acknowledged it.
    ClearedUnack,
    /// Cleared and acknowledged: no longer an alarm.
    Normal,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One alarm, as `GET /alarms` serves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "01JVKZ1E00M4Q5V9D2K7XW3F8A", "anomaly_id": "01JVKZ1E00M4Q5V9D2K7XW3F8A",
    "sensor_id": "wtf-pipe-1", "parameter": "pressure", "type": "spike", "priority": "high",
    "state": "active_unack", "raised_at": "2025-05-19T10:15:00.000Z", "cleared_at": null,
    "value": 4.68, "peak": 4.71, "limit": 4.0, "unit": "bar",
    "message": "Pressure spike detected: 4.68 bar exceeds threshold 4 bar",
    "acked_by": null, "acked_at": null, "ack_comment": null,
    "shelved_until": null, "shelved_by": null, "shelve_reason": null, "suppressed": false}))]
pub struct Alarm {
    /// The same as the anomaly's id: one alarm per episode, the same on every daemon.
    #[schema(value_type = String)]
    pub id: AnomalyId,
    #[schema(value_type = String)]
    pub anomaly_id: AnomalyId,
    #[schema(value_type = String)]
    pub sensor_id: SensorId,
    #[schema(value_type = String)]
    pub parameter: Parameter,
    #[serde(rename = "type")]
    pub kind: AnomalyKind,
    pub priority: Priority,
    pub state: AlarmState,
    #[serde(with = "crate::domain::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub raised_at: DateTime<Utc>,
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cleared_at: Option<DateTime<Utc>>,
    /// The value that raised it.
    pub value: Option<f64>,
    /// The most extreme value of the episode so far.
    pub peak: Option<f64>,
    pub limit: f64,
    pub unit: String,
    pub message: String,
    pub acked_by: Option<String>,
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acked_at: Option<DateTime<Utc>>,
    pub ack_comment: Option<String>,
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub shelved_until: Option<DateTime<Utc>>,
    pub shelved_by: Option<String>,
    pub shelve_reason: Option<String>,
    /// Its sensor × parameter is silent: the condition cannot be seen now.
    pub suppressed: bool,
}

impl Alarm {
    pub fn is_shelved(&self, now: DateTime<Utc>) -> bool {
        self.shelved_until.is_some_and(|until| until > now)
    }
}

/// What an operator asked that cannot be done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlarmRefusal {
    #[error("no alarm {0:?}")]
    Unknown(String),
    #[error("a shelve lasts from 1 s to alarms.max_shelve ({0})")]
    ShelveTooLong(String),
}

/// The alarms counted, for `/metrics/prometheus`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmCounts {
    pub by_state: BTreeMap<(AlarmState, Priority), u64>,
    pub shelved: u64,
    pub suppressed: u64,
}

/// Longest comment or reason kept, in characters; the rest is cut.
const MAX_NOTE_CHARS: usize = 500;

/// The alarms still alive, by id, and the rules they follow.
#[derive(Clone, Debug, Default)]
pub struct AlarmBook {
    alarms: BTreeMap<AnomalyId, Alarm>,
    /// The sensor × parameter pairs whose dropout is active.
    silent: BTreeMap<(SensorId, Parameter), AnomalyId>,
}

impl AlarmBook {
    /// A detector raised `anomaly`: a new alarm, in `active_unack`. A dropout also suppresses the
    /// process alarms of its sensor × parameter. Returns every alarm that changed.
    pub fn raise(&mut self, anomaly: &Anomaly, priority: Priority, unit: &str) -> Vec<Alarm> {
        let mut changed = Vec::new();
        if self.alarms.contains_key(&anomaly.id) {
            // The same episode told twice (a replay after a restart): nothing new.
            return changed;
        }
        let alarm = Alarm {
            id: anomaly.id.clone(),
            anomaly_id: anomaly.id.clone(),
            sensor_id: anomaly.sensor_id.clone(),
            parameter: anomaly.parameter.clone(),
            kind: anomaly.kind,
            priority,
            state: AlarmState::ActiveUnack,
            raised_at: anomaly.timestamp,
            cleared_at: None,
            value: anomaly.value,
            peak: anomaly.value,
            limit: anomaly.threshold,
            unit: unit.to_owned(),
            message: anomaly.message.clone(),
            acked_by: None,
            acked_at: None,
            ack_comment: None,
            shelved_until: None,
            shelved_by: None,
            shelve_reason: None,
            suppressed: false,
        };
        if anomaly.kind == AnomalyKind::Dropout {
            let key = (anomaly.sensor_id.clone(), anomaly.parameter.clone());
            self.silent.insert(key, anomaly.id.clone());
            changed.extend(self.set_suppressed(&anomaly.sensor_id, &anomaly.parameter, true));
        }
        self.alarms.insert(alarm.id.clone(), alarm.clone());
        changed.push(alarm);
        changed
    }

    /// The process ended an episode: its alarm goes to `cleared_unack`, or away if it was
    /// acknowledged. A dropout's end lifts the suppression it put on.
    pub fn clear(&mut self, cleared: &Cleared) -> Vec<Alarm> {
        let mut changed = Vec::new();
        if cleared.kind == AnomalyKind::Dropout {
            self.silent.remove(&(cleared.sensor_id.clone(), cleared.parameter.clone()));
            changed.extend(self.set_suppressed(&cleared.sensor_id, &cleared.parameter, false));
        }
        let Some(alarm) = self.alarms.get_mut(&cleared.anomaly_id) else { return changed };
        if alarm.cleared_at.is_some() {
            // Told twice (by this daemon's detector and by a peer's journal): nothing new.
            return changed;
        }
        alarm.cleared_at = Some(cleared.timestamp);
        if let Some(peak) = cleared.peak {
            alarm.peak = Some(peak);
        }
        alarm.state = match alarm.state {
            AlarmState::ActiveAck | AlarmState::Normal => AlarmState::Normal,
            AlarmState::ActiveUnack | AlarmState::ClearedUnack => AlarmState::ClearedUnack,
        };
        changed.push(alarm.clone());
        self.forget_if_normal(&cleared.anomaly_id);
        changed
    }

    /// An operator acknowledged: `active_unack` → `active_ack`, `cleared_unack` → gone. The first
    /// acknowledgement's name, time and comment are kept; a second changes nothing. The alarm,
    /// and whether this changed it.
    pub fn ack(
        &mut self,
        id: &str,
        by: &str,
        comment: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(Alarm, bool), AlarmRefusal> {
        let alarm = self.alarms.get_mut(id).ok_or_else(|| AlarmRefusal::Unknown(bounded(id, 64)))?;
        let first = alarm.acked_at.is_none();
        if first {
            alarm.acked_by = Some(by.to_owned());
            alarm.acked_at = Some(now);
            alarm.ack_comment = comment.map(|comment| bounded(comment, MAX_NOTE_CHARS));
        }
        alarm.state = match alarm.state {
            AlarmState::ActiveUnack | AlarmState::ActiveAck => AlarmState::ActiveAck,
            AlarmState::ClearedUnack | AlarmState::Normal => AlarmState::Normal,
        };
        let alarm = alarm.clone();
        self.forget_if_normal(&alarm.id);
        Ok((alarm, first))
    }

    /// An operator shelved an alarm for `duration` (at most `most`).
    pub fn shelve(
        &mut self,
        id: &str,
        by: &str,
        duration: Duration,
        most: Duration,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Alarm, AlarmRefusal> {
        if duration.is_zero() || duration > most {
            return Err(AlarmRefusal::ShelveTooLong(humantime::format_duration(most).to_string()));
        }
        let alarm = self.alarms.get_mut(id).ok_or_else(|| AlarmRefusal::Unknown(bounded(id, 64)))?;
        let until = now.checked_add_signed(TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX));
        alarm.shelved_until = until.or(Some(DateTime::<Utc>::MAX_UTC));
        alarm.shelved_by = Some(by.to_owned());
        alarm.shelve_reason = reason.map(|reason| bounded(reason, MAX_NOTE_CHARS));
        Ok(alarm.clone())
    }

    pub fn unshelve(&mut self, id: &str) -> Result<Alarm, AlarmRefusal> {
        let alarm = self.alarms.get_mut(id).ok_or_else(|| AlarmRefusal::Unknown(bounded(id, 64)))?;
        alarm.shelved_until = None;
        alarm.shelved_by = None;
        alarm.shelve_reason = None;
        Ok(alarm.clone())
    }

    /// The shelves that have run out by `now`: unshelved, and returned.
    pub fn expire_shelves(&mut self, now: DateTime<Utc>) -> Vec<Alarm> {
        let mut expired = Vec::new();
        for alarm in self.alarms.values_mut() {
            if alarm.shelved_until.is_some_and(|until| until <= now) {
                alarm.shelved_until = None;
                alarm.shelved_by = None;
                alarm.shelve_reason = None;
                expired.push(alarm.clone());
            }
        }
        expired
    }

    pub fn get(&self, id: &str) -> Option<&Alarm> {
        self.alarms.get(id)
    }

    /// The current alarms, newest first.
    pub fn list(&self) -> Vec<Alarm> {
        let mut alarms: Vec<Alarm> = self.alarms.values().cloned().collect();
        alarms.sort_by(|a, b| (b.raised_at, &b.id).cmp(&(a.raised_at, &a.id)));
        alarms
    }

    pub fn len(&self) -> usize {
        self.alarms.len()
    }

    /// How many alarms are in each state and priority, shelved and suppressed, without copying them.
    pub fn counts(&self, now: DateTime<Utc>) -> AlarmCounts {
        let mut counts = AlarmCounts::default();
        for alarm in self.alarms.values() {
            *counts.by_state.entry((alarm.state, alarm.priority)).or_default() += 1;
            counts.shelved += u64::from(alarm.is_shelved(now));
            counts.suppressed += u64::from(alarm.suppressed);
        }
        counts
    }

    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty()
    }

    /// Alarms restored from Redis at start (or told by another daemon): taken as they are,
    /// dropouts re-establishing the suppression they stand for.
    pub fn restore(&mut self, alarm: Alarm) {
        if alarm.state == AlarmState::Normal {
            self.alarms.remove(&alarm.id);
            return;
        }
        if alarm.kind == AnomalyKind::Dropout && alarm.cleared_at.is_none() {
            self.silent.insert((alarm.sensor_id.clone(), alarm.parameter.clone()), alarm.id.clone());
        }
        self.alarms.insert(alarm.id.clone(), alarm);
    }

    fn set_suppressed(&mut self, sensor_id: &SensorId, parameter: &Parameter, suppressed: bool) -> Vec<Alarm> {
        let mut changed = Vec::new();
        for alarm in self.alarms.values_mut() {
            let same = alarm.sensor_id == *sensor_id && alarm.parameter == *parameter;
            if same && alarm.kind.is_process() && alarm.cleared_at.is_none() && alarm.suppressed != suppressed {
                alarm.suppressed = suppressed;
                changed.push(alarm.clone());
            }
        }
        changed
    }

    fn forget_if_normal(&mut self, id: &AnomalyId) {
        if self.alarms.get(id).is_some_and(|alarm| alarm.state == AlarmState::Normal) {
            self.alarms.remove(id);
        }
    }
}

fn bounded(text: &str, max: usize) -> String {
    crate::ingress::bounded(text, max)
}

#[cfg(test)]
mod tests;
