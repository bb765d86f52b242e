//! The structured answer: the model fills in a form whose every field is a choice from lists
//! built from the window's facts, and the daemon writes the note from those choices and the facts.
//!
//! A small model asked for free prose names parameters the plant does not have, quotes numbers it
//! made up, and calls a critical window normal; checking names and numbers afterwards cannot tell
//! what was claimed about them. So the model is not asked to write sentences. It is asked, through
//! Ollama's structured outputs (`format` with a JSON schema, enforced by a grammar), for three
//! choices:
//!
//! | field | what | choices |
//! |---|---|---|
//! | `most_urgent` | the condition to deal with first | the ids of the window's most urgent [`Finding`]s |
//! | `check_first` | what the operator checks first | the kinds of check ([`Action`]) those findings offer |
//! | `headline` | one line that sums the window up | headlines the daemon wrote from the facts |
//!
//! [`Form::new`] builds the lists, [`schema`] the JSON schema that carries them, [`prompt`] the
//! request; `read_answer` accepts an answer only if it is exactly such a form, with an action
//! that belongs to the chosen condition, and [`render`] writes the note. Every sentence of the note
//! is the daemon's: the sensors, parameters, numbers, times, the severity and the counts come from
//! the facts, so the model can choose the emphasis but cannot state anything the facts do not.
//!
//! # Urgency
//!
//! The model chooses among the findings of the most urgent rank only; ranking is the daemon's job,
//! not a 1B model's. Most urgent first:
//!
//! | rank | finding | id |
//! |---|---|---|
//! | 0 | a sensor silent now (a dropout still in progress) | `silent <sensor>` |
//! | 1 | a spike (per sensor × parameter, its highest value) | `spike <sensor> <parameter>` |
//! | 2 | a drift still in progress | `drifting <sensor> <parameter>` |
//! | 3 | a drift that has ended, or dropouts of a sensor that reports again | `drift <sensor> <parameter>`, `dropout <sensor>` |
//! | 4 | nothing happened | `none` |

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::grounding::{MAX_SUMMARY_CHARS, Ungrounded, check_grounded, clean};
use super::{
    Condition, Facts, LISTED, NOTED, Peak, Prompt, clock, facts_text, kinds, ongoing_lines, peak_line, plural, reading,
};
use crate::domain::{AnomalyKind, SensorId};

/// Most tokens a form needs: three short strings in JSON, with room for the keys.
pub const FORM_ANSWER_TOKENS: u32 = 256;

/// Most findings the model chooses among for `most_urgent`.
const CHOICES: usize = NOTED;

/// One thing the note can lead with, from the facts.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// What the model answers in `most_urgent`: `spike wtf-pipe-1 pressure`.
    pub id: String,
    /// 0 is the most urgent; see the module doc.
    pub rank: u8,
    /// The finding as the note states it, written from the facts.
    pub line: String,
    /// A headline that leads with it.
    pub headline: String,
    /// What the operator may check first for it.
    pub actions: Vec<Action>,
}

/// Something to check, offered to the model for `check_first`.
///
/// The id is the kind of check (`on_site`, `compare`, `power_link`, `watch`, `review`, `none`),
/// said of the chosen condition; the findings of one rank offer the same kinds, so whichever of
/// the choices the model picks, every check the schema allows fits it.
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    /// What the model answers: `on_site`.
    pub id: String,
    /// The check as the note states it.
    pub text: String,
}

/// The closed lists of one window.
#[derive(Clone, Debug, PartialEq)]
pub struct Form {
    /// Listed findings, most urgent first; at most `LISTED`.
    pub findings: Vec<Finding>,
    /// The findings the model may choose for `most_urgent`: the first ones, all of the top rank.
    pub choices: usize,
    pub headlines: Vec<String>,
}

/// A form the model filled in correctly.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice<'a> {
    pub finding: &'a Finding,
    pub action: &'a Action,
    pub headline: &'a str,
}

/// Why a model's answer was not used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the answer is not JSON: {0}")]
    NotJson(String),
    #[error("the answer is not the form asked for: {0}")]
    OffSchema(String),
    #[error("{field} is {value:?}, which is not one of the choices given")]
    UnknownChoice { field: &'static str, value: String },
    #[error("check_first {action:?} is not a check for {finding:?}")]
    MismatchedAction { action: String, finding: String },
    /// The rendered note failed the final check; the renderer is at fault, not the model.
    #[error("the rendered note is not supported by the facts: {0}")]
    Ungrounded(Ungrounded),
}

impl Refusal {
    /// A short stable name for counting refusals by reason.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::NotJson(_) => "not_json",
            Refusal::OffSchema(_) => "off_schema",
            Refusal::UnknownChoice { .. } => "unknown_choice",
            Refusal::MismatchedAction { .. } => "mismatched_action",
            Refusal::Ungrounded(_) => "ungrounded",
        }
    }
}

/// What of the model's text goes into a refusal's reason: enough to recognise, bounded.
fn quoted(text: &str) -> String {
    const SHOWN: usize = 80;
    let mut shown: String = text.chars().take(SHOWN).collect();
    if text.chars().count() > SHOWN {
        shown.push('…');
    }
    shown
}

impl Form {
    pub fn new(facts: &Facts) -> Self {
        let mut findings = Vec::new();
        let silent = silent_sensors(facts);
        for (sensor_id, line) in &silent {
            findings.push(Finding {
                id: format!("silent {sensor_id}"),
                rank: 0,
                line: line.clone(),
                headline: format!("{sensor_id} has stopped reporting"),
                actions: vec![
                    Action {
                        id: "power_link".to_owned(),
                        text: format!("the power supply and network link of {sensor_id}, which sends no readings"),
                    },
                    Action { id: "on_site".to_owned(), text: format!("{sensor_id} on site") },
                ],
            });
        }
        for peak in facts.peaks.iter().take(LISTED) {
            // A drift still in progress is the `drifting` finding below; its peak is not one
            // that "has ended".
            let drifting = facts.ongoing.iter().any(|condition| {
                matches!(condition, Condition::Drifting { sensor_id, parameter, .. }
                    if *sensor_id == peak.sensor_id && *parameter == peak.parameter)
            });
            if peak.kind == AnomalyKind::Spike || !drifting {
                findings.push(peak_finding(peak, facts));
            }
        }
        for condition in facts.ongoing.iter().take(LISTED) {
            if let Condition::Drifting { sensor_id, parameter, .. } = condition {
                let line = ongoing_lines(std::slice::from_ref(condition), &facts.units).join("");
                findings.push(Finding {
                    id: format!("drifting {sensor_id} {parameter}"),
                    rank: 2,
                    line,
                    headline: format!("{sensor_id} {parameter} is still above its drift threshold"),
                    actions: vec![
                        Action {
                            id: "watch".to_owned(),
                            text: format!("the trend of {sensor_id} {parameter}, still above its drift threshold"),
                        },
                        Action { id: "on_site".to_owned(), text: format!("{sensor_id} {parameter} on site") },
                    ],
                });
            }
        }
        // Dropouts of a sensor that reports again; only sensors the facts text lists, so the count
        // quoted is one the facts carry.
        let silent_ids: BTreeSet<&SensorId> = silent.iter().map(|(sensor_id, _)| sensor_id).collect();
        for sensor in facts.by_sensor.iter().take(LISTED) {
            let dropouts = sensor.by_kind.get(AnomalyKind::Dropout);
            if dropouts > 0 && !silent_ids.contains(&sensor.sensor_id) {
                let sensor_id = &sensor.sensor_id;
                findings.push(Finding {
                    id: format!("dropout {sensor_id}"),
                    rank: 3,
                    line: format!("{sensor_id} had {}, and reports again", plural(dropouts, "dropout", "dropouts")),
                    headline: format!("{sensor_id} reports again after dropouts"),
                    actions: vec![Action {
                        id: "review".to_owned(),
                        text: format!("the link of {sensor_id} when convenient; its readings came back"),
                    }],
                });
            }
        }
        if findings.is_empty() {
            findings.push(Finding {
                id: "none".to_owned(),
                rank: 4,
                line: "nothing needs attention".to_owned(),
                headline: "A quiet window: nothing to report".to_owned(),
                actions: vec![Action { id: "none".to_owned(), text: "nothing: no action needed".to_owned() }],
            });
        }
        // Stable: within a rank, the facts' own order (silences oldest first, peaks furthest
        // above threshold first).
        findings.sort_by_key(|finding| finding.rank);
        // One finding per id: the facts list each condition once, but a choice must be unique.
        let mut seen = BTreeSet::new();
        findings.retain(|finding| seen.insert(finding.id.clone()));
        findings.truncate(LISTED);
        let top = findings[0].rank;
        let choices = findings.iter().take(CHOICES).take_while(|finding| finding.rank == top).count();
        let headlines = headlines(facts, &findings[..choices]);
        Self { findings, choices, headlines }
    }

    /// The findings the model may choose for `most_urgent`.
    pub fn choices(&self) -> &[Finding] {
        &self.findings[..self.choices]
    }

    fn actions(&self) -> impl Iterator<Item = &Action> {
        self.choices().iter().flat_map(|finding| &finding.actions)
    }
}

/// Each silent sensor with the line the facts state for it, in the facts' order.
fn silent_sensors(facts: &Facts) -> Vec<(SensorId, String)> {
    let silences: Vec<Condition> = facts.ongoing.iter().filter(|c| c.is_silent()).take(LISTED * 4).cloned().collect();
    let lines = ongoing_lines(&silences, &facts.units);
    let mut seen = BTreeSet::new();
    let sensors = silences.iter().map(Condition::sensor_id).filter(|sensor_id| seen.insert((*sensor_id).clone()));
    sensors.cloned().zip(lines).take(LISTED).collect()
}

fn peak_finding(peak: &Peak, facts: &Facts) -> Finding {
    let (sensor_id, parameter) = (&peak.sensor_id, &peak.parameter);
    let on_site = Action { id: "on_site".to_owned(), text: format!("{sensor_id} {parameter} on site") };
    match peak.kind {
        AnomalyKind::Spike => Finding {
            id: format!("spike {sensor_id} {parameter}"),
            rank: 1,
            line: peak_line(peak, &facts.units),
            headline: format!(
                "Spike in {parameter} on {sensor_id}, up to {}",
                reading(peak.value, parameter, &facts.units)
            ),
            actions: vec![
                on_site,
                Action {
                    id: "compare".to_owned(),
                    text: format!("{sensor_id} {parameter} against the other sensors' readings"),
                },
            ],
        },
        // A drift peak, or (today never) another kind with a value: ended, reviewed when convenient.
        kind => Finding {
            id: format!("{kind} {sensor_id} {parameter}"),
            rank: 3,
            line: peak_line(peak, &facts.units),
            headline: format!("{sensor_id} {parameter}: a {kind} that has ended"),
            actions: vec![Action {
                id: "review".to_owned(),
                text: format!("{sensor_id} {parameter} when convenient; the {kind} has ended"),
            }],
        },
    }
}

/// Candidate headlines, each true of the facts: the counts, the severity, and one per finding
/// the model may lead with.
fn headlines(facts: &Facts, choices: &[Finding]) -> Vec<String> {
    let (start, end) = (facts.window_start.format("%H:%M"), facts.window_end.format("%H:%M"));
    let mut headlines = Vec::new();
    if facts.anomaly_count == 0 && facts.ongoing.is_empty() {
        headlines.push(format!("No anomalies between {start} and {end} UTC"));
    } else if facts.anomaly_count == 0 {
        headlines.push(format!("No new anomalies between {start} and {end} UTC"));
    } else {
        headlines.push(format!(
            "{} on {} between {start} and {end} UTC",
            plural(facts.anomaly_count, "anomaly", "anomalies"),
            plural(facts.by_sensor.len() as u64, "sensor", "sensors")
        ));
        headlines.push(format!("Severity {}: {}", facts.severity, kinds(&facts.by_kind)));
    }
    headlines.extend(choices.iter().map(|finding| finding.headline.clone()));
    headlines
}

/// A JSON schema whose properties keep the order they are declared in, so the model fills in
/// the condition before the check (`serde_json::Value` would sort the keys).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Schema {
    #[serde(rename = "type")]
    kind: &'static str,
    properties: Properties,
    required: [&'static str; 3],
    #[serde(rename = "additionalProperties")]
    additional_properties: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct Properties {
    most_urgent: Enum,
    check_first: Enum,
    headline: Enum,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct Enum {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "enum")]
    values: Vec<String>,
}

impl Enum {
    fn of<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut seen = BTreeSet::new();
        let values = values.into_iter().filter(|value| seen.insert(*value)).map(str::to_owned).collect();
        Self { kind: "string", values }
    }
}

/// The schema sent as `format`: an object of exactly the three fields, each an enum of the form's
/// choices.
pub fn schema(form: &Form) -> Schema {
    Schema {
        kind: "object",
        properties: Properties {
            most_urgent: Enum::of(form.choices().iter().map(|finding| finding.id.as_str())),
            check_first: Enum::of(form.actions().map(|action| action.id.as_str())),
            headline: Enum::of(form.headlines.iter().map(String::as_str)),
        },
        required: ["most_urgent", "check_first", "headline"],
        additional_properties: false,
    }
}

const SYSTEM: &str = "You are the shift assistant of a water treatment plant. You read the monitoring facts \
and fill in a short form for the operator on duty. Answer with JSON only. Every value is chosen from its list \
and copied exactly.";

/// The facts, then each field with its choices. Bounded like the facts text: a few lines per
/// list, whatever the number of anomalies (under 1,500 tokens for 100,000; see BENCHMARKS.md).
pub fn prompt(facts: &Facts, form: &Form) -> Prompt {
    let mut user = format!("Facts:\n{}\nFill in the form.\n", facts_text(facts));
    // The choices' ids only: each names a line of the facts above, which need not be repeated.
    let ids: Vec<String> = form.choices().iter().map(|finding| format!("\"{}\"", finding.id)).collect();
    let _ = writeln!(user, "most_urgent: the condition the operator deals with first, one of {}", ids.join(", "));
    let _ = writeln!(user, "check_first: what the operator checks first, for the condition you chose. One of:");
    let first = &form.choices()[0];
    for action in &first.actions {
        let _ = writeln!(user, "- \"{}\": for \"{}\", check {}", action.id, first.id, action.text);
    }
    let _ = writeln!(user, "headline: the line that best sums up the window. One of:");
    for headline in &form.headlines {
        let _ = writeln!(user, "- \"{headline}\"");
    }
    let _ = write!(user, "Answer: {{\"most_urgent\": \"…\", \"check_first\": \"…\", \"headline\": \"…\"}}");
    Prompt { system: SYSTEM.to_owned(), user }
}

/// Accepts the model's answer only if it is the form: a JSON object with exactly the three
/// fields, each a string among its choices, the check one of the chosen condition's.
fn read_answer<'a>(answer: &str, form: &'a Form) -> Result<Choice<'a>, Refusal> {
    // A model that ignores `format` may still wrap the JSON in a code fence.
    let text = clean(answer);
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| Refusal::NotJson(format!("{err}: {}", quoted(&text))))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(Refusal::OffSchema(format!("not an object: {}", quoted(&text))));
    };
    if let Some(extra) = fields.keys().find(|key| !["most_urgent", "check_first", "headline"].contains(&key.as_str())) {
        return Err(Refusal::OffSchema(format!("unexpected field {:?}", quoted(extra))));
    }
    let field = |name: &'static str| match fields.get(name) {
        Some(serde_json::Value::String(value)) => Ok(value.as_str()),
        Some(other) => Err(Refusal::OffSchema(format!("{name} is not a string: {}", quoted(&other.to_string())))),
        None => Err(Refusal::OffSchema(format!("{name} is missing"))),
    };
    let (urgent, check, headline) = (field("most_urgent")?, field("check_first")?, field("headline")?);
    let unknown = |field: &'static str, value: &str| Refusal::UnknownChoice { field, value: quoted(value) };
    let finding =
        form.choices().iter().find(|finding| finding.id == urgent).ok_or_else(|| unknown("most_urgent", urgent))?;
    let action = match finding.actions.iter().find(|action| action.id == check) {
        Some(action) => action,
        None if form.actions().any(|action| action.id == check) => {
            return Err(Refusal::MismatchedAction { action: quoted(check), finding: finding.id.clone() });
        }
        None => return Err(unknown("check_first", check)),
    };
    let headline =
        form.headlines.iter().find(|known| known.as_str() == headline).ok_or_else(|| unknown("headline", headline))?;
    Ok(Choice { finding, action, headline })
}

/// The note, from the choices and the facts; plain text, at most [`MAX_SUMMARY_CHARS`].
///
/// The headline, the chosen condition, the check, then what else happened (the counts, up to two
/// other findings) and the severity, all in the daemon's words.
pub fn render(facts: &Facts, form: &Form, choice: &Choice<'_>) -> String {
    let mut note =
        format!("{}. Most urgent: {}. Check first: {}.", choice.headline, choice.finding.line, choice.action.text);
    let window = format!("between {} and {} UTC", clock(facts.window_start), clock(facts.window_end));
    if facts.anomaly_count > 0 {
        let _ = write!(
            note,
            " In all, {} {window} ({}) on {}.",
            plural(facts.anomaly_count, "anomaly", "anomalies"),
            kinds(&facts.by_kind),
            plural(facts.by_sensor.len() as u64, "sensor", "sensors")
        );
    } else {
        let _ = write!(note, " No anomalies {window}.");
    }
    let others: Vec<&str> = form
        .findings
        .iter()
        .filter(|finding| finding.id != choice.finding.id && finding.rank < 4)
        .take(2)
        .map(|finding| finding.line.as_str())
        .collect();
    if !others.is_empty() {
        let more = form.findings.iter().filter(|finding| finding.rank < 4).count().saturating_sub(others.len() + 1);
        // Not "and 3 more": a number the daemon computed here would not be one of the facts'.
        let more = if more > 0 { "; and more" } else { "" };
        let _ = write!(note, " Also: {}{more}.", others.join("; "));
    }
    let _ = write!(note, " Severity: {}.", facts.severity);
    note
}

/// `read_answer` then [`render`], with the final check of the note against the facts (every
/// sensor, parameter, number and time in it is one of theirs, and there is no markup), which
/// only a fault of the renderer could fail.
pub fn note_from_answer(
    answer: &str,
    facts: &Facts,
    form: &Form,
    known_sensors: &[SensorId],
) -> Result<String, Refusal> {
    let choice = read_answer(answer, form)?;
    let note = render(facts, form, &choice);
    if note.chars().count() > MAX_SUMMARY_CHARS {
        return Err(Refusal::Ungrounded(Ungrounded::TooLong(note.chars().count())));
    }
    check_grounded(&note, facts, known_sensors).map_err(Refusal::Ungrounded)?;
    Ok(note)
}

#[cfg(test)]
mod tests;
