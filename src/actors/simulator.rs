//! `simulator:<sensor>` — stands in for one sensor of the plant: one source of readings among
//! others, handing them to the ingress like any gateway would.
//!
//! Messages: `Tick` from its own fixed-rate interval timer (tokio's interval catches up after a
//! stall rather than drifting); `SettingsChanged` from the supervisor after a reload changed the
//! generator's settings; `InjectFault`.
//!
//! On each tick it asks the seeded generator of [`crate::simulation`] for a reading and submits
//! it to the [`Ingress`], which routes it to the sensor's detectors, queues it while one is being
//! restarted, and refuses it (counted) if a detector's queue is full.
//!
//! The generator lives in a slot the supervisor keeps, so a restarted simulator continues the
//! same stream instead of replaying it from the seed.
//!
//! For load tests a simulator can run flat out ([`Pace::FlatOut`]): each `Tick` produces a batch
//! of readings stamped a nanosecond apart, waits until the detectors have room for it, submits
//! it whole, then queues the next `Tick` behind whatever else is in the mailbox, so stop and
//! reload messages still get through.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio_util::task::AbortOnDropHandle;

use crate::actors::Fault;
use crate::clock::Clock;
use crate::ingress::{Ingress, Refusal, SensorLane, Source};
use crate::simulation::SensorSimulator;
use crate::store::lock;

pub struct Simulator;

/// The generator of one sensor, kept across restarts of its actor.
pub type GeneratorSlot = Arc<Mutex<SensorSimulator>>;

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
    pub lane: Arc<SensorLane>,
    pub ingress: Arc<Ingress>,
    pub clock: Clock,
    pub pace: Pace,
}

pub enum SimulatorMsg {
    Tick,
    /// The supervisor changed the generator's settings: the reading interval may be new.
    SettingsChanged,
    InjectFault(Fault),
}

pub struct SimulatorState {
    generator: GeneratorSlot,
    lane: Arc<SensorLane>,
    ingress: Arc<Ingress>,
    clock: Clock,
    /// The period the running ticker was started with.
    interval: Duration,
    pace: Pace,
    ticker: Option<AbortOnDropHandle<()>>,
    /// The last timestamp given in flat-out mode, so a batch never repeats one.
    last_timestamp: Option<DateTime<Utc>>,
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
            lane: args.lane,
            ingress: args.ingress,
            clock: args.clock,
            pace: args.pace,
            ticker: None,
            last_timestamp: None,
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
}

impl SimulatorState {
    fn start_ticker(&mut self, myself: &ActorRef<SimulatorMsg>) {
        self.ticker = None;
        match self.pace {
            Pace::Scheduled => {
                let ticker = myself.send_interval(self.interval, || SimulatorMsg::Tick);
                self.ticker = Some(AbortOnDropHandle::new(ticker));
            }
            Pace::FlatOut { .. } => {
                let _ = myself.cast(SimulatorMsg::Tick);
            }
        }
    }

    async fn on_tick(&mut self, myself: &ActorRef<SimulatorMsg>) {
        match self.pace {
            Pace::Scheduled => {
                let now = self.clock.now();
                let reading = lock(&self.generator).step(now);
                if let Some(reading) = reading {
                    // Refusals are counted and logged by the ingress; a full queue drops this
                    // reading, as a real sensor's would be lost, rather than piling up.
                    let _ = self.ingress.submit_batch(Source::Simulator, &self.lane, std::slice::from_ref(&reading));
                }
            }
            Pace::FlatOut { batch } => {
                let mut timestamp = self.clock.now();
                let mut readings = Vec::with_capacity(batch);
                {
                    let mut generator = lock(&self.generator);
                    for _ in 0..batch {
                        if let Some(last) = self.last_timestamp {
                            timestamp = timestamp.max(last + chrono::TimeDelta::nanoseconds(1));
                        }
                        self.last_timestamp = Some(timestamp);
                        readings.extend(generator.step(timestamp));
                    }
                }
                self.lane.wait_for_room(readings.len()).await;
                if let Err(Refusal::Full { .. }) = self.ingress.submit_batch(Source::Simulator, &self.lane, &readings) {
                    // Another source filled the room meanwhile: this batch is dropped and counted.
                }
                let _ = myself.cast(SimulatorMsg::Tick);
            }
        }
    }

    fn on_settings_changed(&mut self, myself: &ActorRef<SimulatorMsg>) {
        let interval = lock(&self.generator).settings().interval;
        if interval != self.interval {
            self.interval = interval;
            self.start_ticker(myself);
        }
    }
}
