//! Summaries once per window for the daemons of a plant: windows closed on wall-clock
//! boundaries (multiples of `llm.interval` since the Unix epoch), so every daemon closes the same
//! window at the same time, and a claim in Redis says which of them writes it:
//!
//! ```text
//! SET <prefix>{plant}:summary:claim:<window end, Unix ms> <instance> NX PX <2 × llm.timeout>
//! ```
//!
//! The winner words the window and publishes it (its summary reaches the others through the
//! journal stream); a loser waits for that summary and moves its cursor when it arrives. If the
//! winner dies first, the claim expires and the loser claims again, and writes it. Redis not
//! answering counts as a win: a daemon alone still summarises.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::ValidConfig;
use crate::redis_layout::Keys;
use crate::redis_link::{LinkTimeouts, RedisLink};

/// A claim's answer is awaited this long.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);
/// Shortest claim: a window is never left for less.
const LEAST_TTL: Duration = Duration::from_secs(10);

/// The next wall-clock boundary of `interval` strictly after `now`.
pub fn boundary_after(now: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    let step = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1_000);
    let ms = now.timestamp_millis();
    let next = (ms.div_euclid(step) + 1).saturating_mul(step);
    DateTime::<Utc>::from_timestamp_millis(next).unwrap_or(now + TimeDelta::milliseconds(step))
}

/// Claims in Redis for this daemon.
#[derive(Clone)]
pub struct SummaryClaims {
    link: RedisLink,
    /// `<prefix>{plant}:summary:claim:` (the shard's tag with shards).
    key: String,
    instance: String,
    pub ttl: Duration,
}

impl SummaryClaims {
    /// Claims when Redis is configured; none otherwise.
    pub fn from_config(config: &ValidConfig) -> Option<Self> {
        if config.redis.url.is_empty() {
            return None;
        }
        let timeouts = LinkTimeouts { connect: CLAIM_TIMEOUT, response: CLAIM_TIMEOUT, retry_max: CLAIM_TIMEOUT };
        let link = RedisLink::open(&config.redis, timeouts).ok()?;
        let prefix = &config.redis.key_prefix;
        let key = Keys::new(prefix).for_shard(prefix, config.cluster.shards, config.cluster.shard).summary_claims;
        // A claim outlives its holder's model call, so that a slow call is not written twice; with
        // no model the holder writes from the template at once, and a survivor need not wait long
        // for a window its dead peer claimed.
        let ttl =
            if config.llm.url.is_empty() { LEAST_TTL } else { config.llm.timeout.saturating_mul(2).max(LEAST_TTL) };
        Some(Self { link, key, instance: config.cluster.instance_id(), ttl })
    }

    /// Whether this daemon writes the window ending at `window_end`.
    pub async fn claim(&self, window_end: DateTime<Utc>) -> bool {
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{}{}", self.key, window_end.timestamp_millis()))
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX));
        match self.link.query::<Option<String>>(&command, CLAIM_TIMEOUT).await {
            Ok(answer) => answer.is_some(),
            Err(error) => {
                tracing::warn!(error = %error, "cannot claim the summary window; writing it");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn boundaries_are_multiples_of_the_interval_since_the_epoch() {
        let at = Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 59).unwrap();
        assert_eq!(boundary_after(at, Duration::from_secs(60)), Utc.with_ymd_and_hms(2025, 5, 19, 10, 1, 0).unwrap());
        let on = Utc.with_ymd_and_hms(2025, 5, 19, 10, 1, 0).unwrap();
        assert_eq!(boundary_after(on, Duration::from_secs(60)), Utc.with_ymd_and_hms(2025, 5, 19, 10, 2, 0).unwrap());
        assert_eq!(boundary_after(on, Duration::from_secs(300)), Utc.with_ymd_and_hms(2025, 5, 19, 10, 5, 0).unwrap());
    }
}
