//! The sections of [`super::Config`], each with its defaults and a doc comment per key; the same
//! docs are repeated in `config/wtf-monitor.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alarms::Priority;
use crate::domain::{AnomalyKind, Parameter};

/// One measured quantity: its unit and the range it normally stays in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterSpec {
    /// The unit values are read in: `°C`, `bar`, `L/min`, `NTU`, `mg/L`; "" for none (pH).
    pub unit: String,
    /// The normal range, `[low, high]`: the simulator wanders inside it.
    pub normal: [f64; 2],
    /// How operators name it, e.g. "Free chlorine"; by default the name, capitalised, `_` as spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl ParameterSpec {
    fn new(unit: &str, low: f64, high: f64) -> Self {
        Self { unit: unit.into(), normal: [low, high], label: None }
    }

    /// The label, or the name made readable: `free_chlorine` → `Free chlorine`.
    pub fn title(&self, name: &str) -> String {
        if let Some(label) = &self.label {
            return label.clone();
        }
        let words = name.replace('_', " ");
        let mut chars = words.chars();
        chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
    }
}

/// The parameters of a plant by name; temperature, pressure and flow unless the file adds more.
pub fn default_parameters() -> BTreeMap<Parameter, ParameterSpec> {
    BTreeMap::from([
        (Parameter::new("temperature"), ParameterSpec::new("°C", 10.0, 35.0)),
        (Parameter::new("pressure"), ParameterSpec::new("bar", 1.0, 3.0)),
        (Parameter::new("flow"), ParameterSpec::new("L/min", 20.0, 100.0)),
    ])
}

/// The REST API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address and port the HTTP server listens on. Needs a restart to change.
    pub listen: SocketAddr,
    /// A request that takes longer is answered 408. Covers the handler, not a streamed answer's body.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A client must send a request's whole header within this long, counted from the moment the
    /// server waits for it: after connecting, and after each answer on a kept-alive connection (so
    /// an idle kept-alive connection is closed after it too). Needs a restart.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A write to a client that makes no progress for this long (the client stopped reading, e.g.
    /// a live stream left open in a frozen browser) closes the connection. Needs a restart.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Most connections served at once; one more is answered 503 and closed, and the log says so
    /// (at most once a minute). Keep it below the process's file limit. Needs a restart.
    pub max_connections: usize,
    /// Browser origins allowed to call the API (CORS). Empty: none, the safe default.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: 512,
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// The sensors watched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorsConfig {
    /// Sensor names: letters, digits, `-`, `_` and `.`, at most 64 characters, unique.
    pub ids: Vec<String>,
    /// Time between two readings of one sensor.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for SensorsConfig {
    fn default() -> Self {
        Self {
            ids: vec!["wtf-pipe-1".into(), "wtf-pipe-2".into(), "wtf-pipe-3".into()],
            interval: Duration::from_secs(1),
        }
    }
}

/// The built-in simulator that stands in for plant equipment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulationConfig {
    /// Generate readings for the configured sensors.
    pub enabled: bool,
    /// Seed of the generators: the same seed replays the same readings. None: a fresh seed each run.
    pub seed: Option<u64>,
    /// Injected spikes per sensor per hour of readings (Poisson-distributed).
    pub spikes_per_hour: f64,
    /// Injected drifts per sensor per hour of readings.
    pub drifts_per_hour: f64,
    /// Injected dropouts per sensor per hour of readings.
    pub dropouts_per_hour: f64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self { enabled: true, seed: None, spikes_per_hour: 40.0, drifts_per_hour: 10.0, dropouts_per_hour: 8.0 }
    }
}

/// Anomaly detection rules; comparisons are strict (`>`, `<`).
///
/// The limits are per-parameter maps keyed by parameter name ([`Limits`]); a parameter missing
/// from a map has that rule off. Spike and drift thresholds are set for the three default
/// parameters; every other rule is off until configured. `sensors` overrides them per sensor.
///
/// Not `deny_unknown_fields` (serde cannot combine it with `flatten`): the loader checks the
/// section's keys itself, against [`DetectionConfig::KEYS`] and [`Limits::KEYS`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectionConfig {
    /// A drift (or low drift) is raised when a value stays past its threshold for longer than this.
    #[serde(with = "humantime_serde")]
    pub drift_duration: Duration,
    /// A dropout is raised when a parameter that has reported has no reading for longer than this.
    #[serde(with = "humantime_serde")]
    pub dropout_timeout: Duration,
    /// A rate of change is measured between the newest reading and the oldest of this window.
    #[serde(with = "humantime_serde")]
    pub rate_window: Duration,
    #[serde(flatten)]
    pub limits: Limits,
    /// Limits of one sensor, overriding the parameter's above: `[detection.sensors."wtf-pipe-2"]`.
    pub sensors: BTreeMap<String, Limits>,
}

impl DetectionConfig {
    pub const KEYS: [&'static str; 4] = ["drift_duration", "dropout_timeout", "rate_window", "sensors"];
}

impl Default for DetectionConfig {
    fn default() -> Self {
        let map =
            |entries: [(&str, f64); 3]| entries.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
        Self {
            drift_duration: Duration::from_secs(15),
            dropout_timeout: Duration::from_secs(10),
            rate_window: Duration::from_secs(5),
            limits: Limits {
                spike_thresholds: map([("temperature", 45.0), ("pressure", 4.0), ("flow", 120.0)]),
                drift_thresholds: map([("temperature", 38.0), ("pressure", 3.5), ("flow", 110.0)]),
                ..Limits::default()
            },
            sensors: BTreeMap::new(),
        }
    }
}

/// Per-parameter limits, each map keyed by parameter name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// One reading above raises a `spike`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub spike_thresholds: BTreeMap<String, f64>,
    /// Readings above for longer than `drift_duration` raise a `drift`; below the spike threshold.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub drift_thresholds: BTreeMap<String, f64>,
    /// One reading below raises a `low_spike` (a burst main, a pump trip).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub low_spike_thresholds: BTreeMap<String, f64>,
    /// Readings below for longer than `drift_duration` raise a `low_drift`; above the low spike threshold.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub low_drift_thresholds: BTreeMap<String, f64>,
    /// A change faster than this many units per second (over `rate_window`) raises a `rate`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rate_limits: BTreeMap<String, f64>,
    /// No change beyond this for longer than `stuck_after` raises a `stuck` (an instrument fault).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stuck_tolerance: BTreeMap<String, f64>,
    #[serde(with = "duration_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub stuck_after: BTreeMap<String, Duration>,
    /// A raised episode ends only once the value is back past its limit by this much.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub deadband: BTreeMap<String, f64>,
    /// ...and has stayed back for this long (on the readings' timestamps).
    #[serde(with = "duration_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub off_delay: BTreeMap<String, Duration>,
}

impl Limits {
    pub const KEYS: [&'static str; 9] = [
        "spike_thresholds",
        "drift_thresholds",
        "low_spike_thresholds",
        "low_drift_thresholds",
        "rate_limits",
        "stuck_tolerance",
        "stuck_after",
        "deadband",
        "off_delay",
    ];

    /// The number maps, by key, for rules that check every one alike.
    pub fn numbers(&self) -> [(&'static str, &BTreeMap<String, f64>); 7] {
        [
            ("spike_thresholds", &self.spike_thresholds),
            ("drift_thresholds", &self.drift_thresholds),
            ("low_spike_thresholds", &self.low_spike_thresholds),
            ("low_drift_thresholds", &self.low_drift_thresholds),
            ("rate_limits", &self.rate_limits),
            ("stuck_tolerance", &self.stuck_tolerance),
            ("deadband", &self.deadband),
        ]
    }

    /// The duration maps, by key.
    pub fn durations(&self) -> [(&'static str, &BTreeMap<String, Duration>); 2] {
        [("stuck_after", &self.stuck_after), ("off_delay", &self.off_delay)]
    }
}

/// A map of durations written as `"30s"`, `"5m"`.
mod duration_map {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&String, String> =
            map.iter().map(|(key, duration)| (key, humantime::format_duration(*duration).to_string())).collect();
        text.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, Duration>, D::Error> {
        let text = BTreeMap::<String, humantime_serde::Serde<Duration>>::deserialize(deserializer)?;
        Ok(text.into_iter().map(|(key, duration)| (key, duration.into_inner())).collect())
    }
}

/// The in-memory store the API serves from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// How long an anomaly is kept, each by its own age.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Memory bound: past this many anomalies the oldest are evicted early (counted in `/status`).
    /// An anomaly takes about 400 bytes, so the default bounds them to about 40 MB.
    pub max_anomalies: usize,
    /// How many recent summaries are kept.
    pub max_summaries: usize,
    /// Most events the journal keeps in memory (anomalies, clears, summaries, status changes);
    /// the live stream can replay this far back.
    pub max_events: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(24 * 3600),
            max_anomalies: 100_000,
            max_summaries: 100,
            max_events: 200_000,
        }
    }
}

/// The summarizer and its language model, served by Ollama.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Base URL of the Ollama server. Empty: never call a model, always use the template.
    pub url: String,
    /// Model name as Ollama knows it.
    pub model: String,
    /// Sampling temperature: low keeps the wording close to the facts.
    pub temperature: f64,
    /// Most tokens the model may answer with (`num_predict`); a form needs far fewer, so requests
    /// ask for at most [`crate::summary::form::FORM_ANSWER_TOKENS`].
    pub max_tokens: u32,
    /// Largest context window ever requested (`num_ctx`); each request asks only for what it needs.
    pub max_context: u32,
    /// A summary is written at least this often (at most 3 minutes).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A call to the model that takes longer is abandoned and the template is used.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// This many new anomalies bring the next summary forward.
    pub burst_anomalies: u64,
    /// Summaries are never closer together than this, however many anomalies arrive.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Ask Ollama to pull the model once if it reports it missing.
    pub pull_missing_model: bool,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:11434".into(),
            model: "llama3.2:1b".into(),
            temperature: 0.3,
            max_tokens: 2048,
            max_context: 128_000,
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(120),
            burst_anomalies: 50,
            min_interval: Duration::from_secs(15),
            pull_missing_model: true,
        }
    }
}

/// The Redis mirror.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`, `rediss://…` or `unix://…`. Empty: in memory only. Needs a restart.
    /// With `cluster = true`: a comma-separated list of seed nodes of a Redis Cluster.
    pub url: String,
    /// Speak the Redis Cluster protocol (slot map, redirections, failover) to the nodes in `url`.
    pub cluster: bool,
    /// Every key the daemon writes starts with this.
    pub key_prefix: String,
    /// Writes kept while Redis is unreachable; past this the oldest are dropped and counted.
    pub backlog_capacity: usize,
    /// Most anomalies kept in Redis; bounds what a flood can make Redis hold (~414 bytes each).
    pub max_anomalies: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            cluster: false,
            key_prefix: "wtf:".into(),
            backlog_capacity: 100_000,
            max_anomalies: 1_000_000,
        }
    }
}

/// How the supervisor treats failing actors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// More failures than this of one actor within `restart_window` stop the daemon (exit non-zero).
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
    /// Wait before the first restart; doubles with each further failure in the window.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest wait before a restart.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// Logging to stdout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or a filter such as `info,wtf_monitor=debug`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Switches for tests and drills; all off in production.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// Serve `POST /debug/fail/{actor}`, which makes the named actor fail, to drill supervision.
    pub fault_injection: bool,
}

/// Alarms: how urgent each kind is, and how long one may be shelved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmsConfig {
    /// The longest an alarm may be shelved.
    #[serde(with = "humantime_serde")]
    pub max_shelve: Duration,
    /// The priority of each kind of alarm: `low`, `medium`, `high` or `critical`.
    pub priorities: BTreeMap<AnomalyKind, Priority>,
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        Self {
            max_shelve: Duration::from_secs(8 * 3600),
            priorities: BTreeMap::from([
                (AnomalyKind::Spike, Priority::High),
                (AnomalyKind::Drift, Priority::Medium),
                (AnomalyKind::Dropout, Priority::High),
                (AnomalyKind::LowSpike, Priority::Critical),
                (AnomalyKind::LowDrift, Priority::Medium),
                (AnomalyKind::Rate, Priority::High),
                (AnomalyKind::Stuck, Priority::Low),
            ]),
        }
    }
}

impl AlarmsConfig {
    pub fn priority(&self, kind: AnomalyKind) -> Priority {
        self.priorities.get(&kind).copied().unwrap_or(Priority::Medium)
    }
}

/// Recent readings kept in memory for trend charts (`GET /readings`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Every reading is kept this long (as many as arrive at `sensors.interval`).
    #[serde(with = "humantime_serde")]
    pub recent: Duration,
    /// One bucket a minute (last, min, max) is kept this long.
    #[serde(with = "humantime_serde")]
    pub minutes: Duration,
    /// All series together use at most this many MiB; with many sensors the recent tier is
    /// shortened to fit (`/status` → `history` says by how much).
    pub max_memory_mb: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { recent: Duration::from_secs(3600), minutes: Duration::from_secs(24 * 3600), max_memory_mb: 256 }
    }
}

/// Several daemons, one plant (see [`crate::cluster`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This daemon's name among its peers (its status in Redis, `/status` → `peers`); "" means
    /// the hostname. `--instance` overrides it. Needs a restart.
    pub instance: String,
    /// How many shards the plant's sensors are split into; 1: every daemon takes every sensor.
    /// Needs a restart.
    pub shards: u32,
    /// Which shard this daemon takes, from 0. Needs a restart.
    pub shard: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { instance: String::new(), shards: 1, shard: 0 }
    }
}

impl ClusterConfig {
    pub fn sharding(&self) -> crate::cluster::Sharding {
        crate::cluster::Sharding { shards: self.shards.max(1), shard: self.shard }
    }

    /// The instance id: the configured one, else the hostname.
    pub fn instance_id(&self) -> String {
        if self.instance.is_empty() { crate::cluster::hostname() } else { self.instance.clone() }
    }
}

/// The audit trail of what operators and the daemon did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How long an entry is kept.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Most entries kept in memory (and in Redis); the oldest go first.
    pub max_entries: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention: Duration::from_secs(400 * 24 * 3600), max_entries: 100_000 }
    }
}

/// Readings from outside: what is accepted, from whom, and how much.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A reading from a sensor not in `sensors.ids`: `reject` it with a reason naming the
    /// sensor, or `register` the sensor live (detectors started) up to `max_sensors`.
    pub unknown_sensors: UnknownSensors,
    /// Most sensors watched, configured and registered together.
    pub max_sensors: usize,
    /// A reading stamped further ahead of the daemon's clock than this is refused.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// Largest request body `POST /readings` and the line-protocol endpoints take.
    pub max_body: usize,
    /// Values waiting per detector; when one is full, new readings for its sensor are refused
    /// (HTTP answers 429) rather than memory growing.
    pub queue_capacity: usize,
    pub line_protocol: LineProtocolConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            unknown_sensors: UnknownSensors::Reject,
            max_sensors: 10_000,
            max_clock_skew: Duration::from_secs(5),
            max_body: 1024 * 1024,
            queue_capacity: 4096,
            line_protocol: LineProtocolConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownSensors {
    Reject,
    Register,
}

/// InfluxDB line protocol (`POST /api/v2/write`, `POST /write`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LineProtocolConfig {
    /// The tag that names the sensor.
    pub sensor_tag: String,
    /// Take only lines of this measurement; "" takes every measurement.
    pub measurement: String,
}

impl Default for LineProtocolConfig {
    fn default() -> Self {
        Self { sensor_tag: "sensor_id".into(), measurement: String::new() }
    }
}

/// Who may do what through the API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `open` (the default): reads need no token. `token`: every read needs one (`/health` stays open).
    pub read: ReadAccess,
    /// Bearer tokens, each with a name (recorded in the audit log) and a role.
    pub tokens: Vec<TokenConfig>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadAccess {
    #[default]
    Open,
    Token,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    /// The token itself; or leave it out and give `token_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// A file holding the token (surrounding whitespace ignored), readable only by the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// What a token may do; each role may do what the roles before it may, except `ingest`, which
/// may only send readings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Role {
    /// Reads, when `auth.read = "token"`.
    Viewer,
    /// Reads; acknowledges and shelves alarms.
    Operator,
    /// Sends readings (`POST /readings`, line protocol); nothing else.
    Ingest,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A credential: read from the file, never printed. `check-config` and logs show `"***"`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: &str) -> Self {
        Self(value.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}
