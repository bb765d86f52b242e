//! The daemon's configuration: one typed [`Config`] with defaults in code, layered by figment as
//! defaults → TOML file → `WTF_…` environment variables (`__` nests: `WTF_REDIS__URL`).
//!
//! [`Config::load`] reads and [`Config::validate`] checks; `validate` consumes the config and
//! returns a [`ValidConfig`], so code that runs the daemon cannot be handed an unchecked one.
//! Both collect every problem they find and name its key, so an operator fixes a file in one pass.

pub mod diff;
mod notify;
mod rules;
mod sections;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::Parameter;

pub use notify::*;
pub use sections::*;

/// Where the repository keeps its reference config; used when run from a checkout.
pub const REPO_CONFIG_PATH: &str = "config/wtf-monitor.toml";
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
    #[serde(default = "default_parameters")]
    pub parameters: BTreeMap<String, ParameterSpec>,
    pub ingest: IngestConfig,
    pub auth: AuthConfig,
    pub alarms: AlarmsConfig,
    pub audit: AuditConfig,
    pub simulation: SimulationConfig,
    pub detection: DetectionConfig,
    pub store: StoreConfig,
    pub llm: LlmConfig,
    pub redis: RedisConfig,
    /// Alarm notifications: Alertmanager and webhooks.
    pub notify: NotifyConfig,
    pub supervisor: SupervisorConfig,
    pub log: LogConfig,
    pub debug: DebugConfig,
}

/// The section names, in file order; anything else at the top level is an error.
const SECTIONS: [&str; 16] = [
    "api",
    "sensors",
    "parameters",
    "ingest",
    "auth",
    "alarms",
    "audit",
    "simulation",
    "detection",
    "store",
    "llm",
    "redis",
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
            simulation: SimulationConfig::default(),
            detection: DetectionConfig::default(),
            store: StoreConfig::default(),
            llm: LlmConfig::default(),
            redis: RedisConfig::default(),
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
        self.parameters.keys().map(|name| Parameter::new(name)).collect()
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
            // `[detection]` flattens its limits, so serde cannot refuse unknown keys there.
            if let Some(figment::value::Value::Dict(_, detection)) = dict.get("detection") {
                let known = || DetectionConfig::KEYS.iter().chain(Limits::KEYS.iter());
                for key in detection.keys().filter(|key| !known().any(|known| known == key)) {
                    let expected: Vec<&str> = known().copied().collect();
                    problems.push(ConfigProblem {
                        key: format!("detection.{key}"),
                        message: format!("unknown key; expected one of {}", expected.join(", ")),
                    });
                }
            }
        }
    }
    let mut config = Config::default();
    section(figment, "api", &mut config.api, &mut problems);
    section(figment, "sensors", &mut config.sensors, &mut problems);
    section(figment, "parameters", &mut config.parameters, &mut problems);
    section(figment, "ingest", &mut config.ingest, &mut problems);
    section(figment, "auth", &mut config.auth, &mut problems);
    section(figment, "alarms", &mut config.alarms, &mut problems);
    section(figment, "audit", &mut config.audit, &mut problems);
    section(figment, "simulation", &mut config.simulation, &mut problems);
    section(figment, "detection", &mut config.detection, &mut problems);
    section(figment, "store", &mut config.store, &mut problems);
    section(figment, "llm", &mut config.llm, &mut problems);
    section(figment, "redis", &mut config.redis, &mut problems);
    section(figment, "notify", &mut config.notify, &mut problems);
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
