//! The one way readings come in, whatever sends them: the simulator, `POST /readings`, the
//! InfluxDB line protocol, MQTT.
//!
//! The ingress owns everything between a source and the detectors:
//!
//! - **Routing**: each sensor has a [`SensorLane`] with an [`Inbox`] per parameter; a source
//!   hands a reading to the ingress, the ingress queues each value in its parameter's inbox and
//!   rings that detector. It is plain shared state, not an actor: a reading costs a few locks,
//!   never a message round trip, and sources on many threads do not queue behind one another.
//! - **Checks**, the same for every source, each refusal with a reason ([`Refusal`]): the sensor
//!   is known (or registered live with `ingest.unknown_sensors = "register"`, up to
//!   `ingest.max_sensors`); the timestamp is not more than `ingest.max_clock_skew` ahead of the
//!   clock and is after the last accepted one; every value is a finite number of a configured
//!   parameter; the reading carries at least one.
//! - **Bounded queues**: an inbox holds at most `ingest.queue_capacity` values. A reading that
//!   does not fit is refused whole ([`Refusal::Full`]: HTTP answers 429) — memory never grows
//!   with a slow detector — and a flat-out simulator waits for room instead.
//! - **Nothing lost across a detector restart**: the queue is the detector's mailbox and lives
//!   here, so values queued before a crash and during the restart are handled by its successor.
//! - **Counting**: accepted and refused per source and per reason, the last refusal, and a warning
//!   at most once a minute per sensor, for `/status`.
//!
//! A reading is accepted once it is queued: from then on only a shutdown that times out can lose
//! it, and that is logged with the count.

mod lane;
pub mod line_protocol;
pub mod parse;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::Instant;
use utoipa::ToSchema;

pub use lane::{Inbox, InboxState, Queued, Sample, SensorLane, record};

use crate::clock::Clock;
use crate::config::{Config, UnknownSensors};
use crate::domain::{Parameter, Reading, SensorId};
use crate::health::Component;
use crate::history::{HistoryBounds, HistoryLimits};
use crate::logging::component_span;
use crate::store::{lock, read, write};
use lane::Blocked;

/// Where a reading came from.
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
    ToSchema,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Source {
    Simulator,
    Http,
    LineProtocol,
    Mqtt,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why a reading was refused. The message names what was wrong, bounded: nothing a client sent
/// is echoed at length.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown sensor {0:?}: not in sensors.ids (set ingest.unknown_sensors = \"register\" to take new sensors)")]
    UnknownSensor(String),
    #[error("sensor {0:?} refused: already watching ingest.max_sensors sensors")]
    TooManySensors(String),
    #[error("sensor id {0:?} is not valid: letters, digits, '-', '_', '.', at most 64 characters")]
    InvalidSensor(String),
    #[error("sensor id {given:?} differs only in case from the sensor {known:?}")]
    CaseConflict { given: String, known: String },
    #[error("timestamp {timestamp} is {ahead_ms} ms ahead of the clock, more than ingest.max_clock_skew")]
    Future { timestamp: String, ahead_ms: i64 },
    #[error("{parameter}: timestamp {timestamp} is at or before the last accepted reading's ({last})")]
    OutOfOrder { parameter: String, timestamp: String, last: String },
    #[error("{0}: not a finite number")]
    NotFinite(String),
    #[error("unknown parameter {0:?}: not configured (add [parameters.<name>])")]
    UnknownParameter(String),
    #[error("a reading needs at least one parameter's value")]
    NoValues,
    #[error("{parameter}: the detector's queue is full; retry shortly")]
    Full { parameter: String },
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error("sensor {sensor:?} belongs to shard {shard} (cluster.shards = {shards}); send it to that daemon")]
    WrongShard { sensor: String, shard: u32, shards: u32 },
    #[error("{0}")]
    Malformed(String),
}

/// The reasons of [`Refusal`], as counted and as metrics label them.
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
    ToSchema,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    UnknownSensor,
    TooManySensors,
    InvalidSensor,
    Future,
    OutOfOrder,
    NotFinite,
    UnknownParameter,
    NoValues,
    QueueFull,
    ShuttingDown,
    Malformed,
    WrongShard,
}

impl Refusal {
    pub fn reason(&self) -> Reason {
        match self {
            Refusal::UnknownSensor(_) => Reason::UnknownSensor,
            Refusal::TooManySensors(_) => Reason::TooManySensors,
            Refusal::InvalidSensor(_) | Refusal::CaseConflict { .. } => Reason::InvalidSensor,
            Refusal::Future { .. } => Reason::Future,
            Refusal::OutOfOrder { .. } => Reason::OutOfOrder,
            Refusal::NotFinite(_) => Reason::NotFinite,
            Refusal::UnknownParameter(_) => Reason::UnknownParameter,
            Refusal::NoValues => Reason::NoValues,
            Refusal::Full { .. } => Reason::QueueFull,
            Refusal::ShuttingDown => Reason::ShuttingDown,
            Refusal::Malformed(_) => Reason::Malformed,
            Refusal::WrongShard { .. } => Reason::WrongShard,
        }
    }

    /// True when trying again later may succeed (a full queue): HTTP answers 429, not 200 with
    /// the item rejected.
    pub fn is_transient(&self) -> bool {
        matches!(self, Refusal::Full { .. } | Refusal::ShuttingDown)
    }
}

/// What the ingress takes, from the configuration in force.
#[derive(Clone, Debug)]
struct Policy {
    unknown_sensors: UnknownSensors,
    history: crate::config::HistoryConfig,
    interval: Duration,
    max_sensors: usize,
    max_clock_skew: TimeDelta,
    capacity: usize,
    parameters: Vec<Parameter>,
    sharding: crate::cluster::Sharding,
}

impl Policy {
    fn from_config(config: &Config) -> Self {
        Self {
            unknown_sensors: config.ingest.unknown_sensors,
            history: config.history.clone(),
            interval: config.sensors.interval,
            max_sensors: config.ingest.max_sensors,
            max_clock_skew: TimeDelta::from_std(config.ingest.max_clock_skew).unwrap_or(TimeDelta::MAX),
            capacity: config.ingest.queue_capacity,
            parameters: config.parameter_list(),
            sharding: config.cluster.sharding(),
        }
    }
}

/// Called with a sensor registered live from its readings: the supervisor starts its detectors.
type Registrar = Box<dyn Fn(Arc<SensorLane>) + Send + Sync>;

pub struct Ingress {
    clock: Clock,
    lanes: RwLock<HashMap<SensorId, Arc<SensorLane>>>,
    /// Lowercased ids of the sensors watched: ids that differ only in case are refused.
    folded: Mutex<HashSet<String>>,
    policy: ArcSwap<Policy>,
    registrar: OnceLock<Registrar>,
    open: AtomicBool,
    history_limits: Arc<HistoryLimits>,
    /// The number of series the history bounds were last fitted for.
    history_planned: AtomicUsize,
    /// Readings for the live stream, thinned to one a second per sensor.
    live: broadcast::Sender<Reading>,
    pub stats: IngestStats,
}

impl Ingress {
    pub fn new(config: &Config, clock: Clock) -> Self {
        let ingress = Self {
            clock,
            lanes: RwLock::new(HashMap::new()),
            folded: Mutex::new(HashSet::new()),
            policy: ArcSwap::from_pointee(Policy::from_config(config)),
            registrar: OnceLock::new(),
            open: AtomicBool::new(true),
            history_limits: Arc::new(HistoryLimits::default()),
            history_planned: AtomicUsize::new(0),
            live: broadcast::channel(LIVE_READINGS).0,
            stats: IngestStats::default(),
        };
        ingress.fit_history(config.sensors.ids.len(), true);
        ingress
    }

    /// Who starts the detectors of a sensor registered live; set once, by the supervisor.
    pub fn set_registrar(&self, registrar: Registrar) {
        let _ = self.registrar.set(registrar);
    }

    /// A reload changed the configuration: new limits, and every sensor follows the parameters.
    pub fn set_config(&self, config: &Config) {
        let policy = Policy::from_config(config);
        for lane in read(&self.lanes).values() {
            lane.set_parameters(&policy.parameters, policy.capacity);
        }
        self.policy.store(Arc::new(policy));
        let sensors = config.sensors.ids.len().max(self.sensor_count());
        self.fit_history(sensors, true);
    }

    /// Fits the history bounds to `sensors` sensors' series: at once when `now`, else only when
    /// the sensors outgrew the last fit twice over (registrations do not refit each time).
    fn fit_history(&self, sensors: usize, now: bool) {
        let policy = self.policy.load();
        let series = sensors.max(1) * policy.parameters.len().max(1);
        let planned = self.history_planned.load(Ordering::Relaxed);
        if !now && series <= planned {
            return;
        }
        let series = if now { series } else { series * 2 };
        let history = &policy.history;
        let budget = history.max_memory_mb.saturating_mul(1 << 20);
        let bounds = HistoryBounds::fitting(history.recent, history.minutes, policy.interval, series, budget);
        self.history_limits.set(bounds);
        self.history_planned.store(series, Ordering::Relaxed);
    }

    /// Readings as they come, at most one a second per sensor (its last values), for the live
    /// stream; a receiver that falls behind skips what it missed.
    pub fn live_readings(&self) -> broadcast::Receiver<Reading> {
        self.live.subscribe()
    }

    /// The history bounds in force, and the series they were fitted for.
    pub fn history_bounds(&self) -> (HistoryBounds, usize) {
        (self.history_limits.get(), self.history_planned.load(Ordering::Relaxed))
    }

    /// Starts watching a configured sensor (or returns the lane it already has).
    pub fn add_sensor(&self, sensor_id: &SensorId) -> Arc<SensorLane> {
        self.insert_lane(sensor_id, false)
    }

    fn insert_lane(&self, sensor_id: &SensorId, registered: bool) -> Arc<SensorLane> {
        let policy = self.policy.load();
        let mut lanes = write(&self.lanes);
        let lane = lanes.entry(sensor_id.clone()).or_insert_with(|| {
            let limits = Arc::clone(&self.history_limits);
            let lane = SensorLane::new(
                sensor_id.clone(),
                &policy.parameters,
                policy.capacity,
                registered,
                limits,
                self.live.clone(),
            );
            Arc::new(lane)
        });
        lock(&self.folded).insert(sensor_id.as_str().to_lowercase());
        Arc::clone(lane)
    }

    pub fn remove_sensor(&self, sensor_id: &SensorId) {
        write(&self.lanes).remove(sensor_id);
        lock(&self.folded).remove(&sensor_id.as_str().to_lowercase());
    }

    pub fn lane(&self, sensor_id: &str) -> Option<Arc<SensorLane>> {
        read(&self.lanes).get(sensor_id).cloned()
    }

    /// Every sensor watched, in id order.
    pub fn lanes(&self) -> Vec<Arc<SensorLane>> {
        let mut lanes: Vec<Arc<SensorLane>> = read(&self.lanes).values().cloned().collect();
        lanes.sort_by(|a, b| a.id.cmp(&b.id));
        lanes
    }

    pub fn sensor_count(&self) -> usize {
        read(&self.lanes).len()
    }

    /// From now on every reading is refused ([`Refusal::ShuttingDown`]): the stop path drains
    /// what was accepted, and nothing new slips in behind it.
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    /// Values accepted but not yet handled by their detector.
    pub fn queued(&self) -> usize {
        read(&self.lanes).values().map(|lane| lane.queued()).sum()
    }

    /// Takes one reading from `source`.
    pub fn submit(&self, source: Source, reading: Reading) -> Result<(), Refusal> {
        let outcome = self.admit(&reading).and_then(|lane| self.queue(&lane, std::slice::from_ref(&reading)));
        self.count(source, reading.sensor_id.as_str(), &outcome);
        outcome
    }

    /// Like [`Ingress::submit`], except that a full queue is handed back uncounted: the caller
    /// (MQTT, whose broker keeps a message until it is acknowledged) waits for room and offers the
    /// reading again, and counts it only if it gives up.
    pub fn offer(&self, source: Source, reading: &Reading) -> Result<(), Refusal> {
        let outcome = self.admit(reading).and_then(|lane| self.queue(&lane, std::slice::from_ref(reading)));
        if !matches!(outcome, Err(Refusal::Full { .. })) {
            self.count(source, reading.sensor_id.as_str(), &outcome);
        }
        outcome
    }

    /// Counts and logs (at most once a minute per sensor) a reading refused by its source before
    /// it got here: a payload that does not parse, a topic that names nothing.
    pub fn refuse(&self, source: Source, sensor_id: &str, refusal: &Refusal) {
        self.stats.refused(source, sensor_id, refusal, self.clock.now());
    }

    /// The device behind a sensor said, at `at`, that it went offline (a Sparkplug death
    /// certificate): each of its detectors raises its dropout once it has handled the values
    /// queued before. Refused for a sensor not watched, and while shutting down.
    pub fn go_offline(&self, sensor_id: &str, at: DateTime<Utc>) -> Result<(), Refusal> {
        self.check_open()?;
        let lane = self.lane(sensor_id).ok_or_else(|| Refusal::UnknownSensor(bounded(sensor_id, 64)))?;
        lane.go_offline(at);
        Ok(())
    }

    /// Takes a batch of one sensor's readings from a source that already holds the lane (the
    /// simulator): all or nothing, counted as one reading each.
    pub fn submit_batch(&self, source: Source, lane: &SensorLane, readings: &[Reading]) -> Result<(), Refusal> {
        let outcome = self.check_open().and_then(|()| {
            let now = self.clock.now();
            readings.iter().try_for_each(|reading| self.check_values(reading, now))?;
            self.queue(lane, readings)
        });
        match &outcome {
            Ok(()) => {
                self.stats.accepted[source as usize].fetch_add(readings.len() as u64, Ordering::Relaxed);
            }
            Err(refusal) => self.stats.refused(source, lane.id.as_str(), refusal, self.clock.now()),
        }
        outcome
    }

    fn count(&self, source: Source, sensor_id: &str, outcome: &Result<(), Refusal>) {
        match outcome {
            Ok(()) => {
                self.stats.accepted[source as usize].fetch_add(1, Ordering::Relaxed);
            }
            Err(refusal) => self.stats.refused(source, sensor_id, refusal, self.clock.now()),
        }
    }

    /// Counts a reading refused before it reached the ingress (a body that did not parse).
    pub fn count_malformed(&self, source: Source, why: &str) {
        let refusal = Refusal::Malformed(bounded(why, 200));
        self.stats.refused(source, "", &refusal, self.clock.now());
    }

    fn check_open(&self) -> Result<(), Refusal> {
        if self.open.load(Ordering::Relaxed) { Ok(()) } else { Err(Refusal::ShuttingDown) }
    }

    /// The reading's sensor lane, registering the sensor if the policy says so; and the checks
    /// that need no lane.
    fn admit(&self, reading: &Reading) -> Result<Arc<SensorLane>, Refusal> {
        self.check_open()?;
        self.check_values(reading, self.clock.now())?;
        if let Some(lane) = self.lane(reading.sensor_id.as_str()) {
            return Ok(lane);
        }
        self.register(&reading.sensor_id)
    }

    fn register(&self, sensor_id: &SensorId) -> Result<Arc<SensorLane>, Refusal> {
        let id = sensor_id.as_str();
        if !crate::config::is_safe_identifier(id) {
            return Err(Refusal::InvalidSensor(bounded(id, 64)));
        }
        let policy = self.policy.load();
        if !policy.sharding.owns(id) {
            let sharding = policy.sharding;
            return Err(Refusal::WrongShard {
                sensor: id.to_owned(),
                shard: sharding.owner(id),
                shards: sharding.shards,
            });
        }
        if policy.unknown_sensors == UnknownSensors::Reject {
            return Err(Refusal::UnknownSensor(id.to_owned()));
        }
        {
            let lanes = read(&self.lanes);
            if lanes.len() >= policy.max_sensors {
                return Err(Refusal::TooManySensors(id.to_owned()));
            }
            if lock(&self.folded).contains(&id.to_lowercase()) {
                let known = lanes.keys().find(|known| known.as_str().eq_ignore_ascii_case(id));
                let known = known.map_or_else(String::new, ToString::to_string);
                return Err(Refusal::CaseConflict { given: id.to_owned(), known });
            }
        }
        let lane = self.insert_lane(sensor_id, true);
        self.fit_history(self.sensor_count(), false);
        component_span(Component::Ingress)
            .in_scope(|| tracing::info!(%sensor_id, "sensor registered from its readings"));
        if let Some(registrar) = self.registrar.get() {
            registrar(Arc::clone(&lane));
        }
        Ok(lane)
    }

    fn check_values(&self, reading: &Reading, now: DateTime<Utc>) -> Result<(), Refusal> {
        if reading.values.is_empty() {
            return Err(Refusal::NoValues);
        }
        if let Some((parameter, _)) = reading.values.iter().find(|(_, value)| !value.is_finite()) {
            return Err(Refusal::NotFinite(parameter.to_string()));
        }
        let ahead = reading.timestamp.signed_duration_since(now);
        if ahead > self.policy.load().max_clock_skew {
            return Err(Refusal::Future {
                timestamp: crate::domain::rfc3339::format(&reading.timestamp),
                ahead_ms: ahead.num_milliseconds(),
            });
        }
        Ok(())
    }

    fn queue(&self, lane: &SensorLane, readings: &[Reading]) -> Result<(), Refusal> {
        lane.queue(readings, self.clock.now()).map_err(|blocked| match blocked {
            Blocked::Full { parameter } => Refusal::Full { parameter: parameter.to_string() },
            Blocked::UnknownParameter(name) => Refusal::UnknownParameter(bounded(&name, 64)),
            Blocked::OutOfOrder { parameter, last } => Refusal::OutOfOrder {
                parameter: parameter.to_string(),
                timestamp: readings
                    .first()
                    .map(|reading| crate::domain::rfc3339::format(&reading.timestamp))
                    .unwrap_or_default(),
                last: crate::domain::rfc3339::format(&last),
            },
        })
    }

    /// `/status`'s `ingest` block.
    pub fn status(&self) -> IngestStatus {
        self.stats.status(self.sensor_count(), self.queued())
    }
}

const SOURCES: usize = <Source as strum::VariantArray>::VARIANTS.len();
const REASONS: usize = <Reason as strum::VariantArray>::VARIANTS.len();

/// Readings the live stream's channel holds for a reader that is behind.
const LIVE_READINGS: usize = 4096;

/// How often a sensor's refusals are logged: the first, then a count once a minute.
const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(60);
/// Sensors remembered for that; a flood of made-up ids cannot grow it past this.
const REFUSAL_LOG_SENSORS: usize = 10_000;

/// Readings accepted and refused, per source and reason.
#[derive(Default)]
pub struct IngestStats {
    accepted: [AtomicU64; SOURCES],
    refused: [[AtomicU64; REASONS]; SOURCES],
    last_refusal: Mutex<Option<LastRefusal>>,
    /// When each sensor's refusals were last logged, and how many since.
    logged: Mutex<HashMap<String, (Instant, u64)>>,
}

/// The newest refusal, for an operator wondering why a sensor's readings do not show.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct LastRefusal {
    pub source: Source,
    pub sensor_id: Option<String>,
    pub reason: Reason,
    pub message: String,
    #[serde(with = "crate::domain::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
}

/// `/status`'s `ingest` block.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct IngestStatus {
    /// Readings accepted per source.
    pub accepted: std::collections::BTreeMap<Source, u64>,
    /// Readings refused per source.
    pub refused: std::collections::BTreeMap<Source, u64>,
    /// Refusals per reason, all sources together.
    pub refused_by_reason: std::collections::BTreeMap<Reason, u64>,
    pub last_refusal: Option<LastRefusal>,
    /// Sensors watched, configured and registered.
    pub sensors: usize,
    /// Values accepted and waiting for their detector.
    pub queued: usize,
}

impl IngestStats {
    fn refused(&self, source: Source, sensor_id: &str, refusal: &Refusal, now: DateTime<Utc>) {
        let reason = refusal.reason();
        self.refused[source as usize][reason as usize].fetch_add(1, Ordering::Relaxed);
        let message = refusal.to_string();
        let sensor = (!sensor_id.is_empty()).then(|| bounded(sensor_id, 64));
        if self.should_log(sensor.as_deref().unwrap_or("")) {
            component_span(Component::Ingress).in_scope(|| {
                tracing::warn!(
                    source = source.as_str(),
                    sensor_id = sensor.as_deref().unwrap_or(""),
                    reason = <&str>::from(reason),
                    "reading refused: {message}"
                )
            });
        }
        *lock(&self.last_refusal) = Some(LastRefusal { source, sensor_id: sensor, reason, message, at: now });
    }

    fn should_log(&self, sensor_id: &str) -> bool {
        let now = Instant::now();
        let mut logged = lock(&self.logged);
        if logged.len() >= REFUSAL_LOG_SENSORS && !logged.contains_key(sensor_id) {
            logged.clear();
        }
        let entry = logged.entry(sensor_id.to_owned()).or_insert((now - REFUSAL_LOG_PERIOD * 2, 0));
        if now.duration_since(entry.0) >= REFUSAL_LOG_PERIOD {
            *entry = (now, 0);
            true
        } else {
            entry.1 += 1;
            false
        }
    }

    /// Readings accepted from `source` since start.
    pub fn accepted(&self, source: Source) -> u64 {
        self.accepted[source as usize].load(Ordering::Relaxed)
    }

    /// Readings refused from `source` for `reason` since start.
    pub fn refusals(&self, source: Source, reason: Reason) -> u64 {
        self.refused[source as usize][reason as usize].load(Ordering::Relaxed)
    }

    fn status(&self, sensors: usize, queued: usize) -> IngestStatus {
        use strum::VariantArray;
        let accepted = Source::VARIANTS.iter().map(|&source| (source, self.accepted(source))).collect();
        let refused = Source::VARIANTS
            .iter()
            .map(|&source| (source, Reason::VARIANTS.iter().map(|&reason| self.refusals(source, reason)).sum()))
            .collect();
        let refused_by_reason = Reason::VARIANTS
            .iter()
            .map(|&reason| (reason, Source::VARIANTS.iter().map(|&source| self.refusals(source, reason)).sum()))
            .filter(|(_, count): &(Reason, u64)| *count > 0)
            .collect();
        IngestStatus {
            accepted,
            refused,
            refused_by_reason,
            last_refusal: lock(&self.last_refusal).clone(),
            sensors,
            queued,
        }
    }
}

/// At most `max` characters of `text`, with an ellipsis when cut: what a message may echo.
pub fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
