//! Every request head is checked before hyper parses it, so that a request the HTTP layer refuses
//! (a malformed line, a target over [`MAX_TARGET_BYTES`], a head over [`MAX_HEAD_BYTES`] or with
//! more than [`MAX_HEADER_FIELDS`] fields) is answered with the API's JSON error like any other.
//!
//! hyper answers those itself, with an empty body and no way to change it. So [`RequestHeadGuard`]
//! sits between the socket and hyper: it holds back the bytes of each head until the head is
//! complete, checks it with the same parser and the same rules hyper applies, and passes on only
//! heads hyper will take. It follows the framing of each request (`Content-Length` bodies are
//! counted through) to know where the next head starts; after a chunked body it stops checking,
//! and the router answers that request with `Connection: close`, so no unchecked head follows.
//!
//! A refused head ends what hyper reads (end of stream). The answer is written once hyper has let
//! go of the connection, after any answer it was still writing: the guard hands the socket back
//! to the connection's task when dropped ([`Handback`]), and the task writes the refusal. The same
//! path answers 408 to a client whose head was still arriving when the header timeout struck.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::{Method, StatusCode, Uri};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use super::errors::ErrorBody;

/// Longest request target (path and query) taken; a longer one is answered 414.
const MAX_TARGET_BYTES: usize = 8 * 1024;
/// Longest request head (request line and header fields) taken; a longer one is answered 431.
const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most header fields in one request; more is answered 431. hyper's own limit, so it never refuses.
const MAX_HEADER_FIELDS: usize = 100;

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// What the connection's task gets back when hyper drops the guard.
pub struct Handback<IO> {
    pub io: IO,
    /// A refused head's answer, to write before closing.
    pub refusal: Option<Bytes>,
    /// Part of a head had arrived when the connection ended: a header timeout is worth a 408.
    pub partial_head: bool,
}

/// Wraps a client's connection; see the module doc.
pub struct RequestHeadGuard<IO> {
    io: Option<IO>,
    /// Read from the client, not yet checked.
    inbound: BytesMut,
    /// Checked, waiting for hyper to read.
    checked: BytesMut,
    /// How much of `inbound` is known to hold no end of head: a head dripped in byte by byte is
    /// scanned once, not once per byte.
    scanned: usize,
    phase: Phase,
    refusal: Option<Bytes>,
    client_done: bool,
    handback: Option<oneshot::Sender<Handback<IO>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Passing on a body of this many more bytes.
    Body(u64),
    /// After a chunked body: everything passes unchecked (the connection closes after it).
    Unchecked,
    /// A head was refused: hyper reads the end of the stream.
    Refused,
}

impl<IO> RequestHeadGuard<IO> {
    pub fn new(io: IO) -> (Self, oneshot::Receiver<Handback<IO>>) {
        let (handback, receiver) = oneshot::channel();
        let guard = Self {
            io: Some(io),
            inbound: BytesMut::new(),
            checked: BytesMut::new(),
            scanned: 0,
            phase: Phase::Head,
            refusal: None,
            client_done: false,
            handback: Some(handback),
        };
        (guard, receiver)
    }

    /// Moves what can be decided from `inbound` to `checked`.
    fn advance(&mut self) {
        match self.phase {
            Phase::Head if !self.inbound.is_empty() => match self.complete_head() {
                Verdict::Incomplete => {
                    let line_ended = self.inbound.contains(&b'\n');
                    if !line_ended && self.inbound.len() > MAX_TARGET_BYTES + 64 {
                        self.refuse(StatusCode::URI_TOO_LONG, target_too_long());
                    } else if self.inbound.len() > MAX_HEAD_BYTES {
                        self.refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, head_too_large());
                    }
                }
                Verdict::Refused(status, message) => self.refuse(status, message),
                Verdict::Complete { length, framing } => {
                    self.scanned = 0;
                    self.checked.extend_from_slice(&self.inbound.split_to(length));
                    self.phase = match framing {
                        Framing::Length(0) => Phase::Head,
                        Framing::Length(bytes) => Phase::Body(bytes),
                        Framing::Chunked => Phase::Unchecked,
                    };
                }
            },
            Phase::Head | Phase::Refused => {}
            Phase::Body(remaining) => {
                let take = remaining.min(self.inbound.len() as u64);
                self.checked.extend_from_slice(&self.inbound.split_to(take as usize));
                self.phase = if take == remaining { Phase::Head } else { Phase::Body(remaining - take) };
            }
            Phase::Unchecked => {
                let all = self.inbound.split();
                self.checked.extend_from_slice(&all);
            }
        }
    }

    /// Checks the head once its end has arrived.
    fn complete_head(&mut self) -> Verdict {
        // An empty line ends the head; httparse, like hyper, takes a bare LF for CRLF.
        let from = self.scanned.saturating_sub(3);
        let ended = self.inbound[from..].windows(2).any(|pair| pair == b"\n\n")
            || self.inbound[from..].windows(3).any(|triple| triple == b"\n\r\n");
        if !ended {
            self.scanned = self.inbound.len();
            return Verdict::Incomplete;
        }
        let verdict = check_head(&self.inbound);
        if verdict == Verdict::Incomplete {
            // Only empty lines before a request line ended here; look past them next time.
            self.scanned = self.inbound.len();
        }
        verdict
    }

    fn refuse(&mut self, status: StatusCode, message: String) {
        self.inbound.clear();
        self.phase = Phase::Refused;
        self.refusal = Some(error_answer(status, &message));
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for RequestHeadGuard<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.checked.is_empty() {
                let n = buf.remaining().min(this.checked.len());
                buf.put_slice(&this.checked[..n]);
                this.checked.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.phase == Phase::Refused {
                return Poll::Ready(Ok(()));
            }
            if this.client_done {
                // The client stopped mid-head: hand over what came, hyper says it is incomplete.
                let rest = this.inbound.split();
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.checked.extend_from_slice(&rest);
                continue;
            }
            this.advance();
            if !this.checked.is_empty() || this.phase == Phase::Refused {
                continue;
            }
            let Some(io) = this.io.as_mut() else { return Poll::Ready(Ok(())) };
            // Read on the stack and keep only what came: a connection that waits (a live stream
            // waiting for its client to close, an idle keep-alive) then holds no read buffer.
            // Left uninitialised: zeroing 16 KiB for every read of a small request showed up.
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut read = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(io).poll_read(cx, &mut read))?;
            let filled = read.filled();
            if filled.is_empty() {
                this.client_done = true;
            } else {
                this.inbound.extend_from_slice(filled);
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for RequestHeadGuard<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.io.as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, data),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    /// Forwarded, so hyper writes a response's head and body in one `writev` rather than
    /// copying them together first.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.io.as_mut() {
            Some(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A refusal is still to be written, by the task the socket is handed back to.
        if self.refusal.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.io.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<IO> Drop for RequestHeadGuard<IO> {
    fn drop(&mut self) {
        if let (Some(io), Some(handback)) = (self.io.take(), self.handback.take()) {
            let partial_head = self.phase == Phase::Head && !self.inbound.is_empty();
            let _ = handback.send(Handback { io, refusal: self.refusal.take(), partial_head });
        }
    }
}

/// How a checked request's body is framed.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Incomplete,
    Complete { length: usize, framing: Framing },
    Refused(StatusCode, String),
}

/// The rules hyper applies to a request head (`hyper::proto::h1::role::Server::parse`), with the
/// API's own, tighter limits on size.
fn check_head(bytes: &[u8]) -> Verdict {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    let length = match request.parse(bytes) {
        Ok(httparse::Status::Partial) => return Verdict::Incomplete,
        Ok(httparse::Status::Complete(length)) => length,
        Err(httparse::Error::TooManyHeaders) => {
            let message = format!("more than {MAX_HEADER_FIELDS} header fields");
            return Verdict::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message);
        }
        Err(err) => return Verdict::Refused(StatusCode::BAD_REQUEST, format!("malformed request: {err}")),
    };
    let bad = |message: &str| Verdict::Refused(StatusCode::BAD_REQUEST, message.to_owned());
    if length > MAX_HEAD_BYTES {
        return Verdict::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, head_too_large());
    }
    let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return bad("malformed request line");
    };
    if target.len() > MAX_TARGET_BYTES {
        return Verdict::Refused(StatusCode::URI_TOO_LONG, target_too_long());
    }
    if Method::from_bytes(method.as_bytes()).is_err() {
        return bad("malformed request: invalid method");
    }
    if Uri::try_from(target).is_err() {
        return bad("malformed request: invalid request target");
    }
    let mut content_length = None;
    let mut transfer_encoding = None;
    for field in request.headers.iter() {
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            if version == 0 {
                return bad("HTTP/1.0 requests cannot use Transfer-Encoding");
            }
            let value = std::str::from_utf8(field.value).unwrap_or_default();
            let last = value.rsplit(',').next().unwrap_or_default();
            transfer_encoding = Some(last.trim().eq_ignore_ascii_case("chunked"));
        } else if field.name.eq_ignore_ascii_case("content-length") {
            let Some(length) = digits(field.value) else { return bad("invalid Content-Length") };
            if content_length.is_some_and(|earlier| earlier != length) {
                return bad("several Content-Length fields that disagree");
            }
            content_length = Some(length);
        }
    }
    let framing = match (transfer_encoding, content_length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => return bad("Transfer-Encoding must end in chunked"),
        (None, length) => Framing::Length(length.unwrap_or(0)),
    };
    Verdict::Complete { length, framing }
}

/// A `Content-Length` value: decimal digits only, as hyper reads it, and well below `u64::MAX`.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn target_too_long() -> String {
    format!("request target longer than {MAX_TARGET_BYTES} bytes")
}

fn head_too_large() -> String {
    format!("request head larger than {MAX_HEAD_BYTES} bytes")
}

/// A complete HTTP/1.1 answer carrying the API's JSON error, for answers written without hyper.
pub fn error_answer(status: StatusCode, message: &str) -> Bytes {
    let body = serde_json::to_string(&ErrorBody { error: message.to_owned(), parameter: None })
        .unwrap_or_else(|_| String::from("{\"error\":\"error\"}"));
    let reason = status.canonical_reason().unwrap_or("Error");
    Bytes::from(format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-content-type-options: nosniff\r\nx-frame-options: DENY\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        body.len()
    ))
}
