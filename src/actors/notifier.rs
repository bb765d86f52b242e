//! `notifier` — turns alarm events into notifications for Alertmanager and webhooks
//! ([`crate::notify`]). Spawned only when a receiver is configured.
//!
//! Messages: `Wake` from its follower task when something is journalled, and from its own
//! one-second tick; `Enqueued` from the task that wrote staged items to the Redis outbox;
//! `InjectFault`.
//!
//! It follows the journal by sequence number, as the mirror does, and derives each alarm's
//! transitions with the `AlarmTracker`; each transition a receiver wants goes into that
//! receiver's outbox. A memory outbox takes it at once; for a Redis outbox it is staged and
//! written by a spawned task (one at a time, aborted with the actor's state: a crash puts its
//! items back in the staging for the next notifier), so the mailbox never waits on Redis. The
//! cursor, the tracker and the staged items live in [`NotifyShared`], which the supervisor keeps:
//! a notifier restarted after a crash carries on exactly where its predecessor stopped.
//!
//! Delivery is the couriers' ([`crate::notify::courier`]): one task per receiver, spawned in
//! `post_start` and aborted with the actor's state (on a stop and on a crash alike).
//!
//! On a graceful stop (`drain_and_wait` from the supervisor, after the detectors drained, so the
//! last alarms are journalled) `post_stop` derives what is left, writes it to the outbox, and gives
//! the couriers up to `FINAL_FLUSH_BUDGET` to deliver it. With Redis, what they could not deliver
//! waits there for the next start.
//!
//! Failure policy: a receiver or Redis failing never fails the actor; the couriers retry, the
//! staged items wait (bounded by `notify.outbox_capacity`, the oldest dropped and counted).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::actors::Fault;
use crate::actors::traced;
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::{NotifyConfig, RedisConfig};
use crate::journal::Event;
use crate::notify::courier::{Courier, Outbox, http_client};
use crate::notify::redis_outbox::{OutboxKeys, OutboxSettings, RedisOutbox};
use crate::notify::{Item, NotifyShared, OutboxKind, Receiver, ReceiverStatus, display_url};
use crate::redis_link::{LinkTimeouts, RedisLink};
use crate::store::{Store, lock};

/// Journal entries looked at per pass.
const FOLLOW_BATCH: usize = 10_000;
/// Staged items written to Redis per round trip.
const ENQUEUE_BATCH: usize = 2_000;
/// A graceful stop spends at most this writing and delivering what is left; well within the
/// supervisor's drain timeout.
const FINAL_FLUSH_BUDGET: Duration = Duration::from_millis(1_500);
/// How often the notifier looks at the journal when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);

pub struct Notifier;

pub struct NotifierArgs {
    pub config: NotifyConfig,
    /// `redis.url` set: the outboxes are in Redis.
    pub redis: RedisConfig,
    pub receivers: Vec<Receiver>,
    pub shared: Arc<NotifyShared>,
    pub store: Arc<Store>,
    pub clock: Clock,
    /// `cluster.instance` (or the hostname): whose claims these are in a shared outbox.
    pub instance: String,
}

/// Items for Redis outboxes, with their receivers' names.
type Staged = Vec<(String, Arc<Item>)>;

pub enum NotifierMsg {
    /// Something may be new in the journal, or staged items wait.
    Wake,
    /// The write of staged items to Redis ended; on failure the items come back.
    Enqueued(Result<(), (String, Staged)>),
    InjectFault(Fault),
}

/// One receiver and where its notifications go.
struct Route {
    receiver: Receiver,
    outbox: Outbox,
    wake: Arc<Notify>,
}

pub struct NotifierState {
    config: NotifyConfig,
    store: Arc<Store>,
    clock: Clock,
    shared: Arc<NotifyShared>,
    routes: Vec<Route>,
    in_redis: bool,
    /// The write of staged items on its way, if one is.
    enqueuing: Option<Enqueuing>,
    enqueue_retry: Backoff,
    retry_at: Option<Instant>,
    /// Set while a `Wake` from the follower waits in the mailbox, so a flood sends only one.
    wake_pending: Arc<AtomicBool>,
    follower: Option<AbortOnDropHandle<()>>,
    tick: Option<AbortOnDropHandle<()>>,
    couriers: Vec<AbortOnDropHandle<()>>,
}

impl Actor for Notifier {
    type Msg = NotifierMsg;
    type State = NotifierState;
    type Arguments = NotifierArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<NotifierMsg>,
        args: NotifierArgs,
    ) -> Result<NotifierState, ActorProcessingErr> {
        let NotifierArgs { config, redis, receivers, shared, store, clock, instance } = args;
        let in_redis = !redis.url.is_empty();
        let link = if in_redis {
            let timeouts = LinkTimeouts {
                connect: Duration::from_secs(2),
                response: Duration::from_secs(5),
                retry_max: Duration::from_secs(5),
            };
            Some(RedisLink::open(&redis, timeouts)?)
        } else {
            None
        };
        let settings = OutboxSettings {
            capacity: config.outbox_capacity,
            lease: config.timeout + Duration::from_secs(5),
            dedup_window: config.dedup_window,
            timeout: Duration::from_secs(5),
            instance: claimant(&instance),
        };
        let mut routes = Vec::new();
        for receiver in receivers {
            let outbox = match (&link, shared.memory_outbox(&receiver.name)) {
                (Some(link), _) => Outbox::Redis(RedisOutbox::new(
                    link.clone(),
                    OutboxKeys::new(&redis.key_prefix, &receiver.name),
                    settings.clone(),
                )),
                (None, Some(memory)) => {
                    // A predecessor that crashed mid-delivery left items taken: they go again.
                    memory.recover(clock.now());
                    Outbox::Memory(memory)
                }
                (None, None) => return Err(format!("no outbox for receiver {}", receiver.name).into()),
            };
            let kind = if in_redis { OutboxKind::Redis } else { OutboxKind::Memory };
            store
                .notify
                .register(&receiver.name, ReceiverStatus::new(receiver.kind_name(), display_url(receiver.url()), kind));
            routes.push(Route { receiver, outbox, wake: Arc::new(Notify::new()) });
        }
        Ok(NotifierState {
            enqueue_retry: Backoff::new(config.retry_initial, config.retry_max),
            config,
            store,
            clock,
            shared,
            routes,
            in_redis,
            enqueuing: None,
            retry_at: None,
            wake_pending: Arc::new(AtomicBool::new(false)),
            follower: None,
            tick: None,
            couriers: Vec::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<NotifierMsg>,
        state: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        let client = http_client(state.config.timeout)?;
        for route in &state.routes {
            let courier = Courier {
                receiver: route.receiver.clone(),
                outbox: route.outbox.clone(),
                store: Arc::clone(&state.store),
                clock: state.clock,
                client: client.clone(),
                config: state.config.clone(),
                wake: Arc::clone(&route.wake),
            };
            state.couriers.push(AbortOnDropHandle::new(traced::spawn(courier.run())));
        }
        state.follower = Some(spawn_follower(&state.store, myself.clone(), Arc::clone(&state.wake_pending)));
        state.tick = Some(AbortOnDropHandle::new(myself.send_interval(TICK, || NotifierMsg::Wake)));
        tracing::info!(
            receivers = state.routes.len(),
            outbox = if state.in_redis { "redis" } else { "memory" },
            "notifications on"
        );
        state.on_wake(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<NotifierMsg>,
        message: NotifierMsg,
        state: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NotifierMsg::Wake => {
                state.wake_pending.store(false, Ordering::Release);
                state.on_wake(&myself);
            }
            NotifierMsg::Enqueued(outcome) => state.on_enqueued(&myself, outcome),
            NotifierMsg::InjectFault(fault) => return fault.trigger("notify"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<NotifierMsg>,
        state: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        state.follower = None;
        state.tick = None;
        state.final_flush().await;
        state.couriers.clear();
        Ok(())
    }
}

impl NotifierState {
    fn on_wake(&mut self, myself: &ActorRef<NotifierMsg>) {
        self.derive();
        if self.retry_at.is_none_or(|at| Instant::now() >= at) {
            self.start_enqueue(myself);
        }
    }

    /// Takes the journal's new alarm events, derives their transitions, and routes each to the
    /// receivers that want it: straight into a memory outbox, or staged for Redis.
    fn derive(&mut self) {
        let now = self.clock.now();
        let mut progress = lock(&self.shared.progress);
        let mut woken = vec![false; self.routes.len()];
        loop {
            let followed = self.store.journal.after(progress.cursor, FOLLOW_BATCH);
            if followed.missed > 0 {
                tracing::warn!(
                    missed = followed.missed,
                    "journal entries gone before notifications were derived from them"
                );
                progress.cursor += followed.missed;
            }
            let Some(last) = followed.entries.last() else { break };
            progress.cursor = last.seq;
            let taken = followed.entries.len();
            for entry in followed.entries {
                let Event::Alarm(alarm) = &entry.event else { continue };
                for transition in progress.tracker.observe(alarm, entry.at) {
                    let item = Arc::new(Item::new(transition, alarm, entry.at));
                    for (index, route) in self.routes.iter().enumerate() {
                        if !route.receiver.wants(transition, alarm, entry.at) {
                            continue;
                        }
                        match &route.outbox {
                            Outbox::Memory(outbox) => {
                                outbox.push(Arc::clone(&item), now);
                                woken[index] = true;
                            }
                            Outbox::Redis(_) => {
                                progress.staged.push_back((route.receiver.name.clone(), Arc::clone(&item)))
                            }
                        }
                    }
                }
            }
            if taken < FOLLOW_BATCH {
                break;
            }
        }
        let dropped = bound(&mut progress.staged, self.config.outbox_capacity.saturating_mul(self.routes.len().max(1)));
        drop(progress);
        for (name, count) in dropped {
            self.store.notify.update(&name, |status| status.dropped += count);
        }
        for (route, woken) in self.routes.iter().zip(woken) {
            if woken {
                route.wake.notify_one();
            }
        }
        self.publish_memory_backlogs();
    }

    /// Starts writing staged items to Redis, unless a write is on its way.
    fn start_enqueue(&mut self, myself: &ActorRef<NotifierMsg>) {
        if self.enqueuing.is_some() || !self.in_redis {
            return;
        }
        let batch: Vec<(String, Arc<Item>)> = {
            let mut progress = lock(&self.shared.progress);
            let take = progress.staged.len().min(ENQUEUE_BATCH);
            progress.staged.drain(..take).collect()
        };
        if batch.is_empty() {
            return;
        }
        let outboxes: BTreeMap<String, Outbox> =
            self.routes.iter().map(|route| (route.receiver.name.clone(), route.outbox.clone())).collect();
        let store = Arc::clone(&self.store);
        let myself = myself.clone();
        let written = batch.clone();
        let task = traced::spawn(async move {
            let outcome = enqueue(&outboxes, &store, &written).await.map_err(|error| (error, written));
            let _ = myself.cast(NotifierMsg::Enqueued(outcome));
        });
        self.enqueuing = Some(Enqueuing {
            batch: Some(batch),
            shared: Arc::clone(&self.shared),
            _task: AbortOnDropHandle::new(task),
        });
    }

    fn on_enqueued(&mut self, myself: &ActorRef<NotifierMsg>, outcome: Result<(), (String, Staged)>) {
        if let Some(mut enqueuing) = self.enqueuing.take() {
            // Settled here: nothing to put back.
            enqueuing.batch = None;
        }
        match outcome {
            Ok(()) => {
                self.enqueue_retry.reset();
                self.retry_at = None;
                for route in &self.routes {
                    route.wake.notify_one();
                }
                self.start_enqueue(myself);
            }
            Err((error, batch)) => {
                let mut progress = lock(&self.shared.progress);
                for staged in batch.into_iter().rev() {
                    progress.staged.push_front(staged);
                }
                let staged = progress.staged.len();
                drop(progress);
                if self.enqueue_retry.failures() == 0 {
                    tracing::warn!(error = %error, staged, "cannot write to the outbox in redis; keeping notifications staged");
                }
                let delay = self.enqueue_retry.next_delay();
                self.retry_at = Some(Instant::now() + delay);
                for route in &self.routes {
                    self.store.notify.update(&route.receiver.name, |status| {
                        status.state = crate::notify::ReceiverState::OutboxUnavailable;
                        status.last_error = Some(format!("outbox: {error}"));
                    });
                }
            }
        }
    }

    fn publish_memory_backlogs(&self) {
        for route in &self.routes {
            if let Outbox::Memory(outbox) = &route.outbox {
                let backlog = outbox.backlog() as u64;
                self.store.notify.update(&route.receiver.name, |status| status.backlog = backlog);
            }
        }
    }

    /// On a graceful stop: derive what is left, write it to the outbox, and give the couriers the
    /// rest of [`FINAL_FLUSH_BUDGET`] to deliver what is due.
    async fn final_flush(&mut self) {
        let deadline = Instant::now() + FINAL_FLUSH_BUDGET;
        self.derive();
        if self.in_redis && self.enqueuing.is_none() {
            let outboxes: BTreeMap<String, Outbox> =
                self.routes.iter().map(|route| (route.receiver.name.clone(), route.outbox.clone())).collect();
            let batch: Vec<(String, Arc<Item>)> = lock(&self.shared.progress).staged.drain(..).collect();
            let written = tokio::time::timeout_at(deadline, enqueue(&outboxes, &self.store, &batch)).await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::warn!(left_behind = batch.len(), "notifications not written to the outbox before the stop");
            }
        }
        for route in &self.routes {
            route.wake.notify_one();
        }
        while Instant::now() < deadline {
            let mut waiting = 0;
            for route in &self.routes {
                let reachable = self
                    .store
                    .notify
                    .receivers()
                    .get(&route.receiver.name)
                    .is_some_and(|status| status.state == crate::notify::ReceiverState::Ok);
                let backlog = tokio::time::timeout_at(deadline, route.outbox.backlog()).await;
                if reachable && matches!(backlog, Ok(Ok(n)) if n > 0) {
                    waiting += 1;
                }
            }
            if waiting == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let backlog = self.store.notify.total_backlog();
        tracing::info!(backlog, "notifier stopped");
    }
}

/// A write of staged items to Redis on its way. Dropped unsettled (the notifier crashed), it
/// aborts the write and stages its items again, first, for the notifier that follows: the
/// outbox's idempotency keys make a write that got partly through harmless to repeat.
struct Enqueuing {
    batch: Option<Staged>,
    shared: Arc<NotifyShared>,
    _task: AbortOnDropHandle<()>,
}

impl Drop for Enqueuing {
    fn drop(&mut self) {
        let Some(batch) = self.batch.take() else { return };
        let mut progress = lock(&self.shared.progress);
        for staged in batch.into_iter().rev() {
            progress.staged.push_front(staged);
        }
    }
}

/// Writes staged items to their receivers' Redis outboxes.
async fn enqueue(
    outboxes: &BTreeMap<String, Outbox>,
    store: &Store,
    batch: &[(String, Arc<Item>)],
) -> Result<(), String> {
    let mut by_receiver: BTreeMap<&str, Vec<Arc<Item>>> = BTreeMap::new();
    for (name, item) in batch {
        by_receiver.entry(name.as_str()).or_default().push(Arc::clone(item));
    }
    for (name, items) in by_receiver {
        let Some(outbox) = outboxes.get(name) else { continue };
        let dropped = outbox.push(&items, chrono::Utc::now()).await?;
        if dropped > 0 {
            tracing::warn!(receiver = %name, dropped, "outbox full: dropping the oldest notifications");
            store.notify.update(name, |status| status.dropped += dropped);
        }
    }
    Ok(())
}

/// Drops the oldest staged items past `most`; returns how many, by receiver.
fn bound(staged: &mut VecDeque<(String, Arc<Item>)>, most: usize) -> BTreeMap<String, u64> {
    let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
    while staged.len() > most {
        if let Some((name, _)) = staged.pop_front() {
            *dropped.entry(name).or_default() += 1;
        }
    }
    dropped
}

/// A name for this notifier in the outbox's claims: the daemon's instance (`cluster.instance`),
/// its process and a random part, so even two incarnations in one process tell their claims apart.
fn claimant(instance: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{instance}-{}-{random:016x}", std::process::id())
}

/// Wakes the notifier when something is journalled; ends with the notifier.
fn spawn_follower(
    store: &Store,
    notifier: ActorRef<NotifierMsg>,
    wake_pending: Arc<AtomicBool>,
) -> AbortOnDropHandle<()> {
    let mut journal = store.journal.subscribe();
    AbortOnDropHandle::new(traced::spawn(async move {
        loop {
            if journal.changed().await.is_err() {
                return;
            }
            if !wake_pending.swap(true, Ordering::AcqRel) && notifier.cast(NotifierMsg::Wake).is_err() {
                return;
            }
        }
    }))
}
