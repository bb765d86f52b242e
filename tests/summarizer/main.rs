//! The summarizer actor: its cadence on tokio's paused clock, and its outcomes against a fake
//! Ollama that speaks Ollama's real `/api/generate` JSON, failures included. `answers` has what
//! the model's answers become (structured forms, refusals, `/status`), `lifecycle` crashes,
//! restarts and the stop.
//!
//! The fake server runs on real sockets, and tokio's paused clock jumps ahead whenever the
//! runtime waits on I/O, so the tests that talk to it run on the real clock with one-second
//! intervals.

mod answers;
mod lifecycle;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ractor::{Actor, ActorRef};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};
use wtf_monitor::actors::summarizer::{Summarizer, SummarizerArgs, SummarizerMsg};
use wtf_monitor::clock::Clock;
use wtf_monitor::config::{Config, LlmConfig};
use wtf_monitor::domain::{Anomaly, AnomalyKind, SensorId, SummaryAuthor};
use wtf_monitor::health::LlmState;
use wtf_monitor::ingress::Ingress;
use wtf_monitor::store::Store;

/// An anomaly as a detector raises it, with the default wording of its parameter.
pub fn anomaly(
    kind: AnomalyKind,
    at: DateTime<Utc>,
    sensor: SensorId,
    parameter: &str,
    value: Option<f64>,
    threshold: f64,
    duration: Option<f64>,
) -> Anomaly {
    let episode = wtf_monitor::domain::EpisodeKey { sensor_id: sensor, parameter: parameter.into(), kind, started: at };
    Anomaly::new(&episode, at, value, threshold, duration, &Config::default().wording(parameter))
}

pub struct Harness {
    pub actor: ActorRef<SummarizerMsg>,
    pub store: Arc<Store>,
    pub ingress: Arc<Ingress>,
    pub clock: Clock,
}

impl Harness {
    pub async fn start(edit: impl FnOnce(&mut LlmConfig)) -> Self {
        let mut config = Config::default();
        config.llm.url = String::new();
        edit(&mut config.llm);
        let config = config.validate().expect("valid");
        let clock = Clock::starting_at(Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap());
        let store = Arc::new(Store::new(config.clone(), clock));
        let ingress = Arc::new(Ingress::new(&config, clock));
        let args = SummarizerArgs {
            config: config.llm.clone(),
            store: Arc::clone(&store),
            ingress: Arc::clone(&ingress),
            clock,
            claims: None,
        };
        let (actor, _) = Actor::spawn(None, Summarizer, args).await.expect("summarizer starts");
        Self { actor, store, ingress, clock }
    }

    /// A new summarizer on the same store (a restart), configured by `edit`.
    pub async fn restart(&mut self, edit: impl FnOnce(&mut LlmConfig)) {
        let mut config = self.store.config().llm.clone();
        edit(&mut config);
        let args = SummarizerArgs {
            config,
            store: Arc::clone(&self.store),
            ingress: Arc::clone(&self.ingress),
            clock: self.clock,
            claims: None,
        };
        let (actor, _) = Actor::spawn(None, Summarizer, args).await.expect("summarizer restarts");
        self.actor = actor;
    }

    pub fn spikes(&self, count: usize) {
        self.spikes_on("wtf-pipe-1", "pressure", 4.5, count);
    }

    pub fn spikes_on(&self, sensor: &str, parameter: &str, value: f64, count: usize) {
        // A millisecond apart: each its own episode (the store holds an episode once).
        for index in 0..count {
            let now = self.clock.now() + chrono::TimeDelta::milliseconds(index as i64);
            let anomaly = anomaly(AnomalyKind::Spike, now, sensor.into(), parameter, Some(value), 4.0, None);
            self.store.record_anomaly(anomaly, now);
        }
    }

    pub fn summaries(&self) -> usize {
        self.store.summaries.recent(1000).len()
    }

    /// Waits (real time) until a summary exists, at most `limit`.
    pub async fn first_summary(&self, limit: Duration) -> Arc<wtf_monitor::domain::Summary> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(summary) = self.store.summaries.latest() {
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

    let summary = harness.store.summaries.latest().unwrap();
    assert_eq!(summary.generated_by, SummaryAuthor::Fallback);
    assert_eq!(summary.anomaly_count, 0);
    assert!(summary.summary.contains("No anomalies"), "{}", summary.summary);
    assert_eq!(summary.model, None, "no model was asked, so none is named");
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
    let first = harness.store.summaries.latest().expect("a summary within 30 s");
    assert_eq!(first.generated_by, SummaryAuthor::Fallback);
    assert!(first.timestamp - start <= chrono::TimeDelta::seconds(30), "{}", first.timestamp - start);

    // However long the configured timeout, operators get a summary at least every 3 minutes.
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    let mut times: Vec<_> = harness.store.summaries.recent(1000).iter().map(|summary| summary.timestamp).collect();
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
        ingress: Arc::new(Ingress::new(&harness.store.config(), harness.clock)),
        clock: harness.clock,
        claims: None,
    };
    let (successor, _) = Actor::spawn(None, Summarizer, args).await.expect("summarizer restarts");
    tokio::time::sleep(Duration::from_secs(16)).await;
    let summaries = harness.store.summaries.recent(10);
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
    assert_eq!(harness.store.summaries.latest().unwrap().anomaly_count, 60);

    harness.spikes(60);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(harness.summaries(), 2, "not within 15 s of the previous one");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(harness.summaries(), 3);
    assert_eq!(harness.store.summaries.latest().unwrap().anomaly_count, 60);
}

/// Ollama's answer to a non-streaming `/api/generate`, its `response` being `text`.
pub fn ollama_answer(text: &str) -> ResponseTemplate {
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

/// A fake model that fills in the form it is sent, as the grammar of a real one makes it: the
/// first choice of each field of the request's `format` (the first check is the first
/// condition's). Answers "not a form" when the request carries no schema.
pub struct FillsInTheForm;

impl Respond for FillsInTheForm {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let first = |field: &str| body["format"]["properties"][field]["enum"][0].as_str().map(str::to_owned);
        match (first("most_urgent"), first("check_first"), first("headline")) {
            (Some(most_urgent), Some(check_first), Some(headline)) => ollama_answer(
                &json!({"most_urgent": most_urgent, "check_first": check_first, "headline": headline}).to_string(),
            ),
            _ => ollama_answer("not a form"),
        }
    }
}

pub async fn with_ollama(server: &MockServer) -> Harness {
    let url = server.uri();
    Harness::start(move |llm| {
        llm.url = url;
        llm.interval = Duration::from_secs(1);
        llm.min_interval = Duration::from_secs(1);
        llm.timeout = Duration::from_millis(500);
    })
    .await
}

/// Every way Ollama can fail gives a template summary, and `/status` says why.
pub async fn assert_falls_back(server: &MockServer, reason_contains: &str) -> Harness {
    let harness = with_ollama(server).await;
    harness.spikes(2);
    let summary = harness.first_summary(Duration::from_secs(5)).await;
    assert_eq!(summary.generated_by, SummaryAuthor::Fallback);
    assert_eq!(summary.anomaly_count, 2);
    assert_eq!(summary.model.as_deref(), Some("llama3.2:1b"), "the model was asked");
    assert!(summary.summary.contains("wtf-pipe-1"), "the template words the same facts: {}", summary.summary);
    let llm = harness.store.health.llm();
    assert_eq!(llm.state, LlmState::Inactive);
    assert!(llm.calls_failed >= 1, "{llm:?}");
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
        .respond_with(FillsInTheFormAfter(Duration::from_secs(3)))
        .mount(&server)
        .await;
    assert_falls_back(&server, "no answer within").await;
}

/// [`FillsInTheForm`], after a delay.
pub struct FillsInTheFormAfter(pub Duration);

impl Respond for FillsInTheFormAfter {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        FillsInTheForm.respond(request).set_delay(self.0)
    }
}

#[tokio::test]
async fn a_huge_answer_is_refused_quickly_and_the_template_is_used() {
    let server = MockServer::start().await;
    let huge = "x".repeat(4 * 1024 * 1024);
    Mock::given(method("POST")).and(path("/api/generate")).respond_with(ollama_answer(&huge)).mount(&server).await;
    let started = tokio::time::Instant::now();
    let harness = assert_falls_back(&server, "more than the 65536 read").await;
    // The window closes after 1 s; the answer is refused as soon as its size is known.
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    drop(harness);
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
    Mock::given(method("POST")).and(path("/api/generate")).respond_with(FillsInTheForm).mount(&server).await;
    let harness = assert_falls_back(&server, "out of memory").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        harness.spikes(1);
        let latest = harness.store.summaries.latest().unwrap();
        if latest.generated_by == SummaryAuthor::LlmSummarizer {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the model was not used again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(harness.store.health.llm().state, LlmState::Active);
}

/// A fake Ollama on a raw socket that takes each request and never answers, counting the
/// connections made and those the client closed (an abandoned call).
pub struct SilentOllama {
    pub url: String,
    pub connections: Arc<AtomicUsize>,
    pub closed_by_client: Arc<AtomicUsize>,
}

impl SilentOllama {
    pub async fn start() -> Self {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (connections, closed_by_client) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (opened, closed) = (Arc::clone(&connections), Arc::clone(&closed_by_client));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                opened.fetch_add(1, Ordering::SeqCst);
                let closed = Arc::clone(&closed);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    while matches!(socket.read(&mut buffer).await, Ok(read) if read > 0) {}
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self { url, connections, closed_by_client }
    }
}
