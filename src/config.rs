//! The daemon's configuration: one typed [`Config`] with defaults in code, layered by figment as
//! defaults → TOML file → `WTF_…` environment variables (`__` nests: `WTF_REDIS__URL`).
//!
//! [`Config::load`] reads and [`Config::validate`] checks; `validate` consumes the config and
//! returns a [`ValidConfig`], so code that runs the daemon cannot be handed an unchecked one.
//! Both collect every problem they find and name its key, so an operator fixes a file in one pass.

pub mod diff;
mod rules;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::{Parameter, PerParameter};

/// Where the repository keeps its reference config; used when run from a checkout.
pub const REPO_CONFIG_PATH: &str = "config/wtf-monitor.toml";
/// Where an installed daemon reads its config.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/wtf-monitor/wtf-monitor.toml";
/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "WTF_";

/// Every setting of the daemon. Each section's doc is repeated in `config/wtf-monitor.toml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub api: ApiConfig,
    pub sensors: SensorsConfig,
    pub simulation: SimulationConfig,
    pub detection: DetectionConfig,
    pub store: StoreConfig,
    pub llm: LlmConfig,
    pub redis: RedisConfig,
    pub supervisor: SupervisorConfig,
    pub log: LogConfig,
    pub debug: DebugConfig,
}

/// The section names, in file order; anything else at the top level is an error.
const SECTIONS: [&str; 10] =
    ["api", "sensors", "simulation", "detection", "store", "llm", "redis", "supervisor", "log", "debug"];

/// The REST API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address and port the HTTP server listens on. Needs a restart to change.
    pub listen: SocketAddr,
    /// A request that takes longer is answered 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Browser origins allowed to call the API (CORS). Empty: none, the safe default.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            request_timeout: Duration::from_secs(10),
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

/// Anomaly detection rules; comparisons are strict (`>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// A drift is raised when a value stays above its drift threshold for longer than this.
    #[serde(with = "humantime_serde")]
    pub drift_duration: Duration,
    /// A dropout is raised when a parameter has no reading for longer than this.
    #[serde(with = "humantime_serde")]
    pub dropout_timeout: Duration,
    /// One reading above these raises a spike.
    pub spike_thresholds: PerParameter<f64>,
    /// Readings above these for longer than `drift_duration` raise a drift.
    pub drift_thresholds: PerParameter<f64>,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            drift_duration: Duration::from_secs(15),
            dropout_timeout: Duration::from_secs(10),
            spike_thresholds: PerParameter { temperature: 45.0, pressure: 4.0, flow: 120.0 },
            drift_thresholds: PerParameter { temperature: 38.0, pressure: 3.5, flow: 110.0 },
        }
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { retention: Duration::from_secs(24 * 3600), max_anomalies: 100_000, max_summaries: 100 }
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

/// Which file a config came from, for logs and `/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    DefaultsOnly,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::DefaultsOnly => f.write_str("built-in defaults"),
        }
    }
}

/// One thing wrong with a config, with the dotted key it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found in a config; the daemon refuses it as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<ConfigProblem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration ({}): {} problem(s)", self.source_name, self.problems.len())?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Finds the file to read: the explicit path (which must exist), else the repository's
    /// config when run from a checkout, else the installed one, else none.
    pub fn locate(explicit: Option<&Path>) -> Result<ConfigSource, ConfigError> {
        if let Some(path) = explicit {
            if !path.is_file() {
                return Err(ConfigError {
                    source_name: path.display().to_string(),
                    problems: vec![ConfigProblem {
                        key: "--config".into(),
                        message: format!("{} does not exist or is not a file", path.display()),
                    }],
                });
            }
            return Ok(ConfigSource::File(path.to_path_buf()));
        }
        for candidate in [REPO_CONFIG_PATH, SYSTEM_CONFIG_PATH] {
            let path = Path::new(candidate);
            if path.is_file() {
                return Ok(ConfigSource::File(path.to_path_buf()));
            }
        }
        Ok(ConfigSource::DefaultsOnly)
    }

    /// Reads defaults, the file, then the process's `WTF_…` variables.
    ///
    /// Variables whose first segment is not a section name (e.g. `WTF_TEST_REDIS_URL`) are left
    /// alone, so other tools may share the prefix; inside a section, an unknown key is an error.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        let (config, problems) = Self::load_partial(source);
        if problems.is_empty() { Ok(config) } else { Err(ConfigError { source_name: source.to_string(), problems }) }
    }

    /// Like [`Config::load`], but a section that does not parse keeps its defaults and its
    /// problems are returned beside the config, so the rules can still check the rest.
    fn load_partial(source: &ConfigSource) -> (Config, Vec<ConfigProblem>) {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let ConfigSource::File(path) = source {
            figment = figment.merge(Toml::file_exact(path));
        }
        let environment = Env::prefixed(ENV_PREFIX).split("__").filter(|key| {
            let section = key.as_str().split(['.', '_']).next().unwrap_or_default();
            SECTIONS.iter().any(|known| known.eq_ignore_ascii_case(section))
        });
        figment = figment.merge(environment);
        extract(&figment)
    }

    /// Checks every rule and returns every problem; a valid config is wrapped so it can be run.
    pub fn validate(self) -> Result<ValidConfig, Vec<ConfigProblem>> {
        let problems = rules::check(&self);
        if problems.is_empty() { Ok(ValidConfig(self)) } else { Err(problems) }
    }

    /// The effective config as TOML, as `check-config` prints it.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|err| format!("# cannot render the config: {err}\n"))
    }
}

/// A config that passed [`Config::validate`]. Derefs to the config.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidConfig(Config);

impl Deref for ValidConfig {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.0
    }
}

impl ValidConfig {
    pub fn into_inner(self) -> Config {
        self.0
    }
}

/// Loads and validates in one step, as start-up and reload do.
///
/// Every problem comes back at once: a section that does not parse is reported, and the rules
/// still check every other section.
pub fn load_valid(source: &ConfigSource) -> Result<ValidConfig, ConfigError> {
    let (config, mut problems) = Config::load_partial(source);
    let section_of = |key: &str| key.split('.').next().unwrap_or_default().to_owned();
    let unparsed: BTreeSet<String> = problems.iter().map(|problem| section_of(&problem.key)).collect();
    let rules = rules::check(&config).into_iter().filter(|problem| !unparsed.contains(&section_of(&problem.key)));
    problems.extend(rules);
    if problems.is_empty() {
        Ok(ValidConfig(config))
    } else {
        Err(ConfigError { source_name: source.to_string(), problems })
    }
}

/// Deserialises section by section so that a bad value in one section does not hide problems in
/// another, and reports unknown top-level sections.
fn extract(figment: &Figment) -> (Config, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    if let Ok(data) = figment.data() {
        for dict in data.values() {
            for key in dict.keys() {
                if !SECTIONS.contains(&key.as_str()) {
                    problems.push(ConfigProblem {
                        key: key.clone(),
                        message: format!("unknown section; expected one of {}", SECTIONS.join(", ")),
                    });
                }
            }
        }
    }
    let mut config = Config::default();
    section(figment, "api", &mut config.api, &mut problems);
    section(figment, "sensors", &mut config.sensors, &mut problems);
    section(figment, "simulation", &mut config.simulation, &mut problems);
    section(figment, "detection", &mut config.detection, &mut problems);
    section(figment, "store", &mut config.store, &mut problems);
    section(figment, "llm", &mut config.llm, &mut problems);
    section(figment, "redis", &mut config.redis, &mut problems);
    section(figment, "supervisor", &mut config.supervisor, &mut problems);
    section(figment, "log", &mut config.log, &mut problems);
    section(figment, "debug", &mut config.debug, &mut problems);
    (config, problems)
}

fn section<T: DeserializeOwned>(figment: &Figment, name: &str, slot: &mut T, problems: &mut Vec<ConfigProblem>) {
    match figment.extract_inner::<T>(name) {
        Ok(value) => *slot = value,
        Err(errors) => {
            for error in errors {
                // figment appends the section to the path of an inner extraction.
                let key = std::iter::once(name)
                    .chain(error.path.iter().map(String::as_str).filter(|part| *part != name))
                    .collect::<Vec<_>>()
                    .join(".");
                let origin = error.metadata.as_ref().map(|metadata| metadata.name.to_string());
                let message = match origin {
                    Some(origin) if !origin.contains("Serialized") => format!("{} (in {origin})", error.kind),
                    _ => error.kind.to_string(),
                };
                problems.push(ConfigProblem { key, message });
            }
        }
    }
}

pub use rules::is_safe_identifier;

#[cfg(test)]
mod tests;
