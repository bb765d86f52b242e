//! One sensor's way in: an [`Inbox`] per parameter, and what the sensor last reported.
//!
//! An inbox is a detector's real mailbox. The ingress pushes values into its bounded queue and
//! rings the detector's doorbell (one `Wake` message, however many values wait); the detector
//! takes them out and runs them through its [`ParameterDetector`], which lives in the same
//! inbox under the same lock. So:
//!
//! - a detector that crashes loses nothing queued: its successor finds the queue and the
//!   episode state where it left them, and values keep queueing while it restarts;
//! - a full queue refuses new readings (the HTTP client gets 429) instead of memory growing;
//! - ordering is decided once, here, for every source: a value is queued only if it is newer
//!   than the last one queued.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, Utc};
use ractor::ActorRef;
use tokio::sync::Notify;

use crate::actors::detector::DetectorMsg;
use crate::detection::ParameterDetector;
use crate::domain::{Parameter, Reading, SensorId, Values};
use crate::store::lock;

/// One value on its way to a detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub timestamp: DateTime<Utc>,
    pub value: f64,
    /// When the daemon took it, on its own clock: the detector measures silence from here.
    pub arrival: DateTime<Utc>,
}

/// A detector's queue and episode state, under one lock.
pub struct InboxState {
    pub detector: ParameterDetector,
    queue: VecDeque<Sample>,
    /// The newest timestamp queued (or processed): the next value must be newer.
    last_queued: Option<DateTime<Utc>>,
}

impl InboxState {
    pub fn pop(&mut self) -> Option<Sample> {
        self.queue.pop_front()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
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
    fn new(sensor_id: SensorId, parameter: Parameter, capacity: usize) -> Self {
        Self {
            state: Mutex::new(InboxState {
                detector: ParameterDetector::new(sensor_id, parameter),
                queue: VecDeque::new(),
                last_queued: None,
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

    /// A detector takes over this inbox: it is rung from now on.
    pub fn attach(&self, detector: ActorRef<DetectorMsg>) {
        self.doorbell.store(Some(Arc::new(detector)));
    }

    /// The detector is gone (crashed or stopped); values wait for the next one.
    pub fn detach(&self) {
        self.doorbell.store(None);
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
}

impl SensorLane {
    pub fn new(id: SensorId, parameters: &[Parameter], capacity: usize, registered: bool) -> Self {
        let mut inboxes: Vec<(Parameter, Arc<Inbox>)> = parameters
            .iter()
            .map(|parameter| (parameter.clone(), Arc::new(Inbox::new(id.clone(), parameter.clone(), capacity))))
            .collect();
        inboxes.sort_by(|a, b| a.0.cmp(&b.0));
        Self { id, registered, inboxes: ArcSwap::from_pointee(inboxes), last: Mutex::new(None) }
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
                let inbox = kept.unwrap_or_else(|| Arc::new(Inbox::new(self.id.clone(), parameter.clone(), capacity)));
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
                    .binary_search_by(|(known, _)| known.as_str().cmp(parameter.as_str()))
                    .map_err(|_| Blocked::UnknownParameter(parameter.to_string()))?;
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
            if guard.queue.len() + count > inbox.capacity() {
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
        for reading in readings {
            for (parameter, value) in reading.values.iter() {
                let guard = &mut guards[slot_of(&involved, &inboxes, parameter)];
                guard.queue.push_back(Sample { timestamp: reading.timestamp, value, arrival });
                guard.last_queued = Some(reading.timestamp);
            }
        }
        drop(guards);
        for &(index, _) in &involved {
            inboxes[index].1.ring();
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
                merged.values.set(parameter.clone(), value);
            }
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
