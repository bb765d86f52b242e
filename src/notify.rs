//! Alarm notifications to the tools the plant already runs: Prometheus Alertmanager and webhooks,
//! through an outbox that survives a restart and a receiver's outage.
//!
//! ```text
//! journal ──► notifier ──► outbox (Redis, or memory) ──► courier:<receiver> ──► POST
//!   (alarm     (transitions    one queue per receiver,      one task per receiver:
//!    events)    per alarm)     keyed by idempotency key      retries, backoff, jitter
//! ```
//!
//! - The notifier ([`crate::actors::notifier`]) follows the journal's alarm events and keeps the
//!   last state it saw of each alarm ([`AlarmTracker`]), from which it derives the transitions
//!   `raised`, `cleared`, `acknowledged` (and, for Alertmanager, `shelved` and `unshelved`).
//! - Each transition a receiver wants becomes an [`Item`] in that receiver's outbox, keyed by its
//!   idempotency key `<alarm id>:<transition>`: the same transition queued twice is one item, and
//!   a delivered key is remembered for `notify.dedup_window`, so it is never delivered again.
//! - With Redis (`redis.url` set) the outbox lives in Redis ([`redis_outbox`]): a daemon killed
//!   with a backlog finds it again at start. A courier claims a key atomically (`SET … NX PX`)
//!   before sending and marks it delivered after, so two daemons sharing one Redis send each
//!   notification once between them. Without Redis the outbox is in memory ([`MemoryOutbox`]),
//!   bounded, and lost with the process; `/status` says which.
//! - Delivery is at least once with an idempotency key: a daemon that dies between a receiver's
//!   `2xx` and the mark can send that one notification again when its claim expires, and the
//!   receiver can tell by the key. Nothing else is ever sent twice.
//!
//! What each receiver gets:
//!
//! - **Alertmanager** (`notify.alertmanager.urls`, each URL its own receiver, as Prometheus does
//!   for an HA pair): a raised alarm is posted firing at once; every active, unshelved alarm is
//!   posted again every `resend_interval`, valid for four of them; a cleared alarm is posted with
//!   `endsAt`. Shelving an alarm resolves it in Alertmanager (an operator took it out of service)
//!   and unshelving one still active fires it again.
//! - **Webhooks**: a JSON POST per transition among the configured `events`.
//! - A **shelved** alarm is not sent: its transitions while shelved are left out. A **suppressed**
//!   alarm (its sensor is silent) is still sent, marked `suppressed`: the dropout itself pages, and
//!   an Alertmanager inhibit rule on `sensor_id` can mute the rest while it lasts.

mod board;
pub mod courier;
mod memory_outbox;
pub mod message;
pub mod redis_outbox;
mod tracker;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use board::{NotifyBoard, OutboxKind, ReceiverState, ReceiverStatus};
pub use memory_outbox::{MemoryOutbox, Settled};
pub use tracker::AlarmTracker;

use crate::alarms::Alarm;
use crate::config::{NotifyConfig, NotifyEvent};

/// A change in an alarm's life that a receiver may be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    Raised,
    Cleared,
    Acknowledged,
    /// An operator shelved it (Alertmanager only: it resolves there).
    Shelved,
    /// Its shelve ended, by hand or at expiry (Alertmanager only: fires again if still active).
    Unshelved,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Raised => "raised",
            Transition::Cleared => "cleared",
            Transition::Acknowledged => "acknowledged",
            Transition::Shelved => "shelved",
            Transition::Unshelved => "unshelved",
        }
    }

    /// The webhook event this transition is, if it is one.
    pub fn event(self) -> Option<NotifyEvent> {
        match self {
            Transition::Raised => Some(NotifyEvent::Raised),
            Transition::Cleared => Some(NotifyEvent::Cleared),
            Transition::Acknowledged => Some(NotifyEvent::Acknowledged),
            Transition::Shelved | Transition::Unshelved => None,
        }
    }
}

/// One notification waiting in an outbox: a transition of an alarm, as the alarm was then.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// `<alarm id>:<transition>`; shelves, which can come and go, add their time in ms.
    pub key: String,
    pub transition: Transition,
    pub alarm: Alarm,
    /// When the transition was journalled.
    #[serde(with = "crate::domain::rfc3339")]
    pub at: DateTime<Utc>,
    /// Delivery attempts that failed so far.
    #[serde(default)]
    pub attempts: u32,
}

impl Item {
    pub fn new(transition: Transition, alarm: &Alarm, at: DateTime<Utc>) -> Self {
        let key = match transition {
            Transition::Shelved | Transition::Unshelved => {
                format!("{}:{}:{}", alarm.id, transition.as_str(), at.timestamp_millis())
            }
            _ => format!("{}:{}", alarm.id, transition.as_str()),
        };
        Self { key, transition, alarm: alarm.clone(), at, attempts: 0 }
    }
}

/// What kind of receiver, and where it is.
#[derive(Clone, Debug, PartialEq)]
pub enum ReceiverKind {
    /// An Alertmanager's base URL (the alerts go to `<url>/api/v2/alerts`).
    Alertmanager {
        url: String,
    },
    Webhook {
        url: String,
        token: Option<String>,
        events: Vec<NotifyEvent>,
    },
}

/// One configured receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct Receiver {
    /// `alertmanager-1`, …, or the webhook's name: how `/status`, the metrics and Redis name it.
    pub name: String,
    pub kind: ReceiverKind,
}

impl Receiver {
    /// Whether this receiver is told `transition` of `alarm`, journalled at `at`.
    pub fn wants(&self, transition: Transition, alarm: &Alarm, at: DateTime<Utc>) -> bool {
        let shelved = alarm.is_shelved(at);
        match &self.kind {
            ReceiverKind::Webhook { events, .. } => {
                !shelved && transition.event().is_some_and(|event| events.contains(&event))
            }
            ReceiverKind::Alertmanager { .. } => match transition {
                Transition::Raised | Transition::Unshelved => !shelved && alarm.cleared_at.is_none(),
                Transition::Cleared => !shelved,
                Transition::Shelved => alarm.cleared_at.is_none(),
                Transition::Acknowledged => false,
            },
        }
    }

    pub fn url(&self) -> &str {
        match &self.kind {
            ReceiverKind::Alertmanager { url } | ReceiverKind::Webhook { url, .. } => url,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ReceiverKind::Alertmanager { .. } => "alertmanager",
            ReceiverKind::Webhook { .. } => "webhook",
        }
    }
}

/// The receivers of a configuration, in order: Alertmanagers, then webhooks. A webhook token
/// file that cannot be read is an error (validation read it a moment ago).
pub fn receivers(config: &NotifyConfig) -> Result<Vec<Receiver>, String> {
    let mut receivers: Vec<Receiver> = config
        .alertmanager
        .urls
        .iter()
        .enumerate()
        .map(|(index, url)| Receiver {
            name: format!("alertmanager-{}", index + 1),
            kind: ReceiverKind::Alertmanager { url: url.trim_end_matches('/').to_owned() },
        })
        .collect();
    for (index, webhook) in config.webhook.iter().enumerate() {
        let token = webhook.read_token().map_err(|why| format!("notify.webhook[{index}].token: {why}"))?;
        receivers.push(Receiver {
            name: webhook.name_at(index),
            kind: ReceiverKind::Webhook { url: webhook.url.clone(), token, events: webhook.events.clone() },
        });
    }
    Ok(receivers)
}

/// A URL as `/status` shows it: scheme, host, port and path; never a query (it may hold a key).
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let port = parsed.port().map(|port| format!(":{port}")).unwrap_or_default();
            format!("{}://{}{port}{}", parsed.scheme(), parsed.host_str().unwrap_or(""), parsed.path())
        }
        Err(_) => "(unparsable)".to_owned(),
    }
}

/// What the notifier has done so far, kept outside the actor so that a notifier restarted after
/// a crash carries on where its predecessor stopped: neither skipping a transition nor deriving
/// one twice.
#[derive(Default)]
pub struct Progress {
    /// The journal sequence number of the last entry looked at.
    pub cursor: u64,
    pub tracker: AlarmTracker,
    /// Items derived but not yet written to the Redis outbox, by receiver name; bounded by
    /// `notify.outbox_capacity`, the oldest dropped (and counted) past it.
    pub staged: VecDeque<(String, Arc<Item>)>,
}

/// Kept by the supervisor across notifier restarts: the progress, and the memory outboxes.
pub struct NotifyShared {
    pub progress: Mutex<Progress>,
    /// One per receiver when there is no Redis.
    pub memory: Vec<(String, Arc<MemoryOutbox>)>,
}

impl NotifyShared {
    pub fn new(receivers: &[Receiver], config: &NotifyConfig, in_memory: bool) -> Self {
        let memory = if in_memory {
            receivers
                .iter()
                .map(|receiver| {
                    let outbox = MemoryOutbox::new(config.outbox_capacity, config.dedup_window);
                    (receiver.name.clone(), Arc::new(outbox))
                })
                .collect()
        } else {
            Vec::new()
        };
        Self { progress: Mutex::new(Progress::default()), memory }
    }

    pub fn memory_outbox(&self, receiver: &str) -> Option<Arc<MemoryOutbox>> {
        self.memory.iter().find(|(name, _)| name == receiver).map(|(_, outbox)| Arc::clone(outbox))
    }
}

#[cfg(test)]
mod tests;
