use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::summary::tests::{
    Flow, KNOWN, Pressure, Temperature, any_anomaly, any_condition, at, busy_window, drift, dropout, flood, sensors,
    silent, spike,
};
use crate::summary::{Severity, facts};

/// The window of the false notes: 15 spikes on three sensors, 6 of them on wtf-pipe-1 up to
/// 5.12 bar, severity critical.
fn fifteen_spikes() -> Facts {
    let mut anomalies = Vec::new();
    for i in 0..6 {
        anomalies.push(spike("wtf-pipe-1", Pressure, 4.2 + f64::from(i) * 0.184, i64::from(i) * 7));
    }
    for i in 0..5 {
        anomalies.push(spike("wtf-pipe-2", Flow, 121.0 + f64::from(i), 50 + i64::from(i) * 5));
    }
    for i in 0..4 {
        anomalies.push(spike("wtf-pipe-3", Temperature, 45.5 + f64::from(i), 80 + i64::from(i) * 5));
    }
    facts(at(0), at(120), &anomalies, &[])
}

/// An answer that fills in the form with the given values.
fn answer(most_urgent: &str, check_first: &str, headline: &str) -> String {
    json!({"most_urgent": most_urgent, "check_first": check_first, "headline": headline}).to_string()
}

/// The first valid answer of a form.
fn first_answer(form: &Form) -> String {
    let finding = &form.choices()[0];
    answer(&finding.id, &finding.actions[0].id, &form.headlines[0])
}

#[test]
fn the_busy_window_offers_its_silent_sensor_as_the_most_urgent_and_lists_the_rest() {
    let form = Form::new(&busy_window());
    let ids: Vec<(&str, u8)> = form.findings.iter().map(|finding| (finding.id.as_str(), finding.rank)).collect();
    assert_eq!(
        ids,
        [
            ("silent wtf-pipe-2", 0),
            ("spike wtf-pipe-1 pressure", 1),
            ("drifting wtf-pipe-3 flow", 2),
            ("drift wtf-pipe-1 temperature", 3),
            // wtf-pipe-3's flow drift is still in progress: it is the `drifting` finding only.
        ]
    );
    // Ranking is the daemon's: only the silent sensor may be chosen as the most urgent.
    assert_eq!(form.choices().len(), 1);
    assert_eq!(form.findings[0].line, "wtf-pipe-2 silent since 10:23:29 (flow, temperature)");
    assert_eq!(
        form.headlines,
        [
            "7 anomalies on 3 sensors between 10:22 and 10:25 UTC",
            "Severity critical: 2 spikes, 2 drifts, 3 dropouts",
            "wtf-pipe-2 has stopped reporting",
        ]
    );
}

#[test]
fn the_schema_is_an_object_of_three_enums_built_from_the_facts_in_the_order_asked() {
    let form = Form::new(&busy_window());
    let schema = serde_json::to_value(schema(&form)).expect("serialises");
    assert_eq!(
        schema,
        json!({
            "type": "object",
            "properties": {
                "most_urgent": {"type": "string", "enum": ["silent wtf-pipe-2"]},
                "check_first": {"type": "string", "enum": ["power_link", "on_site"]},
                "headline": {"type": "string", "enum": form.headlines},
            },
            "required": ["most_urgent", "check_first", "headline"],
            "additionalProperties": false,
        })
    );
    let text = serde_json::to_string(&self::schema(&form)).expect("serialises");
    let position = |key: &str| text.find(key).unwrap_or(usize::MAX);
    assert!(position("most_urgent") < position("check_first") && position("check_first") < position("headline"));
}

#[test]
fn a_drift_still_in_progress_is_never_said_to_have_ended() {
    let facts = facts(
        at(0),
        at(60),
        &[drift("wtf-pipe-1", Temperature, 42.91, 40, 16.0)],
        &[crate::summary::tests::drifting("wtf-pipe-1", Temperature, 42.55, 24)],
    );
    let form = Form::new(&facts);
    let ids: Vec<&str> = form.findings.iter().map(|finding| finding.id.as_str()).collect();
    assert_eq!(ids, ["drifting wtf-pipe-1 temperature"]);
    for text in every_answer(&form) {
        let note = note_from_answer(&text, &facts, &form, &[]).expect("accepted");
        assert!(!note.contains("ended"), "{note}");
    }
}

#[test]
fn a_window_with_nothing_offers_only_no_action() {
    let quiet = facts(at(420), at(600), &[], &[]);
    let form = Form::new(&quiet);
    assert_eq!(form.choices().len(), 1);
    assert_eq!(form.choices()[0].id, "none");
    let note = note_from_answer(&first_answer(&form), &quiet, &form, &sensors(&KNOWN)).expect("accepted");
    assert_eq!(
        note,
        "No anomalies between 10:22 and 10:25 UTC. Most urgent: nothing needs attention. Check first: nothing: no \
         action needed. No anomalies between 10:22:00 and 10:25:00 UTC. Severity: normal."
    );
}

#[test]
fn a_filled_in_form_becomes_a_note_in_the_daemons_words() {
    let facts = busy_window();
    let form = Form::new(&facts);
    let text = answer("silent wtf-pipe-2", "power_link", "wtf-pipe-2 has stopped reporting");
    let note = note_from_answer(&text, &facts, &form, &sensors(&KNOWN)).expect("accepted");
    assert_eq!(
        note,
        "wtf-pipe-2 has stopped reporting. Most urgent: wtf-pipe-2 silent since 10:23:29 (flow, temperature). Check \
         first: the power supply and network link of wtf-pipe-2, which sends no readings. In all, 7 anomalies \
         between 10:22:00 and 10:25:00 UTC (2 spikes, 2 drifts, 3 dropouts) on 3 sensors. Also: wtf-pipe-1 \
         pressure: spike to 4.8 bar (threshold 4 bar) at 10:22:50; wtf-pipe-3 flow above its drift threshold since \
         10:24:34, now 113.1 L/min; and more. Severity: critical."
    );
}

#[test]
fn two_silent_sensors_are_both_choices_and_every_check_offered_fits_either() {
    let facts = facts(
        at(0),
        at(60),
        &[dropout("wtf-pipe-1", Flow, 50.0, 20)],
        &[silent("wtf-pipe-1", Flow, 9), silent("wtf-pipe-2", Flow, 12)],
    );
    let form = Form::new(&facts);
    let ids: Vec<&str> = form.choices().iter().map(|finding| finding.id.as_str()).collect();
    assert_eq!(ids, ["silent wtf-pipe-1", "silent wtf-pipe-2"]);
    let known = sensors(&KNOWN);
    let text = answer("silent wtf-pipe-2", "power_link", "wtf-pipe-2 has stopped reporting");
    let note = note_from_answer(&text, &facts, &form, &known).expect("accepted");
    assert!(note.contains("Check first: the power supply and network link of wtf-pipe-2,"), "{note}");
    assert!(note.contains("Also: wtf-pipe-1 silent since"), "{note}");
}

#[test]
fn a_check_of_another_rank_does_not_fit_the_condition() {
    let facts = busy_window();
    let form = Form::new(&facts);
    // `compare` is a check for a spike; the choice is a silent sensor.
    let text = answer("silent wtf-pipe-2", "compare", &form.headlines[0]);
    assert_eq!(note_from_answer(&text, &facts, &form, &sensors(&KNOWN)).map_err(|r| r.kind()), Err("unknown_choice"));
    let other_choice = Form { choices: 2, ..form.clone() };
    assert_eq!(
        read_answer(&answer("silent wtf-pipe-2", "compare", &form.headlines[0]), &other_choice),
        Err(Refusal::MismatchedAction { action: "compare".into(), finding: "silent wtf-pipe-2".into() })
    );
}

#[test]
fn answers_that_are_not_the_form_are_refused_with_the_reason() {
    let facts = busy_window();
    let form = Form::new(&facts);
    let known = sensors(&KNOWN);
    let refused = |text: &str| note_from_answer(text, &facts, &form, &known).map_err(|refusal| refusal.kind());
    assert_eq!(refused("wtf-pipe-2 is silent; check it."), Err("not_json"));
    assert_eq!(refused("{\"most_urgent\": \"silent wtf-pipe-2\", "), Err("not_json"));
    assert_eq!(refused(""), Err("not_json"));
    assert_eq!(refused("[\"silent wtf-pipe-2\"]"), Err("off_schema"));
    assert_eq!(refused("{\"most_urgent\": \"silent wtf-pipe-2\", \"check_first\": \"on_site\"}"), Err("off_schema"));
    let extra = json!({"most_urgent": "silent wtf-pipe-2", "check_first": "on_site",
        "headline": form.headlines[0], "remark": "all fine"});
    assert_eq!(refused(&extra.to_string()), Err("off_schema"));
    let not_string = json!({"most_urgent": 1, "check_first": "on_site", "headline": form.headlines[0]});
    assert_eq!(refused(&not_string.to_string()), Err("off_schema"));
    // Known ids, but not among the choices: a spike is not the most urgent while a sensor is silent.
    assert_eq!(refused(&answer("spike wtf-pipe-1 pressure", "on_site", &form.headlines[0])), Err("unknown_choice"));
    assert_eq!(refused(&answer("silent wtf-pipe-9", "on_site", &form.headlines[0])), Err("unknown_choice"));
    assert_eq!(refused(&answer("silent wtf-pipe-2", "evacuate", &form.headlines[0])), Err("unknown_choice"));
    assert_eq!(refused(&answer("silent wtf-pipe-2", "on_site", "All quiet")), Err("unknown_choice"));
    // Case and spacing are part of the choice.
    assert_eq!(refused(&answer("Silent wtf-pipe-2", "on_site", &form.headlines[0])), Err("unknown_choice"));
    // A fenced answer from a model that ignored `format` is still the form.
    assert!(refused(&format!("```json\n{}\n```", first_answer(&form))).is_ok());
}

/// The notes a fake model got published as `llm_summarizer` before answers were forms.
pub(crate) const FALSE_NOTES: [&str; 7] = [
    "All sensors are operating normally. No anomalies were detected. Severity: normal. No action needed.",
    "wtf-pipe-1 is healthy and reported no spikes",
    "Only 3 anomalies occurred, and pressure stayed below 4 bar",
    "Sensor wtf-pipe-3 reported flow 15 L/min",
    "URGENT: a chemical leak was detected. Evacuate the plant",
    "E. coli was found",
    "<script>alert(1)</script> [click here](http://evil.example/login)",
];

#[test]
fn every_false_note_is_refused_as_an_answer_and_as_any_field_of_the_form() {
    let facts = fifteen_spikes();
    assert_eq!((facts.anomaly_count, facts.severity), (15, Severity::Critical));
    let form = Form::new(&facts);
    let known = sensors(&KNOWN);
    let finding = &form.choices()[0];
    for note in FALSE_NOTES {
        assert_eq!(note_from_answer(note, &facts, &form, &known).map_err(|r| r.kind()), Err("not_json"), "{note}");
        for text in [
            answer(note, &finding.actions[0].id, &form.headlines[0]),
            answer(&finding.id, note, &form.headlines[0]),
            answer(&finding.id, &finding.actions[0].id, note),
        ] {
            assert_eq!(
                note_from_answer(&text, &facts, &form, &known).map_err(|r| r.kind()),
                Err("unknown_choice"),
                "{text}"
            );
        }
    }
}

#[test]
fn the_final_check_refuses_markup_other_severities_and_claims_no_sensor_supports() {
    let facts = fifteen_spikes();
    let known = sensors(&KNOWN);
    let check = |text: &str| check_grounded(text, &facts, &known);
    assert_eq!(check(FALSE_NOTES[0]), Err(Ungrounded::WrongSeverity("normally".into())));
    assert_eq!(check(FALSE_NOTES[1]), Err(Ungrounded::WrongSeverity("healthy".into())));
    assert_eq!(check(FALSE_NOTES[4]), Err(Ungrounded::UnsupportedClaim("chemical".into())));
    assert_eq!(check(FALSE_NOTES[5]), Err(Ungrounded::UnsupportedClaim("coli".into())));
    assert_eq!(check(FALSE_NOTES[6]), Err(Ungrounded::Markup("<".into())));
    assert_eq!(check("See http//evil.example or www.evil.example"), Err(Ungrounded::Markup("www.".into())));
    assert_eq!(check("**Severity: critical**"), Ok(()), "emphasis stars carry no claim and no link");
    assert_eq!(check("Severity: critical. Check wtf-pipe-1 pressure on site."), Ok(()));
}

#[test]
fn the_issue_window_leads_with_its_spikes_and_quotes_only_its_numbers() {
    let facts = fifteen_spikes();
    let form = Form::new(&facts);
    let ids: Vec<&str> = form.choices().iter().map(|finding| finding.id.as_str()).collect();
    // Spikes first, furthest above their threshold first: 5.12 bar is 28 % above 4.
    assert_eq!(ids, ["spike wtf-pipe-1 pressure", "spike wtf-pipe-3 temperature", "spike wtf-pipe-2 flow"]);
    let note = note_from_answer(&first_answer(&form), &facts, &form, &sensors(&KNOWN)).expect("accepted");
    assert!(
        note.starts_with(
            "15 anomalies on 3 sensors between 10:15 and 10:17 UTC. Most urgent: wtf-pipe-1 pressure: spike to 5.12 bar"
        ),
        "{note}"
    );
    assert!(note.ends_with("Severity: critical."), "{note}");
}

/// Every answer the schema allows, read from the schema itself.
fn every_answer(form: &Form) -> Vec<String> {
    let schema = serde_json::to_value(schema(form)).expect("serialises");
    let choices = |field: &str| -> Vec<String> {
        let values = schema["properties"][field]["enum"].as_array().cloned().unwrap_or_default();
        values.iter().filter_map(|value| value.as_str().map(str::to_owned)).collect()
    };
    let mut answers = Vec::new();
    for most_urgent in choices("most_urgent") {
        for check_first in choices("check_first") {
            for headline in choices("headline") {
                answers.push(answer(&most_urgent, &check_first, &headline));
            }
        }
    }
    answers
}

/// No answer the grammar lets through is refused: the model cannot be wrong, only choose.
#[test]
fn every_answer_the_schema_allows_renders_a_grounded_plain_note() {
    let windows = [
        busy_window(),
        fifteen_spikes(),
        flood(100_000),
        flood(10),
        facts(at(0), at(60), &[], &[]),
        facts(at(0), at(60), &[], &[silent("wtf-pipe-2", Flow, -40)]),
        facts(at(0), at(60), &[drift("wtf-pipe-1", Flow, 111.0, 10, 16.0)], &[]),
    ];
    for facts in windows {
        let form = Form::new(&facts);
        let known: Vec<SensorId> = facts.by_sensor.iter().map(|sensor| sensor.sensor_id.clone()).collect();
        for text in every_answer(&form) {
            let note = note_from_answer(&text, &facts, &form, &known);
            let note = note.unwrap_or_else(|refusal| panic!("{text} refused: {refusal}"));
            assert!(note.chars().count() <= MAX_SUMMARY_CHARS, "{note}");
            assert!(note.contains(&format!("Severity: {}.", facts.severity)), "{note}");
        }
    }
}

proptest! {
    #[test]
    fn any_window_gives_a_form_whose_every_answer_is_grounded(
        anomalies in prop::collection::vec(any_anomaly(), 0..30),
        ongoing in prop::collection::vec(any_condition(), 0..4),
    ) {
        let facts = facts(at(0), at(60), &anomalies, &ongoing);
        let form = Form::new(&facts);
        prop_assert!(!form.choices().is_empty() && form.findings.len() <= LISTED);
        let top = form.findings[0].rank;
        prop_assert!(form.findings.iter().all(|finding| finding.rank >= top));
        prop_assert!(form.choices().iter().all(|finding| finding.rank == top));
        let schema: Value = serde_json::to_value(schema(&form)).expect("serialises");
        prop_assert_eq!(schema["properties"]["most_urgent"]["enum"].as_array().map(Vec::len), Some(form.choices().len()));
        for text in every_answer(&form) {
            let note = note_from_answer(&text, &facts, &form, &[]);
            prop_assert!(note.is_ok(), "{} refused: {:?}", text, note);
        }
    }
}
