//! Headers every answer carries, whatever made it: a handler, a layer, a fallback.
//!
//! - `X-Content-Type-Options: nosniff`: a browser takes a JSON error for JSON, never for a page
//!   to render, however a client's input ended up in it;
//! - `X-Frame-Options: DENY` and, on every HTML page without a policy of its own (`/docs`), a
//!   `Content-Security-Policy` that allows only this server's own scripts, styles and images and
//!   no framing: the pages load nothing from another host, so nothing else is needed. The
//!   dashboard sets a stricter one itself.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The policy of every HTML page. Swagger UI sets styles inline, hence `'unsafe-inline'` for
/// styles only; its icons are `data:` images.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub(super) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A page with its own, stricter policy (the dashboard) keeps it.
    if html && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    }
    response
}
