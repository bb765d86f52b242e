//! A booted Debian 12 in a `systemd-nspawn` container, for testing the unit under a real systemd.
//!
//! - **Its own network.** `--private-network` leaves the container a loopback of its own: the
//!   daemon's default `127.0.0.1:6379` and `:1883` reach nothing, never the host's Redis or
//!   Mosquitto, and its API on :8000 cannot collide with anything on the host.
//! - **Nothing kept.** The cached root is the lower layer of an in-memory overlay
//!   (`--volatile=overlay`): what a test installs vanishes with the container, and the cache
//!   stays as debootstrap made it, so machines can boot from it side by side.
//! - **Without a systemd on the host.** `--register=no --keep-unit` asks nothing of the host's
//!   init: this works inside a plain container or VM too.
//! - **Clean-up.** Dropping a [`Machine`] powers it off, or kills it if it does not go within
//!   15 s; a test that panics first prints the console and the unit's journal. A machine whose
//!   test process was killed outright is stopped by the next boot.
//!
//! Commands run inside with `nsenter` into the container's namespaces, as root, with a clean
//! environment: what an operator typing at its console would get.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::host;

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(15);
/// Machines are named after the test process that booted them.
const MACHINE_PREFIX: &str = "wtf-deploy-";

pub struct Machine {
    nspawn: Option<Child>,
    /// The container's PID 1 (its systemd), as the host numbers it.
    leader: u32,
    dir: TempDir,
}

impl Machine {
    /// Boots `root` with each `(host path, container path)` of `binds` mounted read-only, and
    /// waits until systemd says start-up is finished.
    pub fn boot(root: &Path, binds: &[(&Path, &str)]) -> Machine {
        stop_orphans();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let console = std::fs::File::create(dir.path().join("console.log")).expect("create the console log");
        let mut nspawn = Command::new("systemd-nspawn");
        nspawn
            .arg("--quiet")
            .arg("--boot")
            .arg("--directory")
            .arg(root)
            .args(["--volatile=overlay", "--register=no", "--keep-unit", "--private-network", "--console=read-only"])
            .arg(format!("--machine={MACHINE_PREFIX}{}", std::process::id()));
        for (host_path, container_path) in binds {
            nspawn.arg(format!("--bind-ro={}:{container_path}", host_path.display()));
        }
        let nspawn = nspawn
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("clone the console log"))
            .stderr(console)
            .spawn()
            .expect("start systemd-nspawn");
        let mut machine = Machine { leader: 0, nspawn: Some(nspawn), dir };
        machine.leader = machine.find_leader();
        // Until systemd has opened its socket, systemctl cannot ask; then --wait waits for the end
        // of start-up.
        let state = host::wait_until("systemd to finish booting", BOOT_TIMEOUT, |last| {
            let asked = machine.run(&["systemctl", "is-system-running", "--wait"]);
            let state = String::from_utf8_lossy(&asked.stdout).trim().to_owned();
            *last = format!("{state:?}: {}\n{}", String::from_utf8_lossy(&asked.stderr).trim(), machine.console());
            ["running", "degraded", "maintenance", "stopping"].contains(&state.as_str()).then_some(state)
        });
        if state == "degraded" {
            // Not ours to fix, but worth knowing when something else goes wrong later.
            let failed = machine.run(&["systemctl", "--failed", "--no-legend"]);
            host::say(&format!("note: the machine booted degraded:\n{}", String::from_utf8_lossy(&failed.stdout)));
        } else {
            assert_eq!(state, "running", "the machine did not finish booting:\n{}", machine.console());
        }
        machine
    }

    /// The container's systemd: the one child of systemd-nspawn, once it has exec'd systemd.
    fn find_leader(&mut self) -> u32 {
        let nspawn = self.nspawn.as_mut().expect("booted");
        let pid = nspawn.id();
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Some(status) = nspawn.try_wait().expect("poll systemd-nspawn") {
                panic!("systemd-nspawn exited with {status} before booting:\n{}", self.console());
            }
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
            let leader = children.split_whitespace().filter_map(|child| child.parse::<u32>().ok()).find(|child| {
                std::fs::read_to_string(format!("/proc/{child}/comm")).is_ok_and(|comm| comm.trim() == "systemd")
            });
            if let Some(leader) = leader {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no systemd in the container after {BOOT_TIMEOUT:?}:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A command run inside the container as root.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.leader))
            .args(["--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--"])
            .args(["/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
            .args(["LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "SYSTEMD_LOG_COLOR=0"])
            .args(args);
        command
    }

    /// Runs `args` inside and returns how it ended, whatever that was.
    pub fn run(&self, args: &[&str]) -> Output {
        host::output(&mut self.command(args), COMMAND_TIMEOUT)
    }

    /// Runs `args` inside and returns its stdout; panics unless it succeeds.
    pub fn check(&self, args: &[&str]) -> String {
        host::run(&mut self.command(args), COMMAND_TIMEOUT)
    }

    /// Runs a shell script inside; panics unless it succeeds.
    pub fn sh(&self, script: &str) -> String {
        self.check(&["/bin/sh", "-ec", script])
    }

    /// Writes a file inside the container (through its root as the host sees it).
    pub fn write(&self, path: &str, contents: &str) {
        let path = format!("/proc/{}/root{path}", self.leader);
        if let Some(parent) = Path::new(&path).parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|err| panic!("cannot create {}: {err}", parent.display()));
        }
        std::fs::write(&path, contents).unwrap_or_else(|err| panic!("cannot write {path}: {err}"));
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let Some(mut nspawn) = self.nspawn.take() else { return };
        if std::thread::panicking() {
            let journal = self.run(&["journalctl", "--no-pager", "-u", "wtf-monitor", "-n", "150"]);
            eprintln!(
                "--- machine console ---\n{}\n--- journalctl -u wtf-monitor ---\n{}",
                self.console(),
                String::from_utf8_lossy(&journal.stdout)
            );
        }
        let _ = self.run(&["systemctl", "poweroff", "--no-block"]);
        let deadline = Instant::now() + POWEROFF_TIMEOUT;
        while Instant::now() < deadline {
            if nspawn.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Killing PID 1 ends every process of the container's PID namespace.
        host::signal(self.leader, "KILL");
        let _ = nspawn.kill();
        let _ = nspawn.wait();
    }
}

/// Machines whose test process is gone (killed before its guards could run): their container's
/// PID 1 is killed, which ends them.
fn stop_orphans() {
    let Ok(processes) = std::fs::read_dir("/proc") else { return };
    for pid in processes.flatten().filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let owner = cmdline
            .split('\0')
            .find_map(|arg| arg.strip_prefix("--machine=")?.strip_prefix(MACHINE_PREFIX)?.parse::<u32>().ok());
        let Some(owner) = owner.filter(|owner| cmdline.starts_with("systemd-nspawn") && !host::alive(*owner)) else {
            continue;
        };
        host::say(&format!("deploy: stopping machine {MACHINE_PREFIX}{owner}, left by a killed run"));
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|child| child.parse::<u32>().ok()) {
            host::signal(child, "KILL");
        }
        host::signal(pid, "KILL");
    }
}
