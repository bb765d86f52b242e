//! `supervisor` — spawns, links and restarts every other actor.
//!
//! Messages: `Restart` from its own backoff timers; `Reload` and `Shutdown` from the daemon's
//! signal handling; `InjectFault` from the API when fault injection is enabled; `Expire` from its
//! own timer, to drop anomalies past their retention when none arrive.
//!
//! Failure policy: one-for-one. A failed child is restarted after an exponential backoff
//! ([`crate::restart`]); more than `supervisor.max_restarts` failures of one child within
//! `supervisor.restart_window` and the supervisor gives up: it records why in [`Verdict`] and
//! stops, and the daemon exits non-zero so systemd or Docker restarts the process whole.
//!
//! Children are spawned without registry names (ractor keeps a crashing actor's name for a while,
//! which would make a quick restart collide); the supervisor keeps their refs itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent};
use tokio::time::Instant;

use crate::actors::Fault;
use crate::actors::api::{Api, ApiArgs, ApiMsg};
use crate::actors::detector::{Detector, DetectorArgs, DetectorMsg};
use crate::actors::mirror::{Mirror, MirrorArgs, MirrorMsg, MirrorTuning};
use crate::actors::simulator::{GeneratorSlot, Pace, SensorRoute, Simulator, SimulatorArgs, SimulatorMsg};
use crate::actors::summarizer::{Summarizer, SummarizerArgs, SummarizerMsg};
use crate::clock::Clock;
use crate::config::ValidConfig;
use crate::config::diff::ConfigDiff;
use crate::detection::Rules;
use crate::domain::{Parameter, SensorId};
use crate::health::Component;
use crate::restart::{Decision, RestartHistory, RestartPolicy};
use crate::simulation::{SensorSimulator, SimulationSettings, sensor_seed};
use crate::store::{Store, lock};

/// How often anomalies past their retention are dropped when nothing new arrives.
const EXPIRY_PERIOD: Duration = Duration::from_secs(10);
/// How long shutdown waits for each group of children to finish their mailboxes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Supervisor;

/// Why the supervisor stopped, read by the daemon to choose its exit code.
#[derive(Debug, Default)]
pub struct Verdict(Mutex<Option<String>>);

impl Verdict {
    /// The reason the supervisor gave up, if it did.
    pub fn gave_up(&self) -> Option<String> {
        lock(&self.0).clone()
    }

    fn give_up(&self, reason: String) {
        *lock(&self.0) = Some(reason);
    }
}

pub struct SupervisorArgs {
    pub config: ValidConfig,
    pub store: Arc<Store>,
    pub clock: Clock,
    pub verdict: Arc<Verdict>,
    /// The seed simulators derive theirs from (the configured one, or one drawn at start).
    pub seed: u64,
    /// How fast simulators produce readings; flat out only in load tests.
    pub pace: Pace,
}

pub enum SupervisorMsg {
    /// A child's backoff has elapsed.
    Restart(String),
    /// Put a new, already validated config in force; `changes` is what differs from the one in
    /// force (the daemon computed it to report it); reply once applied.
    Reload {
        config: Box<ValidConfig>,
        changes: ConfigDiff,
        reply: RpcReplyPort<()>,
    },
    /// Stop producing readings, let detectors finish, stop everything; reply when done.
    Shutdown {
        reply: RpcReplyPort<()>,
    },
    /// Make the named child fail (only reachable when `debug.fault_injection` is on).
    InjectFault {
        actor: String,
        fault: Fault,
        reply: RpcReplyPort<Result<(), String>>,
    },
    /// The names of the children and whether each is running, for tests and the fault endpoint.
    Children {
        reply: RpcReplyPort<Vec<(String, bool)>>,
    },
    Expire,
}

/// The children the supervisor knows how to spawn.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ChildKind {
    Simulator(SensorId),
    Detector(SensorId, Parameter),
    Summarizer,
    /// Only when `redis.url` is set.
    Mirror,
    Api,
}

impl ChildKind {
    fn name(&self) -> String {
        match self {
            ChildKind::Simulator(sensor_id) => format!("simulator:{sensor_id}"),
            ChildKind::Detector(sensor_id, parameter) => format!("detector:{sensor_id}:{parameter}"),
            ChildKind::Summarizer => "summarizer".into(),
            ChildKind::Mirror => "mirror".into(),
            ChildKind::Api => "api".into(),
        }
    }

    fn component(&self) -> Component {
        match self {
            ChildKind::Simulator(_) => Component::Sensor,
            ChildKind::Detector(..) => Component::Detector,
            ChildKind::Summarizer => Component::Llm,
            ChildKind::Mirror => Component::Redis,
            ChildKind::Api => Component::Api,
        }
    }
}

/// A running child, typed so the supervisor can message it.
#[derive(Clone)]
enum ChildRef {
    Simulator(ActorRef<SimulatorMsg>),
    Detector(ActorRef<DetectorMsg>),
    Summarizer(ActorRef<SummarizerMsg>),
    Mirror(ActorRef<MirrorMsg>),
    Api(ActorRef<ApiMsg>),
}

impl ChildRef {
    fn cell(&self) -> ActorCell {
        match self {
            ChildRef::Simulator(actor) => actor.get_cell(),
            ChildRef::Detector(actor) => actor.get_cell(),
            ChildRef::Summarizer(actor) => actor.get_cell(),
            ChildRef::Mirror(actor) => actor.get_cell(),
            ChildRef::Api(actor) => actor.get_cell(),
        }
    }

    fn inject(&self, fault: Fault) -> bool {
        match self {
            ChildRef::Simulator(actor) => actor.cast(SimulatorMsg::InjectFault(fault)).is_ok(),
            ChildRef::Detector(actor) => actor.cast(DetectorMsg::InjectFault(fault)).is_ok(),
            ChildRef::Summarizer(actor) => actor.cast(SummarizerMsg::InjectFault(fault)).is_ok(),
            ChildRef::Mirror(actor) => actor.cast(MirrorMsg::InjectFault(fault)).is_ok(),
            ChildRef::Api(actor) => actor.cast(ApiMsg::InjectFault(fault)).is_ok(),
        }
    }
}

struct Child {
    kind: ChildKind,
    running: Option<ChildRef>,
    history: RestartHistory,
}

pub struct SupervisorState {
    config: ValidConfig,
    store: Arc<Store>,
    clock: Clock,
    verdict: Arc<Verdict>,
    seed: u64,
    pace: Pace,
    policy: RestartPolicy,
    children: BTreeMap<String, Child>,
    by_actor: BTreeMap<ActorId, String>,
    routes: BTreeMap<SensorId, Arc<SensorRoute>>,
    generators: BTreeMap<SensorId, GeneratorSlot>,
    stopping: bool,
    expiry: Option<JoinHandle<()>>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            policy: RestartPolicy::from_config(&args.config.supervisor),
            config: args.config,
            store: args.store,
            clock: args.clock,
            verdict: args.verdict,
            seed: args.seed,
            pace: args.pace,
            children: BTreeMap::new(),
            by_actor: BTreeMap::new(),
            routes: BTreeMap::new(),
            generators: BTreeMap::new(),
            stopping: false,
            expiry: None,
        };
        // Detectors first, so the first reading of each simulator has somewhere to go; the API
        // last, so it answers only once there is something to serve. A child that cannot start
        // here fails the whole start with its reason (e.g. the listen address is taken).
        for kind in state.initial_children() {
            state.add_child(&myself, kind).await?;
        }
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.expiry = Some(myself.send_interval(EXPIRY_PERIOD, || SupervisorMsg::Expire));
        tracing::info!(component = %"supervisor", children = state.children.len(), "all actors started");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Restart(name) => state.on_restart(&myself, name).await,
            SupervisorMsg::Reload { config, changes, reply } => {
                state.on_reload(&myself, *config, &changes).await;
                let _ = reply.send(());
            }
            SupervisorMsg::Shutdown { reply } => {
                state.on_shutdown().await;
                let _ = reply.send(());
                myself.stop(Some("shutdown".into()));
            }
            SupervisorMsg::InjectFault { actor, fault, reply } => {
                let _ = reply.send(state.on_inject_fault(&actor, fault));
            }
            SupervisorMsg::Children { reply } => {
                let children = state.children.iter().map(|(name, child)| (name.clone(), child.running.is_some()));
                let _ = reply.send(children.collect());
            }
            SupervisorMsg::Expire => state.store.expire(state.clock.now()),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => state.on_child_down(&myself, cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let reason = reason.unwrap_or_else(|| "stopped".into());
                state.on_child_down(&myself, cell, format!("stopped unexpectedly: {reason}"));
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(expiry) = state.expiry.take() {
            expiry.abort();
        }
        Ok(())
    }
}

impl SupervisorState {
    fn initial_children(&self) -> Vec<ChildKind> {
        let mut kinds = Vec::new();
        for sensor in &self.config.sensors.ids {
            kinds.extend(sensor_children(&SensorId::new(sensor), self.config.simulation.enabled));
        }
        kinds.push(ChildKind::Summarizer);
        if !self.config.redis.url.is_empty() {
            kinds.push(ChildKind::Mirror);
        }
        kinds.push(ChildKind::Api);
        kinds
    }

    async fn add_child(&mut self, myself: &ActorRef<SupervisorMsg>, kind: ChildKind) -> Result<(), SpawnErr> {
        let name = kind.name();
        let running = self.spawn(myself, &kind).await?;
        self.by_actor.insert(running.cell().get_id(), name.clone());
        self.store.health.actor_started(&name, kind.component());
        self.children.insert(name, Child { kind, running: Some(running), history: RestartHistory::default() });
        Ok(())
    }

    async fn spawn(&mut self, myself: &ActorRef<SupervisorMsg>, kind: &ChildKind) -> Result<ChildRef, SpawnErr> {
        let supervisor = myself.get_cell();
        let now = self.clock.now();
        match kind {
            ChildKind::Detector(sensor_id, parameter) => {
                let args = DetectorArgs {
                    slot: self.store.detector_slot(sensor_id, *parameter, now),
                    rules: Rules::for_parameter(&self.config.detection, *parameter),
                    store: Arc::clone(&self.store),
                    clock: self.clock,
                };
                let (actor, _) = Actor::spawn_linked(None, Detector, args, supervisor).await?;
                self.route(sensor_id).set(*parameter, Some(actor.clone()));
                Ok(ChildRef::Detector(actor))
            }
            ChildKind::Simulator(sensor_id) => {
                let args = SimulatorArgs {
                    generator: self.generator(sensor_id),
                    route: self.route(sensor_id),
                    readings: self.store.sensor_slot(sensor_id),
                    clock: self.clock,
                    pace: self.pace,
                    produced: Arc::clone(&self.store.readings_produced),
                };
                let (actor, _) = Actor::spawn_linked(None, Simulator, args, supervisor).await?;
                Ok(ChildRef::Simulator(actor))
            }
            ChildKind::Summarizer => {
                let args = SummarizerArgs {
                    config: self.config.llm.clone(),
                    store: Arc::clone(&self.store),
                    clock: self.clock,
                };
                let (actor, _) = Actor::spawn_linked(None, Summarizer, args, supervisor).await?;
                Ok(ChildRef::Summarizer(actor))
            }
            ChildKind::Mirror => {
                let args = MirrorArgs {
                    redis: self.config.redis.clone(),
                    store: Arc::clone(&self.store),
                    clock: self.clock,
                    tuning: MirrorTuning::default(),
                };
                let (actor, _) = Actor::spawn_linked(None, Mirror, args, supervisor).await?;
                Ok(ChildRef::Mirror(actor))
            }
            ChildKind::Api => {
                let args = ApiArgs {
                    config: self.config.clone(),
                    store: Arc::clone(&self.store),
                    clock: self.clock,
                    supervisor: self.config.debug.fault_injection.then(|| myself.clone()),
                };
                let (actor, _) = Actor::spawn_linked(None, Api, args, supervisor).await?;
                Ok(ChildRef::Api(actor))
            }
        }
    }

    fn route(&mut self, sensor_id: &SensorId) -> Arc<SensorRoute> {
        Arc::clone(self.routes.entry(sensor_id.clone()).or_default())
    }

    fn generator(&mut self, sensor_id: &SensorId) -> GeneratorSlot {
        let settings = simulation_settings(&self.config);
        let seed = sensor_seed(self.seed, sensor_id.as_str());
        let slot = self
            .generators
            .entry(sensor_id.clone())
            .or_insert_with(|| Arc::new(Mutex::new(SensorSimulator::new(sensor_id.clone(), seed, settings))));
        Arc::clone(slot)
    }

    fn on_child_down(&mut self, myself: &ActorRef<SupervisorMsg>, cell: ActorCell, reason: String) {
        let Some(name) = self.by_actor.remove(&cell.get_id()) else { return };
        let Some(child) = self.children.get_mut(&name) else { return };
        child.running = None;
        if let ChildKind::Detector(sensor_id, parameter) = &child.kind
            && let Some(route) = self.routes.get(sensor_id)
        {
            route.set(*parameter, None);
        }
        if self.stopping {
            // Stopped on purpose (shutdown, give-up): down, but not failed.
            self.store.health.actor_down(&name, None);
            return;
        }
        self.on_failure(myself, name, reason);
    }

    /// A child is down for `reason` (a crash, or a restart that failed): mark it, then restart it
    /// after its backoff, or give up when it has failed too often.
    fn on_failure(&mut self, myself: &ActorRef<SupervisorMsg>, name: String, reason: String) {
        self.store.health.actor_down(&name, Some((reason.clone(), self.clock.now())));
        let Some(child) = self.children.get_mut(&name) else { return };
        match child.history.on_failure(&self.policy, Instant::now()) {
            Decision::Restart { after } => {
                tracing::warn!(
                    component = %"supervisor", actor = %name, error = %reason,
                    backoff_ms = after.as_millis() as u64, "actor failed; restarting"
                );
                myself.send_after(after, move || SupervisorMsg::Restart(name));
            }
            Decision::GiveUp { failures } => {
                let window = humantime::format_duration(self.policy.window);
                let verdict = format!("{name} failed {failures} times within {window}; last error: {reason}");
                tracing::error!(component = %"supervisor", actor = %name, error = %reason, failures, "giving up: {verdict}");
                self.verdict.give_up(verdict);
                self.stopping = true;
                myself.stop(Some("gave up".into()));
            }
        }
    }

    async fn on_restart(&mut self, myself: &ActorRef<SupervisorMsg>, name: String) {
        if self.stopping {
            return;
        }
        let Some(kind) =
            self.children.get(&name).filter(|child| child.running.is_none()).map(|child| child.kind.clone())
        else {
            return;
        };
        match self.spawn(myself, &kind).await {
            Ok(running) => {
                self.by_actor.insert(running.cell().get_id(), name.clone());
                self.store.health.actor_restarting(&name);
                self.store.health.actor_started(&name, kind.component());
                if let Some(child) = self.children.get_mut(&name) {
                    child.running = Some(running);
                }
                tracing::info!(component = %"supervisor", actor = %name, "actor restarted");
            }
            // Counts as another failure: a child that cannot even start is in a crash loop.
            Err(err) => self.on_failure(myself, name, format!("restart failed: {err}")),
        }
    }

    fn on_inject_fault(&self, actor: &str, fault: Fault) -> Result<(), String> {
        let child = self.children.get(actor).ok_or_else(|| format!("no actor named {actor:?}"))?;
        let running = child.running.as_ref().ok_or_else(|| format!("{actor} is not running (restarting)"))?;
        if running.inject(fault) { Ok(()) } else { Err(format!("{actor} did not take the message")) }
    }

    async fn on_reload(&mut self, myself: &ActorRef<SupervisorMsg>, config: ValidConfig, changes: &ConfigDiff) {
        self.config = config;
        self.policy = RestartPolicy::from_config(&self.config.supervisor);
        self.store.set_config(self.config.clone());

        if changes.detection {
            for (name, child) in &self.children {
                if let (ChildKind::Detector(_, parameter), Some(ChildRef::Detector(actor))) =
                    (&child.kind, &child.running)
                    && actor
                        .cast(DetectorMsg::SetRules(Rules::for_parameter(&self.config.detection, *parameter)))
                        .is_err()
                {
                    tracing::warn!(component = %"supervisor", actor = %name, "new rules not delivered; the restart will apply them");
                }
            }
        }
        if changes.simulation {
            // The generators hold the settings, running simulator or not (one being restarted
            // picks them up); a running one is told, in case its interval changed.
            let settings = simulation_settings(&self.config);
            for generator in self.generators.values() {
                lock(generator).set_settings(settings.clone());
            }
            for child in self.children.values() {
                if let Some(ChildRef::Simulator(actor)) = &child.running {
                    let _ = actor.cast(SimulatorMsg::SettingsChanged);
                }
            }
        }
        if changes.llm {
            for child in self.children.values() {
                if let Some(ChildRef::Summarizer(actor)) = &child.running {
                    let _ = actor.cast(SummarizerMsg::SetConfig(self.config.llm.clone()));
                }
            }
        }
        for sensor_id in &changes.sensors_removed {
            self.remove_sensor(&SensorId::new(sensor_id)).await;
        }
        for sensor_id in &changes.sensors_added {
            let sensor_id = SensorId::new(sensor_id);
            for kind in sensor_children(&sensor_id, self.config.simulation.enabled) {
                let name = kind.name();
                if let Err(err) = self.add_child(myself, kind).await {
                    tracing::error!(component = %"supervisor", actor = %name, error = %err, "could not start a new sensor's actor");
                }
            }
        }
    }

    async fn remove_sensor(&mut self, sensor_id: &SensorId) {
        let names: Vec<String> = self
            .children
            .iter()
            .filter(|(_, child)| matches!(&child.kind, ChildKind::Simulator(id) | ChildKind::Detector(id, _) if id == sensor_id))
            .map(|(name, _)| name.clone())
            .collect();
        for name in names {
            if let Some(child) = self.children.remove(&name)
                && let Some(running) = child.running
            {
                let cell = running.cell();
                self.by_actor.remove(&cell.get_id());
                let _ = cell.stop_and_wait(Some("sensor removed".into()), Some(DRAIN_TIMEOUT)).await;
            }
            self.store.health.actor_removed(&name);
        }
        self.routes.remove(sensor_id);
        self.generators.remove(sensor_id);
        self.store.remove_sensor(sensor_id);
        tracing::info!(component = %"supervisor", %sensor_id, "sensor removed");
    }

    /// Simulators first (no new readings), then detectors finish their mailboxes, then the
    /// summarizer publishes its open window, then the mirror writes all of it to Redis, then the API.
    async fn on_shutdown(&mut self) {
        self.stopping = true;
        let refs: Vec<ChildRef> = self.children.values().filter_map(|child| child.running.clone()).collect();
        for running in &refs {
            if let ChildRef::Simulator(actor) = running {
                let _ = actor.stop_and_wait(Some("shutdown".into()), Some(DRAIN_TIMEOUT)).await;
            }
        }
        for running in &refs {
            if let ChildRef::Detector(actor) = running {
                let _ = actor.drain_and_wait(Some(DRAIN_TIMEOUT)).await;
            }
        }
        for running in &refs {
            if let ChildRef::Summarizer(actor) = running {
                let _ = actor.call(|reply| SummarizerMsg::Flush { reply }, Some(DRAIN_TIMEOUT)).await;
            }
        }
        for running in &refs {
            if let ChildRef::Mirror(actor) = running {
                let _ = actor.drain_and_wait(Some(DRAIN_TIMEOUT)).await;
            }
        }
        for running in &refs {
            if let ChildRef::Api(actor) = running {
                let _ = actor.stop_and_wait(Some("shutdown".into()), Some(DRAIN_TIMEOUT)).await;
            }
        }
        tracing::info!(component = %"supervisor", "all actors stopped");
    }
}

fn sensor_children(sensor_id: &SensorId, simulated: bool) -> Vec<ChildKind> {
    let mut kinds: Vec<ChildKind> =
        Parameter::ALL.into_iter().map(|parameter| ChildKind::Detector(sensor_id.clone(), parameter)).collect();
    if simulated {
        kinds.push(ChildKind::Simulator(sensor_id.clone()));
    }
    kinds
}

fn simulation_settings(config: &ValidConfig) -> SimulationSettings {
    SimulationSettings::from_config(config.sensors.interval, &config.simulation, &config.detection)
}
