//! Limits per sensor and parameters from configuration, on the real binary: a sensor's own
//! limits override its parameter's, a plant adds what it measures, and a reload changes limits
//! without losing an episode in progress.

mod common;

use std::time::Duration;

use common::Daemon;
use serde_json::Value;

const GATEWAY: &str = "Bearer gateway-token-0123456789";

fn config(detection: &str) -> String {
    format!(
        r#"
[sensors]
ids = ["wtf-pipe-1", "wtf-pipe-2"]

[simulation]
enabled = false

[parameters.turbidity]
unit = "NTU"
normal = [0.1, 1.0]

[detection]
spike_thresholds = {{ turbidity = 4.0 }}
{detection}

[[auth.tokens]]
name = "gateway"
role = "ingest"
token = "gateway-token-0123456789"
"#
    )
}

/// Sends `values` of one parameter of one sensor, stamped a second apart and ending `end_ago`
/// seconds before now.
async fn readings(daemon: &Daemon, sensor: &str, parameter: &str, values: &[f64], end_ago: i64) {
    let second = chrono::TimeDelta::seconds(1);
    daemon.post_values(GATEWAY, sensor, parameter, values, second, second * (end_ago as i32 + 1)).await;
}

async fn anomalies(daemon: &Daemon) -> Vec<Value> {
    daemon.get_json("/anomalies?limit=1000").await.1.as_array().cloned().unwrap()
}

#[tokio::test]
async fn a_sensors_own_limit_overrides_its_parameters() {
    let daemon =
        Daemon::start(&config("[detection.sensors.\"wtf-pipe-2\"]\nspike_thresholds = { pressure = 4.5 }\n")).await;
    readings(&daemon, "wtf-pipe-1", "pressure", &[2.0, 4.3], 0).await;
    readings(&daemon, "wtf-pipe-2", "pressure", &[2.0, 4.3, 4.6], 0).await;
    let found = daemon
        .wait_for("two spikes", Duration::from_secs(10), || async {
            let found = anomalies(&daemon).await;
            (found.len() == 2).then_some(found)
        })
        .await;
    let spikes: Vec<(&str, f64)> = found
        .iter()
        .map(|anomaly| (anomaly["sensor_id"].as_str().unwrap(), anomaly["value"].as_f64().unwrap()))
        .collect();
    assert_eq!(spikes, [("wtf-pipe-2", 4.6), ("wtf-pipe-1", 4.3)], "4.3 bar is not a spike where the limit is 4.5");
}

#[tokio::test]
async fn a_parameter_the_plant_adds_is_watched_with_its_unit() {
    let daemon = Daemon::start(&config("")).await;
    readings(&daemon, "wtf-pipe-1", "turbidity", &[0.4, 4.8], 0).await;
    let spike = daemon
        .wait_for("a turbidity spike", Duration::from_secs(10), || async {
            anomalies(&daemon).await.into_iter().next()
        })
        .await;
    assert_eq!(spike["message"], "Turbidity spike detected: 4.8 NTU exceeds threshold 4 NTU");
    let (_, metrics) = daemon.get_json("/metrics").await;
    assert_eq!(metrics["anomalies_by_parameter"]["turbidity"], 1);
    assert_eq!(metrics["anomalies_by_parameter"]["flow"], 0, "every configured parameter is listed");
    let (status, _) = daemon.get_json("/anomalies?parameter=turbidity").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_reload_changes_limits_without_losing_the_drift_in_progress() {
    let mut daemon = Daemon::start(&config("")).await;
    // 3.7 bar from 30 s ago to 20 s ago: a drift in progress (10 s of its 15 s).
    readings(&daemon, "wtf-pipe-1", "pressure", &[3.7; 11], 20).await;
    let overridden = config("[detection.sensors.\"wtf-pipe-1\"]\nspike_thresholds = { pressure = 5.0 }\n");
    std::fs::write(daemon.config_path(), overridden).unwrap();
    daemon.signal("HUP");
    daemon
        .wait_for("the reload", Duration::from_secs(10), || async {
            let (_, status) = daemon.get_json("/status").await;
            status["config"]["last_reload"]["applied"].as_bool().filter(|applied| *applied)
        })
        .await;
    // Ten more seconds above 3.5 bar: the drift is raised, timed from its first reading.
    readings(&daemon, "wtf-pipe-1", "pressure", &[3.7; 10], 0).await;
    let drift = daemon
        .wait_for("the drift", Duration::from_secs(10), || async {
            anomalies(&daemon).await.into_iter().find(|anomaly| anomaly["type"] == "drift")
        })
        .await;
    assert!(drift["duration_seconds"].as_f64().unwrap() > 15.0, "{drift}");

    // A sensor limit that contradicts another is refused, and the limits in force stay.
    let contradictory = config("[detection.sensors.\"wtf-pipe-1\"]\ndrift_thresholds = { pressure = 4.5 }\n");
    std::fs::write(daemon.config_path(), contradictory).unwrap();
    daemon.signal("HUP");
    let refused = daemon
        .wait_for("the refused reload", Duration::from_secs(10), || async {
            let (_, status) = daemon.get_json("/status").await;
            let reload = status["config"]["last_reload"].clone();
            (reload["applied"] == false).then_some(reload)
        })
        .await;
    let details = refused["details"].to_string();
    assert!(details.contains("detection.sensors.wtf-pipe-1.drift_thresholds.pressure"), "{details}");
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).await.is_some_and(|status| status.success()));
}
