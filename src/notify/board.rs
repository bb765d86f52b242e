//! What `/status` → `notify` and the metrics say about each receiver, written by its courier as
//! deliveries succeed and fail. Kept in the store, so the counts outlive a notifier restart.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::lock;

/// How a receiver stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverState {
    /// Nothing has failed since the last delivery (or since start).
    Ok,
    /// The last delivery failed; the courier retries with backoff.
    Failing,
    /// Redis, which holds the outbox, does not answer: nothing can be queued or taken.
    OutboxUnavailable,
}

/// Where a receiver's outbox is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    /// In Redis: a restart or a receiver outage loses nothing.
    Redis,
    /// In memory (no `redis.url`): bounded, and lost when the daemon stops.
    Memory,
}

/// One receiver, as `/status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"kind": "webhook", "url": "http://pager.local:8080/hooks/wtf", "outbox": "redis",
    "state": "failing", "backlog": 3, "delivered": 41, "failures": 7, "dropped": 0,
    "last_error": "connection refused", "last_error_at": "2025-05-19T10:15:02.000Z",
    "last_delivery_at": "2025-05-19T10:14:40.000Z"}))]
pub struct ReceiverStatus {
    /// `alertmanager` or `webhook`.
    pub kind: String,
    /// Scheme, host, port and path (a query string is not shown).
    pub url: String,
    pub outbox: OutboxKind,
    pub state: ReceiverState,
    /// Notifications waiting for this receiver, or on their way.
    pub backlog: u64,
    /// Notifications it took (Alertmanager: posts, each of one or more alerts).
    pub delivered: u64,
    /// Delivery attempts that failed (each retried until `notify.max_age`).
    pub failures: u64,
    /// Notifications given up: the outbox was full, they reached `notify.max_age`, or the
    /// receiver refused them (a 4xx answer other than 408 and 429).
    pub dropped: u64,
    pub last_error: Option<String>,
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_error_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_delivery_at: Option<DateTime<Utc>>,
}

impl ReceiverStatus {
    pub fn new(kind: &str, url: String, outbox: OutboxKind) -> Self {
        Self {
            kind: kind.to_owned(),
            url,
            outbox,
            state: ReceiverState::Ok,
            backlog: 0,
            delivered: 0,
            failures: 0,
            dropped: 0,
            last_error: None,
            last_error_at: None,
            last_delivery_at: None,
        }
    }
}

#[derive(Default)]
pub struct NotifyBoard {
    receivers: Mutex<BTreeMap<String, ReceiverStatus>>,
}

impl NotifyBoard {
    /// A receiver starts being served; one already known (a notifier restarted) keeps its counts.
    pub fn register(&self, name: &str, status: ReceiverStatus) {
        lock(&self.receivers).entry(name.to_owned()).or_insert(status);
    }

    pub fn update(&self, name: &str, change: impl FnOnce(&mut ReceiverStatus)) {
        if let Some(status) = lock(&self.receivers).get_mut(name) {
            change(status);
        }
    }

    /// Every receiver by name; empty when none is configured.
    pub fn receivers(&self) -> BTreeMap<String, ReceiverStatus> {
        lock(&self.receivers).clone()
    }

    /// Notifications waiting, all receivers together.
    pub fn total_backlog(&self) -> u64 {
        lock(&self.receivers).values().map(|status| status.backlog).sum()
    }
}
