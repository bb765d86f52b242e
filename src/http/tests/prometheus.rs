//! `GET /metrics/prometheus` over a store filled by hand: the values an operator's Grafana shows
//! are the store's, counters are totals since start, and each family is named by convention.

use std::time::Duration;

use super::*;
use crate::domain::{Summary, SummaryAuthor};

async fn exposition(fixture: &Fixture) -> String {
    let (status, headers, body) = fixture.call(Method::GET, "/metrics/prometheus").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; version=0.0.4; charset=utf-8");
    String::from_utf8(body.to_vec()).unwrap()
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn counters_are_totals_since_start_and_gauges_the_state_now() {
    let fixture = Fixture::new();
    record_spikes(&fixture, 3);
    fixture.record(anomaly(AnomalyKind::Dropout, t0(), "wtf-pipe-2", "flow"));
    record_reading(&fixture, "wtf-pipe-1", t0());
    fixture.store.telemetry.llm_request_finished(Duration::from_millis(1500));
    fixture.store.telemetry.llm_request_finished(Duration::from_secs(45));
    let summary = Summary {
        summary: "quiet".into(),
        timestamp: t0(),
        generated_by: SummaryAuthor::Fallback,
        model: None,
        anomaly_count: 4,
        window_start: t0(),
        window_end: t0(),
    };
    fixture.store.record_summary(summary, t0());
    fixture.store.health.sse_clients.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let text = exposition(&fixture).await;
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(value("wtf_anomalies_total{type=\"spike\",parameter=\"pressure\"}"), 3.0);
    assert_eq!(value("wtf_anomalies_total{type=\"dropout\",parameter=\"flow\"}"), 1.0);
    assert_eq!(value("wtf_anomalies_total{type=\"drift\",parameter=\"temperature\"}"), 0.0, "listed from zero");
    assert_eq!(value("wtf_alarms{state=\"active_unack\",priority=\"high\"}"), 4.0);
    assert_eq!(value("wtf_alarms{state=\"active_ack\",priority=\"critical\"}"), 0.0);
    assert_eq!(value("wtf_readings_total{source=\"http\"}"), 1.0);
    assert_eq!(value("wtf_summaries_total{generated_by=\"fallback\"}"), 1.0);
    assert_eq!(value("wtf_llm_request_duration_seconds_count"), 2.0);
    assert_eq!(value("wtf_llm_request_duration_seconds_bucket{le=\"2\"}"), 1.0);
    assert_eq!(value("wtf_llm_request_duration_seconds_bucket{le=\"60\"}"), 2.0);
    assert_eq!(value("wtf_sse_clients"), 1.0);
    assert_eq!(value("wtf_mqtt_connected"), 0.0);
    assert_eq!(value("wtf_sensors"), 3.0);
    assert_eq!(value("wtf_redis_state{state=\"disabled\"}"), 1.0);
    assert_eq!(value("wtf_journal_events"), fixture.store.journal.len() as f64);

    // A counter stays a total when the 24 h window moves on; the gauge of the window does not.
    fixture.store.expire(t0() + TimeDelta::hours(25));
    let later = exposition(&fixture).await;
    assert_eq!(sample(&later, "wtf_anomalies_total{type=\"spike\",parameter=\"pressure\"}"), Some(3.0));
}

#[tokio::test]
async fn every_family_has_help_and_a_type_and_counters_end_in_total() {
    let text = exposition(&Fixture::new()).await;
    let mut families = 0;
    for line in text.lines().filter(|line| line.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        families += 1;
        assert!(name.starts_with("wtf_"), "{name}");
        assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no help");
    }
    assert!(families >= 25, "{families} families:\n{text}");
}
