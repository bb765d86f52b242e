//! The deployment files, read as an operator's reviewer would read them.
//!
//! - `docker-compose.yml` and `docker-compose.gpu.yml`: parsed as YAML and checked for structure
//!   (no Docker engine is assumed, so nothing is started): which services exist, what is
//!   published, health checks, start order, volumes, and that every `WTF_…` variable is a real
//!   config key that the daemon's own loader accepts.
//! - `Dockerfile` and `.dockerignore`: read as instructions: stages, user, health check, ports.
//! - `systemd/wtf-monitor.service`: its keys, then `systemd-analyze verify` and
//!   `systemd-analyze security --offline=true` on a copy pointed at the freshly built binary,
//!   when `systemd-analyze` is installed (the test says so and passes when it is not).
//!
//! Every path is absolute (from `CARGO_MANIFEST_DIR`): the config test runs in a `figment::Jail`,
//! which changes the working directory of the whole test process while it runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;
use wtf_monitor::config::{Config, ConfigSource, LogFormat, SYSTEM_CONFIG_PATH};

const API_PORT: u16 = 8000;
const SERVICES: [&str; 4] = ["wtf-monitor", "redis", "ollama", "ollama-init"];

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

fn reference_config() -> toml::Table {
    read("config/wtf-monitor.toml").parse().expect("config/wtf-monitor.toml is valid TOML")
}

// --- docker-compose ---------------------------------------------------------------------------

fn parse_yaml(relative: &str) -> Value {
    serde_norway::from_str(&read(relative)).unwrap_or_else(|err| panic!("{relative} is not valid YAML: {err}"))
}

fn compose() -> Value {
    parse_yaml("docker-compose.yml")
}

fn service_names(compose: &Value) -> BTreeSet<String> {
    compose["services"]
        .as_mapping()
        .expect("a top-level `services` mapping")
        .keys()
        .map(|key| key.as_str().expect("service names are strings").to_owned())
        .collect()
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let service = &compose["services"][name];
    assert!(service.is_mapping(), "service {name:?} is not defined");
    service
}

/// A string, or a list of strings, as `command` and `entrypoint` may be written.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::String(text) => vec![text.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        Value::Number(number) => vec![number.to_string()],
        Value::Bool(flag) => vec![flag.to_string()],
        other => panic!("expected a string or a list of strings, got {other:?}"),
    }
}

/// `environment:` in either form, `{NAME: value}` or `["NAME=value"]`.
fn environment(service: &Value) -> Vec<(String, String)> {
    match &service["environment"] {
        Value::Null => Vec::new(),
        Value::Mapping(map) => map
            .iter()
            .map(|(name, value)| {
                let name = name.as_str().expect("variable names are strings").to_owned();
                let value = match value {
                    Value::Null => String::new(),
                    other => strings(other).concat(),
                };
                (name, value)
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|item| {
                let item = item.as_str().expect("`NAME=value` strings");
                let (name, value) = item.split_once('=').unwrap_or((item, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
        other => panic!("unexpected `environment` form: {other:?}"),
    }
}

/// Every port a service publishes on the host, as "host_port->container_port" (host port
/// "random" when Docker picks it), from both the short and the long `ports` syntax.
fn published_ports(service: &Value) -> Vec<String> {
    let Some(entries) = service["ports"].as_sequence() else { return Vec::new() };
    entries
        .iter()
        .map(|entry| match entry {
            Value::Number(container) => format!("random->{container}"),
            Value::String(short) => {
                // [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]
                let without_protocol = short.split('/').next().unwrap_or(short);
                let mut parts = without_protocol.rsplitn(3, ':');
                let container = parts.next().unwrap_or_default();
                let host = parts.next().filter(|host| !host.is_empty()).unwrap_or("random");
                format!("{host}->{container}")
            }
            Value::Mapping(_) => {
                let container = strings(&entry["target"]).concat();
                let host = strings(&entry["published"]).concat();
                let host = if host.is_empty() { "random".to_owned() } else { host };
                format!("{host}->{container}")
            }
            other => panic!("unexpected `ports` entry: {other:?}"),
        })
        .collect()
}

/// The named volume mounted at `target`, from `NAME:TARGET[:MODE]` or the long syntax; `None` if
/// nothing is mounted there.
fn volume_source_at(service: &Value, target: &str) -> Option<(String, String)> {
    service["volumes"].as_sequence()?.iter().find_map(|entry| match entry {
        Value::String(short) => {
            let mut parts = short.splitn(3, ':');
            let source = parts.next()?;
            (parts.next()? == target).then(|| (source.to_owned(), "volume".to_owned()))
        }
        Value::Mapping(_) => (entry["target"].as_str()? == target).then(|| {
            let kind = entry["type"].as_str().unwrap_or("volume").to_owned();
            (entry["source"].as_str().unwrap_or_default().to_owned(), kind)
        }),
        _ => None,
    })
}

fn depends_on_condition<'a>(service: &'a Value, dependency: &str) -> Option<&'a str> {
    service["depends_on"][dependency]["condition"].as_str()
}

/// A service that is meant to stay up (anything but a one-shot with `restart: "no"`).
fn is_long_running(service: &Value) -> bool {
    service["restart"].as_str() != Some("no")
}

#[test]
fn compose_defines_the_four_services_in_the_compose_spec_format() {
    let compose = compose();
    assert!(
        compose.get("version").is_none(),
        "the Compose spec has no `version:` key (Compose v2 warns that it is obsolete)"
    );
    let expected: BTreeSet<String> = SERVICES.iter().map(|name| name.to_string()).collect();
    assert_eq!(service_names(&compose), expected);
    assert_eq!(service(&compose, "wtf-monitor")["build"].as_str(), Some("."), "the daemon is built from this repo");
    assert_eq!(service(&compose, "redis")["image"].as_str(), Some("redis:7-alpine"));
    for name in ["ollama", "ollama-init"] {
        let image = service(&compose, name)["image"].as_str().unwrap_or_default();
        assert!(image.starts_with("ollama/ollama"), "{name} runs the ollama/ollama image, not {image:?}");
    }
}

#[test]
fn only_the_api_is_published_and_only_on_its_configured_port() {
    let config = reference_config();
    let listen = config["api"]["listen"].as_str().expect("api.listen");
    assert!(listen.ends_with(&format!(":{API_PORT}")), "the image's config listens on {listen}, not :{API_PORT}");
    let expected = vec![format!("{API_PORT}->{API_PORT}")];

    for (file, document) in
        [("docker-compose.yml", compose()), ("docker-compose.gpu.yml", parse_yaml("docker-compose.gpu.yml"))]
    {
        for name in service_names(&document) {
            let service = &document["services"][name.as_str()];
            assert_ne!(
                service["network_mode"].as_str(),
                Some("host"),
                "{file}: {name} uses the host network, which publishes every port it opens"
            );
            let published = published_ports(service);
            if file == "docker-compose.yml" && name == "wtf-monitor" {
                assert_eq!(published, expected, "{file}: the API is published on {API_PORT} only");
            } else {
                assert!(
                    published.is_empty(),
                    "{file}: {name} publishes {published:?}; only the API may be reachable from outside"
                );
            }
        }
    }
}

#[test]
fn every_long_running_service_has_a_healthcheck() {
    let compose = compose();
    let long_running: Vec<String> =
        service_names(&compose).into_iter().filter(|name| is_long_running(service(&compose, name))).collect();
    assert_eq!(long_running, ["ollama", "redis", "wtf-monitor"], "which services stay up");

    for name in &long_running {
        let healthcheck = &service(&compose, name)["healthcheck"];
        let test = strings(&healthcheck["test"]);
        assert!(
            !test.is_empty() && test[0] != "NONE" && healthcheck["disable"].as_bool() != Some(true),
            "{name} has no healthcheck"
        );
        let restart = service(&compose, name)["restart"].as_str().unwrap_or("no");
        assert!(
            ["always", "unless-stopped", "on-failure"].iter().any(|policy| restart.starts_with(policy)),
            "{name} is not restarted when it dies (restart: {restart:?})"
        );
    }
    assert_eq!(
        strings(&service(&compose, "wtf-monitor")["healthcheck"]["test"]),
        ["CMD", "wtf-monitor", "healthcheck"]
    );
    assert_eq!(strings(&service(&compose, "redis")["healthcheck"]["test"]), ["CMD", "redis-cli", "ping"]);
}

#[test]
fn the_api_waits_for_a_healthy_redis_but_only_for_ollama_to_start() {
    let compose = compose();
    let api = service(&compose, "wtf-monitor");
    assert_eq!(depends_on_condition(api, "redis"), Some("service_healthy"));
    assert_eq!(
        depends_on_condition(api, "ollama"),
        Some("service_started"),
        "the daemon degrades to template summaries without Ollama, so it must not wait for the model"
    );
    assert!(api["depends_on"].get("ollama-init").is_none(), "a model pull of minutes must not delay the API");
    assert_eq!(api["restart"].as_str(), Some("unless-stopped"));
}

#[test]
fn ollama_init_pulls_the_configured_model_once_and_fails_loudly() {
    let compose = compose();
    let init = service(&compose, "ollama-init");
    let config = reference_config();
    let model = config["llm"]["model"].as_str().expect("llm.model");
    assert_eq!(model, "llama3.2:1b");

    assert_eq!(
        init["restart"],
        Value::String("no".into()),
        "restart must be \"no\", quoted: YAML 1.1 readers (Compose v1) take a bare `no` for false"
    );
    assert_eq!(depends_on_condition(init, "ollama"), Some("service_healthy"));

    let script = [strings(&init["entrypoint"]), strings(&init["command"])].concat().join("\n");
    assert!(script.contains(&format!("ollama pull {model}")), "ollama-init does not pull {model}:\n{script}");
    assert!(
        script.contains("set -e") || script.contains("sh -e"),
        "a failed pull must end ollama-init non-zero (set -e):\n{script}"
    );

    let env = environment(init);
    assert!(
        env.contains(&("OLLAMA_HOST".to_owned(), "ollama:11434".to_owned())),
        "ollama-init must talk to the ollama service, not to itself: {env:?}"
    );
    assert!(published_ports(init).is_empty());
}

#[test]
fn redis_and_ollama_keep_their_data_in_declared_named_volumes() {
    let compose = compose();
    let declared: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .expect("a top-level `volumes` mapping")
        .keys()
        .map(|key| key.as_str().expect("volume names are strings").to_owned())
        .collect();

    for (name, target, volume) in [("redis", "/data", "redis-data"), ("ollama", "/root/.ollama", "ollama-models")] {
        let (source, kind) = volume_source_at(service(&compose, name), target)
            .unwrap_or_else(|| panic!("{name} mounts nothing at {target}"));
        assert_eq!(kind, "volume", "{name}: {target} must be a named volume, not a {kind}");
        assert_eq!(source, volume, "{name}: {target} is kept in the wrong volume");
        assert!(
            !source.starts_with(['.', '/', '~']),
            "{name}: {source:?} is a bind mount; named volumes are managed by Docker"
        );
        assert!(declared.contains(&source), "{name}: volume {source:?} is not declared under top-level `volumes:`");
    }

    let redis_command = strings(&service(&compose, "redis")["command"]).join(" ");
    assert!(redis_command.contains("--appendonly yes"), "Redis must persist its mirror: {redis_command:?}");
}

#[test]
fn compose_environment_names_are_keys_of_the_reference_config() {
    let compose = compose();
    let config = reference_config();
    let mut seen = Vec::new();

    for name in service_names(&compose) {
        for (variable, value) in environment(service(&compose, &name)) {
            let Some(path) = variable.strip_prefix("WTF_") else { continue };
            let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            assert!(keys.len() >= 2, "{name}: {variable} must be WTF_SECTION__KEY");
            let mut table = &config;
            for (depth, key) in keys.iter().enumerate() {
                let found = table.get(key).unwrap_or_else(|| {
                    panic!(
                        "{name}: {variable} names [{}] {key}, which config/wtf-monitor.toml does not have",
                        keys[..depth].join(".")
                    )
                });
                if depth + 1 < keys.len() {
                    table = found.as_table().unwrap_or_else(|| panic!("{name}: {variable}: {key} is not a table"));
                }
            }
            seen.push((variable, value));
        }
    }

    for expected in
        [("WTF_REDIS__URL", "redis://redis:6379"), ("WTF_LLM__URL", "http://ollama:11434"), ("WTF_LOG__FORMAT", "json")]
    {
        assert!(
            seen.iter().any(|(name, value)| (name.as_str(), value.as_str()) == expected),
            "the daemon's environment lacks {}={}",
            expected.0,
            expected.1
        );
    }
}

#[test]
#[allow(clippy::result_large_err)] // the closure's error type is figment's, not ours
fn compose_environment_gives_the_daemon_a_valid_config() {
    let compose = compose();
    let variables = environment(service(&compose, "wtf-monitor"));
    let config_path = repo_path("config/wtf-monitor.toml");

    // The daemon's own loader and validator, with the container's variables set; the Jail
    // restores the environment afterwards.
    figment::Jail::expect_with(|jail| {
        for (name, value) in &variables {
            jail.set_env(name, value);
        }
        let config = Config::load(&ConfigSource::File(config_path.clone())).map_err(|err| err.to_string())?;
        let config = config.validate().map_err(|problems| format!("{problems:?}"))?;
        assert_eq!(config.redis.url, "redis://redis:6379");
        assert_eq!(config.llm.url, "http://ollama:11434");
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.api.listen.port(), API_PORT);
        assert!(config.api.listen.ip().is_unspecified(), "in a container the API must listen on all interfaces");
        Ok(())
    });
}

#[test]
fn the_gpu_override_reserves_nvidia_gpus_for_ollama_only() {
    let gpu = parse_yaml("docker-compose.gpu.yml");
    assert!(gpu.get("version").is_none());
    assert_eq!(service_names(&gpu), BTreeSet::from(["ollama".to_owned()]));
    let devices = gpu["services"]["ollama"]["deploy"]["resources"]["reservations"]["devices"]
        .as_sequence()
        .expect("deploy.resources.reservations.devices");
    assert_eq!(devices.len(), 1);
    let device = &devices[0];
    assert_eq!(device["driver"].as_str(), Some("nvidia"));
    assert_eq!(device["count"].as_str(), Some("all"));
    assert_eq!(strings(&device["capabilities"]), ["gpu"]);
}

// --- Dockerfile -------------------------------------------------------------------------------

/// One Dockerfile instruction: its keyword in upper case and the rest of its (joined) lines.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    arguments: String,
}

/// Instructions in order, continuation lines joined and comment lines dropped (as Docker does,
/// including comments between continuation lines).
fn dockerfile() -> Vec<Instruction> {
    let text = read("Dockerfile");
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, arguments) = pending.split_once(char::is_whitespace).unwrap_or((&pending, ""));
                instructions
                    .push(Instruction { keyword: keyword.to_uppercase(), arguments: arguments.trim().to_owned() });
                pending.clear();
            }
        }
    }
    assert!(pending.is_empty(), "the Dockerfile ends in a continuation line");
    instructions
}

/// The instructions of the last stage (from its `FROM` on).
fn final_stage(instructions: &[Instruction]) -> &[Instruction] {
    let start = instructions.iter().rposition(|i| i.keyword == "FROM").expect("a FROM");
    &instructions[start..]
}

/// The JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK's CMD.
fn exec_form(arguments: &str) -> Vec<String> {
    serde_json::from_str(arguments).unwrap_or_else(|err| panic!("{arguments:?} is not the exec (JSON) form: {err}"))
}

fn arguments_of<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage.iter().filter(|i| i.keyword == keyword).map(|i| i.arguments.as_str()).collect()
}

#[test]
fn the_image_is_built_in_one_stage_and_run_from_another() {
    let instructions = dockerfile();
    let stages: Vec<&str> = arguments_of(&instructions, "FROM");
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    let builder_name =
        stages[0].rsplit_once(" AS ").or_else(|| stages[0].rsplit_once(" as ")).map(|(_, name)| name.trim());
    let builder_name = builder_name.expect("the first stage is named (FROM … AS builder)");
    assert!(stages[0].starts_with("rust:"), "the builder is an official Rust image: {}", stages[0]);

    let build =
        arguments_of(&instructions, "RUN").into_iter().find(|run| run.contains("cargo build")).expect("a cargo build");
    for flag in ["--release", "--locked"] {
        assert!(build.contains(flag), "cargo build without {flag}: {build}");
    }

    let last = final_stage(&instructions);
    assert!(!last[0].arguments.starts_with("rust:"), "the runtime stage must not carry the toolchain");
    let copies = arguments_of(last, "COPY");
    assert!(
        copies.iter().any(
            |copy| copy.contains(&format!("--from={builder_name}")) && copy.ends_with("/usr/local/bin/wtf-monitor")
        ),
        "the binary is copied from the builder to /usr/local/bin: {copies:?}"
    );
    assert!(
        copies.iter().any(|copy| copy.contains("config/wtf-monitor.toml") && copy.ends_with(SYSTEM_CONFIG_PATH)),
        "the reference config is installed at {SYSTEM_CONFIG_PATH}: {copies:?}"
    );
}

#[test]
fn the_image_runs_as_a_fixed_non_root_user() {
    let instructions = dockerfile();
    let users = arguments_of(final_stage(&instructions), "USER");
    let user = users.last().expect("the final stage sets USER");
    let (uid, gid) = user.split_once(':').unwrap_or((user, ""));
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {user}: give a numeric UID, so Kubernetes' runAsNonRoot can check it"));
    assert!(uid >= 1000, "USER {user} is root or a system account");
    if !gid.is_empty() {
        assert_ne!(gid, "0", "USER {user}: the group must not be root");
    }
}

#[test]
fn the_image_exposes_the_api_checks_its_health_and_starts_the_daemon() {
    let instructions = dockerfile();
    let last = final_stage(&instructions);

    let exposed: Vec<&str> = arguments_of(last, "EXPOSE").iter().flat_map(|ports| ports.split_whitespace()).collect();
    assert!(exposed.iter().any(|port| *port == "8000" || *port == "8000/tcp"), "EXPOSE 8000: {exposed:?}");

    let healthcheck = arguments_of(last, "HEALTHCHECK");
    let healthcheck = healthcheck.last().expect("a HEALTHCHECK");
    let (_, command) = healthcheck.split_once("CMD").expect("HEALTHCHECK … CMD [...]");
    assert_eq!(
        exec_form(command.trim()),
        ["wtf-monitor", "healthcheck"],
        "the binary is its own probe: no curl in the image"
    );

    assert_eq!(arguments_of(last, "STOPSIGNAL").last().copied(), Some("SIGTERM"));
    assert_eq!(exec_form(arguments_of(last, "ENTRYPOINT").last().expect("ENTRYPOINT")), ["wtf-monitor"]);
    assert_eq!(exec_form(arguments_of(last, "CMD").last().expect("CMD")), ["--config", SYSTEM_CONFIG_PATH]);
}

#[test]
fn the_build_context_holds_what_the_dockerfile_copies_and_nothing_heavy() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> =
        ignore.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).collect();
    for heavy in ["target", ".git"] {
        assert!(
            patterns.iter().any(|pattern| pattern.trim_end_matches('/') == heavy),
            ".dockerignore must exclude {heavy}/: {patterns:?}"
        );
    }

    let instructions = dockerfile();
    for copy in arguments_of(&instructions, "COPY") {
        let words: Vec<&str> = copy.split_whitespace().filter(|word| !word.starts_with("--")).collect();
        if copy.contains("--from=") || words.len() < 2 {
            continue;
        }
        for source in &words[..words.len() - 1] {
            let source = source.trim_end_matches('/');
            assert!(repo_path(source).exists(), "COPY {source}: no such file in the repository");
            let excluded = patterns.iter().any(|pattern| {
                let pattern = pattern.trim_end_matches('/');
                !pattern.starts_with('!') && (source == pattern || source.starts_with(&format!("{pattern}/")))
            });
            assert!(!excluded, "COPY {source}: excluded from the build context by .dockerignore");
        }
    }
}

#[test]
fn what_the_builder_copies_is_enough_for_cargo_to_read_the_package() {
    // The manifest names its bench and binary by path: a copy that leaves one out fails to build.
    let instructions = dockerfile();
    let context = tempfile::tempdir().expect("a temporary directory");
    for copy in arguments_of(&instructions, "COPY") {
        let words: Vec<&str> = copy.split_whitespace().filter(|word| !word.starts_with("--")).collect();
        if copy.contains("--from=") || words.len() < 2 {
            continue;
        }
        for source in &words[..words.len() - 1] {
            copy_tree(&repo_path(source.trim_end_matches('/')), &context.path().join(source.trim_end_matches('/')));
        }
    }
    // Asking for a target that does not exist makes cargo read the whole manifest (every target's
    // path) and stop there, instead of compiling: "no bin target named" means the manifest is whole.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let check = std::process::Command::new(cargo)
        .args(["check", "--offline", "--locked", "--bin", "no-such-target"])
        .current_dir(context.path())
        .output()
        .expect("run cargo");
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(said.contains("no bin target named"), "the copied files do not make a package: {said}");
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create a directory");
        for entry in std::fs::read_dir(from).expect("read a directory").flatten() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).expect("copy a file");
    }
}

// --- systemd ----------------------------------------------------------------------------------

const UNIT: &str = "systemd/wtf-monitor.service";

/// `(section, key, value)` for every assignment in the unit, in order.
fn unit_entries() -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in read(UNIT).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        assert!(!line.ends_with('\\'), "keep unit lines unbroken for this reader: {line}");
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not KEY=value: {line}"));
        entries.push((section.clone(), key.trim().to_owned(), value.trim().to_owned()));
    }
    entries
}

/// Every value given to `[Service] key`, in order (list-valued keys may repeat).
fn service_values(entries: &[(String, String, String)], key: &str) -> Vec<String> {
    entries.iter().filter(|(section, k, _)| section == "Service" && k == key).map(|(_, _, v)| v.clone()).collect()
}

fn service_value(entries: &[(String, String, String)], key: &str) -> Option<String> {
    service_values(entries, key).pop()
}

#[test]
fn the_unit_notifies_reloads_and_restarts_as_the_daemon_expects() {
    let entries = unit_entries();
    let expect =
        |key: &str, value: &str| assert_eq!(service_value(&entries, key).as_deref(), Some(value), "[Service] {key}");

    expect("Type", "notify");
    expect("NotifyAccess", "main");
    expect("ExecStart", &format!("/usr/local/bin/wtf-monitor --config {SYSTEM_CONFIG_PATH}"));
    expect("ExecReload", "/bin/sh -c 'kill -HUP $$MAINPID'");
    expect("Restart", "on-failure");
    expect("WatchdogSec", "30s");
    expect("DynamicUser", "yes");
    for key in ["RestartSec", "TimeoutStopSec"] {
        assert!(service_value(&entries, key).is_some_and(|value| !value.is_empty()), "[Service] {key} is not set");
    }
    assert!(
        entries
            .iter()
            .any(|(section, key, value)| section == "Install" && key == "WantedBy" && value == "multi-user.target"),
        "`systemctl enable` needs [Install] WantedBy=multi-user.target"
    );
}

#[test]
fn the_unit_is_hardened_but_keeps_its_network() {
    let entries = unit_entries();
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallArchitectures", "native"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectHostname", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("UMask", "0077"),
    ] {
        assert_eq!(service_value(&entries, key).as_deref(), Some(value), "[Service] {key}");
    }

    let families: BTreeSet<String> = service_values(&entries, "RestrictAddressFamilies")
        .iter()
        .flat_map(|value| value.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert_eq!(families, BTreeSet::from(["AF_INET".into(), "AF_INET6".into(), "AF_UNIX".into()]));

    let filters = service_values(&entries, "SystemCallFilter");
    assert!(filters.iter().any(|filter| filter == "@system-service"), "SystemCallFilter: {filters:?}");
    let denied: BTreeSet<&str> =
        filters.iter().filter_map(|filter| filter.strip_prefix('~')).flat_map(str::split_whitespace).collect();
    assert!(denied.contains("@privileged") && denied.contains("@resources"), "SystemCallFilter denies: {denied:?}");

    // Redis and Ollama may live on any host: no IP allow-list, no private network.
    assert_eq!(service_value(&entries, "IPAddressDeny"), None);
    assert_ne!(service_value(&entries, "PrivateNetwork").as_deref(), Some("yes"));
}

/// `systemd-analyze`, if installed; otherwise prints why the check is skipped.
fn systemd_analyze(check: &str) -> Option<Command> {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(output) if output.status.success() => {
            let mut command = Command::new("systemd-analyze");
            command.env("SYSTEMD_COLORS", "0").env("SYSTEMD_PAGER", "").env("SYSTEMD_LOG_COLOR", "0");
            Some(command)
        }
        _ => {
            println!("note: systemd-analyze is not installed; skipping `{check}`");
            None
        }
    }
}

/// A copy of the unit, under the same file name, whose ExecStart runs the binary cargo just built
/// (`verify` refuses a unit whose binary does not exist).
fn unit_copy_with_built_binary() -> (tempfile::TempDir, PathBuf) {
    let binary = env!("CARGO_BIN_EXE_wtf-monitor");
    assert!(!binary.contains(char::is_whitespace), "the built binary's path has a space: {binary}");
    let original = read(UNIT);
    let installed = "ExecStart=/usr/local/bin/wtf-monitor ";
    assert!(original.contains(installed));
    let copy = original.replace(installed, &format!("ExecStart={binary} "));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("wtf-monitor.service");
    std::fs::write(&path, copy).expect("write the unit copy");
    (dir, path)
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(mut command) = systemd_analyze("systemd-analyze verify") else { return };
    let (_dir, unit) = unit_copy_with_built_binary();
    let output = command.arg("verify").arg(&unit).output().expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify failed:\n{stderr}");
    // Unknown or misspelt keys are only warnings ("…, ignoring"): refuse them too.
    let about_the_unit: Vec<&str> = stderr.lines().filter(|line| line.contains("wtf-monitor.service")).collect();
    assert!(about_the_unit.is_empty(), "systemd-analyze verify warns about the unit:\n{}", about_the_unit.join("\n"));
}

/// The labels `systemd-analyze security` gives an overall exposure, from worst to best
/// (systemd's analyze-security.c): OK is 1.0 up to 4.9, SAFE 0.1 to 0.9, PERFECT 0.0.
const EXPOSURE_OK_OR_BETTER: [&str; 3] = ["OK", "SAFE", "PERFECT"];

#[test]
fn systemd_analyze_security_rates_the_unit_ok_or_better() {
    let Some(mut help) = systemd_analyze("systemd-analyze security --offline=true") else { return };
    let help = help.arg("--help").output().expect("run systemd-analyze --help");
    if !String::from_utf8_lossy(&help.stdout).contains("--offline") {
        println!("note: this systemd-analyze has no --offline (systemd < 250); skipping the security rating");
        return;
    }

    let (_dir, unit) = unit_copy_with_built_binary();
    let mut command = systemd_analyze("systemd-analyze security").expect("checked above");
    let output = command
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze security");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    // "→ Overall exposure level for wtf-monitor.service: 1.1 OK 🙂"
    let line = stdout
        .lines()
        .find(|line| line.contains("Overall exposure level for"))
        .unwrap_or_else(|| panic!("no overall exposure level in the output:\n{stdout}\n{stderr}"));
    let (_, rating) = line.rsplit_once(": ").expect("…: LEVEL LABEL");
    let mut words = rating.split_whitespace();
    let level: f64 =
        words.next().and_then(|level| level.parse().ok()).unwrap_or_else(|| panic!("no level in {line:?}"));
    let label = words.next().unwrap_or_default();
    println!("systemd-analyze security: overall exposure {level} {label}");
    assert!(
        EXPOSURE_OK_OR_BETTER.contains(&label) && level < 5.0,
        "overall exposure {level} {label}, wanted OK or better; the exposed settings:\n{}",
        stdout.lines().filter(|line| line.starts_with('✗')).collect::<Vec<_>>().join("\n")
    );
}
