//! `detector:<sensor>:<parameter>` — watches one parameter of one sensor.
//!
//! Messages: `Wake` from the ingress when values wait in its [`Inbox`] (one per batch, however
//! many values); `CheckSilence` from its own dropout timer; `SetRules` from the supervisor on
//! reload; `Drain` from the supervisor at shutdown; `InjectFault`.
//!
//! The values and the episode state live in the inbox, not in the actor: a detector restarted
//! after a crash finds the values queued before and during its restart, and carries on with the
//! episodes its predecessor had open, so it neither loses a reading nor raises an anomaly twice.
//! While it runs, values that find nothing waiting are handled in the inbox by whoever hands
//! them in (see [`crate::ingress`]); the actor drains what waited (after a restart), keeps the
//! dropout timer, and puts reloads in force. Word that the device went offline (a Sparkplug
//! death certificate) comes through the inbox like a value ([`crate::ingress::Queued`]), so it is
//! judged after the values sent before it, and a detector restarted meanwhile finds it waiting. Either way values are run
//! through the state machine under the inbox's lock, and what they raise or clear is recorded
//! before the lock is let go, so a crash cannot separate "the state says raised" from "the
//! anomaly is recorded".
//!
//! The dropout timer is one `send_after` at a time, aimed at the silence deadline; a reading
//! does not re-arm it (that would start a timer task per reading), it only moves the deadline,
//! and the timer re-aims itself when it fires early. The timer handle is aborted when the state
//! is dropped, which happens on a crash too: nothing outlives the actor.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio_util::task::AbortOnDropHandle;

use crate::actors::Fault;
use crate::clock::Clock;
use crate::detection::Rules;
use crate::domain::Transition;
use crate::ingress::{Inbox, record};
use crate::store::Store;

/// Values handled per `Wake` before the detector lets other messages (its timer, a reload, a
/// stop) in; it rings itself for the rest.
const DRAIN_BATCH: usize = 1024;

pub struct Detector;

pub struct DetectorArgs {
    pub inbox: Arc<Inbox>,
    pub rules: Rules,
    pub store: Arc<Store>,
    pub clock: Clock,
}

pub enum DetectorMsg {
    /// Values wait in the inbox.
    Wake,
    /// The dropout timer fired.
    CheckSilence,
    /// New thresholds or durations from a reload; episodes in progress carry on.
    SetRules(Rules),
    /// Handle every value queued, then reply (the stop path, before the detector stops).
    Drain(RpcReplyPort<()>),
    InjectFault(Fault),
}

pub struct DetectorState {
    inbox: Arc<Inbox>,
    rules: Rules,
    store: Arc<Store>,
    clock: Clock,
    /// The `CheckSilence` on its way, if any; only one is ever pending.
    timer: Option<AbortOnDropHandle<Result<(), ractor::MessagingErr<DetectorMsg>>>>,
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
        Ok(DetectorState { inbox: args.inbox, rules: args.rules, store: args.store, clock: args.clock, timer: None })
    }

    async fn post_start(
        &self,
        myself: ActorRef<DetectorMsg>,
        state: &mut DetectorState,
    ) -> Result<(), ActorProcessingErr> {
        state.inbox.attach(myself.clone(), state.rules.clone(), Arc::clone(&state.store));
        // What queued while no detector ran (a restart) is handled first.
        state.on_wake(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<DetectorMsg>,
        message: DetectorMsg,
        state: &mut DetectorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DetectorMsg::Wake => state.on_wake(&myself),
            DetectorMsg::CheckSilence => state.on_check_silence(&myself),
            DetectorMsg::SetRules(rules) => state.on_set_rules(&myself, rules),
            DetectorMsg::Drain(reply) => {
                state.drain_all();
                let _ = reply.send(());
            }
            DetectorMsg::InjectFault(fault) => return fault.trigger("detector"),
        }
        Ok(())
    }
}

impl DetectorState {
    /// Handles up to a batch of waiting values; rings again for the rest.
    fn on_wake(&mut self, myself: &ActorRef<DetectorMsg>) {
        self.inbox.answer();
        let more = self.drain(DRAIN_BATCH);
        if more {
            self.inbox.ring();
        }
        if self.timer.is_none() {
            self.arm_timer(myself);
        }
    }

    fn drain_all(&mut self) {
        self.inbox.answer();
        while self.drain(DRAIN_BATCH) {}
    }

    /// Runs at most `max` queued values through the state machine; true if more wait.
    fn drain(&mut self, max: usize) -> bool {
        let inbox = Arc::clone(&self.inbox);
        let mut state = inbox.lock();
        for _ in 0..max {
            let Some(queued) = state.pop() else { break };
            state.handle_queued(queued);
        }
        let more = state.queued() > 0;
        drop(state);
        inbox.made_room();
        more
    }

    fn on_check_silence(&mut self, myself: &ActorRef<DetectorMsg>) {
        self.timer = None;
        // Values that arrived before the deadline speak for the sensor first.
        self.drain_all();
        let now = self.clock.now();
        let mut inbox = self.inbox.lock();
        if let Some(dropout) = inbox.detector.check_silence(&self.rules, now) {
            record(&self.store, vec![Transition::Raised(dropout)], now);
            inbox.checkpoint_if_due();
        }
        drop(inbox);
        self.arm_timer(myself);
    }

    fn on_set_rules(&mut self, myself: &ActorRef<DetectorMsg>, rules: Rules) {
        self.inbox.set_rules(rules.clone());
        self.rules = rules;
        // A shorter timeout moves the deadline earlier than the timer on its way.
        self.arm_timer(myself);
    }

    /// Aims the timer just past the silence deadline, since a dropout needs silence strictly
    /// longer than the timeout. No deadline (no reading yet, or a dropout already raised): the
    /// next reading arms it.
    fn arm_timer(&mut self, myself: &ActorRef<DetectorMsg>) {
        self.timer = None;
        let mut inbox = self.inbox.lock();
        // Told to the inbox, so a value handled there wakes this actor when no timer runs.
        let deadline = inbox.detector.silence_deadline(&self.rules);
        inbox.set_timer_armed(deadline.is_some());
        drop(inbox);
        let Some(deadline) = deadline else { return };
        let wait = (deadline - self.clock.now()).to_std().unwrap_or_default() + Duration::from_millis(1);
        self.timer = Some(AbortOnDropHandle::new(myself.send_after(wait, || DetectorMsg::CheckSilence)));
    }
}
