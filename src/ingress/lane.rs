//! One sensor's way in: an [`Inbox`] per parameter, and what the sensor last reported.
//!
//! An inbox is a detector's real mailbox, and holds its episode state ([`ParameterDetector`])
//! under the same lock.
//!
//! - **While its detector runs and nothing waits**, a value is run through the state machine
//!   right there, by whoever hands it in, under the inbox's lock, and what it raises is recorded
//!   before the lock is let go: no message, no task switch per value. The detector actor is
//!   woken only to arm its dropout timer.
//! - **While its detector is down** (crashed, restarting), values wait in the bounded queue, in
//!   order; the restarted detector drains them first. A full queue refuses new readings (the HTTP
//!   client gets 429) instead of memory growing. Once anything waits, later values wait behind it,
//!   so order is kept.
//! - Ordering is decided once, here, for every source: a value is taken only if it is newer than
//!   the last one taken.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, Utc};
use ractor::ActorRef;
use tokio::sync::{Notify, broadcast};

use crate::actors::detector::DetectorMsg;
use crate::detection::{ParameterDetector, Rules};
use crate::domain::{Parameter, Reading, SensorId, Transition, Values};
use crate::health::Component;
use crate::history::{HistoryLimits, SeriesHistory};
use crate::logging::component_span;
use crate::store::{Store, lock};

/// One value on its way to a detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub timestamp: DateTime<Utc>,
    pub value: f64,
    /// When the daemon took it, on its own clock: the detector measures silence from here.
    pub arrival: DateTime<Utc>,
}

/// What waits in a detector's queue: a value, or word that the device went offline. The word
/// waits behind the values sent before it, so they are judged first, and it waits in the queue
/// like they do, so a detector restarted meanwhile still raises the dropout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Queued {
    Value(Sample),
    /// The device said (a Sparkplug death certificate), at this time on the daemon's clock, that
    /// it went offline: raise the dropout now rather than after the timeout.
    Offline(DateTime<Utc>),
}

/// A detector's queue and episode state, under one lock.
pub struct InboxState {
    pub detector: ParameterDetector,
    queue: VecDeque<Queued>,
    /// The newest timestamp queued (or processed): the next value must be newer.
    last_queued: Option<DateTime<Utc>>,
    /// What values are run with when the detector runs: its rules and where to record.
    bound: Option<Bound>,
    /// The values taken, for trend charts.
    pub history: SeriesHistory,
    history_limits: Arc<HistoryLimits>,
}

/// A running detector's part of the inbox.
struct Bound {
    rules: Rules,
    store: Arc<Store>,
    /// The detector's dropout timer is on its way; when not (and there is a deadline), a value
    /// handled here wakes the detector to arm it.
    timer_armed: bool,
}

impl InboxState {
    pub fn pop(&mut self) -> Option<Queued> {
        self.queue.pop_front()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The rules in force, while a detector runs.
    pub fn rules(&self) -> Option<&Rules> {
        self.bound.as_ref().map(|bound| &bound.rules)
    }

    /// The detector armed (true) or let go (false) its dropout timer.
    pub fn set_timer_armed(&mut self, armed: bool) {
        if let Some(bound) = &mut self.bound {
            bound.timer_armed = armed;
        }
    }

    /// Runs one value through the state machine and records what it produced.
    pub fn handle(&mut self, sample: Sample) {
        let Some(bound) = &self.bound else { return };
        match self.detector.observe(&bound.rules, sample.timestamp, sample.value, sample.arrival) {
            Ok(transitions) => {
                self.history.record(sample.timestamp, sample.value, self.history_limits.get());
                record(&bound.store, transitions, sample.arrival);
                self.checkpoint_if_due();
            }
            Err(rejection) if tracing::enabled!(tracing::Level::DEBUG) => {
                component_span(Component::Detector).in_scope(|| {
                    tracing::debug!(
                        sensor_id = %self.detector.sensor_id(), parameter = %self.detector.parameter(),
                        ?rejection, "value refused by the detector"
                    )
                })
            }
            Err(_) => {}
        }
    }

    /// Runs what waited in the queue: a value, or the device going offline.
    pub fn handle_queued(&mut self, queued: Queued) {
        match queued {
            Queued::Value(sample) => self.handle(sample),
            Queued::Offline(at) => self.go_offline(at),
        }
    }

    /// The device went offline at `at`: the dropout is raised now, if the parameter reported and
    /// is not silent already.
    pub fn go_offline(&mut self, at: DateTime<Utc>) {
        let Some(bound) = &self.bound else { return };
        if let Some(dropout) = self.detector.go_offline(&bound.rules, at) {
            record(&bound.store, vec![Transition::Raised(dropout)], at);
            self.checkpoint_if_due();
        }
    }

    /// Hands the episode state to the store when an episode changed phase, for Redis.
    pub fn checkpoint_if_due(&mut self) {
        let Some(bound) = &self.bound else { return };
        if self.detector.checkpoint_due() {
            let key = (self.detector.sensor_id().clone(), self.detector.parameter().clone());
            bound.store.episodes.put(key, self.detector.checkpoint());
        }
    }

    /// Values go straight through: a detector runs, and nothing waits ahead of them.
    fn runs_now(&self) -> bool {
        self.bound.is_some() && self.queue.is_empty()
    }

    /// The detector should be woken to arm its timer.
    fn wants_timer(&self) -> bool {
        self.bound
            .as_ref()
            .is_some_and(|bound| !bound.timer_armed && self.detector.silence_deadline(&bound.rules).is_some())
    }
}

/// Records what a detector produced, logging each raise. A lane may run on its source's task (a
/// connection, the broker's intake), so the lines name the detector themselves.
pub fn record(store: &Store, transitions: Vec<Transition>, now: DateTime<Utc>) {
    if transitions.is_empty() {
        return;
    }
    // Only while something is logged: a flood raises hundreds of thousands a second.
    let _detector = tracing::enabled!(tracing::Level::INFO).then(|| component_span(Component::Detector).entered());
    for transition in transitions {
        match &transition {
            Transition::Raised(anomaly) => tracing::info!(
                sensor_id = %anomaly.sensor_id, parameter = %anomaly.parameter,
                kind = %anomaly.kind, value = anomaly.value, id = %anomaly.id, detail = %anomaly.message,
                "anomaly raised"
            ),
            Transition::Cleared(cleared) => tracing::debug!(
                sensor_id = %cleared.sensor_id, parameter = %cleared.parameter,
                kind = %cleared.kind, id = %cleared.anomaly_id, "episode cleared"
            ),
        }
        store.record(transition, now);
    }
}

/// Where one sensor × parameter's values wait for its detector.
pub struct Inbox {
    state: Mutex<InboxState>,
    capacity: AtomicUsize,
    /// The detector actor running now; None while it is being restarted.
    doorbell: ArcSwapOption<ActorRef<DetectorMsg>>,
    /// A `Wake` is on its way or the detector is draining: no need to send another.
    rung: AtomicBool,
    /// Producers waiting for room (flat-out simulators); the detector wakes them as it drains.
    waiting: AtomicUsize,
    room: Notify,
}

impl Inbox {
    fn new(sensor_id: SensorId, parameter: Parameter, capacity: usize, history_limits: Arc<HistoryLimits>) -> Self {
        Self {
            state: Mutex::new(InboxState {
                detector: ParameterDetector::new(sensor_id, parameter),
                queue: VecDeque::new(),
                last_queued: None,
                bound: None,
                history: SeriesHistory::default(),
                history_limits,
            }),
            capacity: AtomicUsize::new(capacity),
            doorbell: ArcSwapOption::empty(),
            rung: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            room: Notify::new(),
        }
    }

    /// The queue and the episode state, locked. Held for a batch of values at most.
    pub fn lock(&self) -> MutexGuard<'_, InboxState> {
        lock(&self.state)
    }

    /// A detector takes over this inbox with its rules: it is rung from now on, and values that
    /// find nothing waiting are handled at once.
    ///
    /// The first detector of a sensor × parameter resumes from the checkpoint Redis had at start,
    /// if any: it has handled nothing yet, and is taken only once.
    pub fn attach(&self, detector: ActorRef<DetectorMsg>, rules: Rules, store: Arc<Store>) {
        let mut state = self.lock();
        let (sensor_id, parameter) = (state.detector.sensor_id().clone(), state.detector.parameter().clone());
        if let Some(checkpoint) = store.episodes.take_restored(&sensor_id, &parameter) {
            state.detector = ParameterDetector::resume(sensor_id, parameter, checkpoint);
        }
        state.bound = Some(Bound { rules, store, timer_armed: false });
        drop(state);
        self.doorbell.store(Some(Arc::new(detector)));
    }

    /// The detector is gone (crashed or stopped); values wait for the next one.
    pub fn detach(&self) {
        self.lock().bound = None;
        self.doorbell.store(None);
    }

    /// A reload's new rules, for the episodes in progress.
    pub fn set_rules(&self, rules: Rules) {
        if let Some(bound) = &mut self.lock().bound {
            bound.rules = rules;
        }
    }

    /// The detector is about to drain: a value queued from now on rings again.
    pub fn answer(&self) {
        self.rung.store(false, Ordering::SeqCst);
    }

    /// Asks the detector to drain, unless a `Wake` is already on its way. A detector being
    /// restarted is not rung; it drains what waits when it starts.
    pub fn ring(&self) {
        if self.rung.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(detector) = self.doorbell.load().as_ref()
            && detector.cast(DetectorMsg::Wake).is_err()
        {
            // Between a crash and the supervisor noticing: the restarted detector drains.
        }
    }

    /// The detector has made room: wake producers that wait for it.
    pub fn made_room(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Waits until `count` more values fit (or a detector drained something).
    pub async fn wait_for_room(&self, count: usize) {
        loop {
            let notified = self.room.notified();
            if self.free() >= count.min(self.capacity()) {
                return;
            }
            self.waiting.fetch_add(1, Ordering::SeqCst);
            // Re-check after registering, so a drain in between is not missed.
            let enough = self.free() >= count.min(self.capacity());
            if !enough {
                notified.await;
            }
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            if enough {
                return;
            }
        }
    }

    fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    fn free(&self) -> usize {
        self.capacity().saturating_sub(self.lock().queued())
    }
}

/// Why a sensor's reading could not be queued; the ingress words it.
#[derive(Clone, Debug, PartialEq)]
pub enum Blocked {
    OutOfOrder { parameter: Parameter, last: DateTime<Utc> },
    Full { parameter: Parameter },
    UnknownParameter(String),
}

/// The inboxes of one sensor, in parameter-name order, and what it last reported.
pub struct SensorLane {
    pub id: SensorId,
    /// Registered live from its readings, rather than configured.
    pub registered: bool,
    inboxes: ArcSwap<Vec<(Parameter, Arc<Inbox>)>>,
    last: Mutex<Option<Reading>>,
    history_limits: Arc<HistoryLimits>,
    /// The live stream's readings, at most one a second per sensor, and when the last went.
    live: broadcast::Sender<Reading>,
    live_sent: Mutex<Option<DateTime<Utc>>>,
}

impl SensorLane {
    pub fn new(
        id: SensorId,
        parameters: &[Parameter],
        capacity: usize,
        registered: bool,
        history_limits: Arc<HistoryLimits>,
        live: broadcast::Sender<Reading>,
    ) -> Self {
        let mut inboxes: Vec<(Parameter, Arc<Inbox>)> = parameters
            .iter()
            .map(|parameter| {
                let inbox = Inbox::new(id.clone(), parameter.clone(), capacity, Arc::clone(&history_limits));
                (parameter.clone(), Arc::new(inbox))
            })
            .collect();
        inboxes.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            id,
            registered,
            inboxes: ArcSwap::from_pointee(inboxes),
            last: Mutex::new(None),
            history_limits,
            live,
            live_sent: Mutex::new(None),
        }
    }

    pub fn inbox(&self, parameter: &str) -> Option<Arc<Inbox>> {
        self.inboxes.load().iter().find(|(known, _)| known.as_str() == parameter).map(|(_, inbox)| Arc::clone(inbox))
    }

    pub fn inboxes(&self) -> Arc<Vec<(Parameter, Arc<Inbox>)>> {
        self.inboxes.load_full()
    }

    pub fn parameters(&self) -> Vec<Parameter> {
        self.inboxes.load().iter().map(|(parameter, _)| parameter.clone()).collect()
    }

    /// A reload configured new parameters, or dropped some: the sensor follows. Episode state of
    /// the parameters kept carries on.
    pub fn set_parameters(&self, parameters: &[Parameter], capacity: usize) {
        let current = self.inboxes.load_full();
        let mut next: Vec<(Parameter, Arc<Inbox>)> = parameters
            .iter()
            .map(|parameter| {
                let kept = current.iter().find(|(known, _)| known == parameter).map(|(_, inbox)| Arc::clone(inbox));
                let inbox = kept.unwrap_or_else(|| {
                    let limits = Arc::clone(&self.history_limits);
                    Arc::new(Inbox::new(self.id.clone(), parameter.clone(), capacity, limits))
                });
                inbox.capacity.store(capacity, Ordering::Relaxed);
                (parameter.clone(), inbox)
            })
            .collect();
        next.sort_by(|a, b| a.0.cmp(&b.0));
        self.inboxes.store(Arc::new(next));
    }

    /// What the sensor last reported: the newest timestamp, and each parameter's last value.
    pub fn last_reading(&self) -> Option<Reading> {
        lock(&self.last).clone()
    }

    /// Queues a batch of readings of this sensor, all or nothing: every value of every reading
    /// must have a configured parameter, be in order, and fit. The inboxes involved are locked
    /// together (always in name order, so two producers cannot deadlock), then rung.
    pub fn queue(&self, readings: &[Reading], arrival: DateTime<Utc>) -> Result<(), Blocked> {
        let inboxes = self.inboxes.load();
        // Which inboxes, and how many values each gets.
        let mut involved: Vec<(usize, usize)> = Vec::with_capacity(inboxes.len());
        for reading in readings {
            for (parameter, _) in reading.values.iter() {
                let index = inboxes
                    .iter()
                    .position(|(known, _)| known == parameter)
                    .ok_or_else(|| Blocked::UnknownParameter(parameter.to_string()))?;
                match involved.iter_mut().find(|(known, _)| *known == index) {
                    Some((_, count)) => *count += 1,
                    None => involved.push((index, 1)),
                }
            }
        }
        involved.sort_unstable();
        let mut guards: Vec<MutexGuard<'_, InboxState>> =
            involved.iter().map(|&(index, _)| inboxes[index].1.lock()).collect();
        for (&(index, count), guard) in involved.iter().zip(&guards) {
            let (parameter, inbox) = &inboxes[index];
            if !guard.runs_now() && guard.queue.len() + count > inbox.capacity() {
                return Err(Blocked::Full { parameter: parameter.clone() });
            }
        }
        // In order within the batch and after what is queued: checked on copies of the cursors,
        // so a refusal half-way leaves nothing queued. A sensor whose clock stepped back is let
        // through once, when its dropout is raised and nothing waits (see `crate::detection`).
        let mut cursors: Vec<(Option<DateTime<Utc>>, bool)> = guards
            .iter()
            .map(|guard| (guard.last_queued, guard.queue.is_empty() && guard.detector.is_silent()))
            .collect();
        for reading in readings {
            for (parameter, _) in reading.values.iter() {
                let (last, exempt) = &mut cursors[slot_of(&involved, &inboxes, parameter)];
                let fresh = last.is_none_or(|last| reading.timestamp > last);
                if !(fresh || std::mem::replace(exempt, false)) {
                    let last = last.unwrap_or(reading.timestamp);
                    return Err(Blocked::OutOfOrder { parameter: parameter.clone(), last });
                }
                *exempt = false;
                *last = Some(reading.timestamp);
            }
        }
        let runs_now: Vec<bool> = guards.iter().map(|guard| guard.runs_now()).collect();
        for reading in readings {
            for (parameter, value) in reading.values.iter() {
                let slot = slot_of(&involved, &inboxes, parameter);
                let guard = &mut guards[slot];
                let sample = Sample { timestamp: reading.timestamp, value, arrival };
                if runs_now[slot] {
                    guard.handle(sample);
                } else {
                    guard.queue.push_back(Queued::Value(sample));
                }
                guard.last_queued = Some(reading.timestamp);
            }
        }
        let wake: Vec<bool> =
            guards.iter().zip(&runs_now).map(|(guard, runs_now)| !runs_now || guard.wants_timer()).collect();
        drop(guards);
        for (&(index, _), wake) in involved.iter().zip(wake) {
            if wake {
                inboxes[index].1.ring();
            }
        }
        if let Some(newest) = readings.iter().max_by_key(|reading| reading.timestamp) {
            self.remember(readings, newest.timestamp);
        }
        Ok(())
    }

    /// Merges what the readings carried into the sensor's last reading.
    fn remember(&self, readings: &[Reading], newest: DateTime<Utc>) {
        let mut last = lock(&self.last);
        let merged = last.get_or_insert_with(|| Reading {
            sensor_id: self.id.clone(),
            timestamp: newest,
            values: Values::new(),
        });
        merged.timestamp = merged.timestamp.max(newest);
        for reading in readings {
            for (parameter, value) in reading.values.iter() {
                merged.values.set_from(parameter, value);
            }
        }
        if self.live.receiver_count() == 0 {
            return;
        }
        let mut sent = lock(&self.live_sent);
        if sent.is_none_or(|sent| newest.signed_duration_since(sent) >= chrono::TimeDelta::seconds(1)) {
            *sent = Some(newest);
            let _ = self.live.send(merged.clone());
        }
    }

    /// The device behind this sensor went offline at `at`: each inbox whose detector runs with
    /// nothing waiting raises its dropout at once; the others queue the word behind the values
    /// already there (even into a full queue, but never twice in a row, so a storm of death
    /// certificates cannot grow one) for their detector to find.
    pub fn go_offline(&self, at: DateTime<Utc>) {
        for (_, inbox) in self.inboxes.load().iter() {
            let mut state = inbox.lock();
            if state.runs_now() {
                state.go_offline(at);
                continue;
            }
            if !matches!(state.queue.back(), Some(Queued::Offline(_))) {
                state.queue.push_back(Queued::Offline(at));
            }
            drop(state);
            inbox.ring();
        }
    }

    /// Waits until `count` more values fit in every inbox.
    pub async fn wait_for_room(&self, count: usize) {
        for (_, inbox) in self.inboxes.load().iter() {
            inbox.wait_for_room(count).await;
        }
    }

    /// Values waiting in this sensor's inboxes.
    pub fn queued(&self) -> usize {
        self.inboxes.load().iter().map(|(_, inbox)| inbox.lock().queued()).sum()
    }
}

/// Where `parameter`'s inbox is among the ones a batch involves (it is there: the batch was
/// sorted into them).
fn slot_of(involved: &[(usize, usize)], inboxes: &[(Parameter, Arc<Inbox>)], parameter: &Parameter) -> usize {
    involved.iter().position(|&(index, _)| inboxes[index].0 == *parameter).unwrap_or(0)
}
