//! The deterministic note: written from the facts when the model is disabled, unavailable or its
//! answer is refused, and the note `/summary` serves before the first window closes. It must be
//! exactly as reliable as the facts, so it says only what they hold, in the words of [`super`]'s
//! helpers.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{Condition, Facts, NOTED, Severity, clock, kinds, ongoing_lines, peak_line, plural};
use crate::domain::AnomalyKind;

/// The deterministic summary written from the same facts when the model is unavailable or its
/// text is refused: counts, peaks, what is still going on, the severity and what to check.
pub fn template(facts: &Facts) -> String {
    let window = format!("between {} and {} UTC", clock(facts.window_start), clock(facts.window_end));
    let mut note = if facts.anomaly_count == 0 {
        format!("No anomalies {window}.")
    } else {
        let sensors =
            facts.by_sensor.iter().take(NOTED).map(|sensor| format!("{} ({})", sensor.sensor_id, sensor.total));
        let more = facts.by_sensor.len().saturating_sub(NOTED);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        let mut note = format!(
            "{} {window} ({}) on {}: {}{more}.",
            plural(facts.anomaly_count, "anomaly", "anomalies"),
            kinds(&facts.by_kind),
            plural(facts.by_sensor.len() as u64, "sensor", "sensors"),
            sensors.collect::<Vec<_>>().join(", ")
        );
        if let (Some(first), Some(last)) = (facts.first_anomaly, facts.last_anomaly) {
            let _ = write!(note, " First at {}, last at {}.", clock(first), clock(last));
        }
        note
    };
    if !facts.peaks.is_empty() {
        let peaks: Vec<String> = facts.peaks.iter().take(NOTED).map(|peak| peak_line(peak, &facts.units)).collect();
        let _ = write!(note, " Highest: {}.", peaks.join("; "));
    }
    let ongoing = ongoing_lines(&facts.ongoing, &facts.units);
    if !ongoing.is_empty() {
        let more = ongoing.len().saturating_sub(NOTED);
        let more = if more > 0 { format!("; and {more} more") } else { String::new() };
        let _ = write!(note, " Still in progress: {}{more}.", ongoing[..ongoing.len().min(NOTED)].join("; "));
    }
    let _ = write!(note, " Severity: {}. {}", facts.severity, advice(facts));
    note
}

/// The summary `/summary` serves before the first window closes: the daemon's state so far
/// (when it started, how many sensors report) and, if anomalies came already, the template's note
/// on them. `facts` covers start to now.
pub fn so_far(started_at: DateTime<Utc>, reporting: usize, configured: usize, facts: &Facts) -> String {
    let start = format!("Started at {} UTC; {reporting} of {configured} sensors reporting", clock(started_at));
    if facts.anomaly_count == 0 && facts.ongoing.is_empty() {
        format!("{start}; no anomaly yet. The first summary comes within 30 seconds of start.")
    } else {
        format!("{start}. So far: {} The first summary comes within 30 seconds of start.", template(facts))
    }
}

/// What to check first, most urgent first.
fn advice(facts: &Facts) -> String {
    let mut checks = Vec::new();
    let silent: BTreeSet<&str> = facts
        .ongoing
        .iter()
        .filter(|condition| condition.is_silent())
        .map(|condition| condition.sensor_id().as_str())
        .collect();
    if !silent.is_empty() {
        let more = silent.len().saturating_sub(NOTED);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        let named: Vec<&str> = silent.into_iter().take(NOTED).collect();
        checks.push(format!("power and link of {}{more} (no readings)", named.join(", ")));
    }
    if let Some(peak) = facts.peaks.iter().find(|peak| matches!(peak.kind, AnomalyKind::Spike | AnomalyKind::LowSpike))
    {
        checks.push(format!("{} {} on site", peak.sensor_id, peak.parameter));
    }
    if let Some(Condition::Drifting { sensor_id, parameter, .. }) =
        facts.ongoing.iter().find(|condition| !condition.is_silent())
    {
        checks.push(format!("{sensor_id} {parameter}, still above its drift threshold"));
    }
    match (checks.is_empty(), facts.severity) {
        (false, _) => format!("Check {}.", checks.join("; then ")),
        (true, Severity::Normal) => "No action needed.".to_owned(),
        (true, Severity::Caution) => {
            "The conditions have ended; review the affected sensors when convenient.".to_owned()
        }
        (true, _) => "Review the affected sensors.".to_owned(),
    }
}
