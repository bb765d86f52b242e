//! The ceiling `scripts/ingest_bench.sh` measures ingestion against: an axum server that reads a
//! body and parses it exactly as `POST /readings` and `POST /api/v2/write` do, then drops the
//! readings. Whatever the daemon takes beyond this is the cost of checking, queueing and
//! detecting. `GET /health` answers as the daemon's does, with nothing behind it: the ceiling
//! of the wrk runs in BENCHMARKS.md.
//!
//! `cargo run --release --example bare_ingest -- 127.0.0.1:18081`

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use wtf_monitor::config::LineProtocolConfig;
use wtf_monitor::ingress::line_protocol::{self, Precision};
use wtf_monitor::ingress::parse;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".into());
    let app = Router::new()
        .route("/readings", post(readings))
        .route("/api/v2/write", post(write))
        .route("/health", get(|| async { ([("content-type", "application/json")], r#"{"status":"ok"}"#) }));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("bare_ingest: listening on {listen}");
    axum::serve(listener, app).await
}

async fn readings(body: Bytes) -> (StatusCode, String) {
    match parse::json_body(&body, chrono::Utc::now()) {
        Ok(items) => (StatusCode::OK, format!("{{\"accepted\":{}}}", items.iter().filter(|item| item.is_ok()).count())),
        Err(why) => (StatusCode::BAD_REQUEST, why),
    }
}

async fn write(body: Bytes) -> StatusCode {
    let text = String::from_utf8_lossy(&body);
    let lines = line_protocol::parse(&text, &LineProtocolConfig::default(), Precision::Nanoseconds, chrono::Utc::now());
    std::hint::black_box(lines);
    StatusCode::NO_CONTENT
}
