//! The semantic rules of a config, each naming its key: what a file can say that parses but
//! makes no sense for a plant (a drift threshold above the spike threshold, a zero interval, …).

use std::time::Duration;

use super::*;

mod notify;

pub(super) fn check(config: &Config) -> Vec<ConfigProblem> {
    let mut problems = Problems::default();
    check_sensors(config, &mut problems);
    check_parameters(config, &mut problems);
    check_ingest(config, &mut problems);
    check_auth(config, &mut problems);
    check_cluster(config, &mut problems);
    check_simulation(config, &mut problems);
    check_detection(config, &mut problems);
    check_llm(config, &mut problems);
    check_redis(config, &mut problems);
    check_mqtt(config, &mut problems);
    notify::check(config, &mut problems);
    check_supervisor(config, &mut problems);
    check_log(config, &mut problems);
    check_api(config, &mut problems);
    super::ranges::check(config, &mut problems);
    problems.0
}

/// More parameters than this make a reading's values a table, not a handful.
const MAX_PARAMETERS: usize = 64;
/// Rule times beyond a day are a typo, not a plant's alarm philosophy.
const MAX_RULE_DURATION: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<ConfigProblem>);

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem { key: key.into(), message: message.into() });
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
    // Ids are kept as written, but the ingress and the grounding of summaries match them
    // case-insensitively: two that differ only in case would be one sensor to an operator and
    // two to the daemon.
    let mut seen = BTreeMap::new();
    for id in &sensors.ids {
        if !is_safe_identifier(id) {
            problems.add(
                "sensors.ids",
                format!("{id:?} is not a safe identifier (letters, digits, '-', '_', '.'; at most 64)"),
            );
        }
        match seen.insert(id.to_ascii_lowercase(), id) {
            Some(earlier) if earlier == id => problems.add("sensors.ids", format!("{id:?} is listed twice")),
            Some(earlier) => {
                problems.add("sensors.ids", format!("{id:?} and {earlier:?} differ only in case; one of them must go"))
            }
            None => {}
        }
    }
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

fn check_parameters(config: &Config, problems: &mut Problems) {
    if config.parameters.is_empty() {
        problems.add("parameters", "must name at least one parameter");
    }
    if config.parameters.len() > MAX_PARAMETERS {
        problems.add("parameters", format!("at most {MAX_PARAMETERS} parameters (got {})", config.parameters.len()));
    }
    for (name, spec) in &config.parameters {
        let name = name.as_str();
        let key = format!("parameters.{name}");
        if !is_safe_identifier(name) || name.contains('.') {
            problems.add(&key, "a parameter name is letters, digits, '-' and '_', at most 64 characters");
        }
        if ["sensor_id", "timestamp", "time"].contains(&name) {
            problems.add(&key, format!("{name:?} is a field of every reading, not a parameter name"));
        }
        let [low, high] = spec.normal;
        if !(low.is_finite() && high.is_finite() && low < high) {
            problems
                .add(format!("{key}.normal"), format!("must be [low, high] with low below high (got [{low}, {high}])"));
        }
        if spec.unit.chars().count() > 16 || spec.unit.chars().any(char::is_control) {
            problems.add(format!("{key}.unit"), "must be at most 16 printable characters");
        }
        if spec.label.as_ref().is_some_and(|label| label.is_empty() || label.chars().count() > 64) {
            problems.add(format!("{key}.label"), "must be 1 to 64 characters");
        }
    }
}

fn check_detection(config: &Config, problems: &mut Problems) {
    let detection = &config.detection;
    if !detection.dropout_timeout.is_zero() && detection.dropout_timeout <= config.sensors.interval {
        problems.add(
            "detection.dropout_timeout",
            "must be longer than sensors.interval, or every pause between readings is a dropout",
        );
    }
    check_limits(config, "detection", &detection.limits, problems);
    let configured: BTreeMap<String, &String> =
        config.sensors.ids.iter().map(|id| (id.to_ascii_lowercase(), id)).collect();
    let mut overrides = BTreeMap::new();
    for (sensor_id, limits) in &detection.sensors {
        let key = format!("detection.sensors.{sensor_id}");
        if !is_safe_identifier(sensor_id) {
            problems.add(&key, format!("{sensor_id:?} is not a safe sensor identifier"));
        }
        // An override must name its sensor exactly: one that matched only case-insensitively
        // would look applied to an operator and apply to nothing.
        let folded = sensor_id.to_ascii_lowercase();
        if let Some(configured) = configured.get(&folded).filter(|configured| **configured != sensor_id) {
            problems.add(
                &key,
                format!("names sensors.ids entry {configured:?} in another case; write the id exactly as listed"),
            );
        }
        if let Some(earlier) = overrides.insert(folded, sensor_id) {
            problems.add(&key, format!("{sensor_id:?} and {earlier:?} differ only in case; one of them must go"));
        }
        check_limits(config, &key, limits, problems);
    }
    // The limits a sensor ends up with must make sense together, overrides and defaults mixed.
    let overridden = detection.sensors.keys().map(|id| Some(id.as_str()));
    for sensor_id in std::iter::once(None).chain(overridden) {
        for parameter in config.parameters.keys() {
            check_resolved(config, sensor_id, parameter.as_str(), problems);
        }
    }
}

/// Every key of a limits map names a configured parameter and holds a sensible value.
fn check_limits(config: &Config, section: &str, limits: &Limits, problems: &mut Problems) {
    for (name, map) in limits.numbers() {
        for (parameter, value) in map {
            let key = format!("{section}.{name}.{parameter}");
            if !config.parameters.contains_key(parameter.as_str()) {
                problems
                    .add(&key, format!("{parameter:?} is not a configured parameter (add [parameters.{parameter}])"));
            }
            if !value.is_finite() {
                problems.add(&key, "must be a finite number");
            } else if matches!(name, "rate_limits") && *value <= 0.0 {
                problems.add(&key, format!("must be above zero (got {value})"));
            } else if matches!(name, "deadband" | "stuck_tolerance") && *value < 0.0 {
                problems.add(&key, format!("must be zero or more (got {value})"));
            }
        }
    }
    for (name, map) in limits.durations() {
        for (parameter, duration) in map {
            let key = format!("{section}.{name}.{parameter}");
            if !config.parameters.contains_key(parameter.as_str()) {
                problems
                    .add(&key, format!("{parameter:?} is not a configured parameter (add [parameters.{parameter}])"));
            }
            if *duration > MAX_RULE_DURATION {
                problems.add(&key, "must be at most a day (24h)");
            }
            if name == "stuck_after" && duration.is_zero() {
                problems.add(&key, "must be longer than zero");
            }
        }
    }
}

/// The rules one sensor gets for one parameter, overrides applied, checked as a whole: a drift
/// limit beyond its spike limit, or a stuck tolerance without a time, is refused.
fn check_resolved(config: &Config, sensor_id: Option<&str>, parameter: &str, problems: &mut Problems) {
    let detection = &config.detection;
    let own = sensor_id.and_then(|id| detection.sensors.get(id));
    let section = sensor_id.map_or_else(|| "detection".to_owned(), |id| format!("detection.sensors.{id}"));
    let get = |pick: fn(&Limits) -> &BTreeMap<String, f64>| {
        own.and_then(|own| pick(own).get(parameter)).or_else(|| pick(&detection.limits).get(parameter)).copied()
    };
    let spike = get(|limits| &limits.spike_thresholds);
    let drift = get(|limits| &limits.drift_thresholds);
    let low_spike = get(|limits| &limits.low_spike_thresholds);
    let low_drift = get(|limits| &limits.low_drift_thresholds);
    let finite = |value: Option<f64>| value.filter(|value| value.is_finite());
    let mut pair = |lower: (&str, Option<f64>), upper: (&str, Option<f64>)| {
        if let (Some(low), Some(high)) = (finite(lower.1), finite(upper.1))
            && low >= high
        {
            problems.add(
                format!("{section}.{}.{parameter}", lower.0),
                format!("must be below {section}.{}.{parameter} ({low} is not below {high})", upper.0),
            );
        }
    };
    pair(("drift_thresholds", drift), ("spike_thresholds", spike));
    pair(("low_spike_thresholds", low_spike), ("low_drift_thresholds", low_drift));
    pair(("low_drift_thresholds", low_drift), ("drift_thresholds", drift));
    pair(("low_spike_thresholds", low_spike), ("spike_thresholds", spike));
    let stuck = get(|limits| &limits.stuck_tolerance);
    let stuck_after =
        own.and_then(|own| own.stuck_after.get(parameter)).or_else(|| detection.limits.stuck_after.get(parameter));
    if stuck.is_some() != stuck_after.is_some() {
        problems.add(
            format!("{section}.stuck_tolerance.{parameter}"),
            "stuck_tolerance and stuck_after go together: set both, or neither",
        );
    }
}

fn check_ingest(config: &Config, problems: &mut Problems) {
    let ingest = &config.ingest;
    if config.sensors.ids.len() > ingest.max_sensors {
        problems.add(
            "sensors.ids",
            format!(
                "lists {} sensors, more than ingest.max_sensors ({})",
                config.sensors.ids.len(),
                ingest.max_sensors
            ),
        );
    }
    let line_protocol = &ingest.line_protocol;
    if line_protocol.sensor_tag.is_empty() || line_protocol.sensor_tag.len() > 64 {
        problems.add("ingest.line_protocol.sensor_tag", "must name a tag (1 to 64 characters)");
    }
}

fn check_cluster(config: &Config, problems: &mut Problems) {
    let cluster = &config.cluster;
    if !cluster.instance.is_empty() && !is_safe_identifier(&cluster.instance) {
        problems
            .add("cluster.instance", "must be letters, digits, '-', '_', '.' (at most 64), or \"\" for the hostname");
    }
    if cluster.shards >= 1 && cluster.shard >= cluster.shards {
        problems
            .add("cluster.shard", format!("must be below cluster.shards ({}), got {}", cluster.shards, cluster.shard));
    }
}

fn check_auth(config: &Config, problems: &mut Problems) {
    let mut names = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for (index, token) in config.auth.tokens.iter().enumerate() {
        let key = format!("auth.tokens[{index}]");
        if !is_safe_identifier(&token.name) {
            problems.add(format!("{key}.name"), "must be a name of letters, digits, '-', '_', '.' (at most 64)");
        }
        if !names.insert(token.name.as_str()) {
            problems.add(format!("{key}.name"), format!("{:?} is used by another token", token.name));
        }
        match crate::auth::read_secret(token) {
            Ok(secret) => {
                if secret.chars().count() < crate::auth::MIN_TOKEN_CHARS {
                    problems.add(
                        format!("{key}.token"),
                        format!("must be at least {} characters", crate::auth::MIN_TOKEN_CHARS),
                    );
                }
                if !secrets.insert(secret) {
                    problems.add(format!("{key}.token"), "is the same as another token's");
                }
            }
            Err(why) => problems.add(format!("{key}.token"), why),
        }
    }
}

fn check_llm(config: &Config, problems: &mut Problems) {
    let llm = &config.llm;
    // Ollama is local and this build carries no TLS stack: plain http only.
    if !llm.url.is_empty() && !llm.url.starts_with("http://") {
        problems.add("llm.url", format!("must start with http://, or be empty (got {:?})", redact_url(&llm.url)));
    }
    if llm.model.trim().is_empty() {
        problems.add("llm.model", "must name a model");
    }
    if !llm.temperature.is_finite() || !(0.0..=2.0).contains(&llm.temperature) {
        problems.add("llm.temperature", format!("must be between 0 and 2 (got {})", llm.temperature));
    }
    if llm.max_context <= llm.max_tokens {
        problems.add("llm.max_context", "must be larger than llm.max_tokens, to leave room for the prompt");
    }
    if llm.min_interval > llm.interval {
        problems.add("llm.min_interval", "must not be longer than llm.interval");
    }
}

fn check_redis(config: &Config, problems: &mut Problems) {
    let redis = &config.redis;
    let schemes = ["redis://", "rediss://", "unix://", "redis+unix://"];
    for seed in crate::redis_link::seed_urls(&redis.url) {
        // The URL may carry a password: the message shows it redacted.
        let shown = redact_url(seed);
        if !schemes.iter().any(|scheme| seed.starts_with(scheme)) {
            problems.add(
                "redis.url",
                format!("must start with redis://, rediss:// or unix://, or be empty (got {shown:?})"),
            );
        } else if let Err(err) = redis::IntoConnectionInfo::into_connection_info(seed) {
            let err = err.to_string().replace(seed, &shown);
            problems.add("redis.url", format!("{shown:?} is not a usable Redis URL: {err}"));
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
}

fn check_mqtt(config: &Config, problems: &mut Problems) {
    let mqtt = &config.mqtt;
    if !mqtt.url.is_empty()
        && let Err(why) = BrokerAddress::parse(&mqtt.url)
    {
        problems.add("mqtt.url", why);
    }
    if !mqtt.client_id.is_empty() && !is_safe_identifier(&mqtt.client_id) {
        problems.add(
            "mqtt.client_id",
            "must be letters, digits, '-', '_', '.', at most 64 characters, or \"\" for one derived from cluster.instance",
        );
    }
    if mqtt.username.as_ref().is_some_and(|name| name.is_empty() || name.len() > 256) {
        problems.add("mqtt.username", "must be 1 to 256 characters");
    }
    match mqtt.read_password() {
        Ok(Some(_)) if mqtt.username.is_none() => {
            problems.add("mqtt.password", "a password needs mqtt.username");
        }
        Ok(_) => {}
        Err(why) => problems.add("mqtt.password", why),
    }
    let prefix = &mqtt.topic_prefix;
    if prefix.is_empty()
        || prefix.len() > 128
        || prefix.starts_with(['/', '$'])
        || prefix.ends_with('/')
        || prefix.contains(['+', '#', '\0'])
        || prefix.split('/').any(str::is_empty)
        || prefix.starts_with("spBv1.0")
    {
        problems.add(
            "mqtt.topic_prefix",
            "must be a topic level or levels like \"wtf\" or \"plant/wtf\": no wildcards, no leading or \
             trailing '/', not '$…' or spBv1.0",
        );
    }
    for (metric, parameter) in &mqtt.sparkplug_metrics {
        let key = format!("mqtt.sparkplug_metrics.{metric:?}");
        if metric.is_empty() {
            problems.add(&key, "a metric name must not be empty");
        }
        if !config.parameters.contains_key(parameter.as_str()) {
            problems.add(&key, format!("{parameter:?} is not a configured parameter (add [parameters.{parameter}])"));
        }
    }
    for (device, sensor) in &mqtt.sparkplug_sensors {
        let key = format!("mqtt.sparkplug_sensors.{device:?}");
        if device.is_empty() || device.split('/').count() > 2 || device.split('/').any(str::is_empty) {
            problems.add(&key, "must be \"<edge_node>\" or \"<edge_node>/<device>\"");
        }
        if !is_safe_identifier(sensor) {
            problems.add(&key, format!("{sensor:?} is not a safe sensor identifier"));
        }
    }
}

fn check_supervisor(config: &Config, problems: &mut Problems) {
    let supervisor = &config.supervisor;
    if supervisor.backoff_max < supervisor.backoff_initial {
        problems.add("supervisor.backoff_max", "must not be shorter than supervisor.backoff_initial");
    }
}

/// The levels a filter directive may end in.
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `log.level` is a level, or comma-separated directives that each end in one (`target=level`).
///
/// `EnvFilter` alone is not enough: it reads a bare word such as `loud` as a target with no level,
/// which turns every other log line off, so a typo would silence the daemon.
fn check_log(config: &Config, problems: &mut Problems) {
    let level = &config.log.level;
    let levels = LOG_LEVELS.join(", ");
    let directives: Vec<&str> = level.split(',').map(str::trim).collect();
    for directive in &directives {
        let named = directive.rsplit_once('=').map_or(*directive, |(_, level)| level).trim();
        if !LOG_LEVELS.iter().any(|known| known.eq_ignore_ascii_case(named)) {
            let shown = crate::ingress::bounded(directive, 64);
            problems.add(
                "log.level",
                format!(
                    "{shown:?} is not a level: write one of {levels}, or a filter such as \"info,wtf_monitor=debug\""
                ),
            );
            return;
        }
    }
    if let Err(err) = tracing_subscriber::EnvFilter::try_new(level) {
        problems.add("log.level", format!("is not a level or filter: {err}"));
    }
}

fn check_api(config: &Config, problems: &mut Problems) {
    for origin in &config.api.cors_allowed_origins {
        let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
            && origin.parse::<axum::http::HeaderValue>().is_ok();
        if !valid {
            problems.add("api.cors_allowed_origins", format!("{origin:?} is not an origin like https://host"));
        }
    }
}
