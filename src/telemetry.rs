//! Counters kept for `GET /metrics/prometheus` that no other part of the store already holds:
//! anomalies raised and cleared since start by type and parameter, summaries by who wrote them,
//! how long each call to the model took, and the MQTT source's connection.
//!
//! Everything else the exposition shows is read at scrape time from where it already lives (the
//! ingress's counts, [`crate::health`], the alarm book, the journal), so nothing is counted twice.
//!
//! Hooks for other parts of the daemon, each one call:
//!
//! - the summarizer calls [`Telemetry::llm_request_finished`] after every model call;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;

use crate::domain::{AnomalyKind, Parameter, SummaryAuthor};
use crate::store::lock;

/// Upper bounds of the model-latency buckets, in seconds: a warm 1B model answers in about a
/// second on CPU, a cold start takes up to a minute, `llm.timeout` cuts at two.
const LLM_BUCKETS: [f64; 11] = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0];

pub struct Telemetry {
    raised: Mutex<BTreeMap<(AnomalyKind, Parameter), u64>>,
    cleared: Mutex<BTreeMap<(AnomalyKind, Parameter), u64>>,
    summaries_by_llm: AtomicU64,
    summaries_by_fallback: AtomicU64,
    llm_request_duration: Histogram,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            raised: Mutex::default(),
            cleared: Mutex::default(),
            summaries_by_llm: AtomicU64::new(0),
            summaries_by_fallback: AtomicU64::new(0),
            llm_request_duration: Histogram::new(LLM_BUCKETS),
        }
    }
}

impl Telemetry {
    /// An anomaly was raised (the store calls this as it records one).
    pub(crate) fn anomaly_raised(&self, kind: AnomalyKind, parameter: &Parameter) {
        *lock(&self.raised).entry((kind, parameter.clone())).or_default() += 1;
    }

    /// An episode ended.
    pub(crate) fn anomaly_cleared(&self, kind: AnomalyKind, parameter: &Parameter) {
        *lock(&self.cleared).entry((kind, parameter.clone())).or_default() += 1;
    }

    pub(crate) fn summary_published(&self, author: SummaryAuthor) {
        let counter = match author {
            SummaryAuthor::LlmSummarizer => &self.summaries_by_llm,
            SummaryAuthor::Fallback => &self.summaries_by_fallback,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A call to the model ended after `elapsed`, whatever its outcome.
    pub fn llm_request_finished(&self, elapsed: Duration) {
        self.llm_request_duration.observe(elapsed.as_secs_f64());
    }

    /// Anomalies raised since start, by type and parameter.
    pub fn raised(&self) -> BTreeMap<(AnomalyKind, Parameter), u64> {
        lock(&self.raised).clone()
    }

    /// Episodes cleared since start, by type and parameter.
    pub fn cleared(&self) -> BTreeMap<(AnomalyKind, Parameter), u64> {
        lock(&self.cleared).clone()
    }

    /// Summaries published since start: by the model, by the template.
    pub fn summaries(&self) -> [(SummaryAuthor, u64); 2] {
        [
            (SummaryAuthor::LlmSummarizer, self.summaries_by_llm.load(Ordering::Relaxed)),
            (SummaryAuthor::Fallback, self.summaries_by_fallback.load(Ordering::Relaxed)),
        ]
    }

    pub fn llm_request_duration(&self) -> &Histogram {
        &self.llm_request_duration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_totals_since_start_by_type_and_parameter() {
        let telemetry = Telemetry::default();
        let pressure = Parameter::new("pressure");
        telemetry.anomaly_raised(AnomalyKind::Spike, &pressure);
        telemetry.anomaly_raised(AnomalyKind::Spike, &pressure);
        telemetry.anomaly_raised(AnomalyKind::Drift, &Parameter::new("flow"));
        telemetry.anomaly_cleared(AnomalyKind::Spike, &pressure);
        assert_eq!(telemetry.raised().get(&(AnomalyKind::Spike, pressure.clone())), Some(&2));
        assert_eq!(telemetry.raised().len(), 2);
        assert_eq!(telemetry.cleared().get(&(AnomalyKind::Spike, pressure)), Some(&1));
        telemetry.summary_published(SummaryAuthor::Fallback);
        assert_eq!(telemetry.summaries()[1], (SummaryAuthor::Fallback, 1));
    }
}
