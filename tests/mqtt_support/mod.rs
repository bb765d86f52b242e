//! A real Mosquitto for the tests: started on a free loopback port with its own config and
//! persistence directory, stopped on drop; and `mosquitto_pub`, the broker's own client, to
//! publish with. The machine's broker (1883) is never used.
//!
//! `.ci/run` installs `mosquitto` and `mosquitto-clients` when they are missing; a test run
//! without them fails saying so.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW_TO_GET_MOSQUITTO: &str =
    "install mosquitto and mosquitto-clients (apt-get install mosquitto mosquitto-clients)";

/// A `mosquitto` process of this test.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    process: Option<Child>,
}

impl Broker {
    /// Starts one on a free port; it keeps sessions and queued messages across its own restarts
    /// (persistence in its directory), as a production broker should.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for mosquitto");
        // Started as root, mosquitto drops to its own user: it must still write its log and store.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod the broker's directory");
        let mut broker = Self { port: free_port(), dir, process: None };
        broker.resume();
        broker
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops the broker the way a service manager does (SIGTERM: it saves its sessions).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = Command::new("kill").args(["-TERM", &process.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while process.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = process.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the broker on its port (again) and waits until it takes connections.
    pub fn resume(&mut self) {
        assert!(self.process.is_none(), "mosquitto is already running");
        let config = self.dir.path().join("mosquitto.conf");
        let store = self.dir.path().join("store/");
        std::fs::create_dir_all(&store).expect("mosquitto's persistence directory");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o777)).expect("chmod the store");
        let text = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}\n\
             max_queued_messages 100000\nlog_dest file {}\n",
            self.port,
            store.display(),
            self.dir.path().join("mosquitto.log").display(),
        );
        std::fs::write(&config, text).expect("write mosquitto.conf");
        let process = Command::new(binary("mosquitto"))
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start mosquitto ({HOW_TO_GET_MOSQUITTO}): {err}"));
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {} within 10 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Publishes one message with QoS 1 through `mosquitto_pub`; panics if the broker refuses it.
    pub fn publish(&self, topic: &str, payload: &[u8]) {
        let mut child = self.pub_command(topic).arg("-s").stdin(Stdio::piped()).spawn().expect("run mosquitto_pub");
        child.stdin.take().expect("stdin").write_all(payload).expect("write the payload");
        let output = child.wait_with_output().expect("mosquitto_pub ends");
        assert!(output.status.success(), "mosquitto_pub {topic}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Publishes each line as one message with QoS 1, in one connection.
    pub fn publish_lines(&self, topic: &str, lines: &[String]) {
        let mut child = self.pub_command(topic).arg("-l").stdin(Stdio::piped()).spawn().expect("run mosquitto_pub");
        let mut stdin = child.stdin.take().expect("stdin");
        for line in lines {
            writeln!(stdin, "{line}").expect("write a line");
        }
        drop(stdin);
        let output = child.wait_with_output().expect("mosquitto_pub ends");
        assert!(output.status.success(), "mosquitto_pub -l {topic}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Publishes `lines` to `topic` one every `pause`, from a thread, while the test goes on (a
    /// daemon killed or restarted mid-stream); [`Stream::finish`] waits for the last.
    pub fn stream_lines(&self, topic: &str, lines: Vec<String>, pause: Duration) -> Stream {
        let mut publisher = self.pub_command(topic).arg("-l").stdin(Stdio::piped()).spawn().expect("run mosquitto_pub");
        let mut stdin = publisher.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            for line in lines {
                writeln!(stdin, "{line}").expect("write a line");
                std::thread::sleep(pause);
            }
        });
        Stream { publisher, writer }
    }

    /// `mosquitto_pub` for one topic, QoS 1, to this broker.
    pub fn pub_command(&self, topic: &str) -> Command {
        let mut command = Command::new(binary("mosquitto_pub"));
        command
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1", "-t", topic])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// What the broker logged, for a failing test to show.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- mosquitto log (port {}) ---\n{}", self.port, self.log());
        }
    }
}

/// `mosquitto` lives in /usr/sbin on Debian, which is not on every PATH.
fn binary(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = PathBuf::from(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    let found = Command::new("which").arg(name).output().ok().filter(|output| output.status.success());
    match found {
        Some(output) => PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()),
        None => panic!("{name} is not installed: {HOW_TO_GET_MOSQUITTO}"),
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a bound address").port()
}

/// Lines being published by [`Broker::stream_lines`].
pub struct Stream {
    publisher: Child,
    writer: std::thread::JoinHandle<()>,
}

impl Stream {
    /// Waits until every line is written and `mosquitto_pub` has ended, successfully.
    pub fn finish(mut self) {
        self.writer.join().expect("the writer ends");
        assert!(self.publisher.wait().expect("mosquitto_pub ends").success());
    }
}
