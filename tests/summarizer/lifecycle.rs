//! Crashes, restarts and the stop: what survives the summarizer (the last published window, the
//! backoff) and what does not (its model call).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ractor::ActorStatus;
use wtf_monitor::actors::Fault;
use wtf_monitor::actors::summarizer::SummarizerMsg;
use wtf_monitor::domain::SummaryAuthor;

use super::{Harness, SilentOllama};

/// Waits (real time) until `done`, at most `limit`.
async fn until(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_crash_during_a_call_loses_no_window_and_leaves_no_call_running() {
    let ollama = SilentOllama::start().await;
    let url = ollama.url.clone();
    let mut harness = Harness::start(move |llm| {
        llm.url = url;
        llm.interval = Duration::from_secs(1);
        llm.min_interval = Duration::from_secs(1);
        llm.timeout = Duration::from_secs(60);
    })
    .await;
    let started = harness.clock.now();
    harness.spikes(5);
    // The window closes after a second and the model is asked; it never answers.
    until(Duration::from_secs(5), "the call", || ollama.connections.load(Ordering::SeqCst) == 1).await;
    assert_eq!(harness.summaries(), 0);

    let _ = harness.actor.cast(SummarizerMsg::InjectFault(Fault::Error));
    until(Duration::from_secs(2), "the crash", || harness.actor.get_status() == ActorStatus::Stopped).await;
    // The orphaned call was aborted with the actor: the connection is closed, Ollama is free.
    until(Duration::from_secs(2), "the abort", || ollama.closed_by_client.load(Ordering::SeqCst) == 1).await;
    assert_eq!(harness.summaries(), 0, "the orphan's answer can never be published");

    // The successor starts where the last *published* window ended: the start.
    harness.restart(|llm| llm.url = String::new()).await;
    let summary = harness.first_summary(Duration::from_secs(5)).await;
    assert_eq!(summary.anomaly_count, 5, "the spikes of the window in flight are summarised");
    assert!(summary.window_start <= started, "{} is after the first start", summary.window_start);
    assert_eq!(summary.generated_by, SummaryAuthor::Fallback);
    harness.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_summarizer_restarted_in_a_crash_loop_keeps_its_backoff() {
    let ollama = SilentOllama::start().await;
    let url = ollama.url.clone();
    let mut harness = Harness::start(move |llm| {
        llm.url = url;
        llm.timeout = Duration::from_secs(10);
    })
    .await;
    // The first window closes at 15 s; the call times out at 25 s; retry after 15 s + 60 s.
    tokio::time::sleep(Duration::from_secs(26)).await;
    assert_eq!(ollama.connections.load(Ordering::SeqCst), 1);
    assert_eq!(harness.summaries(), 1);
    // Three restarts, each closing a window 15 s later: none calls the failing model.
    for _ in 0..3 {
        harness.actor.stop(None);
        harness.restart(|_| {}).await;
        tokio::time::sleep(Duration::from_secs(16)).await;
    }
    assert_eq!(harness.summaries(), 4, "a window each");
    assert_eq!(ollama.connections.load(Ordering::SeqCst), 1, "the backoff outlived the restarts");
    let unasked = harness.store.summaries.latest().expect("a summary");
    assert_eq!((unasked.generated_by, unasked.model.as_deref()), (SummaryAuthor::Fallback, None), "no model was asked");
    harness.actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_flush_publishes_the_open_window_and_takes_no_other() {
    let harness = Harness::start(|_| {}).await;
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(harness.summaries(), 1, "the first, at 15 s");
    tokio::time::sleep(Duration::from_secs(10)).await;
    harness.spikes(4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    harness.actor.call(|reply| SummarizerMsg::Flush { reply }, Some(Duration::from_secs(5))).await.expect("flushed");
    let summaries = harness.store.summaries.recent(10);
    assert_eq!(summaries.len(), 2);
    assert_eq!(summaries[0].anomaly_count, 4, "the open window is summarised at the stop");
    assert_eq!(summaries[0].window_start, summaries[1].window_end);
    assert_eq!(summaries[0].window_end - summaries[0].window_start, chrono::TimeDelta::seconds(13));
    assert_eq!(harness.store.summaries.summarized_through().map(|(_, end)| end), Some(summaries[0].window_end));
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(harness.summaries(), 2, "no window after the flush");
    harness.actor.stop(None);
}

#[tokio::test]
async fn a_flush_does_not_wait_for_a_silent_model_longer_than_its_budget() {
    let ollama = SilentOllama::start().await;
    let url = ollama.url.clone();
    let harness = Harness::start(move |llm| {
        llm.url = url;
        llm.interval = Duration::from_secs(1);
        llm.min_interval = Duration::from_secs(1);
        llm.timeout = Duration::from_secs(60);
    })
    .await;
    harness.spikes(3);
    until(Duration::from_secs(5), "the call", || ollama.connections.load(Ordering::SeqCst) == 1).await;
    harness.spikes(2);
    let started = tokio::time::Instant::now();
    harness.actor.call(|reply| SummarizerMsg::Flush { reply }, Some(Duration::from_secs(10))).await.expect("flushed");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the flush took {took:?}");
    // The window in flight and the open one, both from the template, none lost.
    let summaries = harness.store.summaries.recent(10);
    let counts: Vec<u64> = summaries.iter().rev().map(|summary| summary.anomaly_count).collect();
    assert_eq!(counts, [3, 2]);
    assert!(summaries.iter().all(|summary| summary.generated_by == SummaryAuthor::Fallback));
    assert_eq!(summaries[0].window_start, summaries[1].window_end);
    until(Duration::from_secs(2), "both calls abandoned", || ollama.closed_by_client.load(Ordering::SeqCst) == 2).await;
    harness.actor.stop(None);
}

/// An Ollama without the model whose pull never finishes: `/api/generate` answers 404 "not
/// found", `/api/pull` is taken and never answered. Counts pulls and those the client closed.
async fn ollama_stuck_pulling() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (pulls, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (pulling, abandoned) = (Arc::clone(&pulls), Arc::clone(&closed));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (pulling, abandoned) = (Arc::clone(&pulling), Arc::clone(&abandoned));
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let Ok(read) = socket.read(&mut buffer).await else { return };
                if buffer[..read].starts_with(b"POST /api/pull") {
                    pulling.fetch_add(1, Ordering::SeqCst);
                    while matches!(socket.read(&mut buffer).await, Ok(read) if read > 0) {}
                    abandoned.fetch_add(1, Ordering::SeqCst);
                } else {
                    let body = r#"{"error":"model \"llama3.2:1b\" not found, try pulling it first"}"#;
                    let answer = format!(
                        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    (url, pulls, closed)
}

#[tokio::test]
async fn a_pull_in_progress_is_abandoned_when_the_summarizer_crashes() {
    let (url, pulls, closed) = ollama_stuck_pulling().await;
    let harness = Harness::start(move |llm| {
        llm.url = url;
        llm.interval = Duration::from_secs(1);
        llm.min_interval = Duration::from_secs(1);
    })
    .await;
    until(Duration::from_secs(5), "the pull", || pulls.load(Ordering::SeqCst) == 1).await;
    let _ = harness.actor.cast(SummarizerMsg::InjectFault(Fault::Panic));
    until(Duration::from_secs(2), "the pull abandoned", || closed.load(Ordering::SeqCst) == 1).await;
}
