//! What a reload changes: the difference between the config in force and a new, valid one,
//! sorted into what can be applied live and what needs a restart.
//!
//! Pure; the supervisor applies the live part and the daemon reports the rest.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Config;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConfigDiff {
    /// Thresholds or durations changed: detectors get new rules, episodes carry on.
    pub detection: bool,
    /// Parameters were added, removed or changed (units, ranges): detectors follow.
    pub parameters: bool,
    /// Ingest limits or tokens changed; both apply to the next request.
    pub ingest: bool,
    /// Rates, thresholds or the reading interval the simulators use changed.
    pub simulation: bool,
    pub sensors_added: Vec<String>,
    pub sensors_removed: Vec<String>,
    pub llm: bool,
    pub log: bool,
    pub store: bool,
    pub supervisor: bool,
    /// The Sparkplug name maps changed: the MQTT actor takes them for the next message.
    pub mqtt_names: bool,
    /// Keys that changed but apply only after a restart; they are not half-applied.
    pub needs_restart: Vec<String>,
    /// Every changed key, for the log and `/status`.
    pub changed: Vec<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }
}

pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut changes = ConfigDiff::default();
    let mut changed = |key: &str, different: bool| {
        if different {
            changes.changed.push(key.to_owned());
        }
        different
    };

    changes.detection = changed("detection", old.detection != new.detection);
    changes.parameters = changed("parameters", old.parameters != new.parameters);
    changes.ingest = changed("ingest", old.ingest != new.ingest);
    changed("auth", old.auth != new.auth);
    let interval = changed("sensors.interval", old.sensors.interval != new.sensors.interval);
    let rates = changed(
        "simulation.rates",
        (old.simulation.spikes_per_hour, old.simulation.drifts_per_hour, old.simulation.dropouts_per_hour)
            != (new.simulation.spikes_per_hour, new.simulation.drifts_per_hour, new.simulation.dropouts_per_hour),
    );
    let seed = changed("simulation.seed", old.simulation.seed != new.simulation.seed);
    let enabled = changed("simulation.enabled", old.simulation.enabled != new.simulation.enabled);
    // Simulators inject relative to the thresholds, so new thresholds reach them too.
    changes.simulation = interval || rates || changes.detection;
    changes.llm = changed("llm", old.llm != new.llm);
    changes.log = changed("log.level", old.log.level != new.log.level);
    let log_format = changed("log.format", old.log.format != new.log.format);
    changes.store = changed("store", old.store != new.store);
    changes.supervisor = changed("supervisor", old.supervisor != new.supervisor);
    let listen = changed("api.listen", old.api.listen != new.api.listen);
    let api = changed(
        "api",
        (old.api.request_timeout, &old.api.cors_allowed_origins)
            != (new.api.request_timeout, &new.api.cors_allowed_origins),
    );
    let redis = changed("redis", old.redis != new.redis);
    // Receivers and their outboxes are set up when the notifier starts: a restart applies a
    // change whole, rather than a half-changed receiver with a half-delivered outbox.
    let notify = changed("notify", old.notify != new.notify);
    let debug = changed("debug", old.debug != new.debug);
    let mqtt = changed("mqtt", old.mqtt.connection() != new.mqtt.connection());
    changes.mqtt_names = changed(
        "mqtt.sparkplug_metrics / mqtt.sparkplug_sensors",
        (&old.mqtt.sparkplug_metrics, &old.mqtt.sparkplug_sensors)
            != (&new.mqtt.sparkplug_metrics, &new.mqtt.sparkplug_sensors),
    );

    let old_ids: BTreeSet<&String> = old.sensors.ids.iter().collect();
    let new_ids: BTreeSet<&String> = new.sensors.ids.iter().collect();
    changes.sensors_added = new.sensors.ids.iter().filter(|id| !old_ids.contains(id)).cloned().collect();
    changes.sensors_removed = old.sensors.ids.iter().filter(|id| !new_ids.contains(id)).cloned().collect();
    if !changes.sensors_added.is_empty() || !changes.sensors_removed.is_empty() {
        changes.changed.push("sensors.ids".into());
    }

    for (key, different) in [
        ("api.listen", listen),
        ("api.request_timeout / api.cors_allowed_origins", api),
        ("redis", redis),
        ("mqtt", mqtt),
        ("notify", notify),
        ("simulation.seed", seed),
        ("simulation.enabled", enabled),
        ("debug", debug),
        ("log.format", log_format),
    ] {
        if different {
            changes.needs_restart.push(key.to_owned());
        }
    }
    changes
}

/// What changed, key by key, as `key: old → new` (at most `most` lines, then a count), for the
/// audit trail. Secrets serialise as `***`, so a changed token shows only as its key changing.
pub fn describe(old: &Config, new: &Config, most: usize) -> Vec<String> {
    let (mut old_values, mut new_values) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &serde_json::to_value(old).unwrap_or_default(), &mut old_values);
    flatten("", &serde_json::to_value(new).unwrap_or_default(), &mut new_values);
    let keys: BTreeSet<&String> = old_values.keys().chain(new_values.keys()).collect();
    let missing = serde_json::Value::Null;
    let mut lines: Vec<String> = keys
        .into_iter()
        .filter_map(|key| {
            let (before, after) = (old_values.get(key).unwrap_or(&missing), new_values.get(key).unwrap_or(&missing));
            (before != after).then(|| format!("{key}: {} → {}", short(before), short(after)))
        })
        .collect();
    if lines.len() > most {
        let more = lines.len() - most;
        lines.truncate(most);
        lines.push(format!("and {more} more"));
    }
    lines
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&key, inner, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned(), value.clone());
        }
    }
}

/// A value as a line shows it: short enough to read, never a page of sensor ids.
fn short(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 { format!("{}…", text.chars().take(120).collect::<String>()) } else { text }
}

/// The config to put in force on reload: `new`, except for the settings that apply only after a
/// restart, which keep their values in force so that what `/status` shows is what runs.
pub fn live_part(in_force: &Config, new: Config) -> Config {
    Config {
        api: super::ApiConfig { listen: in_force.api.listen, ..in_force.api.clone() },
        redis: in_force.redis.clone(),
        mqtt: super::MqttConfig {
            sparkplug_metrics: new.mqtt.sparkplug_metrics.clone(),
            sparkplug_sensors: new.mqtt.sparkplug_sensors.clone(),
            ..in_force.mqtt.clone()
        },
        notify: in_force.notify.clone(),
        simulation: super::SimulationConfig {
            seed: in_force.simulation.seed,
            enabled: in_force.simulation.enabled,
            ..new.simulation
        },
        debug: in_force.debug.clone(),
        log: super::LogConfig { format: in_force.log.format, ..new.log },
        ..new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_part_keeps_what_needs_a_restart() {
        let mut new = Config::default();
        new.api.listen = "127.0.0.1:9000".parse().unwrap();
        new.redis.url = String::new();
        new.simulation.seed = Some(9);
        new.simulation.spikes_per_hour = 1.0;
        new.detection.drift_duration = std::time::Duration::from_secs(20);
        let live = live_part(&Config::default(), new);
        assert_eq!(live.api, Config::default().api);
        assert_eq!(live.redis, Config::default().redis);
        assert_eq!(live.simulation.seed, None);
        assert_eq!(live.simulation.spikes_per_hour, 1.0);
        assert_eq!(live.detection.drift_duration, std::time::Duration::from_secs(20));
    }

    #[test]
    fn the_broker_needs_a_restart_and_the_sparkplug_names_apply_live() {
        let mut new = Config::default();
        new.mqtt.url = "mqtt://127.0.0.1:1883".into();
        new.mqtt.sparkplug_metrics.insert("Pressure/PT-101".into(), "pressure".into());
        let changes = diff(&Config::default(), &new);
        assert_eq!(changes.needs_restart, ["mqtt"]);
        assert!(changes.mqtt_names);
        let live = live_part(&Config::default(), new.clone());
        assert_eq!(live.mqtt.url, "");
        assert_eq!(live.mqtt.sparkplug_metrics, new.mqtt.sparkplug_metrics);
    }

    #[test]
    fn a_change_is_described_as_old_to_new() {
        let mut new = Config::default();
        new.detection.limits.spike_thresholds.insert("pressure".into(), 4.2);
        new.llm.interval = std::time::Duration::from_secs(30);
        let lines = describe(&Config::default(), &new, 10);
        assert_eq!(lines, ["detection.spike_thresholds.pressure: 4.0 → 4.2", "llm.interval: \"1m\" → \"30s\""]);
    }

    #[test]
    fn the_same_config_changes_nothing() {
        assert!(diff(&Config::default(), &Config::default()).is_empty());
    }

    #[test]
    fn thresholds_apply_live_and_reach_the_simulators() {
        let mut new = Config::default();
        new.detection.limits.spike_thresholds.insert("pressure".into(), 4.2);
        let changes = diff(&Config::default(), &new);
        assert!(changes.detection && changes.simulation);
        assert!(changes.needs_restart.is_empty());
    }

    #[test]
    fn sensors_added_and_removed_are_listed() {
        let mut new = Config::default();
        new.sensors.ids = vec!["wtf-pipe-1".into(), "wtf-pipe-3".into(), "wtf-pipe-4".into()];
        let changes = diff(&Config::default(), &new);
        assert_eq!(changes.sensors_added, ["wtf-pipe-4"]);
        assert_eq!(changes.sensors_removed, ["wtf-pipe-2"]);
        assert!(changes.needs_restart.is_empty());
    }

    #[test]
    fn listen_address_and_redis_need_a_restart() {
        let mut new = Config::default();
        new.api.listen = "127.0.0.1:9000".parse().unwrap();
        new.redis.url = String::new();
        new.log.level = "debug".into();
        let changes = diff(&Config::default(), &new);
        assert_eq!(changes.needs_restart, ["api.listen", "redis"]);
        assert!(changes.log);
    }

    #[test]
    fn receivers_need_a_restart_and_keep_running_as_they_were() {
        let mut new = Config::default();
        new.notify.alertmanager.urls = vec!["http://127.0.0.1:9093".into()];
        let changes = diff(&Config::default(), &new);
        assert_eq!(changes.needs_restart, ["notify"]);
        assert_eq!(live_part(&Config::default(), new).notify, Config::default().notify);
    }
}
