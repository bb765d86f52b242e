//! The semantic rules of a config, each naming its key: what a file can say that parses but
//! makes no sense for a plant (a drift threshold above the spike threshold, a zero interval, …).

use super::*;

pub(super) fn check(config: &Config) -> Vec<ConfigProblem> {
    let mut problems = Problems::default();
    check_sensors(config, &mut problems);
    check_simulation(config, &mut problems);
    check_detection(config, &mut problems);
    check_store(config, &mut problems);
    check_llm(config, &mut problems);
    check_redis(config, &mut problems);
    check_supervisor(config, &mut problems);
    check_log(config, &mut problems);
    check_api(config, &mut problems);
    problems.0
}

#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem { key: key.into(), message: message.into() });
    }

    fn positive(&mut self, key: &str, duration: Duration) {
        if duration.is_zero() {
            self.add(key, "must be longer than zero");
        }
    }
}

/// Letters, digits, `-`, `_`, `.`; starts with a letter or digit; at most 64 characters.
/// Safe in Redis keys, URLs, log fields and actor names.
pub fn is_safe_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    let starts_well = chars.next().is_some_and(|first| first.is_ascii_alphanumeric());
    starts_well && id.len() <= 64 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_sensors(config: &Config, problems: &mut Problems) {
    let sensors = &config.sensors;
    if sensors.ids.is_empty() {
        problems.add("sensors.ids", "must name at least one sensor");
    }
    let mut seen = BTreeSet::new();
    for id in &sensors.ids {
        if !is_safe_identifier(id) {
            problems.add(
                "sensors.ids",
                format!("{id:?} is not a safe identifier (letters, digits, '-', '_', '.'; at most 64)"),
            );
        }
        if !seen.insert(id) {
            problems.add("sensors.ids", format!("{id:?} is listed twice"));
        }
    }
    problems.positive("sensors.interval", sensors.interval);
}

fn check_simulation(config: &Config, problems: &mut Problems) {
    let simulation = &config.simulation;
    for (key, rate) in [
        ("simulation.spikes_per_hour", simulation.spikes_per_hour),
        ("simulation.drifts_per_hour", simulation.drifts_per_hour),
        ("simulation.dropouts_per_hour", simulation.dropouts_per_hour),
    ] {
        if !rate.is_finite() || rate < 0.0 {
            problems.add(key, format!("must be a number of events per hour, zero or more (got {rate})"));
        } else if rate * config.sensors.interval.as_secs_f64() > 3600.0 {
            // More would ask for more than one injection per reading.
            let most = 3600.0 / config.sensors.interval.as_secs_f64();
            problems
                .add(key, format!("must be at most one per reading, {most} per hour at this interval (got {rate})"));
        }
    }
}

fn check_detection(config: &Config, problems: &mut Problems) {
    let detection = &config.detection;
    problems.positive("detection.drift_duration", detection.drift_duration);
    problems.positive("detection.dropout_timeout", detection.dropout_timeout);
    if !detection.dropout_timeout.is_zero() && detection.dropout_timeout <= config.sensors.interval {
        problems.add(
            "detection.dropout_timeout",
            "must be longer than sensors.interval, or every pause between readings is a dropout",
        );
    }
    for parameter in Parameter::ALL {
        let spike = detection.spike_thresholds.get(parameter);
        let drift = detection.drift_thresholds.get(parameter);
        if !spike.is_finite() {
            problems.add(format!("detection.spike_thresholds.{parameter}"), "must be a finite number");
        }
        if !drift.is_finite() {
            problems.add(format!("detection.drift_thresholds.{parameter}"), "must be a finite number");
        }
        if spike.is_finite() && drift.is_finite() && drift >= spike {
            problems.add(
                format!("detection.drift_thresholds.{parameter}"),
                format!("must be below detection.spike_thresholds.{parameter} ({drift} is not below {spike})"),
            );
        }
    }
}

fn check_store(config: &Config, problems: &mut Problems) {
    problems.positive("store.retention", config.store.retention);
    if config.store.retention > Duration::from_secs(366 * 24 * 3600) {
        problems.add("store.retention", "must be at most a year (366d): anomalies are kept in memory");
    }
    if config.store.max_anomalies == 0 {
        problems.add("store.max_anomalies", "must be at least 1");
    }
    if config.store.max_summaries == 0 {
        problems.add("store.max_summaries", "must be at least 1");
    }
}

fn check_llm(config: &Config, problems: &mut Problems) {
    let llm = &config.llm;
    // Ollama is local and this build carries no TLS stack: plain http only.
    if !llm.url.is_empty() && !llm.url.starts_with("http://") {
        problems.add("llm.url", format!("must start with http://, or be empty (got {:?})", llm.url));
    }
    if llm.model.trim().is_empty() {
        problems.add("llm.model", "must name a model");
    }
    if !llm.temperature.is_finite() || !(0.0..=2.0).contains(&llm.temperature) {
        problems.add("llm.temperature", format!("must be between 0 and 2 (got {})", llm.temperature));
    }
    if llm.max_tokens == 0 {
        problems.add("llm.max_tokens", "must be at least 1");
    }
    if llm.max_context <= llm.max_tokens {
        problems.add("llm.max_context", "must be larger than llm.max_tokens, to leave room for the prompt");
    }
    problems.positive("llm.interval", llm.interval);
    if llm.interval > Duration::from_secs(180) {
        problems.add("llm.interval", "must be at most 3m: operators get a summary at least every 3 minutes");
    }
    problems.positive("llm.timeout", llm.timeout);
    if llm.min_interval > llm.interval {
        problems.add("llm.min_interval", "must not be longer than llm.interval");
    }
    if llm.burst_anomalies == 0 {
        problems.add("llm.burst_anomalies", "must be at least 1");
    }
}

fn check_redis(config: &Config, problems: &mut Problems) {
    let redis = &config.redis;
    let schemes = ["redis://", "rediss://", "unix://", "redis+unix://"];
    for seed in crate::redis_link::seed_urls(&redis.url) {
        if !schemes.iter().any(|scheme| seed.starts_with(scheme)) {
            problems.add(
                "redis.url",
                format!("must start with redis://, rediss:// or unix://, or be empty (got {seed:?})"),
            );
        } else if let Err(err) = redis::IntoConnectionInfo::into_connection_info(seed) {
            problems.add("redis.url", format!("{seed:?} is not a usable Redis URL: {err}"));
        }
    }
    if !redis.cluster && redis.url.contains(',') {
        problems.add("redis.url", "lists several servers: set redis.cluster = true for a Redis Cluster");
    }
    if redis.key_prefix.is_empty() {
        problems.add("redis.key_prefix", "must not be empty: other programs share the database");
    }
    if redis.key_prefix.chars().any(|c| c.is_whitespace() || matches!(c, '{' | '}' | '*' | '?' | '[' | ']')) {
        problems.add("redis.key_prefix", "must not contain spaces, braces or glob characters");
    }
    if redis.backlog_capacity == 0 {
        problems.add("redis.backlog_capacity", "must be at least 1");
    }
    if redis.max_anomalies == 0 {
        problems.add("redis.max_anomalies", "must be at least 1");
    }
}

fn check_supervisor(config: &Config, problems: &mut Problems) {
    let supervisor = &config.supervisor;
    problems.positive("supervisor.restart_window", supervisor.restart_window);
    problems.positive("supervisor.backoff_initial", supervisor.backoff_initial);
    if supervisor.backoff_max < supervisor.backoff_initial {
        problems.add("supervisor.backoff_max", "must not be shorter than supervisor.backoff_initial");
    }
}

fn check_log(config: &Config, problems: &mut Problems) {
    if let Err(err) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        problems.add("log.level", format!("is not a level or filter: {err}"));
    }
}

fn check_api(config: &Config, problems: &mut Problems) {
    problems.positive("api.request_timeout", config.api.request_timeout);
    for origin in &config.api.cors_allowed_origins {
        let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
            && origin.parse::<axum::http::HeaderValue>().is_ok();
        if !valid {
            problems.add("api.cors_allowed_origins", format!("{origin:?} is not an origin like https://host"));
        }
    }
}
