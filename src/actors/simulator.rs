//! `simulator:<sensor>` — stands in for one sensor of the plant.
//!
//! Messages: `Tick` from its own fixed-rate interval timer (tokio's interval catches up after a
//! stall rather than drifting); `SettingsChanged` from the supervisor after a reload changed the
//! generator's settings; `InjectFault`.
//!
//! On each tick it asks the seeded generator of [`crate::simulation`] for a reading, records it
//! as the sensor's last reading and sends each value to the sensor's detector for that parameter
//! (flat out, a batch of values in one message: the message, not the detection, is the cost).
//! Detectors are addressed through a [`SensorRoute`] that the supervisor updates when it
//! restarts one; a value that cannot be delivered while a detector is being restarted waits in a
//! short queue and goes out, in order and with its original timestamp, once the detector is back.
//!
//! The generator lives in a slot the supervisor keeps, so a restarted simulator continues the
//! same stream instead of replaying it from the seed.
//!
//! For load tests a simulator can run flat out ([`Pace::FlatOut`]): each `Tick` produces a batch
//! of readings stamped a nanosecond apart, then queues the next `Tick` behind whatever else is
//! in the mailbox, so stop and reload messages still get through.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr};
use tokio::sync::oneshot;

use crate::actors::Fault;
use crate::actors::detector::DetectorMsg;
use crate::clock::Clock;
use crate::domain::{Parameter, Reading};
use crate::simulation::SensorSimulator;
use crate::store::{SensorSlot, lock};

/// Values kept per parameter while its detector is down; a restart takes well under the time
/// this covers, and anything older is dropped rather than growing without bound.
const UNDELIVERED_CAPACITY: usize = 1024;

pub struct Simulator;

/// The generator of one sensor, kept across restarts of its actor.
pub type GeneratorSlot = Arc<Mutex<SensorSimulator>>;

/// Where a sensor's readings go: the current actor of each of its three detectors.
#[derive(Default)]
pub struct SensorRoute {
    detectors: [ArcSwapOption<ActorRef<DetectorMsg>>; 3],
}

impl SensorRoute {
    pub fn set(&self, parameter: Parameter, detector: Option<ActorRef<DetectorMsg>>) {
        self.detectors[parameter.index()].store(detector.map(Arc::new));
    }

    fn get(&self, parameter: Parameter) -> Option<Arc<ActorRef<DetectorMsg>>> {
        self.detectors[parameter.index()].load_full()
    }
}

/// How fast a simulator produces readings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// One reading per `sensors.interval`, as a real sensor would.
    Scheduled,
    /// As fast as the detectors take them, in batches of this many (load tests only).
    FlatOut { batch: usize },
}

pub struct SimulatorArgs {
    pub generator: GeneratorSlot,
    pub route: Arc<SensorRoute>,
    pub readings: Arc<SensorSlot>,
    pub clock: Clock,
    pub pace: Pace,
    /// Counts every reading produced, for `/status` and the load harness.
    pub produced: Arc<AtomicU64>,
}

pub enum SimulatorMsg {
    Tick,
    /// The supervisor changed the generator's settings: the reading interval may be new.
    SettingsChanged,
    InjectFault(Fault),
}

pub struct SimulatorState {
    generator: GeneratorSlot,
    route: Arc<SensorRoute>,
    readings: Arc<SensorSlot>,
    clock: Clock,
    /// The period the running ticker was started with.
    interval: Duration,
    pace: Pace,
    produced: Arc<AtomicU64>,
    ticker: Option<JoinHandle<()>>,
    undelivered: [VecDeque<(DateTime<Utc>, f64)>; 3],
    /// The last timestamp given in flat-out mode, so a batch never repeats one.
    last_timestamp: Option<DateTime<Utc>>,
    /// Flat out: the detectors' answers to the previous batch's barrier.
    previous_batch: Vec<oneshot::Receiver<()>>,
}

impl Actor for Simulator {
    type Msg = SimulatorMsg;
    type State = SimulatorState;
    type Arguments = SimulatorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SimulatorMsg>,
        args: SimulatorArgs,
    ) -> Result<SimulatorState, ActorProcessingErr> {
        let interval = lock(&args.generator).settings().interval;
        Ok(SimulatorState {
            interval,
            generator: args.generator,
            route: args.route,
            readings: args.readings,
            clock: args.clock,
            pace: args.pace,
            produced: args.produced,
            ticker: None,
            undelivered: Default::default(),
            last_timestamp: None,
            previous_batch: Vec::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SimulatorMsg>,
        state: &mut SimulatorState,
    ) -> Result<(), ActorProcessingErr> {
        state.start_ticker(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SimulatorMsg>,
        message: SimulatorMsg,
        state: &mut SimulatorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SimulatorMsg::Tick => state.on_tick(&myself).await,
            SimulatorMsg::SettingsChanged => state.on_settings_changed(&myself),
            SimulatorMsg::InjectFault(fault) => return fault.trigger("sensor"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SimulatorMsg>,
        state: &mut SimulatorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }
}

impl SimulatorState {
    fn start_ticker(&mut self, myself: &ActorRef<SimulatorMsg>) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        match self.pace {
            Pace::Scheduled => self.ticker = Some(myself.send_interval(self.interval, || SimulatorMsg::Tick)),
            Pace::FlatOut { .. } => {
                let _ = myself.cast(SimulatorMsg::Tick);
            }
        }
    }

    async fn on_tick(&mut self, myself: &ActorRef<SimulatorMsg>) {
        match self.pace {
            Pace::Scheduled => {
                let now = self.clock.now();
                self.produce(now);
                self.flush();
            }
            Pace::FlatOut { batch } => {
                let mut timestamp = self.clock.now();
                for _ in 0..batch {
                    if let Some(last) = self.last_timestamp {
                        timestamp = timestamp.max(last + chrono::TimeDelta::nanoseconds(1));
                    }
                    self.last_timestamp = Some(timestamp);
                    self.produce(timestamp);
                }
                self.flush();
                // Two batches in flight at most: this one, and the previous one we wait for.
                let barriers = self.send_barriers();
                for done in std::mem::replace(&mut self.previous_batch, barriers) {
                    // An error means the detector went away; its restart will take over.
                    let _ = done.await;
                }
                let _ = myself.cast(SimulatorMsg::Tick);
            }
        }
    }

    fn send_barriers(&self) -> Vec<oneshot::Receiver<()>> {
        Parameter::ALL
            .into_iter()
            .filter_map(|parameter| {
                let detector = self.route.get(parameter)?;
                let (done, wait) = oneshot::channel();
                detector.cast(DetectorMsg::Barrier(done)).ok().map(|()| wait)
            })
            .collect()
    }

    fn produce(&mut self, timestamp: DateTime<Utc>) {
        let reading = lock(&self.generator).step(timestamp);
        if let Some(reading) = reading {
            self.queue(&reading);
            self.readings.record(reading);
            self.produced.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_settings_changed(&mut self, myself: &ActorRef<SimulatorMsg>) {
        let interval = lock(&self.generator).settings().interval;
        if interval != self.interval {
            self.interval = interval;
            self.start_ticker(myself);
        }
    }

    /// Queues a reading's values for the detectors; [`Self::flush`] sends them.
    fn queue(&mut self, reading: &Reading) {
        for parameter in Parameter::ALL {
            let queue = &mut self.undelivered[parameter.index()];
            queue.push_back((reading.timestamp, reading.value(parameter)));
            if queue.len() > UNDELIVERED_CAPACITY {
                queue.pop_front();
                tracing::warn!(
                    component = %"sensor", sensor_id = %reading.sensor_id, %parameter,
                    "detector down too long: oldest undelivered value dropped"
                );
            }
        }
    }

    /// Sends each detector what is queued for it: one message for one value, one for a batch.
    /// What a detector being restarted cannot take stays queued, in order, for the next flush.
    fn flush(&mut self) {
        for parameter in Parameter::ALL {
            let queue = &mut self.undelivered[parameter.index()];
            if queue.is_empty() {
                continue;
            }
            let Some(detector) = self.route.get(parameter) else { continue };
            let message = if queue.len() == 1 {
                let (timestamp, value) = queue[0];
                DetectorMsg::Sample { timestamp, value }
            } else {
                DetectorMsg::Samples(queue.iter().copied().collect())
            };
            match detector.cast(message) {
                Ok(()) => queue.clear(),
                // The detector is between a crash and its restart: the values stay queued.
                Err(MessagingErr::SendErr(_)) => {}
                Err(err) => tracing::warn!(component = %"sensor", %parameter, error = %err, "detector unreachable"),
            }
        }
    }
}
