//! The model's text, before it is used: [`clean`] strips what is not the note, and
//! [`check_grounded`] refuses a note that says anything the facts do not. A refused note is
//! replaced by the template: strictness costs wording, never information.

use std::collections::BTreeSet;

use super::{Facts, Severity, Units, facts_text};
use crate::domain::{Parameter, SensorId};

/// Longest model text accepted, in characters: a short operator note is a few sentences.
pub const MAX_SUMMARY_CHARS: usize = 1_500;

/// Strips `<think>…</think>` blocks (also an unclosed `<think>` to the end, and the reasoning
/// before a lone `</think>`), code fence lines, leading "Summary:" labels, and surrounding
/// whitespace.
pub fn clean(model_output: &str) -> String {
    const OPEN: &str = "<think>";
    const CLOSE: &str = "</think>";
    let lower = model_output.to_ascii_lowercase(); // same byte offsets as the original
    let mut kept = String::new();
    let mut at = 0;
    // Some chat templates open the block in the prompt: the output then starts inside it.
    if let Some(close) = lower.find(CLOSE)
        && lower.find(OPEN).is_none_or(|open| open > close)
    {
        at = close + CLOSE.len();
    }
    while let Some(open) = lower[at..].find(OPEN).map(|open| at + open) {
        kept.push_str(&model_output[at..open]);
        match lower[open..].find(CLOSE) {
            Some(close) => at = open + close + CLOSE.len(),
            None => {
                at = model_output.len();
                break;
            }
        }
    }
    kept.push_str(&model_output[at..]);

    let unfenced: Vec<&str> = kept.lines().filter(|line| !line.trim_start().starts_with("```")).collect();
    let text = unfenced.join("\n");
    let text = text.trim();
    let probe = text.trim_start_matches(['*', '#', '_', ' ']);
    let lower = probe.to_ascii_lowercase();
    for label in ["operator summary", "operator note", "summary", "note"] {
        if let Some(rest) = lower.strip_prefix(label)
            && rest.trim_start().starts_with(':')
        {
            let colon = probe.len() - rest.len() + (rest.len() - rest.trim_start().len());
            return probe[colon + 1..].trim_start_matches(['*', '_']).trim().to_owned();
        }
    }
    text.to_owned()
}

/// Why a model's text was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Ungrounded {
    #[error("the model wrote nothing")]
    Empty,
    #[error("names sensor {0:?}, which is not in the facts")]
    UnknownSensor(String),
    #[error("names parameter {0:?}, which is not in the facts")]
    UnknownParameter(String),
    #[error("quotes {0:?}, which is not a number or time of the facts")]
    UnknownNumber(String),
    #[error("{0} characters, more than {MAX_SUMMARY_CHARS}")]
    TooLong(usize),
    #[error("contains markup or a link ({0:?}); a note is plain text")]
    Markup(String),
    #[error("calls the window {0:?}, but its severity is another")]
    WrongSeverity(String),
    #[error("claims {0:?}, which no fact of the monitor can support")]
    UnsupportedClaim(String),
}

impl Ungrounded {
    /// A short stable name for counting refusals by reason.
    pub fn kind(&self) -> &'static str {
        match self {
            Ungrounded::Empty => "empty",
            Ungrounded::UnknownSensor(_) => "unknown_sensor",
            Ungrounded::UnknownParameter(_) => "unknown_parameter",
            Ungrounded::UnknownNumber(_) => "unknown_number",
            Ungrounded::TooLong(_) => "too_long",
            Ungrounded::Markup(_) => "markup",
            Ungrounded::WrongSeverity(_) => "wrong_severity",
            Ungrounded::UnsupportedClaim(_) => "unsupported_claim",
        }
    }
}

/// Words the plant does not measure: a model that names them is inventing.
const UNMEASURED: &[&str] = &[
    "ph",
    "turbidity",
    "chlorine",
    "chloramine",
    "chloramines",
    "humidity",
    "conductivity",
    "oxygen",
    "salinity",
    "nitrate",
    "nitrates",
    "nitrite",
    "ammonia",
    "fluoride",
    "hardness",
    "alkalinity",
    "coliform",
    "coliforms",
    "bacteria",
    "orp",
    "tds",
    "toc",
    "uv",
    "ozone",
    "vibration",
    "vibrations",
    "voltage",
    "viscosity",
];

/// Events the monitor cannot observe: it measures values, it does not see leaks or microbes.
const UNSUPPORTED: &[&str] = &[
    "leak",
    "leaks",
    "leaking",
    "leakage",
    "evacuate",
    "evacuation",
    "contamination",
    "contaminated",
    "coli",
    "chemical",
    "chemicals",
    "toxic",
    "fire",
    "explosion",
    "flooding",
    "outbreak",
    "poisoning",
];

/// Severity words and their synonyms, each standing for one severity.
const SEVERITY_WORDS: &[(&str, Severity)] = &[
    ("normal", Severity::Normal),
    ("normally", Severity::Normal),
    ("healthy", Severity::Normal),
    ("caution", Severity::Caution),
    ("alert", Severity::Alert),
    ("critical", Severity::Critical),
    ("emergency", Severity::Critical),
];

/// What makes text more than plain: tags, markdown links, code, and addresses.
const MARKUP: &[&str] = &["<", ">", "[", "]", "{", "}", "`", "://", "www."];

/// The configured parameter a word names: its name (`_` as a space is not a word), a plural,
/// or a common short form (`temp`, `flowrate`).
fn parameter_word(word: &str, parameters: &Units) -> Option<Parameter> {
    let base = match word {
        "temp" | "temps" => "temperature",
        "flowrate" | "flowrates" => "flow",
        _ => word.strip_suffix('s').filter(|base| parameters.contains_key(*base)).unwrap_or(word),
    };
    parameters.keys().find(|parameter| parameter.as_str().eq_ignore_ascii_case(base)).cloned()
}

/// Accepts the text only if every sensor, parameter and number it names appears in the facts,
/// it states no other severity than the facts', claims nothing the monitor cannot observe, and
/// is plain text.
///
/// # What "appears in the facts" means
///
/// The reference is [`facts_text`], the exact facts block the prompt carried (the model saw
/// nothing else):
///
/// - **Sensors.** A *sensor mention* is a word (letters, digits, `-`, `_`, `.`) that equals a
///   configured sensor id, or is shaped like one: starts with a letter and ends in `-` or `_`
///   followed by digits (`wtf-pipe-9`, `pump_2`). Each mention must be a word of the facts text;
///   case is ignored.
/// - **Parameters.** The words for temperature, pressure and flow (`temp`, plurals, `flowrate`)
///   may be used only for a parameter the facts text names — one with anomalies or a condition in
///   progress. Words for things the plant does not measure (`pH`, `turbidity`, `chlorine`,
///   `humidity`, …) are always refused.
/// - **Numbers.** Digits inside a sensor mention, or glued to a preceding letter (`H2O`), are not
///   numbers. A time `H:MM` or `HH:MM[:SS]` must equal a time of the facts, or be the `HH:MM` of one
///   (`10:22` for `10:22:14`). Any other number (`4.5`, `1,000`, `05`) must be numerically equal to
///   a number of the facts text: `4.5`, `4.50` and `4.500` are the same number, `39.3` for `39.27`
///   is not. Signs are ignored, so `-3` matches `3`; the date `2025-05-19` gives `2025`, `5`, `19`.
///
/// - **Severity.** The words `normal`, `caution`, `alert`, `critical` (and `healthy`,
///   `emergency`) may only name the facts' severity. (Not `urgent`: "most urgent" ranks, it
///   does not rate.)
/// - **Claims.** Words for events no sensor of the plant observes (`leak`, `evacuate`, `E. coli`,
///   `chemical`, `contamination`, …) are refused.
/// - **Plain text.** `<`, `>`, `[`, `]`, `{`, `}`, backticks, `://` and `www.` are refused: the
///   note is never HTML, markdown or a link.
///
/// `known_sensors` are the configured sensors: their names count as sensor mentions even when
/// not shaped like `wtf-pipe-1`. The first problem found is returned.
pub fn check_grounded(text: &str, facts: &Facts, known_sensors: &[SensorId]) -> Result<(), Ungrounded> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Ungrounded::Empty);
    }
    let length = text.chars().count();
    if length > MAX_SUMMARY_CHARS {
        return Err(Ungrounded::TooLong(length));
    }
    let lower = text.to_lowercase();
    if let Some(mark) = MARKUP.iter().find(|mark| lower.contains(**mark)) {
        return Err(Ungrounded::Markup((*mark).to_owned()));
    }
    let reference = facts_text(facts);
    let mut sensor_names: BTreeSet<String> = known_sensors.iter().map(|id| id.as_str().to_ascii_lowercase()).collect();
    sensor_names.extend(facts.by_sensor.iter().map(|sensor| sensor.sensor_id.as_str().to_ascii_lowercase()));
    sensor_names.extend(facts.ongoing.iter().map(|condition| condition.sensor_id().as_str().to_ascii_lowercase()));
    let (reference, reference_sensors) = mask_sensors(&reference, &sensor_names);
    let reference_sensors: BTreeSet<String> = reference_sensors.iter().map(|name| name.to_ascii_lowercase()).collect();
    let (text, mentioned) = mask_sensors(text, &sensor_names);

    if let Some(unknown) = mentioned.iter().find(|name| !reference_sensors.contains(&name.to_ascii_lowercase())) {
        return Err(Ungrounded::UnknownSensor(unknown.clone()));
    }
    let named: BTreeSet<Parameter> = words(&reference).filter_map(|word| parameter_word(&word, &facts.units)).collect();
    for word in words(&text) {
        let parameter = parameter_word(&word, &facts.units);
        let known = parameter.as_ref().is_none_or(|parameter| named.contains(parameter));
        if !known || (parameter.is_none() && UNMEASURED.contains(&word.as_str())) {
            return Err(Ungrounded::UnknownParameter(word));
        }
    }
    for word in words(&text) {
        if UNSUPPORTED.contains(&word.as_str()) {
            return Err(Ungrounded::UnsupportedClaim(word));
        }
        if SEVERITY_WORDS.iter().any(|(name, severity)| *name == word && *severity != facts.severity) {
            return Err(Ungrounded::WrongSeverity(word));
        }
    }
    let allowed = numbers(&reference);
    for token in numbers(&text) {
        let grounded = match &token {
            Number::Time(time, _) => allowed.iter().any(|fact| match fact {
                Number::Time(fact, _) => fact == time || (time.len() == 5 && fact.starts_with(time.as_str())),
                Number::Value(..) => false,
            }),
            Number::Value(value, _) => allowed.iter().any(|fact| match fact {
                Number::Value(fact, _) => (fact - value).abs() <= 1e-9 * fact.abs().max(1.0),
                Number::Time(..) => false,
            }),
        };
        if !grounded {
            let (Number::Time(_, written) | Number::Value(_, written)) = token;
            return Err(Ungrounded::UnknownNumber(written));
        }
    }
    Ok(())
}

/// Blanks out sensor mentions (see [`check_grounded`]) so their digits and words are not read as
/// numbers or parameters; returns the masked text and the mentions as written.
fn mask_sensors(text: &str, sensor_names: &BTreeSet<String>) -> (String, Vec<String>) {
    let is_word_byte = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.');
    let bytes = text.as_bytes();
    let mut masked = text.to_owned().into_bytes();
    let mut mentions = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if !is_word_byte(bytes[at]) {
            at += 1;
            continue;
        }
        let mut end = at;
        while end < bytes.len() && is_word_byte(bytes[end]) {
            end += 1;
        }
        // ASCII only, so these byte offsets are character boundaries.
        let word = text[at..end].trim_matches(['-', '_', '.']);
        let lead = text[at..end].len() - text[at..end].trim_start_matches(['-', '_', '.']).len();
        if !word.is_empty() && (sensor_names.contains(&word.to_ascii_lowercase()) || is_sensor_shaped(word)) {
            masked[at + lead..at + lead + word.len()].fill(b' ');
            mentions.push(word.to_owned());
        }
        at = end;
    }
    // Only ASCII bytes were replaced by ASCII spaces: still UTF-8.
    (String::from_utf8(masked).unwrap_or_default(), mentions)
}

/// `wtf-pipe-9`, `pump_2`: starts with a letter, ends in `-` or `_` and digits.
fn is_sensor_shaped(word: &str) -> bool {
    let head = word.trim_end_matches(|c: char| c.is_ascii_digit());
    word.starts_with(|c: char| c.is_ascii_alphabetic())
        && head.len() < word.len()
        && head.len() > 1
        && (head.ends_with('-') || head.ends_with('_'))
}

/// Lower-case runs of letters.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphabetic()).filter(|word| !word.is_empty()).map(str::to_lowercase)
}

/// A number as read from text, with how it was written.
#[derive(Debug)]
enum Number {
    /// `HH:MM` or `HH:MM:SS`, the hour padded to two digits.
    Time(String, String),
    Value(f64, String),
}

/// The numbers and times of a text, as [`check_grounded`] defines them.
fn numbers(text: &str) -> Vec<Number> {
    let bytes = text.as_bytes();
    let digits_at = |at: usize, count: usize| {
        bytes.len() >= at + count
            && bytes[at..at + count].iter().all(u8::is_ascii_digit)
            && !bytes.get(at + count).is_some_and(u8::is_ascii_digit)
    };
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if !bytes[at].is_ascii_digit() {
            at += 1;
            continue;
        }
        let glued = at > 0 && bytes[at - 1].is_ascii_alphabetic();
        let start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        if glued {
            continue;
        }
        if at - start <= 2 && bytes.get(at) == Some(&b':') && digits_at(at + 1, 2) {
            at += 3;
            if bytes.get(at) == Some(&b':') && digits_at(at + 1, 2) {
                at += 3;
            }
            let written = &text[start..at];
            let padded = if written.find(':') == Some(1) { format!("0{written}") } else { written.to_owned() };
            found.push(Number::Time(padded, written.to_owned()));
            continue;
        }
        if at - start <= 3 {
            while bytes.get(at) == Some(&b',') && digits_at(at + 1, 3) {
                at += 4;
            }
        }
        if bytes.get(at) == Some(&b'.') && bytes.get(at + 1).is_some_and(u8::is_ascii_digit) {
            at += 1;
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                at += 1;
            }
        }
        let written = &text[start..at];
        if let Ok(value) = written.replace(',', "").parse::<f64>() {
            found.push(Number::Value(value, written.to_owned()));
        }
    }
    found
}
