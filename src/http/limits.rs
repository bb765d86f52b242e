//! `GET /limits`: the detection limits in force for every sensor × parameter, the sensor's own
//! overrides (`[detection.sensors."<id>"]`) applied, with units: what a trend chart draws as
//! its limit lines.
//!
//! Read from the configuration in force at each request, so a reload shows at once; the same
//! resolution the detectors use ([`Rules::for_sensor`]), so the lines drawn are the limits
//! applied.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::query::{Params, parse_sensor};
use super::{ApiError, AppState, ErrorBody, json_body, to_bytes};
use crate::detection::Rules;
use crate::domain::AnomalyKind;

/// The limits of every sensor watched.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"sensors": [{"sensor_id": "wtf-pipe-1", "parameters": {"pressure": {
    "label": "Pressure", "unit": "bar", "normal": [1.5, 3.0], "spike": 4.0, "drift": 3.5,
    "low_spike": null, "low_drift": null, "rate": null, "stuck_tolerance": null,
    "drift_seconds": 15.0, "dropout_seconds": 10.0}}}]}))]
struct LimitsBody {
    /// In sensor id order.
    pub sensors: Vec<SensorLimits>,
}

#[derive(Debug, Serialize, ToSchema)]
struct SensorLimits {
    pub sensor_id: String,
    /// By parameter name.
    pub parameters: BTreeMap<String, ParameterLimits>,
}

/// The limits of one sensor × parameter; null where that rule is not configured.
#[derive(Debug, Serialize, ToSchema)]
struct ParameterLimits {
    /// How operators name the parameter.
    pub label: String,
    /// The unit of its values and of every limit below but `rate` (units per second).
    pub unit: String,
    /// The normal range, `[low, high]`.
    pub normal: [f64; 2],
    /// One reading above raises a spike.
    pub spike: Option<f64>,
    /// Readings above for longer than `drift_seconds` raise a drift.
    pub drift: Option<f64>,
    pub low_spike: Option<f64>,
    pub low_drift: Option<f64>,
    /// A change faster than this many units per second raises a rate anomaly.
    pub rate: Option<f64>,
    /// No change beyond this raises a stuck value after a while.
    pub stuck_tolerance: Option<f64>,
    pub drift_seconds: f64,
    pub dropout_seconds: f64,
}

/// The detection limits in force, per sensor × parameter, with units.
#[utoipa::path(
    get,
    path = "/limits",
    tag = "monitoring",
    params(("sensor_id" = Option<String>, Query, description = "Only this sensor")),
    responses(
        (status = 200, description = "Every sensor watched (or the one asked for), its overrides applied", body = LimitsBody),
        (status = 400, description = "A query parameter is unknown, repeated, empty or invalid", body = ErrorBody),
    )
)]
pub async fn limits(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["sensor_id"])?;
    let ingress = &state.inner.ingress;
    let wanted = params.get("sensor_id").map(|id| parse_sensor(id, |id| ingress.lane(id).is_some())).transpose()?;
    let config = state.inner.store.config();
    let sensors = ingress
        .lanes()
        .iter()
        .filter(|lane| wanted.as_deref().is_none_or(|wanted| lane.id.as_str() == wanted))
        .map(|lane| {
            let parameters = config
                .parameters
                .iter()
                .map(|(name, spec)| {
                    let rules = Rules::for_sensor(&config, lane.id.as_str(), name.as_str());
                    let limits = ParameterLimits {
                        label: spec.title(name.as_str()),
                        unit: spec.unit.clone(),
                        normal: spec.normal,
                        spike: rules.limit(AnomalyKind::Spike),
                        drift: rules.limit(AnomalyKind::Drift),
                        low_spike: rules.limit(AnomalyKind::LowSpike),
                        low_drift: rules.limit(AnomalyKind::LowDrift),
                        rate: rules.limit(AnomalyKind::Rate),
                        stuck_tolerance: rules.limit(AnomalyKind::Stuck),
                        drift_seconds: config.detection.drift_duration.as_secs_f64(),
                        dropout_seconds: rules.dropout_timeout.as_secs_f64(),
                    };
                    (name.to_string(), limits)
                })
                .collect();
            SensorLimits { sensor_id: lane.id.to_string(), parameters }
        })
        .collect();
    Ok(json_body(to_bytes(&LimitsBody { sensors })))
}
