//! The REST API: routes, handlers and the errors they answer with.
//!
//! Handlers read the [`Store`] and never wait on an actor. The bodies that clients poll most
//! (`/anomalies` without filters, `/metrics`) are serialised once per change of the data and
//! served from that copy until the next change; `/status` is re-serialised at most every
//! [`STATUS_REFRESH`].
//!
//! Every route is declared once, with its OpenAPI description beside the handler, so
//! `/openapi.json` and `/docs` cannot drift from what is served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use ractor::ActorRef;
use serde::Serialize;
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::actors::Fault;
use crate::actors::supervisor::SupervisorMsg;
use crate::clock::Clock;
use crate::config::ValidConfig;
use crate::domain::{Anomaly, AnomalyKind, Parameter, Reading, Summary};
use crate::health::{ActorHealth, Component, ConfigHealth, LlmHealth, LlmState, RedisHealth};
use crate::store::{AnomalyQuery, Metrics, Store};

/// Largest `limit` accepted by the list endpoints.
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 50;
/// Requests carry no body; anything larger than this is refused.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// How stale a served `/status` may be.
pub const STATUS_REFRESH: Duration = Duration::from_millis(250);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<Store>,
    clock: Clock,
    supervisor: Option<ActorRef<SupervisorMsg>>,
    anomalies_body: ArcSwapOption<CachedBody>,
    metrics_body: ArcSwapOption<CachedBody>,
    status_body: ArcSwapOption<CachedBody>,
}

/// A serialised body and the version of the data it was made from.
struct CachedBody {
    version: u64,
    limit: usize,
    body: Bytes,
}

impl AppState {
    pub fn new(
        _config: ValidConfig,
        store: Arc<Store>,
        clock: Clock,
        supervisor: Option<ActorRef<SupervisorMsg>>,
    ) -> Self {
        Self {
            inner: Arc::new(Shared {
                store,
                clock,
                supervisor,
                anomalies_body: ArcSwapOption::empty(),
                metrics_body: ArcSwapOption::empty(),
                status_body: ArcSwapOption::empty(),
            }),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wtf-monitor",
        description = "Anomalies, summaries and status of the water treatment facility monitor."
    ),
    tags((name = "monitoring"), (name = "operations"))
)]
struct ApiDoc;

/// The whole API, with its documentation at `/docs` and `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let config = state.inner.store.config();
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(anomalies))
        .routes(routes!(summary))
        .routes(routes!(summaries))
        .routes(routes!(status))
        .routes(routes!(metrics))
        .routes(routes!(health));
    if state.inner.supervisor.is_some() {
        api = api.routes(routes!(inject_fault));
    }
    let (routes, openapi) = api.with_state(state).split_for_parts();
    let mut app = routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.api.request_timeout));
    let origins: Vec<HeaderValue> =
        config.api.cors_allowed_origins.iter().filter_map(|origin| origin.parse().ok()).collect();
    if !origins.is_empty() {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::HEAD])
                .allow_headers([header::CONTENT_TYPE]),
        );
    }
    app
}

/// What went wrong with a request, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid query parameter {parameter}: {message}")]
    BadQuery { parameter: String, message: String },
    #[error("no such endpoint: {0}")]
    NotFound(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("no summary has been written yet; the first comes within 30 seconds of start")]
    NoSummaryYet,
    #[error("{0}")]
    Unavailable(String),
}

/// The JSON body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong, for a person.
    #[schema(example = "invalid query parameter limit: must be a whole number from 1 to 1000, got \"abc\"")]
    pub error: String,
    /// The query parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl ApiError {
    fn bad(parameter: &str, message: impl Into<String>) -> Self {
        ApiError::BadQuery { parameter: parameter.to_owned(), message: message.into() }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadQuery { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NoSummaryYet | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let parameter = match &self {
            ApiError::BadQuery { parameter, .. } => Some(parameter.clone()),
            _ => None,
        };
        let body = ErrorBody { error: self.to_string(), parameter };
        (self.status(), axum::Json(body)).into_response()
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed { method: method.to_string(), path: uri.path().to_owned() }
}

fn json_body(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    // Serialising our own plain types cannot fail; an empty object is a safe answer if it did.
    serde_json::to_vec(value).map(Bytes::from).unwrap_or_else(|_| Bytes::from_static(b"{}"))
}

/// Splits a raw query string, refusing parameters the endpoint does not know.
fn query_pairs(raw: Option<&str>, known: &[&str]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut pairs = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !known.contains(&name.as_ref()) {
            return Err(ApiError::bad(&name, format!("unknown parameter; this endpoint takes {}", known.join(", "))));
        }
        if pairs.insert(name.to_string(), value.to_string()).is_some() {
            return Err(ApiError::bad(&name, "given more than once"));
        }
    }
    Ok(pairs)
}

fn parse_limit(pairs: &BTreeMap<String, String>) -> Result<usize, ApiError> {
    let Some(text) = pairs.get("limit") else { return Ok(DEFAULT_LIMIT) };
    match text.trim().parse::<usize>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::bad("limit", format!("must be a whole number from 1 to {MAX_LIMIT}, got {text:?}"))),
    }
}

fn parse_anomaly_query(raw: Option<&str>) -> Result<AnomalyQuery, ApiError> {
    let pairs = query_pairs(raw, &["limit", "sensor_id", "parameter", "type", "since"])?;
    let parameter = pairs
        .get("parameter")
        .map(|name| {
            name.parse::<Parameter>()
                .map_err(|_| ApiError::bad("parameter", format!("must be temperature, pressure or flow, got {name:?}")))
        })
        .transpose()?;
    let kind = pairs
        .get("type")
        .map(|name| {
            name.parse::<AnomalyKind>()
                .map_err(|_| ApiError::bad("type", format!("must be spike, drift or dropout, got {name:?}")))
        })
        .transpose()?;
    let since = pairs
        .get("since")
        .map(|text| {
            DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).map_err(|_| {
                ApiError::bad("since", format!("must be an RFC 3339 time such as 2025-05-19T10:15:00Z, got {text:?}"))
            })
        })
        .transpose()?;
    Ok(AnomalyQuery { limit: parse_limit(&pairs)?, sensor_id: pairs.get("sensor_id").cloned(), parameter, kind, since })
}

/// The newest anomalies, newest first.
#[utoipa::path(
    get,
    path = "/anomalies",
    tag = "monitoring",
    params(
        ("limit" = Option<usize>, Query, description = "How many, 1 to 1000 (default 50)", example = 50),
        ("sensor_id" = Option<String>, Query, description = "Only this sensor", example = "wtf-pipe-1"),
        ("parameter" = Option<Parameter>, Query, description = "Only this parameter"),
        ("type" = Option<AnomalyKind>, Query, description = "Only this kind of anomaly"),
        ("since" = Option<String>, Query, description = "Only anomalies at or after this RFC 3339 time", example = "2025-05-19T10:00:00Z"),
    ),
    responses(
        (status = 200, description = "Anomalies of the last 24 hours, newest first", body = [Anomaly]),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
    )
)]
async fn anomalies(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let query = parse_anomaly_query(raw.as_deref())?;
    let store = &state.inner.store;
    let unfiltered = AnomalyQuery::newest(query.limit) == query;
    if !unfiltered {
        return Ok(json_body(to_bytes(&store.anomalies(&query))));
    }
    let version = store.anomaly_seq();
    if let Some(cached) = state.inner.anomalies_body.load().as_ref()
        && cached.version == version
        && cached.limit == query.limit
    {
        return Ok(json_body(cached.body.clone()));
    }
    let body = to_bytes(&store.anomalies(&query));
    state.inner.anomalies_body.store(Some(Arc::new(CachedBody { version, limit: query.limit, body: body.clone() })));
    Ok(json_body(body))
}

/// The latest summary of recent anomalies.
#[utoipa::path(
    get,
    path = "/summary",
    tag = "monitoring",
    responses(
        (status = 200, description = "The latest summary", body = Summary),
        (status = 503, description = "No summary written yet (only in the first seconds after start)", body = ErrorBody),
    )
)]
async fn summary(State(state): State<AppState>) -> Result<axum::Json<Summary>, ApiError> {
    let latest = state.inner.store.latest_summary().ok_or(ApiError::NoSummaryYet)?;
    Ok(axum::Json(Summary::clone(&latest)))
}

/// Recent summaries, newest first.
#[utoipa::path(
    get,
    path = "/summaries",
    tag = "monitoring",
    params(("limit" = Option<usize>, Query, description = "How many, 1 to 1000 (default 50)")),
    responses(
        (status = 200, description = "Recent summaries, newest first", body = [Summary]),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
    )
)]
async fn summaries(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let limit = parse_limit(&query_pairs(raw.as_deref(), &["limit"])?)?;
    Ok(json_body(to_bytes(&state.inner.store.summaries(limit))))
}

/// Statistics over the last 100 anomalies.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "monitoring",
    responses((status = 200, description = "Counts over the newest 100 anomalies", body = Metrics))
)]
async fn metrics(State(state): State<AppState>) -> Response {
    let store = &state.inner.store;
    let version = store.anomaly_seq();
    if let Some(cached) = state.inner.metrics_body.load().as_ref()
        && cached.version == version
    {
        return json_body(cached.body.clone());
    }
    let body = to_bytes(&store.metrics());
    state.inner.metrics_body.store(Some(Arc::new(CachedBody { version, limit: 0, body: body.clone() })));
    json_body(body)
}

/// Liveness for load balancers and container healthchecks.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses((status = 200, description = "The daemon is running", body = HealthBody, example = json!({"status": "ok"})))
)]
async fn health() -> Response {
    json_body(Bytes::from_static(br#"{"status":"ok"}"#))
}

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    pub status: String,
}

/// One sensor as `/status` shows it.
#[derive(Serialize, ToSchema)]
pub struct SensorStatus {
    /// Alive and reporting: its simulator runs and its last reading is younger than the dropout timeout.
    pub active: bool,
    pub last_reading: Option<Reading>,
}

/// The truth about the daemon's parts.
#[derive(Serialize, ToSchema)]
pub struct StatusBody {
    /// Every sensor is reporting (see `sensors` for which is not).
    pub sensor_active: bool,
    /// Every detector actor is running.
    pub detector_active: bool,
    /// The last call to the model succeeded and its text was used.
    pub llm_active: bool,
    /// The API actor is running.
    pub api_active: bool,
    #[serde(with = "crate::domain::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_reading_time: Option<DateTime<Utc>>,
    /// Anomalies raised in the last 24 hours, all of them.
    pub anomaly_count_24h: u64,
    /// Anomalies held in memory, and how many the memory bound evicted before their 24 hours.
    pub anomalies_held: usize,
    pub anomalies_evicted_early: u64,
    #[serde(with = "crate::domain::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    pub uptime_seconds: f64,
    pub sensors: BTreeMap<String, SensorStatus>,
    /// Every actor with its liveness and restart count.
    pub actors: BTreeMap<String, ActorHealth>,
    pub llm: LlmHealth,
    pub redis: RedisHealth,
    pub config: ConfigHealth,
}

/// Component flags, per-sensor readings, restarts, Redis and model state.
#[utoipa::path(
    get,
    path = "/status",
    tag = "operations",
    responses((status = 200, description = "The state of every part of the daemon", body = StatusBody))
)]
async fn status(State(state): State<AppState>) -> Response {
    let now = state.inner.clock.now();
    let version = u64::try_from(now.timestamp_millis()).unwrap_or_default() / STATUS_REFRESH.as_millis() as u64;
    if let Some(cached) = state.inner.status_body.load().as_ref()
        && cached.version == version
    {
        return json_body(cached.body.clone());
    }
    let body = to_bytes(&status_now(&state.inner.store, now));
    state.inner.status_body.store(Some(Arc::new(CachedBody { version, limit: 0, body: body.clone() })));
    json_body(body)
}

/// Builds `/status` from live state at `now`.
pub fn status_now(store: &Store, now: DateTime<Utc>) -> StatusBody {
    let config = store.config();
    let health = &store.health;
    let dropout = chrono::TimeDelta::from_std(config.detection.dropout_timeout).unwrap_or(chrono::TimeDelta::MAX);
    let sensors: BTreeMap<String, SensorStatus> = store
        .last_readings()
        .into_iter()
        .filter(|(sensor_id, _)| config.sensors.ids.iter().any(|id| id == sensor_id.as_str()))
        .map(|(sensor_id, last_reading)| {
            let simulator_alive = !config.simulation.enabled || health.is_alive(&format!("simulator:{sensor_id}"));
            let recent = last_reading.as_ref().is_some_and(|reading| now - reading.timestamp <= dropout);
            (sensor_id.to_string(), SensorStatus { active: simulator_alive && recent, last_reading })
        })
        .collect();
    let all_reporting = config.sensors.ids.iter().all(|id| sensors.get(id).is_some_and(|sensor| sensor.active));
    let last_reading_time =
        sensors.values().filter_map(|sensor| sensor.last_reading.as_ref().map(|reading| reading.timestamp)).max();
    let (anomalies_held, anomalies_evicted_early) = store.anomaly_holdings();
    let llm = health.llm();
    StatusBody {
        sensor_active: all_reporting,
        detector_active: health.all_alive(Component::Detector),
        llm_active: llm.state == LlmState::Active,
        api_active: health.all_alive(Component::Api),
        last_reading_time,
        anomaly_count_24h: store.anomaly_count_24h(now),
        anomalies_held,
        anomalies_evicted_early,
        started_at: health.started_at(),
        uptime_seconds: (now - health.started_at()).num_milliseconds() as f64 / 1000.0,
        sensors,
        actors: health.actors(),
        llm,
        redis: health.redis(),
        config: health.config(),
    }
}

/// Makes the named actor fail, to drill supervision. Served only with `debug.fault_injection = true`.
#[utoipa::path(
    post,
    path = "/debug/fail/{actor}",
    tag = "operations",
    params(
        ("actor" = String, Path, description = "Actor name as in /status, e.g. detector:wtf-pipe-1:pressure"),
        ("fault" = Option<Fault>, Query, description = "panic (default) or error"),
    ),
    responses(
        (status = 202, description = "The fault was delivered"),
        (status = 404, description = "No such actor", body = ErrorBody),
    )
)]
async fn inject_fault(
    State(state): State<AppState>,
    Path(actor): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let pairs = query_pairs(raw.as_deref(), &["fault"])?;
    let fault = match pairs.get("fault").map(String::as_str) {
        None | Some("panic") => Fault::Panic,
        Some("error") => Fault::Error,
        Some(other) => return Err(ApiError::bad("fault", format!("must be panic or error, got {other:?}"))),
    };
    let Some(supervisor) = &state.inner.supervisor else { return Err(ApiError::NotFound("/debug".into())) };
    let outcome = ractor::call!(supervisor, |reply| SupervisorMsg::InjectFault { actor: actor.clone(), fault, reply })
        .map_err(|err| ApiError::Unavailable(format!("supervisor unavailable: {err}")))?;
    outcome.map(|()| StatusCode::ACCEPTED).map_err(ApiError::NotFound)
}

#[cfg(test)]
mod tests;
