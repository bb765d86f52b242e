//! Real peers of the daemon for the integration tests, each started by the test on free loopback
//! ports and stopped when dropped: Debian's `prometheus-alertmanager` and `prometheus`, and a
//! webhook receiver of the test's own that records what it is sent.
//!
//! A test that cannot find a binary fails saying how to get it, unless
//! `WTF_SKIP_PROMETHEUS_TESTS=1` is set, in which case it says it is skipped and passes.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

const HOW_TO_GET_THEM: &str = "install Debian's prometheus and prometheus-alertmanager \
     (`apt-get install prometheus prometheus-alertmanager`; .ci/run does), \
     or set WTF_SKIP_PROMETHEUS_TESTS=1 to skip these tests";

/// The binary `name` from PATH; None (the test returns early) only with
/// `WTF_SKIP_PROMETHEUS_TESTS=1`.
pub fn binary_or_skip(test: &str, name: &str) -> Option<PathBuf> {
    if std::env::var("WTF_SKIP_PROMETHEUS_TESTS").is_ok_and(|value| value == "1") {
        eprintln!("{test}: skipped (WTF_SKIP_PROMETHEUS_TESTS=1)");
        return None;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file());
    Some(found.unwrap_or_else(|| panic!("{test} needs {name}: {HOW_TO_GET_THEM}")))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

/// A child process with its own temporary directory, killed when dropped (its log printed if the
/// test is failing).
pub struct Peer {
    name: &'static str,
    process: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Peer {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn spawn(name: &'static str, binary: &PathBuf, port: u16, dir: tempfile::TempDir, args: &[String]) -> Self {
        let log = std::fs::File::create(dir.path().join("log")).expect("a log file");
        let process = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log again"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Self { name, process, port, dir }
    }

    /// Waits until `GET <path>` answers 200.
    pub async fn wait_ready(&mut self, path: &str) {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(answer) = client.get(format!("{}{path}", self.url())).send().await
                && answer.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.process.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            assert!(Instant::now() < deadline, "{} did not get ready:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        if std::thread::panicking() {
            eprintln!("--- {} output ---\n{}", self.name, self.log());
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().expect("an HTTP client")
}

/// A single-node Alertmanager that sends every notification (firing and resolved) to `webhook`,
/// grouping by alert name and sensor, with no wait.
pub async fn alertmanager(binary: &PathBuf, webhook: &str) -> Peer {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: test\n  group_by: ['alertname', 'sensor_id']\n  group_wait: 0s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      \
             - url: {webhook}\n        send_resolved: true\n"
        ),
    )
    .expect("write the Alertmanager config");
    let port = free_port();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.path={}", dir.path().join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        // Single node: no gossip port, nothing to find.
        "--cluster.listen-address=".to_owned(),
    ];
    let mut peer = Peer::spawn("alertmanager", binary, port, dir, &args);
    peer.wait_ready("/-/ready").await;
    peer
}

/// A Prometheus scraping `target` (host:port) at `path` every second.
pub async fn prometheus(binary: &PathBuf, target: &str, path: &str) -> Peer {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: wtf\n    \
             metrics_path: {path}\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write the Prometheus config");
    let port = free_port();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    let mut peer = Peer::spawn("prometheus", binary, port, dir, &args);
    peer.wait_ready("/-/ready").await;
    peer
}

/// One request a [`Receiver`] took.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A webhook receiver on 127.0.0.1 that records every JSON POST and answers 200; stops when
/// dropped.
pub struct Receiver {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Received>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// On a port chosen before (so a daemon can be told about it while it is still down).
    pub async fn start_on(port: u16) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().route("/{*path}", post(record)).with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the receiver's port");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { port, received, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(received): State<Arc<Mutex<Vec<Received>>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    received.lock().unwrap().push(Received { path: uri.path().to_owned(), headers, body });
    StatusCode::OK
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `timeout` saying `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
