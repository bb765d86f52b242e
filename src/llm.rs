//! The Ollama client: one non-streaming `/api/generate` call per summary, every call bounded by
//! a timeout, and failures sorted into the few cases the summarizer acts on. No actor here: the
//! summarizer runs these calls in a spawned task and gets the result back as a message.
//!
//! ollama-rs 0.3.6 does the HTTP and the JSON; this module adds what it lacks:
//!
//! - **Timeouts.** ollama-rs has none, so every call runs under [`tokio::time::timeout`].
//!   Dropping the call closes the connection, and Ollama stops the work: its handlers run on the
//!   request's context.
//! - **Errors.** ollama-rs keeps no HTTP status: any non-2xx answer becomes `Other(raw body)`.
//!   [`LlmError`] is recovered from what is left:
//!
//!   | ollama-rs error | cause | [`LlmError`] |
//!   |---|---|---|
//!   | `ReqwestError`, decoding the body | body is not what was announced | `Malformed` |
//!   | `ReqwestError`, anything else | refused, reset, DNS (cause in the source chain) | `Unreachable` |
//!   | `Other(body)`, `{"error": "model … not found…"}` or `"… file does not exist"` | model not pulled, or unknown to the registry on pull (404 / 500) | `ModelMissing` |
//!   | `Other(body)`, anything else | Ollama's own failure (500, 503 queue full, a proxy's 404 page) | `Server` |
//!   | `JsonError` | a 2xx body that is not Ollama's answer | `Malformed` |
//!   | the timeout | | `TimedOut` |
//!
//! - **Pull.** ollama-rs sends `{"name": …, "insecure": false, "stream": false}` where Ollama's
//!   documented field is `model`. The server reads `model` and falls back to `name`
//!   (`cmp.Or(req.Model, req.Name)` in its `PullHandler`), so the pull works. Non-streaming,
//!   Ollama answers only when the download is done: `{"status":"success"}`, or an error body.
//!   A pull cut short by the timeout is abandoned; Ollama keeps the parts it downloaded and
//!   resumes them on the next pull.
//! - **URLs.** ollama-rs appends `api/generate` to the URL's text, so a base URL with a path
//!   (`http://proxy/ollama`) must end in `/`; [`LlmClient::new`] adds it. The build has no TLS
//!   (ollama-rs's default features are off), so only `http://` is accepted.

use std::error::Error;
use std::time::Duration;

use ollama_rs::Ollama;
use ollama_rs::error::OllamaError;
use ollama_rs::generation::completion::request::GenerationRequest;
use ollama_rs::models::ModelOptions;

use crate::summary::Prompt;

/// Why a call to the model gave no text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// No connection to Ollama (refused, reset, unknown host), or a URL that cannot be used.
    #[error("ollama unreachable: {0}")]
    Unreachable(String),
    /// Ollama does not have the model (pull it), or the registry does not know it.
    #[error("model missing: {0}")]
    ModelMissing(String),
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// Ollama answered with an error.
    #[error("ollama failed: {0}")]
    Server(String),
    /// Ollama answered success with a body that is not its answer.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// Longest piece of an error body kept in an [`LlmError`]: enough to read, bounded for logs.
const MAX_ERROR_CHARS: usize = 300;

/// A complete answer: the model's text and what the call cost in tokens, when Ollama says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    pub text: String,
    /// Tokens of the prompt as the model read it (`prompt_eval_count`).
    pub prompt_tokens: Option<u64>,
    /// Tokens the model wrote (`eval_count`).
    pub answer_tokens: Option<u64>,
}

/// A handle on one model of one Ollama server. Cheap to clone: the HTTP client is shared.
#[derive(Clone, Debug)]
pub struct LlmClient {
    ollama: Ollama,
    model: String,
}

impl LlmClient {
    /// A client for `model` at `url` (`http://host:port`, optionally with a path). A URL that
    /// cannot be used is [`LlmError::Unreachable`], an empty model name
    /// [`LlmError::ModelMissing`]; nothing is sent yet.
    pub fn new(url: &str, model: &str) -> Result<Self, LlmError> {
        let invalid = |why: &str| LlmError::Unreachable(format!("invalid Ollama URL {url:?}: {why}"));
        if model.trim().is_empty() {
            return Err(LlmError::ModelMissing("no model name given".to_owned()));
        }
        let mut base = url.trim().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        let ollama = Ollama::try_new(base.as_str()).map_err(|err| invalid(&err.to_string()))?;
        let parsed = ollama.url();
        if parsed.scheme() != "http" {
            return Err(invalid("must start with http:// (this build has no TLS, and Ollama is local)"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("has no host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("must not have a query or a fragment"));
        }
        Ok(Self { ollama, model: model.to_owned() })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// The base URL requests go to, ending in `/`.
    pub fn url(&self) -> &str {
        self.ollama.url_str()
    }

    /// Asks the model for one complete (non-streaming) answer and returns its `response` text,
    /// as the model wrote it: clean and check it before use.
    pub async fn generate(
        &self,
        prompt: &Prompt,
        temperature: f64,
        max_tokens: u32,
        num_ctx: u32,
        timeout: Duration,
    ) -> Result<Generation, LlmError> {
        let options = ModelOptions::default()
            .temperature(temperature as f32)
            .num_ctx(u64::from(num_ctx))
            .num_predict(i32::try_from(max_tokens).unwrap_or(i32::MAX));
        let request = GenerationRequest::new(self.model.clone(), prompt.user.as_str())
            .system(prompt.system.as_str())
            .options(options);
        match tokio::time::timeout(timeout, self.ollama.generate(request)).await {
            Err(_elapsed) => Err(LlmError::TimedOut(timeout)),
            Ok(Err(err)) => Err(classify(err)),
            // A non-streaming answer is always the last one; anything else is cut short.
            Ok(Ok(answer)) if !answer.done => Err(LlmError::Malformed("answer not marked done".to_owned())),
            Ok(Ok(answer)) => Ok(Generation {
                text: answer.response,
                prompt_tokens: answer.prompt_eval_count,
                answer_tokens: answer.eval_count,
            }),
        }
    }

    /// Asks Ollama to pull the model and waits for the download to finish (non-streaming),
    /// at most `timeout`. See the module doc for the `name`/`model` field and cut-short pulls.
    pub async fn pull_model(&self, timeout: Duration) -> Result<(), LlmError> {
        match tokio::time::timeout(timeout, self.ollama.pull_model(self.model.clone(), false)).await {
            Err(_elapsed) => Err(LlmError::TimedOut(timeout)),
            Ok(Err(err)) => Err(classify(err)),
            Ok(Ok(status)) if status.message == "success" => Ok(()),
            Ok(Ok(status)) => Err(LlmError::Server(format!("pull ended with status {:?}", status.message))),
        }
    }
}

/// Sorts ollama-rs's coarse errors; see the table in the module doc.
fn classify(err: OllamaError) -> LlmError {
    match err {
        OllamaError::ReqwestError(err) if err.is_decode() => LlmError::Malformed(causes(&err)),
        OllamaError::ReqwestError(err) => LlmError::Unreachable(causes(&err)),
        OllamaError::JsonError(err) => LlmError::Malformed(err.to_string()),
        OllamaError::Other(body) => from_error_body(&body),
        OllamaError::InternalError(err) => from_error_message(err.message),
        OllamaError::ToolCallError(err) => LlmError::Server(err.to_string()),
    }
}

/// An error with its causes: reqwest's own message says only "error sending request"; the
/// reason ("Connection refused") is at the end of the source chain.
fn causes(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Ollama's error bodies are `{"error": "…"}`; a proxy's may be anything.
fn from_error_body(body: &str) -> LlmError {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let message = serde_json::from_str::<ErrorBody>(body).map_or_else(|_| body.trim().to_owned(), |body| body.error);
    from_error_message(message)
}

fn from_error_message(message: String) -> LlmError {
    let message: String = message.chars().take(MAX_ERROR_CHARS).collect();
    let lower = message.to_lowercase();
    // Generate: `model "x" not found, try pulling it first` (or `model 'x' not found`), 404.
    // Pull of a name the registry lacks: `pull model manifest: file does not exist`, 500.
    if (lower.contains("model") && lower.contains("not found")) || lower.contains("file does not exist") {
        LlmError::ModelMissing(message)
    } else if message.is_empty() {
        LlmError::Server("error status with an empty body".to_owned())
    } else {
        LlmError::Server(message)
    }
}

#[cfg(test)]
mod tests {
    //! Against a wiremock fake that speaks Ollama's JSON. Real sockets: the paused clock does
    //! not apply, so the slow-answer test uses a real 200 ms timeout.

    use std::time::Instant;

    use serde_json::{Value, json};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    const MODEL: &str = "llama3.2:1b";
    const TIMEOUT: Duration = Duration::from_secs(5);

    fn prompt() -> Prompt {
        Prompt { system: "You write operator notes.".into(), user: "Facts:\nAnomalies: 0\n".into() }
    }

    fn answer(text: &str) -> Value {
        json!({
            "model": MODEL,
            "created_at": "2025-05-19T10:25:01.123456789Z",
            "response": text,
            "done": true,
            "done_reason": "stop",
            "context": [128006, 9125, 128007],
            "total_duration": 812_345_678u64,
            "load_duration": 12_345_678u64,
            "prompt_eval_count": 180,
            "prompt_eval_duration": 200_000_000u64,
            "eval_count": 42,
            "eval_duration": 600_000_000u64
        })
    }

    async fn ollama_answering(route: &str, response: ResponseTemplate) -> (MockServer, LlmClient) {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path(route)).respond_with(response).mount(&server).await;
        let client = LlmClient::new(&server.uri(), MODEL).expect("the fake's URL is valid");
        (server, client)
    }

    async fn generate(client: &LlmClient, timeout: Duration) -> Result<String, LlmError> {
        client.generate(&prompt(), 0.3, 2048, 3072, timeout).await.map(|answer| answer.text)
    }

    #[tokio::test]
    async fn a_good_answer_returns_its_text_and_the_request_carries_everything() {
        let (server, client) =
            ollama_answering("/api/generate", ResponseTemplate::new(200).set_body_json(answer("All quiet."))).await;
        assert_eq!(generate(&client, TIMEOUT).await, Ok("All quiet.".to_owned()));

        let requests = server.received_requests().await.expect("recording is on");
        assert_eq!(requests.len(), 1);
        let body: Value = requests[0].body_json().expect("a JSON request");
        assert_eq!(body["model"], MODEL);
        assert_eq!(body["prompt"], prompt().user);
        assert_eq!(body["system"], prompt().system);
        assert_eq!(body["stream"], false);
        assert_eq!(body["options"]["temperature"].as_f64(), Some(0.3));
        assert_eq!(body["options"]["num_ctx"], 3072);
        assert_eq!(body["options"]["num_predict"], 2048);
    }

    #[tokio::test]
    async fn a_base_url_with_a_path_keeps_it() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/ollama/api/generate"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer("ok")))
            .mount(&server)
            .await;
        let client = LlmClient::new(&format!("{}/ollama", server.uri()), MODEL).expect("valid");
        assert_eq!(generate(&client, TIMEOUT).await, Ok("ok".to_owned()));
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable() {
        // Bind to learn a free port, then free it: nothing listens there any more.
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|socket| socket.local_addr()).expect("a port").port();
        let client = LlmClient::new(&format!("http://127.0.0.1:{port}"), MODEL).expect("valid");
        match generate(&client, TIMEOUT).await {
            Err(LlmError::Unreachable(why)) => assert!(why.to_lowercase().contains("refused"), "{why}"),
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_missing_model_is_model_missing() {
        let body = json!({"error": "model \"llama3.2:1b\" not found, try pulling it first"});
        let (_server, client) = ollama_answering("/api/generate", ResponseTemplate::new(404).set_body_json(body)).await;
        match generate(&client, TIMEOUT).await {
            Err(LlmError::ModelMissing(why)) => assert!(why.contains("try pulling it first"), "{why}"),
            other => panic!("expected ModelMissing, got {other:?}"),
        }
        // The wording of current Ollama versions, without the hint.
        assert!(matches!(from_error_body(r#"{"error":"model 'llama3.2:1b' not found"}"#), LlmError::ModelMissing(_)));
    }

    #[tokio::test]
    async fn a_server_error_is_server() {
        let body = json!({"error": "llama runner process has terminated: signal: killed"});
        let (_server, client) = ollama_answering("/api/generate", ResponseTemplate::new(500).set_body_json(body)).await;
        assert_eq!(
            generate(&client, TIMEOUT).await,
            Err(LlmError::Server("llama runner process has terminated: signal: killed".to_owned()))
        );
        // Not Ollama's JSON (a proxy's page), and not a model: still the server's failure.
        assert_eq!(from_error_body("404 page not found"), LlmError::Server("404 page not found".to_owned()));
        assert!(matches!(from_error_body(""), LlmError::Server(_)));
    }

    #[tokio::test]
    async fn a_body_that_is_not_an_answer_is_malformed() {
        let (_server, client) = ollama_answering(
            "/api/generate",
            ResponseTemplate::new(200).set_body_string("{\"model\": \"llama3.2:1b\", "),
        )
        .await;
        assert!(matches!(generate(&client, TIMEOUT).await, Err(LlmError::Malformed(_))));

        let (_server, client) =
            ollama_answering("/api/generate", ResponseTemplate::new(200).set_body_json(json!({"status": "ok"}))).await;
        assert!(matches!(generate(&client, TIMEOUT).await, Err(LlmError::Malformed(_))));
    }

    #[tokio::test]
    async fn an_answer_slower_than_the_timeout_is_timed_out() {
        let slow = ResponseTemplate::new(200).set_body_json(answer("late")).set_delay(Duration::from_secs(2));
        let (_server, client) = ollama_answering("/api/generate", slow).await;
        let started = Instant::now();
        let timeout = Duration::from_millis(200);
        assert_eq!(generate(&client, timeout).await, Err(LlmError::TimedOut(timeout)));
        assert!(started.elapsed() < Duration::from_secs(1), "waited {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn pull_sends_name_without_streaming_and_waits_for_success() {
        let (server, client) =
            ollama_answering("/api/pull", ResponseTemplate::new(200).set_body_json(json!({"status": "success"}))).await;
        assert_eq!(client.pull_model(TIMEOUT).await, Ok(()));
        let requests = server.received_requests().await.expect("recording is on");
        let body: Value = requests[0].body_json().expect("a JSON request");
        // ollama-rs's field; Ollama reads `model` first and falls back to `name`.
        assert_eq!(body["name"], MODEL);
        assert_eq!(body["stream"], false);
        assert_eq!(body["insecure"], false);
    }

    #[tokio::test]
    async fn pull_failures_are_classified() {
        let unknown = json!({"error": "pull model manifest: file does not exist"});
        let (_server, client) = ollama_answering("/api/pull", ResponseTemplate::new(500).set_body_json(unknown)).await;
        assert!(matches!(client.pull_model(TIMEOUT).await, Err(LlmError::ModelMissing(_))));

        let offline = json!({"error": "pull model manifest: Get \"https://registry.ollama.ai/v2/library/llama3.2/manifests/1b\": dial tcp: lookup registry.ollama.ai: no such host"});
        let (_server, client) = ollama_answering("/api/pull", ResponseTemplate::new(500).set_body_json(offline)).await;
        assert!(matches!(client.pull_model(TIMEOUT).await, Err(LlmError::Server(_))));

        let slow =
            ResponseTemplate::new(200).set_body_json(json!({"status": "success"})).set_delay(Duration::from_secs(2));
        let (_server, client) = ollama_answering("/api/pull", slow).await;
        let timeout = Duration::from_millis(200);
        assert_eq!(client.pull_model(timeout).await, Err(LlmError::TimedOut(timeout)));
    }

    #[test]
    fn unusable_urls_and_models_are_errors_not_panics() {
        for url in [
            "",
            "not a url",
            "localhost:11434",
            "ftp://127.0.0.1:11434",
            "https://ollama.example",
            "http://127.0.0.1:11434/?x=1",
            "http://",
        ] {
            assert!(matches!(LlmClient::new(url, MODEL), Err(LlmError::Unreachable(_))), "{url:?} was accepted");
        }
        assert!(matches!(LlmClient::new("http://127.0.0.1:11434", " "), Err(LlmError::ModelMissing(_))));
        let client = LlmClient::new("http://127.0.0.1:11434", MODEL).expect("valid");
        assert_eq!(client.url(), "http://127.0.0.1:11434/");
        assert_eq!(client.model(), MODEL);
    }
}
