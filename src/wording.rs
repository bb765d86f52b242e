//! Asking the model to word one window's facts, and judging its answer: the one path that the
//! summarizer actor and `wtf-monitor llm-bench` share, so the benchmark measures what the daemon
//! does.
//!
//! The model fills in the window's [`Form`] (structured output, the schema sent as `format`);
//! the note is rendered from its choices and the facts ([`crate::summary::form`]).

use std::time::Duration;

use tokio::time::Instant;

use crate::domain::SensorId;
use crate::llm::{LlmClient, LlmError, Sampling};
use crate::summary::form::{self, FORM_ANSWER_TOKENS};
use crate::summary::{self, Facts, Form, Refusal};

/// How a request is made; from `[llm]` and the summarizer's deadline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub temperature: f64,
    pub max_tokens: u32,
    pub max_context: u32,
    pub timeout: Duration,
}

/// Why an attempt gave no note.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The call failed: the model is unreachable, missing, slow or broken.
    #[error("{0}")]
    Call(LlmError),
    /// The model answered, and its answer was refused.
    #[error("answer refused: {0}")]
    Refused(Refusal),
}

/// One call to the model for one window, and what became of it.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The note to publish, or why there is none.
    pub outcome: Result<String, Failure>,
    pub elapsed: Duration,
    /// The prompt's size by the daemon's own estimate (characters / 4).
    pub prompt_estimate: u32,
    /// What Ollama counted, when it answered.
    pub prompt_tokens: Option<u64>,
    pub answer_tokens: Option<u64>,
}

/// Asks the model to fill in the form of `facts` and renders the note from its answer.
pub async fn attempt(client: &LlmClient, facts: &Facts, settings: Settings, known_sensors: &[SensorId]) -> Attempt {
    let form = Form::new(facts);
    let prompt = form::prompt(facts, &form);
    let schema = form::schema(&form);
    let prompt_estimate =
        summary::estimate_tokens(&prompt.system).saturating_add(summary::estimate_tokens(&prompt.user));
    // A form needs a few dozen tokens; a model that rambles is cut off rather than waited for.
    let max_tokens = settings.max_tokens.min(FORM_ANSWER_TOKENS);
    let num_ctx = summary::context_size(&prompt, max_tokens, settings.max_context);
    let sampling = Sampling { temperature: settings.temperature, max_tokens, num_ctx };
    let started = Instant::now();
    let answer = client.generate(&prompt, Some(&schema), sampling, settings.timeout).await;
    let elapsed = started.elapsed();
    let (prompt_tokens, answer_tokens) =
        answer.as_ref().map_or((None, None), |answer| (answer.prompt_tokens, answer.answer_tokens));
    let outcome = answer
        .map_err(Failure::Call)
        .and_then(|answer| form::note_from_answer(&answer.text, facts, &form, known_sensors).map_err(Failure::Refused));
    Attempt { outcome, elapsed, prompt_estimate, prompt_tokens, answer_tokens }
}
