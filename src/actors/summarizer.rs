//! `summarizer` — turns the anomalies of each window into an operator summary.
//!
//! Messages: `Tick` from its own one-second timer (it follows the store's new anomalies and
//! decides whether a summary is due); `Worded` from the task that called the model; `Pulled`
//! from the task that asked Ollama for a missing model; `SetConfig` on reload; `Flush` from the
//! supervisor at shutdown; `InjectFault`.
//!
//! Cadence: the first summary within 30 s of start (its window closes at 15 s and the model gets
//! 15 s), then every `llm.interval`, the model getting what is left of 3 minutes before the
//! template words the window instead, so a slow model never leaves operators waiting; sooner once
//! `llm.burst_anomalies` new anomalies have arrived, but never closer together than
//! `llm.min_interval`, so a flood cannot make it call the model back to back.
//!
//! The daemon computes the facts ([`crate::summary`]); the model fills in a form of choices built
//! from them and the daemon writes the note ([`crate::wording`]). The call runs in a spawned task
//! with a hard timeout, so a slow model never stalls this mailbox; while it runs, new anomalies
//! go into the next window. Whenever the model is disabled, unreachable, slow, missing, or its
//! answer is refused, the template writes the summary from the same facts
//! (`generated_by: "fallback"`) and `/status` says which of these it was.
//!
//! Failure policy — what survives this actor, and what does not:
//!
//! - **The cursor moves only when a summary is published.** `summarized_through` in the store is
//!   the last anomaly of the last *published* window; a summarizer that crashes while the model
//!   is thinking leaves it where it was, and its successor summarises that window again (with
//!   what came since).
//! - **Nothing outlives the actor.** The model call and the pull are held as
//!   [`AbortOnDropHandle`]s in the state: when the actor stops or crashes, they are aborted (the
//!   connection dropped), so an orphaned answer can neither arrive nor keep Ollama busy.
//! - **The backoff outlives it.** Failed calls in a row and when to call again are kept in the
//!   store ([`LlmRetry`]), so a summarizer restarted in a crash loop does not call a failing
//!   model at every start.
//! - **A stop is graceful.** `Flush` closes the open window and publishes it (the model gets at
//!   most `FLUSH_ANSWER`, then the template), and the summarizer takes no further window; the
//!   supervisor sends it after the detectors have drained and before the mirror does, so the
//!   last window reaches Redis.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::actors::Fault;
use crate::actors::traced;
use crate::backoff;
use crate::clock::Clock;
use crate::config::LlmConfig;
use crate::detection::Ongoing;
use crate::domain::{SensorId, Summary, SummaryAuthor};
use crate::health::LlmState;
use crate::ingress::Ingress;
use crate::journal::Event;
use crate::llm::{LlmClient, LlmError};
use crate::store::{LlmRetry, Store};
use crate::summary::{self, Condition, Facts, FactsBuilder};
use crate::wording::{self, Attempt, Failure};

mod claims;
pub use claims::{SummaryClaims, boundary_after};

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
/// At a stop, the model gets this long to word the last window before the template does.
const FLUSH_ANSWER: Duration = Duration::from_secs(2);
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
    /// Claims in Redis, so that the daemons of a plant write each window once (the supervisor
    /// gives them when `redis.url` is set); `None`: windows follow this daemon's own cadence.
    pub claims: Option<SummaryClaims>,
}

pub enum SummarizerMsg {
    Tick,
    /// The model's answer (or why there is none) for the window in flight.
    Worded(Box<Attempt>),
    /// The outcome of asking Ollama to pull the model.
    Pulled(Result<(), LlmError>),
    SetConfig(LlmConfig),
    /// Whether this daemon won the claim on the window it closed (see `claims`).
    Claimed(bool),
    /// Publish the open window (and the one in flight, if any) and take no further window;
    /// reply once published, within `FLUSH_ANSWER` and a little. For the supervisor's stop.
    Flush {
        reply: RpcReplyPort<()>,
    },
    InjectFault(Fault),
}

/// A closed window waiting for the model's answer.
struct InFlight {
    facts: Facts,
    /// The last anomaly in the window: the store's cursor once it is published.
    cursor: u64,
    /// Aborted when dropped: with the state when the actor stops or crashes.
    _call: AbortOnDropHandle<()>,
}

/// A window closed on a wall-clock boundary whose writer is being decided, or that a peer won.
struct Claim {
    facts: Facts,
    cursor: u64,
    window_end: chrono::DateTime<chrono::Utc>,
    /// A peer won: its summary is awaited until then, and the window claimed again after.
    peer_until: Option<Instant>,
    /// The claim on its way; aborted with the state.
    _task: Option<AbortOnDropHandle<()>>,
}

pub struct SummarizerState {
    config: LlmConfig,
    /// With Redis: windows close on wall-clock boundaries and are claimed, so daemons of one
    /// plant write each once.
    claims: Option<SummaryClaims>,
    claim: Option<Claim>,
    /// The boundary `next_due` stands for, when windows are claimed.
    due_boundary: Option<chrono::DateTime<chrono::Utc>>,
    client: Option<LlmClient>,
    store: Arc<Store>,
    ingress: Arc<Ingress>,
    clock: Clock,
    window: FactsBuilder,
    /// The last anomaly sequence number taken into the open window.
    cursor: u64,
    last_summary: Instant,
    next_due: Instant,
    in_flight: Option<InFlight>,
    /// No window closed yet: the first summary has a shorter deadline.
    first: bool,
    pull: Option<AbortOnDropHandle<()>>,
    pull_requested: bool,
    /// Flushed: no further window is taken.
    stopped: bool,
    ticker: Option<AbortOnDropHandle<()>>,
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
        // A restarted summarizer carries on from the last window its predecessor published. The
        // first one of the process starts now, and notes so at once: anomalies restored from
        // Redis were summarised by the previous run, and a successor that takes over before
        // anything is published must still start here, not at its own start.
        let summaries = &args.store.summaries;
        let (cursor, window_start) = summaries.summarized_through().unwrap_or_else(|| {
            let start = (args.store.journal.newest_seq(), args.clock.now());
            summaries.set_summarized_through(start.0, start.1);
            start
        });
        let claims = args.claims;
        let state = SummarizerState {
            claims,
            claim: None,
            due_boundary: None,
            window: FactsBuilder::with_units(window_start, summary::units_of(&args.store.config())),
            cursor,
            first: true,
            last_summary: now,
            next_due: now + args.config.interval.min(FIRST_SUMMARY),
            config: args.config,
            client,
            store: args.store,
            ingress: args.ingress,
            clock: args.clock,
            in_flight: None,
            pull: None,
            pull_requested: false,
            stopped: false,
            ticker: None,
        };
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<SummarizerMsg>,
        state: &mut SummarizerState,
    ) -> Result<(), ActorProcessingErr> {
        state.ticker = Some(AbortOnDropHandle::new(myself.send_interval(TICK, || SummarizerMsg::Tick)));
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
            SummarizerMsg::Worded(attempt) => state.on_worded(&myself, *attempt),
            SummarizerMsg::Claimed(won) => state.on_claimed(&myself, won),
            SummarizerMsg::Pulled(outcome) => state.on_pulled(outcome),
            SummarizerMsg::SetConfig(config) => state.on_set_config(config),
            SummarizerMsg::Flush { reply } => {
                state.on_flush().await;
                let _ = reply.send(());
            }
            SummarizerMsg::InjectFault(fault) => return fault.trigger("llm"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SummarizerMsg>,
        state: &mut SummarizerState,
    ) -> Result<(), ActorProcessingErr> {
        // The ticker, the call and the pull are aborted as the state is dropped, here or after
        // a crash.
        state.ticker = None;
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
        if self.stopped {
            return;
        }
        self.follow();
        if self.claim.is_some() {
            self.check_claim(myself);
            return;
        }
        let now = Instant::now();
        let burst = self.window.anomaly_count() >= self.config.burst_anomalies
            && now.saturating_duration_since(self.last_summary) >= self.config.min_interval;
        if self.in_flight.is_some() || !(now >= self.next_due || burst) {
            return;
        }
        let boundary = if now >= self.next_due { self.due_boundary.take() } else { None };
        let (facts, cursor) = self.close_window_at(boundary);
        self.last_summary = now;
        self.schedule_next(now);
        if let (Some(claims), Some(window_end)) = (self.claims.clone(), boundary) {
            self.start_claim(myself, claims, Claim { facts, cursor, window_end, peer_until: None, _task: None });
            return;
        }
        self.word(myself, facts, cursor, now);
    }

    /// The next window's close: `llm.interval` from now, or with claims the next wall-clock
    /// boundary, so that every daemon of the plant closes the same window.
    fn schedule_next(&mut self, now: Instant) {
        let Some(_) = &self.claims else {
            self.next_due = now + self.config.interval;
            return;
        };
        let wall = self.clock.now();
        let boundary = boundary_after(wall, self.config.interval);
        self.next_due = now + (boundary - wall).to_std().unwrap_or(self.config.interval);
        self.due_boundary = Some(boundary);
    }

    fn start_claim(&mut self, myself: &ActorRef<SummarizerMsg>, claims: SummaryClaims, mut claim: Claim) {
        let (myself, window_end) = (myself.clone(), claim.window_end);
        let task = traced::spawn(async move {
            let won = claims.claim(window_end).await;
            let _ = myself.cast(SummarizerMsg::Claimed(won));
        });
        claim.peer_until = None;
        claim._task = Some(AbortOnDropHandle::new(task));
        self.claim = Some(claim);
    }

    fn on_claimed(&mut self, myself: &ActorRef<SummarizerMsg>, won: bool) {
        let Some(mut claim) = self.claim.take() else { return };
        if won {
            self.word(myself, claim.facts, claim.cursor, Instant::now());
            return;
        }
        let ttl = self.claims.as_ref().map_or(self.config.timeout, |claims| claims.ttl);
        tracing::debug!(window_end = %claim.window_end, "a peer writes this summary window");
        claim.peer_until = Some(Instant::now() + ttl);
        claim._task = None;
        self.claim = Some(claim);
    }

    /// A window a peer won: its summary arrived (the cursor moves), or the claim ran out and the
    /// window is claimed again.
    fn check_claim(&mut self, myself: &ActorRef<SummarizerMsg>) {
        let Some(claim) = &self.claim else { return };
        let Some(until) = claim.peer_until else { return };
        let window_end = claim.window_end;
        let written = self
            .store
            .summaries
            .recent(self.store.config().store.max_summaries)
            .iter()
            .any(|summary| summary.window_end == window_end);
        if written {
            let cursor = claim.cursor;
            self.claim = None;
            self.store.summaries.set_summarized_through(cursor, window_end);
        } else if Instant::now() >= until
            && let (Some(claims), Some(claim)) = (self.claims.clone(), self.claim.take())
        {
            tracing::info!(window_end = %window_end, "the peer that claimed the summary window wrote nothing; claiming it again");
            self.start_claim(myself, claims, claim);
        }
    }

    /// Words a closed window: through the model when it may be called, else the template.
    fn word(&mut self, myself: &ActorRef<SummarizerMsg>, facts: Facts, cursor: u64, now: Instant) {
        match self.callable_client(now) {
            Some(client) => self.ask_model(myself, client, facts, cursor),
            None => {
                self.first = false;
                self.publish(&facts, cursor, summary::template(&facts), SummaryAuthor::Fallback, false);
            }
        }
    }

    /// The client, unless there is none or a backoff is running.
    fn callable_client(&self, now: Instant) -> Option<LlmClient> {
        let retry = self.store.summaries.llm_retry();
        self.client.clone().filter(|_| retry.after.is_none_or(|after| now >= after))
    }

    /// Takes the anomalies journalled since the last tick into the open window.
    fn follow(&mut self) {
        loop {
            let followed = self.store.journal.after(self.cursor, FOLLOW_BATCH);
            if followed.missed > 0 {
                tracing::warn!(missed = followed.missed, "journal entries gone before they were summarised");
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

    /// The facts of the open window, and its last anomaly; a new window opens now. The store's
    /// cursor does not move until the summary is published.
    fn close_window(&mut self) -> (Facts, u64) {
        self.close_window_at(None)
    }

    /// [`Self::close_window`], the window ending at `end` (a wall-clock boundary) rather than now.
    fn close_window_at(&mut self, end: Option<chrono::DateTime<chrono::Utc>>) -> (Facts, u64) {
        let now = end.unwrap_or_else(|| self.clock.now());
        let ongoing = ongoing_conditions(&self.ingress);
        let facts = self.window.finish(now, &ongoing);
        self.window = FactsBuilder::with_units(now, summary::units_of(&self.store.config()));
        (facts, self.cursor)
    }

    fn settings(&self, timeout: Duration) -> (wording::Settings, Vec<SensorId>) {
        let settings = wording::Settings {
            temperature: self.config.temperature,
            max_tokens: self.config.max_tokens,
            max_context: self.config.max_context,
            timeout,
        };
        let known = self.store.config().sensors.ids.iter().map(|id| SensorId::new(id)).collect();
        (settings, known)
    }

    fn ask_model(&mut self, myself: &ActorRef<SummarizerMsg>, client: LlmClient, facts: Facts, cursor: u64) {
        let budget = if self.first { FIRST_ANSWER } else { LONGEST_GAP.saturating_sub(self.config.interval) };
        let timeout = self.config.timeout.min(budget.max(LEAST_ANSWER));
        self.first = false;
        let (settings, known) = self.settings(timeout);
        let myself = myself.clone();
        let asked = facts.clone();
        let call = traced::spawn(async move {
            let attempt = wording::attempt(&client, &asked, settings, &known).await;
            let _ = myself.cast(SummarizerMsg::Worded(Box::new(attempt)));
        });
        self.in_flight = Some(InFlight { facts, cursor, _call: AbortOnDropHandle::new(call) });
    }

    fn on_worded(&mut self, myself: &ActorRef<SummarizerMsg>, attempt: Attempt) {
        // None: the window was published without the answer (a flush); the answer is late.
        let Some(InFlight { facts, cursor, .. }) = self.in_flight.take() else { return };
        let missing = self.conclude(&facts, cursor, attempt);
        if missing && self.config.pull_missing_model && !self.pull_requested {
            self.request_pull(myself);
        }
    }

    /// Publishes the window from the attempt's note, or from the template and says why; returns
    /// whether the model was missing.
    fn conclude(&mut self, facts: &Facts, cursor: u64, attempt: Attempt) -> bool {
        let now = self.clock.now();
        let elapsed_ms = attempt.elapsed.as_millis() as u64;
        self.store.telemetry.llm_request_finished(attempt.elapsed);
        match attempt.outcome {
            Ok(note) => {
                self.store.summaries.set_llm_retry(LlmRetry::default());
                self.store.health.set_llm(|llm| {
                    llm.state = LlmState::Active;
                    llm.reason = None;
                    llm.last_call = Some(now);
                    llm.answers_accepted += 1;
                });
                tracing::info!(elapsed_ms, anomalies = facts.anomaly_count, "summary written from the model's answer");
                self.publish(facts, cursor, note, SummaryAuthor::LlmSummarizer, true);
                false
            }
            Err(Failure::Refused(refusal)) => {
                // The model is reachable and answering: no backoff, the next window asks again.
                let reason = Failure::Refused(refusal).to_string();
                self.store.summaries.set_llm_retry(LlmRetry::default());
                tracing::warn!(elapsed_ms, error = %reason, "model's answer refused; summary written from the template");
                self.store.health.set_llm(|llm| {
                    llm.state = LlmState::Refused;
                    llm.reason = Some(reason.clone());
                    llm.last_refusal = Some(reason);
                    llm.last_call = Some(now);
                    llm.answers_refused += 1;
                });
                self.publish(facts, cursor, summary::template(facts), SummaryAuthor::Fallback, true);
                false
            }
            Err(Failure::Call(err)) => {
                let missing = matches!(err, LlmError::ModelMissing(_));
                let mut retry = self.store.summaries.llm_retry();
                retry.failures = retry.failures.saturating_add(1);
                let wait = backoff::step(self.config.interval, RETRY_MAX, retry.failures);
                // Counted from when the window closed, so a retry lines up with a summary that is due.
                retry.after = Some(self.last_summary + wait);
                self.store.summaries.set_llm_retry(retry);
                let reason = err.to_string();
                tracing::warn!(
                    error = %reason, retry_in_s = wait.as_secs(),
                    "model unavailable; summary written from the template"
                );
                self.store.health.set_llm(|llm| {
                    llm.state = LlmState::Inactive;
                    llm.reason = Some(reason);
                    llm.last_call = Some(now);
                    llm.calls_failed += 1;
                });
                self.publish(facts, cursor, summary::template(facts), SummaryAuthor::Fallback, true);
                missing
            }
        }
    }

    /// Records the summary, then moves the store's cursor past its window. `asked`: the model
    /// was asked for this window, so the summary names it.
    fn publish(&self, facts: &Facts, cursor: u64, text: String, author: SummaryAuthor, asked: bool) {
        let now = self.clock.now();
        let summary = Summary {
            summary: text,
            timestamp: now,
            generated_by: author,
            model: asked.then(|| self.config.model.clone()),
            anomaly_count: facts.anomaly_count,
            window_start: facts.window_start,
            window_end: facts.window_end,
        };
        self.store.record_summary(summary, now);
        self.store.summaries.set_summarized_through(cursor, facts.window_end);
    }

    /// The window in flight gets the template (its answer is not waited for), then the open
    /// window is closed and published, the model getting at most [`FLUSH_ANSWER`].
    async fn on_flush(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.ticker = None;
        // A window still being claimed is written here; one a peer won is the peer's.
        if let Some(claim) = self.claim.take().filter(|claim| claim.peer_until.is_none()) {
            self.publish(&claim.facts, claim.cursor, summary::template(&claim.facts), SummaryAuthor::Fallback, false);
        }
        if let Some(InFlight { facts, cursor, .. }) = self.in_flight.take() {
            tracing::info!("stopping: the window in flight is written from the template");
            self.publish(&facts, cursor, summary::template(&facts), SummaryAuthor::Fallback, true);
        }
        self.follow();
        let (facts, cursor) = self.close_window();
        if facts.window_end <= facts.window_start && facts.anomaly_count == 0 {
            return;
        }
        match self.callable_client(Instant::now()) {
            Some(client) => {
                let (settings, known) = self.settings(FLUSH_ANSWER);
                let attempt = wording::attempt(&client, &facts, settings, &known).await;
                self.conclude(&facts, cursor, attempt);
            }
            None => self.publish(&facts, cursor, summary::template(&facts), SummaryAuthor::Fallback, false),
        }
        tracing::info!(anomalies = facts.anomaly_count, "stopping: the last window is published");
    }

    fn request_pull(&mut self, myself: &ActorRef<SummarizerMsg>) {
        let Some(client) = self.client.clone() else { return };
        self.pull_requested = true;
        tracing::info!(model = %self.config.model, "asking Ollama to pull the missing model");
        let timeout = self.config.timeout.max(Duration::from_secs(600));
        let myself = myself.clone();
        let pull = traced::spawn(async move {
            let outcome = client.pull_model(timeout).await;
            let _ = myself.cast(SummarizerMsg::Pulled(outcome));
        });
        self.pull = Some(AbortOnDropHandle::new(pull));
    }

    fn on_pulled(&mut self, outcome: Result<(), LlmError>) {
        self.pull = None;
        match outcome {
            Ok(()) => {
                tracing::info!(model = %self.config.model, "model pulled; calling it again");
                self.store.summaries.set_llm_retry(LlmRetry::default());
            }
            Err(err) => {
                tracing::error!(model = %self.config.model, error = %err, "model pull failed")
            }
        }
    }

    fn on_set_config(&mut self, config: LlmConfig) {
        let client_changed = (&config.url, &config.model) != (&self.config.url, &self.config.model);
        self.next_due = self.last_summary + config.interval;
        if self.claims.is_some() {
            // Claimed windows stay on the wall-clock boundaries of the new interval.
            self.config.interval = config.interval;
            self.schedule_next(Instant::now());
        }
        if client_changed {
            self.client = make_client(&config, &self.store);
            self.store.summaries.set_llm_retry(LlmRetry::default());
            self.pull_requested = false;
            self.pull = None;
        }
        self.config = config;
    }
}

/// The drifts and silences in progress, from the detectors' state.
pub fn ongoing_conditions(ingress: &Ingress) -> Vec<Condition> {
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
