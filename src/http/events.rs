//! `GET /events`: the journal as Server-Sent Events, for the dashboard and anything that wants
//! to know at once.
//!
//! Each event's `id:` is its journal sequence number, so a client that reconnects with
//! `Last-Event-ID` (browsers do it by themselves) or `?since=N` gets exactly what it missed,
//! from the journal; when that is gone (older than the journal keeps) the stream starts with a
//! `reset` event, and the client reloads what it shows. `reading` events (with `?readings=1`)
//! are thinned to one a second per sensor and carry no id: they are not replayed.
//!
//! A stream reads the shared journal at its own cursor and holds nothing of its own, so a slow
//! client costs no memory and slows no one: if it falls more than [`MAX_LAG`] entries behind, it
//! gets a final `dropped` event and the stream ends (an `EventSource` reconnects and resumes
//! from its `Last-Event-ID`). A comment line goes out every 15 s so proxies keep the line open.
//! The request timeout of the other routes applies to the answer's head only, never this body.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::{broadcast, watch};

use super::query::Params;
use super::{ApiError, AppState, ErrorBody};
use crate::domain::Reading;
use crate::journal::{Entry, Event, Journal};

/// The event names a client may ask for with `types=`.
const TYPES: [&str; 7] = ["anomaly", "cleared", "alarm", "summary", "status", "audit", "reading"];
/// A client further behind the journal than this many entries is dropped with a final event.
const MAX_LAG: u64 = 50_000;
/// Journal entries read per step of a stream.
const BATCH: usize = 256;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a stream sends.
#[derive(Clone, Debug)]
struct Filter {
    types: BTreeSet<String>,
    sensor_id: Option<String>,
}

impl Filter {
    fn wants(&self, event: &Event) -> bool {
        if !self.types.contains(event.name()) {
            return false;
        }
        let Some(wanted) = &self.sensor_id else { return true };
        let sensor = match event {
            Event::Anomaly(anomaly) => Some(anomaly.sensor_id.as_str()),
            Event::Cleared(cleared) => Some(cleared.sensor_id.as_str()),
            Event::Alarm(alarm) => Some(alarm.sensor_id.as_str()),
            Event::Status(change) => change.component.strip_prefix("sensor:"),
            Event::Summary(_) | Event::Audit(_) => None,
        };
        sensor == Some(wanted.as_str())
    }
}

/// The journal as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/events",
    tag = "monitoring",
    params(
        ("types" = Option<String>, Query, description = "Comma-separated event names: anomaly, cleared, alarm, summary, status, audit, reading (default: all but reading)"),
        ("sensor_id" = Option<String>, Query, description = "Only events about this sensor"),
        ("readings" = Option<String>, Query, description = "1: also `reading` events, at most one a second per sensor"),
        ("since" = Option<u64>, Query, description = "Replay from after this journal sequence number (as the Last-Event-ID header does)"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received: replay from after it"),
    ),
    responses(
        (status = 200, description = "text/event-stream: `id:` the journal sequence number, `event:` the name, `data:` the JSON (as the endpoints serve it); `reset` when the replay point is gone; `dropped` before the server ends a stream too far behind", content_type = "text/event-stream"),
        (status = 400, description = "A query parameter is unknown, repeated, empty or invalid", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["types", "sensor_id", "readings", "since"])?;
    let readings = match params.get("readings") {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return Err(ApiError::bad("readings", "must be 1 or 0")),
    };
    let mut types: BTreeSet<String> = match params.get("types") {
        None => TYPES.iter().filter(|name| **name != "reading").map(|name| (*name).to_owned()).collect(),
        Some(list) => {
            let mut types = BTreeSet::new();
            for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
                if !TYPES.contains(&name) {
                    let name = crate::ingress::bounded(name, 40);
                    return Err(ApiError::bad("types", format!("{name:?} is not one of {}", TYPES.join(", "))));
                }
                types.insert(name.to_owned());
            }
            types
        }
    };
    if readings {
        types.insert("reading".to_owned());
    }
    let sensor_id = params.get("sensor_id").map(str::to_owned);
    let resume =
        match headers.get("last-event-id").and_then(|value| value.to_str().ok()).or(params.get("since")) {
            None => None,
            Some(text) => Some(text.trim().parse::<u64>().map_err(|_| {
                ApiError::bad("since", "must be a journal sequence number, as the events' id: carries")
            })?),
        };
    let live = types.contains("reading").then(|| state.inner.ingress.live_readings());
    let journal = Arc::clone(&state.inner.store.journal);
    let stream = follow(journal, resume, Filter { types, sensor_id }, live, ClientCount::new(&state));
    let keep_alive = KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive");
    Ok(Sse::new(stream).keep_alive(keep_alive).into_response())
}

/// Counts the streams open, for `/status` and the metrics; one less when the stream is dropped.
struct ClientCount(AppState);

impl ClientCount {
    fn new(state: &AppState) -> Self {
        state.inner.store.health.sse_clients.fetch_add(1, Ordering::Relaxed);
        Self(state.clone())
    }
}

impl Drop for ClientCount {
    fn drop(&mut self) {
        self.0.inner.store.health.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where one stream is.
struct Cursor {
    journal: Arc<Journal>,
    changes: watch::Receiver<u64>,
    /// The last sequence number sent (or skipped by the filter).
    seq: u64,
    filter: Filter,
    live: Option<broadcast::Receiver<Reading>>,
    /// Events ready to go, oldest first.
    pending: std::collections::VecDeque<SseEvent>,
    ended: bool,
    _count: ClientCount,
}

fn follow(
    journal: Arc<Journal>,
    resume: Option<u64>,
    filter: Filter,
    live: Option<broadcast::Receiver<Reading>>,
    count: ClientCount,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let mut pending = std::collections::VecDeque::new();
    let seq = match resume {
        None => journal.newest_seq(),
        Some(after) => {
            let oldest = journal.oldest_seq();
            if after.saturating_add(1) < oldest {
                // What the client missed is gone: it must reload, then follow from here.
                let data = serde_json::json!({"oldest": oldest, "asked_after": after}).to_string();
                pending.push_back(SseEvent::default().event("reset").data(data));
                oldest.saturating_sub(1)
            } else {
                after.min(journal.newest_seq())
            }
        }
    };
    let changes = journal.subscribe();
    let cursor = Cursor { journal, changes, seq, filter, live, pending, ended: false, _count: count };
    stream::unfold(cursor, |mut cursor| async move {
        loop {
            if let Some(event) = cursor.pending.pop_front() {
                return Some((Ok(event), cursor));
            }
            if cursor.ended {
                return None;
            }
            cursor.fill();
            if !cursor.pending.is_empty() || cursor.ended {
                continue;
            }
            cursor.wait().await;
        }
    })
}

impl Cursor {
    /// Takes what the journal (and the live readings) have after the cursor.
    fn fill(&mut self) {
        let newest = self.journal.newest_seq();
        let followed = self.journal.after(self.seq, BATCH);
        if newest.saturating_sub(self.seq) > MAX_LAG || followed.missed > 0 {
            let data =
                serde_json::json!({"reason": "too far behind the journal; reconnect to resume", "last_id": self.seq});
            self.pending.push_back(SseEvent::default().event("dropped").data(data.to_string()));
            self.ended = true;
            return;
        }
        for entry in followed.entries {
            self.seq = entry.seq;
            if self.filter.wants(&entry.event) {
                self.pending.push_back(sse(&entry));
            }
        }
    }

    /// Waits for the journal to grow or a live reading to come.
    async fn wait(&mut self) {
        let seq = self.seq;
        let Cursor { changes, live, pending, filter, ended, .. } = self;
        let journal = changes.wait_for(|newest| *newest > seq);
        let closed = match live {
            None => journal.await.is_err(),
            Some(live) => tokio::select! {
                grown = journal => grown.is_err(),
                received = live.recv() => {
                    if let Ok(reading) = received
                        && filter.sensor_id.as_deref().is_none_or(|wanted| reading.sensor_id.as_str() == wanted)
                    {
                        let data = serde_json::to_string(&reading).unwrap_or_default();
                        pending.push_back(SseEvent::default().event("reading").data(data));
                    }
                    false
                }
            },
        };
        // The journal goes only with the daemon.
        *ended |= closed;
    }
}

fn sse(entry: &Entry) -> SseEvent {
    SseEvent::default().id(entry.seq.to_string()).event(entry.event.name()).data(entry.event.to_json())
}
