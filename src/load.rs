//! The load harness behind `wtf-monitor load`: the real actor tree with N simulated sensors at a
//! chosen rate (or flat out) for a chosen time, reporting throughput, detection latency, CPU and
//! memory. It reports; it asserts nothing.
//!
//! Detection latency is what an operator would see: from a reading's timestamp to the moment its
//! anomaly can be read from the store (the API serves straight from it).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hdrhistogram::Histogram;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeVal;
use ractor::Actor;
use tokio::time::Instant;

use crate::actors::simulator::Pace;
use crate::actors::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg, Verdict};
use crate::actors::traced::Traced;
use crate::clock::Clock;
use crate::config::{Config, ValidConfig};
use crate::domain::AnomalyKind;
use crate::health::Component;
use crate::ingress::{Ingress, Source};
use crate::journal::Event;
use crate::store::Store;

/// Readings per `Tick` when a simulator runs flat out.
const FLAT_OUT_BATCH: usize = 512;

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    pub sensors: usize,
    /// Readings per second per sensor; `None` runs flat out.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Injected spikes per sensor per hour of simulated time.
    pub spikes_per_hour: f64,
    /// Mirror to this Redis; empty for none.
    pub redis_url: String,
    /// Configure every rule (low limits, rate, stuck, deadband, off-delay) on every parameter,
    /// not just the defaults' spike, drift and dropout: what the full rule set costs per reading.
    pub all_rules: bool,
    /// Send every alarm transition to this webhook; empty for none.
    pub webhook: String,
}

/// What was measured.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub sensors: usize,
    pub startup_seconds: f64,
    pub seconds: f64,
    pub readings: u64,
    pub readings_per_second: f64,
    pub anomalies: u64,
    pub anomalies_per_second: f64,
    pub mirrored: u64,
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_max_us: u64,
    pub cpu_seconds: f64,
    pub cpu_share_of_one_core: f64,
    pub peak_rss_mb: f64,
    /// With a webhook: notifications it took, and the most that waited at once.
    pub notified: u64,
    pub notify_backlog_peak: u64,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "sensors            {} (actors started in {:.2} s)", self.sensors, self.startup_seconds)?;
        writeln!(f, "duration           {:.1} s (including the final drain)", self.seconds)?;
        writeln!(f, "readings           {} ({:.0}/s)", self.readings, self.readings_per_second)?;
        writeln!(f, "anomalies raised   {} ({:.1}/s)", self.anomalies, self.anomalies_per_second)?;
        writeln!(f, "anomalies mirrored {}", self.mirrored)?;
        writeln!(
            f,
            "detection latency  p50 {} µs, p99 {} µs, max {} µs (reading timestamp → readable in the store)",
            self.latency_p50_us, self.latency_p99_us, self.latency_max_us
        )?;
        writeln!(
            f,
            "cpu                {:.2} s ({:.1}% of one core)",
            self.cpu_seconds,
            self.cpu_share_of_one_core * 100.0
        )?;
        if self.notified > 0 || self.notify_backlog_peak > 0 {
            writeln!(
                f,
                "notifications      {} delivered ({:.0}/s), at most {} waiting",
                self.notified,
                self.notified as f64 / self.seconds,
                self.notify_backlog_peak
            )?;
        }
        write!(f, "memory             {:.1} MB resident at the peak", self.peak_rss_mb)
    }
}

impl LoadPlan {
    fn config(&self) -> anyhow::Result<ValidConfig> {
        let mut config = Config::default();
        config.api.listen = "127.0.0.1:0".parse()?;
        config.sensors.ids = (1..=self.sensors).map(|n| format!("load-{n:05}")).collect();
        // Flat out, each reading stands for a millisecond of plant time, which scales the rates.
        config.sensors.interval = match self.rate {
            Some(rate) if rate > 0.0 => Duration::from_secs_f64(1.0 / rate),
            _ => Duration::from_millis(1),
        };
        config.detection.dropout_timeout = config.detection.dropout_timeout.max(config.sensors.interval * 3);
        config.simulation.seed = Some(1);
        config.simulation.spikes_per_hour = self.spikes_per_hour;
        config.simulation.drifts_per_hour = 0.0;
        config.simulation.dropouts_per_hour = 0.0;
        config.llm.url = String::new();
        config.redis.url = self.redis_url.clone();
        config.store.max_anomalies = 1_000_000;
        if !self.webhook.is_empty() {
            config.notify.webhook.push(crate::config::WebhookConfig {
                name: Some("load".into()),
                url: self.webhook.clone(),
                token: None,
                token_file: None,
                events: vec![
                    crate::config::NotifyEvent::Raised,
                    crate::config::NotifyEvent::Cleared,
                    crate::config::NotifyEvent::Acknowledged,
                ],
            });
        }
        if self.all_rules {
            // Limits a normal reading never reaches, so the rules run on every reading but raise
            // only what the injected spikes raise.
            let limits = &mut config.detection.limits;
            for (parameter, low) in [("temperature", 5.0), ("pressure", 0.5), ("flow", 10.0)] {
                limits.low_spike_thresholds.insert(parameter.into(), low);
                limits.low_drift_thresholds.insert(parameter.into(), low * 1.5);
                limits.rate_limits.insert(parameter.into(), 1_000.0);
                limits.stuck_tolerance.insert(parameter.into(), 1e-9);
                limits.stuck_after.insert(parameter.into(), Duration::from_secs(3600));
                limits.deadband.insert(parameter.into(), 0.1);
                limits.off_delay.insert(parameter.into(), Duration::from_secs(1));
            }
        }
        config.validate().map_err(|problems| {
            anyhow::anyhow!(
                "invalid load plan: {}",
                problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )
        })
    }
}

/// Runs the plan, printing progress every second to stderr.
pub async fn run(plan: LoadPlan) -> anyhow::Result<LoadReport> {
    let config = plan.config()?;
    let clock = Clock::start();
    let store = Arc::new(Store::new(config.clone(), clock));
    let ingress = Arc::new(Ingress::new(&config, clock));
    let latencies = spawn_latency_probe(Arc::clone(&store), clock);
    let pace = match plan.rate {
        Some(_) => Pace::Scheduled,
        None => Pace::FlatOut { batch: FLAT_OUT_BATCH },
    };
    let args = SupervisorArgs {
        config,
        store: Arc::clone(&store),
        ingress: Arc::clone(&ingress),
        clock,
        verdict: Arc::new(Verdict::default()),
        stop_requested: Arc::new(AtomicBool::new(false)),
        seed: 1,
        pace,
    };
    let started = Instant::now();
    let (supervisor, done) = Actor::spawn(None, Traced::new(Supervisor, Component::Supervisor), args).await?;
    let startup = started.elapsed();
    eprintln!("load: {} sensors started in {startup:?}", plan.sensors);
    // Steady state only: spawning tens of thousands of actors is a cost of start-up, not of load.
    let before = ProcessUsage::now();
    let started = Instant::now();
    let produced_before = ingress.stats.accepted(Source::Simulator);

    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let mut last = produced_before;
    let mut backlog_peak = 0;
    while started.elapsed() < plan.duration {
        ticks.tick().await;
        backlog_peak = backlog_peak.max(store.notify.total_backlog());
        let readings = ingress.stats.accepted(Source::Simulator);
        let (held, _) = store.anomalies.holdings();
        eprintln!(
            "load: {:>5.1} s  {:>10} readings/s  {:>8} anomalies  {:>7.1} MB at the peak",
            started.elapsed().as_secs_f64(),
            readings - last,
            held,
            ProcessUsage::now().peak_rss_mb
        );
        last = readings;
    }
    // Stopping drains every detector's mailbox, so the count below is of readings processed.
    let _ = ractor::call!(supervisor, |reply| SupervisorMsg::Shutdown { reply });
    let _ = done.await;
    let seconds = started.elapsed().as_secs_f64();
    let latencies = latencies.stop().await;
    let readings = ingress.stats.accepted(Source::Simulator) - produced_before;
    let anomalies = store.anomalies.count_24h(clock.now());
    let after = ProcessUsage::now();
    let cpu_seconds = after.cpu_seconds - before.cpu_seconds;
    Ok(LoadReport {
        sensors: plan.sensors,
        startup_seconds: startup.as_secs_f64(),
        seconds,
        readings,
        readings_per_second: readings as f64 / seconds,
        anomalies,
        anomalies_per_second: anomalies as f64 / seconds,
        mirrored: store.health.redis().mirrored,
        latency_p50_us: latencies.value_at_quantile(0.5),
        latency_p99_us: latencies.value_at_quantile(0.99),
        latency_max_us: latencies.max(),
        cpu_seconds,
        cpu_share_of_one_core: cpu_seconds / seconds,
        peak_rss_mb: after.peak_rss_mb,
        notified: store.notify.receivers().values().map(|receiver| receiver.delivered).sum(),
        notify_backlog_peak: backlog_peak,
    })
}

/// Follows the store and notes, for each spike or drift, how long after its reading it became
/// readable.
struct LatencyProbe {
    task: tokio::task::JoinHandle<Histogram<u64>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl LatencyProbe {
    async fn stop(self) -> Histogram<u64> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_else(|_| latency_histogram())
    }
}

/// Microseconds from 1 to an hour, to three significant figures: under 200 KiB however long the
/// run.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

fn spawn_latency_probe(store: Arc<Store>, clock: Clock) -> LatencyProbe {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let mut changes = store.journal.subscribe();
    let task = tokio::spawn(async move {
        let mut cursor = 0;
        let mut latencies = latency_histogram();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                changed = changes.changed() => if changed.is_err() { break },
            }
            let now = clock.now();
            let followed = store.journal.after(cursor, usize::MAX);
            for entry in &followed.entries {
                cursor = entry.seq;
                if let Event::Anomaly(anomaly) = &entry.event
                    && anomaly.kind != AnomalyKind::Dropout
                {
                    let micros = (now - anomaly.timestamp).num_microseconds().unwrap_or(i64::MAX);
                    latencies.saturating_record(u64::try_from(micros).unwrap_or(0));
                }
            }
        }
        latencies
    });
    LatencyProbe { task, stop }
}

/// The CPU this process used so far and its peak resident memory, from `getrusage(2)`.
struct ProcessUsage {
    cpu_seconds: f64,
    peak_rss_mb: f64,
}

impl ProcessUsage {
    fn now() -> Self {
        match getrusage(UsageWho::RUSAGE_SELF) {
            Ok(usage) => {
                let seconds = |time: TimeVal| time.tv_sec() as f64 + time.tv_usec() as f64 / 1e6;
                ProcessUsage {
                    cpu_seconds: seconds(usage.user_time()) + seconds(usage.system_time()),
                    // Linux counts it in kB.
                    peak_rss_mb: usage.max_rss() as f64 / 1024.0,
                }
            }
            Err(_) => ProcessUsage { cpu_seconds: 0.0, peak_rss_mb: 0.0 },
        }
    }
}
