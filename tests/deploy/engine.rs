//! A Docker engine of the tests' own, and the images the compose file names.
//!
//! - **Its own engine.** `dockerd` listens on a socket under `/run/wtf-monitor-deploy`, keeps its
//!   data in the cache (so images survive between runs) and creates no default bridge; a host
//!   engine, if any, is not touched. One test engine at a time: a lock in the cache.
//! - **The host's network left alone.** `--iptables=false --ip-masq=false --ip-forward=false`:
//!   no firewall rules, no NAT, no forwarding sysctl. Containers reach each other on their
//!   project's bridge; published ports go through Docker's userland proxy, which is all a test on
//!   127.0.0.1 needs. [`Engine::shut_down`] checks the firewall reads as it did before.
//! - **Images without a registry.** `debian:bookworm-slim` is imported from the cached
//!   debootstrap root; the images of redis, ollama and mosquitto are stand-ins built from
//!   `tests/deploy/standins/` on it (Debian's packages, a fake Ollama) and tagged with the compose
//!   file's pinned names; wtf-monitor's image is the Dockerfile's `runtime-prebuilt` target
//!   around the binary cargo built for this run. Each cached image carries the key of its inputs
//!   in a label and is remade when they change.
//! - **Clean-up.** On start, whatever an earlier run left in the data directory (containers,
//!   volumes, networks, replaced images, build cache) is removed; dropping the [`Engine`] stops
//!   dockerd, which stops its containers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cache::{self, Root};
use crate::host;

const RUN_DIR: &str = "/run/wtf-monitor-deploy";
const KEY_LABEL: &str = "org.wtf-monitor.deploy.key";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// The compose file's services whose images are stand-ins, each built from the directory of its
/// name under tests/deploy/standins/.
const STANDINS: [&str; 3] = ["redis", "ollama", "mosquitto"];

pub struct Engine {
    dockerd: Option<Child>,
    docker: PathBuf,
    run_dir: PathBuf,
    firewall_before: String,
    _lock: cache::Lock,
}

impl Engine {
    pub fn start() -> Engine {
        let lock = cache::lock("docker");
        let run_dir = PathBuf::from(RUN_DIR);
        stop_leftover(&run_dir.join("docker.pid"));
        client_config();
        std::fs::write(run_dir.join("daemon.json"), "{}\n").expect("write daemon.json");
        let firewall_before = firewall();

        let dockerd_path = host::which("dockerd").expect("dockerd on PATH");
        let log = std::fs::File::create(run_dir.join("dockerd.log")).expect("create the dockerd log");
        let data_root = cache::dir().join("docker");
        let dockerd = Command::new(&dockerd_path)
            .arg(format!("--config-file={}", run_dir.join("daemon.json").display()))
            .arg(format!("--host=unix://{}", run_dir.join("docker.sock").display()))
            .arg(format!("--data-root={}", data_root.display()))
            .arg(format!("--exec-root={}", run_dir.join("exec").display()))
            .arg(format!("--pidfile={}", run_dir.join("docker.pid").display()))
            .args(["--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none"])
            .args(["--log-level=warn", "--storage-driver=overlay2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the dockerd log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut engine = Engine { dockerd: Some(dockerd), docker: client(), run_dir, firewall_before, _lock: lock };
        engine.wait_ready();
        engine.clear_leftovers();
        engine
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.dockerd.as_mut().and_then(|dockerd| dockerd.try_wait().ok().flatten()) {
                panic!("dockerd exited with {status}:\n{}", self.log());
            }
            if host::output(self.docker().arg("version"), Duration::from_secs(5)).status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "dockerd did not answer within {START_TIMEOUT:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What a killed run left: everything in this engine is the tests' own.
    fn clear_leftovers(&self) {
        let containers = self.check(&["ps", "-aq"]);
        let containers: Vec<&str> = containers.split_whitespace().collect();
        if !containers.is_empty() {
            host::say(&format!("deploy: removing {} containers left by an earlier run", containers.len()));
            self.check(&[&["rm", "-f", "-v"], containers.as_slice()].concat());
        }
        self.check(&["volume", "prune", "-f"]);
        self.check(&["network", "prune", "-f"]);
        // Each run packages a new binary: the image it replaced, and its build cache, go.
        self.check(&["image", "prune", "-f"]);
        self.check(&["builder", "prune", "-f"]);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("dockerd.log")).unwrap_or_default()
    }

    pub fn docker(&self) -> Command {
        let mut command = Command::new(&self.docker);
        client_env(&mut command);
        command
    }

    /// `docker ARGS`; panics unless it succeeds; returns stdout.
    pub fn check(&self, args: &[&str]) -> String {
        host::run(self.docker().args(args), COMMAND_TIMEOUT)
    }

    /// `docker inspect` of one object.
    pub fn inspect(&self, id: &str) -> Value {
        let json = self.check(&["inspect", id]);
        let mut all: Value = serde_json::from_str(&json).expect("docker inspect prints JSON");
        all[0].take()
    }

    /// `debian:bookworm-slim`, imported from `root` unless it already was.
    pub fn base_image(&self, root: &Root) -> bool {
        let tag = "debian:bookworm-slim";
        if self.label(tag) == Some(root.key.clone()) {
            return false;
        }
        // As the official slim image: no package lists, documentation, manuals or locales.
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&root.path)
            .args(["--exclude=./var/lib/apt/lists/*", "--exclude=./var/cache/apt/*.bin"])
            .args(["--exclude=./usr/share/doc/*", "--exclude=./usr/share/man/*", "--exclude=./usr/share/info/*"])
            .args(["--exclude=./usr/share/locale/*", "-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tar");
        let stdin = tar.stdout.take().expect("tar's stdout");
        let mut import = self.docker();
        import
            .args(["import", "--change", &format!("LABEL {KEY_LABEL}={}", root.key), "--change", r#"CMD ["bash"]"#])
            .args(["-", tag])
            .stdin(stdin);
        let imported = import.output().expect("run docker import");
        let tarred = tar.wait().expect("wait for tar");
        assert!(tarred.success() && imported.status.success(), "import of {tag} failed:\n{}", host::printed(&imported));
        true
    }

    /// Builds each stand-in whose inputs changed, tagged as `images` (service → image) say;
    /// returns the tags it built.
    pub fn standins(&self, base: &Root, images: &[(String, String)]) -> Vec<String> {
        let mut built = Vec::new();
        for service in STANDINS {
            let tag = &images.iter().find(|(name, _)| name == service).expect("the compose file names it").1;
            let dir = host::repo().join("tests/deploy/standins").join(service);
            let key = cache::key(&(&base.key, tag, directory_contents(&dir)));
            if self.label(tag) == Some(key.clone()) {
                continue;
            }
            // The host's network for the build only: its apt-get reaches the Debian mirror.
            let label = format!("{KEY_LABEL}={key}");
            let dir = dir.display().to_string();
            self.check(&["build", "--quiet", "--network=host", "--label", &label, "--tag", tag, &dir]);
            built.push(tag.clone());
        }
        built
    }

    /// The daemon's image from the repository's Dockerfile, `--target runtime-prebuilt`, around
    /// `binary` (a build context of just what the stage copies: the binary and the config).
    pub fn package(&self, binary: &Path, tag: &str) {
        let context = tempfile::tempdir().expect("a temporary build context");
        let target = context.path().join("wtf-monitor");
        if std::fs::hard_link(binary, &target).is_err() {
            std::fs::copy(binary, &target).expect("copy the binary into the build context");
        }
        std::fs::create_dir_all(context.path().join("config")).expect("create the context's config directory");
        std::fs::copy(host::repo().join("config/wtf-monitor.toml"), context.path().join("config/wtf-monitor.toml"))
            .expect("copy the config into the build context");
        let dockerfile = host::repo().join("Dockerfile");
        self.check(&[
            "build",
            "--quiet",
            "--network=none",
            "--target=runtime-prebuilt",
            "--build-arg=BINARY=wtf-monitor",
            &format!("--file={}", dockerfile.display()),
            &format!("--tag={tag}"),
            &context.path().display().to_string(),
        ]);
    }

    fn label(&self, image: &str) -> Option<String> {
        let format = format!("{{{{index .Config.Labels \"{KEY_LABEL}\"}}}}");
        let output =
            host::output(self.docker().args(["image", "inspect", "--format", &format, image]), COMMAND_TIMEOUT);
        let label = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        (output.status.success() && !label.is_empty() && label != "<no value>").then_some(label)
    }

    /// Stops dockerd (and with it every container) and checks the host's firewall is as found.
    pub fn shut_down(mut self) {
        self.stop();
        assert_eq!(firewall(), self.firewall_before, "the host's firewall or forwarding changed");
    }

    fn stop(&mut self) {
        let Some(mut dockerd) = self.dockerd.take() else { return };
        host::signal(dockerd.id(), "TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if dockerd.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        host::say(&format!("deploy: dockerd did not stop within {STOP_TIMEOUT:?}; killing it"));
        let _ = dockerd.kill();
        let _ = dockerd.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.dockerd.is_some() && std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
            eprintln!("--- dockerd log (end) ---\n{}", tail.join("\n"));
        }
        self.stop();
    }
}

/// The client of the engine's own version (Debian puts dockerd in /usr/sbin, its client in
/// /usr/bin): a newer one found first on PATH may need the buildx plugin to build at all.
pub fn client() -> PathBuf {
    let engine = host::output(Command::new("dockerd").arg("--version"), Duration::from_secs(20));
    // "Docker version 20.10.24+dfsg1, build 5d6db84"
    let engine = String::from_utf8_lossy(&engine.stdout).split(',').next().unwrap_or_default().to_owned();
    let clients = host::which_all("docker");
    let same = clients.iter().find(|client| {
        let version = host::output(Command::new(client).arg("--version"), Duration::from_secs(20));
        String::from_utf8_lossy(&version.stdout).split(',').next() == Some(engine.as_str())
    });
    same.or(clients.first()).cloned().expect("docker on PATH")
}

/// The client's own config directory: no credentials, contexts or aliases of whoever runs the
/// tests. Plugins come from the system's plugin directories, or the user's, linked in.
fn client_config() -> PathBuf {
    let dir = PathBuf::from(RUN_DIR).join("client");
    std::fs::create_dir_all(dir.join("cli-plugins")).expect("create the client's config directory");
    if !dir.join("config.json").is_file() {
        std::fs::write(dir.join("config.json"), "{}\n").expect("write the client config");
    }
    let users = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/cli-plugins/docker-compose"));
    let linked = dir.join("cli-plugins/docker-compose");
    if let Some(users) = users.filter(|plugin| plugin.is_file())
        && std::fs::symlink_metadata(&linked).is_err()
    {
        let _ = std::os::unix::fs::symlink(users, linked);
    }
    dir
}

/// The environment every client command gets: the test engine, its client config, BuildKit;
/// none of the caller's Docker or Compose settings.
pub fn client_env(command: &mut Command) {
    command
        .env("DOCKER_HOST", format!("unix://{RUN_DIR}/docker.sock"))
        .env("DOCKER_CONFIG", client_config())
        .env("DOCKER_BUILDKIT", "1")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES");
}

/// Which Compose a command-line tool is: its version ("2.40.3", "1.29.2"), or `None` if it is
/// not installed or does not answer. Needs no engine.
pub fn compose_version(mut command: Command) -> Option<String> {
    client_env(&mut command);
    let output = host::output(command.args(["version", "--short"]), Duration::from_secs(20));
    let version = String::from_utf8_lossy(&output.stdout).trim().trim_start_matches('v').to_owned();
    (output.status.success() && !version.is_empty()).then_some(version)
}

/// A dockerd that a killed run left behind (its pid file names a live dockerd): stopped, so it
/// does not share the data directory with the new one.
fn stop_leftover(pid_file: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|pid| pid.trim().parse::<u32>().ok()) else {
        return;
    };
    let is_dockerd = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(RUN_DIR) && host::alive(pid));
    if !is_dockerd {
        return;
    }
    host::say(&format!("deploy: stopping dockerd {pid}, left by an earlier run"));
    host::signal(pid, "TERM");
    let deadline = Instant::now() + STOP_TIMEOUT;
    while host::alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if host::alive(pid) {
        host::signal(pid, "KILL");
    }
}

/// The host's packet filter and forwarding, as text to compare (counters left out).
fn firewall() -> String {
    let mut state = String::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        if host::which(tool).is_none() {
            continue;
        }
        let rules = host::output(&mut Command::new(tool), Duration::from_secs(20));
        for line in String::from_utf8_lossy(&rules.stdout).lines() {
            if line.starts_with('#') {
                continue;
            }
            // ":INPUT ACCEPT [12:3456]": chain policies carry packet counters.
            let line = line.split(" [").next().unwrap_or(line);
            state.push_str(line);
            state.push('\n');
        }
    }
    for sysctl in ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"] {
        state.push_str(&format!("{sysctl} = {}", std::fs::read_to_string(sysctl).unwrap_or_default()));
    }
    state
}

/// Every file under `dir`, by relative path and contents, in a stable order.
fn directory_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read a stand-in directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).expect("under dir").display().to_string();
                files.push((name, std::fs::read(&path).expect("read a stand-in file")));
            }
        }
    }
    files.sort();
    files
}
