//! # wtf-monitor
//!
//! One daemon that watches a water treatment facility. Readings of temperature, pressure and flow
//! go through detectors that raise spikes, drifts and dropouts; a summarizer words the recent
//! anomalies for operators through a local language model; a REST API serves it all; Redis keeps
//! a mirror that survives restarts.
//!
//! ## The actor tree (ractor)
//!
//! ```text
//! supervisor ─┬─ simulator:<sensor>              one per sensor; readings on a fixed-rate schedule
//!             ├─ detector:<sensor>:<parameter>   one per sensor × parameter; drift and dropout timers
//!             ├─ summarizer                      facts → Ollama (or the template) → summary
//!             ├─ mirror                          the single writer to Redis
//!             └─ api                             owns the HTTP server
//! ```
//!
//! Who talks to whom:
//!
//! - a simulator sends each reading's values to its sensor's three detectors, and records the
//!   reading in the [`store::Store`];
//! - a detector runs the pure state machine of [`detection`] and records what it raises in the store;
//! - the store is the hub readers share: the API answers from its snapshots without a message
//!   round trip, and the summarizer and the mirror follow it by sequence number, so neither can
//!   stall detection and a restarted one picks up where it left off;
//! - the mirror is the only writer to Redis: it follows the store, writes in pipelines laid out
//!   by [`redis_layout`], and keeps a bounded backlog while Redis is away; at start the daemon
//!   restores the last 24 h from Redis into the store before any actor runs;
//! - the supervisor restarts failed children (one-for-one, exponential backoff) and gives up,
//!   ending the process non-zero, when one fails too often; [`signals`] turns SIGHUP and SIGTERM
//!   into reload and shutdown requests for it.
//!
//! - the summarizer closes a window of anomalies into [`summary::Facts`]; [`wording`] asks the
//!   model to fill in a form of choices built from them (Ollama's structured outputs, through
//!   [`llm`]) and the daemon writes the note; `wtf-monitor llm-bench` ([`llm_bench`]) measures
//!   that same path against a real model.
//!
//! The business logic lives in plain modules without actors, clocks or I/O — [`detection`],
//! [`simulation`], [`summary`] and [`config::diff`] — and is tested as plain functions.

pub mod actors;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod detection;
pub mod domain;
pub mod health;
pub mod http;
pub mod llm;
pub mod llm_bench;
pub mod load;
pub mod logging;
pub mod redis_layout;
pub mod redis_link;
pub mod restart;
pub mod signals;
pub mod simulation;
pub mod store;
pub mod summary;
pub mod wording;
