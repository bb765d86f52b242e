//! `GET /readings`: the recent readings of one sensor × parameter, for a trend chart.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::query::{Params, parse_parameter, parse_since};
use super::{ApiError, AppState, ErrorBody, json_body, to_bytes};
use crate::history::Point;

/// Points a chart gets unless it asks for fewer or more.
const DEFAULT_POINTS: usize = 1000;
/// The most points one answer carries.
const MAX_POINTS: usize = 10_000;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"sensor_id": "wtf-pipe-1", "parameter": "pressure", "unit": "bar",
    "points": [{"t": "2025-05-19T10:15:00.000Z", "v": 2.1, "min": 2.05, "max": 4.71}]}))]
struct History {
    pub sensor_id: String,
    pub parameter: String,
    pub unit: String,
    /// Oldest first; each point's `min` and `max` cover every reading it stands for.
    pub points: Vec<Point>,
}

/// The readings of a sensor × parameter over a time range, downsampled to at most `max_points`.
#[utoipa::path(
    get,
    path = "/readings",
    tag = "monitoring",
    params(
        ("sensor_id" = String, Query, description = "The sensor"),
        ("parameter" = String, Query, description = "The parameter", example = "pressure"),
        ("since" = Option<String>, Query, format = DateTime, description = "From (RFC 3339); default an hour ago"),
        ("until" = Option<String>, Query, format = DateTime, description = "To (RFC 3339); default now"),
        ("max_points" = Option<usize>, Query, description = "At most this many points, 2 to 10000 (default 1000)", minimum = 2, maximum = 10000),
    ),
    responses(
        (status = 200, description = "The points, oldest first: every reading of the last hour, minute buckets (last, min, max) before that, merged to fit max_points", body = History),
        (status = 400, description = "A query parameter is missing, unknown, repeated or invalid", body = ErrorBody),
    )
)]
pub async fn readings(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["sensor_id", "parameter", "since", "until", "max_points"])?;
    let config = state.inner.store.config();
    let sensor_id = params.get("sensor_id").ok_or_else(|| ApiError::bad("sensor_id", "is needed"))?;
    let parameter = params.get("parameter").ok_or_else(|| ApiError::bad("parameter", "is needed"))?;
    let parameter = parse_parameter(parameter, &config)?;
    let lane = state.inner.ingress.lane(sensor_id).ok_or_else(|| {
        ApiError::bad("sensor_id", format!("no sensor {:?} is watched", crate::ingress::bounded(sensor_id, 64)))
    })?;
    let now = state.inner.clock.now();
    let since: DateTime<Utc> = params.get("since").map(parse_since).transpose()?.unwrap_or(now - TimeDelta::hours(1));
    let until: DateTime<Utc> = match params.get("until") {
        Some(text) => parse_since(text).map_err(|_| ApiError::bad("until", "must be an RFC 3339 time"))?,
        None => now,
    };
    let max_points = match params.get("max_points") {
        None => DEFAULT_POINTS,
        Some(text) => match text.parse::<usize>() {
            Ok(count) if (2..=MAX_POINTS).contains(&count) => count,
            _ => return Err(ApiError::bad("max_points", format!("must be a whole number from 2 to {MAX_POINTS}"))),
        },
    };
    let points = lane
        .inbox(parameter.as_str())
        .map(|inbox| inbox.lock().history.points(since, until, max_points))
        .unwrap_or_default();
    let body = History {
        sensor_id: lane.id.to_string(),
        unit: config.unit(parameter.as_str()).to_owned(),
        parameter: parameter.to_string(),
        points,
    };
    Ok(json_body(to_bytes(&body)))
}
