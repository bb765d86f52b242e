//! What the model's answers become: the form asked for (schema sent as `format`), the note the
//! daemon writes from a good answer, and refusals of everything else, as `/status` reports them.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};
use wtf_monitor::domain::SummaryAuthor;
use wtf_monitor::health::LlmState;

use super::{FillsInTheForm, Harness, ollama_answer, with_ollama};

#[tokio::test]
async fn the_model_fills_in_a_form_built_from_the_facts_and_the_daemon_writes_the_note() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/api/generate")).respond_with(FillsInTheForm).mount(&server).await;
    let harness = with_ollama(&server).await;
    harness.spikes(3);
    let summary = harness.first_summary(Duration::from_secs(5)).await;
    assert_eq!(summary.generated_by, SummaryAuthor::LlmSummarizer);
    assert_eq!(summary.model.as_deref(), Some("llama3.2:1b"));
    assert_eq!(summary.anomaly_count, 3);
    assert!(
        summary.summary.starts_with(
            "3 anomalies on 1 sensor between 10:00 and 10:00 UTC. Most urgent: wtf-pipe-1 pressure: spike to 4.5 bar"
        ),
        "{}",
        summary.summary
    );
    assert!(summary.summary.contains("Check first: wtf-pipe-1 pressure on site."), "{}", summary.summary);
    assert!(summary.summary.ends_with("Severity: alert."), "{}", summary.summary);
    let llm = harness.store.health.llm();
    assert_eq!((llm.state, llm.answers_refused), (LlmState::Active, 0));
    assert!(llm.answers_accepted >= 1, "{llm:?}");

    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["model"], "llama3.2:1b");
    assert_eq!(body["stream"], false);
    assert!((body["options"]["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    assert_eq!(body["options"]["num_predict"], 256, "a form is short: no 2,048-token ramble");
    let num_ctx = body["options"]["num_ctx"].as_u64().unwrap();
    assert!((512..=2048).contains(&num_ctx), "context sized to the prompt, not 128k: {num_ctx}");
    assert!(body["prompt"].as_str().unwrap().contains("wtf-pipe-1"), "the facts are in the prompt");
    let format = &body["format"];
    assert_eq!(format["type"], "object");
    assert_eq!(format["required"], json!(["most_urgent", "check_first", "headline"]));
    assert_eq!(format["additionalProperties"], false);
    assert_eq!(format["properties"]["most_urgent"]["enum"], json!(["spike wtf-pipe-1 pressure"]));
    assert_eq!(format["properties"]["check_first"]["enum"], json!(["on_site", "compare"]));
}

/// Starts a summarizer whose model answers `response`, records the window (15 spikes,
/// 6 of them on wtf-pipe-1 up to 5.12 bar: critical), and returns it once the summary is out.
async fn answered_with(response: &str) -> (MockServer, Harness) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/api/generate")).respond_with(ollama_answer(response)).mount(&server).await;
    let harness = with_ollama(&server).await;
    harness.spikes_on("wtf-pipe-1", "pressure", 5.12, 6);
    harness.spikes_on("wtf-pipe-2", "flow", 125.0, 5);
    harness.spikes_on("wtf-pipe-3", "temperature", 46.0, 4);
    harness.first_summary(Duration::from_secs(5)).await;
    (server, harness)
}

/// The notes a fake model got published as `llm_summarizer` for such a window before.
const FALSE_NOTES: [&str; 7] = [
    "All sensors are operating normally. No anomalies were detected. Severity: normal. No action needed.",
    "wtf-pipe-1 is healthy and reported no spikes",
    "Only 3 anomalies occurred, and pressure stayed below 4 bar",
    "Sensor wtf-pipe-3 reported flow 15 L/min",
    "URGENT: a chemical leak was detected. Evacuate the plant",
    "E. coli was found",
    "<script>alert(1)</script> [click here](http://evil.example/login)",
];

#[tokio::test]
async fn every_false_note_is_refused_whether_written_as_prose_or_slipped_into_the_form() {
    let mut answers: Vec<String> = FALSE_NOTES.iter().map(|note| (*note).to_owned()).collect();
    // The same notes inside a well-formed answer: a headline the daemon did not offer.
    answers.extend(FALSE_NOTES.iter().map(|note| {
        json!({"most_urgent": "spike wtf-pipe-1 pressure", "check_first": "on_site", "headline": note}).to_string()
    }));
    // And a form missing its fields: off the schema.
    answers.push(json!({"most_urgent": "spike wtf-pipe-1 pressure"}).to_string());
    // Each answer gets a summarizer and a fake model of its own; they run side by side.
    let runs =
        answers.into_iter().map(|answer| tokio::spawn(async move { (answer.clone(), answered_with(&answer).await) }));
    for run in runs.collect::<Vec<_>>() {
        let (answer, (_server, harness)) = run.await.expect("the run finished");
        // The first window's: with one-second windows, later ones may be out already.
        let summaries = harness.store.summaries.recent(1000);
        let summary = summaries.last().expect("a summary");
        assert_eq!(summary.generated_by, SummaryAuthor::Fallback, "{answer} was published");
        assert_eq!(summary.anomaly_count, 15);
        for claim in ["normally", "healthy", "chemical", "coli", "<script", "http://", "15 L/min"] {
            assert!(!summary.summary.contains(claim), "{claim:?} in {}", summary.summary);
        }
        assert!(summary.summary.contains("Severity: critical."), "{}", summary.summary);
        let llm = harness.store.health.llm();
        assert_eq!(llm.state, LlmState::Refused, "{answer}: {llm:?}");
        assert_eq!((llm.answers_accepted, llm.calls_failed), (0, 0), "{answer}");
        assert!(llm.answers_refused >= 1, "{answer}: {llm:?}");
        let reason = llm.last_refusal.unwrap_or_default();
        let expected = match answer.as_str() {
            form if form.starts_with('{') && !form.contains("headline") => "check_first is missing",
            form if form.starts_with('{') => "headline is",
            _ => "not JSON",
        };
        assert!(reason.contains(expected), "{answer}: {reason}");
    }
}

#[tokio::test]
async fn refused_answers_are_counted_and_the_model_stays_active_while_it_answers() {
    let server = MockServer::start().await;
    let invented = json!({"most_urgent": "spike wtf-pipe-9 pressure", "check_first": "on_site",
        "headline": "Spike in pressure on wtf-pipe-9"});
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(ollama_answer(&invented.to_string()))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path("/api/generate")).respond_with(FillsInTheForm).mount(&server).await;
    let harness = with_ollama(&server).await;
    harness.spikes(2);
    let first = harness.first_summary(Duration::from_secs(5)).await;
    assert_eq!(first.generated_by, SummaryAuthor::Fallback);
    let llm = harness.store.health.llm();
    assert_eq!(llm.state, LlmState::Refused);
    assert!(llm.state.is_answering(), "a refused answer is an answer: llm_active stays true");
    assert!(llm.reason.as_deref().unwrap_or_default().contains("wtf-pipe-9"), "{llm:?}");
    // Refusals do not back off: the next windows ask again, and a good answer is used.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while harness.store.summaries.latest().is_some_and(|summary| summary.generated_by == SummaryAuthor::Fallback) {
        assert!(tokio::time::Instant::now() < deadline, "the model was not asked again");
        harness.spikes(1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let llm = harness.store.health.llm();
    assert_eq!((llm.state, llm.answers_refused, llm.answers_accepted), (LlmState::Active, 2, 1));
    assert!(llm.last_refusal.unwrap_or_default().contains("wtf-pipe-9"), "the refusal stays on record");
}
