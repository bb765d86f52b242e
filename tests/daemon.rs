//! The real binary as an operator meets it: anomalies of every kind, supervision drills through
//! fault injection, SIGHUP reloads (good, broken, adding a sensor), and refusing a bad config.

mod common;

use std::time::Duration;

use common::{Daemon, run};
use serde_json::Value;

/// Fast readings and frequent injections, so every kind shows within seconds.
const BUSY_PLANT: &str = r#"
[sensors]
interval = "100ms"

[simulation]
seed = 3
spikes_per_hour = 3600.0
drifts_per_hour = 3600.0
dropouts_per_hour = 3600.0

[detection]
drift_duration = "1s"
dropout_timeout = "500ms"
"#;

/// No injections: only what a config change provokes is raised.
const QUIET_PLANT: &str = r#"
[sensors]
interval = "100ms"

[simulation]
seed = 3
spikes_per_hour = 0.0
drifts_per_hour = 0.0
dropouts_per_hour = 0.0
"#;

async fn anomalies(daemon: &Daemon, query: &str) -> Vec<Value> {
    let (status, body) = daemon.get_json(&format!("/anomalies?limit=1000{query}")).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

async fn status(daemon: &Daemon) -> Value {
    daemon.get_json("/status").await.1
}

#[tokio::test]
async fn a_fast_simulation_raises_every_kind_of_anomaly() {
    let daemon = Daemon::start(BUSY_PLANT).await;
    for kind in ["spike", "drift", "dropout"] {
        let found = daemon
            .wait_for(&format!("a {kind}"), Duration::from_secs(60), || async {
                anomalies(&daemon, &format!("&type={kind}")).await.into_iter().next()
            })
            .await;
        assert_eq!(found["type"], kind);
        assert!(found["message"].as_str().unwrap().contains(kind), "{found}");
    }
    let total = status(&daemon).await["anomaly_count_24h"].as_u64().unwrap();
    assert!(total >= 3);
}

const DRILL: &str = r#"
[sensors]
interval = "100ms"

[simulation]
spikes_per_hour = 0.0
drifts_per_hour = 0.0
dropouts_per_hour = 0.0

[supervisor]
max_restarts = 2
backoff_initial = "50ms"

[debug]
fault_injection = true
"#;

#[tokio::test]
async fn a_crashed_detector_is_restarted_and_its_restart_counted() {
    let daemon = Daemon::start(DRILL).await;
    let actor = "detector:wtf-pipe-1:pressure";
    let answer = daemon.request(reqwest::Method::POST, &format!("/debug/fail/{actor}?fault=panic")).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    let restarted = daemon
        .wait_for("the restart", Duration::from_secs(10), || async {
            let status = status(&daemon).await;
            let health = status["actors"][actor].clone();
            (health["restarts"] == 1 && health["alive"] == true && status["detector_active"] == true).then_some(health)
        })
        .await;
    assert!(restarted["last_failure"].as_str().unwrap().contains("fault injected"), "{restarted}");
    assert_eq!(daemon.get("/health").await.status, 200);
}

#[tokio::test]
async fn fault_injection_is_not_served_unless_configured() {
    let daemon = Daemon::start(QUIET_PLANT).await;
    let answer = daemon.request(reqwest::Method::POST, "/debug/fail/api").await;
    assert!(answer.status == 404 || answer.status == 405, "{}", answer.status);
}

#[tokio::test]
async fn an_actor_that_keeps_failing_ends_the_process_non_zero() {
    let mut daemon = Daemon::start(DRILL).await;
    for _ in 0..3 {
        let _ = daemon.try_request(reqwest::Method::POST, "/debug/fail/simulator:wtf-pipe-2?fault=error").await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let exit = daemon.wait_exit(Duration::from_secs(10)).await.expect("the daemon gave up and exited");
    assert_eq!(exit.code(), Some(3), "{}", daemon.logs());
    assert!(daemon.logs().contains("giving up"), "{}", daemon.logs());
}

async fn reload(daemon: &Daemon, config: &str) -> Value {
    let before = status(daemon).await["config"]["last_reload"].clone();
    std::fs::write(daemon.config_path(), config).expect("rewrite the config");
    daemon.signal("HUP");
    daemon
        .wait_for("the reload", Duration::from_secs(10), || async {
            let outcome = status(daemon).await["config"]["last_reload"].clone();
            (!outcome.is_null() && outcome != before).then_some(outcome)
        })
        .await
}

#[tokio::test]
async fn a_new_spike_threshold_applies_on_sighup() {
    let daemon = Daemon::start(QUIET_PLANT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(anomalies(&daemon, "").await.is_empty(), "a quiet plant raises nothing");

    // Normal temperatures (10–35 °C) are all above 9 °C: only the new threshold flags them.
    let lowered = format!(
        "{QUIET_PLANT}\n[detection]\nspike_thresholds = {{ temperature = 9.0, pressure = 4.0, flow = 120.0 }}\n\
         drift_thresholds = {{ temperature = 8.0, pressure = 3.5, flow = 110.0 }}\n"
    );
    let outcome = reload(&daemon, &lowered).await;
    assert_eq!(outcome["applied"], true, "{outcome}");
    let spikes = daemon
        .wait_for("a spike per sensor", Duration::from_secs(10), || async {
            let spikes = anomalies(&daemon, "&type=spike&parameter=temperature").await;
            (spikes.len() >= 3).then_some(spikes)
        })
        .await;
    assert!(spikes.iter().all(|spike| spike["threshold"] == 9.0));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(anomalies(&daemon, "&type=spike").await.len(), 3, "one spike per sensor: one episode each");
}

#[tokio::test]
async fn a_sensor_added_on_sighup_reports() {
    let daemon = Daemon::start(QUIET_PLANT).await;
    let added = QUIET_PLANT
        .replace("[sensors]\n", "[sensors]\nids = [\"wtf-pipe-1\", \"wtf-pipe-2\", \"wtf-pipe-3\", \"wtf-pipe-4\"]\n");
    let outcome = reload(&daemon, &added).await;
    assert_eq!(outcome["applied"], true, "{outcome}");
    let sensor = daemon
        .wait_for("readings from wtf-pipe-4", Duration::from_secs(10), || async {
            let sensor = status(&daemon).await["sensors"]["wtf-pipe-4"].clone();
            (sensor["active"] == true).then_some(sensor)
        })
        .await;
    assert_eq!(sensor["last_reading"]["sensor_id"], "wtf-pipe-4");
    let status = status(&daemon).await;
    assert_eq!(status["actors"]["detector:wtf-pipe-4:flow"]["alive"], true);

    let removed = QUIET_PLANT.replace("[sensors]\n", "[sensors]\nids = [\"wtf-pipe-1\"]\n");
    assert_eq!(reload(&daemon, &removed).await["applied"], true);
    let status = self::status(&daemon).await;
    assert!(status["sensors"]["wtf-pipe-2"].is_null(), "{}", status["sensors"]);
    assert!(status["actors"]["simulator:wtf-pipe-2"].is_null());
    assert_eq!(status["sensor_active"], true, "the remaining sensor reports");
}

#[tokio::test]
async fn a_broken_config_on_sighup_is_refused_and_the_old_one_stays() {
    let daemon = Daemon::start(QUIET_PLANT).await;
    let broken = "[sensors]\ninterval = \"fast\"\n[detection]\ndrift_thresholds = { temperature = 50.0, pressure = 3.5, flow = 110.0 }\n[pumps]\nspeed = 3\n";
    let outcome = reload(&daemon, broken).await;
    assert_eq!(outcome["applied"], false, "{outcome}");
    let details = outcome["details"].to_string();
    for key in ["sensors.interval", "pumps", "detection.drift_thresholds.temperature"] {
        assert!(details.contains(key), "{key} missing from {details}");
    }
    let logs = daemon.logs();
    assert!(logs.contains("reload refused"), "{logs}");
    assert!(logs.contains("sensors.interval"), "{logs}");
    let status = daemon
        .wait_for("every sensor reporting", Duration::from_secs(5), || async {
            let status = status(&daemon).await;
            (status["sensor_active"] == true).then_some(status)
        })
        .await;
    assert_eq!(status["sensors"].as_object().unwrap().len(), 3, "still the old sensors, reading");
}

#[tokio::test]
async fn settings_that_need_a_restart_are_reported_and_not_applied() {
    let daemon = Daemon::start(QUIET_PLANT).await;
    let moved = format!("{QUIET_PLANT}\n[redis]\nkey_prefix = \"other:\"\n");
    let outcome = reload(&daemon, &moved).await;
    assert_eq!(outcome["applied"], true);
    assert!(outcome["details"].to_string().contains("needs a restart: redis"), "{outcome}");
    assert!(daemon.logs().contains("applies only after a restart"));
    assert_eq!(daemon.get("/health").await.status, 200);
}

#[tokio::test]
async fn sigterm_stops_the_daemon_cleanly() {
    let mut daemon = Daemon::start(BUSY_PLANT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.signal("TERM");
    let exit = daemon.wait_exit(Duration::from_secs(5)).await.expect("exits within 5 s");
    assert_eq!(exit.code(), Some(0), "{}", daemon.logs());
}

#[test]
fn check_config_accepts_the_reference_file_and_names_every_bad_key() {
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/config/wtf-monitor.toml");
    let good = run(&["check-config", "--config", reference]);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let printed = String::from_utf8_lossy(&good.stdout);
    assert!(printed.contains("listen = \"0.0.0.0:8000\""), "{printed}");

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[sensors]\nids = [\"wtf-pipe-1\", \"wtf-pipe-1\"]\n[detection]\ndrift_thresholds = { temperature = 38.0, pressure = 4.5, flow = 110.0 }\n[llm]\ninterval = \"10m\"\n",
    )
    .unwrap();
    let bad = run(&["check-config", "--config", broken.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    let errors = String::from_utf8_lossy(&bad.stderr);
    for key in ["sensors.ids", "detection.drift_thresholds.pressure", "llm.interval"] {
        assert!(errors.contains(key), "{key} missing from {errors}");
    }
}

#[test]
fn the_daemon_refuses_to_start_on_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[sensors]\nids = []\n").unwrap();
    let outcome = run(&["--config", broken.to_str().unwrap()]);
    assert_eq!(outcome.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&outcome.stderr).contains("sensors.ids"));

    let missing = run(&["--config", "/nonexistent/wtf-monitor.toml"]);
    assert_eq!(missing.status.code(), Some(2));
}
