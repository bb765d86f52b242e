//! `summarizer` — turns the anomalies of each window into an operator summary.
//!
//! Messages: `Tick` from its own one-second timer (it follows the store's new anomalies and
//! decides whether a summary is due); `Worded` from the task that called the model; `Pulled`
//! from the task that asked Ollama for a missing model; `SetConfig` on reload; `InjectFault`.
//!
//! Cadence: the first summary within 30 s of start (its window closes at 15 s and the model gets
//! 15 s), then every `llm.interval`, the model getting what is left of 3 minutes before the
//! template words the window instead, so a slow model never leaves operators waiting; sooner once
//! `llm.burst_anomalies` new anomalies have arrived, but never closer together than
//! `llm.min_interval`, so a flood cannot make it call the model back to back.
//!
//! The daemon computes the facts ([`crate::summary`]); the model only words them. The call runs
//! in a spawned task with a hard timeout, so a slow model never stalls this mailbox; while it
//! runs, new anomalies go into the next window. Whenever the model is disabled, unreachable,
//! slow, missing, or writes something the facts do not support, the template writes the summary
//! from the same facts (`generated_by: "fallback"`), `/status` shows the model inactive with the
//! reason, and calls resume after a backoff, by themselves.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use crate::actors::Fault;
use crate::clock::Clock;
use crate::config::LlmConfig;
use crate::detection::Ongoing;
use crate::domain::{SensorId, Summary, SummaryAuthor};
use crate::health::LlmState;
use crate::ingress::Ingress;
use crate::journal::Event;
use crate::llm::{LlmClient, LlmError};
use crate::store::Store;
use crate::summary::{self, Condition, Facts, FactsBuilder};

/// How often the summarizer looks at the store.
const TICK: Duration = Duration::from_secs(1);
/// The first window closes this soon after start (or sooner with a shorter interval), and the
/// model gets at most [`FIRST_ANSWER`] to word it: the first summary is out within 30 s.
const FIRST_SUMMARY: Duration = Duration::from_secs(15);
const FIRST_ANSWER: Duration = Duration::from_secs(15);
/// Operators get a summary at least this often: a window closes every `llm.interval`, and the
/// model gets what is left of this gap (never less than [`LEAST_ANSWER`]) before the template
/// writes that window's summary instead.
const LONGEST_GAP: Duration = Duration::from_secs(180);
const LEAST_ANSWER: Duration = Duration::from_secs(5);
/// Anomalies taken from the store per tick; a flood is summarised over several ticks.
const FOLLOW_BATCH: usize = 50_000;
/// Longest wait before calling a failing model again. The wait starts at one summary interval
/// (the model is tried again for the next summary) and doubles with each further failure.
const RETRY_MAX: Duration = Duration::from_secs(600);

pub struct Summarizer;

pub struct SummarizerArgs {
    pub config: LlmConfig,
    pub store: Arc<Store>,
    /// Where the detectors' episode state is, for the conditions still in progress.
    pub ingress: Arc<Ingress>,
    pub clock: Clock,
}

pub enum SummarizerMsg {
    Tick,
    /// The model's answer (or why there is none) for the facts of a closed window.
    Worded {
        facts: Box<Facts>,
        outcome: Result<String, LlmError>,
        elapsed: Duration,
    },
    /// The outcome of asking Ollama to pull the model.
    Pulled(Result<(), LlmError>),
    SetConfig(LlmConfig),
    InjectFault(Fault),
}

pub struct SummarizerState {
    config: LlmConfig,
    client: Option<LlmClient>,
    store: Arc<Store>,
    ingress: Arc<Ingress>,
    clock: Clock,
    window: FactsBuilder,
    /// The last anomaly sequence number taken into a window.
    cursor: u64,
    last_summary: Instant,
    next_due: Instant,
    in_flight: bool,
    /// No window closed yet: the first summary has a shorter deadline.
    first: bool,
    failures: u32,
    retry_after: Option<Instant>,
    pull_requested: bool,
    ticker: Option<JoinHandle<()>>,
}

impl Actor for Summarizer {
    type Msg = SummarizerMsg;
    type State = SummarizerState;
    type Arguments = SummarizerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SummarizerMsg>,
        args: SummarizerArgs,
    ) -> Result<SummarizerState, ActorProcessingErr> {
        let now = Instant::now();
        let client = make_client(&args.config, &args.store);
        let resume = args.store.summaries.summarized_through();
        let state = SummarizerState {
            // A restarted summarizer carries on from the last window its predecessor closed; at
            // start, anomalies restored from Redis were summarised by the previous run.
            window: FactsBuilder::with_units(
                resume.map_or(args.clock.now(), |(_, window_end)| window_end),
                summary::units_of(&args.store.config()),
            ),
            cursor: resume.map_or(args.store.journal.newest_seq(), |(cursor, _)| cursor),
            first: true,
            last_summary: now,
            next_due: now + args.config.interval.min(FIRST_SUMMARY),
            config: args.config,
            client,
            store: args.store,
            ingress: args.ingress,
            clock: args.clock,
            in_flight: false,
            failures: 0,
            retry_after: None,
            pull_requested: false,
            ticker: None,
        };
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<SummarizerMsg>,
        state: &mut SummarizerState,
    ) -> Result<(), ActorProcessingErr> {
        state.ticker = Some(myself.send_interval(TICK, || SummarizerMsg::Tick));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SummarizerMsg>,
        message: SummarizerMsg,
        state: &mut SummarizerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SummarizerMsg::Tick => state.on_tick(&myself),
            SummarizerMsg::Worded { facts, outcome, elapsed } => state.on_worded(&myself, *facts, outcome, elapsed),
            SummarizerMsg::Pulled(outcome) => state.on_pulled(outcome),
            SummarizerMsg::SetConfig(config) => state.on_set_config(config),
            SummarizerMsg::InjectFault(fault) => return fault.trigger("llm"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SummarizerMsg>,
        state: &mut SummarizerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }
}

fn make_client(config: &LlmConfig, store: &Store) -> Option<LlmClient> {
    if config.url.is_empty() {
        store.health.set_llm(|llm| {
            llm.state = LlmState::Disabled;
            llm.model = config.model.clone();
            llm.reason = Some("llm.url is empty: summaries come from the template".into());
        });
        return None;
    }
    match LlmClient::new(&config.url, &config.model) {
        Ok(client) => {
            // A new server or model has not answered yet, whatever the previous one did.
            store.health.set_llm(|llm| {
                llm.model = config.model.clone();
                llm.state = LlmState::NotYetContacted;
                llm.reason = None;
                llm.last_call = None;
            });
            Some(client)
        }
        Err(err) => {
            store.health.set_llm(|llm| {
                llm.state = LlmState::Inactive;
                llm.model = config.model.clone();
                llm.reason = Some(err.to_string());
            });
            None
        }
    }
}

impl SummarizerState {
    fn on_tick(&mut self, myself: &ActorRef<SummarizerMsg>) {
        self.follow();
        let now = Instant::now();
        let burst = self.window.anomaly_count() >= self.config.burst_anomalies
            && now.saturating_duration_since(self.last_summary) >= self.config.min_interval;
        if self.in_flight || !(now >= self.next_due || burst) {
            return;
        }
        let facts = self.close_window();
        self.last_summary = now;
        self.next_due = now + self.config.interval;
        let callable = self.retry_after.is_none_or(|retry| now >= retry);
        match (&self.client, callable) {
            (Some(client), true) => self.ask_model(myself, client.clone(), facts),
            _ => {
                self.first = false;
                self.publish_fallback(&facts, None);
            }
        }
    }

    /// Takes the anomalies journalled since the last tick into the open window.
    fn follow(&mut self) {
        loop {
            let followed = self.store.journal.after(self.cursor, FOLLOW_BATCH);
            if followed.missed > 0 {
                tracing::warn!(component = %"llm", missed = followed.missed, "journal entries gone before they were summarised");
            }
            let Some(last) = followed.entries.last() else { return };
            self.cursor = last.seq;
            for entry in &followed.entries {
                if let Event::Anomaly(anomaly) = &entry.event {
                    self.window.add(anomaly);
                }
            }
            if followed.entries.len() < FOLLOW_BATCH {
                return;
            }
        }
    }

    fn close_window(&mut self) -> Facts {
        let now = self.clock.now();
        let ongoing = ongoing_conditions(&self.ingress);
        let facts = self.window.finish(now, &ongoing);
        self.window = FactsBuilder::with_units(now, summary::units_of(&self.store.config()));
        self.store.summaries.set_summarized_through(self.cursor, now);
        facts
    }

    fn ask_model(&mut self, myself: &ActorRef<SummarizerMsg>, client: LlmClient, facts: Facts) {
        self.in_flight = true;
        let prompt = summary::prompt(&facts);
        let num_ctx = summary::context_size(&prompt, self.config.max_tokens, self.config.max_context);
        let budget = if self.first { FIRST_ANSWER } else { LONGEST_GAP.saturating_sub(self.config.interval) };
        let timeout = self.config.timeout.min(budget.max(LEAST_ANSWER));
        self.first = false;
        let (temperature, max_tokens) = (self.config.temperature, self.config.max_tokens);
        let myself = myself.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = client.generate(&prompt, temperature, max_tokens, num_ctx, timeout).await;
            let elapsed = started.elapsed();
            let _ = myself.cast(SummarizerMsg::Worded { facts: Box::new(facts), outcome, elapsed });
        });
    }

    fn on_worded(
        &mut self,
        myself: &ActorRef<SummarizerMsg>,
        facts: Facts,
        outcome: Result<String, LlmError>,
        elapsed: Duration,
    ) {
        self.in_flight = false;
        self.store.telemetry.llm_request_finished(elapsed);
        let now = self.clock.now();
        let text = outcome.map_err(|err| err.to_string()).and_then(|text| {
            let text = summary::clean(&text);
            let known: Vec<SensorId> = self.store.config().sensors.ids.iter().map(|id| SensorId::new(id)).collect();
            summary::check_grounded(&text, &facts, &known)
                .map(|()| text)
                .map_err(|why| format!("summary refused, not supported by the facts: {why}"))
        });
        match text {
            Ok(text) => {
                self.failures = 0;
                self.retry_after = None;
                self.store.health.set_llm(|llm| {
                    llm.state = LlmState::Active;
                    llm.reason = None;
                    llm.last_call = Some(now);
                });
                tracing::info!(component = %"llm", elapsed_ms = elapsed.as_millis() as u64, anomalies = facts.anomaly_count, "summary written by the model");
                self.publish(&facts, text, SummaryAuthor::LlmSummarizer, now);
            }
            Err(reason) => {
                let missing = reason.starts_with("model missing");
                self.publish_fallback(&facts, Some(reason));
                if missing && self.config.pull_missing_model && !self.pull_requested {
                    self.request_pull(myself);
                }
            }
        }
    }

    /// Writes the template's summary; `failure` is why the model was not used, if it was asked.
    fn publish_fallback(&mut self, facts: &Facts, failure: Option<String>) {
        let now = self.clock.now();
        if let Some(reason) = failure {
            self.failures += 1;
            let doublings = self.failures.min(16).saturating_sub(1);
            let wait = self.config.interval.saturating_mul(1 << doublings).min(RETRY_MAX);
            // Counted from when the window closed, so a retry lines up with a summary that is due.
            self.retry_after = Some(self.last_summary + wait);
            tracing::warn!(
                component = %"llm", error = %reason, retry_in_s = wait.as_secs(),
                "model unavailable; summary written from the template"
            );
            self.store.health.set_llm(|llm| {
                llm.state = LlmState::Inactive;
                llm.reason = Some(reason);
                llm.last_call = Some(now);
            });
        }
        self.publish(facts, summary::template(facts), SummaryAuthor::Fallback, now);
    }

    fn publish(&self, facts: &Facts, text: String, author: SummaryAuthor, now: DateTime<Utc>) {
        let summary = Summary {
            summary: text,
            timestamp: now,
            generated_by: author,
            model: self.config.model.clone(),
            anomaly_count: facts.anomaly_count,
            window_start: facts.window_start,
            window_end: facts.window_end,
        };
        self.store.record_summary(summary, now);
    }

    fn request_pull(&mut self, myself: &ActorRef<SummarizerMsg>) {
        let Some(client) = self.client.clone() else { return };
        self.pull_requested = true;
        tracing::info!(component = %"llm", model = %self.config.model, "asking Ollama to pull the missing model");
        let timeout = self.config.timeout.max(Duration::from_secs(600));
        let myself = myself.clone();
        tokio::spawn(async move {
            let outcome = client.pull_model(timeout).await;
            let _ = myself.cast(SummarizerMsg::Pulled(outcome));
        });
    }

    fn on_pulled(&mut self, outcome: Result<(), LlmError>) {
        match outcome {
            Ok(()) => {
                tracing::info!(component = %"llm", model = %self.config.model, "model pulled; calling it again");
                self.retry_after = None;
                self.failures = 0;
            }
            Err(err) => {
                tracing::error!(component = %"llm", model = %self.config.model, error = %err, "model pull failed")
            }
        }
    }

    fn on_set_config(&mut self, config: LlmConfig) {
        let client_changed = (&config.url, &config.model) != (&self.config.url, &self.config.model);
        self.next_due = self.last_summary + config.interval;
        if client_changed {
            self.client = make_client(&config, &self.store);
            self.retry_after = None;
            self.failures = 0;
            self.pull_requested = false;
        }
        self.config = config;
    }
}

/// The drifts and silences in progress, from the detectors' state.
fn ongoing_conditions(ingress: &Ingress) -> Vec<Condition> {
    let mut conditions = Vec::new();
    for lane in ingress.lanes() {
        for (_, inbox) in lane.inboxes().iter() {
            let inbox = inbox.lock();
            let detector = &inbox.detector;
            let (sensor_id, parameter) = (detector.sensor_id().clone(), detector.parameter().clone());
            conditions.extend(detector.ongoing().map(|ongoing| match ongoing {
                Ongoing::Drifting { since, value } => Condition::Drifting { sensor_id, parameter, since, value },
                Ongoing::Silent { since } => Condition::Silent { sensor_id, parameter, since },
            }));
        }
    }
    conditions
}
