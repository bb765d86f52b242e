//! Readings from outside: `POST /readings` (JSON, NDJSON) and the InfluxDB line protocol
//! (`POST /api/v2/write`, `POST /write`), each handing what it reads to the [`Ingress`].
//!
//! Every write needs a token of role `ingest` or `admin`. A body is read up to
//! `ingest.max_body` and no further; each reading in it is judged on its own, so one bad item is
//! refused with its reason while the others are taken; a body that cannot be read at all is a
//! 400 and nothing of it is taken. When a detector's queue is full the answer is 429 with
//! `Retry-After`, and says which items were not taken, so a client retries those only.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorBody, query::Params};
use crate::auth::{Action, Refusal as AuthRefusal};
use crate::ingress::line_protocol::{self, Precision};
use crate::ingress::{Refusal, Source, parse};

/// Most rejected items an answer lists; the rest are counted.
const LISTED_REJECTIONS: usize = 1000;
/// What a client is told to wait before it retries a write the queues could not take.
const RETRY_AFTER_SECONDS: &str = "1";

/// The answer to `POST /readings`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"accepted": 2, "rejected": [{"index": 2, "error": "unknown sensor \"pump-9\": not in sensors.ids"}]}))]
struct IngestAnswer {
    /// Readings taken.
    pub accepted: usize,
    /// The items not taken, by their position in the body (from 0), with why; at most 1,000.
    pub rejected: Vec<Rejected>,
    /// How many items were not taken, listed or not.
    pub rejected_total: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    pub index: usize,
    pub error: String,
}

/// Takes readings: one object, an array of them, or NDJSON lines.
#[utoipa::path(
    post,
    path = "/readings",
    tag = "ingestion",
    request_body(content = [crate::domain::Reading], description = "A reading object, an array of them (application/json), or one per line (application/x-ndjson). `timestamp` is optional (the arrival time); any subset of the configured parameters.",
        example = json!([{"sensor_id": "wtf-pipe-1", "timestamp": "2025-05-19T10:15:00Z", "pressure": 2.1, "flow": 61.5}])),
    params(("Authorization" = String, Header, description = "Bearer <token> with role ingest or admin")),
    responses(
        (status = 200, description = "What was taken, and what was not with why", body = IngestAnswer),
        (status = 400, description = "The body cannot be read at all; nothing was taken", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token's role may not send readings", body = ErrorBody),
        (status = 413, description = "The body is larger than ingest.max_body", body = ErrorBody),
        (status = 415, description = "Not application/json or application/x-ndjson", body = ErrorBody),
        (status = 429, description = "A detector's queue is full: the items listed with \"queue is full\" were not taken; retry them after Retry-After seconds", body = IngestAnswer),
        (status = 503, description = "The daemon is shutting down", body = ErrorBody),
    )
)]
pub async fn readings(State(state): State<AppState>, RawQuery(raw): RawQuery, request: Request) -> Response {
    match take_readings(&state, raw.as_deref(), request).await {
        Ok(response) | Err(response) => response,
    }
}

async fn take_readings(state: &AppState, raw: Option<&str>, request: Request) -> Result<Response, Response> {
    super::query::no_params(raw).map_err(IntoResponse::into_response)?;
    let (parts, body) = request.into_parts();
    authorize(state, &parts.headers, None).map_err(IntoResponse::into_response)?;
    let ndjson = match media_type(&parts.headers).as_deref() {
        Some("application/json") => false,
        Some("application/x-ndjson" | "application/jsonl" | "application/jsonlines") => true,
        other => {
            let given = other.map_or_else(|| "none".to_owned(), |given| crate::ingress::bounded(given, 60));
            let error = format!("Content-Type must be application/json or application/x-ndjson, got {given}");
            return Err(ApiError::UnsupportedMediaType(error).into_response());
        }
    };
    let body = read_body(state, &parts.headers, body).await.map_err(IntoResponse::into_response)?;
    let now = state.inner.clock.now();
    let parsed = if ndjson { parse::ndjson_body(&body, now) } else { parse::json_body(&body, now) };
    let items = parsed.map_err(|why| {
        state.inner.ingress.count_malformed(Source::Http, &why);
        ApiError::BadBody(why).into_response()
    })?;
    let ingress = &state.inner.ingress;
    let mut answer = IngestAnswer { accepted: 0, rejected: Vec::new(), rejected_total: 0 };
    let (mut full, mut closing) = (false, false);
    let mut elsewhere: Option<u32> = None;
    for (index, item) in items.into_iter().enumerate() {
        let outcome = match item {
            Ok(reading) => ingress.submit(Source::Http, reading),
            Err(why) => {
                ingress.count_malformed(Source::Http, &why);
                Err(Refusal::Malformed(why))
            }
        };
        match outcome {
            Ok(()) => answer.accepted += 1,
            Err(refusal) => {
                full |= matches!(refusal, Refusal::Full { .. });
                closing |= matches!(refusal, Refusal::ShuttingDown);
                if let Refusal::WrongShard { shard, .. } = refusal {
                    elsewhere = Some(shard);
                }
                answer.rejected_total += 1;
                if answer.rejected.len() < LISTED_REJECTIONS {
                    answer.rejected.push(Rejected { index, error: refusal.to_string() });
                }
            }
        }
    }
    if closing && answer.accepted == 0 {
        return Err(ApiError::Unavailable(Refusal::ShuttingDown.to_string()).into_response());
    }
    // Every reading belongs to other shards: the client is talking to the wrong daemon.
    if let Some(shard) = elsewhere.filter(|_| answer.accepted == 0 && answer.rejected_total > 0) {
        let all_elsewhere = answer.rejected.iter().all(|item| item.error.contains("belongs to shard"));
        if all_elsewhere {
            let error = answer.rejected[0].error.clone();
            let body = serde_json::json!({"error": error, "shard": shard, "rejected": answer.rejected});
            return Ok((StatusCode::MISDIRECTED_REQUEST, axum::Json(body)).into_response());
        }
    }
    let status = if full { StatusCode::TOO_MANY_REQUESTS } else { StatusCode::OK };
    let mut response = (status, axum::Json(answer)).into_response();
    if full {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    }
    Ok(response)
}

/// Takes InfluxDB line protocol, as InfluxDB 2 does (a stock Telegraf's `outputs.influxdb_v2`).
#[utoipa::path(
    post,
    path = "/api/v2/write",
    tag = "ingestion",
    params(
        ("precision" = Option<String>, Query, description = "ns (default), us, ms or s"),
        ("org" = Option<String>, Query, description = "Accepted and ignored"),
        ("bucket" = Option<String>, Query, description = "Accepted and ignored"),
        ("Authorization" = String, Header, description = "Token <token> (or Bearer <token>) with role ingest or admin"),
    ),
    request_body(content = String, content_type = "text/plain", description = "Lines such as `plant,sensor_id=wtf-pipe-1 pressure=2.1,flow=61.5 1747649700000000000`"),
    responses(
        (status = 204, description = "Every line was taken"),
        (status = 400, description = "Some lines could not be read or were refused (the good ones were taken): {\"code\": \"invalid\", \"message\": …}"),
        (status = 401, description = "No token, or not a valid one"),
        (status = 413, description = "The body is larger than ingest.max_body"),
        (status = 429, description = "A detector's queue is full; retry after Retry-After seconds"),
    )
)]
pub async fn write_v2(State(state): State<AppState>, RawQuery(raw): RawQuery, request: Request) -> Response {
    write_lines(&state, raw.as_deref(), request, &["precision", "org", "bucket", "orgID"]).await
}

/// Takes InfluxDB line protocol, as InfluxDB 1 does (`u`/`p` query parameters, or a token header).
#[utoipa::path(
    post,
    path = "/write",
    tag = "ingestion",
    params(
        ("precision" = Option<String>, Query, description = "n or ns (default), u or us, ms, s"),
        ("db" = Option<String>, Query, description = "Accepted and ignored"),
        ("u" = Option<String>, Query, description = "Accepted and ignored"),
        ("p" = Option<String>, Query, description = "The token, when no Authorization header is sent"),
    ),
    request_body(content = String, content_type = "text/plain"),
    responses(
        (status = 204, description = "Every line was taken"),
        (status = 400, description = "Some lines could not be read or were refused (the good ones were taken)"),
        (status = 401, description = "No token, or not a valid one"),
        (status = 429, description = "A detector's queue is full; retry after Retry-After seconds"),
    )
)]
pub async fn write_v1(State(state): State<AppState>, RawQuery(raw): RawQuery, request: Request) -> Response {
    write_lines(&state, raw.as_deref(), request, &["precision", "db", "rp", "u", "p", "consistency"]).await
}

async fn write_lines(state: &AppState, raw: Option<&str>, request: Request, known: &[&str]) -> Response {
    let params = match Params::parse(raw, known) {
        Ok(params) => params,
        Err(error) => return influx_error(StatusCode::BAD_REQUEST, "invalid", &error.to_string()),
    };
    let (parts, body) = request.into_parts();
    if let Err(error) = authorize(state, &parts.headers, params.get("p")) {
        let code = if error.status() == StatusCode::FORBIDDEN { "forbidden" } else { "unauthorized" };
        return influx_error(error.status(), code, &error.to_string());
    }
    let precision = match params.get("precision").map(Precision::parse) {
        None => Precision::Nanoseconds,
        Some(Some(precision)) => precision,
        Some(None) => return influx_error(StatusCode::BAD_REQUEST, "invalid", "precision must be ns, us, ms or s"),
    };
    let body = match read_body(state, &parts.headers, body).await {
        Ok(body) => body,
        Err(error) => return influx_error(error.status(), "request too large", &error.to_string()),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return influx_error(StatusCode::BAD_REQUEST, "invalid", "the body is not UTF-8 text");
    };
    let config = state.inner.store.config();
    let lines = line_protocol::parse(text, &config.ingest.line_protocol, precision, state.inner.clock.now());
    let ingress = &state.inner.ingress;
    let (mut problems, mut refused, mut full) = (Vec::new(), 0usize, false);
    let (mut taken, mut elsewhere) = (0usize, None);
    for (number, line) in lines {
        let outcome = match line {
            Ok(reading) => ingress.submit(Source::LineProtocol, reading),
            Err(why) => {
                ingress.count_malformed(Source::LineProtocol, &why);
                Err(Refusal::Malformed(why))
            }
        };
        if let Err(Refusal::WrongShard { shard, .. }) = &outcome {
            elsewhere = Some(*shard);
        }
        if outcome.is_ok() {
            taken += 1;
        }
        if let Err(refusal) = outcome {
            full |= refusal.is_transient();
            refused += 1;
            if problems.len() < 5 {
                problems.push(format!("line {number}: {refusal}"));
            }
        }
    }
    if full {
        let mut response =
            influx_error(StatusCode::TOO_MANY_REQUESTS, "too many requests", "a detector's queue is full; retry");
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        return response;
    }
    if let Some(shard) =
        elsewhere.filter(|_| taken == 0 && problems.iter().all(|line| line.contains("belongs to shard")))
    {
        let message =
            format!("every line belongs to another shard (shard {shard} for the first): {}", problems.join("; "));
        return influx_error(StatusCode::MISDIRECTED_REQUEST, "misdirected", &message);
    }
    if refused > 0 {
        let more =
            if refused > problems.len() { format!(" (and {} more)", refused - problems.len()) } else { String::new() };
        let message = format!("partial write: {} line(s) refused: {}{more}", refused, problems.join("; "));
        return influx_error(StatusCode::BAD_REQUEST, "invalid", &message);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// InfluxDB's error shape, which its clients (Telegraf) read.
fn influx_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({"code": code, "message": message}))).into_response()
}

/// The token a request presents: `Authorization: Bearer <token>` or `Token <token>` (InfluxDB's
/// scheme), else the v1 `p` query parameter.
pub(super) fn presented<'a>(headers: &'a HeaderMap, password: Option<&'a str>) -> Option<&'a str> {
    let header = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let from_header = header.and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")).then(|| token.trim())
    });
    from_header.or(password)
}

/// Checks that the request may send readings.
fn authorize(state: &AppState, headers: &HeaderMap, password: Option<&str>) -> Result<(), ApiError> {
    let auth = state.inner.store.auth();
    if auth.is_empty() {
        return Err(ApiError::Unauthorized(
            "no token is configured: add an [[auth.tokens]] entry with role \"ingest\" to the configuration (see the README, \"Feeding it real data\")"
                .to_owned(),
        ));
    }
    match auth.check(presented(headers, password), Action::Ingest) {
        Ok(_) => Ok(()),
        Err(AuthRefusal::Unauthenticated) => {
            Err(ApiError::Unauthorized("a valid token is needed: Authorization: Bearer <token>".to_owned()))
        }
        Err(AuthRefusal::Forbidden(principal)) => Err(ApiError::Forbidden(format!(
            "this token's role ({}) may not send readings; it takes {}",
            principal.role.as_str(),
            Action::Ingest.roles()
        ))),
    }
}

/// The media type of the body, lowercased, without parameters (`; charset=utf-8`).
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

/// The body, at most `ingest.max_body` bytes: a larger one is refused before it is read whole.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.inner.store.config().ingest.max_body;
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::BodyTooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::BodyTooLarge(limit))
}
