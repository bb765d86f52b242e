//! The REST API of the real binary, over real HTTP: a daemon with a fast, seeded simulation,
//! checked as an operator's scripts and browser would use it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Daemon;
use reqwest::Method;
use serde_json::Value;

const SENSORS: [&str; 3] = ["wtf-pipe-1", "wtf-pipe-2", "wtf-pipe-3"];

/// Readings every 100 ms and a spike about every tenth reading per sensor: anomalies within a
/// second or two of start, reproducibly (seed 7).
const FAST_SIMULATION: &str = r#"
[sensors]
ids = ["wtf-pipe-1", "wtf-pipe-2", "wtf-pipe-3"]
interval = "100ms"

[simulation]
seed = 7
spikes_per_hour = 3600.0
drifts_per_hour = 600.0
dropouts_per_hour = 60.0

[log]
level = "info"
"#;

fn is_rfc3339_utc(value: &Value) -> bool {
    value.as_str().is_some_and(|text| text.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(text).is_ok())
}

/// Checks one anomaly against SPEC §4; returns what is wrong, if anything.
fn check_anomaly(anomaly: &Value) -> Result<(), String> {
    let fields: BTreeSet<&str> = anomaly.as_object().ok_or("not an object")?.keys().map(String::as_str).collect();
    let expected = BTreeSet::from([
        "id",
        "type",
        "timestamp",
        "sensor_id",
        "parameter",
        "value",
        "threshold",
        "duration_seconds",
        "message",
    ]);
    if fields != expected {
        return Err(format!("fields {fields:?}"));
    }
    let kind = anomaly["type"].as_str().unwrap_or_default();
    let ok = ["spike", "drift", "dropout"].contains(&kind)
        && ["temperature", "pressure", "flow"].contains(&anomaly["parameter"].as_str().unwrap_or_default())
        && SENSORS.contains(&anomaly["sensor_id"].as_str().unwrap_or_default())
        && is_rfc3339_utc(&anomaly["timestamp"])
        && anomaly["id"].as_str().is_some_and(|id| id.len() == 26)
        && anomaly["threshold"].is_number()
        && anomaly["message"].as_str().is_some_and(|message| !message.is_empty());
    // Every spike really exceeds its threshold (the prototype's did not).
    let above = kind != "spike" || anomaly["value"].as_f64() > anomaly["threshold"].as_f64();
    if ok && above { Ok(()) } else { Err("a field has the wrong value".into()) }
}

#[tokio::test]
async fn the_api_serves_anomalies_status_and_metrics_over_http() {
    let daemon = Daemon::start(FAST_SIMULATION).await;

    let health = daemon.get("/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));

    let anomalies = daemon
        .wait_for("the first anomalies", Duration::from_secs(20), || async {
            let (status, list) = daemon.get_json("/anomalies").await;
            assert_eq!(status, 200, "{list}");
            (list.as_array().is_some_and(|list| list.len() >= 3)).then_some(list)
        })
        .await;
    let list = anomalies.as_array().unwrap();
    assert!(list.len() <= 50, "the default limit is 50");
    for anomaly in list {
        check_anomaly(anomaly).unwrap_or_else(|problem| panic!("{problem}: {anomaly}"));
    }
    let times: Vec<&str> = list.iter().map(|anomaly| anomaly["timestamp"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "not newest first: {times:?}");
    let (status, two) = daemon.get_json("/anomalies?limit=2").await;
    assert_eq!((status, two.as_array().unwrap().len()), (200, 2));
    let (_, filtered) = daemon.get_json("/anomalies?type=spike&sensor_id=wtf-pipe-1&limit=1000").await;
    assert!(filtered.as_array().unwrap().iter().all(|a| a["type"] == "spike" && a["sensor_id"] == "wtf-pipe-1"));

    let (status, body) = daemon.get_json("/status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sensor_active"], true, "{body}");
    assert_eq!(body["detector_active"], true, "{body}");
    assert_eq!(body["api_active"], true, "{body}");
    assert_eq!(body["llm_active"], false, "the model is switched off: {body}");
    assert!(is_rfc3339_utc(&body["last_reading_time"]), "{body}");
    assert!(body["anomaly_count_24h"].as_u64().unwrap() >= list.len() as u64, "{body}");
    assert_eq!(body["redis"]["state"], "disabled", "{body}");
    assert_eq!(body["sensors"].as_object().unwrap().len(), 3, "{body}");
    // Three simulators, nine detectors, the summarizer and the API (no mirror: Redis is off).
    assert_eq!(body["actors"].as_object().unwrap().len(), 3 + 9 + 1 + 1, "{body}");

    let (status, metrics) = daemon.get_json("/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    let total = metrics["total_anomalies"].as_u64().unwrap();
    assert!((1..=100).contains(&total), "{metrics}");
    let sum = |field: &str| metrics[field].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("anomalies_by_type"), total, "{metrics}");
    assert_eq!(sum("anomalies_by_parameter"), total, "{metrics}");
    assert!(is_rfc3339_utc(&metrics["last_update"]), "{metrics}");

    // The first summary is written 15 s after start; before it, the state so far, never a 503.
    let (status, summary) = daemon.get_json("/summary").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["generated_by"], "fallback", "the model is switched off: {summary}");
    assert!(summary["model"].is_null(), "no model was asked: {summary}");
    let summary = daemon
        .wait_for("the first summary", Duration::from_secs(30), || async {
            let (status, summary) = daemon.get_json("/summary").await;
            let written =
                status == 200 && !summary["summary"].as_str().is_some_and(|text| text.starts_with("Started at"));
            written.then_some(summary)
        })
        .await;
    assert_eq!(summary["generated_by"], "fallback");
    assert!(is_rfc3339_utc(&summary["window_end"]), "{summary}");
}

#[tokio::test]
async fn bad_requests_get_json_errors_over_http() {
    let daemon = Daemon::start(FAST_SIMULATION).await;
    for (path, status) in [
        ("/anomalies?limit=abc", 400),
        ("/anomalies?limit=0", 400),
        ("/anomalies?limit=100000", 400),
        ("/anomalies?since=yesterday", 400),
        ("/anomalies?parameter=humidity", 400),
        ("/nope", 404),
        ("/docs/nope.js", 404),
    ] {
        let answer = daemon.get(path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text());
        assert_eq!(answer.header("content-type"), Some("application/json"), "{path}");
        assert!(answer.json()["error"].is_string(), "{path}: {}", answer.text());
    }
    let limit = daemon.get("/anomalies?limit=abc").await.json();
    assert_eq!(limit["parameter"], "limit");
    assert!(limit["error"].as_str().unwrap().contains("abc"), "{limit}");

    let wrong_method = daemon.request(Method::DELETE, "/anomalies").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET,HEAD"));
    assert!(wrong_method.json()["error"].is_string());

    let head = daemon.request(Method::HEAD, "/status").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn docs_load_from_the_binary_and_describe_every_route() {
    let daemon = Daemon::start(FAST_SIMULATION).await;

    let page = daemon.get("/docs").await;
    assert_eq!(page.status, 200);
    assert_eq!(daemon.get("/docs/").await.body, page.body, "/docs/ is the same page");
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    for (asset, min_size) in [
        ("swagger-ui.css", 10_000),
        ("swagger-ui-bundle.js", 100_000),
        ("swagger-ui-standalone-preset.js", 10_000),
        ("swagger-initializer.js", 100),
    ] {
        assert!(page.text().contains(asset), "the page does not load {asset}");
        let answer = daemon.get(&format!("/docs/{asset}")).await;
        assert_eq!(answer.status, 200, "/docs/{asset}");
        assert!(answer.body.len() >= min_size, "/docs/{asset} is {} bytes", answer.body.len());
    }
    let initializer = daemon.get("/docs/swagger-initializer.js").await.text();
    assert!(initializer.contains("/openapi.json"), "{initializer}");

    let (status, document) = daemon.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for path in ["/anomalies", "/summary", "/summaries", "/status", "/metrics", "/health", "/openapi.json", "/docs"] {
        assert!(paths[path]["get"].is_object(), "GET {path} is not documented");
    }
}

#[tokio::test]
async fn sigterm_stops_the_daemon_with_exit_code_0() {
    let mut daemon = Daemon::start(FAST_SIMULATION).await;
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(5)).await.expect("exited within 5 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", daemon.logs());
    assert!(daemon.try_request(Method::GET, "/health").await.is_err(), "still answering after exit");
}

#[tokio::test]
async fn the_healthcheck_subcommand_tells_up_from_down() {
    let daemon = Daemon::start(FAST_SIMULATION).await;
    let up = common::run(&["healthcheck", "--url", &daemon.url("/health")]);
    assert!(up.status.success(), "against a running daemon: {}", String::from_utf8_lossy(&up.stderr));

    // A proxy in the environment (common on plant networks) must not stand in the way.
    let behind_proxy = common::command()
        .args(["healthcheck", "--url", &daemon.url("/health")])
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .output()
        .expect("run the healthcheck");
    assert!(behind_proxy.status.success(), "with a proxy set: {}", String::from_utf8_lossy(&behind_proxy.stderr));

    let wrong_path = common::run(&["healthcheck", "--url", &daemon.url("/nope")]);
    assert!(!wrong_path.status.success(), "a 404 is not healthy");

    let nobody = format!("http://127.0.0.1:{}/health", common::free_port());
    let down = common::run(&["healthcheck", "--url", &nobody]);
    assert!(!down.status.success(), "against a port with nothing listening");
    assert!(!down.stderr.is_empty(), "a failed healthcheck says why");
}
