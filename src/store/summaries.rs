//! The recent summaries, newest last, and where the summarizer's windows have got to.

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
}

impl SummaryLog {
    pub fn new(max: usize) -> Self {
        Self {
            recent: Mutex::new(VecDeque::new()),
            max: AtomicUsize::new(max),
            version: AtomicU64::new(0),
            summarized_through: Mutex::new(None),
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

    /// Puts back summaries restored from Redis at start (oldest first), unless newer ones exist.
    pub fn restore(&self, restored: Vec<Summary>) {
        let mut recent = lock(&self.recent);
        if !recent.is_empty() {
            return;
        }
        recent.extend(restored.into_iter().map(Arc::new));
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

    /// Notes that the anomalies up to journal entry `seq` are in a window that closed at
    /// `window_end`.
    pub fn set_summarized_through(&self, seq: u64, window_end: DateTime<Utc>) {
        *lock(&self.summarized_through) = Some((seq, window_end));
    }

    pub fn summarized_through(&self) -> Option<(u64, DateTime<Utc>)> {
        *lock(&self.summarized_through)
    }
}
