//! The real binary with thousands of sensors: bounded `/status`, paging through `GET /sensors`,
//! reloads that shrink and grow the plant by thousands, and a stop asked for in the middle of one.
//!
//! The simulator is off (the sensors are configured, their detectors run, nothing reads): the
//! point is the number of actors, not readings.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Daemon, run};
use serde_json::Value;

/// Sensors in the big plant: thousands, within `ingest.max_sensors` (10,000).
const MANY: usize = 3_000;

fn plant(sensors: usize) -> String {
    let ids: Vec<String> = (1..=sensors).map(|n| format!("\"pipe-{n:05}\"")).collect();
    format!("[sensors]\nids = [{}]\n\n[simulation]\nenabled = false\n", ids.join(", "))
}

async fn last_reload(daemon: &Daemon) -> Value {
    daemon.get_json("/status").await.1["config"]["last_reload"].clone()
}

/// Rewrites the config, sends SIGHUP and waits for the outcome; returns it and how long it took.
async fn reload(daemon: &Daemon, config: &str, within: Duration) -> (Value, Duration) {
    let before = last_reload(daemon).await;
    std::fs::write(daemon.config_path(), config).expect("rewrite the config");
    let started = Instant::now();
    daemon.signal("HUP");
    let outcome = daemon
        .wait_for("the reload", within, || async {
            let outcome = last_reload(daemon).await;
            (!outcome.is_null() && outcome != before).then_some(outcome)
        })
        .await;
    (outcome, started.elapsed())
}

#[test]
fn more_sensors_than_ingest_max_sensors_is_refused_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.toml");
    std::fs::write(&path, format!("{}\n[ingest]\nmax_sensors = 2000\n", plant(2001))).unwrap();
    let outcome = run(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(outcome.status.code(), Some(2));
    let errors = String::from_utf8_lossy(&outcome.stderr);
    assert!(errors.contains("sensors.ids") && errors.contains("ingest.max_sensors (2000)"), "{errors}");

    std::fs::write(&path, plant(10_001)).unwrap();
    let outcome = run(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(outcome.status.code(), Some(2), "the default bound is 10,000");
    assert!(String::from_utf8_lossy(&outcome.stderr).contains("ingest.max_sensors (10000)"));
}

#[tokio::test]
async fn status_stays_small_and_sensors_pages_through_thousands() {
    let daemon = Daemon::start(&plant(MANY)).await;
    let status = daemon.get("/status").await;
    assert_eq!(status.status, 200);
    assert!(status.body.len() < 200_000, "/status is {} bytes with {MANY} sensors", status.body.len());
    let shown = status.json()["sensors"].as_object().map_or(0, |sensors| sensors.len());
    assert!(shown <= 200, "{shown} sensors listed in /status");

    let mut seen = BTreeSet::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        assert!(page < 10, "more pages than {MANY} sensors need");
        let query = after.as_ref().map(|after| format!("&after={after}")).unwrap_or_default();
        let (code, body) = daemon.get_json(&format!("/sensors?limit=1000{query}")).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["total"], MANY);
        for sensor in body["sensors"].as_array().unwrap() {
            assert!(seen.insert(sensor["sensor_id"].as_str().unwrap().to_owned()), "{sensor} listed twice");
        }
        match body["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), MANY);
    assert_eq!(seen.first().map(String::as_str), Some("pipe-00001"));
    assert_eq!(seen.last().map(String::as_str), Some("pipe-03000"));
}

#[tokio::test]
async fn a_reload_from_thousands_of_sensors_to_three_is_quick() {
    let daemon = Daemon::start(&plant(MANY)).await;
    let (outcome, took) = reload(&daemon, &plant(3), Duration::from_secs(30)).await;
    assert_eq!(outcome["applied"], true, "{outcome}");
    eprintln!("reload from {MANY} sensors to 3 took {took:?}");
    // Measured at well under a second; hours before removal was made one pass.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let status = daemon.get_json("/status").await.1;
    let sensors: Vec<&String> = status["sensors"].as_object().unwrap().keys().collect();
    assert_eq!(sensors, ["pipe-00001", "pipe-00002", "pipe-00003"]);
    assert_eq!(status["actors"].as_object().unwrap().keys().filter(|name| name.starts_with("detector:")).count(), 9);
}

#[tokio::test]
async fn sigterm_during_a_big_reload_ends_the_process_cleanly_and_quickly() {
    let mut daemon = Daemon::start(&plant(3)).await;
    std::fs::write(daemon.config_path(), plant(MANY * 2)).expect("rewrite the config");
    daemon.signal("HUP");
    // In the middle of starting thousands of detectors.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    daemon.signal("TERM");
    let exit = daemon.wait_exit(Duration::from_secs(10)).await;
    let took = asked.elapsed();
    let exit = exit.unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", daemon.logs()));
    eprintln!("stopped {took:?} after SIGTERM during a reload to {} sensors", MANY * 2);
    assert_eq!(exit.code(), Some(0), "{}", daemon.logs());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // The reload takes seconds on this scale: the stop came in the middle of it, and won.
    assert!(!daemon.logs().contains("configuration reloaded"), "the reload finished first:\n{}", daemon.logs());
}
