//! `docker compose up` and `docker-compose up` for real, on the repository's docker-compose.yml,
//! with the image built from its Dockerfile, on an engine of the test's own (see `engine.rs`).
//!
//! Compose v2 (`docker compose`, with the `mqtt` profile) and Compose 1.29 (`docker-compose`,
//! Debian 12's, without it) each bring up a stack of their own, side by side, and are checked as
//! an operator would: `ps`, `logs`, `inspect`, `/health` and `/status` on the published port.
//! The one layer added over the user's file, `compose.test.yml`, makes anomalies come faster.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::cache;
use crate::common::free_port;
use crate::engine::{COMMAND_TIMEOUT, Engine};
use crate::host::{self, Steps};

const FILE: &str = "docker-compose.yml";
const TEST_LAYER: &str = "tests/deploy/compose.test.yml";
const INVALID_LAYER: &str = "tests/deploy/compose.invalid.yml";
/// Redis answers its healthcheck within one 5 s interval, the daemon within one 15 s interval
/// after that; the rest is margin for a loaded machine.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(90);
const BACK_TIMEOUT: Duration = Duration::from_secs(30);
/// The daemon's UID and GID in the image.
const IMAGE_USER: &str = "10001:10001";
/// The unit's LimitNOFILE, given to the container by the compose file.
const OPEN_FILES: u64 = 16384;

#[test]
fn the_compose_stack_comes_up_keeps_its_history_and_survives_a_bad_config() {
    if host::cannot_run("docker deployment test", &["dockerd", "debootstrap", "tar"]) {
        return;
    }
    let plugin = Compose::Plugin.version();
    let standalone = Compose::Standalone.version();
    let mut missing = Vec::new();
    if plugin.as_deref().is_none_or(|version| !version.starts_with("2.")) {
        missing.push(format!("Compose v2 as a docker CLI plugin (`docker compose version`: {plugin:?})"));
    }
    if standalone.is_none() {
        missing.push("`docker-compose`".to_owned());
    }
    if host::lacks("docker deployment test", missing) {
        return;
    }

    let mut steps = Steps::new("deploy: docker");
    steps.note(format!(
        "docker compose {}, docker-compose {}",
        plugin.unwrap_or_default(),
        standalone.unwrap_or_default()
    ));
    let root = steps.step("Debian base root (debootstrap, then cached)", || cache::root(&cache::SLIM));
    let engine = steps.step("start a private dockerd", Engine::start);
    let images = compose_images();
    let image = |service: &str| images.iter().find(|(name, _)| name == service).expect("a service").1.clone();
    let imported = steps.step("base image debian:bookworm-slim (import, then cached)", || engine.base_image(&root));
    let built = steps.step("stand-in images (build, then cached)", || engine.standins(&root, &images));
    steps.note(format!("base image imported now: {imported}; stand-ins built now: {built:?}"));
    let daemon_image = image("wtf-monitor");
    let binary = Path::new(env!("CARGO_BIN_EXE_wtf-monitor"));
    steps.step("docker build --target runtime-prebuilt", || engine.package(binary, &daemon_image));
    let size: u64 = engine.inspect(&daemon_image)["Size"].as_u64().expect("an image size");
    let binary_size = binary.metadata().expect("the binary").len();
    steps.note(format!(
        "image {daemon_image}: {:.1} MB, of which the binary cargo built for this run {:.1} MB",
        size as f64 / 1e6,
        binary_size as f64 / 1e6
    ));
    steps.step("the healthcheck follows WTF_API__LISTEN", || {
        healthcheck_follows_the_listen_address(&engine, &daemon_image)
    });

    std::thread::scope(|scope| {
        let older = scope.spawn(|| with_docker_compose_1(&engine));
        with_compose_v2(&engine, &mut steps);
        if let Err(panic) = older.join() {
            std::panic::resume_unwind(panic);
        }
    });
    steps.step("stop dockerd; the firewall is as it was", || engine.shut_down());
}

/// The full round with `docker compose`, the broker's profile included.
fn with_compose_v2(engine: &Engine, steps: &mut Steps) {
    let stack = Stack::new(engine, Compose::Plugin, "wtfdeploy-v2", &["mqtt"]);
    steps.step("docker compose up -d", || stack.up_ok());
    // The first summary and the daemon's first healthcheck both come about 15 s after its start.
    steps.step("Redis and the model reached by service name", || reaches_redis_and_the_model(&stack));
    steps.step("the stack is healthy", || stack.wait_healthy(&["redis", "ollama", "mosquitto", "wtf-monitor"]));
    steps.step("only the API is published", || only_the_api_is_published(&stack, &["mosquitto"]));
    let figures = steps.step("read-only, non-root, bounded open files", || runs_confined(&stack));
    figures.into_iter().for_each(|figure| steps.note(figure));
    steps.step("the broker answers by service name", || the_broker_answers_by_name(&stack));
    steps.step("docker compose restart keeps the history", || a_restart_keeps_the_history(&stack));
    steps.step("kill -9 of the daemon: back, with history", || a_killed_daemon_comes_back_with_its_history(&stack));
    steps.step("an invalid config does not crash-loop", || an_invalid_config_does_not_crash_loop(&stack));
    steps.step("docker compose down -v", || stack.down());
}

/// The same file with `docker-compose` 1.29: up, healthy, reachable, confined, and a bad config
/// refused; no broker, since its profile is not asked for.
fn with_docker_compose_1(engine: &Engine) {
    let mut steps = Steps::new("deploy: docker-compose");
    let stack = Stack::new(engine, Compose::Standalone, "wtfdeploy-v1", &[]);
    steps.step("docker-compose up -d", || stack.up_ok());
    steps.step("Redis and the model reached by service name", || reaches_redis_and_the_model(&stack));
    steps.step("the stack is healthy", || stack.wait_healthy(&["redis", "ollama", "wtf-monitor"]));
    steps.step("only the API is published; no broker", || {
        only_the_api_is_published(&stack, &[]);
        assert_eq!(stack.container("mosquitto"), None, "the broker started without its profile");
    });
    steps.step("read-only, non-root, bounded open files", || runs_confined(&stack));
    steps.step("an invalid config does not crash-loop", || an_invalid_config_does_not_crash_loop(&stack));
    steps.step("docker-compose down -v", || stack.down());
}

/// The image of every service in docker-compose.yml, as the stand-ins must be tagged.
fn compose_images() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(host::repo().join(FILE)).expect("read docker-compose.yml");
    let mut compose: serde_norway::Value = serde_norway::from_str(&text).expect("docker-compose.yml is YAML");
    compose.apply_merge().expect("the file's merge keys resolve");
    let services = compose["services"].as_mapping().expect("services");
    services
        .iter()
        .filter_map(|(name, service)| Some((name.as_str()?.to_owned(), service["image"].as_str()?.to_owned())))
        .collect()
}

/// A container started from the image with the API moved by WTF_API__LISTEN is healthy: the
/// image's own HEALTHCHECK asks where the daemon listens (only its interval is shortened here).
fn healthcheck_follows_the_listen_address(engine: &Engine, image: &str) {
    let name = "wtfdeploy-moved";
    let _ = host::output(engine.docker().args(["rm", "-f", name]), COMMAND_TIMEOUT);
    engine.check(&[
        "run",
        "--detach",
        "--name",
        name,
        "--network=none",
        "--read-only",
        "--health-interval=1s",
        "--env=WTF_API__LISTEN=0.0.0.0:9000",
        "--env=WTF_REDIS__URL=",
        "--env=WTF_LLM__URL=",
        image,
    ]);
    let health = host::wait_until("the moved daemon to be healthy", Duration::from_secs(30), |last| {
        let state = engine.inspect(name)["State"].clone();
        *last = state.to_string();
        let health = state["Health"]["Status"].as_str()?.to_owned();
        (health != "starting").then_some(health)
    });
    let log = engine.inspect(name)["State"]["Health"]["Log"].to_string();
    engine.check(&["rm", "-f", name]);
    assert_eq!(health, "healthy", "the healthcheck did not find the daemon on :9000: {log}");
}

fn reaches_redis_and_the_model(stack: &Stack) {
    // The compose file names them redis://redis:6379 and http://ollama:11434.
    host::wait_until("the daemon mirroring to Redis", BACK_TIMEOUT, |last| {
        let status = host::http_json(&stack.url("/status"))?;
        *last = status["redis"].to_string();
        (status["redis"]["state"] == "connected" && status["redis"]["mirrored"].as_u64() > Some(0)).then_some(())
    });
    // The first summary is due within 30 s of the start.
    host::wait_until("a summary written by the model", Duration::from_secs(60), |last| {
        let status = host::http_json(&stack.url("/status"))?;
        *last = status["llm"].to_string();
        (status["llm"]["state"] == "active").then_some(())
    });
    // The fake Ollama logs each request with its caller's address.
    let daemon = stack.inspect("wtf-monitor");
    let addresses: Vec<String> = daemon["NetworkSettings"]["Networks"]
        .as_object()
        .expect("the daemon's networks")
        .values()
        .filter_map(|network| network["IPAddress"].as_str().map(str::to_owned))
        .collect();
    let log = stack.compose(&["logs", "--no-color", "ollama"]);
    assert!(
        log.lines().any(|line| line.contains("POST /api/generate") && addresses.iter().any(|ip| line.contains(ip))),
        "no generate request from the daemon ({addresses:?}) in the model's log:\n{log}"
    );
}

/// Every host port published by the project's containers: only the API's, on the test's port.
fn only_the_api_is_published(stack: &Stack, also_running: &[&str]) {
    let mut published = Vec::new();
    let mut services = BTreeSet::new();
    for id in stack.containers() {
        let container = stack.engine.inspect(&id);
        let service = container["Config"]["Labels"]["com.docker.compose.service"].as_str().unwrap_or("?").to_owned();
        services.insert(service.clone());
        let Some(ports) = container["NetworkSettings"]["Ports"].as_object() else { continue };
        for (port, bindings) in ports {
            for binding in bindings.as_array().into_iter().flatten() {
                let host = format!(
                    "{}:{}",
                    binding["HostIp"].as_str().unwrap_or(""),
                    binding["HostPort"].as_str().unwrap_or("")
                );
                published.push((service.clone(), port.clone(), host));
            }
        }
    }
    for service in ["redis", "ollama", "wtf-monitor"].iter().chain(also_running) {
        assert!(services.contains(*service), "no {service} container: {services:?}");
    }
    assert_eq!(
        published,
        [("wtf-monitor".to_owned(), "8000/tcp".to_owned(), format!("127.0.0.1:{}", stack.port))],
        "what the stack publishes"
    );
}

/// The daemon's container is read-only, runs as the image's unprivileged user with no
/// capabilities and the open-files bound; returns its memory, for the report.
fn runs_confined(stack: &Stack) -> Vec<String> {
    let container = stack.inspect("wtf-monitor");
    assert_eq!(container["Config"]["User"], IMAGE_USER);
    assert_eq!(container["HostConfig"]["ReadonlyRootfs"], true);
    assert!(container["HostConfig"]["CapDrop"].as_array().is_some_and(|caps| caps.iter().any(|cap| cap == "ALL")));
    let pid = container["State"]["Pid"].as_u64().expect("a running daemon") as u32;
    let uid = host::proc_status(pid, "Uid").expect("the daemon's Uid");
    assert!(uid.split_whitespace().all(|id| id == "10001"), "the daemon's UIDs: {uid}");
    assert_eq!(host::proc_status(pid, "CapEff").as_deref(), Some("0000000000000000"), "effective capabilities");
    assert_eq!(host::open_files_limit(pid), Some(OPEN_FILES));

    let touch = stack.compose_output(&["exec", "-T", "wtf-monitor", "touch", "/etc/wtf-monitor/probe"]);
    assert!(!touch.status.success(), "the daemon's container could write to its filesystem");
    assert!(host::printed(&touch).contains("Read-only file system"), "{}", host::printed(&touch));
    let id = stack.compose(&["exec", "-T", "wtf-monitor", "id", "-u"]);
    assert_eq!(id.trim(), "10001");

    // Resident memory counts the pages of the (debug) binary it touched; RssAnon is its own.
    let [resident, own] = ["VmRSS", "RssAnon"].map(|field| host::proc_status(pid, field).unwrap_or_default());
    let id = container["Id"].as_str().expect("an id");
    let usage = stack.engine.check(&["stats", "--no-stream", "--format", "{{.MemUsage}}", id]);
    vec![format!(
        "{}: daemon resident {resident} (anonymous {own}); `docker stats`: {}",
        stack.compose.name(),
        usage.trim()
    )]
}

fn the_broker_answers_by_name(stack: &Stack) {
    // Through the project network's name for it; $SYS topics are retained, so one comes at once.
    let version = stack.compose(&[
        "exec",
        "-T",
        "mosquitto",
        "mosquitto_sub",
        "-h",
        "mosquitto",
        "-t",
        "$SYS/broker/version",
        "-C",
        "1",
        "-W",
        "5",
    ]);
    assert!(version.contains("mosquitto"), "{version:?}");
}

/// The anomalies the daemon serves, by id, once there are at least `least`.
fn history(stack: &Stack, least: usize) -> BTreeSet<String> {
    host::wait_until(&format!("{least} anomalies to keep"), BACK_TIMEOUT, |last| {
        let anomalies = host::http_json(&stack.url("/anomalies?limit=1000"))?;
        let ids: BTreeSet<String> =
            anomalies.as_array()?.iter().filter_map(|anomaly| anomaly["id"].as_str().map(str::to_owned)).collect();
        *last = format!("{} anomalies", ids.len());
        (ids.len() >= least).then_some(ids)
    })
}

fn assert_kept(stack: &Stack, before: &BTreeSet<String>, what: &str) {
    let after = history(stack, 1);
    let lost: Vec<&String> = before.difference(&after).collect();
    assert!(lost.is_empty(), "{what}: {} of {} anomalies lost: {lost:?}", lost.len(), before.len());
}

fn a_restart_keeps_the_history(stack: &Stack) {
    let before = history(stack, 5);
    let container = stack.inspect("wtf-monitor");
    stack.compose(&["restart", "wtf-monitor"]);
    stack.wait_back();
    let after = stack.inspect("wtf-monitor");
    assert_eq!(after["Id"], container["Id"], "restart keeps the container");
    assert_ne!(after["State"]["Pid"], container["State"]["Pid"], "restart starts a new process");
    assert_kept(stack, &before, "docker compose restart");
    // The new process read them back from Redis at start.
    let log = stack.compose(&["logs", "--no-color", "wtf-monitor"]);
    let restored = log
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(&line[line.find('{')?..]).ok())
        .find(|entry| entry["message"] == "restored from redis")
        .unwrap_or_else(|| panic!("no \"restored from redis\" in the log:\n{log}"));
    assert!(restored["anomalies"].as_u64() >= Some(before.len() as u64), "{restored}");
}

fn a_killed_daemon_comes_back_with_its_history(stack: &Stack) {
    let before = history(stack, 5);
    // What the mirror has not written yet is lost with the process: give it a moment.
    std::thread::sleep(Duration::from_secs(2));
    let container = stack.inspect("wtf-monitor");
    let pid = container["State"]["Pid"].as_u64().expect("a running daemon") as u32;
    let restarts = container["RestartCount"].as_u64().unwrap_or(0);
    // From the host, as the kernel's OOM killer or a crash would end it: `docker kill` would
    // count as an operator's stop, which the restart policy respects.
    assert!(host::signal(pid, "KILL"), "kill -9 {pid}");
    host::wait_until("Docker to restart the killed daemon", BACK_TIMEOUT, |last| {
        let now = stack.inspect("wtf-monitor");
        *last = format!("{} restarts, {}", now["RestartCount"], now["State"]);
        (now["RestartCount"].as_u64() > Some(restarts) && now["State"]["Running"] == true).then_some(())
    });
    stack.wait_back();
    assert_kept(stack, &before, "kill -9");
}

/// A bad setting stops `up` with the reason, and the daemon is never restarted in a loop: with
/// Compose 1 the running daemon is left as it was; Compose 2 replaces the container first, so it
/// stays created and not started. Either way, the good config brings it back with its history.
fn an_invalid_config_does_not_crash_loop(stack: &Stack) {
    let before = history(stack, 1);
    let running = stack.inspect("wtf-monitor");
    // Checked before it is applied, as the compose file suggests: refused, the stack untouched.
    let checked = host::output(
        &mut stack.command(&[TEST_LAYER, INVALID_LAYER], &["run", "--rm", "-T", "check-config"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(checked.status.code(), Some(2), "`run check-config` on an invalid config:\n{}", host::printed(&checked));
    assert!(host::printed(&checked).contains("detection.drift_thresholds.temperature"), "{}", host::printed(&checked));
    assert_eq!(stack.inspect("wtf-monitor")["State"]["StartedAt"], running["State"]["StartedAt"]);

    let up = stack.up(&[TEST_LAYER, INVALID_LAYER]);
    assert!(!up.status.success(), "`up` with an invalid config succeeded:\n{}", host::printed(&up));
    assert!(host::printed(&up).contains("check-config"), "`up` does not say what failed:\n{}", host::printed(&up));
    let check = stack.compose(&["logs", "--no-color", "check-config"]);
    assert!(check.contains("detection.drift_thresholds.temperature"), "the check does not name the key:\n{check}");

    let observe = || {
        let daemon = stack.inspect("wtf-monitor");
        (
            daemon["Id"].clone(),
            daemon["State"]["Status"].clone(),
            daemon["State"]["StartedAt"].clone(),
            daemon["RestartCount"].clone(),
        )
    };
    let first = observe();
    // Docker restarts a failed container after 0.1 s, then 0.2, 0.4, 0.8 s: a loop would show.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(observe(), first, "the daemon's container changed while the config was invalid");
    let (id, status, started, _) = first;
    if id == running["Id"] {
        assert_eq!(status, "running");
        assert_eq!(started, running["State"]["StartedAt"], "the old daemon was restarted");
        assert!(
            host::http_get(&stack.url("/health")).is_ok_and(|(code, _)| code == 200),
            "the old daemon stopped answering"
        );
    } else {
        assert_eq!(status, "created", "a new daemon container with an invalid config was started");
    }

    stack.up_ok();
    stack.wait_back();
    assert_kept(stack, &before, "after the config was fixed");
}

/// A Compose command-line tool.
#[derive(Clone, Copy)]
enum Compose {
    /// `docker compose`: Compose v2, a plugin of the engine's own client.
    Plugin,
    /// `docker-compose`: whatever that is on PATH; Compose 1.29 on Debian 12.
    Standalone,
}

impl Compose {
    fn name(self) -> &'static str {
        match self {
            Compose::Plugin => "docker compose",
            Compose::Standalone => "docker-compose",
        }
    }

    fn version(self) -> Option<String> {
        let command = match self {
            Compose::Plugin => {
                let mut command = Command::new(crate::engine::client());
                command.arg("compose");
                command
            }
            Compose::Standalone => Command::new(host::which("docker-compose")?),
        };
        crate::engine::compose_version(command)
    }
}

/// One compose project on the test engine, brought down (volumes too) when dropped.
struct Stack<'e> {
    engine: &'e Engine,
    compose: Compose,
    project: String,
    profiles: &'static [&'static str],
    /// The API's port on 127.0.0.1 (WTF_MONITOR_PORT).
    port: u16,
}

impl<'e> Stack<'e> {
    fn new(engine: &'e Engine, compose: Compose, project: &str, profiles: &'static [&'static str]) -> Stack<'e> {
        Stack { engine, compose, project: project.to_owned(), profiles, port: free_port() }
    }

    fn command(&self, layers: &[&str], args: &[&str]) -> Command {
        let mut command = match self.compose {
            Compose::Plugin => {
                let mut command = self.engine.docker();
                command.arg("compose");
                command
            }
            Compose::Standalone => {
                let mut command = Command::new("docker-compose");
                crate::engine::client_env(&mut command);
                command
            }
        };
        command.current_dir(host::repo()).args(["--project-name", &self.project]);
        for file in std::iter::once(&FILE).chain(layers) {
            command.arg("--file").arg(host::repo().join(file));
        }
        for profile in self.profiles {
            command.args(["--profile", profile]);
        }
        command.args(args).env("WTF_MONITOR_PORT", format!("127.0.0.1:{}", self.port));
        command
    }

    /// A compose command on the file and the test layer; how it ended, whatever that was.
    fn compose_output(&self, args: &[&str]) -> Output {
        host::output(&mut self.command(&[TEST_LAYER], args), COMMAND_TIMEOUT)
    }

    /// A compose command on the file and the test layer; panics unless it succeeds.
    fn compose(&self, args: &[&str]) -> String {
        host::run(&mut self.command(&[TEST_LAYER], args), COMMAND_TIMEOUT)
    }

    /// `up -d` with `layers` over the file: the image is the one packaged, never built here.
    fn up(&self, layers: &[&str]) -> Output {
        host::output(&mut self.command(layers, &["up", "--detach", "--no-build"]), COMMAND_TIMEOUT)
    }

    fn up_ok(&self) {
        let up = self.up(&[TEST_LAYER]);
        assert!(up.status.success(), "{} up failed:\n{}", self.compose.name(), host::printed(&up));
    }

    fn containers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.project);
        self.engine
            .check(&["ps", "--all", "--quiet", "--filter", &filter])
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    fn container(&self, service: &str) -> Option<String> {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let service = format!("label=com.docker.compose.service={service}");
        let ids = self.engine.check(&["ps", "--all", "--quiet", "--filter", &project, "--filter", &service]);
        ids.split_whitespace().next().map(str::to_owned)
    }

    fn inspect(&self, service: &str) -> Value {
        let id = self.container(service).unwrap_or_else(|| panic!("no {service} container"));
        self.engine.inspect(&id)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until Docker calls each of `services` healthy and both one-shots have succeeded.
    fn wait_healthy(&self, services: &[&str]) {
        host::wait_until("the stack to be healthy", HEALTHY_TIMEOUT, |last| {
            let mut states = Vec::new();
            for service in services {
                let health =
                    self.container(service).map(|id| self.engine.inspect(&id)["State"]["Health"]["Status"].clone());
                states.push(format!("{service}: {}", health.unwrap_or(Value::Null)));
            }
            for service in ["check-config", "ollama-init"] {
                let state = self.container(service).map(|id| self.engine.inspect(&id)["State"].clone());
                let state = state.unwrap_or(Value::Null);
                states.push(format!("{service}: {} {}", state["Status"], state["ExitCode"]));
            }
            *last = states.join(", ");
            let healthy = services.iter().all(|service| last.contains(&format!("{service}: \"healthy\"")));
            let done = ["check-config", "ollama-init"]
                .iter()
                .all(|service| last.contains(&format!("{service}: \"exited\" 0")));
            (healthy && done).then_some(())
        });
    }

    /// Waits until the API answers on the published port again.
    fn wait_back(&self) {
        host::wait_until("the API to answer again", BACK_TIMEOUT, |last| {
            let answer = host::http_get(&self.url("/health"));
            *last = format!("{answer:?}");
            answer.is_ok_and(|(status, _)| status == 200).then_some(())
        });
    }

    /// `down -v`: containers, networks and volumes gone.
    fn down(&self) {
        self.compose(&["down", "--volumes", "--remove-orphans"]);
        assert!(self.containers().is_empty(), "containers left after down: {:?}", self.containers());
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let volumes = self.engine.check(&["volume", "ls", "--quiet", "--filter", &filter]);
        assert!(volumes.trim().is_empty(), "volumes left after down -v: {volumes}");
    }
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let ps = self.compose_output(&["ps", "--all"]);
            let logs = self.compose_output(&["logs", "--no-color", "--tail=40"]);
            eprintln!(
                "--- {} ps (project {}) ---\n{}\n--- logs ---\n{}",
                self.compose.name(),
                self.project,
                String::from_utf8_lossy(&ps.stdout),
                String::from_utf8_lossy(&logs.stdout)
            );
        }
        let _ =
            host::output(&mut self.command(&[TEST_LAYER], &["down", "--volumes", "--remove-orphans"]), COMMAND_TIMEOUT);
    }
}
