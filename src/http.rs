//! The REST API: routes, handlers, and the layers that make them cheap and hard to break.
//!
//! - Handlers read the [`Store`] and never wait on an actor, so a busy or restarting actor cannot
//!   slow an answer.
//! - The bodies clients poll most (`/anomalies` without filters, `/metrics`, `/status`) are
//!   serialised once per change of the data they show and served as shared [`Bytes`] until the
//!   next change. "Changed" is read from version counters (one atomic load each), so a hit takes no
//!   lock and allocates nothing; `/status` also shows readings and uptime, which change all the
//!   time, so it is re-made at most every `STATUS_REFRESH` as well.
//! - Bad input is refused with a 4xx and a JSON body naming the problem (`query`, `errors`);
//!   every other error answer, including the layers' own 408 and 413, is JSON too.
//! - Every route is declared once with its OpenAPI description beside the handler (utoipa-axum
//!   `routes!`), so `/openapi.json` and the offline Swagger UI at `/docs` cannot drift from what
//!   is served.

mod alarms;
mod dashboard;
mod docs;
mod errors;
mod events;
mod history;
mod ingest;
mod limits;
mod query;
mod request_head;
mod security;
mod sensors;
pub mod server;
mod status;
mod write_stall;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use ractor::ActorRef;
use serde::Serialize;
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use chrono::{DateTime, Utc};

use crate::actors::Fault;
use crate::actors::summarizer::ongoing_conditions;
use crate::actors::supervisor::SupervisorMsg;
use crate::clock::Clock;
use crate::config::{ApiConfig, ValidConfig};
use crate::domain::{Anomaly, AnomalyKind, Parameter, Summary, SummaryAuthor};
use crate::exposition::Exposition;
use crate::ingress::Ingress;
use crate::store::{AnomalyQuery, Metrics, Store};
use crate::summary::{self, FactsBuilder};
pub use errors::{ApiError, ErrorBody};
use query::Params;
pub use query::{DEFAULT_LIMIT, MAX_LIMIT};
pub use status::{SensorStatus, StatusBody, status_now};

/// Where the OpenAPI document is served.
const OPENAPI_PATH: &str = "/openapi.json";
/// Requests other than the ingestion endpoints carry small bodies at most; anything larger is
/// refused with 413. Ingestion takes up to `ingest.max_body`.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// How stale a served `/status` may be when only readings and uptime changed; a change of any
/// actor, of the model's or Redis's state, or of the anomalies shows at once.
const STATUS_REFRESH: Duration = Duration::from_millis(250);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    /// The `[api]` section the server started with: listen address, timeout and CORS change
    /// only with a restart, so they are read once here rather than per request.
    api: ApiConfig,
    store: Arc<Store>,
    ingress: Arc<Ingress>,
    clock: Clock,
    supervisor: Option<ActorRef<SupervisorMsg>>,
    exposition: Exposition,
    /// Keyed by (anomalies version, limit).
    anomalies_body: BodyCache<(u64, usize)>,
    /// Keyed by the anomalies version.
    metrics_body: BodyCache<u64>,
    /// Keyed by (health version, anomalies version, [`STATUS_REFRESH`] period).
    status_body: BodyCache<(u64, u64, i64)>,
}

impl AppState {
    pub fn new(
        config: ValidConfig,
        store: Arc<Store>,
        ingress: Arc<Ingress>,
        clock: Clock,
        supervisor: Option<ActorRef<SupervisorMsg>>,
    ) -> Self {
        Self {
            inner: Arc::new(Shared {
                api: config.api.clone(),
                exposition: Exposition::new(Arc::clone(&store), Arc::clone(&ingress), clock),
                store,
                ingress,
                clock,
                supervisor,
                anomalies_body: BodyCache::default(),
                metrics_body: BodyCache::default(),
                status_body: BodyCache::default(),
            }),
        }
    }
}

/// One serialised body and the key of the data it was made from.
///
/// The key is read *before* the data, so a body is always at least as new as its key says: a
/// change that lands in between makes the next request re-make it, never serve it stale. Two
/// requests that miss together both serialise and the last one stored wins; both bodies are
/// correct for their key, so that costs only the duplicated work.
struct BodyCache<K> {
    slot: ArcSwapOption<(K, Bytes)>,
}

impl<K> Default for BodyCache<K> {
    fn default() -> Self {
        Self { slot: ArcSwapOption::empty() }
    }
}

impl<K: PartialEq> BodyCache<K> {
    fn get_or_make(&self, key: K, make: impl FnOnce() -> Bytes) -> Bytes {
        if let Some(cached) = self.slot.load().as_ref()
            && cached.0 == key
        {
            return cached.1.clone();
        }
        let body = make();
        self.slot.store(Some(Arc::new((key, body.clone()))));
        body
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wtf-monitor",
        description = "Anomalies, summaries, status and metrics of the water treatment facility monitor.\n\n\
            Every error answer is JSON: `{\"error\": \"what was wrong\"}` (with `parameter` when a query \
            parameter is at fault). Query parameters are checked strictly: an unknown, repeated, empty or \
            out-of-range one is a 400."
    ),
    tags(
        (name = "monitoring", description = "What the plant is doing"),
        (name = "ingestion", description = "Readings from the plant's equipment, gateways and SCADA"),
        (name = "alarms", description = "Alarms to acknowledge and shelve, and the audit trail"),
        (name = "operations", description = "What the daemon is doing"),
        (name = "documentation", description = "This document and its interactive page"),
    )
)]
struct ApiDoc;

/// The whole API, with its documentation at `/docs` and `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let api_config = state.inner.api.clone();
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(anomalies))
        .routes(routes!(summary))
        .routes(routes!(summaries))
        .routes(routes!(status))
        .routes(routes!(sensors::sensors))
        .routes(routes!(alarms::alarms))
        .routes(routes!(alarms::alarm))
        .routes(routes!(alarms::ack))
        .routes(routes!(alarms::shelve))
        .routes(routes!(alarms::unshelve))
        .routes(routes!(alarms::audit))
        .routes(routes!(events::events))
        .routes(routes!(limits::limits))
        .routes(routes!(metrics))
        .routes(routes!(prometheus))
        .routes(routes!(health));
    if state.inner.supervisor.is_some() {
        api = api.routes(routes!(inject_fault));
    }
    // Bodies of up to `ingest.max_body`, which the handlers bound themselves; every other route
    // takes at most `MAX_BODY_BYTES`.
    let ingestion = OpenApiRouter::new()
        .routes(routes!(ingest::readings, history::readings))
        .routes(routes!(ingest::write_v2))
        .routes(routes!(ingest::write_v1))
        .layer(axum::extract::DefaultBodyLimit::disable());
    let api = api
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .merge(ingestion)
        .layer(middleware::from_fn_with_state(state.clone(), reads_allowed));
    let (routes, mut openapi) = api.with_state(state).split_for_parts();
    document_docs(&mut openapi);
    // Serialised once: the document cannot change while the server runs.
    let openapi_json = to_bytes(&openapi);
    let app = routes
        .route(OPENAPI_PATH, get(move || std::future::ready(json_body(openapi_json.clone()))))
        .merge(docs::routes(OPENAPI_PATH))
        .merge(dashboard::routes())
        .fallback(errors::not_found)
        // After every route, the documentation's included: it applies to the routes already there.
        .method_not_allowed_fallback(errors::method_not_allowed);
    harden(app, &api_config)
}

/// With `auth.read = "token"`, every read needs a token of any role; `/health` stays open for
/// probes. Writes check their own roles.
async fn reads_allowed(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    if !is_read || request.uri().path() == "/health" {
        return next.run(request).await;
    }
    match state.inner.store.auth().check(ingest::presented(request.headers(), None), crate::auth::Action::Read) {
        Ok(_) => next.run(request).await,
        Err(_) => {
            ApiError::Unauthorized("reads need a token (auth.read = \"token\"): Authorization: Bearer <token>".into())
                .into_response()
        }
    }
}

/// The layers every route, fallback and documentation page goes through.
fn harden(app: Router, config: &ApiConfig) -> Router {
    let context = errors::ErrorContext { request_timeout: config.request_timeout, max_body_bytes: MAX_BODY_BYTES };
    let app = app
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.request_timeout))
        // Outside the two layers above, so their 408 and 413 get a JSON body too.
        .layer(middleware::from_fn_with_state(context, errors::json_errors));
    let app = match cors(config) {
        // Outside the layers above, so error answers carry the CORS headers and a browser can read them.
        Some(cors) => app.layer(cors),
        None => app,
    };
    // Outermost: every answer, CORS preflights included, carries them.
    app.layer(middleware::from_fn(security::security_headers))
}

/// CORS only for the configured origins; with none configured, no CORS headers at all, so a
/// browser refuses cross-origin reads. Never credentials: the API has no sessions to share.
fn cors(config: &ApiConfig) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> =
        config.cors_allowed_origins.iter().filter_map(|origin| origin.parse().ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::HEAD])
            .allow_headers([header::CONTENT_TYPE])
            .allow_credentials(false),
    )
}

/// `/docs` and `/openapi.json` are served by plain routes rather than annotated handlers; they
/// are listed too, so the document names every public route.
fn document_docs(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder};
    use utoipa::openapi::{ContentBuilder, ResponseBuilder};
    let page = |id: &str, summary: &str, description: &str, content_type: &str| {
        let response =
            ResponseBuilder::new().description(description).content(content_type, ContentBuilder::new().build());
        OperationBuilder::new()
            .tag("documentation")
            .operation_id(Some(id))
            .summary(Some(summary))
            .response("200", response.build())
            .build()
    };
    openapi.paths.add_path_operation(
        OPENAPI_PATH,
        vec![HttpMethod::Get],
        page("openapi", "This OpenAPI document.", "The OpenAPI 3.1 document", "application/json"),
    );
    openapi.paths.add_path_operation(
        "/",
        vec![HttpMethod::Get],
        page(
            "dashboard",
            "The operator's dashboard.",
            "The dashboard page: trends with their limits, alarms to acknowledge and shelve, anomalies, the latest \
             summary, status lights; it and its files (under /dashboard/) are served from the binary",
            "text/html",
        ),
    );
    openapi.paths.add_path_operation(
        docs::DOCS_PATH,
        vec![HttpMethod::Get],
        page(
            "docs",
            "Interactive documentation (Swagger UI).",
            "The Swagger UI page (also at /docs/); it and its scripts and styles are served from the binary, \
             so it works with no internet",
            "text/html",
        ),
    );
}

fn json_body(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    // Our plain types always serialise (serde_json writes a NaN as null); should one ever fail,
    // say so in the log and answer with valid JSON rather than a 500.
    serde_json::to_vec(value).map(Bytes::from).unwrap_or_else(|err| {
        tracing::error!(error = %err, "cannot serialise an answer");
        Bytes::from_static(b"null")
    })
}

/// The newest anomalies, newest first.
#[utoipa::path(
    get,
    path = "/anomalies",
    tag = "monitoring",
    params(
        ("limit" = Option<usize>, Query, description = "How many, 1 to 1000 (default 50)", minimum = 1, maximum = 1000, example = 50),
        ("sensor_id" = Option<String>, Query, description = "Only this sensor", example = "wtf-pipe-1"),
        ("parameter" = Option<Parameter>, Query, description = "Only this parameter", example = "pressure"),
        ("type" = Option<AnomalyKind>, Query, description = "Only this kind of anomaly", example = "spike"),
        ("since" = Option<String>, Query, format = DateTime, description = "Only anomalies at or after this RFC 3339 time", example = "2025-05-19T10:00:00Z"),
    ),
    responses(
        (status = 200, description = "Anomalies of the last 24 hours, newest first", body = [Anomaly]),
        (status = 400, description = "A query parameter is unknown, repeated, empty or invalid", body = ErrorBody,
            example = json!({"error": "invalid query parameter limit: must be a whole number from 1 to 1000, got \"0\"", "parameter": "limit"})),
    )
)]
async fn anomalies(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let store = &state.inner.store;
    let query = query::anomaly_query(raw.as_deref(), &store.config(), |sensor_id| {
        state.inner.ingress.lane(sensor_id).is_some() || store.anomalies.holds_sensor(sensor_id)
    })?;
    if query != AnomalyQuery::newest(query.limit) {
        // Filtered lists are asked for rarely and vary too much to be worth keeping.
        return Ok(json_body(to_bytes(&store.anomalies.query(&query))));
    }
    let key = (store.anomalies.version(), query.limit);
    Ok(json_body(state.inner.anomalies_body.get_or_make(key, || to_bytes(&store.anomalies.query(&query)))))
}

/// The latest summary of recent anomalies.
#[utoipa::path(
    get,
    path = "/summary",
    tag = "monitoring",
    responses(
        (status = 200, description = "The latest summary; before the first window closes, a template summary of the \
            state so far (`generated_by: fallback`, `model: null`, the window from start to now)", body = Summary),
        (status = 400, description = "This endpoint takes no query parameters", body = ErrorBody),
    )
)]
async fn summary(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    query::no_params(raw.as_deref())?;
    let store = &state.inner.store;
    let body = match store.summaries.latest() {
        Some(latest) => to_bytes(&latest),
        None => to_bytes(&summary_so_far(store, &state.inner.ingress, state.inner.clock.now())),
    };
    Ok(json_body(body))
}

/// Anomalies read for the summary before the first: the first window is seconds old, so more
/// is a flood, and a count of the first ones says enough.
const SO_FAR_MOST: usize = 10_000;

/// Before the first summary: the daemon's state so far, from the store and the ingress.
fn summary_so_far(store: &Store, ingress: &Ingress, now: DateTime<Utc>) -> Summary {
    let started_at = store.health.started_at();
    let config = store.config();
    let (mut watched, mut reporting) = (0, 0);
    for lane in ingress.lanes() {
        watched += 1;
        if status::SensorStatus::of(&lane, config.simulation.enabled && !lane.registered, store).active {
            reporting += 1;
        }
    }
    let query = AnomalyQuery { limit: SO_FAR_MOST, since: Some(started_at), ..AnomalyQuery::default() };
    let mut builder = FactsBuilder::with_units(started_at, summary::units_of(&config));
    store.anomalies.query(&query).iter().rev().for_each(|anomaly| builder.add(anomaly));
    let facts = builder.finish(now, &ongoing_conditions(ingress));
    Summary {
        summary: summary::so_far(started_at, reporting, watched, &facts),
        timestamp: now,
        generated_by: SummaryAuthor::Fallback,
        model: None,
        anomaly_count: facts.anomaly_count,
        window_start: started_at,
        window_end: now,
    }
}

/// Recent summaries, newest first.
#[utoipa::path(
    get,
    path = "/summaries",
    tag = "monitoring",
    params(("limit" = Option<usize>, Query, description = "How many, 1 to 1000 (default 50)", minimum = 1, maximum = 1000, example = 10)),
    responses(
        (status = 200, description = "Recent summaries, newest first; empty before the first", body = [Summary]),
        (status = 400, description = "A query parameter is unknown, repeated, empty or invalid", body = ErrorBody),
    )
)]
async fn summaries(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let limit = Params::parse(raw.as_deref(), &["limit"])?.limit()?;
    Ok(json_body(to_bytes(&state.inner.store.summaries.recent(limit))))
}

/// Statistics over the last 100 anomalies.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "monitoring",
    responses(
        (status = 200, description = "Counts over the newest 100 anomalies (all of them when fewer)", body = Metrics,
            example = json!({
                "total_anomalies": 100,
                "anomalies_by_type": {"spike": 79, "drift": 7, "dropout": 14},
                "anomalies_by_parameter": {"temperature": 4, "pressure": 8, "flow": 88},
                "anomalies_by_sensor": {"wtf-pipe-1": 35, "wtf-pipe-2": 31, "wtf-pipe-3": 34},
                "last_update": "2025-05-19T14:11:18.009Z"
            })),
        (status = 400, description = "This endpoint takes no query parameters", body = ErrorBody),
    )
)]
async fn metrics(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    query::no_params(raw.as_deref())?;
    let store = &state.inner.store;
    let key = store.anomalies.version();
    let parameters = store.config().parameter_list();
    Ok(json_body(state.inner.metrics_body.get_or_make(key, || to_bytes(&store.anomalies.metrics(&parameters)))))
}

/// The daemon's metrics for Prometheus to scrape.
///
/// Readings by source, anomalies by type and parameter, alarms by state and priority, actor
/// restarts, summaries and the model's latency, Redis, MQTT, the journal, live streams and the
/// notification receivers; in the Prometheus text exposition format 0.0.4. With
/// `auth.read = "token"`, Prometheus sends a token (`authorization` in its scrape config).
#[utoipa::path(
    get,
    path = "/metrics/prometheus",
    tag = "monitoring",
    responses(
        (status = 200, description = "The metrics, as of now", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String,
            example = "# HELP wtf_readings_total Readings accepted, by source.\n# TYPE wtf_readings_total counter\nwtf_readings_total{source=\"simulator\"} 5210\n"),
        (status = 400, description = "This endpoint takes no query parameters", body = ErrorBody),
    )
)]
async fn prometheus(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    query::no_params(raw.as_deref())?;
    let text = state.inner.exposition.render();
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(crate::exposition::CONTENT_TYPE))], text).into_response())
}

/// Liveness, for load balancers and container healthchecks.
///
/// Takes no parameters but ignores a query string rather than refusing it: a probe that adds a
/// cache-buster must not mark a working daemon down.
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
struct HealthBody {
    /// Always `ok`: a daemon that answers at all is alive; `/status` says how well.
    #[schema(example = "ok")]
    pub status: String,
}

/// Component flags, per-sensor readings, restarts, Redis and model state.
#[utoipa::path(
    get,
    path = "/status",
    tag = "operations",
    responses(
        (status = 200, description = "The state of every part of the daemon", body = StatusBody),
        (status = 400, description = "This endpoint takes no query parameters", body = ErrorBody),
    )
)]
async fn status(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    query::no_params(raw.as_deref())?;
    let shared = &state.inner;
    let store = &shared.store;
    let now = shared.clock.now();
    let period = now.timestamp_millis().div_euclid(STATUS_REFRESH.as_millis() as i64);
    let key = (store.health.version(), store.anomalies.version(), period);
    Ok(json_body(shared.status_body.get_or_make(key, || to_bytes(&status_now(store, &shared.ingress, now)))))
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
        (status = 400, description = "A query parameter is unknown or invalid", body = ErrorBody),
        (status = 404, description = "No such actor", body = ErrorBody),
        (status = 503, description = "The supervisor did not answer", body = ErrorBody),
    )
)]
async fn inject_fault(
    State(state): State<AppState>,
    Path(actor): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let params = Params::parse(raw.as_deref(), &["fault"])?;
    let fault = match params.get("fault") {
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
