//! The daemon's link to Redis: one server, or a Redis Cluster.
//!
//! A single server goes through a `ConnectionManager`, which reconnects by itself. A cluster
//! (`redis.cluster = true`, `redis.url` a comma-separated list of seed nodes) goes through the
//! redis crate's cluster client, which learns the slot map from the seeds and follows MOVED and
//! ASK redirections and failovers. Every key the daemon writes carries the same hash tag, so a
//! whole batch, `MULTI`/`EXEC` included, lands on the one node that owns that slot.
//!
//! Neither needs Redis at start: the first write connects, and a Redis that is down makes that
//! write fail, not the daemon.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, Pipeline};
use tokio::sync::Mutex;

use crate::config::RedisConfig;

/// Timeouts of a link.
#[derive(Clone, Copy, Debug)]
pub struct LinkTimeouts {
    pub connect: Duration,
    pub response: Duration,
    /// Longest wait between a single server's own reconnection attempts.
    pub retry_max: Duration,
}

/// A cheap-to-clone handle; clones share the connection.
#[derive(Clone)]
pub enum RedisLink {
    Single(ConnectionManager),
    Cluster(Arc<ClusterLink>),
}

pub struct ClusterLink {
    client: ClusterClient,
    timeouts: LinkTimeouts,
    connection: Mutex<Option<ClusterConnection>>,
}

/// The seed URLs of `redis.url`: one, or a comma-separated list for a cluster.
pub fn seed_urls(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|seed| !seed.is_empty()).collect()
}

impl RedisLink {
    /// A link for `config`; nothing is sent yet. Fails only on a URL that cannot be used.
    pub fn open(config: &RedisConfig, timeouts: LinkTimeouts) -> Result<Self, String> {
        if config.cluster {
            let client = ClusterClient::builder(seed_urls(&config.url))
                .connection_timeout(timeouts.connect)
                .response_timeout(timeouts.response)
                .retries(1)
                .build()
                .map_err(|err| format!("redis.url is not usable for a cluster: {err}"))?;
            return Ok(RedisLink::Cluster(Arc::new(ClusterLink { client, timeouts, connection: Mutex::new(None) })));
        }
        let client =
            redis::Client::open(config.url.as_str()).map_err(|err| format!("redis.url is not usable: {err}"))?;
        // The default waits about 9.5 s per command while Redis is down; one short retry cycle
        // here, and the mirror's own backoff does the rest.
        let manager = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(timeouts.retry_max)
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response));
        ConnectionManager::new_lazy_with_config(client, manager)
            .map(RedisLink::Single)
            .map_err(|err| format!("redis.url is not usable: {err}"))
    }

    /// Runs a pipeline, bounded by `timeout`; any failure comes back as its reason.
    pub async fn exec(&self, pipe: &Pipeline, timeout: Duration) -> Result<(), String> {
        self.query::<()>(pipe, timeout).await
    }

    /// Runs a pipeline or a command and reads its answer, bounded by `timeout`.
    pub async fn query<T: FromRedisValue>(&self, request: &impl Request, timeout: Duration) -> Result<T, String> {
        let attempt = async {
            match self {
                RedisLink::Single(manager) => request.run(&mut manager.clone()).await,
                RedisLink::Cluster(cluster) => {
                    let mut connection = cluster.connection().await?;
                    request.run(&mut connection).await
                }
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(outcome) => outcome.map_err(|err| err.to_string()),
            Err(_) => Err(format!("no answer within {}", humantime::format_duration(timeout))),
        }
    }
}

impl ClusterLink {
    /// The shared cluster connection, made on first use; a failed attempt is retried next time.
    async fn connection(&self) -> redis::RedisResult<ClusterConnection> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connecting = self.client.get_async_connection();
        let connection = tokio::time::timeout(self.timeouts.connect, connecting).await.map_err(|_| {
            redis::RedisError::from((redis::ErrorKind::Io, "no cluster connection within the connect timeout"))
        })??;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

/// What can be sent over a link: a pipeline or a single command.
pub trait Request: Sync {
    fn run<T: FromRedisValue, C: redis::aio::ConnectionLike + Send>(
        &self,
        connection: &mut C,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send;
}

impl Request for Pipeline {
    async fn run<T: FromRedisValue, C: redis::aio::ConnectionLike + Send>(
        &self,
        connection: &mut C,
    ) -> redis::RedisResult<T> {
        self.query_async(connection).await
    }
}

impl Request for redis::Cmd {
    async fn run<T: FromRedisValue, C: redis::aio::ConnectionLike + Send>(
        &self,
        connection: &mut C,
    ) -> redis::RedisResult<T> {
        self.query_async(connection).await
    }
}
