use chrono::{TimeDelta, TimeZone};

use super::*;
use crate::config::{Config, UnknownSensors};
use crate::domain::Values;

fn opening() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap()
}

fn ingress_with(edit: impl FnOnce(&mut Config)) -> Ingress {
    let mut config = Config::default();
    edit(&mut config);
    let ingress = Ingress::new(&config, Clock::starting_at(opening()));
    for id in &config.sensors.ids {
        ingress.add_sensor(&SensorId::new(id));
    }
    ingress
}

fn reading(sensor: &str, seconds: i64, values: &[(&str, f64)]) -> Reading {
    Reading {
        sensor_id: sensor.into(),
        timestamp: opening() + TimeDelta::seconds(seconds),
        values: values.iter().map(|(name, value)| (Parameter::new(name), *value)).collect::<Values>(),
    }
}

fn queued(ingress: &Ingress, sensor: &str, parameter: &str) -> usize {
    ingress.lane(sensor).and_then(|lane| lane.inbox(parameter)).map_or(0, |inbox| inbox.lock().queued())
}

#[test]
fn a_partial_reading_reaches_only_its_parameters() {
    let ingress = ingress_with(|_| {});
    ingress.submit(Source::Http, reading("wtf-pipe-1", -5, &[("flow", 61.5)])).unwrap();
    assert_eq!(queued(&ingress, "wtf-pipe-1", "flow"), 1);
    assert_eq!(queued(&ingress, "wtf-pipe-1", "pressure"), 0);
    let last = ingress.lane("wtf-pipe-1").unwrap().last_reading().unwrap();
    assert_eq!(last.value("flow"), Some(61.5));
    assert_eq!(ingress.stats.accepted(Source::Http), 1);
}

#[test]
fn readings_are_refused_with_a_reason_naming_what_was_wrong() {
    let ingress = ingress_with(|_| {});
    let cases = [
        (reading("pump-9", 0, &[("flow", 1.0)]), Reason::UnknownSensor),
        (reading("wtf-pipe-1", 0, &[]), Reason::NoValues),
        (reading("wtf-pipe-1", 0, &[("flow", f64::NAN)]), Reason::NotFinite),
        (reading("wtf-pipe-1", 0, &[("humidity", 40.0)]), Reason::UnknownParameter),
        (reading("wtf-pipe-1", 6, &[("flow", 1.0)]), Reason::Future),
    ];
    for (reading, reason) in cases {
        let refusal = ingress.submit(Source::Http, reading.clone()).unwrap_err();
        assert_eq!(refusal.reason(), reason, "{reading:?}: {refusal}");
    }
    let unknown = ingress.submit(Source::Http, reading("pump-9", 0, &[("flow", 1.0)])).unwrap_err();
    assert!(unknown.to_string().contains("\"pump-9\""), "{unknown}");
    let status = ingress.status();
    assert_eq!(status.refused[&Source::Http], 6);
    assert_eq!(status.last_refusal.unwrap().reason, Reason::UnknownSensor);
    assert_eq!(queued(&ingress, "wtf-pipe-1", "flow"), 0, "nothing refused was queued");
}

#[test]
fn a_timestamp_up_to_the_skew_ahead_is_taken_and_one_further_is_not() {
    let ingress = ingress_with(|_| {});
    assert!(ingress.submit(Source::Http, reading("wtf-pipe-1", 5, &[("flow", 1.0)])).is_ok());
    let future = ingress.submit(Source::Http, reading("wtf-pipe-2", 60, &[("flow", 1.0)])).unwrap_err();
    assert!(future.to_string().contains("ms ahead of the clock"), "{future}");
}

#[test]
fn a_reading_at_or_before_the_last_of_its_parameters_is_refused() {
    let ingress = ingress_with(|_| {});
    ingress.submit(Source::Http, reading("wtf-pipe-1", 0, &[("flow", 1.0), ("pressure", 2.0)])).unwrap();
    let again = ingress.submit(Source::Http, reading("wtf-pipe-1", 0, &[("flow", 1.0)])).unwrap_err();
    assert_eq!(again.reason(), Reason::OutOfOrder);
    // Per parameter: a temperature at the same instant is new.
    ingress.submit(Source::Mqtt, reading("wtf-pipe-1", 0, &[("temperature", 20.0)])).unwrap();
    // All or nothing: the flow is new, the pressure is not, so neither is taken.
    let mixed = ingress.submit(Source::Http, reading("wtf-pipe-1", -1, &[("flow", 1.0), ("pressure", 2.0)]));
    assert!(mixed.is_err());
    assert_eq!(queued(&ingress, "wtf-pipe-1", "flow"), 1);
}

#[test]
fn a_full_queue_refuses_rather_than_grows() {
    let ingress = ingress_with(|config| config.ingest.queue_capacity = 16);
    for second in 0..16 {
        ingress.submit(Source::Http, reading("wtf-pipe-1", second - 20, &[("flow", 1.0)])).unwrap();
    }
    let refusal = ingress.submit(Source::Http, reading("wtf-pipe-1", -1, &[("flow", 1.0)])).unwrap_err();
    assert!(matches!(refusal, Refusal::Full { .. }));
    assert!(refusal.is_transient());
    assert_eq!(queued(&ingress, "wtf-pipe-1", "flow"), 16);
    // Another sensor is not held up by this one.
    assert!(ingress.submit(Source::Http, reading("wtf-pipe-2", 0, &[("flow", 1.0)])).is_ok());
}

#[test]
fn unknown_sensors_register_when_asked_up_to_the_maximum() {
    let ingress = ingress_with(|config| {
        config.ingest.unknown_sensors = UnknownSensors::Register;
        config.ingest.max_sensors = 4;
    });
    let registered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&registered);
    ingress.set_registrar(Box::new(move |lane| seen.lock().unwrap().push(lane.id.to_string())));
    ingress.submit(Source::Http, reading("meter-7", 0, &[("flow", 1.0)])).unwrap();
    assert_eq!(*registered.lock().unwrap(), ["meter-7"]);
    assert!(ingress.lane("meter-7").unwrap().registered);
    assert_eq!(queued(&ingress, "meter-7", "flow"), 1, "queued before its detectors even start");
    let full = ingress.submit(Source::Http, reading("meter-8", 0, &[("flow", 1.0)])).unwrap_err();
    assert_eq!(full.reason(), Reason::TooManySensors);
    assert_eq!(ingress.sensor_count(), 4);
}

#[test]
fn sensor_ids_that_differ_only_in_case_are_refused() {
    let ingress = ingress_with(|config| config.ingest.unknown_sensors = UnknownSensors::Register);
    let refusal = ingress.submit(Source::Http, reading("WTF-PIPE-1", 0, &[("flow", 1.0)])).unwrap_err();
    assert!(matches!(refusal, Refusal::CaseConflict { .. }), "{refusal}");
    assert!(refusal.to_string().contains("wtf-pipe-1"));
}

#[test]
fn a_closed_ingress_refuses_everything() {
    let ingress = ingress_with(|_| {});
    ingress.close();
    let refusal = ingress.submit(Source::Http, reading("wtf-pipe-1", 0, &[("flow", 1.0)])).unwrap_err();
    assert_eq!(refusal, Refusal::ShuttingDown);
}

#[test]
fn a_batch_is_queued_whole_or_not_at_all() {
    let ingress = ingress_with(|config| config.ingest.queue_capacity = 16);
    let lane = ingress.lane("wtf-pipe-1").unwrap();
    let batch: Vec<Reading> = (0..10).map(|second| reading("wtf-pipe-1", second - 30, &[("flow", 1.0)])).collect();
    ingress.submit_batch(Source::Simulator, &lane, &batch).unwrap();
    let too_many: Vec<Reading> = (10..20).map(|second| reading("wtf-pipe-1", second - 30, &[("flow", 1.0)])).collect();
    assert!(matches!(ingress.submit_batch(Source::Simulator, &lane, &too_many), Err(Refusal::Full { .. })));
    assert_eq!(queued(&ingress, "wtf-pipe-1", "flow"), 10);
    assert_eq!(ingress.stats.accepted(Source::Simulator), 10);
}

#[test]
fn refusal_messages_never_echo_much() {
    let ingress = ingress_with(|_| {});
    let long = "p".repeat(5000);
    let refusal = ingress.submit(Source::Http, reading("wtf-pipe-1", 0, &[(long.as_str(), 1.0)])).unwrap_err();
    assert!(refusal.to_string().len() < 200, "{refusal}");
}
