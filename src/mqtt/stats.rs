//! `/status`'s `mqtt` block: the connection's state and what came through it.
//!
//! Written by the MQTT actor alone; the counters are atomics so the message path takes no lock
//! unless it refuses something.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::lock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MqttState {
    /// `mqtt.url` is empty.
    Disabled,
    /// Not connected: the first attempt, or reconnecting after the broker went away.
    Connecting,
    Connected,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MqttStatus {
    pub state: MqttState,
    /// Why the last connection failed or ended, if it did.
    pub last_error: Option<String>,
    /// Messages received since start.
    pub messages: u64,
    /// What was refused, by reason: `not_json`, `not_sparkplug`, `not_a_number`, `unknown_topic`,
    /// `unknown_alias`, `invalid_sensor`, `malformed`, and the ingress's own (`unknown_sensor`,
    /// `out_of_order`, `unknown_parameter`, `queue_full`, …).
    pub refused: BTreeMap<String, u64>,
    /// Sparkplug sequence numbers that skipped: messages lost between an edge node and the broker.
    pub sequence_gaps: u64,
    /// Sparkplug death certificates taken (NDEATH, DDEATH).
    pub deaths: u64,
    /// Readings of sensors another shard owns (`cluster.shards > 1`): left to that shard, not
    /// refused.
    pub other_shard: u64,
}

pub struct MqttStats {
    connection: Mutex<(MqttState, Option<String>)>,
    messages: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    sequence_gaps: AtomicU64,
    deaths: AtomicU64,
    other_shard: AtomicU64,
}

impl Default for MqttStats {
    fn default() -> Self {
        Self {
            connection: Mutex::new((MqttState::Disabled, None)),
            messages: AtomicU64::new(0),
            refused: Mutex::new(BTreeMap::new()),
            sequence_gaps: AtomicU64::new(0),
            deaths: AtomicU64::new(0),
            other_shard: AtomicU64::new(0),
        }
    }
}

impl MqttStats {
    /// Sets the state, and the error when there is one (a state change keeps the last error, so
    /// an operator sees why the broker went away after it came back). True when it changed.
    pub fn set_state(&self, state: MqttState, error: Option<String>) -> bool {
        let mut connection = lock(&self.connection);
        let changed = connection.0 != state || (error.is_some() && connection.1 != error);
        connection.0 = state;
        if error.is_some() {
            connection.1 = error;
        }
        changed
    }

    pub fn state(&self) -> MqttState {
        lock(&self.connection).0
    }

    pub fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, reason: &'static str) {
        *lock(&self.refused).entry(reason).or_insert(0) += 1;
    }

    pub fn sequence_gap(&self) {
        self.sequence_gaps.fetch_add(1, Ordering::Relaxed);
    }

    pub fn other_shard(&self) {
        self.other_shard.fetch_add(1, Ordering::Relaxed);
    }

    pub fn death(&self) {
        self.deaths.fetch_add(1, Ordering::Relaxed);
    }

    pub fn status(&self) -> MqttStatus {
        let (state, last_error) = lock(&self.connection).clone();
        MqttStatus {
            state,
            last_error,
            messages: self.messages.load(Ordering::Relaxed),
            refused: lock(&self.refused).iter().map(|(reason, count)| ((*reason).to_owned(), *count)).collect(),
            sequence_gaps: self.sequence_gaps.load(Ordering::Relaxed),
            deaths: self.deaths.load(Ordering::Relaxed),
            other_shard: self.other_shard.load(Ordering::Relaxed),
        }
    }
}
