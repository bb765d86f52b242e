//! Seeded stand-ins for the plant's sensors: one [`SensorSimulator`] per sensor turns a seed into
//! a stream of readings of every configured parameter, with spikes, drifts and dropouts injected
//! at configured rates.
//!
//! Pure: no clock, no I/O, no logging. The caller owns the schedule and passes each reading's
//! timestamp, so the same seed and settings replay the same stream exactly, in tests as in the
//! daemon, whatever the wall clock does.
//!
//! ## Normal operation
//!
//! Each parameter follows a mean-reverting random walk (an Ornstein–Uhlenbeck process, stepped
//! exactly so its statistics do not depend on the interval) around a centre near the middle of its
//! normal range, plus a little measurement noise. Temperature moves slowly (minutes to tens of
//! minutes), pressure within a couple of minutes, flow in between; a parameter a plant adds
//! (`[parameters.turbidity]`) gets a walk shaped from its normal range. The walk is reflected off,
//! and the measurement clamped to, bounds just inside the normal range, so a normal reading is
//! always strictly inside it: 10–35 °C, 1.0–3.0 bar, 20–100 L/min by default. Readings are rounded
//! to two decimals.
//!
//! ## Injected anomalies
//!
//! Arrivals are Poisson: on each step a kind arrives with probability
//! `rate_per_hour × interval / 1 h` (capped at 1). One injection runs at a time per sensor; one
//! that arrives meanwhile waits (at most one of each kind), and one normal reading always separates
//! two injections, so a detector sees each as its own episode; the long-run counts stay within a few
//! per cent of the configured rates.
//!
//! - **Spike**: one reading of a random parameter 5–30 % beyond its spike threshold (or below its
//!   low spike threshold, when one is configured); the next reading is back on the walk.
//! - **Drift**: a 2–5 s ramp to a level 30–70 % of the way from the drift threshold to the spike
//!   threshold (or from the low drift to the low spike threshold), held 20–45 s with small noise
//!   that stays strictly between the two, then a 2–5 s ramp back to the walk. A detector with a
//!   15 s drift duration raises exactly one drift and no spike.
//!
//! Only parameters with the limits an injection aims at get it: a parameter without a spike
//! threshold never spikes.
//! - **Dropout**: no reading at all (`step` returns `None`) for 12–30 s, longer than the 10 s
//!   dropout timeout.
//!
//! Durations are counted in whole steps of the interval, rounded up, so with a coarse interval
//! they come out longer, never shorter.
//!
//! ## What the defaults give
//!
//! With 40 spikes, 10 drifts and 8 dropouts per sensor per hour and three sensors, the plant sees
//! 120 spikes an hour: the first after about 30 s on average. A drift arrives about every 2 minutes
//! and a dropout about every 2.5 minutes across the plant, so every kind usually shows up within
//! about five minutes. That is 174 episodes an hour, about three a minute (about 3.7 alarms a
//! minute where a dropout raises one per parameter): enough to exercise everything, never a flood.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use crate::config::Config;
use crate::detection::Rules;
use crate::domain::{AnomalyKind, Parameter, Reading, SensorId, Values};

/// What the generator is injecting, for tests and debug logs.
#[derive(Clone, Debug, PartialEq)]
pub enum Injection {
    /// One reading of `parameter` at `value`, strictly beyond its spike (or low spike) threshold.
    Spike { parameter: Parameter, value: f64 },
    /// `parameter` ramps to `level`, strictly between its drift and spike thresholds (or its low
    /// ones), and stays near it for `hold`: the time from the first to the last held reading.
    Drift { parameter: Parameter, level: f64, hold: Duration },
    /// No reading for `length`, a whole number of intervals.
    Dropout { length: Duration },
}

/// One simulated parameter: its normal range and the limits injections aim at.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatedParameter {
    pub parameter: Parameter,
    pub normal: [f64; 2],
    pub spike: Option<f64>,
    pub drift: Option<f64>,
    pub low_spike: Option<f64>,
    pub low_drift: Option<f64>,
}

/// Settings a reload may change live.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulationSettings {
    /// Time between two readings; the caller's schedule must match it.
    pub interval: Duration,
    /// Per sensor per hour of readings.
    pub spikes_per_hour: f64,
    pub drifts_per_hour: f64,
    pub dropouts_per_hour: f64,
    /// Every configured parameter, in name order, with the limits the sensor's detectors use.
    pub parameters: Vec<SimulatedParameter>,
}

impl SimulationSettings {
    pub fn from_config(config: &Config, sensor_id: &str) -> Self {
        let parameters = config
            .parameters
            .iter()
            .map(|(name, spec)| {
                let rules = Rules::for_sensor(config, sensor_id, name.as_str());
                SimulatedParameter {
                    parameter: name.clone(),
                    normal: spec.normal,
                    spike: rules.limit(AnomalyKind::Spike),
                    drift: rules.limit(AnomalyKind::Drift),
                    low_spike: rules.limit(AnomalyKind::LowSpike),
                    low_drift: rules.limit(AnomalyKind::LowDrift),
                }
            })
            .collect();
        Self {
            interval: config.sensors.interval,
            spikes_per_hour: config.simulation.spikes_per_hour,
            drifts_per_hour: config.simulation.drifts_per_hour,
            dropouts_per_hour: config.simulation.dropouts_per_hour,
            parameters,
        }
    }
}

/// The per-sensor seed: derived from the global seed and the sensor's name with a stable hash
/// (not `DefaultHasher`, whose output may change between Rust releases), so a seed replays the
/// same run on any build, and adding a sensor does not change the others' streams.
pub fn sensor_seed(global_seed: u64, sensor_id: &str) -> u64 {
    // FNV-1a over the name, then SplitMix64's finaliser so that similar names ("wtf-pipe-1",
    // "wtf-pipe-2") and neighbouring global seeds land far apart.
    let mut hasher = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, sensor_id.as_bytes());
    let hash = std::hash::Hasher::finish(&hasher);
    let mut z = global_seed.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ hash;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How one parameter behaves in normal operation.
struct NormalBehaviour {
    /// The normal range; readings stay strictly inside it.
    low: f64,
    high: f64,
    /// The plant's nominal value.
    center: f64,
    /// Standard deviation of the walk around its centre, in the long run.
    spread: f64,
    /// How fast the walk forgets where it was: after this long, a deviation has shrunk to 1/e.
    time_constant_secs: f64,
    /// Standard deviation of the measurement noise added to each reading.
    noise: f64,
}

impl NormalBehaviour {
    fn of(parameter: &SimulatedParameter) -> Self {
        let [low, high] = parameter.normal;
        // Spreads put ±3 standard deviations, a day's extremes, at 75–85 % of each range, so a day
        // covers most of it while the bounds are met only rarely. Time constants of 10–60 minutes
        // keep one reading close to the last, as in a real pipe. The three defaults have their
        // own shapes (water temperature is slow, pressure quick); others are shaped from the range.
        let tuned = match (parameter.parameter.as_str(), low, high) {
            ("temperature", 10.0, 35.0) => Some((22.0, 3.5, 3600.0, 0.05)),
            ("pressure", 1.0, 3.0) => Some((2.0, 0.25, 600.0, 0.01)),
            ("flow", 20.0, 100.0) => Some((60.0, 10.0, 900.0, 0.4)),
            _ => None,
        };
        let span = high - low;
        let (center, spread, time_constant_secs, noise) =
            tuned.unwrap_or(((low + high) / 2.0, 0.125 * span, 900.0, 0.005 * span));
        NormalBehaviour { low, high, center, spread, time_constant_secs, noise }
    }

    fn span(&self) -> f64 {
        self.high - self.low
    }

    /// Where the walk reflects: 2 % of the range inside each end, leaving room for the noise.
    fn walk_bounds(&self) -> (f64, f64) {
        let margin = 0.02 * self.span();
        (self.low + margin, self.high - margin)
    }

    /// Where a measurement is clamped: 1 % inside each end, still strictly inside after rounding.
    fn reading_bounds(&self) -> (f64, f64) {
        let margin = 0.01 * self.span();
        (self.low + margin, self.high - margin)
    }
}

/// How far a sensor's centres sit from the plant's nominal values, as a fraction of the range:
/// pipes differ a little, which also makes the three streams easy to tell apart.
const CENTER_OFFSET: f64 = 0.05;

/// A spike's excess over its threshold, as a fraction of the threshold's size.
const SPIKE_EXCESS: (f64, f64) = (0.05, 0.30);
/// A drift's level, as a fraction of the way from the drift threshold to the spike threshold.
const DRIFT_LEVEL: (f64, f64) = (0.30, 0.70);
/// Held drift readings stay within this band of the same fractions, whatever the noise draws.
const DRIFT_BAND: (f64, f64) = (0.15, 0.85);
/// Standard deviation of a held drift reading around its level, as a fraction of the gap.
const DRIFT_NOISE: f64 = 0.03;
const DRIFT_RAMP_SECS: (f64, f64) = (2.0, 5.0);
const DRIFT_HOLD_SECS: (f64, f64) = (20.0, 45.0);
const DROPOUT_SECS: (f64, f64) = (12.0, 30.0);

/// The shortest interval stepped: a zero interval would make every duration infinitely many steps.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// A drift in progress. Its shape is fixed when it starts, so a reload that moves the thresholds
/// does not bend it half-way.
#[derive(Clone, Debug)]
struct DriftEpisode {
    parameter: Parameter,
    level: f64,
    hold: Duration,
    /// The band the held readings stay strictly inside: (drift, spike) thresholds for a high
    /// drift, (low spike, low drift) for a low one.
    band: (f64, f64),
    /// True for a low drift: the ramp goes down, and must not pass the band's low end.
    low: bool,
    ramp_up_steps: u64,
    hold_steps: u64,
    ramp_down_steps: u64,
    /// Index of the current step within the episode.
    position: u64,
}

impl DriftEpisode {
    fn total_steps(&self) -> u64 {
        self.ramp_up_steps + self.hold_steps + self.ramp_down_steps
    }

    fn gap(&self) -> f64 {
        self.band.1 - self.band.0
    }
}

#[derive(Clone, Copy, Debug)]
struct DropoutEpisode {
    length: Duration,
    steps: u64,
    position: u64,
}

/// The injection the current step belongs to.
#[derive(Clone, Debug)]
enum Episode {
    Spike { parameter: Parameter, value: f64 },
    Drift(DriftEpisode),
    Dropout(DropoutEpisode),
}

impl Episode {
    fn is_last_step(&self) -> bool {
        match self {
            Episode::Spike { .. } => true,
            Episode::Drift(drift) => drift.position + 1 >= drift.total_steps(),
            Episode::Dropout(dropout) => dropout.position + 1 >= dropout.steps,
        }
    }

    fn advance(&mut self) {
        match self {
            Episode::Spike { .. } => {}
            Episode::Drift(drift) => drift.position += 1,
            Episode::Dropout(dropout) => dropout.position += 1,
        }
    }

    fn injection(&self) -> Injection {
        match self {
            Episode::Spike { parameter, value } => Injection::Spike { parameter: parameter.clone(), value: *value },
            Episode::Drift(drift) => {
                Injection::Drift { parameter: drift.parameter.clone(), level: drift.level, hold: drift.hold }
            }
            Episode::Dropout(dropout) => Injection::Dropout { length: dropout.length },
        }
    }
}

/// Arrivals waiting for the running injection to end: at most one of each kind, so even absurd
/// rates cannot build a backlog.
#[derive(Clone, Copy, Debug, Default)]
struct Waiting {
    spike: bool,
    drift: bool,
    dropout: bool,
}

/// One parameter's walk.
#[derive(Clone, Copy, Debug)]
struct Walk {
    /// This sensor's centre for the parameter.
    center: f64,
    /// The underlying process value, before measurement noise.
    value: f64,
}

/// One simulated sensor: its random walks, its random stream and the injection in progress.
#[derive(Clone, Debug)]
pub struct SensorSimulator {
    sensor_id: SensorId,
    settings: SimulationSettings,
    /// Xoshiro256++ rather than `StdRng`: its output is fixed by name across rand releases (so a
    /// seed replays the same run after an upgrade), and it is `Clone`.
    rng: Xoshiro256PlusPlus,
    /// One per parameter of `settings.parameters`, in the same order.
    walks: Vec<Walk>,
    waiting: Waiting,
    /// The injection the last step belonged to; `None` for a normal reading.
    episode: Option<Episode>,
}

impl SensorSimulator {
    pub fn new(sensor_id: SensorId, seed: u64, settings: SimulationSettings) -> Self {
        let rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut simulator =
            Self { sensor_id, settings, rng, walks: Vec::new(), waiting: Waiting::default(), episode: None };
        simulator.walks =
            simulator.settings.parameters.clone().iter().map(|parameter| simulator.new_walk(parameter)).collect();
        simulator
    }

    /// A walk anywhere it could be in the long run, not at the centre, so a fresh start looks
    /// like a plant that has been running.
    fn new_walk(&mut self, parameter: &SimulatedParameter) -> Walk {
        let behaviour = NormalBehaviour::of(parameter);
        let center = behaviour.center + behaviour.span() * CENTER_OFFSET * (2.0 * self.rng.random::<f64>() - 1.0);
        let (low, high) = behaviour.walk_bounds();
        Walk { center, value: reflect(center + behaviour.spread * gaussian(&mut self.rng), low, high) }
    }

    /// Advances one interval: the reading taken at `timestamp`, or None while the sensor is silent
    /// (a dropout).
    pub fn step(&mut self, timestamp: DateTime<Utc>) -> Option<Reading> {
        let interval_secs = self.settings.interval.max(MIN_INTERVAL).as_secs_f64();
        self.advance_walk(interval_secs);
        self.draw_arrivals(interval_secs);
        self.episode = match self.episode.take() {
            Some(mut episode) if !episode.is_last_step() => {
                episode.advance();
                Some(episode)
            }
            // An injection ended on the last step: this one is normal, so the next cannot merge with it.
            Some(_) => None,
            None => self.start_waiting(),
        };
        let mut values = self.measure();
        match self.episode.clone() {
            None => {}
            Some(Episode::Spike { parameter, value }) => values.set(parameter, value),
            Some(Episode::Drift(drift)) => {
                let normal = values.get(drift.parameter.as_str()).unwrap_or(drift.level);
                let value = self.drift_value(&drift, normal);
                values.set(drift.parameter.clone(), value);
            }
            Some(Episode::Dropout(_)) => return None,
        }
        Some(Reading { sensor_id: self.sensor_id.clone(), timestamp, values })
    }

    /// What is being injected at the moment, if anything (a spike only on the step that emits it).
    pub fn injection(&self) -> Option<Injection> {
        self.episode.as_ref().map(Episode::injection)
    }

    /// Applies new settings live (a config reload); the current walks and any injection in
    /// progress continue, the latter with the shape it started with. A parameter the reload
    /// added starts a walk of its own.
    pub fn set_settings(&mut self, settings: SimulationSettings) {
        let old: Vec<(Parameter, Walk)> = self
            .settings
            .parameters
            .iter()
            .map(|simulated| simulated.parameter.clone())
            .zip(self.walks.clone())
            .collect();
        self.settings = settings;
        self.walks = self
            .settings
            .parameters
            .clone()
            .iter()
            .map(|simulated| match old.iter().find(|(parameter, _)| *parameter == simulated.parameter) {
                Some((_, walk)) => *walk,
                None => self.new_walk(simulated),
            })
            .collect();
    }

    pub fn settings(&self) -> &SimulationSettings {
        &self.settings
    }

    pub fn sensor_id(&self) -> &SensorId {
        &self.sensor_id
    }

    /// Steps each walk by one interval with the exact Ornstein–Uhlenbeck transition: the deviation
    /// from the centre decays by `e^(-dt/τ)` and gains just enough noise to keep the long-run spread.
    fn advance_walk(&mut self, interval_secs: f64) {
        for (parameter, walk) in self.settings.parameters.iter().zip(self.walks.iter_mut()) {
            let behaviour = NormalBehaviour::of(parameter);
            let decay = (-interval_secs / behaviour.time_constant_secs).exp();
            let step_spread = behaviour.spread * (1.0 - decay * decay).sqrt();
            let next = walk.center + (walk.value - walk.center) * decay + step_spread * gaussian(&mut self.rng);
            let (low, high) = behaviour.walk_bounds();
            walk.value = reflect(next, low, high);
        }
    }

    /// The normal reading of every parameter: the walk plus measurement noise, inside the range.
    fn measure(&mut self) -> Values {
        let mut values = Vec::with_capacity(self.walks.len());
        for (parameter, walk) in self.settings.parameters.iter().zip(&self.walks) {
            let behaviour = NormalBehaviour::of(parameter);
            let (low, high) = behaviour.reading_bounds();
            let value = walk.value + behaviour.noise * gaussian(&mut self.rng);
            values.push((
                parameter.parameter.clone(),
                round_within(bound(value, low, high), behaviour.low, behaviour.high),
            ));
        }
        // The settings list the parameters in name order.
        Values::in_order(values)
    }

    /// One Bernoulli draw per kind and step, always all three, so the random stream does not
    /// depend on which injections are running.
    fn draw_arrivals(&mut self, interval_secs: f64) {
        let settings = &self.settings;
        let rates = [settings.spikes_per_hour, settings.drifts_per_hour, settings.dropouts_per_hour];
        let probabilities = rates.map(|rate| step_probability(rate, interval_secs));
        let arrived = probabilities.map(|probability| self.rng.random::<f64>() < probability);
        // A kind whose rate a reload set to zero also drops the arrival it had waiting.
        let allowed = probabilities.map(|probability| probability > 0.0);
        self.waiting.spike = (self.waiting.spike || arrived[0]) && allowed[0];
        self.waiting.drift = (self.waiting.drift || arrived[1]) && allowed[1];
        self.waiting.dropout = (self.waiting.dropout || arrived[2]) && allowed[2];
    }

    /// Starts the shortest waiting injection first, so spikes are not held back behind drifts.
    fn start_waiting(&mut self) -> Option<Episode> {
        if std::mem::take(&mut self.waiting.spike) {
            self.start_spike()
        } else if std::mem::take(&mut self.waiting.dropout) {
            Some(self.start_dropout())
        } else if std::mem::take(&mut self.waiting.drift) {
            self.start_drift()
        } else {
            None
        }
    }

    /// A spike of a random parameter that has a spike (or low spike) threshold; None if none has.
    fn start_spike(&mut self) -> Option<Episode> {
        let candidates: Vec<(usize, bool)> = self
            .settings
            .parameters
            .iter()
            .enumerate()
            .flat_map(|(index, parameter)| {
                let high = parameter.spike.map(|_| (index, false));
                let low = parameter.low_spike.map(|_| (index, true));
                high.into_iter().chain(low)
            })
            .collect();
        let &(index, low) = self.pick(&candidates)?;
        let simulated = self.settings.parameters[index].clone();
        let excess = self.uniform(SPIKE_EXCESS);
        let value = if low {
            let threshold = simulated.low_spike.unwrap_or_default();
            let scale = threshold.abs().max(simulated.low_drift.unwrap_or(threshold) - threshold).max(f64::EPSILON);
            round_within(threshold - scale * excess, f64::NEG_INFINITY, threshold)
        } else {
            let threshold = simulated.spike.unwrap_or_default();
            // Scaled by the threshold's size so the excess is clear at any unit, or by the gap
            // above the drift threshold when the threshold is near zero.
            let scale = threshold.abs().max(threshold - simulated.drift.unwrap_or(threshold)).max(f64::EPSILON);
            round_within(threshold + scale * excess, threshold, f64::INFINITY)
        };
        Some(Episode::Spike { parameter: simulated.parameter, value })
    }

    /// A drift of a random parameter that has both thresholds of a drift band; None if none has.
    fn start_drift(&mut self) -> Option<Episode> {
        let candidates: Vec<(Parameter, (f64, f64), bool)> = self
            .settings
            .parameters
            .iter()
            .flat_map(|parameter| {
                let high = parameter.drift.zip(parameter.spike).map(|band| (parameter.parameter.clone(), band, false));
                let low =
                    parameter.low_spike.zip(parameter.low_drift).map(|band| (parameter.parameter.clone(), band, true));
                high.into_iter().chain(low)
            })
            .collect();
        let (parameter, band, low) = self.pick(&candidates)?.clone();
        let fraction = self.uniform(DRIFT_LEVEL);
        // A high drift climbs from the drift threshold towards the spike one; a low drift falls
        // from the low drift threshold towards the low spike one.
        let level = if low { band.1 - (band.1 - band.0) * fraction } else { band.0 + (band.1 - band.0) * fraction };
        let interval = self.settings.interval.max(MIN_INTERVAL);
        let ramp_up_steps = steps_for(self.uniform(DRIFT_RAMP_SECS), interval);
        // One more held reading than intervals, so the first and last are at least `hold` apart.
        let hold_intervals = steps_for(self.uniform(DRIFT_HOLD_SECS), interval);
        let ramp_down_steps = steps_for(self.uniform(DRIFT_RAMP_SECS), interval);
        Some(Episode::Drift(DriftEpisode {
            parameter,
            level: round_within(level, band.0, band.1),
            hold: intervals(interval, hold_intervals),
            band,
            low,
            ramp_up_steps,
            hold_steps: hold_intervals + 1,
            ramp_down_steps,
            position: 0,
        }))
    }

    fn start_dropout(&mut self) -> Episode {
        let interval = self.settings.interval.max(MIN_INTERVAL);
        let steps = steps_for(self.uniform(DROPOUT_SECS), interval);
        Episode::Dropout(DropoutEpisode { length: intervals(interval, steps), steps, position: 0 })
    }

    /// The drifting parameter's reading on this step of the episode; `normal` is what it would
    /// read without the drift, which the ramps start from and return to.
    fn drift_value(&mut self, drift: &DriftEpisode, normal: f64) -> f64 {
        let position = drift.position;
        let (low, high) = drift.band;
        // The ramps never pass the band's far end (a spike, or a low spike).
        let (above, below) = if drift.low { (low, f64::INFINITY) } else { (f64::NEG_INFINITY, high) };
        if position < drift.ramp_up_steps {
            // Strictly between the normal value and the level: the ramp never overshoots.
            let fraction = (position + 1) as f64 / (drift.ramp_up_steps + 1) as f64;
            round_within(normal + (drift.level - normal) * fraction, above, below)
        } else if position < drift.ramp_up_steps + drift.hold_steps {
            let gap = drift.gap();
            let value = drift.level + gap * DRIFT_NOISE * gaussian(&mut self.rng);
            let band = bound(value, low + gap * DRIFT_BAND.0, low + gap * DRIFT_BAND.1);
            round_within(band, low, high)
        } else {
            let done = position - drift.ramp_up_steps - drift.hold_steps;
            let fraction = 1.0 - (done + 1) as f64 / (drift.ramp_down_steps + 1) as f64;
            round_within(normal + (drift.level - normal) * fraction, above, below)
        }
    }

    fn pick<'a, T>(&mut self, candidates: &'a [T]) -> Option<&'a T> {
        if candidates.is_empty() {
            return None;
        }
        candidates.get(self.rng.random_range(0..candidates.len()))
    }

    fn uniform(&mut self, (low, high): (f64, f64)) -> f64 {
        low + (high - low) * self.rng.random::<f64>()
    }
}

/// The chance that a Poisson process of `rate_per_hour` fires within one step; 0 for a rate that is
/// not a positive number, at most 1.
fn step_probability(rate_per_hour: f64, interval_secs: f64) -> f64 {
    let probability = rate_per_hour * interval_secs / 3600.0;
    if probability > 0.0 { probability.min(1.0) } else { 0.0 }
}

/// How many steps of `interval` cover `secs`, at least one.
fn steps_for(secs: f64, interval: Duration) -> u64 {
    // `as` saturates, and the minimum interval keeps the quotient small anyway.
    ((secs / interval.as_secs_f64()).ceil() as u64).max(1)
}

fn intervals(interval: Duration, count: u64) -> Duration {
    interval.saturating_mul(u32::try_from(count).unwrap_or(u32::MAX))
}

/// A standard normal draw.
fn gaussian(rng: &mut Xoshiro256PlusPlus) -> f64 {
    rng.sample(StandardNormal)
}

/// Folds a value that stepped past a bound back inside, as a walk bouncing off a wall would.
fn reflect(value: f64, low: f64, high: f64) -> f64 {
    let folded = if value > high {
        2.0 * high - value
    } else if value < low {
        2.0 * low - value
    } else {
        value
    };
    bound(folded, low, high)
}

/// Like `f64::clamp`, but never panics, whatever the bounds.
fn bound(value: f64, low: f64, high: f64) -> f64 {
    value.max(low).min(high)
}

/// Rounds to two decimals, or finer if two decimals would break the strict bounds the value must
/// keep (thresholds only a few hundredths apart); the exact value if even that fails.
fn round_within(value: f64, above: f64, below: f64) -> f64 {
    for scale in [1e2, 1e4, 1e6] {
        let rounded = (value * scale).round() / scale;
        if rounded > above && rounded < below {
            return rounded;
        }
    }
    value
}

#[cfg(test)]
mod tests;
