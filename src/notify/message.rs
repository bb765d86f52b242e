//! What receivers are sent: Alertmanager alerts (API v2) and webhook bodies. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::Item;
use crate::alarms::Alarm;
use crate::domain::{AnomalyKind, rfc3339};

/// The `alertname` of an alarm's type: `WtfSpike`, `WtfDrift`, `WtfDropout`, `WtfLowSpike`, …
pub fn alertname(kind: AnomalyKind) -> String {
    let mut name = String::from("Wtf");
    for word in kind.as_str().split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            name.extend(first.to_uppercase());
            name.push_str(chars.as_str());
        }
    }
    name
}

/// One alert as Alertmanager's `POST /api/v2/alerts` takes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
}

/// What every alert of a daemon shares.
#[derive(Clone, Copy, Debug)]
pub struct AlertContext<'a> {
    /// `notify.alertmanager.labels`.
    pub labels: &'a BTreeMap<String, String>,
    /// `notify.alertmanager.external_url`, or "".
    pub external_url: &'a str,
    /// The latest summary's text, if there is one.
    pub summary: Option<&'a str>,
}

impl AlertContext<'_> {
    /// The alarm firing, valid until `valid_until` unless posted again.
    pub fn firing(&self, alarm: &Alarm, valid_until: DateTime<Utc>) -> Alert {
        self.alert(alarm, valid_until.max(alarm.raised_at + TimeDelta::seconds(1)))
    }

    /// The alarm over at `ended` (cleared, or shelved).
    pub fn resolved(&self, alarm: &Alarm, ended: DateTime<Utc>) -> Alert {
        self.alert(alarm, ended.max(alarm.raised_at))
    }

    fn alert(&self, alarm: &Alarm, ends_at: DateTime<Utc>) -> Alert {
        // Identity in Alertmanager is the label set: the daemon's own labels name the condition.
        // Everything that changes over an alarm's life goes in annotations, so it never splits
        // one alarm into two alerts.
        let mut labels = self.labels.clone();
        labels.insert("alertname".into(), alertname(alarm.kind));
        labels.insert("sensor_id".into(), alarm.sensor_id.to_string());
        labels.insert("parameter".into(), alarm.parameter.to_string());
        labels.insert("type".into(), alarm.kind.as_str().to_owned());
        labels.insert("severity".into(), alarm.priority.as_str().to_owned());
        let mut annotations = BTreeMap::from([
            ("summary".to_owned(), alarm.message.clone()),
            ("alarm_id".to_owned(), alarm.id.to_string()),
            ("state".to_owned(), alarm.state.as_str().to_owned()),
            ("limit".to_owned(), format!("{} {}", alarm.limit, alarm.unit).trim_end().to_owned()),
            ("suppressed".to_owned(), alarm.suppressed.to_string()),
        ]);
        if let Some(value) = alarm.value {
            annotations.insert("value".into(), format!("{value} {}", alarm.unit).trim_end().to_owned());
        }
        if let Some(peak) = alarm.peak {
            annotations.insert("peak".into(), format!("{peak} {}", alarm.unit).trim_end().to_owned());
        }
        if let Some(by) = &alarm.acked_by {
            annotations.insert("acknowledged_by".into(), by.clone());
        }
        if let Some(summary) = self.summary {
            annotations.insert("description".into(), summary.to_owned());
        }
        let generator_url = if self.external_url.is_empty() {
            String::new()
        } else {
            format!("{}/alarms/{}", self.external_url.trim_end_matches('/'), alarm.id)
        };
        Alert {
            labels,
            annotations,
            starts_at: rfc3339::format(&alarm.raised_at),
            ends_at: rfc3339::format(&ends_at),
            generator_url,
        }
    }
}

/// The body of a webhook: `{"event", "alarm", "idempotency_key", "at"}`.
#[derive(Serialize)]
struct WebhookBody<'a> {
    event: &'static str,
    alarm: &'a Alarm,
    idempotency_key: &'a str,
    #[serde(with = "rfc3339")]
    at: DateTime<Utc>,
}

pub fn webhook_body(item: &Item) -> Vec<u8> {
    let body =
        WebhookBody { event: item.transition.as_str(), alarm: &item.alarm, idempotency_key: &item.key, at: item.at };
    // Plain data with string keys always serialises.
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_follow_the_type() {
        assert_eq!(alertname(AnomalyKind::Spike), "WtfSpike");
        assert_eq!(alertname(AnomalyKind::Dropout), "WtfDropout");
        assert_eq!(alertname(AnomalyKind::LowDrift), "WtfLowDrift");
        assert_eq!(alertname(AnomalyKind::Stuck), "WtfStuck");
    }
}
