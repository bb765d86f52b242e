//! The harness behind `wtf-monitor llm-bench`: windows of the seeded simulator, each worded by a
//! real model through the daemon's own path ([`crate::wording`]), and what came of it: calls,
//! notes accepted, refused (by reason), timed out, latency and tokens. It reports; it asserts
//! nothing, and it is not run by `cargo test` (a real model is slow and not always there).
//!
//! The windows are made as the daemon makes them: a [`SensorSimulator`] per sensor with the
//! default rates, its readings through the pure detectors ([`ParameterDetector`]), each window's
//! anomalies and the conditions still in progress at its end folded into [`Facts`]. The same
//! seed gives the same windows, so two runs (say, before and after a change) word the same facts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::config::Config;
use crate::detection::{Ongoing, ParameterDetector, Rules};
use crate::domain::{AnomalyKind, Parameter, SensorId, Transition};
use crate::llm::{LlmClient, LlmError};
use crate::simulation::{SensorSimulator, SimulationSettings, sensor_seed};
use crate::summary::{self, Condition, Facts, FactsBuilder};
use crate::wording::{self, Attempt, Failure};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    pub url: String,
    pub model: String,
    pub windows: usize,
    pub seed: u64,
    pub sensors: usize,
    /// Length of one window: the summarizer's interval.
    pub window: Duration,
    /// Per call; the daemon gives a call at most 3 minutes less the interval.
    pub timeout: Duration,
    /// Print each accepted note.
    pub show_notes: bool,
}

/// What was measured over the windows.
#[derive(Clone, Debug, Default)]
pub struct BenchReport {
    pub calls: u64,
    pub accepted: u64,
    pub refused: BTreeMap<String, u64>,
    pub timed_out: u64,
    /// Other failed calls (unreachable, server error, malformed body), by kind.
    pub failed: BTreeMap<String, u64>,
    pub latencies: Vec<Duration>,
    pub prompt_tokens: Vec<u64>,
    pub answer_tokens: Vec<u64>,
    pub prompt_estimates: Vec<u32>,
    pub anomalies: Vec<u64>,
    /// Prompt size by window size: (anomalies, sensors with anomalies, estimate, Ollama's count).
    pub prompt_by_size: Vec<(u64, usize, u32, Option<u64>)>,
}

fn mean<T: Copy + Into<f64>>(values: &[T]) -> f64 {
    if values.is_empty() { 0.0 } else { values.iter().map(|v| (*v).into()).sum::<f64>() / values.len() as f64 }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let share = |count: u64| if self.calls == 0 { 0.0 } else { 100.0 * count as f64 / self.calls as f64 };
        let refused: u64 = self.refused.values().sum();
        let failed: u64 = self.failed.values().sum();
        let seconds: Vec<f64> = self.latencies.iter().map(Duration::as_secs_f64).collect();
        let mut sorted = seconds.clone();
        sorted.sort_by(f64::total_cmp);
        let max = sorted.last().copied().unwrap_or(0.0);
        let p50 = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
        writeln!(
            f,
            "windows/calls      {} (anomalies per window: mean {:.1}, max {})",
            self.calls,
            mean(&self.anomalies.iter().map(|a| *a as f64).collect::<Vec<_>>()),
            self.anomalies.iter().max().unwrap_or(&0)
        )?;
        writeln!(f, "accepted           {} ({:.0}%)", self.accepted, share(self.accepted))?;
        writeln!(f, "refused            {} ({:.0}%) {:?}", refused, share(refused), self.refused)?;
        writeln!(f, "timed out          {} ({:.0}%)", self.timed_out, share(self.timed_out))?;
        writeln!(f, "other failures     {failed} {:?}", self.failed)?;
        writeln!(f, "latency            mean {:.1} s, p50 {p50:.1} s, max {max:.1} s", mean(&seconds))?;
        writeln!(
            f,
            "tokens per call    in {:.0} (estimate {:.0}), out {:.0}",
            mean(&self.prompt_tokens.iter().map(|t| *t as f64).collect::<Vec<_>>()),
            mean(&self.prompt_estimates),
            mean(&self.answer_tokens.iter().map(|t| *t as f64).collect::<Vec<_>>())
        )?;
        write!(f, "prompt by window   ")?;
        for (anomalies, sensors, estimate, counted) in &self.prompt_by_size {
            let counted = counted.map_or_else(|| "-".to_owned(), |tokens| tokens.to_string());
            write!(f, "[{anomalies} anomalies on {sensors} sensors: estimate {estimate}, model {counted}] ")?;
        }
        Ok(())
    }
}

impl BenchReport {
    fn record(&mut self, attempt: &Attempt, anomalies: u64) {
        self.calls += 1;
        self.anomalies.push(anomalies);
        self.latencies.push(attempt.elapsed);
        self.prompt_estimates.push(attempt.prompt_estimate);
        self.prompt_tokens.extend(attempt.prompt_tokens);
        self.answer_tokens.extend(attempt.answer_tokens);
        match &attempt.outcome {
            Ok(_) => self.accepted += 1,
            Err(Failure::Refused(why)) => *self.refused.entry(why.kind().to_owned()).or_default() += 1,
            Err(Failure::Call(LlmError::TimedOut(_))) => self.timed_out += 1,
            Err(Failure::Call(err)) => {
                let kind = err.to_string().split(':').next().unwrap_or_default().to_owned();
                *self.failed.entry(kind).or_default() += 1;
            }
        }
    }
}

/// The first window starts here: a fixed date, so the same seed words the same text.
fn origin() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The default configuration with `sensors` sensors (`wtf-pipe-1`, …) read once a second.
fn plant(sensors: usize) -> Config {
    let mut config = Config::default();
    config.sensors.ids = (1..=sensors).map(|n| format!("wtf-pipe-{n}")).collect();
    config.sensors.interval = Duration::from_secs(1);
    config
}

/// `count` consecutive windows of `length` from `sensors` seeded simulators (`wtf-pipe-1`, …)
/// with the default rates and rules, readings once a second.
fn seeded_windows(seed: u64, sensors: usize, count: usize, length: Duration) -> Vec<Facts> {
    let config = plant(sensors);
    let units = summary::units_of(&config);
    let start = origin();
    let parameters: Vec<Parameter> = config.parameter_list();
    let mut simulators: Vec<SensorSimulator> = config
        .sensors
        .ids
        .iter()
        .map(|id| {
            let settings = SimulationSettings::from_config(&config, id);
            SensorSimulator::new(SensorId::new(id), sensor_seed(seed, id), settings)
        })
        .collect();
    // One detector per sensor × configured parameter, as the daemon runs them.
    let mut detectors: Vec<Vec<(ParameterDetector, Rules)>> = config
        .sensors
        .ids
        .iter()
        .map(|id| {
            let detector = |p: &Parameter| ParameterDetector::new(SensorId::new(id), p.clone());
            parameters.iter().map(|p| (detector(p), Rules::for_sensor(&config, id, p.as_str()))).collect()
        })
        .collect();
    let steps = length.as_secs().max(1);
    let mut clock = start;
    let mut windows = Vec::with_capacity(count);
    for _ in 0..count {
        let mut builder = FactsBuilder::with_units(clock, units.clone());
        for _ in 0..steps {
            clock += TimeDelta::seconds(1);
            for (simulator, detectors) in simulators.iter_mut().zip(&mut detectors) {
                let reading = simulator.step(clock);
                for (detector, rules) in detectors.iter_mut() {
                    let value = reading.as_ref().and_then(|reading| reading.value(detector.parameter().as_str()));
                    if let Some(value) = value
                        && let Ok(transitions) = detector.observe(rules, clock, value, clock)
                    {
                        for transition in transitions {
                            if let Transition::Raised(anomaly) = transition {
                                builder.add(&anomaly);
                            }
                        }
                    }
                    if let Some(anomaly) = detector.check_silence(rules, clock) {
                        builder.add(&anomaly);
                    }
                }
            }
        }
        let ongoing: Vec<Condition> =
            detectors.iter().flatten().filter_map(|(detector, _)| condition(detector)).collect();
        windows.push(builder.finish(clock, &ongoing));
    }
    windows
}

/// The drift or silence a detector is in, as the summarizer sees it.
fn condition(detector: &ParameterDetector) -> Option<Condition> {
    let (sensor_id, parameter) = (detector.sensor_id().clone(), detector.parameter().clone());
    detector.ongoing().map(|ongoing| match ongoing {
        Ongoing::Drifting { since, value } => Condition::Drifting { sensor_id, parameter, since, value },
        Ongoing::Silent { since } => Condition::Silent { sensor_id, parameter, since },
    })
}

/// A window of `count` anomalies spread over many sensors (as a flood would bring), with silences
/// and drifts in progress, for the prompt's size: it must stay bounded whatever the count.
fn flood_window(count: usize) -> Facts {
    let sensors = (count / 10).clamp(3, 1_000);
    let config = plant(sensors);
    let start = origin();
    let mut builder = FactsBuilder::with_units(start, summary::units_of(&config));
    let parameters: Vec<&Parameter> = config.parameters.keys().collect();
    for i in 0..count {
        let sensor = &config.sensors.ids[i % sensors];
        let parameter = parameters[(i / 7) % parameters.len()];
        let rules = Rules::for_sensor(&config, sensor, parameter.as_str());
        let at = start + TimeDelta::seconds((i % 60) as i64);
        let value = rules.limit(AnomalyKind::Spike).unwrap_or(0.0) + (i % 97) as f64 / 10.0 + 0.1;
        let mut detector = ParameterDetector::new(SensorId::new(sensor), parameter.clone());
        // A reading inside the limits first, so the spike that follows starts an episode.
        let _ = detector.observe(&rules, at - TimeDelta::seconds(1), value - 1_000.0, at - TimeDelta::seconds(1));
        if let Ok(transitions) = detector.observe(&rules, at, value, at) {
            for transition in transitions {
                if let Transition::Raised(anomaly) = transition {
                    builder.add(&anomaly);
                }
            }
        }
    }
    // Half the first 40 sensors silent, the other half drifting: the longest facts text.
    let ongoing: Vec<Condition> = config
        .sensors
        .ids
        .iter()
        .take(40)
        .enumerate()
        .map(|(i, sensor)| {
            let sensor_id = SensorId::new(sensor);
            let since = start + TimeDelta::seconds(20);
            if i % 2 == 0 {
                Condition::Silent { sensor_id, parameter: Parameter::new("flow"), since }
            } else {
                Condition::Drifting { sensor_id, parameter: Parameter::new("temperature"), since, value: 39.5 }
            }
        })
        .collect();
    builder.finish(start + TimeDelta::seconds(60), &ongoing)
}

/// Runs the plan, printing one line per window to stderr.
pub async fn run(plan: &BenchPlan) -> Result<BenchReport, LlmError> {
    let client = LlmClient::new(&plan.url, &plan.model)?;
    let config = Config::default();
    let settings = wording::Settings {
        temperature: config.llm.temperature,
        max_tokens: config.llm.max_tokens,
        max_context: config.llm.max_context,
        timeout: plan.timeout,
    };
    let known: Vec<SensorId> = (1..=plan.sensors).map(|n| SensorId::new(&format!("wtf-pipe-{n}"))).collect();
    let mut report = BenchReport::default();
    for (index, facts) in seeded_windows(plan.seed, plan.sensors, plan.windows, plan.window).iter().enumerate() {
        let attempt = wording::attempt(&client, facts, settings, &known).await;
        let outcome = match &attempt.outcome {
            Ok(_) => "accepted".to_owned(),
            Err(failure) => failure.to_string(),
        };
        eprintln!(
            "window {:>3}: {:>2} anomalies, {:<8} {:>5.1} s, tokens {}/{}: {}",
            index + 1,
            facts.anomaly_count,
            facts.severity.as_str(),
            attempt.elapsed.as_secs_f64(),
            attempt.prompt_tokens.unwrap_or(0),
            attempt.answer_tokens.unwrap_or(0),
            outcome.chars().take(160).collect::<String>()
        );
        if plan.show_notes
            && let Ok(note) = &attempt.outcome
        {
            eprintln!("    {note}");
        }
        report.record(&attempt, facts.anomaly_count);
    }
    // The prompt's size by window size, counted by the model's own tokenizer: one call each,
    // not counted above.
    for count in [0, 10, 1_000, 100_000] {
        let facts = flood_window(count);
        let attempt = wording::attempt(&client, &facts, settings, &[]).await;
        report.prompt_by_size.push((
            facts.anomaly_count,
            facts.by_sensor.len(),
            attempt.prompt_estimate,
            attempt.prompt_tokens,
        ));
    }
    Ok(report)
}
