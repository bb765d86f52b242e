//! The recent readings of one sensor × parameter, for trend charts (`GET /readings`): plain data,
//! kept in the detector's inbox beside its episode state, so recording a value takes no lock of
//! its own.
//!
//! Two tiers, each a bounded ring:
//!
//! - **recent**: every value as it was read, for the last `history.recent` (1 h by default) —
//!   as many points as that many readings at `sensors.interval`, at most;
//! - **minutes**: one bucket a minute for `history.minutes` (24 h), each with the minute's last
//!   value, its minimum and its maximum, so a spike shows on a day's chart however it is drawn.
//!
//! A query takes the recent tier where it reaches back far enough and the minute buckets before
//! that, then merges neighbours until at most `max_points` are left, keeping each merged
//! point's min and max.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// How many points each tier keeps, from the configuration and the memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryBounds {
    pub recent: usize,
    pub minutes: usize,
}

impl HistoryBounds {
    /// Bytes one series takes at most with these bounds.
    #[cfg(test)]
    fn bytes_per_series(self) -> usize {
        self.recent * std::mem::size_of::<Raw>() + self.minutes * std::mem::size_of::<Bucket>()
    }

    /// The bounds for `series` series of readings every `interval`: `recent` and `minutes` of
    /// history, shrunk (the recent tier first) so that all of them fit in `budget` bytes.
    pub fn fitting(recent: Duration, minutes: Duration, interval: Duration, series: usize, budget: usize) -> Self {
        let points = |span: Duration, step: Duration| {
            usize::try_from(span.as_millis() / step.as_millis().max(1)).unwrap_or(usize::MAX).max(1)
        };
        let per_series = budget / series.max(1);
        let minutes = points(minutes, Duration::from_secs(60)).min(per_series / std::mem::size_of::<Bucket>());
        let left = per_series.saturating_sub(minutes * std::mem::size_of::<Bucket>());
        let recent = points(recent, interval).min(left / std::mem::size_of::<Raw>());
        Self { recent, minutes }
    }
}

/// The bounds in force, shared by every series and changed in place when the configuration or
/// the number of sensors changes (a ring longer than its new bound shrinks as it records).
#[derive(Debug, Default)]
pub struct HistoryLimits {
    recent: AtomicUsize,
    minutes: AtomicUsize,
}

impl HistoryLimits {
    pub fn set(&self, bounds: HistoryBounds) {
        self.recent.store(bounds.recent, Ordering::Relaxed);
        self.minutes.store(bounds.minutes, Ordering::Relaxed);
    }

    pub fn get(&self) -> HistoryBounds {
        HistoryBounds { recent: self.recent.load(Ordering::Relaxed), minutes: self.minutes.load(Ordering::Relaxed) }
    }
}

/// One point of a chart: a time, the value there, and the lowest and highest values it stands for
/// (the same as the value for a single reading).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, ToSchema)]
pub struct Point {
    #[serde(with = "crate::domain::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub t: DateTime<Utc>,
    pub v: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Raw {
    millis: i64,
    value: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Bucket {
    minute: i64,
    last: f64,
    min: f64,
    max: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesHistory {
    recent: VecDeque<Raw>,
    minutes: VecDeque<Bucket>,
}

impl SeriesHistory {
    /// Records a value read at `timestamp` (values arrive in timestamp order).
    pub fn record(&mut self, timestamp: DateTime<Utc>, value: f64, bounds: HistoryBounds) {
        let millis = timestamp.timestamp_millis();
        if bounds.recent > 0 {
            while self.recent.len() >= bounds.recent {
                self.recent.pop_front();
            }
            self.recent.push_back(Raw { millis, value });
        }
        if bounds.minutes > 0 {
            let minute = millis.div_euclid(60_000);
            match self.minutes.back_mut() {
                Some(bucket) if bucket.minute == minute => {
                    bucket.last = value;
                    bucket.min = bucket.min.min(value);
                    bucket.max = bucket.max.max(value);
                }
                _ => {
                    while self.minutes.len() >= bounds.minutes {
                        self.minutes.pop_front();
                    }
                    self.minutes.push_back(Bucket { minute, last: value, min: value, max: value });
                }
            }
        }
    }

    /// The points between `since` and `until` (inclusive), oldest first, at most `max_points`
    /// (at least 2).
    pub fn points(&self, since: DateTime<Utc>, until: DateTime<Utc>, max_points: usize) -> Vec<Point> {
        let (since, until) = (since.timestamp_millis(), until.timestamp_millis());
        // The recent tier covers from its first point on; the minute buckets cover what is older.
        let recent_from = self.recent.front().map_or(i64::MAX, |raw| raw.millis);
        let older = self
            .minutes
            .iter()
            .filter(|bucket| {
                let start = bucket.minute * 60_000;
                start + 60_000 <= recent_from && start + 59_999 >= since && start <= until
            })
            .map(|bucket| (bucket.minute * 60_000, bucket.last, bucket.min, bucket.max));
        let newer = self
            .recent
            .iter()
            .filter(|raw| raw.millis >= since && raw.millis <= until)
            .map(|raw| (raw.millis, raw.value, raw.value, raw.value));
        let all: Vec<(i64, f64, f64, f64)> = older.chain(newer).collect();
        downsample(&all, max_points.max(2))
    }

    pub fn len(&self) -> usize {
        self.recent.len() + self.minutes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Merges neighbours into at most `most` points of equal count: each keeps the last value of what
/// it stands for, the time of its first point, and the lowest and highest.
fn downsample(points: &[(i64, f64, f64, f64)], most: usize) -> Vec<Point> {
    let per = points.len().div_ceil(most).max(1);
    points
        .chunks(per)
        .filter_map(|chunk| {
            let first = chunk.first()?;
            let last = chunk.last()?;
            let min = chunk.iter().map(|point| point.2).fold(f64::INFINITY, f64::min);
            let max = chunk.iter().map(|point| point.3).fold(f64::NEG_INFINITY, f64::max);
            let t = DateTime::<Utc>::from_timestamp_millis(first.0)?;
            Some(Point { t, v: last.1, min, max })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 5, 19, 0, 0, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    const BOUNDS: HistoryBounds = HistoryBounds { recent: 3600, minutes: 1440 };

    #[test]
    fn recent_values_come_back_as_read() {
        let mut history = SeriesHistory::default();
        for second in 0..10 {
            history.record(at(second), second as f64, BOUNDS);
        }
        let points = history.points(at(2), at(5), 100);
        assert_eq!(points.iter().map(|point| point.v).collect::<Vec<_>>(), [2.0, 3.0, 4.0, 5.0]);
        assert!(points.iter().all(|point| point.min == point.v && point.max == point.v));
    }

    #[test]
    fn a_spike_survives_downsampling_in_the_max() {
        let mut history = SeriesHistory::default();
        for second in 0..3600 {
            let value = if second == 1234 { 4.7 } else { 2.0 };
            history.record(at(second), value, BOUNDS);
        }
        let points = history.points(at(0), at(3600), 50);
        assert!(points.len() <= 50);
        assert_eq!(points.iter().map(|point| point.max).fold(0.0, f64::max), 4.7);
        assert!(points.iter().all(|point| point.v == 2.0), "the values themselves are the normal ones");
    }

    #[test]
    fn older_than_the_recent_tier_comes_from_the_minute_buckets() {
        let mut history = SeriesHistory::default();
        let small = HistoryBounds { recent: 120, minutes: 1440 };
        for second in 0..(6 * 3600) {
            let value = if second == 60 { -1.0 } else { (second % 60) as f64 };
            history.record(at(second), value, small);
        }
        assert_eq!(history.recent.len(), 120, "bounded");
        let day = history.points(at(0), at(6 * 3600), 10_000);
        let (first, last) = (day.first().unwrap(), day.last().unwrap());
        assert_eq!(first.t, at(0));
        assert_eq!((first.min, first.max, first.v), (0.0, 59.0, 59.0), "a minute's low, high and last");
        assert_eq!(day[1].min, -1.0, "the second minute kept its low");
        assert_eq!(last.t, at(6 * 3600 - 1));
        // 358 minute buckets, then the 120 readings of the last two minutes.
        assert_eq!(day.len(), 478);
    }

    #[test]
    fn bounds_fit_the_memory_budget() {
        let hour = Duration::from_secs(3600);
        let day = Duration::from_secs(24 * 3600);
        let roomy = HistoryBounds::fitting(hour, day, Duration::from_secs(1), 9, 256 << 20);
        assert_eq!(roomy, HistoryBounds { recent: 3600, minutes: 1440 });
        let crowded = HistoryBounds::fitting(hour, day, Duration::from_secs(1), 3_000, 256 << 20);
        assert!(crowded.bytes_per_series() * 3_000 <= 256 << 20);
        assert_eq!(crowded.minutes, 1440, "the day's buckets are kept before the recent readings");
        assert!(crowded.recent < 3600);
    }

    #[test]
    fn the_minute_tier_is_bounded_too() {
        let mut history = SeriesHistory::default();
        let bounds = HistoryBounds { recent: 10, minutes: 60 };
        for minute in 0..200 {
            history.record(at(minute * 60), 1.0, bounds);
        }
        assert_eq!(history.len(), 70);
    }
}
