//! What the API answers when a request cannot be served: one [`ApiError`] enum, one JSON shape
//! ([`ErrorBody`]), and a middleware that gives that shape to the error answers made outside the
//! handlers too.
//!
//! Clients (dashboards, scripts, the operator's `curl | jq`) parse every answer as JSON. The
//! handlers' own errors are JSON by construction; but tower-http's timeout (408) and body limit
//! (413) answer with an empty or plain-text body, and Swagger UI answers an unknown asset with an
//! empty 404. [`json_errors`] rewrites those, so no 4xx or 5xx leaves the daemon without
//! `{"error": …}`.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// What went wrong with a request, as the client sees it. Messages name the problem and never
/// carry internals (paths on disk, addresses, panics).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid query parameter {parameter}: {message}")]
    BadQuery { parameter: String, message: String },
    #[error("no such endpoint: {0}")]
    NotFound(String),
    #[error("no alarm {0:?}: never raised, or cleared and acknowledged")]
    NoSuchAlarm(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("the request took longer than {} and was abandoned", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The body as a whole cannot be read (nothing of it was taken).
    #[error("{0}")]
    BadBody(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// An error answer made outside the handlers (e.g. an axum extractor's rejection), kept with
    /// its status and the text it came with.
    #[error("{message}")]
    Other { status: StatusCode, message: String },
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "error": "invalid query parameter limit: must be a whole number from 1 to 1000, got \"abc\"",
    "parameter": "limit"
}))]
pub struct ErrorBody {
    /// What was wrong, for a person.
    pub error: String,
    /// The query parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

/// Most characters of a client's input (a path, a parameter name, a method) an error echoes.
const MAX_ECHO_CHARS: usize = 128;

/// A client's input as an error may echo it: at most [`MAX_ECHO_CHARS`].
fn echo(text: &str) -> String {
    crate::ingress::bounded(text, MAX_ECHO_CHARS)
}

impl ApiError {
    /// A bad query parameter; its name is client input, so it is echoed bounded.
    pub(crate) fn bad(parameter: &str, message: impl Into<String>) -> Self {
        ApiError::BadQuery { parameter: echo(parameter), message: message.into() }
    }

    /// No route for `path`.
    pub(crate) fn no_route(path: &str) -> Self {
        ApiError::NotFound(echo(path))
    }

    fn wrong_method(method: &Method, path: &str) -> Self {
        ApiError::MethodNotAllowed { method: echo(method.as_str()), path: echo(path) }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadQuery { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::NoSuchAlarm(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Other { status, .. } => *status,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let parameter = match self {
            ApiError::BadQuery { parameter, .. } => Some(parameter.clone()),
            _ => None,
        };
        ErrorBody { error: self.to_string(), parameter }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let challenge = matches!(self, ApiError::Unauthorized(_));
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The router's fallback: no route matches the path.
pub(super) async fn not_found(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

/// A route matches the path but not the method; axum keeps the `Allow` header it computed.
pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::wrong_method(&method, uri.path())
}

/// What [`json_errors`] needs to word the errors made by the layers.
#[derive(Clone, Copy, Debug)]
pub(super) struct ErrorContext {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
}

/// Longest plain-text error body kept as the message; anything longer is not a message.
const MAX_MESSAGE_BYTES: usize = 1024;

/// Rewrites error answers that are not JSON into [`ErrorBody`], keeping their status and headers
/// (`Allow`, CORS). Successful answers pass untouched, at the cost of one status check.
pub(super) async fn json_errors(State(context): State<ErrorContext>, request: Request, next: Next) -> Response {
    // Cheap copies (reference-counted or inline); the path is only read if the answer is an error.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::no_route(uri.path()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::wrong_method(&method, uri.path()),
        StatusCode::REQUEST_TIMEOUT => ApiError::Timeout(context.request_timeout),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge(context.max_body_bytes),
        _ => {
            let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await.unwrap_or_default();
            // A layer's text may quote the request (an extractor's rejection): bounded too.
            let text = crate::ingress::bounded(String::from_utf8_lossy(&text).trim(), 2 * MAX_ECHO_CHARS);
            let message =
                if text.is_empty() { status.canonical_reason().unwrap_or("error").to_lowercase() } else { text };
            ApiError::Other { status, message }
        }
    };
    let mut rewritten = error.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name, value.clone());
        }
    }
    rewritten
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value: &HeaderValue| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}
