//! `peers` — this daemon's link to the other daemons of the plant, through Redis (see
//! [`crate::peers`]). Runs when `redis.url` is set.
//!
//! Three tasks, held as [`AbortOnDropHandle`]s in the state so that none outlives the actor:
//!
//! - the **publisher** follows the local journal from where the last publisher stopped (kept in
//!   the store) and appends what the peers need to this shard's journal stream, in pipelines,
//!   keeping a bounded backlog and retrying with a doubling delay while Redis is away;
//! - one **follower** per shard's stream reads it with `XREAD BLOCK` on a connection of its own
//!   and applies the other instances' entries to the store, from the position read before the
//!   restore at start ([`mark_positions_at_start`]) and then from the last entry applied, so
//!   nothing written between the restore and the first read is missed;
//! - the **registry** writes this daemon's entry in `<prefix>{plant}:peers` every
//!   `REGISTRY_EVERY` and reads the others' back for `/status` → `peers`.
//!
//! Messages: `Ended` from a task that stopped (it cannot, short of a bug: the actor fails and the
//! supervisor restarts it, which resumes where the store says); `InjectFault`.
//!
//! Failure policy: Redis errors are expected and never fail the actor; each task retries.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio_util::task::AbortOnDropHandle;

use crate::actors::Fault;
use crate::actors::traced;
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::ValidConfig;
use crate::peers::{
    FORGET_SCRIPT, JOURNAL_STREAM_MAXLEN, PeerOp, PeerRecord, fallback_position, forgotten, peer_views,
};
use crate::redis_layout::Keys;
use crate::redis_link::{LinkTimeouts, RedisLink};
use crate::store::Store;

/// How often this daemon's registry entry is written and the others' read.
const REGISTRY_EVERY: Duration = Duration::from_secs(2);
/// How long one `XREAD` waits for new entries before asking again.
const BLOCK: Duration = Duration::from_millis(1_000);
/// Entries per `XREAD`, and operations per published pipeline.
const BATCH: usize = 500;
/// The publisher looks at the journal at least this often (and at once when it changes).
const PUBLISH_TICK: Duration = Duration::from_millis(250);
/// A follower starts this far before the position read at start: what a peer published just
/// before may not be in the restored state yet (its mirror writes a moment later). Applying is
/// idempotent, so reading it twice costs nothing.
const START_MARGIN_MS: i64 = 10_000;
/// An operator's action on an alarm this daemon has not raised yet (its detector is a moment
/// behind the peer's) waits this long for it, then is dropped.
const PENDING_FOR: Duration = Duration::from_secs(30);
/// Most such actions waiting.
const MAX_PENDING: usize = 1_000;
/// Reading the stream positions at start; past it, the followers start from
/// [`fallback_position`].
const POSITION_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Peers;

pub struct PeersArgs {
    pub config: ValidConfig,
    pub store: Arc<Store>,
    pub clock: Clock,
}

pub enum PeersMsg {
    /// A task ended, for this reason.
    Ended(String),
    InjectFault(Fault),
}

pub struct PeersState {
    _publisher: AbortOnDropHandle<()>,
    _followers: Vec<AbortOnDropHandle<()>>,
    _registry: AbortOnDropHandle<()>,
}

/// Who this daemon is among its peers, and the keys it reads and writes.
#[derive(Clone)]
struct Me {
    instance: String,
    shard: u32,
    /// This daemon's shard's keys.
    keys: Keys,
    /// Every shard's journal stream.
    streams: Vec<String>,
}

impl Me {
    fn new(config: &ValidConfig) -> Self {
        let cluster = &config.cluster;
        let prefix = &config.redis.key_prefix;
        let shard = if cluster.shards > 1 { cluster.shard } else { 0 };
        Self {
            instance: cluster.instance_id(),
            shard,
            keys: Keys::new(prefix).for_shard(prefix, cluster.shards, shard),
            streams: Keys::every_shard(prefix, cluster.shards).into_iter().map(|keys| keys.journal).collect(),
        }
    }
}

impl Actor for Peers {
    type Msg = PeersMsg;
    type State = PeersState;
    type Arguments = PeersArgs;

    async fn pre_start(&self, myself: ActorRef<PeersMsg>, args: PeersArgs) -> Result<PeersState, ActorProcessingErr> {
        let PeersArgs { config, store, clock } = args;
        let me = Me::new(&config);
        let timeouts = LinkTimeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(5),
            retry_max: Duration::from_secs(5),
        };
        let link = RedisLink::open(&config.redis, timeouts)?;
        let ended = |name: &'static str| {
            let myself = myself.clone();
            move || {
                let _ = myself.cast(PeersMsg::Ended(format!("the {name} task ended")));
            }
        };

        let publisher = {
            let (link, store, me, ended) = (link.clone(), Arc::clone(&store), me.clone(), ended("publisher"));
            let capacity = config.redis.backlog_capacity;
            traced::spawn(async move {
                publish(link, store, me, capacity).await;
                ended();
            })
        };
        let mut followers = Vec::new();
        for stream in &me.streams {
            // Its own connection: a blocked XREAD holds it.
            let follow_timeouts = LinkTimeouts { response: BLOCK + Duration::from_secs(5), ..timeouts };
            let link = RedisLink::open(&config.redis, follow_timeouts)?;
            let (store, me, stream, ended) = (Arc::clone(&store), me.clone(), stream.clone(), ended("follower"));
            followers.push(AbortOnDropHandle::new(traced::spawn(async move {
                follow(link, store, clock, me, stream).await;
                ended();
            })));
        }
        let registry = {
            let (store, me, ended) = (Arc::clone(&store), me.clone(), ended("registry"));
            traced::spawn(async move {
                register(link, store, clock, me).await;
                ended();
            })
        };
        tracing::info!(instance = %me.instance, streams = me.streams.len(), "following the plant's journal streams");
        Ok(PeersState {
            _publisher: AbortOnDropHandle::new(publisher),
            _followers: followers,
            _registry: AbortOnDropHandle::new(registry),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<PeersMsg>,
        message: PeersMsg,
        _state: &mut PeersState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PeersMsg::Ended(why) => Err(why.into()),
            PeersMsg::InjectFault(fault) => fault.trigger("peers"),
        }
    }
}

/// Before the restore at start: where each shard's journal stream ends now, so the followers
/// apply everything written after the state the restore reads. Redis being away is logged; the
/// followers then start from [`fallback_position`].
pub async fn mark_positions_at_start(config: &ValidConfig, store: &Store) {
    if config.redis.url.is_empty() {
        return;
    }
    let timeouts = LinkTimeouts { connect: POSITION_TIMEOUT, response: POSITION_TIMEOUT, retry_max: POSITION_TIMEOUT };
    let Ok(link) = RedisLink::open(&config.redis, timeouts) else { return };
    for stream in Me::new(config).streams {
        let mut command = redis::cmd("XREVRANGE");
        command.arg(&stream).arg("+").arg("-").arg("COUNT").arg(1);
        match link.query::<Vec<(String, redis::Value)>>(&command, POSITION_TIMEOUT).await {
            Ok(last) => {
                let position = last.first().map_or_else(|| "0-0".to_owned(), |(id, _)| before(id, START_MARGIN_MS));
                store.peers.set_position(&stream, position);
            }
            Err(error) => {
                tracing::warn!(%stream, error = %error, "cannot read the journal stream's end; following from shortly before the start");
                return;
            }
        }
    }
}

/// The stream id `margin_ms` before `id` (`<ms>-<seq>`).
fn before(id: &str, margin_ms: i64) -> String {
    let ms = id.split('-').next().and_then(|ms| ms.parse::<i64>().ok()).unwrap_or(0);
    format!("{}-0", (ms - margin_ms).max(0))
}

/// Follows the local journal and appends what the peers need to this shard's stream.
async fn publish(link: RedisLink, store: Arc<Store>, me: Me, capacity: usize) {
    let mut changed = store.journal.subscribe();
    let mut cursor = store.peers.published();
    let mut pending: VecDeque<PeerOp> = VecDeque::new();
    let mut dropped: u64 = 0;
    let mut retry = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        loop {
            let followed = store.journal.after(cursor, BATCH);
            let Some(last) = followed.entries.last() else { break };
            cursor = last.seq;
            let taken = followed.entries.len();
            for entry in &followed.entries {
                let shelved = |id: &str| {
                    let alarm = store.alarm(id)?;
                    Some((alarm.shelved_until?, alarm.shelve_reason))
                };
                if let Some(op) = PeerOp::from_entry(entry, shelved) {
                    pending.push_back(op);
                }
            }
            while pending.len() > capacity.max(1) {
                pending.pop_front();
                dropped += 1;
            }
            if taken < BATCH {
                break;
            }
        }
        if dropped > 0 {
            tracing::warn!(dropped, "journal stream backlog full: dropped the oldest entries");
            dropped = 0;
        }
        while !pending.is_empty() {
            let count = pending.len().min(BATCH);
            let mut pipe = redis::pipe();
            for op in pending.iter().take(count) {
                pipe.cmd("XADD")
                    .arg(&me.keys.journal)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(JOURNAL_STREAM_MAXLEN)
                    .arg("*")
                    .arg("instance")
                    .arg(&me.instance)
                    .arg("kind")
                    .arg(op.kind())
                    .arg("json")
                    .arg(op.to_json())
                    .ignore();
            }
            match link.exec(&pipe, Duration::from_secs(5)).await {
                Ok(()) => {
                    pending.drain(..count);
                    retry.reset();
                }
                Err(error) => {
                    tracing::debug!(error = %error, backlog = pending.len(), "cannot publish to the journal stream yet");
                    tokio::time::sleep(retry.next_delay()).await;
                }
            }
        }
        store.peers.set_published(cursor);
        let _ = tokio::time::timeout(PUBLISH_TICK, changed.changed()).await;
    }
}

/// Reads one shard's journal stream and applies the other instances' entries.
async fn follow(link: RedisLink, store: Arc<Store>, clock: Clock, me: Me, stream: String) {
    let started_at = store.health.started_at();
    let mut position = store.peers.position(&stream).unwrap_or_else(|| fallback_position(started_at));
    let options = StreamReadOptions::default().count(BATCH).block(BLOCK.as_millis() as usize);
    let mut retry = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    let mut warned = false;
    let mut pending: VecDeque<(tokio::time::Instant, PeerOp)> = VecDeque::new();
    loop {
        apply_pending(&store, &clock, &mut pending);
        let mut command = redis::cmd("XREAD");
        command.arg(&options).arg("STREAMS").arg(&stream).arg(&position);
        let reply = match link.query::<Option<StreamReadReply>>(&command, BLOCK + Duration::from_secs(5)).await {
            Ok(reply) => {
                retry.reset();
                warned = false;
                reply
            }
            Err(error) => {
                if !warned {
                    tracing::warn!(%stream, error = %error, "cannot read the journal stream; retrying");
                    warned = true;
                }
                tokio::time::sleep(retry.next_delay()).await;
                continue;
            }
        };
        let entries = reply.into_iter().flat_map(|reply| reply.keys).flat_map(|key| key.ids);
        for entry in entries {
            position.clone_from(&entry.id);
            let field = |name: &str| match entry.map.get(name) {
                Some(redis::Value::BulkString(bytes)) => Some(bytes.as_slice()),
                _ => None,
            };
            if field("instance") == Some(me.instance.as_bytes()) {
                continue;
            }
            let kind = field("kind").and_then(|kind| std::str::from_utf8(kind).ok()).unwrap_or_default();
            match field("json").and_then(|json| PeerOp::parse(kind, json)) {
                Some(op) if op.alarm_id().is_some_and(|id| !store.has_alarm(id)) => {
                    if pending.len() >= MAX_PENDING {
                        pending.pop_front();
                    }
                    pending.push_back((tokio::time::Instant::now(), op));
                }
                Some(op) => {
                    store.apply_peer(op, clock.now());
                }
                None => {
                    tracing::debug!(%stream, id = %entry.id, "skipped an unreadable journal entry")
                }
            }
        }
        store.peers.set_position(&stream, position.clone());
    }
}

/// Applies the operators' actions whose alarm has been raised here since; drops those that
/// waited [`PENDING_FOR`] (the alarm went, or never came: nothing to apply it to).
fn apply_pending(store: &Store, clock: &Clock, pending: &mut VecDeque<(tokio::time::Instant, PeerOp)>) {
    let mut waiting = VecDeque::new();
    for (since, op) in pending.drain(..) {
        if op.alarm_id().is_some_and(|id| store.has_alarm(id)) {
            store.apply_peer(op, clock.now());
        } else if since.elapsed() < PENDING_FOR {
            waiting.push_back((since, op));
        }
    }
    *pending = waiting;
}

/// Writes this daemon's registry entry and reads everyone's, every [`REGISTRY_EVERY`]; takes out
/// the entries of daemons long gone.
async fn register(link: RedisLink, store: Arc<Store>, clock: Clock, me: Me) {
    let started_at = store.health.started_at();
    let mut tick = tokio::time::interval(REGISTRY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gone: Vec<(String, String)> = Vec::new();
    loop {
        tick.tick().await;
        let now = clock.now();
        let record = PeerRecord { shard: me.shard, started_at, updated_at: now };
        let json = serde_json::to_string(&record).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.cmd("HSET").arg(&me.keys.peers).arg(&me.instance).arg(json).ignore();
        if !gone.is_empty() {
            let seen = gone.iter().flat_map(|(instance, json)| [instance.as_str(), json.as_str()]);
            pipe.cmd("EVAL").arg(FORGET_SCRIPT).arg(1).arg(&me.keys.peers).arg(seen.collect::<Vec<_>>()).ignore();
        }
        pipe.cmd("HGETALL").arg(&me.keys.peers);
        match link.query::<(BTreeMap<String, String>,)>(&pipe, Duration::from_secs(5)).await {
            Ok((fields,)) => {
                if !gone.is_empty() {
                    let peers: Vec<&str> = gone.iter().map(|(instance, _)| instance.as_str()).collect();
                    tracing::info!(?peers, "peers silent for a day taken out of the registry");
                }
                gone = forgotten(&fields, &me.instance, now);
                store.peers.set_views(peer_views(&fields, &me.instance, now));
            }
            Err(error) => tracing::debug!(error = %error, "cannot refresh the peers registry"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_position_is_moved_back_by_the_margin() {
        assert_eq!(super::before("1747649700000-3", 10_000), "1747649690000-0");
        assert_eq!(super::before("5-0", 10_000), "0-0");
        assert_eq!(super::before("garbage", 10_000), "0-0");
    }
}
