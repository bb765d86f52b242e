// figment's `Jail` closures return its own large error type; that is its API, not ours.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::time::Duration;

use figment::Jail;

use super::*;

fn repo_config() -> ConfigSource {
    ConfigSource::File(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(REPO_CONFIG_PATH))
}

fn keys(problems: &[ConfigProblem]) -> Vec<&str> {
    problems.iter().map(|problem| problem.key.as_str()).collect()
}

/// Loads `text` as the config file inside a jail, with the jail's environment.
fn load_text(jail: &Jail, text: &str) -> Result<Config, ConfigError> {
    jail.create_file("wtf-monitor.toml", text).expect("jail file");
    Config::load(&ConfigSource::File(jail.directory().join("wtf-monitor.toml")))
}

#[test]
fn the_reference_file_holds_exactly_the_defaults() {
    Jail::expect_with(|_| {
        let config = Config::load(&repo_config()).expect("the repository config loads");
        // The one deliberate difference: the file pins the seed so `cargo run` replays the
        // same plant; left out, every run draws a fresh one.
        let mut expected = Config::default();
        expected.simulation.seed = Some(42);
        assert_eq!(config, expected);
        config.validate().expect("the defaults are valid");
        Ok(())
    });
}

#[test]
fn defaults_match_the_specification() {
    let config = Config::default();
    assert_eq!(config.api.listen.to_string(), "0.0.0.0:8000");
    assert_eq!(config.sensors.ids, ["wtf-pipe-1", "wtf-pipe-2", "wtf-pipe-3"]);
    assert_eq!(config.detection.drift_duration, Duration::from_secs(15));
    assert_eq!(config.detection.dropout_timeout, Duration::from_secs(10));
    assert_eq!(config.detection.limits.spike_thresholds["pressure"], 4.0);
    assert_eq!(config.detection.limits.drift_thresholds["flow"], 110.0);
    assert_eq!(config.llm.model, "llama3.2:1b");
    assert_eq!(config.llm.max_context, 128_000);
    assert_eq!(config.redis.key_prefix, "wtf:");
}

#[test]
fn environment_variables_override_the_file_with_double_underscores_nesting() {
    Jail::expect_with(|jail| {
        jail.set_env("WTF_API__LISTEN", "127.0.0.1:18000");
        jail.set_env("WTF_REDIS__URL", "");
        jail.set_env("WTF_DETECTION__SPIKE_THRESHOLDS__PRESSURE", "4.2");
        jail.set_env("WTF_SENSORS__IDS", "[a-1, b-2]");
        jail.set_env("WTF_LLM__INTERVAL", "30s");
        let config = Config::load(&repo_config()).expect("loads");
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:18000");
        assert_eq!(config.redis.url, "");
        assert_eq!(config.detection.limits.spike_thresholds["pressure"], 4.2);
        assert_eq!(config.detection.limits.spike_thresholds["flow"], 120.0, "siblings keep their values");
        assert_eq!(config.sensors.ids, ["a-1", "b-2"]);
        assert_eq!(config.llm.interval, Duration::from_secs(30));
        Ok(())
    });
}

#[test]
fn other_variables_sharing_the_prefix_are_ignored() {
    Jail::expect_with(|jail| {
        jail.set_env("WTF_TEST_REDIS_URL", "redis://127.0.0.1:1");
        jail.set_env("WTF_CONFIG", "/nowhere");
        Config::load(&repo_config()).expect("loads");
        Ok(())
    });
}

#[test]
fn a_misspelt_key_inside_a_section_is_rejected_by_name() {
    Jail::expect_with(|jail| {
        jail.set_env("WTF_API__LISTN", "127.0.0.1:1");
        let error = Config::load(&repo_config()).expect_err("unknown key");
        assert!(error.problems.iter().any(|problem| problem.message.contains("listn")), "{error}");
        Ok(())
    });
}

#[test]
fn a_broken_file_reports_a_problem_in_every_section_at_once() {
    Jail::expect_with(|jail| {
        let error = load_text(
            jail,
            r#"
            [api]
            listen = "not an address"
            [detection]
            drift_duration = "-5s"
            [llm]
            max_tokens = "many"
            [pumps]
            count = 3
            "#,
        )
        .expect_err("broken");
        let keys = keys(&error.problems);
        assert!(keys.contains(&"api.listen"), "{error}");
        assert!(keys.contains(&"detection.drift_duration"), "{error}");
        assert!(keys.contains(&"llm.max_tokens"), "{error}");
        assert!(keys.contains(&"pumps"), "{error}");
        Ok(())
    });
}

#[test]
fn a_file_that_is_not_toml_is_reported() {
    Jail::expect_with(|jail| {
        let error = load_text(jail, "[api\nlisten = ").expect_err("not toml");
        assert!(!error.problems.is_empty());
        Ok(())
    });
}

#[test]
fn validation_names_every_bad_key() {
    let mut config = Config::default();
    config.sensors.ids = vec!["wtf-pipe-1".into(), "wtf-pipe-1".into(), "bad id;rm".into()];
    config.sensors.interval = Duration::ZERO;
    config.detection.limits.drift_thresholds.insert("pressure".into(), 4.5);
    config.detection.limits.spike_thresholds.insert("flow".into(), f64::NAN);
    config.detection.drift_duration = Duration::ZERO;
    config.llm.interval = Duration::from_secs(600);
    config.llm.temperature = 7.0;
    config.redis.url = "http://redis".into();
    config.log.level = "loud[".into();
    config.simulation.spikes_per_hour = -1.0;
    let problems = config.validate().expect_err("invalid");
    let keys = keys(&problems);
    for expected in [
        "sensors.ids",
        "sensors.interval",
        "detection.drift_thresholds.pressure",
        "detection.spike_thresholds.flow",
        "detection.drift_duration",
        "llm.interval",
        "llm.temperature",
        "redis.url",
        "log.level",
        "simulation.spikes_per_hour",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
    assert_eq!(keys.iter().filter(|key| **key == "sensors.ids").count(), 2, "duplicate and unsafe id both reported");
    let drift = problems.iter().find(|problem| problem.key == "detection.drift_thresholds.pressure").unwrap();
    assert!(drift.message.contains("must be below detection.spike_thresholds.pressure"), "{drift}");
}

#[test]
fn an_empty_sensor_list_is_rejected() {
    let mut config = Config::default();
    config.sensors.ids.clear();
    assert_eq!(keys(&config.validate().expect_err("empty")), ["sensors.ids"]);
}

#[test]
fn a_missing_explicit_config_file_is_an_error() {
    let error = Config::locate(Some(Path::new("/nonexistent/wtf-monitor.toml"))).expect_err("missing");
    assert_eq!(error.problems[0].key, "--config");
}

#[test]
fn safe_identifiers() {
    for good in ["wtf-pipe-1", "A", "pump_2.inlet"] {
        assert!(is_safe_identifier(good), "{good}");
    }
    for bad in ["", "-lead", "with space", "wtf:pipe", "a{b}", "é", &"x".repeat(65)] {
        assert!(!is_safe_identifier(bad), "{bad}");
    }
}

#[test]
fn the_effective_config_prints_as_toml_that_loads_back() {
    Jail::expect_with(|jail| {
        let mut config = Config::default();
        config.simulation.seed = None;
        config.sensors.ids.push("extra-1".into());
        let config = load_text(jail, &config.to_toml()).expect("round trip");
        assert_eq!(config.simulation.seed, None);
        assert_eq!(config.sensors.ids.len(), 4);
        Ok(())
    });
}

#[test]
fn a_value_that_does_not_parse_does_not_hide_a_rule_broken_elsewhere() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "wtf-monitor.toml",
            "[sensors]\ninterval = \"fast\"\n[detection]\ndrift_thresholds = { temperature = 50.0, pressure = 3.5, flow = 110.0 }\n[llm]\ninterval = \"10m\"\n",
        )?;
        let error = load_valid(&ConfigSource::File(jail.directory().join("wtf-monitor.toml"))).expect_err("broken");
        let keys = keys(&error.problems);
        for expected in ["sensors.interval", "detection.drift_thresholds.temperature", "llm.interval"] {
            assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
        }
        Ok(())
    });
}

#[test]
fn mqtt_is_off_by_default_and_a_bad_broker_setup_is_refused_key_by_key() {
    let config = Config::default();
    assert_eq!(config.mqtt.url, "");
    assert_eq!(config.mqtt.topic_prefix, "wtf");
    assert!(!config.mqtt.sparkplug);
    assert!(config.clone().validate().is_ok());

    let mut config = Config::default();
    config.mqtt.url = "mqtts://broker:8883".into();
    config.mqtt.client_id = "two words".into();
    config.mqtt.password = Some(Secret::new("hunter2"));
    config.mqtt.topic_prefix = "wtf/#".into();
    config.mqtt.sparkplug_metrics.insert("Level/LT-1".into(), "level".into());
    config.mqtt.sparkplug_sensors.insert("node-1/pump 1".into(), "pump 1".into());
    let problems = config.validate().expect_err("invalid");
    let keys = keys(&problems);
    for expected in [
        "mqtt.url",
        "mqtt.client_id",
        "mqtt.password",
        "mqtt.topic_prefix",
        "mqtt.sparkplug_metrics.\"Level/LT-1\"",
        "mqtt.sparkplug_sensors.\"node-1/pump 1\"",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
    assert!(problems.iter().all(|problem| !problem.message.contains("hunter2")));
}

#[test]
fn the_mqtt_password_comes_from_its_file_and_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mqtt-password");
    std::fs::write(&path, "s3cret-broker\n").unwrap();
    let mut config = Config::default();
    config.mqtt.url = "mqtt://127.0.0.1:1883".into();
    config.mqtt.username = Some("wtf".into());
    config.mqtt.password_file = Some(path.clone());
    assert_eq!(config.mqtt.read_password(), Ok(Some("s3cret-broker".into())));
    assert!(config.clone().validate().is_ok());

    config.mqtt.password = Some(Secret::new("inline-secret"));
    assert!(config.mqtt.read_password().unwrap_err().contains("not both"));
    config.mqtt.password_file = None;
    let printed = config.to_toml();
    assert!(!printed.contains("inline-secret"), "{printed}");
    assert!(printed.contains("password = \"***\""), "{printed}");
}

#[test]
fn every_bad_key_of_a_section_is_reported_and_its_good_keys_still_checked() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "wtf-monitor.toml",
            r#"
            [api]
            listen = "not an address"
            request_timeout = "soon"
            [llm]
            max_tokens = "many"
            temperature = "hot"
            interval = "10m"
            [store]
            max_anomalies = 9223372036854775807
            max_summaries = 1e12
            "#,
        )?;
        let error = load_valid(&ConfigSource::File(jail.directory().join("wtf-monitor.toml"))).expect_err("broken");
        let keys = keys(&error.problems);
        for expected in [
            "api.listen",
            "api.request_timeout",
            "llm.max_tokens",
            "llm.temperature",
            "llm.interval",
            "store.max_anomalies",
            "store.max_summaries",
        ] {
            assert!(keys.contains(&expected), "missing {expected} in {error}");
        }
        let origin = error.problems.iter().find(|problem| problem.key == "llm.temperature").unwrap();
        assert!(origin.message.contains("wtf-monitor.toml"), "names the file: {origin}");
        Ok(())
    });
}

#[test]
fn a_file_that_does_not_parse_is_one_problem_naming_its_path() {
    Jail::expect_with(|jail| {
        jail.create_file("wtf-monitor.toml", "[api\nlisten = ")?;
        let path = jail.directory().join("wtf-monitor.toml");
        let error = load_valid(&ConfigSource::File(path.clone())).expect_err("not toml");
        assert_eq!(error.problems.len(), 1, "{error}");
        assert_eq!(error.problems[0].key, path.display().to_string());
        assert!(error.problems[0].message.contains("line 1"), "{error}");

        // A reload after the file was removed.
        std::fs::remove_file(&path).expect("remove");
        let error = load_valid(&ConfigSource::File(path.clone())).expect_err("missing");
        assert_eq!(error.problems.len(), 1, "{error}");
        assert_eq!(error.problems[0].key, path.display().to_string());
        Ok(())
    });
}

#[test]
fn a_log_level_that_is_not_a_level_is_refused() {
    for bad in ["loud", "info,loud", "wtf_monitor=loud", ""] {
        let mut config = Config::default();
        config.log.level = bad.into();
        let problems = config.validate().expect_err(bad);
        assert_eq!(keys(&problems), ["log.level"], "{bad:?}");
    }
    for good in ["warn", "DEBUG", "info,wtf_monitor::detection=debug", "off"] {
        let mut config = Config::default();
        config.log.level = good.into();
        assert!(config.validate().is_ok(), "{good:?}");
    }
}

#[test]
fn sensor_ids_that_differ_only_in_case_are_refused() {
    let mut config = Config::default();
    config.sensors.ids = vec!["wtf-pipe-1".into(), "WTF-PIPE-1".into()];
    let problems = config.validate().expect_err("case duplicates");
    assert_eq!(keys(&problems), ["sensors.ids"]);
    assert!(problems[0].message.contains("differ only in case"), "{}", problems[0]);

    let mut config = Config::default();
    config.detection.sensors.insert("WTF-PIPE-2".into(), Limits::default());
    config.detection.sensors.insert("pump-9".into(), Limits::default());
    config.detection.sensors.insert("PUMP-9".into(), Limits::default());
    let problems = config.validate().expect_err("overrides in another case");
    let keys = keys(&problems);
    assert!(keys.contains(&"detection.sensors.WTF-PIPE-2"), "{keys:?}");
    assert!(keys.contains(&"detection.sensors.pump-9"), "{keys:?}");
    assert_eq!(keys.len(), 2, "{problems:?}");
}

#[test]
fn a_misspelt_section_in_the_environment_is_refused() {
    Jail::expect_with(|jail| {
        jail.set_env("WTF_DETECTOIN__DRIFT_DURATION", "5s");
        let error = Config::load(&repo_config()).expect_err("misspelt section");
        assert_eq!(keys(&error.problems), ["WTF_DETECTOIN__DRIFT_DURATION"], "{error}");
        Ok(())
    });
}

#[test]
fn a_string_choice_outside_its_set_is_refused_by_key() {
    Jail::expect_with(|jail| {
        jail.set_env("WTF_LOG__FORMAT", "xml");
        jail.set_env("WTF_INGEST__UNKNOWN_SENSORS", "accept");
        jail.set_env("WTF_AUTH__READ", "closed");
        let error = Config::load(&repo_config()).expect_err("unknown choices");
        let keys = keys(&error.problems);
        for expected in ["log.format", "ingest.unknown_sensors", "auth.read"] {
            assert!(keys.contains(&expected), "missing {expected} in {error}");
        }
        let format = error.problems.iter().find(|problem| problem.key == "log.format").unwrap();
        assert!(format.message.contains("text") && format.message.contains("json"), "{format}");
        Ok(())
    });
}

#[test]
fn receivers_are_read_from_the_file_and_the_environment_and_tokens_never_printed() {
    Jail::expect_with(|jail| {
        jail.set_env("WTF_NOTIFY__ALERTMANAGER__URLS", r#"["http://127.0.0.1:9093", "http://127.0.0.1:9094"]"#);
        let config = load_text(
            jail,
            "[[notify.webhook]]\nname = \"pager\"\nurl = \"http://pager.local/hook\"\ntoken = \"hook-secret-1\"\n\
             events = [\"raised\", \"cleared\"]\n",
        )
        .expect("loads");
        assert_eq!(config.notify.alertmanager.urls, ["http://127.0.0.1:9093", "http://127.0.0.1:9094"]);
        assert_eq!(config.notify.webhook[0].events, [NotifyEvent::Raised, NotifyEvent::Cleared]);
        let printed = config.to_toml();
        assert!(!printed.contains("hook-secret-1") && printed.contains("\"***\""), "{printed}");
        assert!(!format!("{config:?}").contains("hook-secret-1"));
        config.validate().expect("valid");
        Ok(())
    });
}

#[test]
fn receivers_that_cannot_be_reached_or_named_are_refused_by_key() {
    let mut config = Config::default();
    let webhook = |name: Option<&str>, url: &str, events: Vec<NotifyEvent>| WebhookConfig {
        name: name.map(str::to_owned),
        url: url.into(),
        token: None,
        token_file: None,
        events,
    };
    config.notify.alertmanager.urls = vec!["https://am.local:9093".into(), "http://user:pw@am.local".into()];
    config.notify.alertmanager.labels.insert("severity".into(), "page".into());
    config.notify.webhook = vec![
        webhook(Some("alertmanager-1"), "ftp://x", vec![]),
        webhook(Some("pager"), "http://pager.local/hook", vec![NotifyEvent::Raised, NotifyEvent::Raised]),
        webhook(Some("pager"), "not a url", vec![NotifyEvent::Cleared]),
    ];
    config.notify.webhook[1].token = Some(Secret::new("a token"));
    config.notify.outbox_capacity = 0;
    config.notify.retry_max = Duration::from_millis(10);
    let problems = config.validate().unwrap_err();
    let found = keys(&problems);
    for key in [
        "notify.alertmanager.urls[0]",
        "notify.alertmanager.urls[1]",
        "notify.alertmanager.labels.severity",
        "notify.webhook[0].name",
        "notify.webhook[0].url",
        "notify.webhook[0].events",
        "notify.webhook[1].events",
        "notify.webhook[1].token",
        "notify.webhook[2].name",
        "notify.webhook[2].url",
        "notify.outbox_capacity",
        "notify.retry_max",
    ] {
        assert!(found.contains(&key), "{key} not among {found:?}");
    }
    let https = problems.iter().find(|problem| problem.key == "notify.alertmanager.urls[0]").unwrap();
    assert!(https.message.contains("no TLS"), "{}", https.message);
}
