//! `mirror` — the single writer to Redis.
//!
//! Messages: `Wake` from its follower task when the store records an anomaly or a summary, and
//! from its own tick (readings, status, retention); `Flushed` from the write task it spawned;
//! `Retry` from its own backoff timer after a failed write; `InjectFault` from the supervisor.
//!
//! It follows the store rather than being sent every anomaly: it remembers the sequence number
//! of the last anomaly it took, and on each wake moves what came after into its backlog and
//! writes the backlog in pipelines laid out by [`crate::redis_layout`]. Detectors and the API
//! never wait for it, and at most one write is on the network at a time, in a spawned task that
//! reports back, so the mailbox never waits on Redis.
//!
//! While Redis is away, writes wait in a backlog bounded by `redis.backlog_capacity` (the oldest
//! dropped and counted when full), and a write is retried with a doubling delay; the first
//! write that succeeds flushes the backlog. `/status` shows the state, the backlog, the drops,
//! the count mirrored and the last error.
//!
//! Every write also sets the layout marker if it is missing (see [`crate::redis_layout`]): once a
//! write of this mirror has seen it, a write that finds it missing went into a Redis that lost
//! its data, and everything the store retains is queued to be written again.
//!
//! Failure policy: Redis errors are expected and never fail the actor. A mirror restarted after
//! a crash starts from the store's oldest anomaly and writes everything the store holds again:
//! the same anomaly is the same sorted-set member, so this costs one pass, not duplicates, and
//! recovers what its predecessor still had in its backlog. The same holds after a restore.
//!
//! On a graceful stop (`drain_and_wait` from the supervisor, after the detectors have drained)
//! `post_stop` waits for the write on its way and flushes what is left, within a bounded time;
//! what it could not write is logged at WARN with its count and makes the process exit with 5.
//!
//! [`restore_at_start`] runs before any actor: it puts the last 24 h of anomalies and the
//! recent summaries back into the store, so `/anomalies` answers after a restart as before it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::actors::Fault;
use crate::actors::traced;
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::RedisConfig;
use crate::domain::{Anomaly, SensorId, Summary};
use crate::health::RedisState;
use crate::ingress::Ingress;
use crate::journal::Event;
use crate::redis_layout::{
    AuditLimits, Backlog, Batch, Keys, Limits, Records, batch_pipeline, marker_was_missing, pull_budget, status_fields,
};
use crate::redis_link::{LinkTimeouts, RedisLink};
use crate::store::Store;

mod records;
mod restore;
use records::RecordQueue;
pub use restore::{Restored, restore, restore_at_start};

/// How long a graceful stop may spend flushing; below the supervisor's drain timeout.
const FINAL_FLUSH_BUDGET: Duration = Duration::from_millis(2_500);
/// Drops are logged at most this often.
const DROP_WARNING_PERIOD: Duration = Duration::from_secs(10);

pub struct Mirror;

/// Timings and sizes of the mirror; the defaults suit production, tests shorten them.
#[derive(Clone, Debug)]
pub struct MirrorTuning {
    /// Most anomalies in one pipeline.
    pub batch: usize,
    /// How often readings, status and retention are looked at when no anomaly wakes the mirror.
    pub tick: Duration,
    /// How often the status hash is rewritten.
    pub status_every: Duration,
    /// A write without an answer by then counts as failed (the command timeout too).
    pub write_timeout: Duration,
    /// One connection attempt.
    pub connect_timeout: Duration,
    /// First wait after a failed write; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Default for MirrorTuning {
    fn default() -> Self {
        Self {
            batch: 10_000,
            tick: Duration::from_millis(250),
            status_every: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retry_initial: Duration::from_millis(250),
            retry_max: Duration::from_secs(5),
        }
    }
}

pub struct MirrorArgs {
    pub redis: RedisConfig,
    pub store: Arc<Store>,
    /// Where each sensor's last reading is.
    pub ingress: Arc<Ingress>,
    pub clock: Clock,
    pub tuning: MirrorTuning,
}

pub enum MirrorMsg {
    /// Something may be new in the store, or a periodic write is due.
    Wake,
    /// The write task of this generation has finished.
    Flushed(u64),
    /// The delay after a failed write has elapsed.
    Retry,
    InjectFault(Fault),
}

/// What the mirror knows of Redis.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    /// No write has succeeded yet; `failed` once one has not.
    Connecting {
        failed: bool,
    },
    Up,
    /// Writes were succeeding, then one failed at `since`.
    Down {
        since: Instant,
    },
}

impl Link {
    fn answering(self) -> bool {
        matches!(self, Link::Up | Link::Connecting { failed: false })
    }

    fn state(self) -> RedisState {
        match self {
            Link::Connecting { .. } => RedisState::Connecting,
            Link::Up => RedisState::Connected,
            Link::Down { .. } => RedisState::Reconnecting,
        }
    }
}

/// What a write covers, so that its success can be recorded or its anomalies put back.
#[derive(Default)]
struct Pending {
    anomalies: Vec<Arc<Anomaly>>,
    summary_seq: Option<u64>,
    readings: Option<BTreeMap<SensorId, DateTime<Utc>>>,
    status: bool,
    records: Records,
}

/// What a write that succeeded found.
#[derive(Clone, Copy, Debug)]
struct Written {
    /// The layout marker was missing: the write went into an empty Redis.
    into_empty: bool,
}

struct InFlight {
    generation: u64,
    pending: Pending,
    /// Aborted with the state, on a stop and on a crash alike: a crashed mirror's write cannot
    /// land after its successor's and put older snapshots back.
    task: AbortOnDropHandle<Result<Written, String>>,
}

pub struct MirrorState {
    keys: Keys,
    backlog_capacity: usize,
    max_anomalies: usize,
    store: Arc<Store>,
    ingress: Arc<Ingress>,
    clock: Clock,
    tuning: MirrorTuning,
    redis: RedisLink,
    link: Link,
    /// Sequence number of the last journal entry looked at (its anomaly, if any, is in the backlog).
    cursor: u64,
    backlog: Backlog<Arc<Anomaly>>,
    /// Alarms, audit entries and episode checkpoints waiting.
    records: RecordQueue,
    in_flight: Option<InFlight>,
    generation: u64,
    retry: Backoff,
    retry_timer: Option<AbortOnDropHandle<Result<(), MessagingErr<MirrorMsg>>>>,
    summaries_written: u64,
    readings_written: BTreeMap<SensorId, DateTime<Utc>>,
    readings_due: Instant,
    status_due: Instant,
    mirrored: u64,
    /// Dropped by the mirrors before this one (a restart after a crash).
    dropped_before: u64,
    /// Anomalies the store no longer held when the mirror came to take them.
    missed: u64,
    last_error: Option<String>,
    /// A write of this mirror has found the layout marker (or set it): from then on, a missing
    /// marker means Redis lost its data.
    marker_seen: bool,
    drop_warned_at: Option<Instant>,
    /// Set while a `Wake` from the follower waits in the mailbox, so a flood sends only one.
    wake_pending: Arc<AtomicBool>,
    /// Aborted with the state, like the write.
    follower: Option<AbortOnDropHandle<()>>,
    tick: Option<AbortOnDropHandle<()>>,
}

impl Actor for Mirror {
    type Msg = MirrorMsg;
    type State = MirrorState;
    type Arguments = MirrorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<MirrorMsg>,
        args: MirrorArgs,
    ) -> Result<MirrorState, ActorProcessingErr> {
        let MirrorArgs { redis, store, ingress, clock, tuning } = args;
        let timeouts = LinkTimeouts {
            connect: tuning.connect_timeout,
            response: tuning.write_timeout,
            retry_max: tuning.retry_max,
        };
        let link = RedisLink::open(&redis, timeouts)?;
        // Everything the store holds is written again (idempotently: the same anomaly is the same
        // member), which recovers what a crashed predecessor still had in its backlog and what was
        // restored at start. The cursor is read first, so an anomaly journalled meanwhile is in
        // both and written twice rather than not at all.
        let cursor = store.journal.newest_seq();
        let mut backlog = Backlog::new(redis.backlog_capacity);
        let held = owned_anomalies(&store);
        // The newest that fit: a rewrite is not a flood to drop from.
        let skipped = held.len().saturating_sub(redis.backlog_capacity);
        for anomaly in held.into_iter().skip(skipped) {
            backlog.push(anomaly);
        }
        // The alarms, the audit trail and the open episodes likewise.
        let mut records = RecordQueue::new(redis.backlog_capacity);
        records.queue_all(&store);
        // A restarted mirror carries on with its predecessor's counts and last error.
        let before = store.health.redis();
        let cluster = store.config().cluster.clone();
        let keys = Keys::new(&redis.key_prefix)
            .for_shard(&redis.key_prefix, cluster.shards, cluster.shard)
            .for_instance(&cluster.instance_id());
        Ok(MirrorState {
            keys,
            backlog_capacity: redis.backlog_capacity,
            max_anomalies: redis.max_anomalies,
            backlog,
            records,
            retry: Backoff::new(tuning.retry_initial, tuning.retry_max),
            store,
            ingress,
            clock,
            redis: link,
            link: Link::Connecting { failed: false },
            cursor,
            in_flight: None,
            generation: 0,
            retry_timer: None,
            summaries_written: 0,
            readings_written: BTreeMap::new(),
            readings_due: Instant::now(),
            status_due: Instant::now(),
            mirrored: before.mirrored,
            dropped_before: before.dropped,
            missed: 0,
            last_error: before.last_error,
            marker_seen: false,
            drop_warned_at: None,
            wake_pending: Arc::new(AtomicBool::new(false)),
            follower: None,
            tick: None,
            tuning,
        })
    }

    async fn post_start(&self, myself: ActorRef<MirrorMsg>, state: &mut MirrorState) -> Result<(), ActorProcessingErr> {
        state.follower = Some(spawn_follower(&state.store, myself.clone(), Arc::clone(&state.wake_pending)));
        state.tick = Some(AbortOnDropHandle::new(myself.send_interval(state.tuning.tick, || MirrorMsg::Wake)));
        state.on_wake(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<MirrorMsg>,
        message: MirrorMsg,
        state: &mut MirrorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MirrorMsg::Wake => {
                state.wake_pending.store(false, Ordering::Release);
                state.collect_finished(&myself).await;
                state.on_wake(&myself);
            }
            MirrorMsg::Flushed(generation) => state.on_flushed(&myself, generation).await,
            MirrorMsg::Retry => state.on_retry(&myself),
            MirrorMsg::InjectFault(fault) => return fault.trigger("mirror"),
        }
        state.publish();
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<MirrorMsg>, state: &mut MirrorState) -> Result<(), ActorProcessingErr> {
        // Dropped, the follower and the timers stop (as they do when a crash drops the state).
        state.follower = None;
        state.tick = None;
        state.retry_timer = None;
        state.final_flush().await;
        state.publish();
        Ok(())
    }
}

impl MirrorState {
    fn on_wake(&mut self, myself: &ActorRef<MirrorMsg>) {
        self.pull();
        self.start_write(myself);
    }

    async fn on_flushed(&mut self, myself: &ActorRef<MirrorMsg>, generation: u64) {
        let Some(in_flight) = self.in_flight.take_if(|in_flight| in_flight.generation == generation) else { return };
        let outcome = in_flight.task.await.unwrap_or_else(|err| Err(format!("write task failed: {err}")));
        self.settle(myself, in_flight.pending, outcome);
    }

    /// A write task that ended without its message arriving (it panicked): settle it anyway,
    /// or the mirror would wait for it forever.
    async fn collect_finished(&mut self, myself: &ActorRef<MirrorMsg>) {
        if let Some(generation) = self
            .in_flight
            .as_ref()
            .filter(|in_flight| in_flight.task.is_finished())
            .map(|in_flight| in_flight.generation)
        {
            self.on_flushed(myself, generation).await;
        }
    }

    fn on_retry(&mut self, myself: &ActorRef<MirrorMsg>) {
        self.retry_timer = None;
        // The status hash is always something to write, so the retry probes Redis even when
        // nothing else waits.
        self.status_due = Instant::now();
        self.on_wake(myself);
    }

    /// Moves new anomalies from the store into the backlog, as far as [`pull_budget`] allows.
    fn pull(&mut self) {
        loop {
            let budget =
                pull_budget(self.link.answering(), self.backlog.len(), self.backlog_capacity, self.tuning.batch);
            if budget == 0 {
                return;
            }
            let followed = self.store.journal.after(self.cursor, budget);
            if followed.missed > 0 {
                self.missed += followed.missed;
                self.cursor += followed.missed;
                self.warn_dropped("the journal let entries go before they were mirrored");
            }
            let Some(last) = followed.entries.last() else { return };
            self.cursor = last.seq;
            let taken = followed.entries.len();
            let sharding = self.store.config().cluster.sharding();
            let mut dropped = 0;
            for entry in followed.entries {
                match entry.event {
                    // Another shard's anomaly is written by that shard's daemons, under its keys.
                    Event::Anomaly(anomaly) if sharding.owns(anomaly.sensor_id.as_str()) => {
                        dropped += self.backlog.push(anomaly);
                    }
                    Event::Anomaly(_) => {}
                    other => self.records.follow(other),
                }
            }
            if dropped > 0 {
                self.warn_dropped("redis backlog full: dropping the oldest anomalies");
            }
            if taken < budget {
                return;
            }
        }
    }

    /// Starts the next write, unless one is on its way or the mirror waits out a retry delay.
    fn start_write(&mut self, myself: &ActorRef<MirrorMsg>) {
        if self.in_flight.is_some() || self.retry_timer.is_some() {
            return;
        }
        let (batch, pending) = self.next_batch();
        if batch.is_empty() {
            return;
        }
        self.generation += 1;
        let generation = self.generation;
        let (keys, limits, timeout) = (self.keys.clone(), self.limits(), self.tuning.write_timeout);
        let redis = self.redis.clone();
        let myself = myself.clone();
        // The JSON is encoded in the task too: a batch of thousands takes milliseconds of CPU
        // that the mailbox should not wait for.
        let task = AbortOnDropHandle::new(traced::spawn(async move {
            let outcome = write(&redis, &batch_pipeline(&keys, &batch, &limits), timeout).await;
            let _ = myself.cast(MirrorMsg::Flushed(generation));
            outcome
        }));
        self.in_flight = Some(InFlight { generation, pending, task });
    }

    /// The next write: a batch of the backlog, and whichever snapshots changed or are due.
    fn next_batch(&mut self) -> (Batch, Pending) {
        let anomalies = self.backlog.take(self.tuning.batch);
        let summary_seq = self.store.summaries.version();
        let summaries: Option<Vec<Arc<Summary>>> = (summary_seq != self.summaries_written)
            .then(|| self.store.summaries.recent(self.store.config().store.max_summaries));
        // Readings are looked at once a tick, not for every batch of a flood: gathering them
        // walks every sensor.
        let check_readings = Instant::now() >= self.readings_due;
        if check_readings {
            self.readings_due = Instant::now() + self.tuning.tick;
        }
        let readings: Vec<_> = if check_readings {
            self.ingress.lanes().iter().filter_map(|lane| lane.last_reading()).collect()
        } else {
            Vec::new()
        };
        let new_readings: Vec<_> = readings
            .iter()
            .filter(|reading| {
                self.readings_written.get(&reading.sensor_id).is_none_or(|written| reading.timestamp > *written)
            })
            .cloned()
            .collect();
        // Only the sensors whose last reading changed: the hash is written field by field, and a
        // peer writes its own sensors into it too.
        let readings_changed = check_readings && !new_readings.is_empty();
        let written = readings_changed
            .then(|| readings.iter().map(|reading| (reading.sensor_id.clone(), reading.timestamp)).collect());
        let status = (Instant::now() >= self.status_due).then(|| {
            let health = &self.store.health;
            status_fields(&health.actors(), &health.llm(), &health.redis(), health.started_at(), self.clock.now())
        });
        let records = self.records.take(&self.store, self.tuning.batch);
        let pending = Pending {
            anomalies: anomalies.clone(),
            summary_seq: summaries.is_some().then_some(summary_seq),
            readings: written,
            status: status.is_some(),
            records: records.clone(),
        };
        let batch = Batch {
            anomalies,
            summaries,
            last_readings: readings_changed.then(|| new_readings.clone()),
            new_readings,
            status,
            records,
        };
        (batch, pending)
    }

    fn limits(&self) -> Limits {
        let config = self.store.config();
        Limits {
            now: self.clock.now(),
            retention: config.store.retention,
            max_anomalies: self.max_anomalies,
            max_summaries: config.store.max_summaries,
            audit: AuditLimits {
                now: self.clock.now(),
                retention: config.audit.retention,
                max_entries: config.audit.max_entries,
            },
        }
    }

    /// Records how a write ended; on success goes on with the next, on failure waits to retry.
    fn settle(&mut self, myself: &ActorRef<MirrorMsg>, pending: Pending, outcome: Result<Written, String>) {
        if self.record(pending, outcome) {
            self.on_wake(myself);
        } else {
            let delay = self.retry.next_delay();
            self.retry_timer = Some(AbortOnDropHandle::new(myself.send_after(delay, || MirrorMsg::Retry)));
        }
    }

    /// Records the outcome of a write; true when it succeeded.
    fn record(&mut self, pending: Pending, outcome: Result<Written, String>) -> bool {
        match outcome {
            Ok(written) => {
                // What waited when Redis answered again: this write's and the rest of the backlog.
                let waited = pending.anomalies.len() + self.backlog.len();
                self.mirrored += pending.anomalies.len() as u64;
                if let Some(seq) = pending.summary_seq {
                    self.summaries_written = seq;
                }
                if let Some(readings) = pending.readings {
                    self.readings_written = readings;
                }
                if pending.status {
                    self.status_due = Instant::now() + self.tuning.status_every;
                }
                match self.link {
                    Link::Up => {}
                    Link::Down { since } => tracing::info!(
                        backlog = waited,
                        outage_ms = since.elapsed().as_millis() as u64,
                        "redis reachable again; flushing the backlog"
                    ),
                    Link::Connecting { .. } => {
                        tracing::info!(backlog = waited, "connected to redis")
                    }
                }
                // `/status` shows an error only while it stands.
                self.last_error = None;
                self.link = Link::Up;
                self.retry.reset();
                if written.into_empty && self.marker_seen {
                    self.rewrite_all(&pending.anomalies);
                }
                self.marker_seen = true;
                true
            }
            Err(error) => {
                self.records.requeue(&self.store, pending.records);
                let dropped = self.backlog.requeue(pending.anomalies);
                if dropped > 0 {
                    self.warn_dropped("redis backlog full: dropping the oldest anomalies");
                }
                match self.link {
                    Link::Up => {
                        tracing::warn!(error = %error, "redis unreachable; keeping writes in the backlog");
                        self.link = Link::Down { since: Instant::now() };
                    }
                    Link::Connecting { failed: false } => {
                        tracing::warn!(error = %error, "cannot reach redis yet; keeping writes in the backlog");
                        self.link = Link::Connecting { failed: true };
                    }
                    Link::Connecting { failed: true } | Link::Down { .. } => {
                        tracing::debug!(error = %error, "redis still unreachable");
                    }
                }
                self.last_error = Some(error);
                false
            }
        }
    }

    /// Redis lost its data (restarted without persistence, flushed): everything the store
    /// retains is written again, as at a mirror's start — anomalies, alarms, audit, episodes, and
    /// the snapshots (summaries, last readings, status).
    fn rewrite_all(&mut self, just_written: &[Arc<Anomaly>]) {
        let queued = self.backlog.take(usize::MAX);
        let held = owned_anomalies(&self.store);
        tracing::warn!(
            anomalies = held.len(),
            "redis came back empty (its layout marker is gone): writing the retained state again"
        );
        let held_ids: std::collections::HashSet<_> = held.iter().map(|anomaly| anomaly.id.clone()).collect();
        // The write that found Redis empty is in it now.
        let written: std::collections::HashSet<_> = just_written.iter().map(|anomaly| &anomaly.id).collect();
        let held: Vec<_> = held.into_iter().filter(|anomaly| !written.contains(&anomaly.id)).collect();
        let skipped = held.len().saturating_sub(self.backlog_capacity);
        for anomaly in held.into_iter().skip(skipped) {
            self.backlog.push(anomaly);
        }
        // What waited and the store no longer holds is written too.
        for anomaly in queued.into_iter().filter(|anomaly| !held_ids.contains(&anomaly.id)) {
            self.backlog.push(anomaly);
        }
        self.records.queue_all(&self.store);
        self.summaries_written = 0;
        self.readings_written.clear();
        self.readings_due = Instant::now();
        self.status_due = Instant::now();
    }

    fn warn_dropped(&mut self, message: &str) {
        if self.drop_warned_at.is_none_or(|at| at.elapsed() >= DROP_WARNING_PERIOD) {
            self.drop_warned_at = Some(Instant::now());
            tracing::warn!(
                dropped = self.dropped_before + self.backlog.dropped() + self.missed,
                capacity = self.backlog_capacity,
                "{message}"
            );
        }
    }

    /// What `/status` says about Redis.
    /// The backlog counts every anomaly not yet in Redis: queued, on its way, and still in the
    /// store only (a flood that outpaces Redis shows here as well as an outage).
    fn publish(&self) {
        let in_flight = self.in_flight.as_ref().map_or(0, |in_flight| in_flight.pending.anomalies.len());
        let in_store =
            usize::try_from(self.store.journal.newest_seq().saturating_sub(self.cursor)).unwrap_or(usize::MAX);
        self.store.health.set_redis(|health| {
            health.state = self.link.state();
            health.backlog = self.backlog.len().saturating_add(in_flight).saturating_add(in_store);
            health.dropped = self.dropped_before + self.backlog.dropped() + self.missed;
            health.mirrored = self.mirrored;
            health.last_error.clone_from(&self.last_error);
        });
    }

    /// On a graceful stop: finish the write on its way, then write what is left, within
    /// [`FINAL_FLUSH_BUDGET`]. Stops writing at the first failure (Redis is away, and the process
    /// ends); whatever is left behind is counted, logged as a warning and published for the exit
    /// status.
    async fn final_flush(&mut self) {
        let deadline = Instant::now() + FINAL_FLUSH_BUDGET;
        let mut answering = true;
        if let Some(in_flight) = self.in_flight.take() {
            let outcome = match tokio::time::timeout_at(deadline, in_flight.task).await {
                Ok(joined) => joined.unwrap_or_else(|err| Err(format!("write task failed: {err}"))),
                Err(_) => Err("no answer before the end of the shutdown budget".into()),
            };
            answering = self.record(in_flight.pending, outcome);
        }
        self.status_due = Instant::now();
        while answering {
            self.pull();
            let (batch, pending) = self.next_batch();
            if batch.is_empty() {
                break;
            }
            let pipe = batch_pipeline(&self.keys, &batch, &self.limits());
            let timeout = self.tuning.write_timeout.min(deadline.saturating_duration_since(Instant::now()));
            let outcome = write(&self.redis, &pipe, timeout).await;
            answering = self.record(pending, outcome);
        }
        // Everything not written is now in the backlog: a failed write leaves the link down,
        // and the pull then takes all the store has.
        self.pull();
        let left_behind = (self.backlog.len() + self.records.len() + self.store.episodes.pending()) as u64;
        self.store.health.set_redis(|health| health.left_behind = Some(left_behind));
        if left_behind > 0 {
            tracing::warn!(
                mirrored = self.mirrored,
                left_behind,
                dropped = self.dropped_before + self.backlog.dropped() + self.missed,
                error = self.last_error.as_deref().unwrap_or("none"),
                "final flush to redis incomplete: anomalies and records left behind, never written"
            );
        } else {
            tracing::info!(mirrored = self.mirrored, left_behind, "final flush to redis done");
        }
    }
}

/// Runs a [`batch_pipeline`] and reads its answer.
async fn write(redis: &RedisLink, pipe: &redis::Pipeline, timeout: Duration) -> Result<Written, String> {
    let answer: Vec<i64> = redis.query(pipe, timeout).await?;
    Ok(Written { into_empty: marker_was_missing(&answer) })
}

/// Wakes the mirror when something is journalled or a checkpoint waits; aborted when its
/// handle, in the mirror's state, is dropped.
fn spawn_follower(
    store: &Arc<Store>,
    mirror: ActorRef<MirrorMsg>,
    wake_pending: Arc<AtomicBool>,
) -> AbortOnDropHandle<()> {
    let mut journal = store.journal.subscribe();
    let store = Arc::clone(store);
    AbortOnDropHandle::new(traced::spawn(async move {
        loop {
            tokio::select! {
                changed = journal.changed() => if changed.is_err() {
                    return;
                },
                () = store.episodes.changed.notified() => {}
            }
            if !wake_pending.swap(true, Ordering::AcqRel) && mirror.cast(MirrorMsg::Wake).is_err() {
                return;
            }
        }
    }))
}
/// The anomalies this shard writes, oldest first. With shards, the store also holds the other
/// shards' (restored, or told by their daemons); their own daemons write them under their keys.
fn owned_anomalies(store: &Store) -> Vec<Arc<Anomaly>> {
    let sharding = store.config().cluster.sharding();
    let mut held = store.anomalies.oldest_first();
    held.retain(|anomaly| sharding.owns(anomaly.sensor_id.as_str()));
    held
}
