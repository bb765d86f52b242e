//! The range of every numeric and duration key, in one table per section.
//!
//! Each bound is what a plant can sensibly ask for, so a typo (`i64::MAX` anomalies, a timeout of
//! a hundred million days, `u32::MAX` restarts) is refused with the key and the range instead of
//! quietly removing a memory bound or a timer. The same ranges are written beside each key in
//! `config/wtf-monitor.toml`; rules that tie two keys together (drift below spike, `max_context`
//! above `max_tokens`, one injection per reading at most) are in [`super::rules`].

use std::time::Duration;

use super::rules::Problems;
use super::*;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Largest `sensors.ids` and `ingest.max_sensors`: the actors cost ~10 kB each, three or more
/// per sensor.
pub(super) const MAX_SENSORS: usize = 100_000;

pub(super) fn check(config: &Config, problems: &mut Problems) {
    let api = &config.api;
    problems.duration("api.request_timeout", api.request_timeout, 100 * MS, 5 * MINUTE);
    problems.duration("api.header_read_timeout", api.header_read_timeout, SECOND, 5 * MINUTE);
    problems.duration("api.write_timeout", api.write_timeout, SECOND, 10 * MINUTE);
    problems.count("api.max_connections", api.max_connections, 1, 65_536);

    problems.duration("sensors.interval", config.sensors.interval, MS, HOUR);

    let detection = &config.detection;
    problems.duration("detection.drift_duration", detection.drift_duration, MS, DAY);
    problems.duration("detection.dropout_timeout", detection.dropout_timeout, MS, DAY);
    problems.duration("detection.rate_window", detection.rate_window, MS, DAY);

    let store = &config.store;
    problems.duration("store.retention", store.retention, SECOND, 366 * DAY);
    problems.count("store.max_anomalies", store.max_anomalies, 1, 10_000_000);
    problems.count("store.max_summaries", store.max_summaries, 1, 10_000);
    problems.count("store.max_events", store.max_events, 100, 10_000_000);

    let llm = &config.llm;
    problems.count("llm.max_tokens", llm.max_tokens as usize, 1, 32_768);
    problems.count("llm.max_context", llm.max_context as usize, 256, 1_048_576);
    problems.duration("llm.interval", llm.interval, SECOND, 3 * MINUTE);
    problems.duration("llm.timeout", llm.timeout, 100 * MS, 10 * MINUTE);
    problems.count("llm.burst_anomalies", usize::try_from(llm.burst_anomalies).unwrap_or(usize::MAX), 1, 100_000);
    problems.duration("llm.min_interval", llm.min_interval, Duration::ZERO, 3 * MINUTE);

    let redis = &config.redis;
    problems.count("redis.backlog_capacity", redis.backlog_capacity, 1, 10_000_000);
    problems.count("redis.max_anomalies", redis.max_anomalies, 1, 10_000_000);

    let notify = &config.notify;
    problems.count("notify.outbox_capacity", notify.outbox_capacity, 1, 10_000_000);
    problems.duration("notify.timeout", notify.timeout, 100 * MS, 5 * MINUTE);
    problems.duration("notify.retry_initial", notify.retry_initial, 10 * MS, HOUR);
    problems.duration("notify.retry_max", notify.retry_max, 10 * MS, DAY);
    problems.duration("notify.max_age", notify.max_age, MINUTE, 30 * DAY);
    problems.duration("notify.dedup_window", notify.dedup_window, MINUTE, 30 * DAY);
    problems.duration("notify.alertmanager.resend_interval", notify.alertmanager.resend_interval, SECOND, HOUR);

    let supervisor = &config.supervisor;
    problems.count("supervisor.max_restarts", supervisor.max_restarts as usize, 0, 1_000);
    problems.duration("supervisor.restart_window", supervisor.restart_window, SECOND, DAY);
    problems.duration("supervisor.backoff_initial", supervisor.backoff_initial, MS, MINUTE);
    problems.duration("supervisor.backoff_max", supervisor.backoff_max, MS, 10 * MINUTE);

    let ingest = &config.ingest;
    problems.count("ingest.max_sensors", ingest.max_sensors, 1, MAX_SENSORS);
    problems.duration("ingest.max_clock_skew", ingest.max_clock_skew, Duration::ZERO, HOUR);
    problems.count("ingest.max_body", ingest.max_body, 1024, 64 * 1024 * 1024);
    problems.count("ingest.queue_capacity", ingest.queue_capacity, 16, 1_000_000);

    // A shelved alarm is one nobody is told about: never for longer than a week.
    problems.duration("alarms.max_shelve", config.alarms.max_shelve, MINUTE, 7 * DAY);
    problems.duration("audit.retention", config.audit.retention, DAY, 10 * 366 * DAY);
    problems.count("audit.max_entries", config.audit.max_entries, 100, 10_000_000);

    let history = &config.history;
    problems.duration("history.recent", history.recent, Duration::ZERO, DAY);
    problems.duration("history.minutes", history.minutes, Duration::ZERO, 7 * DAY);
    problems.count("history.max_memory_mb", history.max_memory_mb, 1, 16_384);

    problems.count("cluster.shards", config.cluster.shards as usize, 1, 64);
}

impl Problems {
    fn count(&mut self, key: &str, value: usize, low: usize, high: usize) {
        if !(low..=high).contains(&value) {
            self.add(key, format!("must be from {} to {} (got {})", grouped(low), grouped(high), grouped(value)));
        }
    }

    fn duration(&mut self, key: &str, value: Duration, low: Duration, high: Duration) {
        if !(low..=high).contains(&value) {
            let show = |duration: Duration| humantime::format_duration(duration).to_string();
            let low = if low.is_zero() { "0s".to_owned() } else { show(low) };
            self.add(key, format!("must be from {low} to {} (got {})", show(high), show(value)));
        }
    }
}

/// `10000000` as `10,000,000`: a bound an operator reads at a glance.
fn grouped(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(config: &Config) -> Vec<ConfigProblem> {
        let mut problems = Problems::default();
        check(config, &mut problems);
        problems.0
    }

    #[test]
    fn the_defaults_are_inside_every_range() {
        assert_eq!(problems(&Config::default()), []);
    }

    #[test]
    fn absurd_limits_are_refused_by_key_with_the_range() {
        let mut config = Config::default();
        config.store.max_anomalies = i64::MAX as usize;
        config.store.max_summaries = 1_000_000_000_000;
        config.store.retention = Duration::from_secs(100_000_000 * 86_400);
        config.supervisor.max_restarts = u32::MAX;
        config.supervisor.restart_window = Duration::from_secs(100_000_000 * 86_400);
        config.redis.backlog_capacity = usize::MAX;
        config.llm.timeout = Duration::from_secs(100_000_000 * 86_400);
        config.llm.max_tokens = u32::MAX;
        config.api.request_timeout = Duration::from_secs(100_000_000 * 86_400);
        config.sensors.interval = Duration::from_secs(100_000_000 * 86_400);
        config.ingest.queue_capacity = 0;
        let problems = problems(&config);
        let keys: Vec<&str> = problems.iter().map(|problem| problem.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "api.request_timeout",
                "sensors.interval",
                "store.retention",
                "store.max_anomalies",
                "store.max_summaries",
                "llm.max_tokens",
                "llm.timeout",
                "redis.backlog_capacity",
                "supervisor.max_restarts",
                "supervisor.restart_window",
                "ingest.queue_capacity",
            ]
        );
        let anomalies = &problems[3];
        assert_eq!(anomalies.message, "must be from 1 to 10,000,000 (got 9,223,372,036,854,775,807)");
        assert_eq!(problems[6].message, "must be from 100ms to 10m (got 273785years 28days 18h)");
    }

    #[test]
    fn bounds_are_inclusive() {
        let mut config = Config::default();
        config.store.max_anomalies = 10_000_000;
        config.supervisor.max_restarts = 0;
        config.llm.interval = Duration::from_secs(180);
        config.ingest.max_clock_skew = Duration::ZERO;
        assert_eq!(problems(&config), []);
    }
}
