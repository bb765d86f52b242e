//! The hot pure paths: one detector step, one simulator step, serialising an anomaly, and the
//! summary facts over 100,000 anomalies. `cargo bench --bench hot_paths`.

use std::hint::black_box;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use wtf_monitor::config::Config;
use wtf_monitor::detection::{ParameterDetector, Rules};
use wtf_monitor::domain::{Anomaly, AnomalyKind, EpisodeKey, Parameter};
use wtf_monitor::simulation::{SensorSimulator, SimulationSettings};
use wtf_monitor::summary::{self, FactsBuilder, Form, form};

fn detector_step(c: &mut Criterion) {
    let start = Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap();
    let rules = Rules::for_sensor(&Config::default(), "wtf-pipe-1", "pressure");
    c.bench_function("detector step, normal reading", |b| {
        let mut detector = ParameterDetector::new("wtf-pipe-1".into(), Parameter::new("pressure"));
        let mut at = start;
        b.iter(|| {
            at += TimeDelta::milliseconds(1);
            black_box(detector.observe(&rules, at, black_box(2.1), at)).ok();
        });
    });
    c.bench_function("detector step, a spike every other reading", |b| {
        let mut detector = ParameterDetector::new("wtf-pipe-1".into(), Parameter::new("pressure"));
        let mut at = start;
        let mut high = false;
        b.iter(|| {
            at += TimeDelta::milliseconds(1);
            high = !high;
            let value = if high { 4.5 } else { 2.0 };
            black_box(detector.observe(&rules, at, black_box(value), at)).ok();
        });
    });
}

fn simulator_step(c: &mut Criterion) {
    let settings = SimulationSettings::from_config(&Config::default(), "wtf-pipe-1");
    let mut simulator = SensorSimulator::new("wtf-pipe-1".into(), 42, settings);
    let mut at = Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap();
    c.bench_function("simulator step", |b| {
        b.iter(|| {
            at += TimeDelta::seconds(1);
            black_box(simulator.step(at));
        });
    });
}

fn sample_anomalies(count: usize) -> Vec<Anomaly> {
    let start = Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap();
    let config = Config::default();
    (0..count)
        .map(|i| {
            let kind = AnomalyKind::ALWAYS[i % 3];
            let parameter = ["temperature", "pressure", "flow"][(i / 3) % 3];
            let sensor = format!("wtf-pipe-{}", i % 1000);
            let duration = (kind != AnomalyKind::Spike).then_some(16.0);
            let at = start + TimeDelta::milliseconds(i as i64);
            let episode =
                EpisodeKey { sensor_id: sensor.as_str().into(), parameter: parameter.into(), kind, started: at };
            Anomaly::new(&episode, at, Some(4.5), 4.0, duration, &config.wording(parameter))
        })
        .collect()
}

fn anomaly_serialisation(c: &mut Criterion) {
    let anomalies = sample_anomalies(50);
    c.bench_function("serialise one anomaly", |b| b.iter(|| black_box(serde_json::to_vec(&anomalies[0]).ok())));
    c.bench_function("serialise 50 anomalies (one /anomalies body)", |b| {
        b.iter(|| black_box(serde_json::to_vec(&anomalies).ok()))
    });
}

fn summary_facts(c: &mut Criterion) {
    let anomalies = sample_anomalies(100_000);
    let start = anomalies[0].timestamp;
    let end = anomalies[anomalies.len() - 1].timestamp;
    let mut group = c.benchmark_group("summary");
    group.sample_size(20);
    group.bench_function("facts over 100,000 anomalies", |b| {
        b.iter(|| {
            let mut builder = FactsBuilder::new(start);
            for anomaly in &anomalies {
                builder.add(anomaly);
            }
            black_box(builder.finish(end, &[]))
        })
    });
    let facts = summary::facts(start, end, &anomalies, &[]);
    group.bench_function("prompt from the facts of 100,000 anomalies", |b| {
        b.iter(|| {
            let form = Form::new(&facts);
            black_box((form::prompt(&facts, &form), form::schema(&form)))
        })
    });
    // The summarizer adds anomalies to its window as they arrive; at the window's end only this
    // remains before the summary is stored (or the model is asked).
    let mut window = FactsBuilder::new(start);
    for anomaly in &anomalies {
        window.add(anomaly);
    }
    group.bench_function("window end to summary text (finish, prompt, template), 100,000 anomalies", |b| {
        b.iter(|| {
            let facts = window.finish(end, &[]);
            let form = Form::new(&facts);
            black_box((form::prompt(&facts, &form), form::schema(&form), summary::template(&facts)))
        })
    });
    group.finish();
}

criterion_group!(benches, detector_step, simulator_step, anomaly_serialisation, summary_facts);
criterion_main!(benches);
