//! `systemctl start wtf-monitor` for real: the unit, the binary cargo built for this run and the
//! reference config, installed in a booted Debian 12 as the README's install steps say, then
//! driven as an operator would, checking what `systemctl`, `journalctl` and `curl` show.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cache;
use crate::host::{self, Steps};
use crate::machine::Machine;

const UNIT: &str = "wtf-monitor";
const CONFIG: &str = "/etc/wtf-monitor/wtf-monitor.toml";
/// The unit's own, for waiting on it.
const RESTART_SEC: Duration = Duration::from_secs(5);
const TIMEOUT_START: Duration = Duration::from_secs(30);
const TIMEOUT_STOP: Duration = Duration::from_secs(15);
/// The watchdog step shortens the unit's 30 s with a drop-in, as `systemctl edit` would: the
/// behaviour is the same (the daemon pings at half the period it is given, systemd kills it when
/// the pings stop), the test waits 6 s instead of 30.
const TEST_WATCHDOG: Duration = Duration::from_secs(6);

#[test]
fn the_unit_starts_reloads_recovers_and_stops_under_systemd() {
    if host::cannot_run("systemd deployment test", &["systemd-nspawn", "debootstrap", "nsenter"]) {
        return;
    }
    let mut steps = Steps::new("deploy: systemd");
    let root = steps.step("Debian root with systemd (debootstrap, then cached)", || cache::root(&cache::SYSTEMD));
    let binary = Path::new(env!("CARGO_BIN_EXE_wtf-monitor"));
    let repo = host::repo();
    let machine = steps.step("boot the machine", || {
        Machine::boot(&root.path, &[(repo.as_path(), "/mnt/repo"), (binary, "/mnt/build/wtf-monitor")])
    });
    let service = Service { machine: &machine };

    steps.step("install and `systemctl enable --now` (READY=1)", || start_through_ready(&service));
    steps.step("`systemctl reload` applies a new threshold", || reload_applies_a_new_threshold(&service));
    steps.step("the watchdog restarts a frozen daemon", || the_watchdog_restarts_a_frozen_daemon(&service));
    steps.step("a bad config exits 2, not restarted", || a_bad_config_is_not_restarted(&service));
    steps.step("`systemctl stop` is clean", || stop_is_clean(&service));
    let rating = steps.step("`systemd-analyze security`", || security_is_ok(&service));
    steps.note(format!("systemd-analyze security: overall exposure {rating}"));
    steps.step("power off", || drop(machine));
}

/// The unit inside the machine, as `systemctl` and `journalctl` show it.
struct Service<'a> {
    machine: &'a Machine,
}

impl Service<'_> {
    fn show(&self, property: &str) -> String {
        self.machine.check(&["systemctl", "show", UNIT, "--value", "-p", property]).trim().to_owned()
    }

    fn main_pid(&self) -> u32 {
        self.show("MainPID").parse().expect("MainPID is a number")
    }

    fn restarts(&self) -> u32 {
        self.show("NRestarts").parse().expect("NRestarts is a number")
    }

    /// The unit's journal (the daemon's lines and systemd's about it), message text only.
    fn journal(&self) -> String {
        self.machine.check(&["journalctl", "--no-pager", "-o", "cat", "-u", UNIT])
    }

    /// `curl` inside the machine, where the API listens.
    fn get(&self, path: &str) -> Option<String> {
        let url = format!("http://127.0.0.1:8000{path}");
        let output = self.machine.run(&["curl", "-fsS", "--max-time", "5", &url]);
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn get_json(&self, path: &str) -> Option<Value> {
        self.get(path).and_then(|body| serde_json::from_str(&body).ok())
    }

    fn wait_active(&self, what: &str, timeout: Duration) -> u32 {
        host::wait_until(what, timeout, |last| {
            let state = format!("{}/{} pid {}", self.show("ActiveState"), self.show("SubState"), self.show("MainPID"));
            let pid = self.main_pid();
            let ready = state.starts_with("active/running") && pid != 0 && self.get("/health").is_some();
            *last = state;
            ready.then_some(pid)
        })
    }
}

fn reference_config() -> String {
    std::fs::read_to_string(host::repo().join("config/wtf-monitor.toml")).expect("read the reference config")
}

fn start_through_ready(service: &Service) {
    let machine = service.machine;
    // The README's install steps, from the repository and the binary mounted read-only.
    machine.sh(&format!(
        "install -D -m 0755 /mnt/build/wtf-monitor /usr/local/bin/wtf-monitor
         install -D -m 0644 /mnt/repo/config/wtf-monitor.toml {CONFIG}
         install -D -m 0644 /mnt/repo/systemd/wtf-monitor.service /etc/systemd/system/wtf-monitor.service
         wtf-monitor check-config --config {CONFIG} > /dev/null
         systemctl daemon-reload"
    ));
    // Type=notify: `enable --now` returns once the daemon has said READY=1 (a unit that never
    // says it fails after TimeoutStartSec), which it does once the API listens. So /health must
    // answer at the first try, with no wait in between.
    let asked = Instant::now();
    machine.check(&["systemctl", "enable", "--now", UNIT]);
    let took = asked.elapsed();
    let health = service.get("/health");
    assert_eq!(health.as_deref().map(str::trim), Some(r#"{"status":"ok"}"#), "/health right after start");
    assert_eq!(service.show("Type"), "notify");
    assert_eq!((service.show("ActiveState"), service.show("SubState")), ("active".into(), "running".into()));
    assert!(took < TIMEOUT_START, "start took {took:?}: READY=1 did not come, systemd gave up waiting");
    assert_eq!(machine.check(&["systemctl", "is-enabled", UNIT]).trim(), "enabled");

    // A dynamic, unprivileged user, the open-files limit of the unit, the watchdog armed.
    let pid = service.main_pid();
    let status = machine.check(&["cat", &format!("/proc/{pid}/status")]);
    let uid = status.lines().find_map(|line| line.strip_prefix("Uid:")).expect("a Uid line");
    assert!(uid.split_whitespace().all(|id| id != "0"), "the daemon runs as root: Uid {uid}");
    let limits = machine.check(&["cat", &format!("/proc/{pid}/limits")]);
    let open_files = limits.lines().find(|line| line.starts_with("Max open files")).expect("an open files line");
    assert_eq!(open_files.split_whitespace().nth(3), Some("16384"), "LimitNOFILE: {open_files}");
    assert_eq!(service.show("WatchdogUSec"), "30s");

    let status = service.get_json("/status").expect("/status answers");
    assert_eq!(status["config"]["source"], CONFIG, "{status}");
}

fn reload_applies_a_new_threshold(service: &Service) {
    let machine = service.machine;
    let pid = service.main_pid();
    let restarts = service.restarts();
    let before = service.get_json("/status").expect("/status")["config"]["last_reload"].clone();

    // Ordinary temperatures (10–35 °C) are all above 9 °C: only the new threshold flags them.
    let reference = reference_config();
    let lowered = reference
        .replace("spike_thresholds = { temperature = 45.0,", "spike_thresholds = { temperature = 9.0,")
        .replace("drift_thresholds = { temperature = 38.0,", "drift_thresholds = { temperature = 8.0,");
    assert_ne!(lowered, reference, "the reference config's thresholds moved; update this test");
    machine.write(CONFIG, &lowered);
    machine.check(&["systemctl", "reload", UNIT]);

    let outcome = host::wait_until("the reload's outcome in /status", Duration::from_secs(10), |last| {
        let outcome = service.get_json("/status")?["config"]["last_reload"].clone();
        *last = outcome.to_string();
        (!outcome.is_null() && outcome != before).then_some(outcome)
    });
    assert_eq!(outcome["applied"], true, "{outcome}");
    let spike = host::wait_until("a spike at the new threshold", Duration::from_secs(15), |last| {
        let spikes = service.get_json("/anomalies?type=spike&parameter=temperature&limit=50")?;
        *last = spikes.to_string();
        spikes.as_array()?.iter().find(|spike| spike["threshold"] == 9.0).cloned()
    });
    assert!(spike["value"].as_f64().is_some_and(|value| value > 9.0 && value <= 45.0), "{spike}");
    assert_eq!(service.main_pid(), pid, "a reload keeps the process");
    assert_eq!(service.restarts(), restarts);
    assert_eq!(service.show("ActiveState"), "active");
    let journal = service.journal();
    assert!(journal.contains("configuration reloaded"), "the daemon did not log the reload:\n{journal}");
    assert!(journal.contains("Reloaded wtf-monitor.service"), "systemd did not see the reload:\n{journal}");
    machine.write(CONFIG, &reference);
    machine.check(&["systemctl", "reload", UNIT]);
}

fn the_watchdog_restarts_a_frozen_daemon(service: &Service) {
    let machine = service.machine;
    let dropin = "/etc/systemd/system/wtf-monitor.service.d/watchdog.conf";
    machine.write(dropin, &format!("[Service]\nWatchdogSec={}s\n", TEST_WATCHDOG.as_secs()));
    machine.check(&["systemctl", "daemon-reload"]);
    machine.check(&["systemctl", "restart", UNIT]);
    assert_eq!(service.show("WatchdogUSec"), format!("{}s", TEST_WATCHDOG.as_secs()));
    let pid = service.main_pid();
    let restarts = service.restarts();

    // A healthy daemon keeps pinging: it outlives the watchdog period untouched.
    std::thread::sleep(TEST_WATCHDOG + TEST_WATCHDOG / 2);
    assert_eq!((service.main_pid(), service.restarts()), (pid, restarts), "a healthy daemon was restarted");

    // Frozen, it stops pinging; systemd kills it (SIGABRT) and starts a new one RestartSec later.
    // The shell's kill: the minimal system has no /bin/kill.
    machine.sh(&format!("kill -STOP {pid}"));
    let frozen_at = Instant::now();
    let new_pid = host::wait_until("a restart by the watchdog", TEST_WATCHDOG + RESTART_SEC * 4, |last| {
        let (now, count) = (service.main_pid(), service.restarts());
        *last = format!("pid {now}, {count} restarts, {}", service.show("SubState"));
        (now != 0 && now != pid && count > restarts && service.get("/health").is_some()).then_some(now)
    });
    let took = frozen_at.elapsed();
    assert!(took >= TEST_WATCHDOG, "restarted after {took:?}, before the watchdog could fire");
    assert_eq!(service.restarts(), restarts + 1);
    let journal = service.journal();
    assert!(journal.contains("Watchdog timeout"), "the journal does not say why:\n{journal}");
    assert_ne!(new_pid, pid);

    machine.check(&["rm", dropin]);
    machine.check(&["systemctl", "daemon-reload"]);
    machine.check(&["systemctl", "restart", UNIT]);
    assert_eq!(service.show("WatchdogUSec"), "30s");
}

fn a_bad_config_is_not_restarted(service: &Service) {
    let machine = service.machine;
    let reference = reference_config();
    // A drift threshold above the spike threshold is refused by the daemon's rules.
    let broken =
        reference.replace("drift_thresholds = { temperature = 38.0,", "drift_thresholds = { temperature = 50.0,");
    assert_ne!(broken, reference);
    machine.write(CONFIG, &broken);
    let restarts = service.restarts();

    let restart = machine.run(&["systemctl", "restart", UNIT]);
    assert!(!restart.status.success(), "a restart into a bad config reported success");
    let ended = |service: &Service| {
        (service.show("ActiveState"), service.show("Result"), service.show("ExecMainStatus"), service.restarts())
    };
    let expected = ("failed".to_owned(), "exit-code".to_owned(), "2".to_owned(), restarts);
    assert_eq!(ended(service), expected, "exit status 2 ends in `failed`, with no restart scheduled");
    // Still so once RestartSec has passed: systemd did not try again.
    std::thread::sleep(RESTART_SEC + Duration::from_secs(2));
    assert_eq!(ended(service), expected, "the unit was restarted after exiting 2");
    let journal = service.journal();
    assert!(
        journal.contains("detection.drift_thresholds.temperature"),
        "the journal does not name the bad key:\n{journal}"
    );

    machine.write(CONFIG, &reference);
    machine.check(&["systemctl", "reset-failed", UNIT]);
    machine.check(&["systemctl", "start", UNIT]);
    service.wait_active("the daemon back on a good config", Duration::from_secs(10));
}

fn stop_is_clean(service: &Service) {
    let machine = service.machine;
    let asked = Instant::now();
    machine.check(&["systemctl", "stop", UNIT]);
    let took = asked.elapsed();
    assert!(took < TIMEOUT_STOP, "stop took {took:?}, TimeoutStopSec is {TIMEOUT_STOP:?}");
    assert_eq!(service.show("ActiveState"), "inactive");
    assert_eq!(service.show("Result"), "success");
    assert_eq!(service.show("ExecMainStatus"), "0", "SIGTERM ends the daemon with status 0");
    assert!(service.get("/health").is_none(), "the API still answers after stop");
    let journal = service.journal();
    let last_stop = journal.rfind("Stopping wtf-monitor.service").expect("a stop in the journal");
    let tail = &journal[last_stop..];
    assert!(
        tail.lines().any(|line| line.contains("component=supervisor}: stopped")),
        "the daemon did not log its graceful stop:\n{tail}"
    );
    assert!(!tail.contains("SIGKILL") && !tail.contains("Killing"), "systemd had to kill it:\n{tail}");
}

/// `systemd-analyze security` on the loaded unit, as the README says; returns the rating.
fn security_is_ok(service: &Service) -> String {
    let report = service.machine.check(&["systemd-analyze", "security", "--no-pager", UNIT]);
    // "→ Overall exposure level for wtf-monitor.service: 1.1 OK :-)"
    let line = report
        .lines()
        .find(|line| line.contains("Overall exposure level for"))
        .unwrap_or_else(|| panic!("no overall exposure level:\n{report}"));
    let (_, rating) = line.rsplit_once(": ").expect("…: LEVEL LABEL");
    let mut words = rating.split_whitespace();
    let level: f64 = words.next().and_then(|level| level.parse().ok()).unwrap_or_else(|| panic!("{line}"));
    let label = words.next().unwrap_or_default();
    assert!(
        ["OK", "SAFE", "PERFECT"].contains(&label) && level < 5.0,
        "exposure {level} {label}, wanted OK or better:\n{report}"
    );
    format!("{level} {label}")
}
