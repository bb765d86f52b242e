//! The dashboard in a real browser: Debian's headless `chromium`, driven by playwright-core
//! (tests/browser/, `npm ci` there), against the real binary with its simulator on.
//!
//! The browser side is tests/browser/dashboard.test.mjs; this file starts the daemon, runs it,
//! and restarts the daemon on the same port when the script asks (a line `restart-daemon` on
//! its output, answered `daemon-ready` on its input). Without node, chromium or the npm
//! packages the test fails saying how to install them; `WTF_SKIP_BROWSER_TESTS=1` skips it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const INGEST_TOKEN: &str = "gateway-token-0123456789";
const OPERATOR_TOKEN: &str = "operator-token-0123456789";
/// The whole browser run, restart included; it takes about 10 s.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(50);

/// Three simulated sensors with no injected anomalies: the only ones are those the test raises.
const CONFIG: &str = r#"
[sensors]
ids = ["wtf-pipe-1", "wtf-pipe-2", "wtf-pipe-3"]
interval = "500ms"

[simulation]
enabled = true
seed = 11
spikes_per_hour = 0.0
drifts_per_hour = 0.0
dropouts_per_hour = 0.0

[[auth.tokens]]
name = "gateway"
role = "ingest"
token = "gateway-token-0123456789"

[[auth.tokens]]
name = "night-shift"
role = "operator"
token = "operator-token-0123456789"
"#;

const INSTALL: &str = "the dashboard test needs node, Debian's chromium and the npm packages of tests/browser:\n  \
     apt-get install -y chromium nodejs npm && (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci)\n\
     (or set WTF_SKIP_BROWSER_TESTS=1 to skip it)";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Why the browser test cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !node.is_ok_and(|status| status.success()) {
        return Some("node is not installed".into());
    }
    if !chromium().exists() {
        return Some(format!("{} is not there (set CHROMIUM to another path)", chromium().display()));
    }
    if !browser_dir().join("node_modules/playwright-core/package.json").exists() {
        return Some("tests/browser has no node_modules (run npm ci there)".into());
    }
    None
}

/// A daemon on a port chosen by the test, so a second one can take the same port.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, port: u16, round: u32) -> Daemon {
        let config = dir.join("wtf-monitor.toml");
        std::fs::write(&config, CONFIG).expect("write the config");
        let log = dir.join(format!("daemon-{round}.log"));
        let output = std::fs::File::create(&log).expect("create the log");
        let child = common::command()
            .arg("--config")
            .arg(&config)
            .current_dir(dir)
            .env("WTF_API__LISTEN", format!("127.0.0.1:{port}"))
            .stdout(output.try_clone().expect("the log twice"))
            .stderr(output)
            .spawn()
            .expect("start the wtf-monitor binary");
        let daemon = Daemon { child, log };
        let deadline = Instant::now() + common::START_TIMEOUT;
        while !healthy(port) {
            assert!(Instant::now() < deadline, "the daemon did not answer /health:\n{}", daemon.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    if std::env::var("WTF_SKIP_BROWSER_TESTS").is_ok_and(|value| value == "1") {
        eprintln!("skipped: WTF_SKIP_BROWSER_TESTS=1");
        return;
    }
    if let Some(missing) = missing_tools() {
        panic!("{missing}: {INSTALL}");
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = common::free_port();
    let mut daemon = Daemon::start(dir.path(), port, 1);

    let mut node = Command::new("node")
        .arg("dashboard.test.mjs")
        .current_dir(browser_dir())
        .env("WTF_BASE", format!("http://127.0.0.1:{port}"))
        .env("WTF_INGEST_TOKEN", INGEST_TOKEN)
        .env("WTF_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("CHROMIUM", chromium())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let mut to_node = node.stdin.take().expect("node's input");
    let from_node = node.stdout.take().expect("node's output");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from_node).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let mut output = Vec::new();
    let mut rounds = 1;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) if line == "restart-daemon" => {
                drop(daemon);
                rounds += 1;
                daemon = Daemon::start(dir.path(), port, rounds);
                writeln!(to_node, "daemon-ready").expect("answer node");
            }
            Ok(line) => {
                println!("{line}");
                output.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = node.kill();
                panic!("the browser test took longer than {BROWSER_TIMEOUT:?}:\n{}", output.join("\n"));
            }
        }
    }
    let status = node.wait().expect("node's exit");
    assert!(status.success(), "the browser test failed ({status}); its output above, the daemon's:\n{}", daemon.logs());
    assert_eq!(rounds, 2, "the daemon was restarted once");
}
