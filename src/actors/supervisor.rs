//! `supervisor` — spawns, links and restarts every other actor, and stops them in order.
//!
//! Messages: `Restart` from its own backoff timers; `Register` from the ingress when a sensor
//! registers itself with its readings; `Reload` and `Shutdown` from the daemon's signal
//! handling; `InjectFault` from the API when fault injection is enabled; `Expire` from its own
//! timer, to drop anomalies past their retention when none arrive and to lift shelves that ran
//! out.
//!
//! Failure policy: one-for-one. A failed child is restarted after an exponential backoff
//! ([`crate::restart`]); more than `supervisor.max_restarts` failures of one child within
//! `supervisor.restart_window` and the supervisor gives up: it records why in [`Verdict`], stops
//! everything the same way a shutdown does (nothing accepted is lost on the way out), and stops;
//! the daemon exits non-zero so systemd or Docker restarts the process whole.
//!
//! **One stop path**, for a shutdown and a give-up alike: simulators and MQTT stop, the ingress closes
//! (other sources are refused from then on), detectors handle every value queued, the notifier
//! queues and delivers the last alarms' notifications, the summarizer words its open window, the
//! mirror writes what is left to Redis, then the API stops — each step bounded in time.
//!
//! Children are spawned without registry names (ractor keeps a crashing actor's name for a while,
//! which would make a quick restart collide); the supervisor keeps their refs itself.

mod children;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use children::ChildRef;
pub use children::{ChildKind, detector_name, simulator_name};

use crate::actors::Fault;
use crate::actors::api::{Api, ApiArgs};
use crate::actors::detector::{Detector, DetectorArgs, DetectorMsg};
use crate::actors::mirror::{Mirror, MirrorArgs, MirrorTuning};
use crate::actors::mqtt::{Mqtt, MqttArgs, MqttMsg};
use crate::actors::notifier::{Notifier, NotifierArgs};
use crate::actors::peers::{Peers, PeersArgs};
use crate::actors::simulator::{GeneratorSlot, Pace, Simulator, SimulatorArgs, SimulatorMsg};
use crate::actors::summarizer::{Summarizer, SummarizerArgs, SummarizerMsg, SummaryClaims};
use crate::actors::traced::Traced;
use crate::clock::Clock;
use crate::config::ValidConfig;
use crate::config::diff::ConfigDiff;
use crate::detection::Rules;
use crate::domain::SensorId;
use crate::ingress::{Ingress, SensorLane};
use crate::notify::{NotifyShared, Receiver};
use crate::restart::{Decision, RestartHistory, RestartPolicy};
use crate::simulation::{SensorSimulator, SimulationSettings, sensor_seed};
use crate::store::{Store, lock};

/// How often anomalies past their retention are dropped when nothing new arrives, and shelves
/// that ran out are lifted (so a shelve ends within a second of its time).
const EXPIRY_PERIOD: Duration = Duration::from_secs(1);
/// How long the stop path lets the peers' publisher catch up with the journal.
const PEERS_FLUSH: Duration = Duration::from_secs(1);
/// How long the stop path waits for each step (detectors draining, the mirror's last write, …).
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
    pub ingress: Arc<Ingress>,
    pub clock: Clock,
    pub verdict: Arc<Verdict>,
    /// Set by the daemon the moment a stop is asked for, so a long reload gives way at once.
    pub stop_requested: Arc<AtomicBool>,
    /// The seed simulators derive theirs from (the configured one, or one drawn at start).
    pub seed: u64,
    /// How fast simulators produce readings; flat out only in load tests.
    pub pace: Pace,
}

pub enum SupervisorMsg {
    /// A child's backoff has elapsed.
    Restart(String),
    /// A sensor registered live from its readings: start its detectors.
    Register(Arc<SensorLane>),
    /// Put a new, already validated config in force; `changes` is what differs from the one in
    /// force (the daemon computed it to report it); reply once applied.
    Reload {
        config: Box<ValidConfig>,
        changes: ConfigDiff,
        reply: RpcReplyPort<()>,
    },
    /// Stop everything along the stop path; reply when done.
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

struct Child {
    kind: ChildKind,
    running: Option<ChildRef>,
    history: RestartHistory,
}

pub struct SupervisorState {
    config: ValidConfig,
    store: Arc<Store>,
    ingress: Arc<Ingress>,
    clock: Clock,
    verdict: Arc<Verdict>,
    stop_requested: Arc<AtomicBool>,
    seed: u64,
    pace: Pace,
    policy: RestartPolicy,
    children: BTreeMap<String, Child>,
    by_actor: BTreeMap<ActorId, String>,
    generators: BTreeMap<SensorId, GeneratorSlot>,
    stopping: bool,
    expiry: Option<AbortOnDropHandle<()>>,
    /// The receivers, and what the notifier keeps across its restarts; None with no receiver.
    notify: Option<(Vec<Receiver>, Arc<NotifyShared>)>,
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
        // A token file that cannot be read fails the start with its reason.
        let notify = if args.config.notify.any_receiver() {
            let receivers = crate::notify::receivers(&args.config.notify).map_err(ActorProcessingErr::from)?;
            let shared = NotifyShared::new(&receivers, &args.config.notify, args.config.redis.url.is_empty());
            // Alarms restored from Redis were notified before the restart: only what happens to
            // them from now on is.
            let now = args.clock.now();
            let mut progress = lock(&shared.progress);
            for alarm in args.store.alarms() {
                progress.tracker.know(&alarm, now);
            }
            drop(progress);
            Some((receivers, Arc::new(shared)))
        } else {
            None
        };
        let registrar = myself.clone();
        args.ingress.set_registrar(Box::new(move |lane| {
            let _ = registrar.cast(SupervisorMsg::Register(lane));
        }));
        let mut state = SupervisorState {
            policy: RestartPolicy::from_config(&args.config.supervisor),
            config: args.config,
            store: args.store,
            ingress: args.ingress,
            clock: args.clock,
            verdict: args.verdict,
            stop_requested: args.stop_requested,
            seed: args.seed,
            pace: args.pace,
            children: BTreeMap::new(),
            by_actor: BTreeMap::new(),
            generators: BTreeMap::new(),
            stopping: false,
            expiry: None,
            notify,
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
        state.expiry = Some(AbortOnDropHandle::new(myself.send_interval(EXPIRY_PERIOD, || SupervisorMsg::Expire)));
        tracing::info!(children = state.children.len(), "all actors started");
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
            SupervisorMsg::Register(lane) => state.on_register(&myself, &lane).await,
            SupervisorMsg::Reload { config, changes, reply } => {
                state.on_reload(&myself, *config, &changes).await;
                let _ = reply.send(());
            }
            SupervisorMsg::Shutdown { reply } => {
                state.stop_all().await;
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
            SupervisorMsg::Expire => {
                let now = state.clock.now();
                state.store.expire(now);
                state.store.expire_shelves(now);
            }
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
            SupervisionEvent::ActorFailed(cell, err) => state.on_child_down(&myself, cell, err.to_string()).await,
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let reason = reason.unwrap_or_else(|| "stopped".into());
                state.on_child_down(&myself, cell, format!("stopped unexpectedly: {reason}")).await;
            }
            _ => {}
        }
        Ok(())
    }
}

impl SupervisorState {
    fn initial_children(&self) -> Vec<ChildKind> {
        let mut kinds = Vec::new();
        let sharding = self.config.cluster.sharding();
        // With shards, each daemon takes only the configured sensors its shard owns.
        for sensor in self.config.sensors.ids.iter().filter(|id| sharding.owns(id)) {
            let sensor_id = SensorId::new(sensor);
            self.ingress.add_sensor(&sensor_id);
            kinds.extend(self.sensor_children(&sensor_id, self.config.simulation.enabled));
        }
        kinds.push(ChildKind::Summarizer);
        if !self.config.redis.url.is_empty() {
            kinds.push(ChildKind::Mirror);
            kinds.push(ChildKind::Peers);
        }
        if !self.config.mqtt.url.is_empty() {
            // After the detectors, so the first message has somewhere to go.
            kinds.push(ChildKind::Mqtt);
        }
        if self.notify.is_some() {
            kinds.push(ChildKind::Notifier);
        }
        kinds.push(ChildKind::Api);
        kinds
    }

    /// A sensor's detectors (one per configured parameter) and, when simulated, its simulator.
    fn sensor_children(&self, sensor_id: &SensorId, simulated: bool) -> Vec<ChildKind> {
        let mut kinds: Vec<ChildKind> = self
            .config
            .parameter_list()
            .into_iter()
            .map(|parameter| ChildKind::Detector(sensor_id.clone(), parameter))
            .collect();
        if simulated {
            kinds.push(ChildKind::Simulator(sensor_id.clone()));
        }
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
        let missing = |what: &str| SpawnErr::StartupFailed(format!("{what} is not watched").into());
        match kind {
            ChildKind::Detector(sensor_id, parameter) => {
                let lane = self.ingress.lane(sensor_id.as_str()).ok_or_else(|| missing(sensor_id.as_str()))?;
                let inbox = lane.inbox(parameter.as_str()).ok_or_else(|| missing(parameter.as_str()))?;
                let args = DetectorArgs {
                    inbox,
                    rules: Rules::for_sensor(&self.config, sensor_id.as_str(), parameter.as_str()),
                    store: Arc::clone(&self.store),
                    clock: self.clock,
                };
                let (actor, _) =
                    Actor::spawn_linked(None, Traced::new(Detector, kind.component()), args, supervisor).await?;
                Ok(ChildRef::Detector(actor))
            }
            ChildKind::Simulator(sensor_id) => {
                let lane = self.ingress.lane(sensor_id.as_str()).ok_or_else(|| missing(sensor_id.as_str()))?;
                let args = SimulatorArgs {
                    generator: self.generator(sensor_id),
                    lane,
                    ingress: Arc::clone(&self.ingress),
                    clock: self.clock,
                    pace: self.pace,
                };
                let (actor, _) =
                    Actor::spawn_linked(None, Traced::new(Simulator, kind.component()), args, supervisor).await?;
                Ok(ChildRef::Simulator(actor))
            }
            ChildKind::Summarizer => {
                let args = SummarizerArgs {
                    config: self.config.llm.clone(),
                    store: Arc::clone(&self.store),
                    ingress: Arc::clone(&self.ingress),
                    clock: self.clock,
                    claims: SummaryClaims::from_config(&self.config),
                };
                let (actor, _) =
                    Actor::spawn_linked(None, Traced::new(Summarizer, kind.component()), args, supervisor).await?;
                Ok(ChildRef::Summarizer(actor))
            }
            ChildKind::Mirror => {
                let args = MirrorArgs {
                    redis: self.config.redis.clone(),
                    store: Arc::clone(&self.store),
                    ingress: Arc::clone(&self.ingress),
                    clock: self.clock,
                    tuning: MirrorTuning::default(),
                };
                let (actor, _) =
                    Actor::spawn_linked(None, Traced::new(Mirror, kind.component()), args, supervisor).await?;
                Ok(ChildRef::Mirror(actor))
            }
            ChildKind::Mqtt => {
                let args = MqttArgs {
                    config: self.config.clone(),
                    ingress: Arc::clone(&self.ingress),
                    store: Arc::clone(&self.store),
                    clock: self.clock,
                };
                let (actor, _) =
                    Actor::spawn_linked(None, Traced::new(Mqtt, kind.component()), args, supervisor).await?;
                Ok(ChildRef::Mqtt(actor))
            }
            ChildKind::Notifier => {
                let (receivers, shared) = self.notify.as_ref().ok_or_else(|| missing("notify"))?;
                let args = NotifierArgs {
                    config: self.config.notify.clone(),
                    redis: self.config.redis.clone(),
                    receivers: receivers.clone(),
                    shared: Arc::clone(shared),
                    store: Arc::clone(&self.store),
                    clock: self.clock,
                    instance: self.config.cluster.instance_id(),
                };
                let (actor, _) =
                    Actor::spawn_linked(None, Traced::new(Notifier, kind.component()), args, supervisor).await?;
                Ok(ChildRef::Notifier(actor))
            }
            ChildKind::Peers => {
                let args = PeersArgs { config: self.config.clone(), store: Arc::clone(&self.store), clock: self.clock };
                let (actor, _) =
                    Actor::spawn_linked(None, Traced::new(Peers, kind.component()), args, supervisor).await?;
                Ok(ChildRef::Peers(actor))
            }
            ChildKind::Api => {
                let args = ApiArgs {
                    config: self.config.clone(),
                    store: Arc::clone(&self.store),
                    ingress: Arc::clone(&self.ingress),
                    clock: self.clock,
                    supervisor: self.config.debug.fault_injection.then(|| myself.clone()),
                };
                let (actor, _) =
                    Actor::spawn_linked(None, Traced::new(Api, kind.component()), args, supervisor).await?;
                Ok(ChildRef::Api(actor))
            }
        }
    }

    fn generator(&mut self, sensor_id: &SensorId) -> GeneratorSlot {
        let settings = SimulationSettings::from_config(&self.config, sensor_id.as_str());
        let seed = sensor_seed(self.seed, sensor_id.as_str());
        let slot = self
            .generators
            .entry(sensor_id.clone())
            .or_insert_with(|| Arc::new(Mutex::new(SensorSimulator::new(sensor_id.clone(), seed, settings))));
        Arc::clone(slot)
    }

    async fn on_child_down(&mut self, myself: &ActorRef<SupervisorMsg>, cell: ActorCell, reason: String) {
        let Some(name) = self.by_actor.remove(&cell.get_id()) else { return };
        let Some(child) = self.children.get_mut(&name) else { return };
        child.running = None;
        if let ChildKind::Detector(sensor_id, parameter) = &child.kind
            && let Some(inbox) = self.ingress.lane(sensor_id.as_str()).and_then(|lane| lane.inbox(parameter.as_str()))
        {
            // Values keep queueing for the successor.
            inbox.detach();
        }
        if self.stopping {
            // Stopped on purpose (shutdown, give-up): down, but not failed.
            self.store.health.actor_down(&name, None);
            return;
        }
        self.on_failure(myself, name, reason).await;
    }

    /// A child is down for `reason` (a crash, or a restart that failed): mark it, then restart it
    /// after its backoff, or give up when it has failed too often.
    async fn on_failure(&mut self, myself: &ActorRef<SupervisorMsg>, name: String, reason: String) {
        self.store.health.actor_down(&name, Some((reason.clone(), self.clock.now())));
        let Some(child) = self.children.get_mut(&name) else { return };
        match child.history.on_failure(&self.policy, Instant::now()) {
            Decision::Restart { after } => {
                tracing::warn!(
                    actor = %name, error = %reason,
                    backoff_ms = after.as_millis() as u64, "actor failed; restarting"
                );
                myself.send_after(after, move || SupervisorMsg::Restart(name));
            }
            Decision::GiveUp { failures } => {
                let window = humantime::format_duration(self.policy.window);
                let verdict = format!("{name} failed {failures} times within {window}; last error: {reason}");
                tracing::error!(actor = %name, error = %reason, failures, "giving up: {verdict}");
                self.verdict.give_up(verdict);
                // The same way out as a shutdown: what was accepted is handled and written first.
                self.stop_all().await;
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
                tracing::info!(actor = %name, "actor restarted");
            }
            // Counts as another failure: a child that cannot even start is in a crash loop.
            Err(err) => Box::pin(self.on_failure(myself, name, format!("restart failed: {err}"))).await,
        }
    }

    /// A sensor the ingress registered from its readings: its values already queue in its lane;
    /// its detectors start and take them.
    async fn on_register(&mut self, myself: &ActorRef<SupervisorMsg>, lane: &SensorLane) {
        if self.stopping {
            return;
        }
        for kind in self.sensor_children(&lane.id, false) {
            let name = kind.name();
            if self.children.contains_key(&name) {
                continue;
            }
            if let Err(err) = self.add_child(myself, kind).await {
                tracing::error!(actor = %name, error = %err, "could not start a registered sensor's detector");
            }
        }
        self.store.health.sensor_registered(lane.id.as_str());
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
        self.ingress.set_config(&self.config);

        if changes.detection || changes.parameters {
            for (name, child) in &self.children {
                if let (ChildKind::Detector(sensor_id, parameter), Some(ChildRef::Detector(actor))) =
                    (&child.kind, &child.running)
                {
                    let rules = Rules::for_sensor(&self.config, sensor_id.as_str(), parameter.as_str());
                    if actor.cast(DetectorMsg::SetRules(rules)).is_err() {
                        tracing::warn!(actor = %name, "new rules not delivered; the restart will apply them");
                    }
                }
            }
        }
        if changes.simulation || changes.parameters {
            // The generators hold the settings, running simulator or not (one being restarted
            // picks them up); a running one is told, in case its interval changed.
            for (sensor_id, generator) in &self.generators {
                lock(generator).set_settings(SimulationSettings::from_config(&self.config, sensor_id.as_str()));
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
        if changes.mqtt_names || changes.parameters {
            for child in self.children.values() {
                if let Some(ChildRef::Mqtt(actor)) = &child.running {
                    let _ = actor.cast(MqttMsg::SetNames(Box::new(self.config.clone().into_inner())));
                }
            }
        }
        let removed: BTreeSet<SensorId> = changes.sensors_removed.iter().map(|id| SensorId::new(id)).collect();
        self.remove_sensors(&removed);
        if changes.parameters {
            self.follow_parameters(myself).await;
        }
        for sensor_id in &changes.sensors_added {
            if self.stop_requested.load(Ordering::Relaxed) {
                // A stop was asked for mid-reload: it wins; the rest of the reload is moot.
                return;
            }
            if !self.config.cluster.sharding().owns(sensor_id) {
                continue;
            }
            let sensor_id = SensorId::new(sensor_id);
            self.ingress.add_sensor(&sensor_id);
            for kind in self.sensor_children(&sensor_id, self.config.simulation.enabled) {
                let name = kind.name();
                if let Err(err) = self.add_child(myself, kind).await {
                    tracing::error!(actor = %name, error = %err, "could not start a new sensor's actor");
                }
            }
        }
    }

    /// Stops the actors of removed sensors: one pass over the children, each told to stop without
    /// waiting, so removing many sensors takes time in proportion to how many.
    fn remove_sensors(&mut self, removed: &BTreeSet<SensorId>) {
        if removed.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        self.children.retain(|name, child| {
            let keep = child.kind.sensor().is_none_or(|sensor_id| !removed.contains(sensor_id));
            if !keep {
                gone.push((name.clone(), child.running.take()));
            }
            keep
        });
        for (name, running) in gone {
            if let Some(running) = running {
                let cell = running.cell();
                self.by_actor.remove(&cell.get_id());
                cell.stop(Some("sensor removed".into()));
            }
            self.store.health.actor_removed(&name);
        }
        for sensor_id in removed {
            self.generators.remove(sensor_id);
            self.ingress.remove_sensor(sensor_id);
            self.store.health.sensor_removed(sensor_id.as_str());
        }
        tracing::info!(count = removed.len(), "sensors removed");
    }

    /// The configured parameters changed: every sensor gets detectors for the new ones, and
    /// loses those of parameters no longer configured.
    async fn follow_parameters(&mut self, myself: &ActorRef<SupervisorMsg>) {
        let parameters: BTreeSet<String> = self.config.parameters.keys().map(ToString::to_string).collect();
        let dropped: Vec<String> = self
            .children
            .iter()
            .filter(|(_, child)| {
                matches!(&child.kind, ChildKind::Detector(_, parameter) if !parameters.contains(parameter.as_str()))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in dropped {
            if let Some(child) = self.children.remove(&name)
                && let Some(running) = child.running
            {
                let cell = running.cell();
                self.by_actor.remove(&cell.get_id());
                cell.stop(Some("parameter removed".into()));
            }
            self.store.health.actor_removed(&name);
        }
        for lane in self.ingress.lanes() {
            for kind in self.sensor_children(&lane.id, false) {
                if self.stop_requested.load(Ordering::Relaxed) {
                    return;
                }
                if !self.children.contains_key(&kind.name()) {
                    let name = kind.name();
                    if let Err(err) = self.add_child(myself, kind).await {
                        tracing::error!(actor = %name, error = %err, "could not start a new parameter's detector");
                    }
                }
            }
        }
    }

    /// The stop path: simulators and MQTT stop; the ingress closes; detectors handle every value queued
    /// and stop; the notifier queues the last alarms' notifications and delivers what it can in
    /// a bounded time; the summarizer publishes its open window (`Flush`); the mirror writes what
    /// is left; the API stops last, so `/health` answers until the end. Each step is bounded by
    /// [`DRAIN_TIMEOUT`].
    async fn stop_all(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        let running: Vec<ChildRef> = self.children.values().filter_map(|child| child.running.clone()).collect();
        let step = |wanted: fn(&ChildRef) -> bool| running.iter().filter(move |child| wanted(child)).cloned();

        // The sources first: MQTT leaves what it has not handled with the broker for the next run.
        stop_together(
            step(|child| matches!(child, ChildRef::Simulator(_) | ChildRef::Mqtt(_))).map(|child| child.cell()),
        )
        .await;
        // The other sources are refused from here on (HTTP answers 503), so nothing new slips in
        // behind the drain.
        self.ingress.close();
        let detectors: Vec<_> = step(|child| matches!(child, ChildRef::Detector(_))).collect();
        let drains = detectors.iter().filter_map(|child| match child {
            ChildRef::Detector(actor) => Some(actor.clone()),
            _ => None,
        });
        let drains = drains.map(|actor| async move {
            let _ = ractor::call_t!(actor, DetectorMsg::Drain, DRAIN_TIMEOUT.as_millis() as u64);
        });
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, futures_util::future::join_all(drains)).await;
        let left = self.ingress.queued();
        if drained.is_err() || left > 0 {
            tracing::warn!(left_behind = left, "detectors did not handle every queued value before the stop");
        }
        stop_together(detectors.iter().map(ChildRef::cell)).await;
        // The last alarms are journalled: the notifier queues them and delivers what it can.
        for child in step(|child| matches!(child, ChildRef::Notifier(_))) {
            let _ = child.cell().drain_and_wait(Some(DRAIN_TIMEOUT)).await;
        }
        // The summarizer before the mirror (children are held by name, which would put the mirror
        // first), so that the summary of its open window is among what the mirror writes.
        for child in step(|child| matches!(child, ChildRef::Summarizer(_))) {
            if let ChildRef::Summarizer(actor) = &child {
                let _ = actor.call(|reply| SummarizerMsg::Flush { reply }, Some(DRAIN_TIMEOUT)).await;
            }
            let _ = child.cell().drain_and_wait(Some(DRAIN_TIMEOUT)).await;
        }
        for child in step(|child| matches!(child, ChildRef::Mirror(_))) {
            let _ = child.cell().drain_and_wait(Some(DRAIN_TIMEOUT)).await;
        }
        // The peers hear of the last window and alarms: the publisher gets a moment to catch up.
        for child in step(|child| matches!(child, ChildRef::Peers(_))) {
            let caught_up = async {
                while self.store.peers.published() < self.store.journal.newest_seq() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let _ = tokio::time::timeout(PEERS_FLUSH, caught_up).await;
            child.cell().stop_and_wait(Some("shutdown".into()), Some(DRAIN_TIMEOUT)).await.ok();
        }
        stop_together(step(|child| matches!(child, ChildRef::Api(_))).map(|child| child.cell())).await;
        tracing::info!("all actors stopped");
    }
}

/// Stops actors all at once and waits, bounded, for them to be gone.
async fn stop_together(cells: impl Iterator<Item = ActorCell>) {
    let waits = cells.map(|cell| async move { cell.stop_and_wait(Some("shutdown".into()), Some(DRAIN_TIMEOUT)).await });
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, futures_util::future::join_all(waits)).await;
}
