//! Reading a config: figment layers defaults → the file → `WTF_…` variables, then the result is
//! taken apart key by key so that every mistake is reported at once.
//!
//! serde stops a struct at its first bad field, so a second mistake in a section would hide
//! behind the first until the first was fixed. When a section does not deserialise as a whole,
//! each of its keys is tried alone over the defaults: every bad key is reported with its own
//! reason, and the keys that are fine are kept, so the rules can still check them.

use std::collections::BTreeSet;

use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Provider};

use super::*;

/// What loading found: the config (a key that does not parse keeps its default), every problem,
/// and the keys that did not parse, whose rules are not checked on the default in their place.
pub(super) struct Loaded {
    pub config: Config,
    pub problems: Vec<ConfigProblem>,
    pub unparsed: BTreeSet<String>,
}

pub(super) fn load(source: &ConfigSource) -> Loaded {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let ConfigSource::File(path) = source {
        // A file that cannot be read or parsed is one problem, named by its path; left to the
        // sections, each would repeat it.
        let file = Toml::file_exact(path);
        if let Err(error) = file.data() {
            let problem = ConfigProblem { key: path.display().to_string(), message: error.kind.to_string() };
            return Loaded { config: Config::default(), problems: vec![problem], unparsed: all_sections() };
        }
        figment = figment.merge(file);
    }
    let environment = Env::prefixed(ENV_PREFIX).split("__").filter(|key| environment::names_a_section(key.as_str()));
    figment = figment.merge(environment);
    let mut loaded = extract(&figment);
    let refused = stray_variables().into_iter().filter(|stray| stray.refused);
    loaded.problems.extend(refused.map(|stray| ConfigProblem { key: stray.name, message: stray.message }));
    loaded
}

fn all_sections() -> BTreeSet<String> {
    SECTIONS.iter().map(|name| (*name).to_owned()).collect()
}

/// Deserialises section by section, so that a bad value in one section does not hide problems
/// in another, and reports unknown top-level sections.
fn extract(figment: &Figment) -> Loaded {
    let mut loaded = Loaded { config: Config::default(), problems: Vec::new(), unparsed: BTreeSet::new() };
    let problems = &mut loaded.problems;
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
            if let Some(Value::Dict(_, detection)) = dict.get("detection") {
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
    let config = &mut loaded.config;
    let mut reader = SectionReader { figment, problems: &mut loaded.problems, unparsed: &mut loaded.unparsed };
    reader.section("api", &mut config.api);
    reader.section("sensors", &mut config.sensors);
    reader.section("parameters", &mut config.parameters);
    reader.section("ingest", &mut config.ingest);
    reader.section("auth", &mut config.auth);
    reader.section("alarms", &mut config.alarms);
    reader.section("audit", &mut config.audit);
    reader.section("history", &mut config.history);
    reader.section("cluster", &mut config.cluster);
    reader.section("simulation", &mut config.simulation);
    reader.section("detection", &mut config.detection);
    reader.section("store", &mut config.store);
    reader.section("llm", &mut config.llm);
    reader.section("redis", &mut config.redis);
    reader.section("mqtt", &mut config.mqtt);
    reader.section("notify", &mut config.notify);
    reader.section("supervisor", &mut config.supervisor);
    reader.section("log", &mut config.log);
    reader.section("debug", &mut config.debug);
    loaded
}

struct SectionReader<'a> {
    figment: &'a Figment,
    problems: &'a mut Vec<ConfigProblem>,
    unparsed: &'a mut BTreeSet<String>,
}

impl SectionReader<'_> {
    fn section<T: DeserializeOwned>(&mut self, name: &str, slot: &mut T) {
        let whole = match self.figment.extract_inner::<T>(name) {
            Ok(value) => {
                *slot = value;
                return;
            }
            Err(errors) => errors,
        };
        let Ok(Value::Dict(_, keys)) = self.figment.find_value(name) else {
            // Not a table at all (`api = 5`): nothing to take apart.
            self.unparsed.insert(name.to_owned());
            self.report(name, None, whole);
            return;
        };
        let mut good = Dict::new();
        for (key, value) in &keys {
            match over_defaults(name, [(key.clone(), value.clone())].into()).extract_inner::<T>(name) {
                Ok(_) => {
                    good.insert(key.clone(), value.clone());
                }
                Err(errors) => {
                    self.unparsed.insert(format!("{name}.{key}"));
                    self.report(name, Some(key), errors);
                }
            }
        }
        match over_defaults(name, good).extract_inner::<T>(name) {
            Ok(value) => *slot = value,
            // The keys are fine alone but not together: say what serde said of the whole.
            Err(_) if self.unparsed.iter().any(|key| key.starts_with(&format!("{name}."))) => {}
            Err(_) => {
                self.unparsed.insert(name.to_owned());
                self.report(name, None, whole);
            }
        }
    }

    fn report(&mut self, name: &str, key: Option<&str>, errors: figment::Error) {
        for error in errors {
            // figment appends the section to the path of an inner extraction.
            let path: Vec<&str> = error.path.iter().map(String::as_str).filter(|part| *part != name).collect();
            let key = match (path.is_empty(), key) {
                (true, Some(key)) => format!("{name}.{key}"),
                _ => std::iter::once(name).chain(path).collect::<Vec<_>>().join("."),
            };
            // The per-key figment only knows the value came from it; the real origin (the file,
            // or which environment variable) is in the layered one.
            let metadata = self.figment.find_metadata(&key).or(error.metadata.as_ref());
            let message = match metadata.and_then(origin) {
                Some(origin) => format!("{} (in {origin})", error.kind),
                None => error.kind.to_string(),
            };
            let problem = ConfigProblem { key, message };
            if !self.problems.contains(&problem) {
                self.problems.push(problem);
            }
        }
    }
}

/// The defaults with only `keys` of section `name` set over them.
fn over_defaults(name: &str, keys: Dict) -> Figment {
    let section: Dict = [(name.to_owned(), Value::from(keys))].into();
    Figment::from(Serialized::defaults(Config::default())).merge(Serialized::defaults(section))
}

/// Where a value came from, for a message: the file's path, or the environment.
fn origin(metadata: &Metadata) -> Option<String> {
    if metadata.name.contains("Serialized") {
        return None;
    }
    Some(match &metadata.source {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ => metadata.name.to_string(),
    })
}
