//! The detectors' episode checkpoints on their way to Redis, and those read back at start.
//!
//! A detector hands over a [`Checkpoint`] whenever an episode changes phase; only the newest per
//! sensor × parameter waits here, so however fast episodes change, this holds at most one entry
//! per detector until the mirror takes them.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::lock;
use crate::detection::Checkpoint;
use crate::domain::{Parameter, SensorId};

/// Whose checkpoint: one sensor × parameter.
pub type DetectorKey = (SensorId, Parameter);

#[derive(Default)]
pub struct EpisodeBook {
    /// Taken since the mirror last looked: the newest of each; None means every episode is idle
    /// again (the record is deleted).
    pending: Mutex<HashMap<DetectorKey, Option<Checkpoint>>>,
    /// Read from Redis at start; each detector takes its own once, when it is created.
    restored: Mutex<HashMap<DetectorKey, Checkpoint>>,
    /// The newest checkpoint of every detector with an episode open (restored ones included):
    /// what Redis should hold, for a mirror that must write it all again.
    current: Mutex<HashMap<DetectorKey, Checkpoint>>,
    /// Rung when something is pending.
    pub changed: Notify,
}

impl EpisodeBook {
    /// A detector's newest checkpoint, replacing one still waiting.
    pub fn put(&self, key: DetectorKey, checkpoint: Option<Checkpoint>) {
        match &checkpoint {
            Some(checkpoint) => lock(&self.current).insert(key.clone(), checkpoint.clone()),
            None => lock(&self.current).remove(&key),
        };
        lock(&self.pending).insert(key, checkpoint);
        self.changed.notify_one();
    }

    /// Everything waiting, for the mirror to write.
    pub fn take_pending(&self) -> Vec<(DetectorKey, Option<Checkpoint>)> {
        lock(&self.pending).drain().collect()
    }

    /// A write that failed: its checkpoints wait again, unless a newer one came meanwhile.
    pub fn put_back(&self, batch: Vec<(DetectorKey, Option<Checkpoint>)>) {
        let mut pending = lock(&self.pending);
        for (key, checkpoint) in batch {
            pending.entry(key).or_insert(checkpoint);
        }
    }

    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    /// The checkpoints read from Redis at start.
    pub fn restore(&self, checkpoints: HashMap<DetectorKey, Checkpoint>) {
        // Added to: every shard's keys are read in turn.
        lock(&self.current).extend(checkpoints.clone());
        lock(&self.restored).extend(checkpoints);
    }

    /// Every open checkpoint, to write whole (at a mirror's start, or into a Redis found empty).
    pub fn current(&self) -> Vec<(DetectorKey, Option<Checkpoint>)> {
        lock(&self.current).iter().map(|(key, checkpoint)| (key.clone(), Some(checkpoint.clone()))).collect()
    }

    /// The checkpoint a new detector resumes from, if Redis had one.
    pub fn take_restored(&self, sensor_id: &SensorId, parameter: &Parameter) -> Option<Checkpoint> {
        let mut restored = lock(&self.restored);
        if restored.is_empty() {
            return None;
        }
        restored.remove(&(sensor_id.clone(), parameter.clone()))
    }
}
