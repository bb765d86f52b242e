//! The restore at start: before any actor runs, the last 24 h of anomalies and the recent
//! summaries are read back from Redis into the store, so `/anomalies` answers after a restart as
//! it did before; so are the alarms with their acknowledgements and shelves, the audit trail, and
//! the detectors' open episodes (each detector resumes from its own, so nothing is raised twice).
//! Bounded in time; Redis being away is logged, never fatal.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::alarms::Alarm;
use crate::audit::AuditEntry;
use crate::clock::Clock;
use crate::config::ValidConfig;
use crate::detection::Checkpoint;
use crate::domain::{Anomaly, Summary};
use crate::health::RedisState;
use crate::redis_layout::records::parse_episode_field;
use crate::redis_layout::{Keys, retention_cutoff};
use crate::redis_link::{LinkTimeouts, RedisLink};
use crate::store::Store;

/// Connecting: past this, the daemon starts without Redis's history.
const RESTORE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole restore; what was read by then is kept, newest first.
const RESTORE_BUDGET: Duration = Duration::from_secs(5);
/// Anomalies per read.
const RESTORE_PAGE: usize = 10_000;

/// What [`restore`] put back into the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    pub anomalies: usize,
    pub summaries: usize,
    /// Alarms, audit entries and open episode checkpoints put back.
    pub alarms: usize,
    pub audit: usize,
    pub episodes: usize,
    /// Members that did not parse as an anomaly or a summary (written by something else).
    pub unreadable: usize,
    /// Why the restore stopped early, if it did; what was read until then was kept.
    pub incomplete: Option<String>,
}

/// Before any actor runs: marks Redis disabled when `redis.url` is empty, and otherwise restores
/// the last 24 h from it within a bounded time. Redis being away is logged, never fatal.
pub async fn restore_at_start(config: &ValidConfig, store: &Store, clock: &Clock) {
    if config.redis.url.is_empty() {
        // `daemon::log_redis_in_use` says so in the log.
        store.health.set_redis(|health| health.state = RedisState::Disabled);
        return;
    }
    store.health.set_redis(|health| health.state = RedisState::Connecting);
    match restore(config, store, clock.now(), RESTORE_BUDGET).await {
        Ok(restored) => {
            if let Some(reason) = &restored.incomplete {
                tracing::warn!(reason = %reason, "restore from redis incomplete; kept the newest read");
            }
            if restored.unreadable > 0 {
                tracing::warn!(unreadable = restored.unreadable, "skipped unreadable entries in redis");
            }
            tracing::info!(
                anomalies = restored.anomalies,
                summaries = restored.summaries,
                alarms = restored.alarms,
                audit = restored.audit,
                episodes = restored.episodes,
                "restored from redis"
            );
        }
        Err(error) => {
            tracing::warn!(error = %error, "cannot restore from redis; starting without its history");
            store.health.set_redis(|health| health.last_error = Some(format!("restore at start: {error}")));
        }
    }
}

/// Reads the anomalies of the retention window (the newest `store.max_anomalies`) and the
/// recent summaries, and puts them into the store. Gives up connecting after
/// `RESTORE_CONNECT_TIMEOUT`; past `budget` keeps what it has read.
///
/// With `cluster.shards > 1`, every shard's keys are read in turn: any daemon serves the whole
/// fleet.
pub async fn restore(
    config: &ValidConfig,
    store: &Store,
    now: DateTime<Utc>,
    budget: Duration,
) -> Result<Restored, String> {
    let deadline = Instant::now() + budget;
    let mut total = Restored::default();
    for (shard, keys) in Keys::every_shard(&config.redis.key_prefix, config.cluster.shards).iter().enumerate() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match restore_keys(config, store, keys, now, remaining).await {
            Ok(restored) => {
                total.anomalies += restored.anomalies;
                total.summaries += restored.summaries;
                total.alarms += restored.alarms;
                total.audit += restored.audit;
                total.episodes += restored.episodes;
                total.unreadable += restored.unreadable;
                total.incomplete = total.incomplete.or(restored.incomplete);
            }
            Err(err) if shard == 0 => return Err(err),
            Err(err) => total.incomplete = Some(format!("shard {shard}: {err}")),
        }
    }
    Ok(total)
}

async fn restore_keys(
    config: &ValidConfig,
    store: &Store,
    keys: &Keys,
    now: DateTime<Utc>,
    budget: Duration,
) -> Result<Restored, String> {
    let deadline = Instant::now() + budget;
    let connect_timeout = RESTORE_CONNECT_TIMEOUT.min(budget);
    let timeouts = LinkTimeouts { connect: connect_timeout, response: budget, retry_max: connect_timeout };
    let link = RedisLink::open(&config.redis, timeouts)?;
    let remaining = || deadline.saturating_duration_since(Instant::now());

    let mut restored = Restored::default();
    let cutoff = retention_cutoff(now, config.store.retention);
    let wanted = config.store.max_anomalies;
    let mut anomalies: Vec<Anomaly> = Vec::new();
    let mut offset = 0;
    while offset < wanted {
        let count = RESTORE_PAGE.min(wanted - offset);
        let mut command = redis::cmd("ZREVRANGEBYSCORE");
        command.arg(&keys.anomalies).arg("+inf").arg(cutoff).arg("LIMIT").arg(offset).arg(count);
        let page = match link.query::<Vec<Vec<u8>>>(&command, remaining()).await {
            Ok(page) => page,
            // Nothing read yet: Redis is away, and the daemon starts without the history.
            Err(err) if offset == 0 => return Err(err),
            Err(err) => {
                restored.incomplete = Some(err);
                break;
            }
        };
        offset += page.len();
        anomalies.extend(parse_all::<Anomaly>(page.iter(), &mut restored.unreadable));
        if page.len() < count {
            break;
        }
    }

    let max_summaries = config.store.max_summaries.saturating_sub(1);
    let mut command = redis::cmd("ZREVRANGE");
    command.arg(&keys.summaries).arg(0).arg(max_summaries);
    let mut summaries: Vec<Summary> = match link.query::<Vec<Vec<u8>>>(&command, remaining()).await {
        Ok(members) => parse_all(members.iter(), &mut restored.unreadable),
        Err(err) => {
            restored.incomplete.get_or_insert(err);
            Vec::new()
        }
    };
    summaries.reverse();

    // Redis may hold more of the last 24 hours than the store keeps; `/status` counts them all.
    let more_than_read = offset == wanted && wanted > 0;
    restored.anomalies = store.anomalies.restore(anomalies, now);
    if more_than_read && restored.incomplete.is_none() {
        match count_per_minute(&link, keys, now, remaining()).await {
            Ok(counts) => store.anomalies.restore_minute_counts(counts),
            Err(err) => {
                restored.incomplete.get_or_insert(format!("24-hour count not read: {err}"));
            }
        }
    }
    restored.summaries = summaries.len();
    if !summaries.is_empty() {
        store.summaries.restore(summaries);
    }
    if let Err(err) = restore_records(config, &link, keys, store, now, remaining(), &mut restored).await {
        restored.incomplete.get_or_insert(err);
    }
    Ok(restored)
}

/// Puts back the alarms (acknowledgements and shelves with them), the audit trail and the
/// detectors' open episodes, in one round trip.
async fn restore_records(
    config: &ValidConfig,
    link: &RedisLink,
    keys: &Keys,
    store: &Store,
    now: DateTime<Utc>,
    timeout: Duration,
    restored: &mut Restored,
) -> Result<(), String> {
    let mut pipe = redis::pipe();
    pipe.cmd("HGETALL").arg(&keys.alarms);
    let cutoff = retention_cutoff(now, config.audit.retention);
    let newest = config.audit.max_entries.saturating_sub(1);
    pipe.cmd("ZREVRANGEBYSCORE").arg(&keys.audit).arg("+inf").arg(cutoff).arg("LIMIT").arg(0).arg(newest + 1);
    pipe.cmd("HGETALL").arg(&keys.episodes);
    type Answer = (HashMap<String, Vec<u8>>, Vec<Vec<u8>>, HashMap<String, Vec<u8>>);
    let (alarms, audit, episodes): Answer = link.query(&pipe, timeout).await?;

    let alarms: Vec<Alarm> = parse_all(alarms.values(), &mut restored.unreadable);
    let mut audit: Vec<AuditEntry> = parse_all(audit.iter(), &mut restored.unreadable);
    audit.reverse();
    let episodes: HashMap<_, Checkpoint> = episodes
        .iter()
        .filter_map(|(field, json)| {
            let parsed = parse_episode_field(field).zip(parse_one(json));
            restored.unreadable += usize::from(parsed.is_none());
            parsed
        })
        .collect();
    (restored.alarms, restored.audit, restored.episodes) = (alarms.len(), audit.len(), episodes.len());
    store.restore_alarms(alarms, audit);
    store.episodes.restore(episodes);
    Ok(())
}

/// How many anomalies Redis holds for each minute of the last 24 hours, in one round trip.
async fn count_per_minute(
    link: &RedisLink,
    keys: &Keys,
    now: DateTime<Utc>,
    timeout: Duration,
) -> Result<std::collections::BTreeMap<i64, u64>, String> {
    const MINUTES: i64 = 24 * 60;
    let this_minute = now.timestamp().div_euclid(60);
    let minutes: Vec<i64> = (this_minute - MINUTES + 1..=this_minute).collect();
    let mut pipe = redis::pipe();
    for minute in &minutes {
        let start = minute * 60_000;
        pipe.cmd("ZCOUNT").arg(&keys.anomalies).arg(start).arg(format!("({}", start + 60_000));
    }
    let counts: Vec<u64> = link.query(&pipe, timeout).await?;
    Ok(minutes.into_iter().zip(counts).filter(|(_, count)| *count > 0).collect())
}

/// Larger than anything the daemon writes (an anomaly, alarm or checkpoint is a few hundred
/// bytes): a member past it was not written by a daemon and is not parsed.
const MAX_MEMBER_JSON: usize = 64 * 1024;

/// The member as `T`, if it is one and within [`MAX_MEMBER_JSON`].
fn parse_one<T: serde::de::DeserializeOwned>(member: &[u8]) -> Option<T> {
    (member.len() <= MAX_MEMBER_JSON).then(|| serde_json::from_slice(member).ok()).flatten()
}

/// The members that parse as `T`; the others are counted in `unreadable`.
fn parse_all<'a, T: serde::de::DeserializeOwned>(
    members: impl Iterator<Item = &'a Vec<u8>>,
    unreadable: &mut usize,
) -> Vec<T> {
    let mut parsed = Vec::new();
    for member in members {
        match parse_one(member) {
            Some(value) => parsed.push(value),
            None => *unreadable += 1,
        }
    }
    parsed
}
