//! The server on a real loopback socket, spoken to byte by byte as a slow, hostile or pipelining
//! client would. Real time, with timeouts of a few hundred milliseconds: hyper's timer and the
//! sockets do not follow tokio's paused clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::*;

const HEADER_TIMEOUT: Duration = Duration::from_millis(400);

struct Server {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(max_connections: usize) -> Server {
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/upload", post(|body: String| async move { format!("{} bytes", body.len()) }))
            // An answer that streams for longer than the header timeout, as the live stream does.
            .route(
                "/slow-stream",
                get(|| async {
                    let chunks = futures_util::stream::unfold(0, |sent| async move {
                        if sent == 3 {
                            return None;
                        }
                        tokio::time::sleep(HEADER_TIMEOUT).await;
                        Some((Ok::<_, std::io::Error>(format!("chunk {sent}\n")), sent + 1))
                    });
                    Body::from_stream(chunks)
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel();
        let limits = ServerLimits {
            header_read_timeout: HEADER_TIMEOUT,
            write_timeout: Duration::from_secs(30),
            max_connections,
        };
        let task = tokio::spawn(serve(listener, app, limits, async move {
            let _ = stopped.await;
        }));
        Server { address, stop: Some(stop), task }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.address).await.expect("connect")
    }

    /// Sends `request` on a new connection and reads until the server closes it.
    async fn exchange(&self, request: &[u8]) -> String {
        let mut stream = self.connect().await;
        stream.write_all(request).await.expect("send");
        read_to_close(&mut stream).await
    }
}

async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server did not close the connection; got {:?}", String::from_utf8_lossy(&answer));
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status and JSON body of the one answer in `answer`.
fn json_answer(answer: &str) -> (u16, Value) {
    let status = answer.get(9..12).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("{answer:?}"));
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{answer:?}"));
    assert!(head.contains("content-type: application/json"), "{head}");
    (status, serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {body:?}")))
}

#[tokio::test]
async fn requests_the_http_layer_refuses_are_answered_with_json() {
    let server = Server::start(16).await;
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let many_fields = format!("GET /health HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: b\r\n".repeat(120));
    let big_field = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(40_000));
    let cases: [(&[u8], u16, &str); 8] = [
        (b"GARBAGE\r\n\r\n", 400, "malformed request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "invalid header name"),
        (b"GET / HTTP/2.0\r\n\r\n", 400, "malformed request"),
        (long_target.as_bytes(), 414, "longer than 8192 bytes"),
        (many_fields.as_bytes(), 431, "more than 100 header fields"),
        (big_field.as_bytes(), 431, "larger than 32768 bytes"),
        (b"POST /upload HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", 400, "disagree"),
        (b"POST /upload HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "must end in chunked"),
    ];
    for (request, status, says) in cases {
        let answer = server.exchange(request).await;
        let (got, body) = json_answer(&answer);
        assert_eq!(got, status, "{answer}");
        assert!(body["error"].as_str().unwrap().contains(says), "{body}");
        assert!(answer.contains("x-content-type-options: nosniff"), "{answer}");
    }
}

#[tokio::test]
async fn a_bad_head_after_good_pipelined_requests_is_refused_after_their_answers() {
    let server = Server::start(16).await;
    let answer = server
        .exchange(b"POST /upload HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET GET /health HTTP/1.1\r\n\r\nGARBAGE\r\n\r\n")
        .await;
    let answers: Vec<&str> = answer.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 3, "{answer}");
    assert!(answers[0].starts_with("200") && answers[0].ends_with("4 bytes"), "the body was counted through: {answer}");
    assert!(answers[1].starts_with("200") && answers[1].ends_with("ok"), "{answer}");
    assert_eq!(json_answer(&format!("HTTP/1.1 {}", answers[2])).0, 400, "{answer}");
}

#[tokio::test]
async fn a_chunked_request_is_answered_and_the_connection_closed() {
    let server = Server::start(16).await;
    let answer = server
        .exchange(b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /health HTTP/1.1\r\n\r\n")
        .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("3 bytes"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "nothing after a chunked body is read: {answer}");
}

#[tokio::test]
async fn a_head_dripped_byte_by_byte_is_cut_off_with_a_408() {
    let server = Server::start(16).await;
    let mut stream = server.connect().await;
    let started = Instant::now();
    let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut cut_off = false;
    for byte in head.iter().cycle().take(100) {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > HEADER_TIMEOUT * 3 {
            break;
        }
    }
    let answer = read_to_close(&mut stream).await;
    let elapsed = started.elapsed();
    assert!(cut_off || answer.contains("408"), "{answer}");
    assert!(elapsed < HEADER_TIMEOUT * 4, "cut off after {elapsed:?}");
    assert_eq!(json_answer(&answer).0, 408, "{answer}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let server = Server::start(16).await;
    let mut stream = server.connect().await;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("send");
    let started = Instant::now();
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "one answer, then nothing: {answer}");
    let elapsed = started.elapsed();
    assert!(elapsed >= HEADER_TIMEOUT && elapsed < HEADER_TIMEOUT * 3, "closed after {elapsed:?}");
}

#[tokio::test]
async fn a_long_answer_is_not_cut_by_the_header_timeout() {
    let server = Server::start(16).await;
    let answer = server.exchange(b"GET /slow-stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    for chunk in ["chunk 0", "chunk 1", "chunk 2"] {
        assert!(answer.contains(chunk), "{chunk} missing after {HEADER_TIMEOUT:?} per chunk: {answer}");
    }
}

#[tokio::test]
async fn connections_past_the_cap_get_a_503_and_the_cap_frees_up() {
    let server = Server::start(2).await;
    // Two clients hold their slots with heads they never finish.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = server.connect().await;
        stream.write_all(b"GET /health HTTP/1.1\r\n").await.expect("send");
        holders.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let answer = server.exchange(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (status, body) = json_answer(&answer);
    assert_eq!(status, 503, "{answer}");
    assert!(body["error"].as_str().unwrap().contains("api.max_connections = 2"), "{body}");

    // The header timeout ends the holders; their slots serve others again.
    for mut holder in holders {
        assert_eq!(json_answer(&read_to_close(&mut holder).await).0, 408);
    }
    let answer = server.exchange(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn shutdown_lets_the_answer_in_progress_finish_and_closes_idle_connections() {
    let mut server = Server::start(16).await;
    let mut idle = server.connect().await;
    let mut busy = server.connect().await;
    busy.write_all(b"GET /slow-stream HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = server.stop.take().expect("running").send(());
    assert_eq!(read_to_close(&mut idle).await, "", "an idle connection closes at once");
    let answer = read_to_close(&mut busy).await;
    assert!(answer.contains("chunk 2"), "{answer}");
    tokio::time::timeout(Duration::from_secs(2), &mut server.task).await.expect("the server ends").expect("no panic");
}
