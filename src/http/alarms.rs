//! Alarms for operators: `GET /alarms`, `GET /alarms/{id}`, `POST /alarms/{id}/ack`,
//! `POST /alarms/{id}/shelve`, `POST /alarms/{id}/unshelve`, and the audit trail `GET /audit`.
//!
//! Writes need a token of role `operator` or `admin`; the token's name is what the audit trail
//! records. A refused write (no token, a wrong one, a role too weak) is itself audited.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody};
use super::query::{Params, parse_sensor, parse_since};
use super::{AppState, json_body, to_bytes};
use crate::alarms::{Alarm, AlarmRefusal, AlarmState, Priority};
use crate::audit::{AuditAction, AuditEntry};
use crate::auth::{Action, Refusal};
use crate::ingress::bounded;

/// The body of `POST /alarms/{id}/ack` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    /// What the operator noted, kept with the alarm and in the audit trail (at most 500 characters).
    pub comment: Option<String>,
}

/// The body of `POST /alarms/{id}/shelve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ShelveRequest {
    /// How long, e.g. `30m`, `2h`; at most `alarms.max_shelve` (8 h by default).
    #[schema(example = "30m")]
    pub duration: String,
    pub reason: Option<String>,
}

/// The current alarms, newest first.
#[utoipa::path(
    get,
    path = "/alarms",
    tag = "alarms",
    params(
        ("state" = Option<AlarmState>, Query, description = "Only alarms in this state"),
        ("sensor_id" = Option<String>, Query, description = "Only this sensor's"),
        ("priority" = Option<Priority>, Query, description = "Only this priority"),
    ),
    responses(
        (status = 200, description = "Every alarm not yet cleared and acknowledged, newest first", body = [Alarm]),
        (status = 400, description = "A query parameter is unknown, repeated, empty or invalid", body = ErrorBody),
    )
)]
pub async fn alarms(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["state", "sensor_id", "priority"])?;
    let wanted_state = params.get("state").map(|name| parse_name::<AlarmState>("state", name)).transpose()?;
    let priority = params.get("priority").map(|name| parse_name::<Priority>("priority", name)).transpose()?;
    let store = &state.inner.store;
    let sensor = params
        .get("sensor_id")
        .map(|id| parse_sensor(id, |id| state.inner.ingress.lane(id).is_some() || store.anomalies.holds_sensor(id)))
        .transpose()?;
    let listed: Vec<Alarm> = store
        .alarms()
        .into_iter()
        .filter(|alarm| wanted_state.is_none_or(|wanted| alarm.state == wanted))
        .filter(|alarm| priority.is_none_or(|wanted| alarm.priority == wanted))
        .filter(|alarm| sensor.as_deref().is_none_or(|sensor| alarm.sensor_id.as_str() == sensor))
        .collect();
    Ok(json_body(to_bytes(&listed)))
}

/// One alarm.
#[utoipa::path(
    get,
    path = "/alarms/{id}",
    tag = "alarms",
    params(("id" = String, Path, description = "The alarm's id (its anomaly's)")),
    responses(
        (status = 200, description = "The alarm", body = Alarm),
        (status = 404, description = "No such alarm (never raised, or cleared and acknowledged)", body = ErrorBody),
    )
)]
pub async fn alarm(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let alarm = state.inner.store.alarm(&id).ok_or_else(|| ApiError::NoSuchAlarm(bounded(&id, 64)))?;
    Ok(json_body(to_bytes(&alarm)))
}

/// Acknowledges an alarm: an active one stays active (the process clears it), a cleared one goes.
#[utoipa::path(
    post,
    path = "/alarms/{id}/ack",
    tag = "alarms",
    params(
        ("id" = String, Path, description = "The alarm's id"),
        ("Authorization" = String, Header, description = "Bearer <token> with role operator or admin"),
    ),
    request_body(content = AckRequest, description = "Optional", example = json!({"comment": "valve V-12 checked, pressure falling"})),
    responses(
        (status = 200, description = "The alarm as it is now (state normal when it is gone)", body = Alarm),
        (status = 400, description = "The body is not the JSON shown", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token's role may not acknowledge", body = ErrorBody),
        (status = 404, description = "No such alarm", body = ErrorBody),
    )
)]
pub async fn ack(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = operator(&state, &headers, &format!("POST /alarms/{}/ack", bounded(&id, 64)))?;
    let request: AckRequest = optional_json(&body)?;
    let now = state.inner.clock.now();
    let alarm = state.inner.store.ack(&id, &actor, request.comment.as_deref(), now).map_err(refused)?;
    Ok(json_body(to_bytes(&alarm)))
}

/// Shelves an alarm: listed as shelved, no notification, back by itself at expiry.
#[utoipa::path(
    post,
    path = "/alarms/{id}/shelve",
    tag = "alarms",
    params(
        ("id" = String, Path, description = "The alarm's id"),
        ("Authorization" = String, Header, description = "Bearer <token> with role operator or admin"),
    ),
    request_body(content = ShelveRequest, example = json!({"duration": "30m", "reason": "pump P-3 under maintenance"})),
    responses(
        (status = 200, description = "The alarm, shelved", body = Alarm),
        (status = 400, description = "No duration, one that is not a duration, or one beyond alarms.max_shelve", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token's role may not shelve", body = ErrorBody),
        (status = 404, description = "No such alarm", body = ErrorBody),
    )
)]
pub async fn shelve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = operator(&state, &headers, &format!("POST /alarms/{}/shelve", bounded(&id, 64)))?;
    let request: ShelveRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::BadBody(bounded(&format!("the body must be {{\"duration\": \"30m\", \"reason\": …}}: {err}"), 200))
    })?;
    let duration = humantime::parse_duration(request.duration.trim()).map_err(|_| {
        ApiError::BadBody(format!("duration {:?} is not a duration such as 30m or 2h", bounded(&request.duration, 40)))
    })?;
    let now = state.inner.clock.now();
    let alarm = state.inner.store.shelve(&id, &actor, duration, request.reason.as_deref(), now).map_err(refused)?;
    Ok(json_body(to_bytes(&alarm)))
}

/// Unshelves an alarm before its shelve runs out.
#[utoipa::path(
    post,
    path = "/alarms/{id}/unshelve",
    tag = "alarms",
    params(
        ("id" = String, Path, description = "The alarm's id"),
        ("Authorization" = String, Header, description = "Bearer <token> with role operator or admin"),
    ),
    responses(
        (status = 200, description = "The alarm, unshelved", body = Alarm),
        (status = 401, description = "No token, or not a valid one", body = ErrorBody),
        (status = 403, description = "The token's role may not unshelve", body = ErrorBody),
        (status = 404, description = "No such alarm", body = ErrorBody),
    )
)]
pub async fn unshelve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let actor = operator(&state, &headers, &format!("POST /alarms/{}/unshelve", bounded(&id, 64)))?;
    let alarm = state.inner.store.unshelve(&id, &actor, state.inner.clock.now()).map_err(refused)?;
    Ok(json_body(to_bytes(&alarm)))
}

/// The audit trail, newest first.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "alarms",
    params(
        ("limit" = Option<usize>, Query, description = "How many, 1 to 1000 (default 50)", minimum = 1, maximum = 1000),
        ("since" = Option<String>, Query, format = DateTime, description = "Only entries at or after this RFC 3339 time"),
    ),
    responses(
        (status = 200, description = "Acknowledgements, shelves, reloads and refused writes, newest first", body = [AuditEntry]),
        (status = 400, description = "A query parameter is unknown, repeated, empty or invalid", body = ErrorBody),
    )
)]
pub async fn audit(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["limit", "since"])?;
    let since: Option<DateTime<Utc>> = params.get("since").map(parse_since).transpose()?;
    Ok(json_body(to_bytes(&state.inner.store.audit_entries(params.limit()?, since))))
}

/// The name of the operator making this request; a refusal is audited, then answered 401/403.
fn operator(state: &AppState, headers: &HeaderMap, target: &str) -> Result<String, ApiError> {
    let store = &state.inner.store;
    let auth = store.auth();
    let refusal = match auth.check(super::ingest::presented(headers, None), Action::Operate) {
        Ok(Some(principal)) => return Ok(principal.name.to_string()),
        Ok(None) => Refusal::Unauthenticated,
        Err(refusal) => refusal,
    };
    let (actor, error) = match refusal {
        Refusal::Unauthenticated => (
            "anonymous".to_owned(),
            ApiError::Unauthorized(if auth.is_empty() {
                "no token is configured: add an [[auth.tokens]] entry with role \"operator\" (see the README)"
                    .to_owned()
            } else {
                "a valid token is needed: Authorization: Bearer <token>".to_owned()
            }),
        ),
        Refusal::Forbidden(principal) => {
            let error = format!(
                "this token's role ({}) may not do this; it takes {}",
                principal.role.as_str(),
                Action::Operate.roles()
            );
            (principal.name.to_string(), ApiError::Forbidden(error))
        }
    };
    let now = state.inner.clock.now();
    store.audit(AuditEntry {
        at: now,
        actor,
        action: AuditAction::Refused,
        target: target.to_owned(),
        detail: error.to_string(),
    });
    Err(error)
}

/// An optional JSON body: empty is the default.
fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|err| ApiError::BadBody(bounded(&format!("the body is not the JSON expected: {err}"), 200)))
}

fn refused(refusal: AlarmRefusal) -> ApiError {
    match refusal {
        AlarmRefusal::Unknown(id) => ApiError::NoSuchAlarm(id),
        AlarmRefusal::ShelveTooLong(_) => ApiError::BadBody(refusal.to_string()),
    }
}

fn parse_name<T: std::str::FromStr + strum::VariantArray + Into<&'static str> + Copy>(
    parameter: &str,
    name: &str,
) -> Result<T, ApiError> {
    name.parse().map_err(|_| {
        let names: Vec<&str> = T::VARIANTS.iter().map(|variant| (*variant).into()).collect();
        ApiError::bad(parameter, format!("must be one of {}, got {:?}", names.join(", "), bounded(name, 40)))
    })
}
