//! A real `wtf-monitor` for black-box tests: the binary cargo built for this test run, started on
//! a free port with a temporary config file, in memory only, checked over HTTP as a user would.
//!
//! ```ignore
//! mod common;
//! use common::Daemon;
//!
//! #[tokio::test]
//! async fn it_answers() {
//!     let daemon = Daemon::start("[sensors]\ninterval = \"100ms\"\n").await;
//!     let (status, body) = daemon.get_json("/status").await;
//!     assert_eq!(status, 200);
//!     daemon.signal("TERM");
//! }
//! ```
//!
//! What the harness guarantees:
//!
//! - **Isolation.** The config file lives in a fresh temporary directory, which is also the
//!   working directory, so the repository's `config/wtf-monitor.toml` is never picked up.
//!   Every inherited `WTF_…` and `RUST_LOG` variable is removed; then Redis and the LLM are
//!   switched off (`WTF_REDIS__URL=""`, `WTF_LLM__URL=""`) and the API listens on
//!   `127.0.0.1:<free port>`. Anything the test sets with [`DaemonBuilder::env`] comes last and
//!   wins, so a test can point the daemon at a real Redis or a fake Ollama.
//! - **Readiness.** [`Daemon::start`] returns once `/health` answers 200, or panics with the
//!   daemon's own output if it exits or stays silent for [`START_TIMEOUT`].
//! - **Clean-up.** Dropping a [`Daemon`] kills the process (SIGKILL) and reaps it; a test that
//!   panics also prints the daemon's output, so a failure explains itself.
//! - **No proxies.** The HTTP client ignores `HTTP_PROXY` and friends: a proxy must never stand
//!   between a test and 127.0.0.1.
//!
//! Each test file compiles this module separately and may use only part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;
use tempfile::TempDir;

/// The binary under test, built by cargo for this test run.
pub const BINARY: &str = env!("CARGO_BIN_EXE_wtf-monitor");
/// How long a daemon may take to answer `/health` after it is started.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one HTTP request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A free TCP port on 127.0.0.1: bound, read, released. Another process could take it before the
/// daemon binds it; [`DaemonBuilder::start`] retries on a fresh port if that happens.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a bound address").port()
}

/// An HTTP client for tests: short timeout, no proxy, no redirects followed (a test that wants
/// to see a redirect must see it).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// A command for the binary with the harness's environment hygiene, for subcommands
/// (`check-config`, `healthcheck`) and for daemons a test wants to run by hand.
pub fn command() -> Command {
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|name| name.starts_with("WTF_") || name == "RUST_LOG") {
            command.env_remove(name);
        }
    }
    command.env("WTF_REDIS__URL", "").env("WTF_LLM__URL", "").stdin(Stdio::null());
    command
}

/// Runs the binary with `args` to completion (for subcommands) and returns what it printed.
pub fn run(args: &[&str]) -> Output {
    command().args(args).output().expect("run the wtf-monitor binary")
}

/// One HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing the body) if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// How to start a daemon: its config file, extra environment, extra arguments.
pub struct DaemonBuilder {
    config: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl DaemonBuilder {
    /// Sets a variable for the daemon, after the harness's own (so it can override them).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds command-line arguments after `--config <file>`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Starts the daemon and waits until `/health` answers 200.
    pub async fn start(self) -> Daemon {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_path = dir.path().join("wtf-monitor.toml");
        std::fs::write(&config_path, &self.config).expect("write the config file");
        // A port taken between `free_port` and the daemon's bind shows as an early exit; try again.
        for attempt in 1..=3 {
            let mut daemon = self.spawn(&dir, &config_path, free_port(), attempt);
            match daemon.wait_ready().await {
                Ok(()) => return adopt(daemon, dir),
                Err(reason) if attempt < 3 && daemon.logs().contains("cannot listen") => {
                    eprintln!("daemon could not bind port {} ({reason}); retrying", daemon.port);
                }
                // Dropping `daemon` while panicking prints its output.
                Err(reason) => panic!("the daemon did not start: {reason}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn(&self, dir: &TempDir, config_path: &Path, port: u16, attempt: u32) -> Daemon {
        let stdout_path = dir.path().join(format!("stdout-{attempt}.log"));
        let stderr_path = dir.path().join(format!("stderr-{attempt}.log"));
        // Files, not pipes: a chatty daemon must never block on a pipe nobody reads.
        let stdout = std::fs::File::create(&stdout_path).expect("create the stdout log");
        let stderr = std::fs::File::create(&stderr_path).expect("create the stderr log");
        let mut command = command();
        command
            .arg("--config")
            .arg(config_path)
            .args(&self.args)
            .current_dir(dir.path())
            .env("WTF_API__LISTEN", format!("127.0.0.1:{port}"))
            .stdout(stdout)
            .stderr(stderr);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start the wtf-monitor binary");
        Daemon {
            child: Some(child),
            port,
            base: format!("http://127.0.0.1:{port}"),
            config_path: config_path.to_owned(),
            log_paths: [stdout_path, stderr_path],
            client: client(),
            dir: None,
        }
    }
}

fn adopt(mut daemon: Daemon, dir: TempDir) -> Daemon {
    daemon.dir = Some(dir);
    daemon
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    child: Option<Child>,
    /// The port the API listens on (127.0.0.1).
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    config_path: PathBuf,
    log_paths: [PathBuf; 2],
    client: reqwest::Client,
    /// Kept alive as long as the daemon: it holds the config file and the logs.
    dir: Option<TempDir>,
}

impl Daemon {
    /// Starts a daemon with `config` (TOML) as its config file.
    pub async fn start(config: &str) -> Daemon {
        Self::builder(config).start().await
    }

    pub fn builder(config: &str) -> DaemonBuilder {
        DaemonBuilder { config: config.to_owned(), env: Vec::new(), args: Vec::new() }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon was started").id()
    }

    /// Posts `values` of one parameter of one sensor as one batch with `token`, stamped `step`
    /// apart and the last `end_ago` before now, and checks that every one was accepted.
    pub async fn post_values(
        &self,
        token: &str,
        sensor: &str,
        parameter: &str,
        values: &[f64],
        step: chrono::TimeDelta,
        end_ago: chrono::TimeDelta,
    ) {
        let end = chrono::Utc::now() - end_ago;
        let count = values.len() as i32;
        let body: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(index, value)| {
                let at = end - step * (count - 1 - index as i32);
                serde_json::json!({"sensor_id": sensor, "timestamp": at.to_rfc3339(), parameter: value})
            })
            .collect();
        let answer =
            self.post("/readings", "application/json", Some(token), Value::Array(body).to_string().into_bytes()).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json()["accepted"].as_u64(), Some(values.len() as u64), "{}", answer.text());
    }

    /// The absolute URL of `path` (`/status`, `/anomalies?limit=5`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The config file the daemon was started with; rewrite it and send `HUP` to test reloads.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Sends a request and reads the whole answer; panics if the daemon does not answer.
    pub async fn request(&self, method: reqwest::Method, path: &str) -> Answer {
        self.try_request(method, path).await.unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    pub async fn try_request(&self, method: reqwest::Method, path: &str) -> Result<Answer, reqwest::Error> {
        let response = self.client.request(method, self.url(path)).send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(Answer { status, headers, body })
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request(reqwest::Method::GET, path).await
    }

    /// POSTs `body` to `path` with `content_type` and an optional `Authorization` header value.
    pub async fn post(&self, path: &str, content_type: &str, authorization: Option<&str>, body: Vec<u8>) -> Answer {
        let mut request =
            self.client.post(self.url(path)).header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        if let Some(authorization) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = request.send().await.unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_else(|err| panic!("POST {path}: {err}")).to_vec();
        Answer { status, headers, body }
    }

    /// GETs `path` and parses the answer as JSON, whatever its status.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let answer = self.get(path).await;
        (answer.status, answer.json())
    }

    /// Polls `probe` every 100 ms until it returns `Some`, or panics after `timeout` saying `what`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = probe().await {
                return found;
            }
            if Instant::now() > deadline {
                panic!("waited {timeout:?} for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a signal by name (`TERM`, `HUP`, `INT`, `KILL`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.pid().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -s {name} {} failed", self.pid());
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("the daemon was started");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("poll the daemon") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the daemon printed so far (stdout, then stderr).
    pub fn logs(&self) -> String {
        self.log_paths.iter().map(|path| std::fs::read_to_string(path).unwrap_or_default()).collect::<Vec<_>>().join("")
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten()) {
                return Err(format!("it exited with {status}"));
            }
            if let Ok(answer) = self.try_request(reqwest::Method::GET, "/health").await
                && answer.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("/health did not answer within {START_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- wtf-monitor output (port {}) ---\n{}", self.port, self.logs());
        }
    }
}

/// A Python interpreter that can import `module`: `$WTF_TEST_PYTHON` (the one `.ci/run` prepares),
/// else `python3` from `PATH`; None when neither can.
pub fn python_with(module: &str) -> Option<PathBuf> {
    let candidates =
        std::env::var_os("WTF_TEST_PYTHON").map(PathBuf::from).into_iter().chain([PathBuf::from("python3")]);
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}
