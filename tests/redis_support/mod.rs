//! A real Redis for the tests: a `redis-server` started on a free port and killed on drop, or
//! the server named by `WTF_TEST_REDIS_URL` (never flushed: every test writes under its own
//! key prefix and deletes its keys afterwards).
//!
//! A test that finds neither fails with a message saying how to get one, unless
//! `WTF_SKIP_REDIS_TESTS=1` is set, in which case it says it is skipped and passes.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use wtf_monitor::redis_layout::Keys;

const HOW_TO_GET_REDIS: &str = "install redis-server (e.g. `apt-get install redis-server`), \
     or set WTF_TEST_REDIS_URL=redis://host:port to use a running server, \
     or set WTF_SKIP_REDIS_TESTS=1 to skip the Redis tests";

/// A `redis-server` process of this test; killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    process: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port.
    pub fn start() -> Self {
        let mut server = Self::reserve();
        server.resume();
        server
    }

    /// A free port where no server runs yet: Redis unreachable, until [`resume`](Self::resume).
    pub fn reserve() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for redis-server");
        Self { port: free_port(), dir, process: None }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: nothing is saved, as after a crash) and waits for it to end.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts the server on its port (again), and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.process.is_none(), "redis-server is already running");
        let log = self.dir.path().join("redis.log");
        let process = Command::new(redis_server_binary().expect(HOW_TO_GET_REDIS))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start redis-server: {err}"));
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(&self.url()) {
                return;
            }
            if let Some(Ok(Some(status))) = self.process.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("redis-server on port {} exited with {status}:\n{log}", self.port);
            }
            assert!(Instant::now() < deadline, "redis-server on port {} did not answer within 10 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Redis a test runs against, and the key prefix only this test uses.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
    /// Present when the test started its own server.
    pub server: Option<RedisServer>,
}

impl TestRedis {
    /// The keys of this test's prefix; the status hash that of a daemon named after the host
    /// (the default `cluster.instance`).
    pub fn keys(&self) -> Keys {
        Keys::new(&self.prefix).for_instance(&wtf_monitor::cluster::hostname())
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url.as_str()).expect("a valid Redis URL")
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.client().get_multiplexed_async_connection().await.expect("a connection to the test Redis")
    }

    /// The server of this test, for tests that stop and restart it.
    pub fn server(&mut self) -> &mut RedisServer {
        self.server.as_mut().expect("this test started its own redis-server")
    }
}

impl Drop for TestRedis {
    /// On a shared server, deletes this test's keys (and only them).
    fn drop(&mut self) {
        if self.server.is_some() {
            return;
        }
        if let Ok(mut connection) = self.client().get_connection_with_timeout(Duration::from_secs(1)) {
            let keys = self.keys();
            let _: Result<(), _> = redis::cmd("DEL").arg(&keys.all()[..]).query(&mut connection);
        }
    }
}

/// A Redis for a test: its own `redis-server` when the binary is installed, else
/// `WTF_TEST_REDIS_URL`; `None` (the test returns early) only with `WTF_SKIP_REDIS_TESTS=1`.
pub fn redis_or_skip(test: &str) -> Option<TestRedis> {
    if skipping(test) {
        return None;
    }
    let prefix = unique_prefix(test);
    if redis_server_binary().is_some() {
        let server = RedisServer::start();
        return Some(TestRedis { url: server.url(), prefix, server: Some(server) });
    }
    if let Ok(url) = std::env::var("WTF_TEST_REDIS_URL")
        && !url.is_empty()
    {
        assert!(ping(&url), "WTF_TEST_REDIS_URL={url} does not answer PING");
        return Some(TestRedis { url, prefix, server: None });
    }
    panic!("{test} needs Redis: {HOW_TO_GET_REDIS}");
}

/// Like [`redis_or_skip`], for tests that kill and restart the server: they need the binary.
pub fn own_redis_or_skip(test: &str) -> Option<TestRedis> {
    if skipping(test) {
        return None;
    }
    assert!(
        redis_server_binary().is_some(),
        "{test} stops and restarts Redis, so it needs the redis-server binary on PATH \
         (WTF_TEST_REDIS_URL is not enough); or set WTF_SKIP_REDIS_TESTS=1 to skip"
    );
    let server = RedisServer::start();
    Some(TestRedis { url: server.url(), prefix: unique_prefix(test), server: Some(server) })
}

/// Like [`own_redis_or_skip`], with the server not started yet.
pub fn reserved_redis_or_skip(test: &str) -> Option<TestRedis> {
    let mut redis = own_redis_or_skip(test)?;
    redis.server().kill();
    Some(redis)
}

fn skipping(test: &str) -> bool {
    let skip = std::env::var("WTF_SKIP_REDIS_TESTS").is_ok_and(|value| value == "1");
    if skip {
        eprintln!("{test}: skipped (WTF_SKIP_REDIS_TESTS=1)");
    }
    skip
}

/// `redis-server` from PATH, if installed.
pub fn redis_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("redis-server")).find(|candidate| candidate.is_file())
}

fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else { return false };
    let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_millis(500)) else { return false };
    redis::cmd("PING").query::<String>(&mut connection).is_ok_and(|answer| answer == "PONG")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("the free port's address").port()
}

/// A prefix no other test, run or process uses: `wtf-test:<pid>-<n>-<test>:`.
fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.subsec_nanos());
    format!("wtf-test:{}-{n}-{nanos}-{test}:", std::process::id())
}

/// Polls `check` every 20 ms until it holds; fails with `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(holds_within(timeout, check).await, "timed out after {timeout:?} waiting until {what}");
}

/// Polls `check` every 20 ms; true once it holds, false if it still does not after `timeout`.
pub async fn holds_within<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
