//! The summarizer actor: its cadence on tokio's paused clock, and its outcomes against a fake
//! Ollama that speaks Ollama's real `/api/generate` JSON, failures included.
//!
//! The fake server runs on real sockets, and tokio's paused clock jumps ahead whenever the
//! runtime waits on I/O, so the tests that talk to it run on the real clock with one-second
//! intervals.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use ractor::{Actor, ActorRef};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use wtf_monitor::actors::summarizer::{Summarizer, SummarizerArgs, SummarizerMsg};
use wtf_monitor::clock::Clock;
use wtf_monitor::config::{Config, LlmConfig};
use wtf_monitor::domain::{Anomaly, AnomalyKind, Parameter, SummaryAuthor};
use wtf_monitor::health::LlmState;
use wtf_monitor::store::Store;

struct Harness {
    actor: ActorRef<SummarizerMsg>,
    store: Arc<Store>,
    clock: Clock,
}

impl Harness {
    async fn start(edit: impl FnOnce(&mut LlmConfig)) -> Self {
        let mut config = Config::default();
        config.llm.url = String::new();
        edit(&mut config.llm);
        let config = config.validate().expect("valid");
        let clock = Clock::starting_at(Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap());
        let store = Arc::new(Store::new(config.clone(), clock.now()));
        let args = SummarizerArgs { config: config.llm.clone(), store: Arc::clone(&store), clock };
        let (actor, _) = Actor::spawn(None, Summarizer, args).await.expect("summarizer starts");
        Self { actor, store, clock }
    }

    fn spikes(&self, count: usize) {
        for _ in 0..count {
            let now = self.clock.now();
            let anomaly =
                Anomaly::new(AnomalyKind::Spike, now, "wtf-pipe-1".into(), Parameter::Pressure, Some(4.5), 4.0, None);
            self.store.record_anomaly(anomaly, now);
        }
    }

    fn summaries(&self) -> usize {
        self.store.summaries(1000).len()
    }

    /// Waits (real time) until a summary exists, at most `limit`.
    async fn first_summary(&self, limit: Duration) -> Arc<wtf_monitor::domain::Summary> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(summary) = self.store.latest_summary() {
                return summary;
            }
            assert!(tokio::time::Instant::now() < deadline, "no summary within {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.actor.stop(None);
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_summary_comes_within_30_seconds_then_every_interval() {
    let harness = Harness::start(|_| {}).await;
    tokio::time::sleep(Duration::from_millis(14_500)).await;
    assert_eq!(harness.summaries(), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(harness.summaries(), 1, "at 15 s");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(harness.summaries(), 2, "at 75 s");

    let summary = harness.store.latest_summary().unwrap();
    assert_eq!(summary.generated_by, SummaryAuthor::Fallback);
    assert_eq!(summary.anomaly_count, 0);
    assert!(summary.summary.contains("No anomalies"), "{}", summary.summary);
    assert_eq!(harness.store.health.llm().state, LlmState::Disabled);
}

/// An Ollama that takes connections and never answers, as a model stuck loading does.
async fn silent_ollama() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

#[tokio::test(start_paused = true)]
async fn a_model_that_never_answers_does_not_delay_summaries() {
    let url = silent_ollama().await;
    let harness = Harness::start(move |llm| {
        llm.url = url;
        llm.timeout = Duration::from_secs(300);
    })
    .await;
    let start = harness.clock.now();
    tokio::time::sleep(Duration::from_secs(31)).await;
    let first = harness.store.latest_summary().expect("a summary within 30 s");
    assert_eq!(first.generated_by, SummaryAuthor::Fallback);
    assert!(first.timestamp - start <= chrono::TimeDelta::seconds(30), "{}", first.timestamp - start);

    // However long the configured timeout, operators get a summary at least every 3 minutes.
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    let mut times: Vec<_> = harness.store.summaries(1000).iter().map(|summary| summary.timestamp).collect();
    times.reverse();
    assert!(times.len() >= 7, "{} summaries in 20 minutes", times.len());
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] <= chrono::TimeDelta::seconds(180), "a gap of {}", pair[1] - pair[0]);
    }
    assert_eq!(harness.store.health.llm().state, LlmState::Inactive);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_summarizer_summarises_what_its_predecessor_had_not() {
    let harness = Harness::start(|_| {}).await;
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(harness.summaries(), 1);
    harness.spikes(5);
    tokio::time::sleep(Duration::from_secs(1)).await;
    harness.actor.stop(None);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let args = SummarizerArgs {
        config: harness.store.config().llm.clone(),
        store: Arc::clone(&harness.store),
        clock: harness.clock,
    };
    let (successor, _) = Actor::spawn(None, Summarizer, args).await.expect("summarizer restarts");
    tokio::time::sleep(Duration::from_secs(16)).await;
    let summaries = harness.store.summaries(10);
    assert_eq!(summaries.len(), 2);
    assert_eq!(summaries[0].anomaly_count, 5, "the spikes raised before the restart are summarised");
    assert_eq!(summaries[0].window_start, summaries[1].window_end, "windows follow each other");
    successor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn many_anomalies_bring_a_summary_forward_but_never_closer_than_the_floor() {
    let harness = Harness::start(|llm| {
        llm.burst_anomalies = 50;
        llm.min_interval = Duration::from_secs(15);
    })
    .await;
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(harness.summaries(), 1, "the first, at 15 s");
    tokio::time::sleep(Duration::from_secs(16)).await;
    harness.spikes(60);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(harness.summaries(), 2, "the burst came before the 75 s summary was due");
    assert_eq!(harness.store.latest_summary().unwrap().anomaly_count, 60);

    harness.spikes(60);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(harness.summaries(), 2, "not within 15 s of the previous one");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(harness.summaries(), 3);
    assert_eq!(harness.store.latest_summary().unwrap().anomaly_count, 60);
}

/// Ollama's answer to a non-streaming `/api/generate`.
fn ollama_answer(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "model": "llama3.2:1b",
        "created_at": "2025-05-19T10:25:00.000000Z",
        "response": text,
        "done": true,
        "done_reason": "stop",
        "context": [1, 2, 3],
        "total_duration": 1_200_000_000u64,
        "load_duration": 10_000_000u64,
        "prompt_eval_count": 350,
        "prompt_eval_duration": 300_000_000u64,
        "eval_count": 40,
        "eval_duration": 800_000_000u64
    }))
}

async fn with_ollama(server: &MockServer) -> Harness {
    let url = server.uri();
    Harness::start(move |llm| {
        llm.url = url;
        llm.interval = Duration::from_secs(1);
        llm.min_interval = Duration::from_secs(1);
        llm.timeout = Duration::from_millis(500);
    })
    .await
}

const GROUNDED: &str = "Pressure spikes on wtf-pipe-1 need a check of the pump.";

#[tokio::test]
async fn a_good_answer_from_the_model_is_the_summary() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/api/generate")).respond_with(ollama_answer(GROUNDED)).mount(&server).await;
    let harness = with_ollama(&server).await;
    harness.spikes(3);
    let summary = harness.first_summary(Duration::from_secs(5)).await;
    assert_eq!(summary.generated_by, SummaryAuthor::LlmSummarizer);
    assert_eq!(summary.summary, GROUNDED);
    assert_eq!(summary.model, "llama3.2:1b");
    assert_eq!(summary.anomaly_count, 3);
    assert_eq!(harness.store.health.llm().state, LlmState::Active);

    let requests = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["model"], "llama3.2:1b");
    assert_eq!(body["stream"], false);
    assert!((body["options"]["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    assert_eq!(body["options"]["num_predict"], 2048);
    let num_ctx = body["options"]["num_ctx"].as_u64().unwrap();
    assert!((2048..=8192).contains(&num_ctx), "context sized to the prompt, not 128k: {num_ctx}");
    assert!(body["prompt"].as_str().unwrap().contains("wtf-pipe-1"), "the facts are in the prompt");
}

/// Every way Ollama can fail gives a template summary, and `/status` says why.
async fn assert_falls_back(server: &MockServer, reason_contains: &str) -> Harness {
    let harness = with_ollama(server).await;
    harness.spikes(2);
    let summary = harness.first_summary(Duration::from_secs(5)).await;
    assert_eq!(summary.generated_by, SummaryAuthor::Fallback);
    assert_eq!(summary.anomaly_count, 2);
    assert!(summary.summary.contains("wtf-pipe-1"), "the template words the same facts: {}", summary.summary);
    let llm = harness.store.health.llm();
    assert_eq!(llm.state, LlmState::Inactive);
    let reason = llm.reason.unwrap_or_default();
    assert!(reason.contains(reason_contains), "reason {reason:?} should mention {reason_contains:?}");
    harness
}

#[tokio::test]
async fn ollama_not_running_gives_a_fallback() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let harness = Harness::start(|llm| {
        llm.url = format!("http://127.0.0.1:{port}");
        llm.interval = Duration::from_secs(1);
        llm.min_interval = Duration::from_secs(1);
    })
    .await;
    harness.spikes(1);
    let summary = harness.first_summary(Duration::from_secs(5)).await;
    assert_eq!(summary.generated_by, SummaryAuthor::Fallback);
    let llm = harness.store.health.llm();
    assert_eq!(llm.state, LlmState::Inactive);
    assert!(llm.reason.unwrap_or_default().contains("unreachable"));
}

#[tokio::test]
async fn a_missing_model_gives_a_fallback_and_one_pull() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": "model \"llama3.2:1b\" not found, try pulling it first"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/pull"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "success"})))
        .expect(1)
        .mount(&server)
        .await;
    let _harness = assert_falls_back(&server, "model missing").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // `expect(1)` is verified when the server drops: one pull, however many summaries failed.
}

#[tokio::test]
async fn a_server_error_gives_a_fallback() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": "llama runner process has terminated"})))
        .mount(&server)
        .await;
    assert_falls_back(&server, "llama runner").await;
}

#[tokio::test]
async fn a_malformed_answer_gives_a_fallback() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"response\": \"half an ans"))
        .mount(&server)
        .await;
    assert_falls_back(&server, "malformed").await;
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_gives_a_fallback() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(ollama_answer(GROUNDED).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    assert_falls_back(&server, "no answer within").await;
}

#[tokio::test]
async fn an_answer_naming_a_sensor_that_does_not_exist_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(ollama_answer("Pressure spikes on wtf-pipe-9 need a check."))
        .mount(&server)
        .await;
    assert_falls_back(&server, "wtf-pipe-9").await;
}

#[tokio::test]
async fn the_model_is_used_again_once_it_recovers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": "out of memory"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path("/api/generate")).respond_with(ollama_answer(GROUNDED)).mount(&server).await;
    let harness = assert_falls_back(&server, "out of memory").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        harness.spikes(1);
        let latest = harness.store.latest_summary().unwrap();
        if latest.generated_by == SummaryAuthor::LlmSummarizer {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the model was not used again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(harness.store.health.llm().state, LlmState::Active);
}
