//! The Ollama client: one non-streaming `/api/generate` call per summary, every call bounded in
//! time and in the bytes it reads, and failures sorted into the few cases the summarizer acts on.
//! No actor here: the summarizer runs these calls in a spawned task and gets the result back as a
//! message.
//!
//! The HTTP is a small reqwest 0.12 call of our own; ollama-rs supplies the shapes of Ollama's
//! JSON ([`ModelOptions`], [`GenerationResponse`]). ollama-rs's own calls read a whole body into
//! memory, however large: a server answering 200 with a 3 GiB `response` inside the timeout took
//! 18 GB of memory. Here:
//!
//! - **Bounded bodies.** An answer is read in chunks, at most [`MAX_ANSWER_BYTES`] (a form is a
//!   few hundred bytes; Ollama adds the prompt's token ids in `context`, a few KB more), and the
//!   call is abandoned — the connection dropped — past it, or at once when `Content-Length`
//!   announces more. An error body is read up to `MAX_ERROR_BYTES` and cut there.
//! - **Timeouts.** Every call, sending and reading, runs under [`tokio::time::timeout`]. Dropping
//!   the call closes the connection, and Ollama stops the work: its handlers run on the
//!   request's context.
//! - **Structured outputs.** `format` carries a JSON schema (see [`crate::summary::form`]); Ollama
//!   constrains the model's output to it with a grammar, and the answer's `response` is the JSON.
//! - **Errors.** [`LlmError`] from what the call met:
//!
//!   | what happened | [`LlmError`] |
//!   |---|---|
//!   | refused, reset, DNS, cut off while reading | `Unreachable` |
//!   | error status, `{"error": "model … not found…"}` or `"… file does not exist"` (model not pulled, or unknown to the registry on pull) | `ModelMissing` |
//!   | any other error status (500, 503 queue full, a proxy's 404 page) | `Server` |
//!   | 2xx with a body that is not Ollama's answer, or larger than the bound | `Malformed` |
//!   | the timeout | `TimedOut` |
//!
//! - **Pull.** `{"model": …, "name": …, "stream": false}`: Ollama reads `model` and older servers
//!   `name`. Non-streaming, Ollama answers only when the download is done: `{"status":"success"}`,
//!   or an error body. A pull cut short by the timeout is abandoned; Ollama keeps the parts it
//!   downloaded and resumes them on the next pull.
//! - **URLs.** A base URL may have a path (`http://proxy/ollama`); `api/generate` is joined
//!   under it. The build has no TLS, and Ollama is local, so only `http://` is accepted; no proxy
//!   from the environment is used (a plant network's proxy would not reach the local Ollama).

use std::error::Error;
use std::time::Duration;

use ollama_rs::generation::completion::GenerationResponse;
use ollama_rs::models::ModelOptions;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Client, Response, Url};
use serde::Serialize;

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
/// Most bytes of a successful answer read: the form, plus Ollama's `context` token ids.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most bytes of an error body (or a pull's answer) read; the rest is not looked at.
const MAX_ERROR_BYTES: usize = 8 * 1024;
/// How long connecting may take, within the call's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A complete answer: the model's text and what the call cost in tokens, when Ollama says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    pub text: String,
    /// Tokens of the prompt as the model read it (`prompt_eval_count`).
    pub prompt_tokens: Option<u64>,
    /// Tokens the model wrote (`eval_count`).
    pub answer_tokens: Option<u64>,
}

/// Sampling and sizes of one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f64,
    /// `num_predict`.
    pub max_tokens: u32,
    /// `num_ctx`.
    pub num_ctx: u32,
}

/// A handle on one model of one Ollama server. Cheap to clone: the HTTP client is shared.
#[derive(Clone, Debug)]
pub struct LlmClient {
    http: Client,
    base: Url,
    model: String,
}

/// `/api/generate`'s request, as Ollama's API documents it.
#[derive(Serialize)]
struct GenerateBody<'a, F: Serialize> {
    model: &'a str,
    prompt: &'a str,
    system: &'a str,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'a F>,
    options: ModelOptions,
}

#[derive(Serialize)]
struct PullBody<'a> {
    model: &'a str,
    name: &'a str,
    insecure: bool,
    stream: bool,
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
        let parsed = Url::parse(&base).map_err(|err| invalid(&err.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(invalid("must start with http:// (this build has no TLS, and Ollama is local)"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("has no host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("must not have a query or a fragment"));
        }
        let http = Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|err| LlmError::Unreachable(causes(&err)))?;
        Ok(Self { http, base: parsed, model: model.to_owned() })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// The base URL requests go to, ending in `/`.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// Asks the model for one complete (non-streaming) answer and returns its `response` text as
    /// the model wrote it, constrained to `format` (a JSON schema) when given: check it before use.
    pub async fn generate<F: Serialize + Sync>(
        &self,
        prompt: &Prompt,
        format: Option<&F>,
        sampling: Sampling,
        timeout: Duration,
    ) -> Result<Generation, LlmError> {
        let options = ModelOptions::default()
            .temperature(sampling.temperature as f32)
            .num_ctx(u64::from(sampling.num_ctx))
            .num_predict(i32::try_from(sampling.max_tokens).unwrap_or(i32::MAX));
        let body = GenerateBody {
            model: &self.model,
            prompt: &prompt.user,
            system: &prompt.system,
            stream: false,
            format,
            options,
        };
        let answer = bounded(timeout, async {
            let bytes = self.post("api/generate", &body, MAX_ANSWER_BYTES).await?;
            serde_json::from_slice::<GenerationResponse>(&bytes).map_err(|err| LlmError::Malformed(err.to_string()))
        })
        .await?;
        // A non-streaming answer is always the last one; anything else is cut short.
        if !answer.done {
            return Err(LlmError::Malformed("answer not marked done".to_owned()));
        }
        Ok(Generation {
            text: answer.response,
            prompt_tokens: answer.prompt_eval_count,
            answer_tokens: answer.eval_count,
        })
    }

    /// Asks Ollama to pull the model and waits for the download to finish (non-streaming),
    /// at most `timeout`. See the module doc for the `name`/`model` field and cut-short pulls.
    pub async fn pull_model(&self, timeout: Duration) -> Result<(), LlmError> {
        #[derive(serde::Deserialize)]
        struct PullStatus {
            status: String,
        }
        let body = PullBody { model: &self.model, name: &self.model, insecure: false, stream: false };
        let status = bounded(timeout, async {
            let bytes = self.post("api/pull", &body, MAX_ERROR_BYTES).await?;
            serde_json::from_slice::<PullStatus>(&bytes).map_err(|err| LlmError::Malformed(err.to_string()))
        })
        .await?;
        if status.status == "success" {
            Ok(())
        } else {
            Err(LlmError::Server(format!("pull ended with status {:?}", status.status)))
        }
    }

    /// POSTs `body` as JSON to `path` under the base URL; the body of a 2xx answer (at most `max`
    /// bytes), or the error its status and body mean.
    async fn post(&self, path: &str, body: &impl Serialize, max: usize) -> Result<Vec<u8>, LlmError> {
        let url = self.base.join(path).map_err(|err| LlmError::Unreachable(err.to_string()))?;
        let json =
            serde_json::to_vec(body).map_err(|err| LlmError::Malformed(format!("request not encoded: {err}")))?;
        let response = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(json)
            .send()
            .await
            .map_err(|err| LlmError::Unreachable(causes(&err)))?;
        if response.status().is_success() {
            read_bounded(response, max).await
        } else {
            let status = response.status();
            let body = read_prefix(response, MAX_ERROR_BYTES).await;
            Err(from_error_body(status.as_u16(), &String::from_utf8_lossy(&body)))
        }
    }
}

async fn bounded<T>(timeout: Duration, call: impl Future<Output = Result<T, LlmError>>) -> Result<T, LlmError> {
    tokio::time::timeout(timeout, call).await.unwrap_or(Err(LlmError::TimedOut(timeout)))
}

/// The whole body, if it is at most `max` bytes; refused as soon as it is known to be larger,
/// before reading it when `Content-Length` says so.
async fn read_bounded(mut response: Response, max: usize) -> Result<Vec<u8>, LlmError> {
    let too_large = |size: String| LlmError::Malformed(format!("answer of {size} bytes, more than the {max} read"));
    let announced = response.headers().get(CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = announced.filter(|length| *length > max as u64) {
        return Err(too_large(length.to_string()));
    }
    let mut body = Vec::with_capacity(announced.map_or(4096, |length| length as usize));
    while let Some(chunk) = response.chunk().await.map_err(|err| LlmError::Unreachable(causes(&err)))? {
        if body.len() + chunk.len() > max {
            return Err(too_large(format!("more than {}", body.len() + chunk.len())));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Up to `max` bytes of the body, whatever comes after; what could be read if the connection fails.
async fn read_prefix(mut response: Response, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(max - body.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    body
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
fn from_error_body(status: u16, body: &str) -> LlmError {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let message = serde_json::from_str::<ErrorBody>(body).map_or_else(|_| body.trim().to_owned(), |body| body.error);
    from_error_message(status, message)
}

fn from_error_message(status: u16, message: String) -> LlmError {
    let message: String = message.chars().take(MAX_ERROR_CHARS).collect();
    let lower = message.to_lowercase();
    // Generate: `model "x" not found, try pulling it first` (or `model 'x' not found`), 404.
    // Pull of a name the registry lacks: `pull model manifest: file does not exist`, 500.
    if (lower.contains("model") && lower.contains("not found")) || lower.contains("file does not exist") {
        LlmError::ModelMissing(message)
    } else if message.is_empty() {
        LlmError::Server(format!("status {status} with an empty body"))
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

    const SAMPLING: Sampling = Sampling { temperature: 0.3, max_tokens: 2048, num_ctx: 3072 };

    async fn generate(client: &LlmClient, timeout: Duration) -> Result<String, LlmError> {
        client.generate::<Value>(&prompt(), None, SAMPLING, timeout).await.map(|answer| answer.text)
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
    async fn a_schema_goes_out_as_format_in_its_own_key_order_and_the_counts_come_back() {
        #[derive(Serialize)]
        struct Form {
            #[serde(rename = "type")]
            kind: &'static str,
            zeta: u8,
            alpha: u8,
        }
        let (server, client) =
            ollama_answering("/api/generate", ResponseTemplate::new(200).set_body_json(answer("{\"a\": 1}"))).await;
        let form = Form { kind: "object", zeta: 1, alpha: 2 };
        let answer = client.generate(&prompt(), Some(&form), SAMPLING, TIMEOUT).await.expect("an answer");
        assert_eq!(answer, Generation { text: "{\"a\": 1}".into(), prompt_tokens: Some(180), answer_tokens: Some(42) });
        let requests = server.received_requests().await.expect("recording is on");
        let body: Value = requests[0].body_json().expect("a JSON request");
        assert_eq!(body["format"], json!({"type": "object", "zeta": 1, "alpha": 2}));
        // The model fills the fields in the order the schema declares them, so that order is kept.
        let raw = String::from_utf8_lossy(&requests[0].body);
        assert!(raw.find("\"zeta\"") < raw.find("\"alpha\""), "{raw}");
    }

    #[tokio::test]
    async fn a_huge_answer_is_refused_quickly_without_reading_it() {
        let huge = "x".repeat(4 * 1024 * 1024);
        let (_server, client) =
            ollama_answering("/api/generate", ResponseTemplate::new(200).set_body_json(answer(&huge))).await;
        let started = Instant::now();
        match generate(&client, TIMEOUT).await {
            Err(LlmError::Malformed(why)) => assert!(why.contains("more than the 65536 read"), "{why}"),
            other => panic!("expected Malformed, got {:?}", other.map(|text| text.len())),
        }
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());

        // A huge error body is cut, not read whole.
        let (_server, client) =
            ollama_answering("/api/generate", ResponseTemplate::new(500).set_body_string(huge.clone())).await;
        match generate(&client, TIMEOUT).await {
            Err(LlmError::Server(why)) => assert_eq!(why.chars().count(), MAX_ERROR_CHARS),
            other => panic!("expected Server, got {:?}", other.map(|text| text.len())),
        }
    }

    /// A server that answers 200 with a chunked body that never ends: no `Content-Length` to go by.
    async fn endless_ollama() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let head =
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
                    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn an_endless_answer_is_cut_off_at_the_bound() {
        let client = LlmClient::new(&endless_ollama().await, MODEL).expect("valid");
        let started = Instant::now();
        match generate(&client, TIMEOUT).await {
            Err(LlmError::Malformed(why)) => assert!(why.contains("more than the 65536 read"), "{why}"),
            other => panic!("expected Malformed, got {:?}", other.map(|text| text.len())),
        }
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
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
        assert!(matches!(
            from_error_body(404, r#"{"error":"model 'llama3.2:1b' not found"}"#),
            LlmError::ModelMissing(_)
        ));
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
        assert_eq!(from_error_body(404, "404 page not found"), LlmError::Server("404 page not found".to_owned()));
        assert!(matches!(from_error_body(502, ""), LlmError::Server(_)));
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
        // Ollama reads `model` first and falls back to `name`, which older servers need.
        assert_eq!(body["model"], MODEL);
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
