//! The deployment files, read as an operator's reviewer would read them.
//!
//! - `docker-compose.yml` and `docker-compose.gpu.yml`: parsed as YAML and checked for structure
//!   (no Docker engine is assumed, so nothing is started): which services exist, what is
//!   published, health checks, start order, volumes, pinned images, and that every `WTF_…`
//!   variable is a real config key that the daemon's own loader accepts.
//! - `Dockerfile` and `.dockerignore`: read as instructions: stages, user, health check, ports.
//!
//! `cargo test --test deploy` runs all of these for real: the unit under a booted systemd, the
//! image built and the stack brought up by a Docker engine.
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
const SERVICES: [&str; 6] = ["check-config", "wtf-monitor", "redis", "ollama", "ollama-init", "mosquitto"];
/// The hard limit on open files of small hosts and containers seen running the daemon.
const HOST_OPEN_FILES_HARD_LIMIT: u64 = 20_000;

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

/// The file as Compose reads it: YAML with its merge keys (`<<: *anchor`) applied.
fn parse_yaml(relative: &str) -> Value {
    let mut document: Value =
        serde_norway::from_str(&read(relative)).unwrap_or_else(|err| panic!("{relative} is not valid YAML: {err}"));
    document.apply_merge().unwrap_or_else(|err| panic!("{relative}: a merge key does not resolve: {err}"));
    document
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

/// `text` as Compose reads it with no variables set: `${NAME:-default}` and `${NAME-default}`
/// give their default, `${NAME}` nothing.
fn with_defaults(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|end| start + end).expect("a closing brace");
        let inner = &rest[start + 2..end];
        let default = inner.split_once(":-").or_else(|| inner.split_once('-')).map(|(_, default)| default);
        out.push_str(default.unwrap_or(""));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every port a service publishes on the host, as "host_port->container_port" (host port
/// "random" when Docker picks it), from both the short and the long `ports` syntax, with
/// variables at their defaults.
fn published_ports(service: &Value) -> Vec<String> {
    let Some(entries) = service["ports"].as_sequence() else { return Vec::new() };
    entries
        .iter()
        .map(|entry| match entry {
            Value::Number(container) => format!("random->{container}"),
            Value::String(short) => {
                let short = &with_defaults(short);
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
fn compose_defines_its_services_in_a_form_both_compose_tools_read() {
    let compose = compose();
    assert!(
        compose.get("version").is_none(),
        "the Compose spec has no `version:` key (Compose v2 warns that it is obsolete)"
    );
    assert!(
        compose.get("name").is_none(),
        "no top-level `name:`: docker-compose 1.29 (Debian 12's) refuses the whole file for it"
    );
    let expected: BTreeSet<String> = SERVICES.iter().map(|name| name.to_string()).collect();
    assert_eq!(service_names(&compose), expected);
    assert_eq!(service(&compose, "wtf-monitor")["build"].as_str(), Some("."), "the daemon is built from this repo");
    for (name, repository) in [
        ("redis", "redis"),
        ("ollama", "ollama/ollama"),
        ("ollama-init", "ollama/ollama"),
        ("mosquitto", "eclipse-mosquitto"),
    ] {
        let image = service(&compose, name)["image"].as_str().unwrap_or_default();
        assert!(image.starts_with(&format!("{repository}:")), "{name} runs the {repository} image, not {image:?}");
    }
    assert_eq!(
        service(&compose, "ollama")["image"],
        service(&compose, "ollama-init")["image"],
        "the model is pulled by the same Ollama that serves it"
    );
}

#[test]
fn every_pulled_image_is_pinned_to_a_version() {
    let compose = compose();
    for name in service_names(&compose) {
        let service = service(&compose, &name);
        if service.get("build").is_some() {
            continue; // built here, from this repository
        }
        let image = service["image"].as_str().unwrap_or_else(|| panic!("{name} has no image"));
        let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("latest");
        let version = tag.split('-').next().unwrap_or_default();
        assert!(
            version.split('.').count() == 3 && version.split('.').all(|part| part.parse::<u32>().is_ok()),
            "{name}: {image} is not pinned to a version (MAJOR.MINOR.PATCH): a redeploy could run something untested"
        );
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
    assert_eq!(long_running, ["mosquitto", "ollama", "redis", "wtf-monitor"], "which services stay up");

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
    assert!(
        api["depends_on"].get("mosquitto").is_none(),
        "the broker is optional (a profile): depending on it breaks `up` without the profile"
    );
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
fn the_config_check_sees_what_the_daemon_gets_and_gates_its_start() {
    let compose = compose();
    let check = service(&compose, "check-config");
    let daemon = service(&compose, "wtf-monitor");
    for key in ["image", "environment", "read_only", "cap_drop", "security_opt", "ulimits"] {
        assert_eq!(check[key], daemon[key], "check-config and wtf-monitor differ in `{key}`");
    }
    let script = [strings(&check["entrypoint"]), strings(&check["command"])].concat().join(" ");
    assert!(
        script.contains(&format!("wtf-monitor check-config --config {SYSTEM_CONFIG_PATH}")),
        "check-config does not check the file the daemon reads: {script}"
    );
    assert_eq!(check["restart"], Value::String("no".into()), "a one-shot, quoted \"no\"");
    assert!(published_ports(check).is_empty());
    assert_eq!(
        depends_on_condition(daemon, "check-config"),
        Some("service_completed_successfully"),
        "an invalid config must stop `up` before the daemon starts, not make Docker restart it forever"
    );
}

#[test]
fn the_broker_is_optional_and_unpublished_and_the_daemon_knows_its_address() {
    let compose = compose();
    let broker = service(&compose, "mosquitto");
    assert_eq!(strings(&broker["profiles"]), ["mqtt"], "the broker starts only with `--profile mqtt`");
    for name in service_names(&compose).into_iter().filter(|name| name != "mosquitto") {
        assert!(service(&compose, &name).get("profiles").is_none(), "{name} must start without a profile");
    }
    assert!(published_ports(broker).is_empty(), "an anonymous broker must not be published");
    let command = strings(&broker["command"]).join(" ");
    assert!(
        command.contains("/mosquitto-no-auth.conf"),
        "mosquitto 2 listens on localhost only unless told: {command}"
    );
    // The daemon's MQTT client reads [mqtt] url; until it does, the variable waits commented.
    assert!(
        read("docker-compose.yml").contains("# WTF_MQTT__URL: \"mqtt://mosquitto:1883\""),
        "the daemon's environment does not name the broker"
    );
}

#[test]
fn open_files_are_bounded_alike_by_the_unit_and_the_container() {
    let unit: u64 = service_value(&unit_entries(), "LimitNOFILE")
        .expect("[Service] LimitNOFILE")
        .parse()
        .expect("LimitNOFILE is one number");
    let compose = compose();
    let nofile = &service(&compose, "wtf-monitor")["ulimits"]["nofile"];
    let soft = nofile["soft"].as_u64().expect("ulimits.nofile.soft");
    let hard = nofile["hard"].as_u64().expect("ulimits.nofile.hard");
    assert_eq!((soft, hard), (unit, unit), "the container's open-files limit is the unit's");
    assert!(unit <= HOST_OPEN_FILES_HARD_LIMIT, "{unit} open files is more than small hosts allow");
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

/// One build stage: what it starts from, its name, and its instructions after the `FROM`.
struct Stage<'a> {
    base: String,
    name: String,
    instructions: &'a [Instruction],
}

fn stages(instructions: &[Instruction]) -> Vec<Stage<'_>> {
    let starts: Vec<usize> =
        instructions.iter().enumerate().filter(|(_, i)| i.keyword == "FROM").map(|(at, _)| at).collect();
    starts
        .iter()
        .enumerate()
        .map(|(index, &start)| {
            let end = starts.get(index + 1).copied().unwrap_or(instructions.len());
            let from = &instructions[start].arguments;
            let words: Vec<&str> = from.split_whitespace().filter(|word| !word.starts_with("--")).collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => name.to_string(),
                _ => panic!("every stage is named (FROM image AS name): FROM {from}"),
            };
            Stage { base: words[0].to_owned(), name, instructions: &instructions[start + 1..end] }
        })
        .collect()
}

fn stage<'a>(stages: &'a [Stage<'a>], name: &str) -> &'a Stage<'a> {
    stages.iter().find(|stage| stage.name == name).unwrap_or_else(|| panic!("no stage named {name}"))
}

/// The JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK's CMD.
fn exec_form(arguments: &str) -> Vec<String> {
    serde_json::from_str(arguments).unwrap_or_else(|err| panic!("{arguments:?} is not the exec (JSON) form: {err}"))
}

fn arguments_of<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage.iter().filter(|i| i.keyword == keyword).map(|i| i.arguments.as_str()).collect()
}

/// `(sources, destination)` of each COPY of `stage` that reads the build context (not another
/// stage), flags left out.
fn context_copies(stage: &[Instruction]) -> Vec<(Vec<String>, String)> {
    arguments_of(stage, "COPY")
        .into_iter()
        .filter(|copy| !copy.contains("--from="))
        .map(|copy| {
            let words: Vec<String> =
                copy.split_whitespace().filter(|word| !word.starts_with("--")).map(str::to_owned).collect();
            let (destination, sources) = words.split_last().expect("COPY SOURCE... DESTINATION");
            (sources.to_vec(), destination.clone())
        })
        .collect()
}

/// The runtime stages both start from the base that holds everything but the binary.
const RUNTIME_BASE: &str = "runtime-base";
/// `docker build` with no --target builds the last stage: the full multi-stage build.
const FULL_BUILD: &str = "runtime";
/// `docker build --target runtime-prebuilt` packages a binary built beforehand.
const PREBUILT: &str = "runtime-prebuilt";
const INSTALLED_BINARY: &str = "/usr/local/bin/wtf-monitor";

#[test]
fn the_dockerfile_needs_no_frontend_image() {
    // A `# syntax=` directive makes BuildKit pull that frontend from a registry before reading
    // anything else: the build fails on a host without one.
    let text = read("Dockerfile");
    let directives = text.lines().take_while(|line| line.starts_with('#') && line.contains('='));
    for line in directives {
        let key = line.trim_start_matches('#').split('=').next().unwrap_or_default().trim().to_lowercase();
        assert_ne!(key, "syntax", "Dockerfile: {line}");
    }
}

#[test]
fn the_default_build_compiles_in_one_stage_and_runs_from_another() {
    let instructions = dockerfile();
    let stages = stages(&instructions);
    let last = stages.last().expect("a stage");
    assert_eq!(last.name, FULL_BUILD, "the default target (the last stage) is the full build");
    assert_eq!(last.base, RUNTIME_BASE);

    let builder =
        stages.iter().find(|stage| stage.base.starts_with("rust:")).expect("a stage FROM an official Rust image");
    let build = arguments_of(builder.instructions, "RUN")
        .into_iter()
        .find(|run| run.contains("cargo build"))
        .expect("the builder runs cargo build");
    for flag in ["--release", "--locked"] {
        assert!(build.contains(flag), "cargo build without {flag}: {build}");
    }
    let copies = arguments_of(last.instructions, "COPY");
    assert!(
        copies
            .iter()
            .any(|copy| copy.contains(&format!("--from={}", builder.name)) && copy.ends_with(INSTALLED_BINARY)),
        "the binary is copied from the builder to {INSTALLED_BINARY}: {copies:?}"
    );
    assert!(stage(&stages, RUNTIME_BASE).base.starts_with("debian:"), "the runtime must not carry the toolchain");
}

#[test]
fn the_prebuilt_target_packages_a_host_binary_without_compiling() {
    let instructions = dockerfile();
    let stages = stages(&instructions);
    let prebuilt = stage(&stages, PREBUILT);
    assert_eq!(prebuilt.base, RUNTIME_BASE, "the same runtime as the full build");
    assert!(arguments_of(prebuilt.instructions, "RUN").is_empty(), "{PREBUILT} runs nothing: it only copies");
    let position = |name: &str| stages.iter().position(|stage| stage.name == name);
    let builder = stages.iter().position(|stage| stage.base.starts_with("rust:"));
    assert!(
        position(PREBUILT) < builder,
        "the classic builder runs every stage before --target, so the builder must come after {PREBUILT}"
    );

    let args = arguments_of(prebuilt.instructions, "ARG");
    let default = args.iter().find_map(|arg| arg.strip_prefix("BINARY=")).expect("ARG BINARY=<default path>");
    assert_eq!(default, "target/release/wtf-monitor", "the default is where `cargo build --release` puts it");
    assert_eq!(context_copies(prebuilt.instructions), [(vec!["${BINARY}".to_owned()], INSTALLED_BINARY.to_owned())]);
    assert!(!dockerignore_excludes(default), ".dockerignore keeps {default} out of the context");
    assert!(dockerignore_excludes("target/release/deps/wtf_monitor.d"), "the rest of target/ stays out");
    assert!(dockerignore_excludes("target/debug/wtf-monitor"));
}

#[test]
fn the_runtime_installs_the_reference_config() {
    let instructions = dockerfile();
    let stages = stages(&instructions);
    let copies = context_copies(stage(&stages, RUNTIME_BASE).instructions);
    assert!(
        copies.contains(&(vec!["config/wtf-monitor.toml".to_owned()], SYSTEM_CONFIG_PATH.to_owned())),
        "the reference config is installed at {SYSTEM_CONFIG_PATH}: {copies:?}"
    );
}

#[test]
fn the_image_runs_as_a_fixed_non_root_user() {
    let instructions = dockerfile();
    let stages = stages(&instructions);
    let users = arguments_of(stage(&stages, RUNTIME_BASE).instructions, "USER");
    let user = users.last().expect("the runtime base sets USER");
    let (uid, gid) = user.split_once(':').unwrap_or((user, ""));
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {user}: give a numeric UID, so Kubernetes' runAsNonRoot can check it"));
    assert!(uid >= 1000, "USER {user} is root or a system account");
    if !gid.is_empty() {
        assert_ne!(gid, "0", "USER {user}: the group must not be root");
    }
    for target in [FULL_BUILD, PREBUILT] {
        assert!(arguments_of(stage(&stages, target).instructions, "USER").is_empty(), "{target} changes the user");
    }
}

#[test]
fn the_image_exposes_the_api_checks_its_health_and_starts_the_daemon() {
    let instructions = dockerfile();
    let stages = stages(&instructions);
    let base = stage(&stages, RUNTIME_BASE).instructions;

    let exposed: Vec<&str> = arguments_of(base, "EXPOSE").iter().flat_map(|ports| ports.split_whitespace()).collect();
    assert!(exposed.iter().any(|port| *port == "8000" || *port == "8000/tcp"), "EXPOSE 8000: {exposed:?}");

    let healthcheck = arguments_of(base, "HEALTHCHECK");
    let healthcheck = healthcheck.last().expect("a HEALTHCHECK");
    let (_, command) = healthcheck.split_once("CMD").expect("HEALTHCHECK … CMD [...]");
    assert_eq!(
        exec_form(command.trim()),
        ["wtf-monitor", "healthcheck"],
        "the binary is its own probe (no curl in the image), and finds the address in its config"
    );

    assert_eq!(arguments_of(base, "STOPSIGNAL").last().copied(), Some("SIGTERM"));
    assert_eq!(exec_form(arguments_of(base, "ENTRYPOINT").last().expect("ENTRYPOINT")), ["wtf-monitor"]);
    assert_eq!(exec_form(arguments_of(base, "CMD").last().expect("CMD")), ["--config", SYSTEM_CONFIG_PATH]);
}

/// The patterns of .dockerignore, in order.
fn dockerignore() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Whether .dockerignore leaves `path` out of the build context: the last pattern that matches
/// decides, a `!pattern` letting it back in (as Docker reads the file).
fn dockerignore_excludes(path: &str) -> bool {
    let mut excluded = false;
    for pattern in dockerignore() {
        let (keep, pattern) = match pattern.strip_prefix('!') {
            Some(pattern) => (true, pattern.to_owned()),
            None => (false, pattern),
        };
        let pattern = pattern.trim_end_matches('/');
        let matches = |candidate: &str| candidate == pattern || candidate.starts_with(&format!("{pattern}/"));
        let hit = match pattern.strip_prefix("**/") {
            // At any depth: the path, or any of its tails after a '/'.
            Some(tail) => {
                let tails = std::iter::once(path).chain(path.match_indices('/').map(|(at, _)| &path[at + 1..]));
                tails.into_iter().any(|candidate| candidate == tail || candidate.starts_with(&format!("{tail}/")))
            }
            None => matches(path),
        };
        if hit {
            excluded = !keep;
        }
    }
    excluded
}

#[test]
fn the_build_context_holds_what_the_dockerfile_copies_and_nothing_heavy() {
    for heavy in ["target", "target/debug", ".git"] {
        assert!(dockerignore_excludes(heavy), ".dockerignore must exclude {heavy}/");
    }
    let instructions = dockerfile();
    for stage in stages(&instructions) {
        for (sources, _) in context_copies(stage.instructions) {
            // ${BINARY} is cargo's output, checked with the prebuilt target.
            for source in sources.iter().filter(|source| !source.contains('$')) {
                let source = source.trim_end_matches('/');
                assert!(repo_path(source).exists(), "COPY {source}: no such file in the repository");
                assert!(
                    !dockerignore_excludes(source),
                    "COPY {source}: excluded from the build context by .dockerignore"
                );
            }
        }
    }
}

#[test]
fn what_the_builder_copies_is_enough_for_cargo_to_read_the_package() {
    // The manifest names its bench and binary by path: a copy that leaves one out fails to build.
    let instructions = dockerfile();
    let stages = stages(&instructions);
    let builder = stages.iter().find(|stage| stage.base.starts_with("rust:")).expect("a builder stage");
    let context = tempfile::tempdir().expect("a temporary directory");
    for (sources, _) in context_copies(builder.instructions) {
        for source in sources {
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
