use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::domain::EpisodeKey;

/// Seconds after 2025-05-19T10:15:00Z.
pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_747_649_700 + seconds, 0).single().expect("a valid instant")
}

pub(super) fn spike_threshold(parameter: &str) -> f64 {
    crate::config::Config::default().detection.limits.spike_thresholds[parameter]
}

pub(super) fn drift_threshold(parameter: &str) -> f64 {
    crate::config::Config::default().detection.limits.drift_thresholds[parameter]
}

pub(super) fn anomaly(
    kind: AnomalyKind,
    sensor: &str,
    parameter: &str,
    value: f64,
    threshold: f64,
    seconds: i64,
    lasted: Option<f64>,
) -> Anomaly {
    let episode = EpisodeKey { sensor_id: sensor.into(), parameter: parameter.into(), kind, started: at(seconds) };
    let wording = crate::config::Config::default().wording(parameter);
    Anomaly::new(&episode, at(seconds), Some(value), threshold, lasted, &wording)
}

pub(super) fn spike(sensor: &str, parameter: &str, value: f64, seconds: i64) -> Anomaly {
    anomaly(AnomalyKind::Spike, sensor, parameter, value, spike_threshold(parameter), seconds, None)
}

pub(super) fn drift(sensor: &str, parameter: &str, value: f64, seconds: i64, lasted: f64) -> Anomaly {
    anomaly(AnomalyKind::Drift, sensor, parameter, value, drift_threshold(parameter), seconds, Some(lasted))
}

pub(super) fn dropout(sensor: &str, parameter: &str, last_value: f64, seconds: i64) -> Anomaly {
    anomaly(AnomalyKind::Dropout, sensor, parameter, last_value, 10.0, seconds, Some(10.0))
}

pub(super) fn silent(sensor: &str, parameter: &str, seconds: i64) -> Condition {
    Condition::Silent { sensor_id: sensor.into(), parameter: parameter.into(), since: at(seconds) }
}

pub(super) fn drifting(sensor: &str, parameter: &str, value: f64, seconds: i64) -> Condition {
    Condition::Drifting { sensor_id: sensor.into(), parameter: parameter.into(), since: at(seconds), value }
}

/// The default parameters by position, as the generators below pick them.
pub(super) const PARAMETERS: [&str; 3] = ["temperature", "pressure", "flow"];

pub(super) fn sensors(ids: &[&str]) -> Vec<SensorId> {
    ids.iter().map(|id| SensorId::from(*id)).collect()
}

#[allow(non_upper_case_globals)]
pub(super) const Temperature: &str = "temperature";
#[allow(non_upper_case_globals)]
pub(super) const Pressure: &str = "pressure";
#[allow(non_upper_case_globals)]
pub(super) const Flow: &str = "flow";

/// Seven anomalies between 10:22 and 10:25, a sensor still silent and a drift still going.
pub(super) fn busy_window() -> Facts {
    let anomalies = [
        drift("wtf-pipe-1", Temperature, 39.2, 440, 16.0),
        spike("wtf-pipe-1", Pressure, 4.5, 434),
        spike("wtf-pipe-1", Pressure, 4.8, 470),
        dropout("wtf-pipe-2", Temperature, 21.3, 520),
        dropout("wtf-pipe-2", Pressure, 2.1, 520),
        dropout("wtf-pipe-2", Flow, 55.0, 520),
        drift("wtf-pipe-3", Flow, 112.5, 590, 15.5),
    ];
    let ongoing = [
        drifting("wtf-pipe-3", Flow, 113.1, 574),
        silent("wtf-pipe-2", Flow, 509),
        silent("wtf-pipe-2", Temperature, 509),
    ];
    facts(at(420), at(600), &anomalies, &ongoing)
}

#[test]
fn facts_count_by_type_parameter_and_sensor_with_first_and_last() {
    let facts = busy_window();
    assert_eq!(facts.anomaly_count, 7);
    let by_kind: Vec<(AnomalyKind, u64)> = facts.by_kind.iter().collect();
    assert_eq!(by_kind, [(AnomalyKind::Spike, 2), (AnomalyKind::Drift, 2), (AnomalyKind::Dropout, 3)]);
    let by_parameter: Vec<(&str, u64)> =
        facts.by_parameter.iter().map(|(parameter, count)| (parameter.as_str(), *count)).collect();
    assert_eq!(by_parameter, [("flow", 2), ("pressure", 3), ("temperature", 2)]);
    let by_sensor: Vec<(&str, u64)> =
        facts.by_sensor.iter().map(|sensor| (sensor.sensor_id.as_str(), sensor.total)).collect();
    assert_eq!(by_sensor, [("wtf-pipe-1", 3), ("wtf-pipe-2", 3), ("wtf-pipe-3", 1)]);
    assert_eq!(
        facts.by_sensor[0].by_kind.iter().collect::<Vec<_>>(),
        [(AnomalyKind::Spike, 2), (AnomalyKind::Drift, 1)]
    );
    assert_eq!(facts.first_anomaly, Some(at(434)));
    assert_eq!(facts.last_anomaly, Some(at(590)));
    assert_eq!((facts.window_start, facts.window_end), (at(420), at(600)));
}

#[test]
fn peaks_keep_the_highest_value_per_sensor_and_parameter_spikes_first() {
    let facts = busy_window();
    let peaks: Vec<(&str, &str, AnomalyKind, f64, f64)> = facts
        .peaks
        .iter()
        .map(|peak| (peak.sensor_id.as_str(), peak.parameter.as_str(), peak.kind, peak.value, peak.threshold))
        .collect();
    assert_eq!(
        peaks,
        [
            ("wtf-pipe-1", Pressure, AnomalyKind::Spike, 4.8, 4.0),
            // Drifts: 39.2 °C is 3.2 % above 38, 112.5 L/min 2.3 % above 110.
            ("wtf-pipe-1", Temperature, AnomalyKind::Drift, 39.2, 38.0),
            ("wtf-pipe-3", Flow, AnomalyKind::Drift, 112.5, 110.0),
        ]
    );
    assert_eq!(facts.peaks[0].at, at(470));
    assert_eq!(facts.peaks[1].duration_seconds, Some(16.0));
    // A dropout's value is the last one seen, not an excursion: no peak for wtf-pipe-2.
    assert!(facts.peaks.iter().all(|peak| peak.sensor_id.as_str() != "wtf-pipe-2"));
}

#[test]
fn a_spike_outranks_a_drift_of_the_same_sensor_and_parameter_when_higher() {
    let anomalies = [
        drift("p-1", Temperature, 40.0, 0, 16.0),
        spike("p-1", Temperature, 46.0, 5),
        drift("p-1", Temperature, 41.0, 9, 20.0),
    ];
    let facts = facts(at(0), at(60), &anomalies, &[]);
    assert_eq!(facts.peaks.len(), 1);
    assert_eq!((facts.peaks[0].kind, facts.peaks[0].value, facts.peaks[0].threshold), (AnomalyKind::Spike, 46.0, 45.0));
}

#[test]
fn ongoing_conditions_are_kept_silences_first_then_oldest() {
    let facts = busy_window();
    assert_eq!(
        facts.ongoing,
        [
            silent("wtf-pipe-2", Flow, 509),
            silent("wtf-pipe-2", Temperature, 509),
            drifting("wtf-pipe-3", Flow, 113.1, 574)
        ]
    );
}

#[test]
fn the_builder_counts_as_it_goes_and_keeps_one_tally_per_sensor_parameter_and_type() {
    let mut builder = FactsBuilder::new(at(0));
    for i in 0..10_000 {
        builder.add(&spike(["a-1", "a-2"][i % 2], Pressure, 4.0 + (i % 7) as f64 / 10.0, i as i64 % 60));
    }
    assert_eq!(builder.anomaly_count(), 10_000);
    assert_eq!(builder.tallies.len(), 2);
    let facts = builder.finish(at(60), &[]);
    assert_eq!(facts.by_kind.get(AnomalyKind::Spike), 10_000);
    let top = 4.0 + 6.0 / 10.0;
    assert_eq!(facts.peaks.iter().map(|peak| peak.value).collect::<Vec<_>>(), [top, top]);
    assert_eq!(facts, {
        let mut again = FactsBuilder::new(at(0));
        (0..10_000).for_each(|i| {
            again.add(&spike(["a-1", "a-2"][i % 2], Pressure, 4.0 + (i % 7) as f64 / 10.0, i as i64 % 60))
        });
        again.finish(at(60), &[])
    });
}

#[test]
fn severity_table() {
    let p1 = "wtf-pipe-1";
    let many_spikes: Vec<Anomaly> = (0..CRITICAL_SPIKES as i64).map(|i| spike(p1, Pressure, 4.5, i * 5)).collect();
    let cases: Vec<(&str, Vec<Anomaly>, Vec<Condition>, Severity)> = vec![
        ("nothing", vec![], vec![], Severity::Normal),
        ("a drift that ended", vec![drift(p1, Flow, 111.0, 10, 16.0)], vec![], Severity::Caution),
        ("a dropout that ended", vec![dropout(p1, Flow, 50.0, 10)], vec![], Severity::Caution),
        ("one spike", vec![spike(p1, Pressure, 4.5, 10)], vec![], Severity::Alert),
        ("a drift in progress, no new anomaly", vec![], vec![drifting(p1, Flow, 111.0, -30)], Severity::Alert),
        (
            "spikes on one parameter of two sensors",
            vec![spike(p1, Pressure, 4.5, 1), spike("wtf-pipe-2", Flow, 130.0, 2)],
            vec![],
            Severity::Alert,
        ),
        ("one spike short of the limit", many_spikes[1..].to_vec(), vec![], Severity::Alert),
        ("a sensor silent now", vec![], vec![silent(p1, Flow, -20)], Severity::Critical),
        (
            "spikes on two parameters of one sensor",
            vec![spike(p1, Pressure, 4.5, 1), spike(p1, Flow, 130.0, 2)],
            vec![],
            Severity::Critical,
        ),
        ("the spike limit", many_spikes, vec![], Severity::Critical),
    ];
    for (case, anomalies, ongoing, expected) in cases {
        assert_eq!(facts(at(0), at(60), &anomalies, &ongoing).severity, expected, "{case}");
    }
}

pub(super) fn any_anomaly() -> impl Strategy<Value = Anomaly> {
    (0..3usize, 0..3usize, 0..3usize, 0..60i64).prop_map(|(sensor, parameter, kind, seconds)| {
        let sensor = ["s-1", "s-2", "s-3"][sensor];
        let parameter = PARAMETERS[parameter];
        match kind {
            0 => spike(sensor, parameter, spike_threshold(parameter) + 1.0, seconds),
            1 => drift(sensor, parameter, drift_threshold(parameter) + 1.0, seconds, 16.0),
            _ => dropout(sensor, parameter, 1.0, seconds),
        }
    })
}

pub(super) fn any_condition() -> impl Strategy<Value = Condition> {
    (0..3usize, 0..3usize, any::<bool>()).prop_map(|(sensor, parameter, is_silent)| {
        let sensor = ["s-1", "s-2", "s-3"][sensor];
        if is_silent {
            silent(sensor, PARAMETERS[parameter], 0)
        } else {
            drifting(sensor, PARAMETERS[parameter], 50.0, 0)
        }
    })
}

proptest! {
    #[test]
    fn severity_never_drops_when_anomalies_or_conditions_are_added(
        anomalies in prop::collection::vec(any_anomaly(), 0..20),
        ongoing in prop::collection::vec(any_condition(), 0..3),
        extra in any_anomaly(),
        extra_condition in any_condition(),
    ) {
        let before = facts(at(0), at(60), &anomalies, &ongoing).severity;
        let mut more = anomalies.clone();
        more.push(extra);
        prop_assert!(facts(at(0), at(60), &more, &ongoing).severity >= before);
        let mut more_ongoing = ongoing.clone();
        more_ongoing.push(extra_condition);
        prop_assert!(facts(at(0), at(60), &anomalies, &more_ongoing).severity >= before);
    }

    #[test]
    fn context_size_fits_the_request_and_never_exceeds_the_limit(
        prompt_chars in 0..20_000usize,
        max_tokens in 1..10_000u32,
        max_context in 1..200_000u32,
    ) {
        let prompt = Prompt { system: "s".repeat(prompt_chars / 3), user: "u".repeat(prompt_chars - prompt_chars / 3) };
        let needed = estimate_tokens(&prompt.system) + estimate_tokens(&prompt.user) + max_tokens;
        let size = context_size(&prompt, max_tokens, max_context);
        prop_assert!(size <= max_context);
        if needed + CONTEXT_MARGIN <= max_context {
            prop_assert!(size >= needed);
            prop_assert!(size % CONTEXT_STEP == 0 || size == max_context);
        } else {
            prop_assert_eq!(size, max_context);
        }
    }
}

#[test]
fn context_size_examples() {
    let prompt = Prompt { system: "x".repeat(300), user: "y".repeat(1_200) }; // 100 + 400 tokens
    assert_eq!(context_size(&prompt, 2048, 128_000), 2816); // 500 + 2048 + 256 = 2804, up to 11 × 256
    assert_eq!(context_size(&prompt, 2048, 2_000), 2_000);
    assert_eq!(context_size(&Prompt { system: String::new(), user: String::new() }, 1, 128_000), 512);
    assert_eq!(context_size(&prompt, u32::MAX, 128_000), 128_000);
    assert_eq!(estimate_tokens(""), 0);
    assert_eq!(estimate_tokens("abcde"), 2);
    assert_eq!(estimate_tokens("°C°C"), 2);
    assert_eq!(estimate_tokens("at 10:22:50"), 6 + 2, "a digit is a token; 5 other characters make 2");
}

/// `count` anomalies spread over many sensors, with conditions still in progress.
pub(super) fn flood(count: usize) -> Facts {
    let sensors = (count / 10).clamp(3, 1_000);
    let mut builder = FactsBuilder::new(at(0));
    for i in 0..count {
        let sensor = format!("wtf-pipe-{}", i % sensors + 1);
        let parameter = PARAMETERS[(i / 7) % 3];
        let seconds = (i % 180) as i64;
        let anomaly = match i % 3 {
            0 => spike(&sensor, parameter, spike_threshold(parameter) + (i % 97) as f64 / 10.0, seconds),
            1 => drift(&sensor, parameter, drift_threshold(parameter) + (i % 13) as f64 / 10.0, seconds, 16.0),
            _ => dropout(&sensor, parameter, 20.0, seconds),
        };
        builder.add(&anomaly);
    }
    let ongoing: Vec<Condition> = (0..sensors.min(40))
        .map(|i| {
            let sensor = format!("wtf-pipe-{}", i + 1);
            if i % 2 == 0 { silent(&sensor, Flow, 100) } else { drifting(&sensor, Temperature, 39.5, 120) }
        })
        .collect();
    builder.finish(at(180), &ongoing)
}

#[test]
fn the_prompt_stays_small_whatever_the_number_of_anomalies() {
    for count in [10, 1_000, 100_000] {
        let facts = flood(count);
        assert_eq!(facts.anomaly_count, count as u64);
        let prompt = form::prompt(&facts, &Form::new(&facts));
        let tokens = estimate_tokens(&prompt.system) + estimate_tokens(&prompt.user);
        println!("prompt for {count} anomalies over {} sensors: ~{tokens} tokens", facts.by_sensor.len());
        // The estimate is within a few per cent of Gemma 3's tokenizer (BENCHMARKS.md has the
        // model's own counts); the bound leaves room for that.
        assert!(tokens < 1_350, "{count} anomalies: {tokens} tokens");
        assert!(prompt.user.contains(&format!("Anomalies: {count} (")), "{}", prompt.user);
        assert!(prompt.user.contains("Severity: critical"));
    }
    let facts = flood(100_000);
    let prompt = form::prompt(&facts, &Form::new(&facts));
    assert!(prompt.user.contains("- and 992 more sensors with"), "{}", prompt.user);
    assert!(prompt.user.contains("more peaks") && prompt.user.contains("more conditions"), "{}", prompt.user);
}

#[test]
fn the_prompt_carries_the_facts_and_the_instructions() {
    let facts = busy_window();
    let prompt = form::prompt(&facts, &Form::new(&facts));
    for expected in [
        "Window: 2025-05-19 10:22:00 to 10:25:00 UTC",
        "Severity: critical",
        "Anomalies: 7 (2 spikes, 2 drifts, 3 dropouts)",
        "By parameter: flow 2, pressure 3, temperature 2",
        "First anomaly at 10:22:14, last at 10:24:50",
        "- wtf-pipe-1: 3 anomalies (2 spikes, 1 drift)",
        "- wtf-pipe-1 pressure: spike to 4.8 bar (threshold 4 bar) at 10:22:50",
        "- wtf-pipe-1 temperature: drift to 39.2 °C (threshold 38 °C) for 16 s at 10:22:20",
        "- wtf-pipe-2 silent since 10:23:29 (flow, temperature)",
        "- wtf-pipe-3 flow above its drift threshold since 10:24:34, now 113.1 L/min",
    ] {
        assert!(prompt.user.contains(expected), "missing {expected:?} in\n{}", prompt.user);
    }
    assert!(prompt.system.contains("Answer with JSON only"));
    for field in ["most_urgent:", "check_first:", "headline:"] {
        assert!(prompt.user.contains(field), "missing {field:?} in\n{}", prompt.user);
    }
}

#[test]
fn the_template_of_an_empty_window_says_no_anomalies_plainly() {
    let note = template(&facts(at(420), at(600), &[], &[]));
    assert_eq!(note, "No anomalies between 10:22:00 and 10:25:00 UTC. Severity: normal. No action needed.");
    let note = template(&facts(at(420), at(600), &[], &[silent("wtf-pipe-2", Flow, 300)]));
    assert!(note.starts_with("No anomalies between"), "{note}");
    assert!(note.contains("wtf-pipe-2 silent since 10:20:00 (flow)") && note.contains("Severity: critical"), "{note}");
}

#[test]
fn the_template_of_a_busy_window_gives_counts_peaks_severity_and_what_to_check() {
    let note = template(&busy_window());
    for expected in [
        "7 anomalies between 10:22:00 and 10:25:00 UTC (2 spikes, 2 drifts, 3 dropouts) on 3 sensors",
        "First at 10:22:14, last at 10:24:50.",
        "wtf-pipe-1 pressure: spike to 4.8 bar (threshold 4 bar) at 10:22:50",
        "Still in progress: wtf-pipe-2 silent since 10:23:29 (flow, temperature)",
        "Severity: critical.",
        "Check power and link of wtf-pipe-2 (no readings); then wtf-pipe-1 pressure on site",
    ] {
        assert!(note.contains(expected), "missing {expected:?} in\n{note}");
    }
    let ended = template(&facts(at(0), at(60), &[drift("wtf-pipe-1", Flow, 111.0, 10, 16.0)], &[]));
    assert!(
        ended.starts_with("1 anomaly between") && ended.contains("Severity: caution. The conditions have ended"),
        "{ended}"
    );
    let crowded = template(&flood(100_000));
    assert!(crowded.len() < 1_500, "{} characters:\n{crowded}", crowded.len());
    assert!(
        crowded.contains("Check power and link of wtf-pipe-1, wtf-pipe-11, wtf-pipe-13 and 17 more (no readings)"),
        "{crowded}"
    );
}

#[test]
fn the_template_is_grounded_in_its_own_facts() {
    let facts = busy_window();
    assert_eq!(
        check_grounded(&template(&facts), &facts, &sensors(&["wtf-pipe-1", "wtf-pipe-2", "wtf-pipe-3"])),
        Ok(())
    );
}

#[test]
fn clean_strips_reasoning_fences_labels_and_whitespace() {
    let cases = [
        ("  Pressure spiked.  \n", "Pressure spiked."),
        ("<think>the user wants a note</think>\nPressure spiked.", "Pressure spiked."),
        ("<THINK>a</THINK>Pressure <think>b</think>spiked.", "Pressure spiked."),
        ("Pressure spiked.<think>and now I will ramble", "Pressure spiked."),
        ("<think>never closed", ""),
        ("reasoning the template opened</think>\n\nPressure spiked.", "Pressure spiked."),
        ("```\nPressure spiked.\n```", "Pressure spiked."),
        ("```text\nSummary: Pressure spiked.\n```", "Pressure spiked."),
        ("**Summary:** Pressure spiked.", "Pressure spiked."),
        ("## Operator note:\nPressure spiked.", "Pressure spiked."),
        ("Summary of the window: pressure spiked.", "Summary of the window: pressure spiked."),
    ];
    for (output, expected) in cases {
        assert_eq!(clean(output), expected, "{output:?}");
    }
}

pub(super) const KNOWN: [&str; 3] = ["wtf-pipe-1", "wtf-pipe-2", "wtf-pipe-3"];

fn grounded(text: &str) -> Result<(), Ungrounded> {
    check_grounded(text, &busy_window(), &sensors(&KNOWN))
}

#[test]
fn a_faithful_text_is_accepted() {
    let text = "Between 10:22 and 10:25 UTC there were 7 anomalies. Pressure on WTF-pipe-1 spiked to 4.80 bar \
                (threshold 4 bar) at 10:22:50, and its temperature drifted to 39.2 °C for 16 s. wtf-pipe-2 has \
                been silent since 10:23:29, and wtf-pipe-3 flow is still above its drift threshold at 113.1 L/min. \
                Severity is critical: check wtf-pipe-2's power and link first, then inspect pressure on wtf-pipe-1.";
    assert_eq!(grounded(text), Ok(()));
    assert_eq!(grounded("On 2025-05-19, 3 sensors reported 2 spikes."), Ok(()));
}

#[test]
fn invented_sensors_are_refused() {
    assert_eq!(grounded("Pressure spiked on wtf-pipe-9."), Err(Ungrounded::UnknownSensor("wtf-pipe-9".into())));
    assert_eq!(grounded("Check pump_2 next."), Err(Ungrounded::UnknownSensor("pump_2".into())));
    // Configured, but not in these facts.
    let known = sensors(&["wtf-pipe-1", "intake"]);
    assert_eq!(
        check_grounded("Also check intake.", &busy_window(), &known),
        Err(Ungrounded::UnknownSensor("intake".into()))
    );
}

#[test]
fn unmeasured_or_absent_parameters_are_refused() {
    assert_eq!(grounded("The pH on wtf-pipe-1 rose."), Err(Ungrounded::UnknownParameter("ph".into())));
    assert_eq!(grounded("Turbidity is fine."), Err(Ungrounded::UnknownParameter("turbidity".into())));
    assert_eq!(grounded("Check chlorine dosing."), Err(Ungrounded::UnknownParameter("chlorine".into())));
    let only_pressure = facts(at(0), at(60), &[spike("wtf-pipe-1", Pressure, 4.5, 10)], &[]);
    let known = sensors(&KNOWN);
    assert_eq!(check_grounded("Pressure spiked to 4.5 bar on wtf-pipe-1.", &only_pressure, &known), Ok(()));
    assert_eq!(
        check_grounded("Pressure spiked to 4.5 bar; flow stayed normal.", &only_pressure, &known),
        Err(Ungrounded::UnknownParameter("flow".into()))
    );
}

#[test]
fn invented_numbers_and_times_are_refused() {
    assert_eq!(grounded("Pressure reached 5.2 bar."), Err(Ungrounded::UnknownNumber("5.2".into())));
    assert_eq!(grounded("Pressure rose 20% above its threshold."), Err(Ungrounded::UnknownNumber("20".into())));
    assert_eq!(grounded("It started at 10:23."), Ok(())); // 10:23:29 is in the facts
    assert_eq!(grounded("It started at 10:21."), Err(Ungrounded::UnknownNumber("10:21".into())));
    assert_eq!(grounded("It started at 10:22:15."), Err(Ungrounded::UnknownNumber("10:22:15".into())));
    assert_eq!(grounded("Temperature drifted to 39.3 °C."), Err(Ungrounded::UnknownNumber("39.3".into())));
    assert_eq!(grounded("There were 1,000 anomalies."), Err(Ungrounded::UnknownNumber("1,000".into())));
    // The digits of a sensor's name are not numbers, and H2O is a word.
    assert_eq!(grounded("wtf-pipe-3 reported H2O flow of 112.5 L/min."), Ok(()));
}

#[test]
fn empty_and_overlong_texts_are_refused() {
    assert_eq!(grounded(" \n "), Err(Ungrounded::Empty));
    let long = "Pressure spiked. ".repeat(100);
    assert_eq!(grounded(&long), Err(Ungrounded::TooLong(long.trim().chars().count())));
}

#[test]
fn facts_serialise_for_the_api() {
    let json = serde_json::to_value(busy_window()).expect("facts serialise");
    assert_eq!(json["severity"], "critical");
    assert_eq!(json["window_start"], "2025-05-19T10:22:00.000Z");
    assert_eq!(json["by_kind"]["dropout"], 3);
    assert_eq!(json["ongoing"][0]["condition"], "silent");
    assert!(serde_json::to_value(facts(at(0), at(60), &[], &[])).expect("serialise")["first_anomaly"].is_null());
}

#[test]
#[ignore = "prints sample texts for a reader; run with --ignored --nocapture"]
fn show_samples() {
    let facts = busy_window();
    let form = Form::new(&facts);
    println!(
        "{}\n---\n{}\n---\n{}\n---\n{}",
        form::prompt(&facts, &form).user,
        serde_json::to_string_pretty(&form::schema(&form)).unwrap_or_default(),
        template(&facts),
        template(&flood(100_000))
    );
}
