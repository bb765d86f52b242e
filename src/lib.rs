//! # wtf-monitor
//!
//! One daemon that watches a water treatment facility. Readings of the plant's parameters
//! (temperature, pressure and flow by default; whatever the configuration adds) come in from the
//! built-in simulator, `POST /readings`, the InfluxDB line protocol or MQTT; detectors raise and
//! clear anomalies; a summarizer words them for operators through a local language model; a
//! REST API serves it all; Redis keeps a mirror that survives restarts.
//!
//! ## The actor tree (ractor)
//!
//! ```text
//! supervisor ─┬─ simulator:<sensor>              one per simulated sensor: a source like any other
//!             ├─ detector:<sensor>:<parameter>   one per sensor × parameter; dropout timer
//!             ├─ summarizer                      facts → Ollama (or the template) → summary
//!             ├─ mirror                          the single writer to Redis
//!             ├─ mqtt                            the broker subscription (when mqtt.url is set)
//!             └─ api                             owns the HTTP server (reads, ingestion)
//!             ├─ peers                           journal streams shared with the plant's other daemons
//!             ├─ notifier                        alarm notifications: Alertmanager, webhooks
//!             │    └─ courier:<receiver> tasks   delivery from the outbox, retries with backoff
//!             └─ api                             owns the HTTP server (reads, ingestion, metrics)
//! ```
//!
//! ## Who talks to whom
//!
//! ```text
//! sources ──► ingress ──► detector:<sensor>:<parameter> ──► journal ──► store views, API,
//! (simulator, HTTP,       (routing, ordering, bounded        (sequence-    summarizer, mirror
//!  line protocol, MQTT)    inboxes, kept across restarts)      numbered)
//! ```
//!
//! - every source hands readings to the [`ingress::Ingress`], which checks them (known sensor,
//!   timestamp, order, finite values of configured parameters), queues each value in its
//!   detector's bounded [`ingress::Inbox`] and rings the detector; a full inbox refuses the
//!   reading. The inbox also holds the detector's episode state, so a detector restarted after a
//!   crash finds both where its predecessor left them;
//! - a detector runs the pure state machines of [`detection`] and records what they produce —
//!   anomalies raised, episodes cleared — in the [`store::Store`], which appends them to the
//!   [`journal::Journal`] and keeps the anomaly log `/anomalies` serves;
//! - readers follow the journal by sequence number (the mirror, the summarizer), so none can
//!   stall detection and a restarted one picks up where it left off; the API answers from the
//!   store's parts without a message round trip;
//! - MQTT is a source like the others: [`actors::mqtt`] keeps a persistent QoS 1 subscription and
//!   acknowledges a message only once the ingress took it; [`mqtt`] reads plain topics and
//!   Sparkplug B, whose death certificates queue in the inboxes so each detector raises its
//!   dropout at once, behind the values sent before;
//! - the notifier follows the journal's alarm events and queues each transition a receiver wants
//!   in that receiver's outbox ([`notify`]: in Redis, keyed by alarm and transition, so a restart
//!   or an outage loses nothing and sends nothing twice); its couriers deliver them;
//! - `/metrics/prometheus` ([`exposition`]) reads the live state at each scrape; the totals no
//!   other part keeps are in [`telemetry`];
//! - the mirror is the only writer to Redis (the outboxes excepted): it follows the journal, writes in pipelines laid
//!   out by [`redis_layout`], keeps a bounded backlog while Redis is away, and at start the
//!   daemon restores the last 24 h from Redis before any actor runs;
//! - [`actors::peers`] shares with the plant's other daemons, through journal streams in Redis,
//!   what they cannot see for themselves (anomalies, clears, summaries, alarm operations, audit:
//!   [`peers`]) and applies theirs to the store idempotently; summary windows are claimed so a
//!   pair writes each once;
//! - the supervisor restarts failed children (one-for-one, exponential backoff), starts the
//!   detectors of sensors that register themselves, and stops everything along one stop path
//!   (shutdown and give-up alike); [`signals`] turns SIGHUP and SIGTERM into reload and
//!   shutdown requests for it.
//!
//! - the summarizer closes a window of anomalies into [`summary::Facts`]; [`wording`] asks the
//!   model to fill in a form of choices built from them (Ollama's structured outputs, through
//!   [`llm`]) and the daemon writes the note; `wtf-monitor llm-bench` ([`llm_bench`]) measures
//!   that same path against a real model.
//!
//! The business logic lives in plain modules without actors, clocks or I/O — [`detection`],
//! [`simulation`], [`summary`], [`ingress::parse`], [`mqtt`] and [`config::diff`] — and is tested as
//! plain functions.

pub mod actors;
pub mod alarms;
pub mod audit;
pub mod auth;
pub mod backoff;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod detection;
pub mod domain;
pub mod exposition;
pub mod health;
pub mod history;
pub mod http;
pub mod ingress;
pub mod journal;
pub mod llm;
pub mod llm_bench;
pub mod load;
pub mod logging;
pub mod mqtt;
pub mod notify;
pub mod peers;
pub mod redis_layout;
pub mod redis_link;
pub mod restart;
pub mod signals;
pub mod simulation;
pub mod store;
pub mod summary;
pub mod telemetry;
pub mod wording;
