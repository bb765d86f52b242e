//! `wtf-monitor`: parse the command line, load the config, run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing::Instrument;
use wtf_monitor::config::{Config, ConfigError, ConfigSource, ValidConfig, load_valid};
use wtf_monitor::daemon::{self, Daemon, Ending};
use wtf_monitor::health::Component;
use wtf_monitor::logging::LogControl;

/// Watches a water treatment facility: sensors, anomaly detection, operator summaries, REST API.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file [default: config/wtf-monitor.toml if present, else /etc/wtf-monitor/wtf-monitor.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// This daemon's name among its peers (cluster.instance) [default: the hostname]
    #[arg(long, global = true, value_name = "NAME")]
    instance: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and print it as the daemon would use it; start nothing.
    CheckConfig,
    /// Exit 0 if a running daemon answers /health, non-zero otherwise (for container healthchecks).
    ///
    /// Asks where the daemon listens: api.listen from the config it would load (the file, then
    /// WTF_* variables such as WTF_API__LISTEN), on loopback when that is all interfaces.
    Healthcheck {
        /// Ask this URL instead, e.g. http://127.0.0.1:8000/health.
        #[arg(long)]
        url: Option<String>,
    },
    /// Run the real actor tree under load and report throughput, latency, CPU and memory.
    Load {
        /// Simulated sensors (three detectors each).
        #[arg(long, default_value_t = 3)]
        sensors: usize,
        /// Readings per second per sensor, or "max" for as fast as the detectors take them.
        #[arg(long, default_value = "max")]
        rate: String,
        /// How long to run, e.g. 10s or 2m.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Injected spikes per sensor per hour (flat out, each reading stands for 1 ms).
        #[arg(long, default_value_t = 40.0)]
        spikes_per_hour: f64,
        /// Mirror to this Redis (empty: in memory only).
        #[arg(long, default_value = "")]
        redis: String,
        /// Configure every rule on every parameter (low limits, rate, stuck, deadband, off-delay).
        #[arg(long)]
        all_rules: bool,
        /// Send every alarm transition to this webhook URL (empty: no notifications).
        #[arg(long, default_value = "")]
        webhook: String,
    },
    /// Word windows of the seeded simulator with a real model, as the daemon does, and report
    /// how many notes were accepted, refused (by reason) or timed out, latency and tokens.
    LlmBench {
        /// Ollama's base URL.
        #[arg(long, default_value = "http://127.0.0.1:11434")]
        url: String,
        #[arg(long, default_value = "llama3.2:1b")]
        model: String,
        /// Windows to word, one call each.
        #[arg(long, default_value_t = 20)]
        windows: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 3)]
        sensors: usize,
        /// Length of a window (the summarizer's interval).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        window: Duration,
        /// Per call, as the daemon gives it (3 minutes less the interval).
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Print each accepted note.
        #[arg(long)]
        show_notes: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(instance) = &cli.instance {
        // The flag is one more layer over the file and the environment, like WTF_CLUSTER__INSTANCE,
        // and the configuration is read (at start and on every reload) through the environment.
        // SAFETY: nothing else runs yet: no runtime, no thread has been started.
        unsafe { std::env::set_var("WTF_CLUSTER__INSTANCE", instance) };
    }
    match cli.command {
        Some(Command::CheckConfig) => check_config(cli.config),
        Some(Command::Healthcheck { url }) => healthcheck(cli.config, url),
        Some(Command::Load { sensors, rate, duration, spikes_per_hour, redis, all_rules, webhook }) => {
            let plan = wtf_monitor::load::LoadPlan {
                sensors,
                rate: None,
                duration,
                spikes_per_hour,
                redis_url: redis,
                all_rules,
                webhook,
            };
            load(&rate, plan)
        }
        Some(Command::LlmBench { url, model, windows, seed, sensors, window, timeout, show_notes }) => {
            let plan =
                wtf_monitor::llm_bench::BenchPlan { url, model, windows, seed, sensors, window, timeout, show_notes };
            llm_bench(&plan)
        }
        None => run(cli.config),
    }
}

fn llm_bench(plan: &wtf_monitor::llm_bench::BenchPlan) -> ExitCode {
    let runtime = match runtime(tokio::runtime::Builder::new_current_thread(), "llm-bench") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(wtf_monitor::llm_bench::run(plan)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("llm-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    for stray in wtf_monitor::config::stray_variables().into_iter().filter(|stray| !stray.refused) {
        complain(&format!("warning: {}: {}", stray.name, stray.message));
    }
    let loaded = Config::locate(path.as_deref()).and_then(|source| load_valid(&source).map(|config| (source, config)));
    match loaded {
        Ok((source, config)) => print(&format!("# configuration is valid (from {source})\n{}", config.to_toml())),
        Err(error) => report(&error),
    }
}

/// Writes `text` to stdout. A reader that stopped early (`check-config | head`) is not an error:
/// what it wanted it got, so a broken pipe ends the command quietly and successfully.
fn print(text: &str) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cannot write to stdout: {err}");
            ExitCode::FAILURE
        }
    }
}

fn report(error: &ConfigError) -> ExitCode {
    complain(&error.to_string());
    ExitCode::from(2)
}

/// Writes a line to stderr; one that cannot be written (a closed pipe) is dropped, not a panic.
fn complain(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn healthcheck(path: Option<PathBuf>, url: Option<String>) -> ExitCode {
    let url = match url {
        Some(url) => url,
        // The same loading as the daemon's, so the probe follows a port moved by --config or by
        // WTF_API__LISTEN. A config the daemon would refuse gives no address to ask: unhealthy.
        None => match Config::locate(path.as_deref()).and_then(|source| load_valid(&source)) {
            Ok(config) => health_url(config.api.listen),
            Err(error) => {
                eprintln!("healthcheck: no address to ask: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let url = url.as_str();
    let runtime = match runtime(tokio::runtime::Builder::new_current_thread(), "healthcheck") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let answer = runtime.block_on(async {
        // No proxy: the probe is for this host's daemon, and a proxy inherited from the
        // environment (common on plant networks) would fail it while the daemon is healthy.
        let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).no_proxy().build()?;
        client.get(url).send().await
    });
    match answer {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("healthcheck: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("healthcheck: {url}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Where a daemon listening on `listen` answers `/health`: one listening on all interfaces
/// (0.0.0.0 or ::) answers on the loopback address of the same family.
fn health_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/health", SocketAddr::new(ip, listen.port()))
}

fn load(rate: &str, mut plan: wtf_monitor::load::LoadPlan) -> ExitCode {
    let rate = match rate {
        "max" => None,
        number => match number.parse::<f64>() {
            Ok(rate)
                if rate.is_finite() && Duration::try_from_secs_f64(1.0 / rate).is_ok_and(|every| !every.is_zero()) =>
            {
                Some(rate)
            }
            _ => {
                eprintln!("load: --rate must be \"max\" or a positive number of readings per second, got {number:?}");
                return ExitCode::from(2);
            }
        },
    };
    plan.rate = rate;
    let runtime = match runtime(tokio::runtime::Builder::new_multi_thread(), "load") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let _logging =
            wtf_monitor::logging::init(&wtf_monitor::config::LogConfig { level: "warn".into(), ..Default::default() });
        match wtf_monitor::load::run(plan).await {
            Ok(report) => print(&report.to_string()),
            Err(err) => {
                eprintln!("load: {err:#}");
                ExitCode::FAILURE
            }
        }
    })
}

fn run(path: Option<PathBuf>) -> ExitCode {
    let source = match Config::locate(path.as_deref()) {
        Ok(source) => source,
        Err(error) => return report(&error),
    };
    let config = match load_valid(&source) {
        Ok(config) => config,
        Err(error) => return report(&error),
    };
    let runtime = match runtime(tokio::runtime::Builder::new_multi_thread(), "cannot start the runtime") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let logging = wtf_monitor::logging::init(&config.log);
        // What is logged here, before and after `daemon::run`, names the supervisor too.
        let supervisor = wtf_monitor::logging::component_span(Component::Supervisor);
        run_daemon(config, source, logging).instrument(supervisor).await
    })
}

async fn run_daemon(config: ValidConfig, source: ConfigSource, logging: LogControl) -> ExitCode {
    let intents = match wtf_monitor::signals::listen() {
        Ok(intents) => intents,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for signals");
            return ExitCode::FAILURE;
        }
    };
    let daemon = Daemon { config, source, intents, logging: Some(logging) };
    match daemon::run(daemon).await {
        Ok(Ending::Stopped) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(Ending::TimedOut) => {
            tracing::error!("graceful stop timed out; exiting anyway");
            ExitCode::from(4)
        }
        Ok(Ending::Interrupted) => {
            tracing::warn!("second stop request: exiting at once");
            ExitCode::from(130)
        }
        Ok(Ending::LeftBehind(count)) => {
            tracing::warn!(left_behind = count, "stopped, with anomalies or records never written to redis");
            ExitCode::from(5)
        }
        Ok(Ending::GaveUp(reason)) => {
            tracing::error!(%reason, "exiting: an actor kept failing");
            ExitCode::from(3)
        }
        Err(err) => {
            tracing::error!(error = %err, "could not start");
            ExitCode::FAILURE
        }
    }
}

/// Builds a runtime, or says why it cannot and gives the exit code.
fn runtime(mut builder: tokio::runtime::Builder, what: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|err| {
        eprintln!("{what}: {err}");
        ExitCode::FAILURE
    })
}
