//! The HTTP/1.1 server: accepts connections, caps how many are served at once, bounds how long a
//! client may take to send a request's head, and stops gracefully.
//!
//! `axum::serve` has no header timeout, so a client dripping one header byte every few seconds
//! held its connection (and a file descriptor) for as long as it liked, and a few thousand such
//! clients made `/health` time out. Here each connection runs on hyper's own HTTP/1 builder:
//!
//! - `api.header_read_timeout` bounds the time from when the server waits for a head (after
//!   connecting, or after the previous answer on a kept-alive connection) to its last byte, so
//!   a slow head and an idle kept-alive connection are both closed after it. It is per head, not
//!   per answer: a long-lived answer (a live stream) is not cut by it;
//! - `api.max_connections` is the most connections served at once; one more is answered 503
//!   with the API's JSON error and closed, and the log says so, at most once a minute;
//! - every head passes `RequestHeadGuard` first, so even the HTTP layer's own refusals are JSON;
//! - a write that makes no progress for `api.write_timeout` closes the connection
//!   (`WriteStallGuard`): a client that stopped reading a live stream lets go of it;
//! - on shutdown, idle connections close at once and busy ones after their current answer; the
//!   caller bounds how long that may take by dropping (aborting) the server's task, which aborts
//!   every connection with it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::request_head::{Handback, RequestHeadGuard, error_answer};
use super::write_stall::WriteStallGuard;

/// The limits a server runs with, from `[api]`.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    /// A write that makes no progress this long (the client stopped reading) closes the connection.
    pub write_timeout: Duration,
    pub max_connections: usize,
}

/// How long a refusal (503, 400, 408…) may take to write before the connection is dropped.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes read and discarded after a refusal, before the socket is closed.
const LINGER_BYTES: usize = 256 * 1024;
/// At most one log line per this long about refused connections or failed accepts.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Pause after an accept that failed for lack of resources (no file descriptor left), so the
/// loop does not spin while the process is out of them.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish.
pub async fn serve(listener: TcpListener, app: Router, limits: ServerLimits, shutdown: impl Future<Output = ()>) {
    let app = app.layer(axum::middleware::from_fn(close_after_chunked));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A refused pipelined head ends the reading side; the answer in progress still goes out.
        .half_close(true);
    let (closing, closed) = watch::channel(false);
    let over_capacity = RateLimitedLog::new();
    let accept_failures = RateLimitedLog::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(err) => {
                        accept_failures.count();
                        if accept_failures.should_log() {
                            let missed = accept_failures.take_count();
                            tracing::warn!(error = %err, failures = missed, "cannot accept a connection");
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let connection = Connection {
                            builder: builder.clone(),
                            app: app.clone(),
                            closed: closed.clone(),
                            write_timeout: limits.write_timeout,
                        };
                        connections.spawn(connection.serve(stream, slot).in_current_span());
                    }
                    Err(_) => {
                        over_capacity.count();
                        if over_capacity.should_log() {
                            tracing::warn!(
                                max_connections = limits.max_connections,
                                refused = over_capacity.take_count(),
                                "connection limit reached: refusing new connections with 503 (api.max_connections)"
                            );
                        }
                        let answer = error_answer(StatusCode::SERVICE_UNAVAILABLE, &format!(
                            "too many connections (api.max_connections = {}); try again shortly",
                            limits.max_connections
                        ));
                        connections.spawn(write_and_close(stream, answer).in_current_span());
                    }
                }
            }
        }
    }
    drop(listener);
    closing.send_replace(true);
    while connections.join_next().await.is_some() {}
}

/// Answers a chunked request with `Connection: close`: [`RequestHeadGuard`] checks heads only up
/// to a chunked body, so no head may follow one on the same connection.
async fn close_after_chunked(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    let mut response = next.run(request).await;
    if chunked {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// One accepted connection and what it needs.
struct Connection {
    builder: http1::Builder,
    app: Router,
    closed: watch::Receiver<bool>,
    write_timeout: Duration,
}

impl Connection {
    async fn serve(self, stream: TcpStream, _slot: OwnedSemaphorePermit) {
        let (guard, handback) = RequestHeadGuard::new(stream);
        let service = TowerToHyperService::new(self.app);
        // Boxed rather than pinned in place: it is dropped below, which drops the guard, which
        // hands the socket back.
        let io = TokioIo::new(WriteStallGuard::new(guard, self.write_timeout));
        let mut connection = Box::pin(self.builder.serve_connection(io, service));
        let mut closed = self.closed;
        let closing = async move {
            let _ = closed.wait_for(|closed| *closed).await;
        };
        let outcome = tokio::select! {
            outcome = connection.as_mut() => outcome,
            () = closing => {
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        };
        drop(connection);
        let timed_out = outcome.as_ref().is_err_and(hyper::Error::is_timeout);
        // hyper has dropped the guard by now, which handed the socket back.
        let Ok(Handback { io, refusal, partial_head }) = handback.await else { return };
        let answer = match refusal {
            Some(answer) => answer,
            None if timed_out && partial_head => error_answer(
                StatusCode::REQUEST_TIMEOUT,
                "the request head did not arrive within api.header_read_timeout",
            ),
            None => return,
        };
        write_and_close(io, answer).await;
    }
}

/// Writes a complete answer and closes, giving up on a client that does not read it.
///
/// The client may still be sending (the rest of a refused 70 KB request line): closing a socket
/// with unread data makes the kernel reset the connection, and the client may lose the answer
/// with it. So the sending side is shut first, and what the client still sends is read and
/// discarded, up to [`LINGER_BYTES`], until it closes too or the time is up.
async fn write_and_close(mut stream: TcpStream, answer: Bytes) {
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut discard = vec![0; 8 * 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut discard).await? {
                0 => break,
                read => drained += read,
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Counts events and lets one log line through per [`LOG_EVERY`], so a flood of refused
/// connections is reported without flooding the log.
struct RateLimitedLog {
    started: Instant,
    /// Milliseconds since `started` of the last line logged; negative before the first.
    last: AtomicI64,
    count: AtomicU64,
}

impl RateLimitedLog {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last: AtomicI64::new(-(LOG_EVERY.as_millis() as i64)),
            count: AtomicU64::new(0),
        }
    }

    fn count(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn should_log(&self) -> bool {
        let now = self.started.elapsed().as_millis() as i64;
        let last = self.last.load(Ordering::Relaxed);
        now - last >= LOG_EVERY.as_millis() as i64
            && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// The events counted since the last line.
    fn take_count(&self) -> u64 {
        self.count.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
