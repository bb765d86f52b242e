//! The daemon's configuration: one typed [`Config`] with defaults in code, layered by figment as
//! defaults → TOML file → `WTF_…` environment variables (`__` nests: `WTF_REDIS__URL`).
//!
//! [`Config::load`] reads and [`Config::validate`] checks; `validate` consumes the config and
//! returns a [`ValidConfig`], so code that runs the daemon cannot be handed an unchecked one.
//! Both collect every problem they find and name its key, so an operator fixes a file in one pass.

pub mod diff;
mod environment;
mod loading;
mod mqtt;
mod notify;
mod ranges;
mod redact;
mod rules;
mod sections;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::Parameter;

pub use environment::{ENV_ALLOWED, StrayVariable, stray_variables};
pub use mqtt::{BrokerAddress, MqttConfig};
pub use notify::*;
pub use redact::redact_url;
pub use sections::*;

/// Where the repository keeps its reference config; used when run from a checkout.
const REPO_CONFIG_PATH: &str = "config/wtf-monitor.toml";
/// Where an installed daemon reads its config.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/wtf-monitor/wtf-monitor.toml";
/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "WTF_";

/// Every setting of the daemon. Each section's doc is repeated in `config/wtf-monitor.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub api: ApiConfig,
    pub sensors: SensorsConfig,
    /// The measured quantities by name, with their units and normal ranges.
    ///
    /// Held as [`Parameter`]s, so every part built from one configuration (the ingress's inboxes,
    /// the simulators' readings, the detectors) shares each name's one allocation and compares
    /// it by pointer.
    #[serde(default = "default_parameters")]
    pub parameters: BTreeMap<Parameter, ParameterSpec>,
    pub ingest: IngestConfig,
    pub auth: AuthConfig,
    pub alarms: AlarmsConfig,
    pub audit: AuditConfig,
    pub history: HistoryConfig,
    pub cluster: ClusterConfig,
    pub simulation: SimulationConfig,
    pub detection: DetectionConfig,
    pub store: StoreConfig,
    pub llm: LlmConfig,
    pub redis: RedisConfig,
    pub mqtt: MqttConfig,
    /// Alarm notifications: Alertmanager and webhooks.
    pub notify: NotifyConfig,
    pub supervisor: SupervisorConfig,
    pub log: LogConfig,
    pub debug: DebugConfig,
}

/// The section names, in file order; anything else at the top level is an error.
const SECTIONS: [&str; 19] = [
    "api",
    "sensors",
    "parameters",
    "ingest",
    "auth",
    "alarms",
    "audit",
    "history",
    "cluster",
    "simulation",
    "detection",
    "store",
    "llm",
    "redis",
    "mqtt",
    "notify",
    "supervisor",
    "log",
    "debug",
];

impl Default for Config {
    fn default() -> Self {
        Self {
            api: ApiConfig::default(),
            sensors: SensorsConfig::default(),
            parameters: default_parameters(),
            ingest: IngestConfig::default(),
            auth: AuthConfig::default(),
            alarms: AlarmsConfig::default(),
            audit: AuditConfig::default(),
            history: HistoryConfig::default(),
            cluster: ClusterConfig::default(),
            simulation: SimulationConfig::default(),
            detection: DetectionConfig::default(),
            store: StoreConfig::default(),
            llm: LlmConfig::default(),
            redis: RedisConfig::default(),
            mqtt: MqttConfig::default(),
            notify: NotifyConfig::default(),
            supervisor: SupervisorConfig::default(),
            log: LogConfig::default(),
            debug: DebugConfig::default(),
        }
    }
}

impl Config {
    /// The configured parameters, in name order.
    pub fn parameter_list(&self) -> Vec<Parameter> {
        self.parameters.keys().cloned().collect()
    }

    /// The unit of a parameter; "" for one that is not configured.
    pub fn unit(&self, parameter: &str) -> &str {
        self.parameters.get(parameter).map_or("", |spec| spec.unit.as_str())
    }

    /// How messages name a parameter: its title and unit (the name itself for one not configured).
    pub fn wording(&self, parameter: &str) -> crate::domain::Wording {
        match self.parameters.get(parameter) {
            Some(spec) => crate::domain::Wording::new(&spec.title(parameter), &spec.unit),
            None => crate::domain::Wording::new(parameter, ""),
        }
    }
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
    /// A `WTF_` variable is read when its first segment names a section; one that does not is
    /// refused if it is shaped like a setting (`WTF_DETECTOIN__DRIFT_DURATION`), and otherwise
    /// left to the tools that share the prefix ([`stray_variables`]). Inside a section, an unknown
    /// key is an error.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        let loaded = loading::load(source);
        if loaded.problems.is_empty() {
            Ok(loaded.config)
        } else {
            Err(ConfigError { source_name: source.to_string(), problems: loaded.problems })
        }
    }

    /// Checks every rule and returns every problem; a valid config is wrapped so it can be run.
    pub fn validate(self) -> Result<ValidConfig, Vec<ConfigProblem>> {
        let problems = rules::check(&self);
        if problems.is_empty() { Ok(ValidConfig(self)) } else { Err(problems) }
    }

    /// The effective config as TOML, as `check-config` prints it: URLs redacted, tokens `***`.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.redacted()).unwrap_or_else(|err| format!("# cannot render the config: {err}\n"))
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
/// Every problem comes back at once: each key that does not parse is reported (and keeps its
/// default), and the rules still check every other key.
pub fn load_valid(source: &ConfigSource) -> Result<ValidConfig, ConfigError> {
    let loading::Loaded { config, mut problems, unparsed } = loading::load(source);
    let parsed = |problem: &ConfigProblem| {
        !unparsed.iter().any(|key| problem.key == *key || problem.key.starts_with(&format!("{key}.")))
    };
    problems.extend(rules::check(&config).into_iter().filter(parsed));
    if problems.is_empty() {
        Ok(ValidConfig(config))
    } else {
        Err(ConfigError { source_name: source.to_string(), problems })
    }
}

pub use rules::is_safe_identifier;

#[cfg(test)]
mod tests;
