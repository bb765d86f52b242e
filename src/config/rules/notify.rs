//! The rules of `[notify]`: receivers the daemon can actually reach, and names fit for `/status`,
//! the metrics and Redis keys.

use std::collections::BTreeSet;

use super::{Problems, is_safe_identifier};
use crate::config::Config;

/// Labels every alert carries already; a configured label must not replace one of them.
const OWN_LABELS: [&str; 5] = ["alertname", "sensor_id", "parameter", "type", "severity"];

pub(super) fn check(config: &Config, problems: &mut Problems) {
    let notify = &config.notify;
    let alertmanager = &notify.alertmanager;
    let mut seen = BTreeSet::new();
    for (index, url) in alertmanager.urls.iter().enumerate() {
        let key = format!("notify.alertmanager.urls[{index}]");
        if let Err(why) = receiver_url(url) {
            problems.add(&key, why);
        }
        if !seen.insert(url.trim_end_matches('/')) {
            problems.add(&key, "is listed twice");
        }
    }
    for (name, value) in &alertmanager.labels {
        let key = format!("notify.alertmanager.labels.{name}");
        let mut chars = name.chars();
        let well_formed = chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with("__");
        if !well_formed {
            problems.add(&key, "a label name is letters, digits and '_', not starting with a digit or '__'");
        }
        if OWN_LABELS.contains(&name.as_str()) {
            problems.add(&key, format!("{name:?} is set by the daemon on every alert"));
        }
        if value.is_empty() || value.chars().count() > 256 {
            problems.add(&key, "must be 1 to 256 characters");
        }
    }
    let external = &alertmanager.external_url;
    if !(external.is_empty() || external.starts_with("http://") || external.starts_with("https://")) {
        problems.add("notify.alertmanager.external_url", "must be empty or a link starting with http:// or https://");
    }

    let mut names: BTreeSet<String> = (1..=alertmanager.urls.len()).map(|n| format!("alertmanager-{n}")).collect();
    for (index, webhook) in notify.webhook.iter().enumerate() {
        let key = format!("notify.webhook[{index}]");
        let name = webhook.name_at(index);
        if !is_safe_identifier(&name) {
            problems.add(format!("{key}.name"), "must be a name of letters, digits, '-', '_', '.' (at most 64)");
        }
        if !names.insert(name.clone()) {
            problems.add(format!("{key}.name"), format!("{name:?} names another receiver"));
        }
        if let Err(why) = receiver_url(&webhook.url) {
            problems.add(format!("{key}.url"), why);
        }
        match webhook.read_token() {
            Ok(Some(token)) if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                problems.add(format!("{key}.token"), "must be non-empty, without spaces or control characters");
            }
            Ok(_) => {}
            Err(why) => problems.add(format!("{key}.token"), why),
        }
        if webhook.events.is_empty() {
            problems.add(format!("{key}.events"), "must name at least one of raised, cleared, acknowledged");
        }
        let distinct: BTreeSet<_> = webhook.events.iter().collect();
        if distinct.len() != webhook.events.len() {
            problems.add(format!("{key}.events"), "names an event twice");
        }
    }

    // The ranges of the numbers and durations are in `config::ranges`.
    if notify.retry_max < notify.retry_initial {
        problems.add("notify.retry_max", "must not be shorter than notify.retry_initial");
    }
}

/// A receiver's URL as this build can reach it: plain `http://host[:port][/path]`.
fn receiver_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|err| format!("{url:?} is not a URL: {err}"))?;
    match parsed.scheme() {
        "http" => {}
        "https" => {
            return Err("https is not supported: this build carries no TLS client; use http:// on the plant \
                 network, or a local TLS proxy (stunnel, nginx) in front of the receiver"
                .to_owned());
        }
        other => return Err(format!("must be an http:// URL (got scheme {other:?})")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (they would show in /status): use token".to_owned());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a fragment".to_owned());
    }
    Ok(())
}
