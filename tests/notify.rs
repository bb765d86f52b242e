//! Integrations on the real binary, against the real tools a plant runs: an alarm raised in the
//! daemon fires in Alertmanager, reaches the receiver behind it, and resolves when it clears;
//! `promtool` accepts `/metrics/prometheus` and a real Prometheus scrapes it; webhooks get every
//! transition once, through a receiver outage and a SIGKILL of the daemon.

mod common;
mod peers;
mod redis_support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Daemon;
use peers::{Receiver, binary_or_skip, eventually};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const GATEWAY: &str = "Bearer gateway-token-0123456789";
const OPERATOR: &str = "Bearer operator-token-0123456789";
const PATIENCE: Duration = Duration::from_secs(20);

/// Two sensors, no simulation, no dropouts within a test's time (so a pause in a test's readings
/// raises no alarm of its own), tokens to send readings and acknowledge; `notify` is appended.
fn config(notify: &str) -> String {
    format!(
        r#"
[sensors]
ids = ["wtf-pipe-1", "wtf-pipe-2"]

[simulation]
enabled = false

[detection]
dropout_timeout = "1h"

[[auth.tokens]]
name = "gateway"
role = "ingest"
token = "gateway-token-0123456789"

[[auth.tokens]]
name = "night-shift"
role = "operator"
token = "operator-token-0123456789"

{notify}
"#
    )
}

/// Sends one reading per value, 100 ms apart, ending now.
async fn readings(daemon: &Daemon, sensor: &str, parameter: &str, values: &[f64]) {
    let step = chrono::TimeDelta::milliseconds(100);
    daemon.post_values(GATEWAY, sensor, parameter, values, step, step).await;
}

async fn alarms(daemon: &Daemon) -> Vec<Value> {
    daemon.get_json("/alarms").await.1.as_array().cloned().unwrap_or_default()
}

async fn the_alarm_of(daemon: &Daemon, sensor: &str) -> Value {
    daemon
        .wait_for(&format!("an alarm of {sensor}"), PATIENCE, || async {
            alarms(daemon).await.into_iter().find(|alarm| alarm["sensor_id"] == sensor)
        })
        .await
}

async fn ack(daemon: &Daemon, id: &str) {
    let answer = daemon.post(&format!("/alarms/{id}/ack"), "application/json", Some(OPERATOR), b"{}".to_vec()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

async fn receiver_status(daemon: &Daemon, name: &str) -> Value {
    daemon.get_json("/status").await.1["notify"][name].clone()
}

/// The alerts Alertmanager holds now (resolved ones are not listed).
async fn alertmanager_alerts(alertmanager: &str) -> Vec<Value> {
    let answer =
        peers::client().get(format!("{alertmanager}/api/v2/alerts")).send().await.expect("Alertmanager answers");
    answer.json::<Vec<Value>>().await.expect("a JSON array of alerts")
}

#[tokio::test]
async fn an_alarm_fires_in_alertmanager_reaches_its_receiver_and_resolves_when_it_clears() {
    let Some(binary) = binary_or_skip("alertmanager test", "prometheus-alertmanager") else { return };
    let behind = Receiver::start().await;
    let alertmanager = peers::alertmanager(&binary, &behind.url("/alertmanager")).await;
    // Summaries every 2 s, so the resends soon carry one.
    let notify = format!(
        "[llm]\nurl = \"\"\ninterval = \"2s\"\nmin_interval = \"1s\"\n\n\
         [notify.alertmanager]\nurls = [\"{}\"]\nresend_interval = \"2s\"\nlabels = {{ site = \"north-works\" }}\n",
        alertmanager.url()
    );
    let daemon = Daemon::start(&config(&notify)).await;

    readings(&daemon, "wtf-pipe-1", "pressure", &[2.0, 4.6]).await;
    let alarm = the_alarm_of(&daemon, "wtf-pipe-1").await;
    let alert = eventually("the alert active in Alertmanager", PATIENCE, || async {
        alertmanager_alerts(&alertmanager.url())
            .await
            .into_iter()
            .find(|alert| alert["labels"]["alertname"] == "WtfSpike")
    })
    .await;
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(
        alert["labels"],
        json!({"alertname": "WtfSpike", "sensor_id": "wtf-pipe-1", "parameter": "pressure", "type": "spike",
               "severity": "high", "site": "north-works"})
    );
    assert_eq!(alert["annotations"]["summary"], alarm["message"]);
    assert_eq!(alert["annotations"]["alarm_id"], alarm["id"]);
    assert_eq!(alert["startsAt"], alarm["raised_at"]);
    let summary = eventually("a resend that carries the latest summary", PATIENCE, || async {
        let alerts = alertmanager_alerts(&alertmanager.url()).await;
        alerts.first().and_then(|alert| alert["annotations"]["description"].as_str().map(str::to_owned))
    })
    .await;
    let (_, latest) = daemon.get_json("/summaries?limit=5").await;
    let texts: Vec<&str> =
        latest.as_array().unwrap().iter().filter_map(|summary| summary["summary"].as_str()).collect();
    assert!(texts.contains(&summary.as_str()), "{summary:?} is one of {texts:?}");

    let firing = eventually("Alertmanager's firing notification", PATIENCE, || async {
        behind.received().into_iter().find(|got| got.body["status"] == "firing")
    })
    .await;
    assert_eq!(firing.body["alerts"][0]["labels"]["sensor_id"], "wtf-pipe-1");

    // Re-sent while active: after a few resend intervals it is still there, still active.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = alertmanager_alerts(&alertmanager.url()).await;
    assert_eq!(still.len(), 1, "{still:?}");
    assert!(receiver_status(&daemon, "alertmanager-1").await["delivered"].as_u64() >= Some(2));

    // The process clears it: resolved in Alertmanager, and the receiver behind it is told.
    readings(&daemon, "wtf-pipe-1", "pressure", &[2.1]).await;
    eventually("the alert resolved in Alertmanager", PATIENCE, || async {
        alertmanager_alerts(&alertmanager.url()).await.is_empty().then_some(())
    })
    .await;
    let resolved = eventually("Alertmanager's resolved notification", PATIENCE, || async {
        behind.received().into_iter().find(|got| got.body["status"] == "resolved")
    })
    .await;
    assert_eq!(resolved.body["alerts"][0]["labels"]["alertname"], "WtfSpike");
    let status = receiver_status(&daemon, "alertmanager-1").await;
    assert_eq!((status["state"].as_str(), status["outbox"].as_str()), (Some("ok"), Some("memory")), "{status}");
}

#[tokio::test]
async fn a_shelved_alarm_is_not_resent_and_resolves_in_alertmanager() {
    let Some(binary) = binary_or_skip("shelve test", "prometheus-alertmanager") else { return };
    let behind = Receiver::start().await;
    let alertmanager = peers::alertmanager(&binary, &behind.url("/alertmanager")).await;
    let notify = format!("[notify.alertmanager]\nurls = [\"{}\"]\nresend_interval = \"1s\"\n", alertmanager.url());
    let daemon = Daemon::start(&config(&notify)).await;
    readings(&daemon, "wtf-pipe-2", "flow", &[50.0, 130.0]).await;
    let alarm = the_alarm_of(&daemon, "wtf-pipe-2").await;
    eventually("the alert active", PATIENCE, || async {
        (!alertmanager_alerts(&alertmanager.url()).await.is_empty()).then_some(())
    })
    .await;
    let id = alarm["id"].as_str().unwrap();
    let body = br#"{"duration": "10m", "reason": "flow meter being replaced"}"#.to_vec();
    let answer = daemon.post(&format!("/alarms/{id}/shelve"), "application/json", Some(OPERATOR), body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    eventually("the shelved alarm resolved in Alertmanager", PATIENCE, || async {
        alertmanager_alerts(&alertmanager.url()).await.is_empty().then_some(())
    })
    .await;
    // Resends leave it out: it does not come back while shelved.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(alertmanager_alerts(&alertmanager.url()).await.is_empty());
}

#[tokio::test]
async fn promtool_accepts_the_exposition_and_prometheus_scrapes_it() {
    let Some(promtool) = binary_or_skip("promtool test", "promtool") else { return };
    let Some(prometheus) = binary_or_skip("prometheus test", "prometheus") else { return };
    let daemon = Daemon::start(&config("")).await;
    readings(&daemon, "wtf-pipe-1", "pressure", &[2.0, 4.6, 2.0]).await;
    the_alarm_of(&daemon, "wtf-pipe-1").await;

    let answer = daemon.get("/metrics/prometheus").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = answer.text();
    assert!(text.contains("wtf_readings_total{source=\"http\"} 3\n"), "{text}");
    assert!(text.contains("wtf_anomalies_total{type=\"spike\",parameter=\"pressure\"} 1\n"), "{text}");
    assert!(text.contains("wtf_alarms{state=\"cleared_unack\",priority=\"high\"} 1"), "{text}");
    let mut check = tokio::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check.stdin.take().unwrap().write_all(text.as_bytes()).await.unwrap();
    let checked = check.wait_with_output().await.unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics refused it: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let scraper = peers::prometheus(&prometheus, &format!("127.0.0.1:{}", daemon.port), "/metrics/prometheus").await;
    let query = |expression: &'static str| {
        let url = format!("{}/api/v1/query", scraper.url());
        async move {
            let answer = peers::client().get(url).query(&[("query", expression)]).send().await.ok()?;
            let body: Value = answer.json().await.ok()?;
            let value = body["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok()?;
            Some(value)
        }
    };
    let up = eventually("Prometheus to scrape the daemon", PATIENCE, || query("up{job=\"wtf\"}")).await;
    assert_eq!(up, 1.0);
    let readings =
        eventually("wtf_readings_total in Prometheus", PATIENCE, || query("wtf_readings_total{source=\"http\"}")).await;
    assert_eq!(readings, 3.0);
    let spikes = query("wtf_anomalies_total{type=\"spike\",parameter=\"pressure\"}").await;
    assert_eq!(spikes, Some(1.0));
    let buckets = query("count(wtf_llm_request_duration_seconds_bucket)").await;
    assert!(buckets.is_some_and(|count| count >= 2.0), "the histogram's buckets are scraped: {buckets:?}");
}

#[tokio::test]
async fn webhooks_get_each_transition_once_with_its_key_and_token_and_nothing_while_shelved() {
    let receiver = Receiver::start().await;
    let notify = format!(
        "[[notify.webhook]]\nname = \"pager\"\nurl = \"{}\"\ntoken = \"hook-secret\"\n\n\
         [[notify.webhook]]\nname = \"raised-only\"\nurl = \"{}\"\nevents = [\"raised\"]\n",
        receiver.url("/pager"),
        receiver.url("/raised")
    );
    let daemon = Daemon::start(&config(&notify)).await;
    readings(&daemon, "wtf-pipe-1", "pressure", &[2.0, 4.6]).await;
    let first = the_alarm_of(&daemon, "wtf-pipe-1").await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    ack(&daemon, &first_id).await;
    readings(&daemon, "wtf-pipe-1", "pressure", &[2.0]).await;
    // A second alarm, shelved before it clears: its clear is not sent.
    readings(&daemon, "wtf-pipe-2", "temperature", &[20.0, 50.0]).await;
    let second = the_alarm_of(&daemon, "wtf-pipe-2").await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    let body = br#"{"duration": "30m"}"#.to_vec();
    let answer = daemon.post(&format!("/alarms/{second_id}/shelve"), "application/json", Some(OPERATOR), body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    readings(&daemon, "wtf-pipe-2", "temperature", &[20.0]).await;

    let expected_pager = [
        format!("{first_id}:raised"),
        format!("{first_id}:acknowledged"),
        format!("{first_id}:cleared"),
        format!("{second_id}:raised"),
    ];
    eventually("the pager's four notifications", PATIENCE, || async {
        let got: Vec<_> = receiver.received().into_iter().filter(|got| got.path == "/pager").collect();
        (got.len() >= expected_pager.len()).then_some(())
    })
    .await;
    // A moment more, for anything that should not come.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got: Vec<_> = receiver.received().into_iter().filter(|got| got.path == "/pager").collect();
    let keys: Vec<&str> = got.iter().map(|got| got.body["idempotency_key"].as_str().unwrap()).collect();
    assert_eq!(keys, expected_pager, "in order, once each, and no clear of the shelved alarm");
    for got in &got {
        assert_eq!(got.headers["authorization"], "Bearer hook-secret");
        assert_eq!(got.headers["idempotency-key"], got.body["idempotency_key"].as_str().unwrap());
    }
    assert_eq!(got[1].body["event"], "acknowledged");
    assert_eq!(got[1].body["alarm"]["acked_by"], "night-shift");
    assert_eq!(got[2].body["alarm"]["state"], "normal");
    let raised_only: Vec<Value> = receiver
        .received()
        .into_iter()
        .filter(|got| got.path == "/raised")
        .map(|got| got.body["event"].clone())
        .collect();
    assert_eq!(raised_only, [json!("raised"), json!("raised")]);
    assert!(
        receiver
            .received()
            .iter()
            .filter(|got| got.path == "/raised")
            .all(|got| !got.headers.contains_key("authorization"))
    );

    let status = receiver_status(&daemon, "pager").await;
    assert_eq!(
        (status["state"].as_str(), status["backlog"].as_u64(), status["outbox"].as_str()),
        (Some("ok"), Some(0), Some("memory"))
    );
    let text = daemon.get("/metrics/prometheus").await.text();
    assert!(text.contains("wtf_notify_delivered_total{receiver=\"pager\"} 4\n"), "{text}");
}

/// The brief's outage: the webhook receiver is down for 30 s, and the daemon is killed with
/// SIGKILL in between; once the receiver is up, every notification arrives exactly once.
#[tokio::test]
async fn a_receiver_down_30s_and_a_sigkill_in_between_lose_nothing_and_repeat_nothing() {
    let Some(redis) = redis_support::redis_or_skip("webhook_outage") else { return };
    let port = peers::free_port();
    let down_since = Instant::now();
    let notify = format!(
        "[notify]\ntimeout = \"1s\"\nretry_initial = \"200ms\"\nretry_max = \"2s\"\n\n\
         [[notify.webhook]]\nname = \"pager\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"
    );
    let start = || {
        Daemon::builder(&config(&notify))
            .env("WTF_REDIS__URL", &redis.url)
            .env("WTF_REDIS__KEY_PREFIX", &redis.prefix)
            .start()
    };
    let mut daemon = start().await;
    readings(&daemon, "wtf-pipe-1", "pressure", &[2.0, 4.6]).await;
    let first = the_alarm_of(&daemon, "wtf-pipe-1").await["id"].as_str().unwrap().to_owned();
    readings(&daemon, "wtf-pipe-1", "pressure", &[2.0]).await;
    ack(&daemon, &first).await;
    readings(&daemon, "wtf-pipe-2", "flow", &[50.0, 130.0]).await;
    let second = the_alarm_of(&daemon, "wtf-pipe-2").await["id"].as_str().unwrap().to_owned();
    ack(&daemon, &second).await;
    let mut expected = vec![
        format!("{first}:raised"),
        format!("{first}:cleared"),
        format!("{first}:acknowledged"),
        format!("{second}:raised"),
        format!("{second}:acknowledged"),
    ];
    daemon
        .wait_for("five notifications waiting in the outbox", PATIENCE, || async {
            let status = receiver_status(&daemon, "pager").await;
            (status["backlog"] == 5 && status["state"] == "failing").then_some(())
        })
        .await;
    assert_eq!(receiver_status(&daemon, "pager").await["outbox"], "redis");

    daemon.signal("KILL");
    assert!(daemon.wait_exit(Duration::from_secs(5)).await.is_some(), "SIGKILL ends the daemon");
    let daemon = start().await;
    // One more after the restart, on top of what the killed daemon left.
    readings(&daemon, "wtf-pipe-2", "temperature", &[20.0, 50.0]).await;
    let third = daemon
        .wait_for("the temperature alarm", PATIENCE, || async {
            alarms(&daemon).await.into_iter().find(|alarm| alarm["parameter"] == "temperature")
        })
        .await;
    expected.push(format!("{}:raised", third["id"].as_str().unwrap()));
    daemon
        .wait_for("six notifications waiting after the restart", PATIENCE, || async {
            (receiver_status(&daemon, "pager").await["backlog"] == 6).then_some(())
        })
        .await;

    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_since.elapsed())).await;
    let receiver = Receiver::start_on(port).await;
    eventually("every notification delivered", PATIENCE, || async {
        (receiver.received().len() >= expected.len()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for got in receiver.received() {
        *counts.entry(got.body["idempotency_key"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    expected.sort();
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), expected, "every notification, nothing else");
    assert!(counts.values().all(|count| *count == 1), "each exactly once: {counts:?}");
    let status = receiver_status(&daemon, "pager").await;
    assert_eq!((status["state"].as_str(), status["backlog"].as_u64()), (Some("ok"), Some(0)), "{status}");
}

#[tokio::test]
async fn a_notifier_restarted_after_a_crash_carries_on_without_losing_or_repeating() {
    let receiver = Receiver::start().await;
    let notify = format!(
        "[debug]\nfault_injection = true\n\n[[notify.webhook]]\nname = \"pager\"\nurl = \"{}\"\nevents = [\"raised\"]\n",
        receiver.url("/pager")
    );
    let daemon = Daemon::start(&config(&notify)).await;
    readings(&daemon, "wtf-pipe-1", "pressure", &[2.0, 4.6]).await;
    eventually("the first notification", PATIENCE, || async { (receiver.received().len() == 1).then_some(()) }).await;
    let answer = daemon.post("/debug/fail/notifier", "application/json", None, Vec::new()).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    readings(&daemon, "wtf-pipe-2", "pressure", &[2.0, 4.6]).await;
    daemon
        .wait_for("the notifier restarted", PATIENCE, || async {
            let (_, status) = daemon.get_json("/status").await;
            let notifier = &status["actors"]["notifier"];
            (notifier["restarts"] == 1 && notifier["alive"] == true).then_some(())
        })
        .await;
    readings(&daemon, "wtf-pipe-1", "flow", &[50.0, 130.0]).await;
    eventually("three notifications", PATIENCE, || async { (receiver.received().len() >= 3).then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let keys: Vec<String> =
        receiver.received().iter().map(|got| got.body["idempotency_key"].as_str().unwrap().to_owned()).collect();
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!((keys.len(), distinct.len()), (3, 3), "{keys:?}");
}
