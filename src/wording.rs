//! Asking the model to word one window's facts, and judging its answer: the one path that the
//! summarizer actor and `wtf-monitor llm-bench` share, so the benchmark measures what the daemon
//! does.

use std::time::Duration;

use tokio::time::Instant;

use crate::domain::SensorId;
use crate::llm::{LlmClient, LlmError};
use crate::summary::{self, Facts, Ungrounded};

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
    #[error("summary refused, not supported by the facts: {0}")]
    Refused(Ungrounded),
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

/// Asks the model to word `facts` and checks its answer against them.
pub async fn attempt(client: &LlmClient, facts: &Facts, settings: Settings, known_sensors: &[SensorId]) -> Attempt {
    let prompt = summary::prompt(facts);
    let prompt_estimate =
        summary::estimate_tokens(&prompt.system).saturating_add(summary::estimate_tokens(&prompt.user));
    let num_ctx = summary::context_size(&prompt, settings.max_tokens, settings.max_context);
    let started = Instant::now();
    let answer = client.generate(&prompt, settings.temperature, settings.max_tokens, num_ctx, settings.timeout).await;
    let elapsed = started.elapsed();
    let (prompt_tokens, answer_tokens) =
        answer.as_ref().map_or((None, None), |answer| (answer.prompt_tokens, answer.answer_tokens));
    let outcome = answer.map_err(Failure::Call).and_then(|answer| {
        let text = summary::clean(&answer.text);
        summary::check_grounded(&text, facts, known_sensors).map(|()| text).map_err(Failure::Refused)
    });
    Attempt { outcome, elapsed, prompt_estimate, prompt_tokens, answer_tokens }
}
