//! The real binary against what a reviewer and an adversarial tester tried: slow and hostile
//! clients, a paused process, a closed pipe, typos in the environment, passwords in URLs.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Daemon, command};

/// Readings every 100 ms, nothing injected: whatever is raised, the test provoked.
const QUIET_PLANT: &str = r#"
[sensors]
interval = "100ms"

[simulation]
seed = 5
spikes_per_hour = 0.0
drifts_per_hour = 0.0
dropouts_per_hour = 0.0

[detection]
dropout_timeout = "1s"
"#;

#[tokio::test]
async fn a_paused_process_raises_one_dropout_for_every_detector_when_it_resumes() {
    let daemon = Daemon::start(QUIET_PLANT).await;
    // Every detector has readings, so every one has a silence to measure.
    tokio::time::sleep(Duration::from_millis(800)).await;
    daemon.signal("STOP");
    std::thread::sleep(Duration::from_millis(2_500));
    daemon.signal("CONT");
    // Past another timeout, so a late or doubled dropout would show too.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (status, body) = daemon.get_json("/anomalies?type=dropout&limit=1000").await;
    assert_eq!(status, 200, "{body}");
    let mut per_detector: BTreeMap<(String, String), usize> = BTreeMap::new();
    for dropout in body.as_array().unwrap() {
        let key =
            (dropout["sensor_id"].as_str().unwrap().to_owned(), dropout["parameter"].as_str().unwrap().to_owned());
        *per_detector.entry(key).or_default() += 1;
    }
    assert_eq!(per_detector.len(), 9, "every detector of every sensor raised: {per_detector:?}");
    assert!(per_detector.values().all(|count| *count == 1), "exactly one each: {per_detector:?}");
}

#[test]
fn check_config_into_a_closed_pipe_ends_quietly() {
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/config/wtf-monitor.toml");
    let mut child = command()
        .args(["check-config", "--config", reference])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start check-config");
    // `check-config | head -0`: the reader is gone before anything is written.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("check-config ends");
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(!errors.contains("panicked"), "{errors}");
    assert_eq!(output.status.code(), Some(0), "{errors}");
}

#[test]
fn a_misspelt_section_in_the_environment_is_refused_by_check_config() {
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/config/wtf-monitor.toml");
    let output = command()
        .args(["check-config", "--config", reference])
        .env("WTF_DETECTOIN__DRIFT_DURATION", "5s")
        .env("WTF_CONFIG_NOTE", "x")
        .output()
        .expect("run check-config");
    assert_eq!(output.status.code(), Some(2));
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(errors.contains("WTF_DETECTOIN__DRIFT_DURATION: \"detectoin\" is not a section"), "{errors}");
    assert!(
        errors.contains("warning: WTF_CONFIG_NOTE"),
        "a variable that is not shaped like a setting is warned about: {errors}"
    );
}

#[test]
fn check_config_prints_no_password() {
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/config/wtf-monitor.toml");
    let output = command()
        .args(["check-config", "--config", reference])
        .env("WTF_REDIS__URL", "redis://monitor:hunter2@redis-host:6379/0")
        .env("WTF_LLM__URL", "http://ollama:hunter3@ollama-host:11434")
        .output()
        .expect("run check-config");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(!printed.contains("hunter"), "{printed}");
    assert!(printed.contains("url = \"redis://monitor:***@redis-host:6379/0\""), "{printed}");
    assert!(printed.contains("url = \"http://ollama:***@ollama-host:11434\""), "{printed}");
}

#[tokio::test]
async fn the_start_log_names_the_redis_and_prefix_in_use_without_the_password() {
    // Port 1: nothing listens there, so nothing is written anywhere.
    let daemon = Daemon::builder(QUIET_PLANT)
        .env("WTF_REDIS__URL", "redis://:hunter2@127.0.0.1:1")
        .env("WTF_REDIS__KEY_PREFIX", "plant-a:")
        .start()
        .await;
    let logs = daemon.logs();
    let line = logs.lines().find(|line| line.contains("writing into this Redis")).unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains("url=redis://:***@127.0.0.1:1") && line.contains("key_prefix=plant-a:"), "{line}");
    assert!(!logs.contains("hunter2"), "{logs}");
}

/// Opens a connection and sends the start of a head it never finishes.
fn half_open(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // Refused at once, the write may meet a closed socket; the answer is what counts.
    let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("a read timeout");
    stream
}

fn answer_of(mut stream: TcpStream) -> String {
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_past_the_cap_refused_with_a_log_line() {
    let config = format!("{QUIET_PLANT}\n[api]\nheader_read_timeout = \"1s\"\nmax_connections = 20\n");
    let daemon = Daemon::start(&config).await;
    let port = daemon.port;
    // Blocking sockets, off the runtime, so the test's own HTTP client keeps working meanwhile.
    let (answers, cut_off) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let slow: Vec<TcpStream> = (0..30).map(|_| half_open(port)).collect();
        let answers: Vec<String> = slow.into_iter().map(answer_of).collect();
        (answers, started.elapsed())
    })
    .await
    .expect("the slow clients");
    let refused = answers.iter().filter(|answer| answer.starts_with("HTTP/1.1 503")).count();
    let timed_out = answers.iter().filter(|answer| answer.starts_with("HTTP/1.1 408")).count();
    assert!(refused >= 9, "{refused} refused: {answers:?}");
    assert_eq!(refused + timed_out, 30, "every one answered: {answers:?}");
    assert!(answers.iter().all(|answer| answer.contains("\r\n\r\n{\"error\":")), "JSON errors: {answers:?}");
    assert!(cut_off < Duration::from_secs(4), "the slow ones held on for {cut_off:?}");
    assert_eq!(daemon.get("/health").await.status, 200);
    assert!(daemon.logs().contains("connection limit reached"), "{}", daemon.logs());
}

#[tokio::test]
async fn the_http_layer_refuses_with_json_too() {
    let daemon = Daemon::start(QUIET_PLANT).await;
    let long = daemon.get(&format!("/{}", "a".repeat(60_000))).await;
    assert_eq!(long.status, 414);
    assert_eq!(long.json()["error"], "request target longer than 8192 bytes");
    let mut stream = TcpStream::connect(("127.0.0.1", daemon.port)).expect("connect");
    stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").expect("send");
    let answer = answer_of(stream);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("{\"error\":\"malformed request"), "{answer}");
}
