//! What every deployment test needs from the host: whether it can run at all, commands that fail
//! loudly and never hang, waiting on a condition rather than a guess, and a record of how long
//! each step took.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Writes a line straight to the process's stderr, past the test harness's capture, so a skip
/// reason or a step's timing shows in CI's log even when the test passes.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The first executable called `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    which_all(name).into_iter().next()
}

/// Every executable called `name` on `PATH`, in order.
pub fn which_all(name: &str) -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(name)).filter(|candidate| is_executable(candidate)).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn is_root() -> bool {
    // The effective UID is the second field of the Uid line.
    std::fs::read_to_string("/proc/self/status").ok().is_some_and(|status| {
        status.lines().find_map(|line| line.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Whether this host lacks what a deployment test needs: root and `tools` on `PATH`. See
/// [`lacks`].
pub fn cannot_run(test: &str, tools: &[&str]) -> bool {
    let mut missing: Vec<String> = Vec::new();
    if !is_root() {
        missing.push("root (it starts its own containers and engine)".into());
    }
    missing.extend(tools.iter().filter(|tool| which(tool).is_none()).map(|tool| format!("`{tool}`")));
    lacks(test, missing)
}

/// Whether `missing` names anything: if so, says what and returns true, and the test returns at
/// once; under CI (`CI` set) it fails instead, since `.ci/run` installs the tools and a skip
/// there would hide a broken install. `WTF_SKIP_DEPLOY_TESTS=1` skips without looking.
pub fn lacks(test: &str, missing: Vec<String>) -> bool {
    if std::env::var_os("WTF_SKIP_DEPLOY_TESTS").is_some_and(|value| !value.is_empty() && value != "0") {
        say(&format!("note: {test}: skipped (WTF_SKIP_DEPLOY_TESTS is set)"));
        return true;
    }
    if missing.is_empty() {
        return false;
    }
    let reason = format!("{test}: not run: needs {}", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("{reason}; .ci/run installs these, so under CI this is a failure");
    }
    say(&format!("note: {reason} (`.ci/run` installs the tools; WTF_SKIP_DEPLOY_TESTS=1 silences this)"));
    true
}

/// A command line as a person would type it, for messages.
pub fn shown(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|arg| arg.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Runs `command` to completion within `timeout` and returns what it printed; stdin is empty.
/// One that is still running at the deadline is killed and reported as failed (no exit code).
pub fn output(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start `{}`: {err}", shown(command)));
    // Read both pipes while waiting: a command that fills one must never block on it.
    let readers = [child.stdout.take().map(read_all), child.stderr.take().map(read_all)];
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll a child process") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let [stdout, stderr] =
        readers.map(|reader| reader.map(|thread| thread.join().unwrap_or_default()).unwrap_or_default());
    match status {
        Some(status) => Output { status, stdout, stderr },
        None => {
            let mut stderr = stderr;
            stderr.extend_from_slice(format!("\n(killed: still running after {timeout:?})").as_bytes());
            Output { status: killed_status(), stdout, stderr }
        }
    }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// The status of a process killed by SIGKILL: a raw wait status of 9 (signal 9, no core).
fn killed_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(9)
}

/// Like [`output`], but panics (showing everything it printed) unless the command succeeds;
/// returns its stdout.
pub fn run(command: &mut Command, timeout: Duration) -> String {
    let output = output(command, timeout);
    assert!(output.status.success(), "`{}` failed ({}):\n{}", shown(command), output.status, printed(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stdout and stderr of `output`, for messages.
pub fn printed(output: &Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout).trim_end(),
        String::from_utf8_lossy(&output.stderr).trim_end()
    )
}

/// Polls `probe` every 200 ms until it returns `Some`, or panics after `timeout` saying `what`
/// and what the last probe saw (`last` is updated by the probe).
pub fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut(&mut String) -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Some(found) = probe(&mut last) {
            return found;
        }
        if Instant::now() > deadline {
            panic!("waited {timeout:?} for {what}; last seen: {last}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How long each step of a test took, reported when the test ends, and on a failure up to the
/// step that failed; figures noted on the way (sizes, memory) are reported with them.
pub struct Steps {
    test: String,
    started: Instant,
    done: Vec<(String, Duration)>,
    notes: Vec<String>,
    current: Option<(String, Instant)>,
}

impl Steps {
    pub fn new(test: &str) -> Steps {
        Steps { test: test.to_owned(), started: Instant::now(), done: Vec::new(), notes: Vec::new(), current: None }
    }

    /// Runs one step and records how long it took.
    pub fn step<T>(&mut self, name: &str, work: impl FnOnce() -> T) -> T {
        self.current = Some((name.to_owned(), Instant::now()));
        let result = work();
        if let Some((name, started)) = self.current.take() {
            self.done.push((name, started.elapsed()));
        }
        result
    }

    /// A figure for the report.
    pub fn note(&mut self, line: String) {
        self.notes.push(line);
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        let mut report = format!("{}: steps", self.test);
        for (name, took) in &self.done {
            report.push_str(&format!("\n  {:>7.1} s  {name}", took.as_secs_f64()));
        }
        if let Some((name, started)) = &self.current {
            report.push_str(&format!("\n  {:>7.1} s  {name} (FAILED)", started.elapsed().as_secs_f64()));
        }
        report.push_str(&format!("\n  {:>7.1} s  in all", self.started.elapsed().as_secs_f64()));
        for note in &self.notes {
            report.push_str(&format!("\n  {note}"));
        }
        say(&report);
    }
}

/// GET `url` from this host and return the status and body; `Err` if nothing answered.
pub fn http_get(url: &str) -> Result<(u16, String), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(async {
        let response = crate::common::client().get(url).send().await.map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|err| err.to_string())?;
        Ok((status, body))
    })
}

/// GET `url` and parse the body as JSON; `None` if nothing answered, the status was not 200 or
/// the body is not JSON.
pub fn http_json(url: &str) -> Option<serde_json::Value> {
    match http_get(url) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Sends `signal` (a name such as `KILL`, `STOP`, `TERM`) to `pid` with `kill`.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// One line of `/proc/PID/status` (`VmRSS`, `Uid`, `CapEff`), without its name.
pub fn proc_status(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix(&format!("{field}:")).map(|value| value.trim().to_owned()))
}

/// The soft limit on open files of `pid`, from `/proc/PID/limits`.
pub fn open_files_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
