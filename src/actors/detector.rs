//! `detector:<sensor>:<parameter>` — watches one parameter of one sensor.
//!
//! Messages: `Sample` from its sensor's simulator for every reading; `CheckSilence` from its own
//! dropout timer; `SetRules` from the supervisor on reload; `InjectFault` from the supervisor
//! when fault injection is enabled.
//!
//! The episode state lives in a [`DetectorSlot`] in the store, not in the actor: a detector
//! restarted after a crash carries on with the episodes its predecessor had open, so it neither
//! raises an anomaly twice nor forgets a drift in progress. Each anomaly is recorded while the
//! slot is locked, so a crash cannot separate "state says raised" from "anomaly recorded".
//!
//! The dropout timer is one `send_after` at a time, aimed at the silence deadline; a reading
//! does not re-arm it (that would start a timer task per reading), it only moves the deadline,
//! and the timer re-aims itself when it fires early.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr};

use crate::actors::Fault;
use crate::clock::Clock;
use crate::detection::{Raised, Rejection, Rules};
use crate::domain::Anomaly;
use crate::store::{DetectorSlot, Store, lock};

pub struct Detector;

pub struct DetectorArgs {
    pub slot: DetectorSlot,
    pub rules: Rules,
    pub store: Arc<Store>,
    pub clock: Clock,
}

pub enum DetectorMsg {
    /// One reading's value for this parameter.
    Sample {
        timestamp: DateTime<Utc>,
        value: f64,
    },
    /// Several readings' values, oldest first (a flat-out simulator, or values queued while this
    /// detector was being restarted).
    Samples(Vec<(DateTime<Utc>, f64)>),
    /// The dropout timer fired.
    CheckSilence,
    /// New thresholds or durations from a reload; episodes in progress carry on.
    SetRules(Rules),
    /// Answered once every message before it is handled: a flat-out simulator waits on it so
    /// it never runs more than a batch ahead of its detectors.
    Barrier(tokio::sync::oneshot::Sender<()>),
    InjectFault(Fault),
}

pub struct DetectorState {
    slot: DetectorSlot,
    rules: Rules,
    store: Arc<Store>,
    clock: Clock,
    /// The `CheckSilence` on its way, if any; aborted when re-aimed so only one is ever pending.
    timer: Option<JoinHandle<Result<(), MessagingErr<DetectorMsg>>>>,
    /// Readings refused as not finite or out of order, for the debug log's rate.
    refused: u64,
}

impl Actor for Detector {
    type Msg = DetectorMsg;
    type State = DetectorState;
    type Arguments = DetectorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<DetectorMsg>,
        args: DetectorArgs,
    ) -> Result<DetectorState, ActorProcessingErr> {
        Ok(DetectorState {
            slot: args.slot,
            rules: args.rules,
            store: args.store,
            clock: args.clock,
            timer: None,
            refused: 0,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<DetectorMsg>,
        state: &mut DetectorState,
    ) -> Result<(), ActorProcessingErr> {
        state.arm_timer(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<DetectorMsg>,
        message: DetectorMsg,
        state: &mut DetectorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DetectorMsg::Sample { timestamp, value } => state.on_sample(&myself, timestamp, value),
            DetectorMsg::Samples(samples) => {
                for (timestamp, value) in samples {
                    state.on_sample(&myself, timestamp, value);
                }
            }
            DetectorMsg::CheckSilence => state.on_check_silence(&myself),
            DetectorMsg::SetRules(rules) => state.on_set_rules(&myself, rules),
            DetectorMsg::Barrier(done) => {
                let _ = done.send(());
            }
            DetectorMsg::InjectFault(fault) => return fault.trigger("detector"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<DetectorMsg>,
        state: &mut DetectorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(pending) = state.timer.take() {
            pending.abort();
        }
        Ok(())
    }
}

impl DetectorState {
    fn on_sample(&mut self, myself: &ActorRef<DetectorMsg>, timestamp: DateTime<Utc>, value: f64) {
        let now = self.clock.now();
        let mut detector = lock(&self.slot);
        match detector.observe(&self.rules, timestamp, value, now) {
            Ok(raised) if raised.is_empty() => {}
            Ok(raised) => self.record(raised, now),
            Err(rejection) => {
                self.refused += 1;
                let (sensor_id, parameter) = (detector.sensor_id().clone(), detector.parameter());
                match rejection {
                    Rejection::NotFinite => tracing::warn!(
                        component = %"detector", %sensor_id, %parameter, value, refused = self.refused,
                        "reading refused: not a finite number"
                    ),
                    Rejection::OutOfOrder { last } => tracing::warn!(
                        component = %"detector", %sensor_id, %parameter, %timestamp, %last, refused = self.refused,
                        "reading refused: older than the last one"
                    ),
                }
            }
        }
        drop(detector);
        if self.timer.is_none() {
            self.arm_timer(myself);
        }
    }

    fn on_check_silence(&mut self, myself: &ActorRef<DetectorMsg>) {
        self.timer = None;
        let now = self.clock.now();
        let mut detector = lock(&self.slot);
        if let Some(dropout) = detector.check_silence(&self.rules, now) {
            record(&self.store, dropout, now);
        }
        drop(detector);
        self.arm_timer(myself);
    }

    fn on_set_rules(&mut self, myself: &ActorRef<DetectorMsg>, rules: Rules) {
        self.rules = rules;
        // A shorter timeout moves the deadline earlier than the timer on its way.
        self.arm_timer(myself);
    }

    fn record(&self, raised: Raised, now: DateTime<Utc>) {
        for anomaly in raised {
            record(&self.store, anomaly, now);
        }
    }

    /// Aims the timer just past the silence deadline, since a dropout needs silence strictly
    /// longer than the timeout. No deadline (a dropout already raised): the next reading arms it.
    fn arm_timer(&mut self, myself: &ActorRef<DetectorMsg>) {
        if let Some(pending) = self.timer.take() {
            pending.abort();
        }
        let Some(deadline) = lock(&self.slot).silence_deadline(&self.rules) else { return };
        let wait = (deadline - self.clock.now()).to_std().unwrap_or_default() + Duration::from_millis(1);
        self.timer = Some(myself.send_after(wait, || DetectorMsg::CheckSilence));
    }
}

fn record(store: &Store, anomaly: Anomaly, now: DateTime<Utc>) {
    tracing::info!(
        component = %"detector",
        sensor_id = %anomaly.sensor_id,
        parameter = %anomaly.parameter,
        kind = %anomaly.kind,
        value = anomaly.value,
        id = %anomaly.id,
        detail = %anomaly.message,
        "anomaly raised"
    );
    store.record_anomaly(anomaly, now);
}
