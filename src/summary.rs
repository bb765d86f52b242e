//! What a summary may say, and the checks on what the model said.
//!
//! The daemon computes the facts of a window — counts by type, parameter and sensor, first and
//! last times, peaks, conditions still in progress, a severity — and the model only words them.
//! A 1B model is not asked to reason over raw lists, nor to write prose: it fills in a [`Form`]
//! of choices built from the facts (see [`form`]), and the daemon writes the note from them. The
//! prompt is a few hundred tokens whatever the number of anomalies. When the model is down, slow
//! or its answer is refused, [`template`] writes the note from the same facts. Everything here is
//! pure: no clock, no I/O, no logging.
//!
//! Flow: [`FactsBuilder::add`] each anomaly as it arrives (memory grows with the distinct
//! sensor × parameter × type triples, not with the anomalies) → [`FactsBuilder::finish`] →
//! [`Form::new`] → [`form::prompt`], [`form::schema`] and [`context_size`] → the model →
//! [`form::note_from_answer`] (which ends with [`check_grounded`]) → or [`template`].
//!
//! # Severity
//!
//! One word for the window, from its anomalies and the conditions still in progress when it
//! closes. The first row that holds wins:
//!
//! | severity   | when |
//! |------------|------|
//! | `critical` | a sensor is silent now (a dropout still in progress), or one sensor spiked on two or more parameters, or the window holds `CRITICAL_SPIKES` spikes or more |
//! | `alert`    | any spike, or a drift still in progress |
//! | `caution`  | anomalies, but only drifts and dropouts that have ended |
//! | `normal`   | no anomaly and nothing in progress |
//!
//! It is monotonic: adding an anomaly or an ongoing condition never lowers it.
//!
//! # Grounding
//!
//! A note is published only if [`check_grounded`] finds every sensor, parameter, number and time
//! it names in [`facts_text`], the facts block the prompt carried, and no markup; the exact rule
//! is on [`check_grounded`]. The notes [`form::render`] and [`template`] write pass it by
//! construction; the check stays as the last guard.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Anomaly, AnomalyKind, Parameter, SensorId, rfc3339, round_for_display};

pub mod form;
mod grounding;
mod template;
pub use form::{Form, Refusal};
pub use grounding::{MAX_SUMMARY_CHARS, Ungrounded, check_grounded, clean};
pub use template::{so_far, template};

/// This many spikes in one window make it critical, whatever else happened.
const CRITICAL_SPIKES: u64 = 10;
/// Lines per section of the facts text; the rest is counted ("and 12 more sensors …").
const LISTED: usize = 8;
/// Lines per section of the template: a note is read at a glance.
const NOTED: usize = 3;
/// Tokens added to prompt + answer: the chat template's headers, and what [`estimate_tokens`]
/// may still undercount.
const CONTEXT_MARGIN: u32 = 256;
const CONTEXT_STEP: u32 = 256;
const MIN_CONTEXT: u32 = 512;

/// A condition still in progress when the window closes, from the detectors' state.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "condition", rename_all = "lowercase")]
pub enum Condition {
    Drifting {
        sensor_id: SensorId,
        parameter: Parameter,
        #[serde(serialize_with = "rfc3339::serialize")]
        since: DateTime<Utc>,
        value: f64,
    },
    Silent {
        sensor_id: SensorId,
        parameter: Parameter,
        #[serde(serialize_with = "rfc3339::serialize")]
        since: DateTime<Utc>,
    },
}

impl Condition {
    pub fn sensor_id(&self) -> &SensorId {
        match self {
            Condition::Drifting { sensor_id, .. } | Condition::Silent { sensor_id, .. } => sensor_id,
        }
    }

    pub fn parameter(&self) -> &Parameter {
        match self {
            Condition::Drifting { parameter, .. } | Condition::Silent { parameter, .. } => parameter,
        }
    }

    pub fn since(&self) -> DateTime<Utc> {
        match self {
            Condition::Drifting { since, .. } | Condition::Silent { since, .. } => *since,
        }
    }

    fn is_silent(&self) -> bool {
        matches!(self, Condition::Silent { .. })
    }
}

/// How serious a window is; see the module doc for the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Normal,
    Caution,
    Alert,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "normal",
            Severity::Caution => "caution",
            Severity::Alert => "alert",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Anomalies per type; a type with none is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct KindCounts(BTreeMap<AnomalyKind, u64>);

impl KindCounts {
    pub fn get(&self, kind: AnomalyKind) -> u64 {
        self.0.get(&kind).copied().unwrap_or(0)
    }

    fn add(&mut self, kind: AnomalyKind, count: u64) {
        let slot = self.0.entry(kind).or_default();
        *slot = slot.saturating_add(count);
    }

    pub fn total(&self) -> u64 {
        self.0.values().fold(0, |total, count| total.saturating_add(*count))
    }

    /// The types with anomalies and their counts, in type order.
    pub fn iter(&self) -> impl Iterator<Item = (AnomalyKind, u64)> + '_ {
        self.0.iter().map(|(kind, count)| (*kind, *count))
    }
}

/// The unit of each configured parameter, as summaries write values: `bar`, `°C`, `NTU`.
pub type Units = BTreeMap<Parameter, String>;

/// The units of a configuration's parameters.
pub fn units_of(config: &crate::config::Config) -> Units {
    config.parameters.iter().map(|(name, spec)| (name.clone(), spec.unit.clone())).collect()
}

/// One sensor's anomalies in the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SensorCount {
    pub sensor_id: SensorId,
    pub total: u64,
    pub by_kind: KindCounts,
}

/// The highest value one sensor × parameter reached in a spike or a drift.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Peak {
    pub sensor_id: SensorId,
    pub parameter: Parameter,
    /// The type of the anomaly that carried the value.
    pub kind: AnomalyKind,
    pub value: f64,
    pub threshold: f64,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub at: DateTime<Utc>,
    /// For a drift: how long the value had been above the threshold.
    pub duration_seconds: Option<f64>,
}

impl Peak {
    /// How far above its threshold, relative to it: comparable across units.
    fn excess(&self) -> f64 {
        (self.value - self.threshold) / self.threshold.abs().max(f64::EPSILON)
    }
}

/// Everything the summary may say, computed by the daemon.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Facts {
    #[serde(serialize_with = "rfc3339::serialize")]
    pub window_start: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub window_end: DateTime<Utc>,
    pub anomaly_count: u64,
    pub by_kind: KindCounts,
    /// Anomalies per parameter; a parameter with none is absent.
    pub by_parameter: BTreeMap<Parameter, u64>,
    /// Most anomalies first, then by id.
    pub by_sensor: Vec<SensorCount>,
    #[serde(serialize_with = "optional_rfc3339")]
    pub first_anomaly: Option<DateTime<Utc>>,
    #[serde(serialize_with = "optional_rfc3339")]
    pub last_anomaly: Option<DateTime<Utc>>,
    /// One per sensor × parameter with a spike or drift: spikes first, then furthest above threshold.
    pub peaks: Vec<Peak>,
    /// Silences first, then drifts; oldest first within each.
    pub ongoing: Vec<Condition>,
    pub severity: Severity,
    /// The configured parameters and their units: every parameter the plant measures.
    pub units: Units,
}

fn optional_rfc3339<S: serde::Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339::serialize(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// Incremental: the summarizer adds anomalies as they arrive (possibly 100,000 in a window) in
/// O(1) memory per distinct (sensor, parameter, kind).
#[derive(Clone, Debug)]
pub struct FactsBuilder {
    window_start: DateTime<Utc>,
    units: Units,
    anomaly_count: u64,
    tallies: BTreeMap<(SensorId, Parameter, AnomalyKind), Tally>,
}

/// What is kept of one (sensor, parameter, kind)'s anomalies.
#[derive(Clone, Debug)]
struct Tally {
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    /// The anomaly with the highest value; dropouts carry a last value seen, not an excursion.
    highest: Option<Peak>,
}

impl FactsBuilder {
    /// A window starting at `window_start`, with the default parameters' units.
    pub fn new(window_start: DateTime<Utc>) -> Self {
        Self::with_units(window_start, units_of(&crate::config::Config::default()))
    }

    pub fn with_units(window_start: DateTime<Utc>, units: Units) -> Self {
        Self { window_start, units, anomaly_count: 0, tallies: BTreeMap::new() }
    }

    pub fn window_start(&self) -> DateTime<Utc> {
        self.window_start
    }

    pub fn add(&mut self, anomaly: &Anomaly) {
        self.anomaly_count = self.anomaly_count.saturating_add(1);
        let key = (anomaly.sensor_id.clone(), anomaly.parameter.clone(), anomaly.kind);
        let tally = self.tallies.entry(key).or_insert_with(|| Tally {
            count: 0,
            first: anomaly.timestamp,
            last: anomaly.timestamp,
            highest: None,
        });
        tally.count = tally.count.saturating_add(1);
        tally.first = tally.first.min(anomaly.timestamp);
        tally.last = tally.last.max(anomaly.timestamp);
        let excursion = anomaly.value.filter(|value| value.is_finite() && anomaly.kind != AnomalyKind::Dropout);
        if let Some(value) = excursion
            && tally.highest.as_ref().is_none_or(|highest| value > highest.value)
        {
            tally.highest = Some(Peak {
                sensor_id: anomaly.sensor_id.clone(),
                parameter: anomaly.parameter.clone(),
                kind: anomaly.kind,
                value,
                threshold: anomaly.threshold,
                at: anomaly.timestamp,
                duration_seconds: anomaly.duration_seconds,
            });
        }
    }

    pub fn anomaly_count(&self) -> u64 {
        self.anomaly_count
    }

    pub fn finish(&self, window_end: DateTime<Utc>, ongoing: &[Condition]) -> Facts {
        let mut by_kind = KindCounts::default();
        let mut by_parameter: BTreeMap<Parameter, u64> = BTreeMap::new();
        let mut sensors: BTreeMap<&SensorId, KindCounts> = BTreeMap::new();
        let mut peaks: BTreeMap<(&SensorId, &Parameter), &Peak> = BTreeMap::new();
        let mut spiked: BTreeMap<&SensorId, BTreeSet<&Parameter>> = BTreeMap::new();
        let (mut first, mut last) = (None::<DateTime<Utc>>, None::<DateTime<Utc>>);
        for ((sensor_id, parameter, kind), tally) in &self.tallies {
            by_kind.add(*kind, tally.count);
            let count = by_parameter.entry(parameter.clone()).or_default();
            *count = count.saturating_add(tally.count);
            sensors.entry(sensor_id).or_default().add(*kind, tally.count);
            first = Some(first.map_or(tally.first, |first| first.min(tally.first)));
            last = Some(last.map_or(tally.last, |last| last.max(tally.last)));
            if *kind == AnomalyKind::Spike {
                spiked.entry(sensor_id).or_default().insert(parameter);
            }
            if let Some(highest) = &tally.highest {
                // Ties go to the spike: the tallies of one sensor × parameter come spike first.
                let slot = peaks.entry((sensor_id, parameter)).or_insert(highest);
                if highest.value > slot.value {
                    *slot = highest;
                }
            }
        }

        let mut by_sensor: Vec<SensorCount> = sensors
            .into_iter()
            .map(|(sensor_id, by_kind)| SensorCount { sensor_id: sensor_id.clone(), total: by_kind.total(), by_kind })
            .collect();
        by_sensor.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.sensor_id.cmp(&b.sensor_id)));
        let mut peaks: Vec<Peak> = peaks.into_values().cloned().collect();
        peaks.sort_by(|a, b| {
            (a.kind != AnomalyKind::Spike)
                .cmp(&(b.kind != AnomalyKind::Spike))
                .then_with(|| b.excess().total_cmp(&a.excess()))
                .then_with(|| (&a.sensor_id, &a.parameter).cmp(&(&b.sensor_id, &b.parameter)))
        });
        let mut ongoing = ongoing.to_vec();
        ongoing.sort_by(|a, b| {
            (!a.is_silent(), a.since(), a.sensor_id(), a.parameter()).cmp(&(
                !b.is_silent(),
                b.since(),
                b.sensor_id(),
                b.parameter(),
            ))
        });

        let most_parameters_spiked = spiked.values().map(BTreeSet::len).max().unwrap_or(0);
        let severity = rate(&by_kind, most_parameters_spiked, &ongoing);
        Facts {
            window_start: self.window_start,
            window_end,
            anomaly_count: self.anomaly_count,
            by_kind,
            by_parameter,
            by_sensor,
            first_anomaly: first,
            last_anomaly: last,
            peaks,
            ongoing,
            severity,
            units: self.units.clone(),
        }
    }
}

/// The severity rule of the module doc.
fn rate(by_kind: &KindCounts, most_parameters_spiked: usize, ongoing: &[Condition]) -> Severity {
    let spikes = by_kind.get(AnomalyKind::Spike) + by_kind.get(AnomalyKind::LowSpike);
    if ongoing.iter().any(Condition::is_silent) || most_parameters_spiked >= 2 || spikes >= CRITICAL_SPIKES {
        Severity::Critical
    } else if spikes > 0 || !ongoing.is_empty() {
        Severity::Alert
    } else if by_kind.total() > 0 {
        Severity::Caution
    } else {
        Severity::Normal
    }
}

/// Convenience over [`FactsBuilder`] for a window whose anomalies are at hand.
pub fn facts(
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    anomalies: &[Anomaly],
    ongoing: &[Condition],
) -> Facts {
    let mut builder = FactsBuilder::new(window_start);
    anomalies.iter().for_each(|anomaly| builder.add(anomaly));
    builder.finish(window_end, ongoing)
}

fn clock(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S").to_string()
}

/// A value as operators read it: two decimals at most, with its unit.
fn reading(value: f64, parameter: &Parameter, units: &Units) -> String {
    match units.get(parameter).map(String::as_str) {
        None | Some("") => round_for_display(value).to_string(),
        Some(unit) => format!("{} {unit}", round_for_display(value)),
    }
}

fn noun<'a>(count: u64, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

fn plural(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", noun(count, one, many))
}

fn kinds(counts: &KindCounts) -> String {
    counts
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(kind, count)| plural(count, kind.phrase(), &format!("{}s", kind.phrase())))
        .collect::<Vec<_>>()
        .join(", ")
}

fn peak_line(peak: &Peak, units: &Units) -> String {
    let duration = match (peak.kind, peak.duration_seconds) {
        (AnomalyKind::Drift, Some(seconds)) => format!(" for {} s", round_for_display(seconds)),
        _ => String::new(),
    };
    format!(
        "{} {}: {} to {} (threshold {}){duration} at {}",
        peak.sensor_id,
        peak.parameter,
        peak.kind,
        reading(peak.value, &peak.parameter, units),
        reading(peak.threshold, &peak.parameter, units),
        clock(peak.at)
    )
}

/// The conditions in progress, a silent sensor's parameters on one line, most urgent first.
fn ongoing_lines(ongoing: &[Condition], units: &Units) -> Vec<String> {
    // In order of first appearance; the index keeps a thousand silent sensors linear.
    let mut silent: Vec<(&SensorId, DateTime<Utc>, Vec<&str>)> = Vec::new();
    let mut index: BTreeMap<&SensorId, usize> = BTreeMap::new();
    let mut lines = Vec::new();
    for condition in ongoing {
        match condition {
            Condition::Silent { sensor_id, parameter, since } => {
                let at = *index.entry(sensor_id).or_insert_with(|| {
                    silent.push((sensor_id, *since, Vec::new()));
                    silent.len() - 1
                });
                let (_, earliest, parameters) = &mut silent[at];
                *earliest = (*earliest).min(*since);
                parameters.push(parameter.as_str());
            }
            Condition::Drifting { sensor_id, parameter, since, value } => lines.push(format!(
                "{sensor_id} {parameter} above its drift threshold since {}, now {}",
                clock(*since),
                reading(*value, parameter, units)
            )),
        }
    }
    let silent = silent.into_iter().map(|(sensor_id, since, parameters)| {
        format!("{sensor_id} silent since {} ({})", clock(since), parameters.join(", "))
    });
    silent.chain(lines).collect()
}

/// The facts block the prompt carries, and the reference [`check_grounded`] compares against.
/// Bounded: each section lists at most a few lines and counts the rest.
pub fn facts_text(facts: &Facts) -> String {
    let mut text = String::new();
    let (start, end) = (facts.window_start, facts.window_end);
    let end_text =
        if start.date_naive() == end.date_naive() { clock(end) } else { end.format("%Y-%m-%d %H:%M:%S").to_string() };
    // Writing to a String cannot fail.
    let _ = writeln!(text, "Window: {} {} to {end_text} UTC", start.format("%Y-%m-%d"), clock(start));
    let _ = writeln!(text, "Severity: {}", facts.severity);
    if facts.anomaly_count == 0 {
        let _ = writeln!(text, "Anomalies: 0");
    } else {
        let _ = writeln!(text, "Anomalies: {} ({})", facts.anomaly_count, kinds(&facts.by_kind));
        let parameters: Vec<String> = facts
            .by_parameter
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(parameter, count)| format!("{parameter} {count}"))
            .collect();
        let _ = writeln!(text, "By parameter: {}", parameters.join(", "));
        if let (Some(first), Some(last)) = (facts.first_anomaly, facts.last_anomaly) {
            let _ = writeln!(text, "First anomaly at {}, last at {}", clock(first), clock(last));
        }
        let _ = writeln!(text, "Sensors with anomalies: {}", facts.by_sensor.len());
        for sensor in facts.by_sensor.iter().take(LISTED) {
            let _ = writeln!(
                text,
                "- {}: {} ({})",
                sensor.sensor_id,
                plural(sensor.total, "anomaly", "anomalies"),
                kinds(&sensor.by_kind)
            );
        }
        let rest = &facts.by_sensor[facts.by_sensor.len().min(LISTED)..];
        if !rest.is_empty() {
            let anomalies: u64 = rest.iter().map(|sensor| sensor.total).sum();
            let more = rest.len() as u64;
            let _ = writeln!(
                text,
                "- and {more} more {} with {}",
                noun(more, "sensor", "sensors"),
                plural(anomalies, "anomaly", "anomalies")
            );
        }
    }
    if !facts.peaks.is_empty() {
        let _ = writeln!(text, "Peaks (highest value per sensor and parameter):");
        for peak in facts.peaks.iter().take(LISTED) {
            let _ = writeln!(text, "- {}", peak_line(peak, &facts.units));
        }
        if facts.peaks.len() > LISTED {
            let more = (facts.peaks.len() - LISTED) as u64;
            let _ = writeln!(text, "- and {more} more {}", noun(more, "peak", "peaks"));
        }
    }
    let ongoing = ongoing_lines(&facts.ongoing, &facts.units);
    if !ongoing.is_empty() {
        let _ = writeln!(text, "Still in progress at {}:", clock(end));
        for line in ongoing.iter().take(LISTED) {
            let _ = writeln!(text, "- {line}");
        }
        if ongoing.len() > LISTED {
            let more = (ongoing.len() - LISTED) as u64;
            let _ = writeln!(text, "- and {more} more {}", noun(more, "condition", "conditions"));
        }
    }
    text
}

/// A request to the model: the system instructions and the user message ([`form::prompt`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub system: String,
    pub user: String,
}

/// Token estimate, on the high side of what small models' tokenizers give: a digit is a token of
/// its own (Gemma's and Llama's tokenizers split numbers), other characters about three to a
/// token. Plain characters / 4 undercounted a number-heavy prompt by 40 %, and Ollama truncates
/// a prompt that overflows `num_ctx`.
pub fn estimate_tokens(text: &str) -> u32 {
    let (digits, others) = text.chars().fold((0usize, 0usize), |(digits, others), c| {
        if c.is_ascii_digit() { (digits + 1, others) } else { (digits, others + 1) }
    });
    u32::try_from(digits + others.div_ceil(3)).unwrap_or(u32::MAX)
}

/// `num_ctx` for a request: prompt tokens + `max_tokens` + a margin, rounded up to a multiple
/// of 256, at least 512, never above `max_context`.
pub fn context_size(prompt: &Prompt, max_tokens: u32, max_context: u32) -> u32 {
    let prompt_tokens = estimate_tokens(&prompt.system).saturating_add(estimate_tokens(&prompt.user));
    let needed = prompt_tokens.saturating_add(max_tokens).saturating_add(CONTEXT_MARGIN);
    let rounded = needed.div_ceil(CONTEXT_STEP).saturating_mul(CONTEXT_STEP).max(MIN_CONTEXT);
    rounded.min(max_context)
}

#[cfg(test)]
mod tests;
