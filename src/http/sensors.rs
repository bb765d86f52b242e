//! `GET /sensors`: every sensor watched, page by page, for plants with more than `/status` lists.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::status::SensorStatus;
use super::{ApiError, AppState, ErrorBody, json_body, query::Params, to_bytes};

/// A page of sensors.
#[derive(Debug, Serialize, ToSchema)]
struct SensorPage {
    /// Sensors watched in all, configured and registered.
    pub total: usize,
    pub sensors: Vec<SensorEntry>,
    /// Pass as `after` for the next page; null on the last one.
    pub next_after: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct SensorEntry {
    pub sensor_id: String,
    /// Registered live from its readings, rather than configured.
    pub registered: bool,
    #[serde(flatten)]
    pub status: SensorStatus,
    /// Values accepted and waiting for its detectors.
    pub queued: usize,
}

/// Sensors in id order, with their last readings.
#[utoipa::path(
    get,
    path = "/sensors",
    tag = "operations",
    params(
        ("limit" = Option<usize>, Query, description = "How many, 1 to 1000 (default 50)", minimum = 1, maximum = 1000),
        ("after" = Option<String>, Query, description = "Start after this sensor id (the previous page's next_after)"),
        ("state" = Option<String>, Query, description = "active or inactive: only those"),
    ),
    responses(
        (status = 200, description = "A page of sensors", body = SensorPage),
        (status = 400, description = "A query parameter is unknown, repeated, empty or invalid", body = ErrorBody),
    )
)]
pub async fn sensors(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["limit", "after", "state"])?;
    let limit = params.limit()?;
    let wanted = match params.get("state") {
        None => None,
        Some("active") => Some(true),
        Some("inactive") => Some(false),
        Some(other) => {
            let other = crate::ingress::bounded(other, 40);
            return Err(ApiError::bad("state", format!("must be active or inactive, got {other:?}")));
        }
    };
    let after = params.get("after");
    let store = &state.inner.store;
    let simulated = store.config().simulation.enabled;
    let lanes = state.inner.ingress.lanes();
    let total = lanes.len();
    let mut entries = Vec::new();
    let mut next_after = None;
    for lane in lanes.iter().filter(|lane| after.is_none_or(|after| lane.id.as_str() > after)) {
        let status = SensorStatus::of(lane, simulated && !lane.registered, store);
        if wanted.is_some_and(|wanted| wanted != status.active) {
            continue;
        }
        if entries.len() == limit {
            next_after = entries.last().map(|entry: &SensorEntry| entry.sensor_id.clone());
            break;
        }
        entries.push(SensorEntry {
            sensor_id: lane.id.to_string(),
            registered: lane.registered,
            status,
            queued: lane.queued(),
        });
    }
    Ok(json_body(to_bytes(&SensorPage { total, sensors: entries, next_after })))
}
