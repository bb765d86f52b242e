//! The outbox of one receiver when the daemon runs without Redis: bounded, in memory, gone with
//! the process (`/status` says `"outbox": "memory"`), but kept across a notifier restart, since
//! the supervisor holds it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::Item;
use crate::store::lock;

/// How a delivery attempt ended, for the outbox to settle the item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The receiver took it: remember the key, forget the item.
    Delivered,
    /// It failed: try again at this time.
    Retry { at: DateTime<Utc> },
    /// It was not tried (an earlier one in the batch failed): due again at this time, without
    /// counting an attempt.
    Later { at: DateTime<Utc> },
    /// Not deliverable (refused by the receiver, or too old): forget it, counted as dropped.
    Dropped,
}

pub struct MemoryOutbox {
    queue: Mutex<Queue>,
    capacity: usize,
    dedup_window: TimeDelta,
}

#[derive(Default)]
struct Queue {
    /// Waiting items by (due time, arrival number).
    waiting: BTreeMap<(DateTime<Utc>, u64), Arc<Item>>,
    /// Key → its place in `waiting`.
    places: HashMap<String, (DateTime<Utc>, u64)>,
    /// Arrival number → key, oldest first: what a full outbox drops.
    arrivals: BTreeMap<u64, String>,
    /// Taken by the courier, not settled yet, with their arrival numbers.
    in_flight: HashMap<String, (Arc<Item>, u64)>,
    /// Keys delivered, with when, oldest first; remembered for the dedup window.
    delivered: HashMap<String, DateTime<Utc>>,
    delivered_order: VecDeque<(DateTime<Utc>, String)>,
    next_arrival: u64,
    dropped: u64,
}

impl Queue {
    /// Back in the queue, due at `at`, keeping its place among the oldest.
    fn requeue(&mut self, item: Arc<Item>, arrival: u64, at: DateTime<Utc>) {
        self.places.insert(item.key.clone(), (at, arrival));
        self.arrivals.insert(arrival, item.key.clone());
        self.waiting.insert((at, arrival), item);
    }
}

impl MemoryOutbox {
    pub fn new(capacity: usize, dedup_window: Duration) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
            dedup_window: TimeDelta::from_std(dedup_window).unwrap_or(TimeDelta::MAX),
        }
    }

    /// Queues `item`, due now; false when its key is already queued, on its way or delivered.
    /// A full outbox drops its oldest item to make room (counted).
    pub fn push(&self, item: Arc<Item>, now: DateTime<Utc>) -> bool {
        let mut queue = lock(&self.queue);
        if queue.places.contains_key(&item.key)
            || queue.in_flight.contains_key(&item.key)
            || queue.delivered.contains_key(&item.key)
        {
            return false;
        }
        while queue.places.len() + queue.in_flight.len() >= self.capacity {
            let Some((_, oldest)) = queue.arrivals.pop_first() else { break };
            if let Some(place) = queue.places.remove(&oldest) {
                queue.waiting.remove(&place);
                queue.dropped += 1;
            }
        }
        let arrival = queue.next_arrival;
        queue.next_arrival += 1;
        queue.places.insert(item.key.clone(), (now, arrival));
        queue.arrivals.insert(arrival, item.key.clone());
        queue.waiting.insert((now, arrival), item);
        true
    }

    /// At most `max` items due by `now`, soonest first; each stays on its way until settled.
    pub fn take_due(&self, now: DateTime<Utc>, max: usize) -> Vec<Arc<Item>> {
        let mut queue = lock(&self.queue);
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some(entry) = queue.waiting.first_entry() else { break };
            if entry.key().0 > now {
                break;
            }
            let ((_, arrival), item) = entry.remove_entry();
            queue.places.remove(&item.key);
            queue.arrivals.remove(&arrival);
            queue.in_flight.insert(item.key.clone(), (Arc::clone(&item), arrival));
            taken.push(item);
        }
        taken
    }

    /// Settles an item taken by [`take_due`](Self::take_due).
    pub fn settle(&self, key: &str, outcome: Settled, now: DateTime<Utc>) {
        let mut queue = lock(&self.queue);
        let Some((item, arrival)) = queue.in_flight.remove(key) else { return };
        match outcome {
            Settled::Delivered => {
                queue.delivered.insert(item.key.clone(), now);
                queue.delivered_order.push_back((now, item.key.clone()));
            }
            Settled::Retry { at } => {
                let mut item = Arc::unwrap_or_clone(item);
                item.attempts = item.attempts.saturating_add(1);
                queue.requeue(Arc::new(item), arrival, at);
            }
            Settled::Later { at } => queue.requeue(item, arrival, at),
            Settled::Dropped => queue.dropped += 1,
        }
        self.forget_old(&mut queue, now);
    }

    /// Puts back what a courier had taken and not settled when it ended (its notifier crashed),
    /// due at `now`: sent again rather than lost. Returns how many.
    pub fn recover(&self, now: DateTime<Utc>) -> usize {
        let mut queue = lock(&self.queue);
        let taken: Vec<(Arc<Item>, u64)> = queue.in_flight.drain().map(|(_, taken)| taken).collect();
        let count = taken.len();
        for (item, arrival) in taken {
            queue.requeue(item, arrival, now);
        }
        count
    }

    /// Items waiting or on their way.
    pub fn backlog(&self) -> usize {
        let queue = lock(&self.queue);
        queue.places.len() + queue.in_flight.len()
    }

    /// When the soonest waiting item is due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        lock(&self.queue).waiting.first_key_value().map(|((due, _), _)| *due)
    }

    /// Items dropped: the outbox was full, or they could not be delivered.
    pub fn dropped(&self) -> u64 {
        lock(&self.queue).dropped
    }

    /// Delivered keys past the dedup window go; so do the oldest beyond four times the capacity,
    /// which bounds the memory a flood leaves behind.
    fn forget_old(&self, queue: &mut Queue, now: DateTime<Utc>) {
        let cutoff = now.checked_sub_signed(self.dedup_window).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let most = self.capacity.saturating_mul(4);
        while let Some((at, _)) = queue.delivered_order.front() {
            if *at >= cutoff && queue.delivered_order.len() <= most {
                break;
            }
            if let Some((at, key)) = queue.delivered_order.pop_front()
                && queue.delivered.get(&key) == Some(&at)
            {
                queue.delivered.remove(&key);
            }
        }
    }
}
