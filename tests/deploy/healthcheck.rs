//! `wtf-monitor healthcheck` asks where the daemon listens: it loads the config as the daemon
//! does (`--config`, then WTF_* variables) and asks /health on `api.listen`, on loopback when
//! that is all interfaces. A container whose compose file moves the API stays healthy.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::{self, Daemon};

/// Runs `wtf-monitor healthcheck ARGS` with `env` set, as a container's probe inherits the
/// daemon's environment; from an empty directory, so no `config/wtf-monitor.toml` is near.
fn probe(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut command = common::command();
    command.arg("healthcheck").args(args).current_dir(dir.path());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run wtf-monitor healthcheck")
}

/// A config file of its own for the probe, saying only where the API listens.
fn config_listening_on(listen: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("wtf-monitor.toml");
    std::fs::write(&path, format!("[api]\nlisten = \"{listen}\"\n")).expect("write the config");
    (dir, path)
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn the_healthcheck_follows_a_port_moved_by_wtf_api_listen() {
    // The harness moves the daemon with WTF_API__LISTEN; its file leaves the API at the default.
    let daemon = Daemon::start("").await;
    let config = path(daemon.config_path());
    let moved = format!("127.0.0.1:{}", daemon.port);
    let up = probe(&["--config", config], &[("WTF_API__LISTEN", &moved)]);
    assert!(up.status.success(), "the probe missed the daemon on {moved}: {}", stderr(&up));

    // It is the variable that decides: pointed elsewhere, the same probe fails and says where.
    let nobody = format!("127.0.0.1:{}", common::free_port());
    let down = probe(&["--config", config], &[("WTF_API__LISTEN", &nobody)]);
    assert!(!down.status.success(), "the probe found a daemon on {nobody}");
    assert!(stderr(&down).contains(&nobody), "the probe does not say what it asked: {}", stderr(&down));
}

#[tokio::test]
async fn the_healthcheck_follows_the_config_file_and_asks_loopback_for_all_interfaces() {
    let daemon = Daemon::start("").await;
    // The daemon listens on 127.0.0.1; a file saying 0.0.0.0 (as the image's does) means it.
    let (_dir, all_interfaces) = config_listening_on(&format!("0.0.0.0:{}", daemon.port));
    let up = probe(&["--config", path(&all_interfaces)], &[]);
    assert!(up.status.success(), "the probe missed the daemon: {}", stderr(&up));

    let (_dir, elsewhere) = config_listening_on(&format!("127.0.0.1:{}", common::free_port()));
    let down = probe(&["--config", path(&elsewhere)], &[]);
    assert!(!down.status.success(), "the probe ignored the file's api.listen");

    // --url is still the explicit override, whatever the config says.
    let url = daemon.url("/health");
    let overridden = probe(&["--config", path(&elsewhere), "--url", &url], &[]);
    assert!(overridden.status.success(), "--url was not asked: {}", stderr(&overridden));
}

#[tokio::test]
async fn the_healthcheck_asks_ipv6_loopback_for_all_ipv6_interfaces() {
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        println!("note: no IPv6 loopback on this host; skipping");
        return;
    };
    let port = listener.local_addr().expect("an address").port();
    drop(listener);
    let (dir, own) = config_listening_on(&format!("[::1]:{port}"));
    let mut command = common::command();
    command.arg("--config").arg(&own).current_dir(dir.path()).stdout(Stdio::null()).stderr(Stdio::null());
    let _daemon = KilledOnDrop(command.spawn().expect("start the daemon"));
    let url = format!("http://[::1]:{port}/health");
    let deadline = Instant::now() + common::START_TIMEOUT;
    while !probe(&["--url", &url], &[]).status.success() {
        assert!(Instant::now() < deadline, "the daemon did not answer on {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (_dir, all_interfaces) = config_listening_on(&format!("[::]:{port}"));
    let up = probe(&["--config", path(&all_interfaces)], &[]);
    assert!(up.status.success(), "the probe did not ask [::1]:{port}: {}", stderr(&up));
}

/// A daemon started by hand, killed however the test ends.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_config_the_daemon_would_refuse_is_unhealthy_and_says_why() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let broken = dir.path().join("wtf-monitor.toml");
    std::fs::write(&broken, "[api]\nlisten = \"not an address\"\n").expect("write the config");
    let output = probe(&["--config", path(&broken)], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("api.listen"), "{}", stderr(&output));
}
