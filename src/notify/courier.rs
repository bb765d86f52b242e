//! `courier:<receiver>` — one task per receiver that takes what is due from its outbox and
//! delivers it: a JSON POST per webhook notification, a batch of alerts per Alertmanager post,
//! and, for Alertmanager, every active alarm again each `resend_interval`.
//!
//! A failed delivery is rescheduled after an exponential backoff with jitter ([`Backoff`]),
//! together with the rest of its batch, so a receiver that is down is tried once per backoff, not
//! once per notification; the first success resets it. A receiver's refusal (a 4xx other than 408
//! or 429) drops that one notification, counted, since sending it again would be refused again.
//!
//! The task is spawned by the notifier and aborted with it; everything it must not lose is in the
//! outbox, not in the task.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

use super::message::{AlertContext, webhook_body};
use super::redis_outbox::RedisOutbox;
use super::{Item, MemoryOutbox, ReceiverKind, ReceiverState, Settled, Transition};
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::NotifyConfig;
use crate::notify::Receiver;
use crate::store::Store;

/// Items taken from the outbox at once; also the most alerts in one Alertmanager post.
pub const BATCH: usize = 200;
/// How much of a receiver's answer is read, for the error message.
const MAX_ANSWER_BYTES: usize = 1024;
/// A Redis outbox is looked at this often even when nothing wakes the courier: another daemon's
/// items, and retries that came due.
const POLL: Duration = Duration::from_millis(500);
/// Alertmanager keeps an alert firing this many resend intervals after the last post.
const VALIDITY_RESENDS: i32 = 4;

/// Where a receiver's notifications wait.
#[derive(Clone)]
pub enum Outbox {
    Memory(Arc<MemoryOutbox>),
    Redis(RedisOutbox),
}

impl Outbox {
    pub async fn push(&self, items: &[Arc<Item>], now: DateTime<Utc>) -> Result<u64, String> {
        match self {
            Outbox::Memory(outbox) => {
                let before = outbox.dropped();
                for item in items {
                    outbox.push(Arc::clone(item), now);
                }
                Ok(outbox.dropped() - before)
            }
            Outbox::Redis(outbox) => outbox.push(items).await,
        }
    }

    async fn take_due(&self, now: DateTime<Utc>, max: usize) -> Result<Vec<Item>, String> {
        match self {
            Outbox::Memory(outbox) => Ok(outbox.take_due(now, max).into_iter().map(Arc::unwrap_or_clone).collect()),
            Outbox::Redis(outbox) => outbox.take_due(now, max).await,
        }
    }

    async fn settle(&self, outcomes: &[(Item, Settled)], now: DateTime<Utc>) -> Result<(), String> {
        match self {
            Outbox::Memory(outbox) => {
                for (item, outcome) in outcomes {
                    outbox.settle(&item.key, *outcome, now);
                }
                Ok(())
            }
            Outbox::Redis(outbox) => outbox.settle(outcomes).await,
        }
    }

    pub async fn backlog(&self) -> Result<u64, String> {
        match self {
            Outbox::Memory(outbox) => Ok(outbox.backlog() as u64),
            Outbox::Redis(outbox) => outbox.backlog().await,
        }
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, String> {
        match self {
            Outbox::Memory(outbox) => Ok(outbox.next_due()),
            Outbox::Redis(outbox) => outbox.next_due().await,
        }
    }
}

/// Why a delivery did not go through.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// Worth another try: no connection, no answer in time, a 5xx, 408 or 429.
    Retry(String),
    /// The receiver refused it: another try would be refused too.
    Rejected(String),
}

/// The HTTP client every courier uses: bounded in time, no proxy (receivers are on the plant's
/// network), no redirects followed, plain HTTP only (this build carries no TLS).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("wtf-monitor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))
}

/// POSTs a JSON body; reads at most `MAX_ANSWER_BYTES` of the answer.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    idempotency_key: Option<&str>,
    body: Vec<u8>,
) -> Result<(), Failure> {
    let mut request = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let mut response = request.send().await.map_err(|err| Failure::Retry(describe(&err)))?;
    let status = response.status();
    let mut answer = Vec::new();
    while answer.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => answer.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER_BYTES - answer.len())]),
            Ok(None) => break,
            // The status is what counts; a body cut short does not change it.
            Err(_) => break,
        }
    }
    if status.is_success() {
        return Ok(());
    }
    let text: String = String::from_utf8_lossy(&answer).chars().filter(|c| !c.is_control()).take(200).collect();
    let message = format!("HTTP {}: {}", status.as_u16(), text.trim());
    let retryable = status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
    Err(if retryable { Failure::Retry(message) } else { Failure::Rejected(message) })
}

/// A reqwest error as an operator reads it: what happened, never the URL (its query may hold a key).
fn describe(err: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let root = cause.to_string();
    if err.is_timeout() {
        "no answer within notify.timeout".to_owned()
    } else if err.is_connect() {
        format!("cannot connect: {root}")
    } else {
        root
    }
}

pub struct Courier {
    pub receiver: Receiver,
    pub outbox: Outbox,
    pub store: Arc<Store>,
    pub clock: Clock,
    pub client: reqwest::Client,
    pub config: NotifyConfig,
    pub wake: Arc<Notify>,
}

struct Round {
    retry: Backoff,
    /// When Alertmanager is due the whole picture again.
    next_resend: DateTime<Utc>,
    failing: bool,
    /// Redis, which holds the outbox, did not answer the last time.
    outbox_down: bool,
    rejected_logged_at: Option<DateTime<Utc>>,
}

impl Courier {
    /// Delivers until aborted.
    pub async fn run(self) {
        let mut round = Round {
            retry: Backoff::new(self.config.retry_initial, self.config.retry_max),
            next_resend: self.clock.now(),
            failing: false,
            outbox_down: false,
            rejected_logged_at: None,
        };
        loop {
            let wait = self.round(&mut round).await;
            if let Some(wait) = wait {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// One pass: the resend if due, then one batch. How long to wait before the next pass, or
    /// None to go on at once (more may be due).
    async fn round(&self, round: &mut Round) -> Option<Duration> {
        let now = self.clock.now();
        if self.is_alertmanager() && now >= round.next_resend {
            let interval = TimeDelta::from_std(self.config.alertmanager.resend_interval).unwrap_or(TimeDelta::MAX);
            round.next_resend = match self.resend(now).await {
                None => now + interval,
                Some(outcome) => match self.judge(round, outcome, self.clock.now(), 0) {
                    Verdict::Retry(at) => at,
                    Verdict::Delivered | Verdict::Dropped => now + interval,
                },
            };
        }
        let items = match self.outbox.take_due(now, BATCH).await {
            Ok(items) => {
                self.outbox_back(round);
                items
            }
            Err(error) => {
                self.outbox_unavailable(round, error);
                return Some(round.retry.next_delay());
            }
        };
        let more = items.len() == BATCH;
        if !items.is_empty() {
            let outcomes = self.deliver(round, items, now).await;
            if let Err(error) = self.outbox.settle(&outcomes, self.clock.now()).await {
                self.outbox_unavailable(round, error);
            }
        }
        self.publish_backlog().await;
        if more {
            return None;
        }
        let now = self.clock.now();
        let mut wait = match &self.outbox {
            Outbox::Memory(_) => Duration::from_secs(3600),
            Outbox::Redis(_) => POLL,
        };
        if let Ok(Some(due)) = self.outbox.next_due().await {
            wait = wait.min((due - now).to_std().unwrap_or(Duration::ZERO));
        }
        if self.is_alertmanager() {
            wait = wait.min((round.next_resend - now).to_std().unwrap_or(Duration::ZERO));
        }
        // Never spin: an item due now that could not be taken waits a moment.
        Some(wait.max(Duration::from_millis(5)))
    }

    fn is_alertmanager(&self) -> bool {
        matches!(self.receiver.kind, ReceiverKind::Alertmanager { .. })
    }

    /// Delivers a batch; returns how each item is to be settled.
    async fn deliver(&self, round: &mut Round, items: Vec<Item>, now: DateTime<Utc>) -> Vec<(Item, Settled)> {
        let max_age = TimeDelta::from_std(self.config.max_age).unwrap_or(TimeDelta::MAX);
        let (stale, mut items): (Vec<Item>, Vec<Item>) = items.into_iter().partition(|item| now - item.at > max_age);
        let mut outcomes = Vec::with_capacity(stale.len() + items.len());
        if !stale.is_empty() {
            self.store.notify.update(&self.receiver.name, |status| status.dropped += stale.len() as u64);
            tracing::warn!(
                receiver = %self.receiver.name, dropped = stale.len(),
                "notifications older than notify.max_age dropped undelivered"
            );
            outcomes.extend(stale.into_iter().map(|item| (item, Settled::Dropped)));
        }
        // The journal's order; ties (one journal time) raised before cleared.
        items.sort_by_key(|item| (item.at, rank(item.transition)));
        match &self.receiver.kind {
            ReceiverKind::Webhook { url, token, .. } => {
                let mut queue = items.into_iter();
                while let Some(item) = queue.next() {
                    let body = webhook_body(&item);
                    let outcome = post_json(&self.client, url, token.as_deref(), Some(&item.key), body).await;
                    match self.judge(round, outcome, self.clock.now(), 1) {
                        Verdict::Delivered => outcomes.push((item, Settled::Delivered)),
                        Verdict::Dropped => outcomes.push((item, Settled::Dropped)),
                        Verdict::Retry(at) => {
                            // The receiver is away: the rest of the batch waits with it.
                            outcomes.push((item, Settled::Retry { at }));
                            outcomes.extend(queue.by_ref().map(|rest| (rest, Settled::Later { at })));
                        }
                    }
                }
            }
            ReceiverKind::Alertmanager { url } => {
                let alerts = self.alerts_for(&items);
                let body = serde_json::to_vec(&alerts).unwrap_or_default();
                let outcome = post_json(&self.client, &format!("{url}/api/v2/alerts"), None, None, body).await;
                let settled = match self.judge(round, outcome, self.clock.now(), items.len() as u64) {
                    Verdict::Delivered => Settled::Delivered,
                    Verdict::Dropped => Settled::Dropped,
                    Verdict::Retry(at) => Settled::Retry { at },
                };
                outcomes.extend(items.into_iter().map(|item| (item, settled)));
            }
        }
        outcomes
    }

    fn context(&self) -> (Option<Arc<crate::domain::Summary>>, &NotifyConfig) {
        (self.store.summaries.latest(), &self.config)
    }

    fn valid_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let resend = TimeDelta::from_std(self.config.alertmanager.resend_interval).unwrap_or(TimeDelta::MAX);
        now.checked_add_signed(resend * VALIDITY_RESENDS).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The alerts that tell Alertmanager what the items say.
    fn alerts_for(&self, items: &[Item]) -> Vec<super::message::Alert> {
        let (summary, config) = self.context();
        let context = AlertContext {
            labels: &config.alertmanager.labels,
            external_url: &config.alertmanager.external_url,
            summary: summary.as_ref().map(|summary| summary.summary.as_str()),
        };
        let valid_until = self.valid_until(self.clock.now());
        items
            .iter()
            .map(|item| match item.transition {
                Transition::Raised | Transition::Unshelved | Transition::Acknowledged => {
                    context.firing(&item.alarm, valid_until)
                }
                Transition::Cleared => context.resolved(&item.alarm, item.alarm.cleared_at.unwrap_or(item.at)),
                Transition::Shelved => context.resolved(&item.alarm, item.at),
            })
            .collect()
    }

    /// Every active, unshelved alarm posted again, so Alertmanager keeps them firing (and learns of
    /// any it missed while it was away). Not through the outbox: it is a fresh picture each time.
    /// None when no alarm is active (nothing is posted).
    async fn resend(&self, now: DateTime<Utc>) -> Option<Result<(), Failure>> {
        let active: Vec<_> = self
            .store
            .alarms()
            .into_iter()
            .filter(|alarm| alarm.cleared_at.is_none() && !alarm.is_shelved(now))
            .collect();
        if active.is_empty() {
            return None;
        }
        let (summary, config) = self.context();
        let context = AlertContext {
            labels: &config.alertmanager.labels,
            external_url: &config.alertmanager.external_url,
            summary: summary.as_ref().map(|summary| summary.summary.as_str()),
        };
        let ReceiverKind::Alertmanager { url } = &self.receiver.kind else { return None };
        let endpoint = format!("{url}/api/v2/alerts");
        let valid_until = self.valid_until(now);
        for chunk in active.chunks(BATCH) {
            let alerts: Vec<_> = chunk.iter().map(|alarm| context.firing(alarm, valid_until)).collect();
            let body = serde_json::to_vec(&alerts).unwrap_or_default();
            if let Err(failure) = post_json(&self.client, &endpoint, None, None, body).await {
                return Some(Err(failure));
            }
        }
        Some(Ok(()))
    }

    /// Records how a delivery of `count` notifications ended (0 for a resend) and says what to do.
    fn judge(&self, round: &mut Round, outcome: Result<(), Failure>, now: DateTime<Utc>, count: u64) -> Verdict {
        let name = &self.receiver.name;
        match outcome {
            Ok(()) => {
                round.retry.reset();
                if round.failing {
                    round.failing = false;
                    tracing::info!(receiver = %name, "receiver reachable again; delivering the backlog");
                    // Alertmanager gets the whole picture at once, not at the next resend.
                    round.next_resend = now;
                }
                self.store.notify.update(name, |status| {
                    status.state = ReceiverState::Ok;
                    status.delivered += 1;
                    status.last_delivery_at = Some(now);
                });
                Verdict::Delivered
            }
            Err(Failure::Retry(error)) => {
                let delay = round.retry.next_delay();
                if !round.failing {
                    round.failing = true;
                    tracing::warn!(
                        receiver = %name, error = %error,
                        "delivery failed; retrying with backoff"
                    );
                }
                self.store.notify.update(name, |status| {
                    status.state = ReceiverState::Failing;
                    status.failures += 1;
                    status.last_error = Some(error);
                    status.last_error_at = Some(now);
                });
                Verdict::Retry(now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX))
            }
            Err(Failure::Rejected(error)) => {
                if round.rejected_logged_at.is_none_or(|at| now - at >= TimeDelta::seconds(10)) {
                    round.rejected_logged_at = Some(now);
                    tracing::warn!(
                        receiver = %name, error = %error,
                        "the receiver refused a notification; it is dropped"
                    );
                }
                self.store.notify.update(name, |status| {
                    status.dropped += count;
                    status.last_error = Some(error);
                    status.last_error_at = Some(now);
                });
                Verdict::Dropped
            }
        }
    }

    fn outbox_unavailable(&self, round: &mut Round, error: String) {
        if !round.outbox_down {
            round.outbox_down = true;
            tracing::warn!(receiver = %self.receiver.name, error = %error, "redis, which holds the outbox, does not answer");
        }
        let now = self.clock.now();
        self.store.notify.update(&self.receiver.name, |status| {
            status.state = ReceiverState::OutboxUnavailable;
            status.last_error = Some(format!("outbox: {error}"));
            status.last_error_at = Some(now);
        });
    }

    fn outbox_back(&self, round: &mut Round) {
        if !round.outbox_down {
            return;
        }
        round.outbox_down = false;
        tracing::info!(receiver = %self.receiver.name, "the outbox in redis answers again");
        let state = if round.failing { ReceiverState::Failing } else { ReceiverState::Ok };
        self.store.notify.update(&self.receiver.name, |status| status.state = state);
    }

    async fn publish_backlog(&self) {
        if let Ok(backlog) = self.outbox.backlog().await {
            self.store.notify.update(&self.receiver.name, |status| status.backlog = backlog);
        }
    }
}

/// What a delivery's outcome means for the notifications it carried.
enum Verdict {
    Delivered,
    Retry(DateTime<Utc>),
    Dropped,
}

fn rank(transition: Transition) -> u8 {
    match transition {
        Transition::Raised => 0,
        Transition::Unshelved => 1,
        Transition::Acknowledged => 2,
        Transition::Shelved => 3,
        Transition::Cleared => 4,
    }
}
