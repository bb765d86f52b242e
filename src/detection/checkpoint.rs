//! What of a detector outlives a restart.
//!
//! A [`Checkpoint`] is taken whenever an episode changes phase (idle, pending, raised) and is
//! kept in Redis; at start the detector resumes from it, so a value still above its limit after a
//! restart raises nothing new, a pending drift keeps its start and a raised one its id.
//!
//! Left out, because the next readings rebuild them and a stale copy would mislead: the rate
//! window's samples, and the last reading of a sensor that is still reporting (restored, its
//! silence would be measured from before the restart). A raised dropout keeps its last reading:
//! that is when the silence began.

use serde::{Deserialize, Serialize};

use super::episode::{LevelEpisode, RateEpisode, StuckEpisode};
use super::{LastReading, ParameterDetector};
use crate::domain::{AnomalyId, AnomalyKind, Parameter, SensorId};

/// The episodes of one sensor × parameter that are pending or raised, as JSON in Redis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    spike: LevelEpisode,
    drift: LevelEpisode,
    low_spike: LevelEpisode,
    low_drift: LevelEpisode,
    rate: RateEpisode,
    stuck: StuckEpisode,
    /// A raised dropout: its id and the last reading before the silence.
    dropout: Option<(AnomalyId, LastReading)>,
    raised_ids: Vec<(AnomalyKind, AnomalyId)>,
}

impl ParameterDetector {
    /// Whether the episodes changed phase since the last call: something started pending, was
    /// raised or cleared, and a fresh [`checkpoint`](Self::checkpoint) is due. A few comparisons:
    /// cheap enough to ask after every reading.
    pub fn checkpoint_due(&mut self) -> bool {
        let phase = self.phase();
        std::mem::replace(&mut self.checkpointed_phase, phase) != phase
    }

    /// The state to keep, or None when every episode is idle (nothing to keep).
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        if self.phase() == 0 {
            return None;
        }
        Some(Checkpoint {
            spike: self.spike,
            drift: self.drift,
            low_spike: self.low_spike,
            low_drift: self.low_drift,
            rate: self.rate.clone(),
            stuck: self.stuck,
            dropout: self.dropout.clone().zip(self.last),
            raised_ids: self.raised_ids.clone(),
        })
    }

    /// A detector that carries on from `checkpoint`.
    pub fn resume(sensor_id: SensorId, parameter: Parameter, checkpoint: Checkpoint) -> Self {
        let mut detector = Self::new(sensor_id, parameter);
        detector.spike = checkpoint.spike;
        detector.drift = checkpoint.drift;
        detector.low_spike = checkpoint.low_spike;
        detector.low_drift = checkpoint.low_drift;
        detector.rate = checkpoint.rate;
        detector.stuck = checkpoint.stuck;
        if let Some((anomaly_id, last)) = checkpoint.dropout {
            detector.dropout = Some(anomaly_id);
            detector.last = Some(last);
        }
        detector.raised_ids = checkpoint.raised_ids;
        detector.checkpointed_phase = detector.phase();
        detector
    }

    /// Each episode's phase in two bits, the dropout in one more: equal phases, equal checkpoints
    /// but for peaks and off-delay runs, which a restart may lose.
    fn phase(&self) -> u16 {
        let levels = [self.spike, self.drift, self.low_spike, self.low_drift];
        let mut phase = levels.iter().fold(0u16, |bits, level| bits << 2 | u16::from(level.phase()));
        phase = phase << 1 | u16::from(self.rate.is_raised());
        phase = phase << 1 | u16::from(self.stuck.is_raised());
        phase << 1 | u16::from(self.dropout.is_some())
    }
}
