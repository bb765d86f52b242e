//! Alarms on the real binary, as an operator meets them: raised by readings, acknowledged,
//! cleared by the process, shelved, and every step in the audit trail.

mod common;

use std::time::Duration;

use common::Daemon;
use serde_json::{Value, json};

const GATEWAY: &str = "Bearer gateway-token-0123456789";
const OPERATOR: &str = "Bearer operator-token-0123456789";
const VIEWER: &str = "Bearer viewer-token-0123456789";

const CONFIG: &str = r#"
[sensors]
ids = ["wtf-pipe-1", "wtf-pipe-2"]

[simulation]
enabled = false

[detection]
low_spike_thresholds = { pressure = 0.5 }

[alarms]
max_shelve = "1h"

[[auth.tokens]]
name = "gateway"
role = "ingest"
token = "gateway-token-0123456789"

[[auth.tokens]]
name = "night-shift"
role = "operator"
token = "operator-token-0123456789"

[[auth.tokens]]
name = "viewer"
role = "viewer"
token = "viewer-token-0123456789"
"#;

/// Sends readings of one sensor, 100 ms apart and ending now, one per value.
async fn readings(daemon: &Daemon, sensor: &str, parameter: &str, values: &[f64]) {
    let step = chrono::TimeDelta::milliseconds(100);
    daemon.post_values(GATEWAY, sensor, parameter, values, step, step).await;
}

async fn alarms(daemon: &Daemon, query: &str) -> Vec<Value> {
    let (status, body) = daemon.get_json(&format!("/alarms{query}")).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap()
}

async fn wait_for_alarms(daemon: &Daemon, query: &str, count: usize) -> Vec<Value> {
    daemon
        .wait_for(&format!("{count} alarms matching {query:?}"), Duration::from_secs(10), || async {
            let found = alarms(daemon, query).await;
            (found.len() == count).then_some(found)
        })
        .await
}

async fn post(daemon: &Daemon, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let answer = daemon.post(path, "application/json", token, body.to_string().into_bytes()).await;
    (answer.status, answer.json())
}

#[tokio::test]
async fn an_alarm_is_raised_acknowledged_and_goes_once_the_process_clears_it() {
    let daemon = Daemon::start(CONFIG).await;
    readings(&daemon, "wtf-pipe-1", "pressure", &[2.0, 4.6, 4.7]).await;
    let raised = wait_for_alarms(&daemon, "", 1).await;
    let alarm = &raised[0];
    assert_eq!(
        (alarm["type"].as_str(), alarm["state"].as_str(), alarm["priority"].as_str()),
        (Some("spike"), Some("active_unack"), Some("high"))
    );
    assert_eq!(
        (alarm["unit"].as_str(), alarm["limit"].as_f64(), alarm["value"].as_f64()),
        (Some("bar"), Some(4.0), Some(4.6))
    );
    let id = alarm["id"].as_str().unwrap().to_owned();
    let (_, listed) = daemon.get_json("/anomalies").await;
    assert_eq!(listed[0]["id"], alarm["anomaly_id"], "the alarm is the anomaly's episode");

    // Who may: nobody without a token, not a viewer, an operator.
    let ack = format!("/alarms/{id}/ack");
    assert_eq!(post(&daemon, &ack, None, json!({})).await.0, 401);
    assert_eq!(post(&daemon, &ack, Some(VIEWER), json!({})).await.0, 403);
    assert_eq!(post(&daemon, &ack, Some(GATEWAY), json!({})).await.0, 403, "an ingest token may not acknowledge");
    let (status, acked) = post(&daemon, &ack, Some(OPERATOR), json!({"comment": "valve V-12 checked"})).await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!((acked["state"].as_str(), acked["acked_by"].as_str()), (Some("active_ack"), Some("night-shift")));
    assert_eq!(acked["ack_comment"], "valve V-12 checked");
    let (status, again) = post(&daemon, &ack, Some(OPERATOR), json!({})).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("active_ack")), "acknowledging twice is not an error");
    assert_eq!(alarms(&daemon, "?state=active_ack").await.len(), 1);

    // The process clears it: acknowledged and cleared, it is gone.
    readings(&daemon, "wtf-pipe-1", "pressure", &[2.1]).await;
    wait_for_alarms(&daemon, "", 0).await;
    let (status, _) = daemon.get_json(&format!("/alarms/{id}")).await;
    assert_eq!(status, 404);

    let (_, audit) = daemon.get_json("/audit").await;
    let trail: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["action"].as_str().unwrap(), entry["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        trail,
        [("ack", "night-shift"), ("refused", "gateway"), ("refused", "viewer"), ("refused", "anonymous")],
        "newest first; the second ack changed nothing and left no entry"
    );
}

#[tokio::test]
async fn a_cleared_alarm_waits_for_its_acknowledgement() {
    let daemon = Daemon::start(CONFIG).await;
    readings(&daemon, "wtf-pipe-2", "pressure", &[2.0, 0.3, 2.0]).await;
    let cleared = wait_for_alarms(&daemon, "?state=cleared_unack", 1).await;
    assert_eq!((cleared[0]["type"].as_str(), cleared[0]["priority"].as_str()), (Some("low_spike"), Some("critical")));
    assert!(cleared[0]["cleared_at"].is_string());
    let id = cleared[0]["id"].as_str().unwrap();
    let (status, acked) = post(&daemon, &format!("/alarms/{id}/ack"), Some(OPERATOR), json!({})).await;
    assert_eq!((status, acked["state"].as_str()), (200, Some("normal")));
    assert!(alarms(&daemon, "").await.is_empty());
    let (status, body) = post(&daemon, "/alarms/01NOTANALARM/ack", Some(OPERATOR), json!({})).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn a_shelve_is_bounded_listed_and_runs_out_by_itself() {
    let daemon = Daemon::start(CONFIG).await;
    readings(&daemon, "wtf-pipe-1", "flow", &[60.0, 130.0]).await;
    let id = wait_for_alarms(&daemon, "", 1).await[0]["id"].as_str().unwrap().to_owned();
    let shelve = format!("/alarms/{id}/shelve");
    let (status, body) = post(&daemon, &shelve, Some(OPERATOR), json!({"duration": "2h"})).await;
    assert_eq!(status, 400, "beyond alarms.max_shelve: {body}");
    let (status, body) = post(&daemon, &shelve, Some(OPERATOR), json!({"duration": "soon"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, shelved) =
        post(&daemon, &shelve, Some(OPERATOR), json!({"duration": "2s", "reason": "pump P-3 maintenance"})).await;
    assert_eq!(status, 200, "{shelved}");
    assert!(shelved["shelved_until"].is_string());
    assert_eq!(
        (shelved["shelved_by"].as_str(), shelved["shelve_reason"].as_str()),
        (Some("night-shift"), Some("pump P-3 maintenance"))
    );
    daemon
        .wait_for("the shelve to run out", Duration::from_secs(10), || async {
            let alarm = daemon.get_json(&format!("/alarms/{id}")).await.1;
            alarm["shelved_until"].is_null().then_some(())
        })
        .await;
    let (_, audit) = daemon.get_json("/audit?limit=2").await;
    assert_eq!(audit[0]["action"], "unshelve_expired");
    assert_eq!(audit[0]["actor"], "system");
    assert_eq!(audit[1]["action"], "shelve");
    assert!(audit[1]["detail"].as_str().unwrap().contains("pump P-3 maintenance"), "{}", audit[1]);

    let (status, _) = post(&daemon, &shelve, Some(OPERATOR), json!({"duration": "10m"})).await;
    assert_eq!(status, 200);
    let (status, unshelved) = post(&daemon, &format!("/alarms/{id}/unshelve"), Some(OPERATOR), json!({})).await;
    assert_eq!((status, unshelved["shelved_until"].is_null()), (200, true));
}

#[tokio::test]
async fn filters_select_alarms_and_bad_ones_are_refused() {
    let daemon = Daemon::start(CONFIG).await;
    readings(&daemon, "wtf-pipe-1", "flow", &[60.0, 130.0]).await;
    readings(&daemon, "wtf-pipe-2", "pressure", &[2.0, 0.3]).await;
    wait_for_alarms(&daemon, "", 2).await;
    assert_eq!(alarms(&daemon, "?sensor_id=wtf-pipe-2").await.len(), 1);
    assert_eq!(alarms(&daemon, "?priority=critical").await[0]["type"], "low_spike");
    assert_eq!(alarms(&daemon, "?state=active_unack&priority=high").await[0]["type"], "spike");
    for (query, parameter) in
        [("?state=loud", "state"), ("?priority=urgent", "priority"), ("?sensor_id=pump-9", "sensor_id")]
    {
        let (status, body) = daemon.get_json(&format!("/alarms{query}")).await;
        assert_eq!((status, body["parameter"].as_str()), (400, Some(parameter)), "{query}: {body}");
    }
}

#[tokio::test]
async fn a_reload_is_audited_with_what_changed() {
    let mut daemon = Daemon::start(CONFIG).await;
    let changed =
        CONFIG.replace("low_spike_thresholds = { pressure = 0.5 }", "low_spike_thresholds = { pressure = 0.7 }");
    std::fs::write(daemon.config_path(), changed).unwrap();
    daemon.signal("HUP");
    let entry = daemon
        .wait_for("the reload in the audit trail", Duration::from_secs(10), || async {
            let (_, audit) = daemon.get_json("/audit").await;
            audit.as_array().unwrap().iter().find(|entry| entry["action"] == "reload").cloned()
        })
        .await;
    assert_eq!(entry["actor"], "system");
    assert!(
        entry["detail"].as_str().unwrap().contains("detection.low_spike_thresholds.pressure: 0.5 → 0.7"),
        "{entry}"
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).await.is_some_and(|status| status.success()));
}

#[tokio::test]
async fn reads_can_be_closed_to_anyone_without_a_token() {
    let closed = CONFIG.replacen("[[auth.tokens]]", "[auth]\nread = \"token\"\n\n[[auth.tokens]]", 1);
    let daemon = Daemon::start(&closed).await;
    for path in ["/alarms", "/anomalies", "/status", "/audit"] {
        let (status, body) = daemon.get_json(path).await;
        assert_eq!(status, 401, "{path}: {body}");
    }
    assert_eq!(daemon.get("/health").await.status, 200, "probes stay open");
    let answer = common::client().get(daemon.url("/alarms")).header("Authorization", VIEWER).send().await.unwrap();
    assert_eq!(answer.status(), 200, "any role may read");
}
