//! The `[notify]` section: Alertmanager and webhook receivers of alarm notifications, and the
//! outbox they go through. Documented key by key in `config/wtf-monitor.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Secret;

/// Alarm notifications. Off until a receiver is configured. Needs a restart to change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub alertmanager: AlertmanagerConfig,
    /// `[[notify.webhook]]` entries: a JSON POST per alarm transition.
    pub webhook: Vec<WebhookConfig>,
    /// Notifications waiting per receiver (in Redis, or in memory without it); past this the
    /// oldest waiting are dropped and counted.
    pub outbox_capacity: usize,
    /// One HTTP call to a receiver, connection included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Wait after a failed delivery; doubles with each further failure, up to `retry_max`, with
    /// jitter (a random half of it) so that receivers coming back are not hit all at once.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// A notification not delivered by this age is dropped and counted: a page about an alarm of
    /// yesterday helps nobody.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// How long a delivered notification's idempotency key is remembered, so that the same
    /// transition is never sent twice (by a restarted daemon, or by the other of two daemons).
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            alertmanager: AlertmanagerConfig::default(),
            webhook: Vec::new(),
            outbox_capacity: 100_000,
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            max_age: Duration::from_secs(24 * 3600),
            dedup_window: Duration::from_secs(24 * 3600),
        }
    }
}

impl NotifyConfig {
    /// True when at least one receiver is configured.
    pub fn any_receiver(&self) -> bool {
        !self.alertmanager.urls.is_empty() || !self.webhook.is_empty()
    }
}

/// Prometheus Alertmanager (API v2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Base URLs, e.g. `["http://127.0.0.1:9093"]`; every alert goes to each (an HA pair
    /// deduplicates between its members). Empty: off.
    pub urls: Vec<String>,
    /// Active alarms are posted again this often, as Prometheus does, so Alertmanager keeps them
    /// firing; each post is valid for four of these, after which Alertmanager resolves an alarm
    /// the daemon stopped telling (a daemon that died).
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
    /// Labels added to every alert, e.g. `{ site = "north-works" }`.
    pub labels: BTreeMap<String, String>,
    /// Where operators reach this daemon's API, e.g. `http://scada-01:8000`; alerts then link to
    /// `<external_url>/alarms/<id>`. Empty: no link.
    pub external_url: String,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            resend_interval: Duration::from_secs(60),
            labels: BTreeMap::new(),
            external_url: String::new(),
        }
    }
}

/// One webhook receiver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// How `/status` and the metrics name it; `webhook-1`, `webhook-2`, … by position when left
    /// out. The outbox is kept by this name: renaming a receiver starts it a new outbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`; or give `token_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Which transitions are sent.
    #[serde(default = "all_events")]
    pub events: Vec<NotifyEvent>,
}

impl WebhookConfig {
    /// The receiver's name: the configured one, or `webhook-<position from 1>`.
    pub fn name_at(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("webhook-{}", index + 1))
    }

    /// The token to send, if any: `token`, or the trimmed contents of `token_file`.
    pub fn read_token(&self) -> Result<Option<String>, String> {
        match (&self.token, &self.token_file) {
            (None, None) => Ok(None),
            (Some(token), None) => Ok(Some(token.expose().to_owned())),
            (None, Some(path)) => {
                let size =
                    std::fs::metadata(path).map_err(|err| format!("token_file {}: {err}", path.display()))?.len();
                if size > 4096 {
                    return Err(format!("token_file {} is {size} bytes: not a token", path.display()));
                }
                let text =
                    std::fs::read_to_string(path).map_err(|err| format!("token_file {}: {err}", path.display()))?;
                Ok(Some(text.trim().to_owned()))
            }
            (Some(_), Some(_)) => Err("give token or token_file, not both".to_owned()),
        }
    }
}

/// The alarm transitions a webhook can be sent.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum NotifyEvent {
    /// The alarm was raised (`active_unack`).
    Raised,
    /// The process cleared it.
    Cleared,
    /// An operator acknowledged it.
    Acknowledged,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn all_events() -> Vec<NotifyEvent> {
    vec![NotifyEvent::Raised, NotifyEvent::Cleared, NotifyEvent::Acknowledged]
}
