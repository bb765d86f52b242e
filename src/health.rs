//! What `/status` reports about the daemon itself: which actors are alive and how often they were
//! restarted, whether the model and Redis answer, and which configuration is in force.
//!
//! Each part is written by the one component that knows it (the supervisor, the summarizer, the
//! mirror, the reload path) at the moment it changes, so a flag is true only while it is true.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::journal::{Event, Journal, StatusChange};
use crate::store::lock;

/// The kinds of actor, as named in logs (`component=…`) and `/status`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema, strum::IntoStaticStr, strum::Display,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Component {
    Supervisor,
    Sensor,
    Detector,
    Llm,
    Redis,
    Api,
    Ingress,
    Mqtt,
    /// The notifier: alarm notifications to Alertmanager and webhooks.
    Notify,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One actor's liveness and restart history.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ActorHealth {
    pub component: Component,
    pub alive: bool,
    /// Restarts since the daemon started.
    pub restarts: u32,
    /// Why it last failed, if it ever did.
    pub last_failure: Option<String>,
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>)]
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// The summarizer's view of the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LlmState {
    /// `llm.url` is empty: every summary comes from the template.
    Disabled,
    /// No call made yet.
    #[default]
    NotYetContacted,
    /// The last call answered, and its answer became the summary.
    Active,
    /// The last call answered, and its answer was refused (`reason` says why); the template
    /// wrote that summary. The model is reachable: the next window asks it again.
    Refused,
    /// The last call got no answer: unreachable, too slow, model missing, or an error; the
    /// template is in use and calls resume after a backoff.
    Inactive,
}

impl LlmState {
    /// Reachable and answering: the last call got an answer, used or refused.
    pub fn is_answering(&self) -> bool {
        matches!(self, LlmState::Active | LlmState::Refused)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct LlmHealth {
    pub state: LlmState,
    pub model: String,
    /// Why the last call gave no summary, when it did not.
    pub reason: Option<String>,
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>)]
    pub last_call: Option<DateTime<Utc>>,
    /// Calls whose answer became the summary, since start.
    pub answers_accepted: u64,
    /// Calls the model answered with something that was refused, since start.
    pub answers_refused: u64,
    /// Calls that got no answer (unreachable, timed out, model missing, error), since start.
    pub calls_failed: u64,
    /// Why the latest refused answer was refused, kept after later successes.
    pub last_refusal: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedisState {
    /// `redis.url` is empty: the daemon runs in memory only.
    Disabled,
    /// Not connected yet since start.
    Connecting,
    Connected,
    /// The connection was lost; writes wait in the backlog.
    Reconnecting,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RedisHealth {
    pub state: RedisState,
    /// Writes waiting for Redis.
    pub backlog: usize,
    /// Writes dropped because the backlog was full.
    pub dropped: u64,
    /// Anomalies written to Redis since start.
    pub mirrored: u64,
    pub last_error: Option<String>,
    /// Set by the mirror's final flush at a graceful stop: anomalies that never reached Redis.
    #[serde(skip)]
    pub left_behind: Option<u64>,
}

/// The outcome of the last SIGHUP.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ReloadOutcome {
    #[serde(with = "crate::domain::rfc3339")]
    #[schema(value_type = String)]
    pub at: DateTime<Utc>,
    pub applied: bool,
    /// What changed, what was refused, or what needs a restart.
    pub details: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ConfigHealth {
    /// The file in force, or "built-in defaults".
    pub source: String,
    #[serde(with = "crate::domain::rfc3339")]
    #[schema(value_type = String)]
    pub loaded_at: DateTime<Utc>,
    pub last_reload: Option<ReloadOutcome>,
}

pub struct Health {
    /// Live-stream (`/events`) clients connected now.
    pub sse_clients: std::sync::atomic::AtomicUsize,
    clock: Clock,
    /// Where state changes are told, for the live stream and the mirror.
    journal: Arc<Journal>,
    started_at: DateTime<Utc>,
    /// Bumped after every change below, so `/status` can reuse its last body until something
    /// changes without taking these locks.
    version: AtomicU64,
    actors: Mutex<BTreeMap<String, ActorHealth>>,
    /// Restarts since start by kind of actor; unlike the actors' own counts, an actor removed
    /// on purpose takes none of these away, so they only grow.
    restarts: Mutex<BTreeMap<Component, u64>>,
    llm: Mutex<LlmHealth>,
    redis: Mutex<RedisHealth>,
    config: Mutex<ConfigHealth>,
    /// The MQTT connection and its counters; written by the MQTT actor.
    pub mqtt: crate::mqtt::MqttStats,
}

impl Health {
    pub fn new(clock: Clock, journal: Arc<Journal>) -> Self {
        let started_at = clock.now();
        Self {
            sse_clients: std::sync::atomic::AtomicUsize::new(0),
            clock,
            journal,
            started_at,
            version: AtomicU64::new(0),
            actors: Mutex::new(BTreeMap::new()),
            restarts: Mutex::new(BTreeMap::new()),
            llm: Mutex::new(LlmHealth::default()),
            redis: Mutex::new(RedisHealth {
                state: RedisState::Disabled,
                backlog: 0,
                dropped: 0,
                mirrored: 0,
                last_error: None,
                left_behind: None,
            }),
            config: Mutex::new(ConfigHealth {
                source: "built-in defaults".into(),
                loaded_at: started_at,
                last_reload: None,
            }),
            mqtt: crate::mqtt::MqttStats::default(),
        }
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// Changes after every update of this health record; read it before the parts it versions.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }

    pub fn actor_started(&self, name: &str, component: Component) {
        let mut actors = lock(&self.actors);
        let entry = actors.entry(name.to_owned()).or_insert(ActorHealth {
            component,
            alive: false,
            restarts: 0,
            last_failure: None,
            last_failure_at: None,
        });
        let was_alive = std::mem::replace(&mut entry.alive, true);
        drop(actors);
        if !was_alive {
            self.tell(name, "up", None);
        }
        self.changed();
    }

    fn tell(&self, component: &str, state: &str, detail: Option<String>) {
        let change = StatusChange { component: component.to_owned(), state: state.to_owned(), detail };
        self.journal.append(self.clock.now(), Event::Status(Arc::new(change)));
    }

    /// Marks an actor down; `failure` is the reason when it failed rather than stopped.
    pub fn actor_down(&self, name: &str, failure: Option<(String, DateTime<Utc>)>) {
        let mut was_alive = false;
        let detail = failure.as_ref().map(|(reason, _)| reason.clone());
        if let Some(entry) = lock(&self.actors).get_mut(name) {
            was_alive = std::mem::replace(&mut entry.alive, false);
            if let Some((reason, at)) = failure {
                entry.last_failure = Some(reason);
                entry.last_failure_at = Some(at);
            }
        }
        if was_alive {
            self.tell(name, "down", detail);
        }
        self.changed();
    }

    pub fn actor_restarting(&self, name: &str) {
        if let Some(entry) = lock(&self.actors).get_mut(name) {
            entry.restarts += 1;
            *lock(&self.restarts).entry(entry.component).or_default() += 1;
        }
        self.changed();
    }

    /// Restarts since start, by kind of actor.
    pub fn restarts_by_component(&self) -> BTreeMap<Component, u64> {
        lock(&self.restarts).clone()
    }

    /// Forgets an actor removed on purpose (a sensor taken out of the configuration).
    pub fn actor_removed(&self, name: &str) {
        lock(&self.actors).remove(name);
        self.changed();
    }

    /// A sensor registered itself with its readings.
    pub fn sensor_registered(&self, sensor_id: &str) {
        self.tell(&format!("sensor:{sensor_id}"), "registered", None);
        self.changed();
    }

    /// A sensor was taken out of the configuration.
    pub fn sensor_removed(&self, sensor_id: &str) {
        self.tell(&format!("sensor:{sensor_id}"), "removed", None);
        self.changed();
    }

    pub fn actors(&self) -> BTreeMap<String, ActorHealth> {
        lock(&self.actors).clone()
    }

    pub fn actor_count(&self) -> usize {
        lock(&self.actors).len()
    }

    /// Every actor when there are at most `most`; else those worth a look — down, restarted, or
    /// not one of the many sensor actors — at most `2 × most` of them.
    pub fn notable_actors(&self, most: usize) -> BTreeMap<String, ActorHealth> {
        let actors = lock(&self.actors);
        if actors.len() <= most {
            return actors.clone();
        }
        let notable = |actor: &ActorHealth| {
            !actor.alive || actor.restarts > 0 || !matches!(actor.component, Component::Sensor | Component::Detector)
        };
        actors
            .iter()
            .filter(|(_, actor)| notable(actor))
            .take(2 * most)
            .map(|(name, actor)| (name.clone(), actor.clone()))
            .collect()
    }

    /// True when every actor of the component is alive (and at least one exists).
    pub fn all_alive(&self, component: Component) -> bool {
        let actors = lock(&self.actors);
        let mut of_kind = actors.values().filter(|actor| actor.component == component).peekable();
        of_kind.peek().is_some() && of_kind.all(|actor| actor.alive)
    }

    pub fn is_alive(&self, name: &str) -> bool {
        lock(&self.actors).get(name).is_some_and(|actor| actor.alive)
    }

    pub fn set_llm(&self, update: impl FnOnce(&mut LlmHealth)) {
        let mut llm = lock(&self.llm);
        let before = llm.state;
        update(&mut llm);
        let after = (llm.state != before).then(|| (llm.state, llm.reason.clone()));
        drop(llm);
        if let Some((state, reason)) = after {
            self.tell("llm", &state_name(&state), reason);
        }
        self.changed();
    }

    pub fn llm(&self) -> LlmHealth {
        lock(&self.llm).clone()
    }

    pub fn set_redis(&self, update: impl FnOnce(&mut RedisHealth)) {
        let mut redis = lock(&self.redis);
        let before = redis.state;
        update(&mut redis);
        let after = (redis.state != before).then(|| (redis.state, redis.last_error.clone()));
        drop(redis);
        if let Some((state, error)) = after {
            self.tell("redis", &state_name(&state), error);
        }
        self.changed();
    }

    pub fn redis(&self) -> RedisHealth {
        lock(&self.redis).clone()
    }

    /// The MQTT connection's state changed (told on the live stream), or its error did.
    pub fn set_mqtt(&self, state: crate::mqtt::MqttState, error: Option<String>) {
        if self.mqtt.set_state(state, error.clone()) {
            self.tell("mqtt", &state_name(&state), error);
            self.changed();
        }
    }

    pub fn set_config(&self, update: impl FnOnce(&mut ConfigHealth)) {
        update(&mut lock(&self.config));
        self.changed();
    }

    pub fn config(&self) -> ConfigHealth {
        lock(&self.config).clone()
    }
}

/// A state's name as `/status` spells it.
fn state_name<T: Serialize>(state: &T) -> String {
    match serde_json::to_value(state) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".to_owned(),
    }
}
