//! The recent summaries, newest last, where the summarizer's windows have got to, and its
//! backoff from a failing model: what a restarted summarizer must find.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::lock;
use crate::domain::Summary;

pub struct SummaryLog {
    recent: Mutex<VecDeque<Arc<Summary>>>,
    max: AtomicUsize,
    /// Bumped after every change, for the API's cached bodies and the mirror.
    version: AtomicU64,
    /// The journal sequence number of the last anomaly in a published summary's window, and that
    /// window's end: where a restarted summarizer carries on.
    summarized_through: Mutex<Option<(u64, DateTime<Utc>)>>,
    /// The summarizer's backoff from a failing model, kept here so that a summarizer restarted in
    /// a crash loop waits it out instead of calling the model at every start.
    llm_retry: Mutex<LlmRetry>,
}

/// When the summarizer may call the model again after failed calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LlmRetry {
    /// Failed calls in a row.
    pub failures: u32,
    /// Not before this; `None`: at the next window.
    pub after: Option<tokio::time::Instant>,
}

impl SummaryLog {
    pub fn new(max: usize) -> Self {
        Self {
            recent: Mutex::new(VecDeque::new()),
            max: AtomicUsize::new(max),
            version: AtomicU64::new(0),
            summarized_through: Mutex::new(None),
            llm_retry: Mutex::new(LlmRetry::default()),
        }
    }

    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    pub fn push(&self, summary: Arc<Summary>) {
        let max = self.max.load(Ordering::Relaxed);
        let mut recent = lock(&self.recent);
        recent.push_back(summary);
        while recent.len() > max {
            recent.pop_front();
        }
        drop(recent);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Puts back summaries restored from Redis at start (oldest first), merged by time with those
    /// held (several shards' summaries are restored in turn).
    pub fn restore(&self, restored: Vec<Summary>) {
        let max = self.max.load(Ordering::Relaxed);
        let mut recent = lock(&self.recent);
        let mut merged: Vec<Arc<Summary>> = recent.drain(..).chain(restored.into_iter().map(Arc::new)).collect();
        merged.sort_by_key(|summary| summary.timestamp);
        merged.dedup_by(|a, b| a.window_start == b.window_start && a.window_end == b.window_end);
        let excess = merged.len().saturating_sub(max);
        recent.extend(merged.into_iter().skip(excess));
        drop(recent);
        self.version.fetch_add(1, Ordering::Release);
    }

    pub fn latest(&self) -> Option<Arc<Summary>> {
        lock(&self.recent).back().cloned()
    }

    /// Recent summaries, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<Summary>> {
        lock(&self.recent).iter().rev().take(limit).cloned().collect()
    }

    /// Changes whenever a summary is added or restored.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Notes that the anomalies up to journal entry `seq` are in a published summary whose window
    /// closed at `window_end`: a restarted summarizer carries on from there.
    pub fn set_summarized_through(&self, seq: u64, window_end: DateTime<Utc>) {
        *lock(&self.summarized_through) = Some((seq, window_end));
    }

    pub fn summarized_through(&self) -> Option<(u64, DateTime<Utc>)> {
        *lock(&self.summarized_through)
    }

    pub fn llm_retry(&self) -> LlmRetry {
        *lock(&self.llm_retry)
    }

    pub fn set_llm_retry(&self, retry: LlmRetry) {
        *lock(&self.llm_retry) = retry;
    }
}
