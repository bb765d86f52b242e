//! From alarm events to transitions: the journal tells each alarm's new state after every change
//! (raised, acknowledged, cleared, shelved, suppressed, …); the tracker remembers what it last saw
//! of each alarm and says what changed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::Transition;
use crate::alarms::{Alarm, AlarmState};
use crate::domain::AnomalyId;

/// What was last seen of one alarm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    acked: bool,
    cleared: bool,
    shelved: bool,
}

impl Seen {
    fn of(alarm: &Alarm, at: DateTime<Utc>) -> Self {
        Seen { acked: alarm.acked_at.is_some(), cleared: alarm.cleared_at.is_some(), shelved: alarm.is_shelved(at) }
    }
}

/// The alarms seen and not yet gone. An alarm is forgotten once it is seen `normal`, so this
/// holds no more than the alarm book does.
#[derive(Clone, Debug, Default)]
pub struct AlarmTracker {
    known: HashMap<AnomalyId, Seen>,
}

impl AlarmTracker {
    /// An alarm restored at start: seen as it is, so only what happens to it from now on is a
    /// transition (it is not raised again).
    pub fn know(&mut self, alarm: &Alarm, at: DateTime<Utc>) {
        self.known.insert(alarm.id.clone(), Seen::of(alarm, at));
    }

    /// The transitions `alarm`, journalled at `at`, makes since it was last seen, in the order
    /// they happened to it. An alarm seen for the first time was raised, and is also whatever
    /// else it shows (acknowledged, cleared): so an alarm restored from Redis, or told by another
    /// daemon, derives the transitions it went through, and the outbox's idempotency keys keep
    /// any that were already delivered from going out again.
    pub fn observe(&mut self, alarm: &Alarm, at: DateTime<Utc>) -> Vec<Transition> {
        let now = Seen::of(alarm, at);
        let before = self.known.get(&alarm.id).copied();
        let mut transitions = Vec::new();
        if before.is_none() {
            transitions.push(Transition::Raised);
        }
        let before = before.unwrap_or_default();
        if now.shelved && !before.shelved {
            transitions.push(Transition::Shelved);
        }
        if !now.shelved && before.shelved {
            transitions.push(Transition::Unshelved);
        }
        if now.acked && !before.acked {
            transitions.push(Transition::Acknowledged);
        }
        if now.cleared && !before.cleared {
            transitions.push(Transition::Cleared);
        }
        if alarm.state == AlarmState::Normal {
            self.known.remove(&alarm.id);
        } else {
            self.known.insert(alarm.id.clone(), now);
        }
        transitions
    }

    /// Alarms seen and still alive.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}
