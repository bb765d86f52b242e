//! Runs the daemon: builds the shared state, starts the supervisor, and turns operator intents
//! (reload, shutdown) into actions until the process should end.
//!
//! It takes its intents as a channel, so the library never touches OS signals and tests can
//! pass their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::actors::simulator::Pace;
use crate::actors::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg, Verdict};
use crate::actors::traced::Traced;
use crate::audit::{AuditAction, AuditEntry};
use crate::clock::Clock;
use crate::config::diff::{describe, diff, live_part};
use crate::config::{ConfigSource, ValidConfig, load_valid};
use crate::health::{Component, ReloadOutcome};
use crate::ingress::Ingress;
use crate::logging::{LogControl, component_span};
use crate::signals::Intent;
use crate::store::Store;

/// How long a graceful shutdown may take before the process exits anyway.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(8);

/// How the daemon ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Asked to stop, and stopped cleanly.
    Stopped,
    /// A second stop request arrived during the graceful stop.
    Interrupted,
    /// The graceful stop did not finish within its time; some work may be lost.
    TimedOut,
    /// The supervisor gave up on a failing actor; the reason.
    GaveUp(String),
    /// Stopped, but this many anomalies never reached Redis (it refused, or never answered).
    LeftBehind(u64),
}

/// Everything `run` needs besides the config.
pub struct Daemon {
    pub config: ValidConfig,
    pub source: ConfigSource,
    pub intents: mpsc::UnboundedReceiver<Intent>,
    pub logging: Option<LogControl>,
}

/// Runs until asked to stop or until the supervisor gives up. Start-up failures (the listen
/// address taken, …) come back as `Err` with the reason.
pub async fn run(daemon: Daemon) -> anyhow::Result<Ending> {
    // The daemon's own start, reload and stop lines name the supervisor, as its actor's do.
    run_as_supervisor(daemon).instrument(component_span(Component::Supervisor)).await
}

async fn run_as_supervisor(daemon: Daemon) -> anyhow::Result<Ending> {
    let Daemon { config, source, mut intents, logging } = daemon;
    let clock = Clock::start();
    let store = Arc::new(Store::new(config.clone(), clock));
    let ingress = Arc::new(Ingress::new(&config, clock));
    store.health.set_config(|health| health.source = source.to_string());
    // Before any actor runs, so `/anomalies` serves after a restart what it served before it.
    // Where the peers' journal streams end, read before the restore: the followers apply what
    // comes after, so nothing written between the restore and the first read is missed.
    let redis = component_span(Component::Redis);
    crate::actors::peers::mark_positions_at_start(&config, &store).instrument(redis.clone()).await;
    crate::actors::mirror::restore_at_start(&config, &store, &clock).instrument(redis).await;
    let seed = config.simulation.seed.unwrap_or_else(fresh_seed);
    tracing::info!(config = %source, seed, sensors = config.sensors.ids.len(), "starting");
    log_redis_in_use(&config);
    warn_stray_variables();

    let verdict = Arc::new(Verdict::default());
    let stop_requested = Arc::new(AtomicBool::new(false));
    let args = SupervisorArgs {
        config: config.clone(),
        store: Arc::clone(&store),
        ingress,
        clock,
        verdict: Arc::clone(&verdict),
        stop_requested: Arc::clone(&stop_requested),
        seed,
        pace: Pace::Scheduled,
    };
    let (supervisor, mut supervisor_done) = Actor::spawn(None, Traced::new(Supervisor, Component::Supervisor), args)
        .await
        .map_err(|err| anyhow::anyhow!("cannot start: {}", root_cause(&err)))?;
    notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = spawn_watchdog(supervisor.clone());

    let ending = loop {
        tokio::select! {
            _ = &mut supervisor_done => break gave_up(&verdict),
            intent = intents.recv() => match intent {
                Some(Intent::Reload) => {
                    // A stop asked for during a reload wins: the reload is left to finish (or
                    // give way, see `SupervisorArgs::stop_requested`) behind the stop.
                    let interrupted = tokio::select! {
                        () = reload(&supervisor, &store, &source, logging.as_ref(), &clock) => None,
                        _ = &mut supervisor_done => Some(false),
                        () = wait_for_stop(&mut intents) => Some(true),
                    };
                    match interrupted {
                        None => {}
                        Some(false) => break gave_up(&verdict),
                        Some(true) => {
                            stop_requested.store(true, Ordering::SeqCst);
                            break shut_down(&supervisor, &mut supervisor_done, &mut intents).await;
                        }
                    }
                }
                Some(Intent::Shutdown) | None => {
                    stop_requested.store(true, Ordering::SeqCst);
                    break shut_down(&supervisor, &mut supervisor_done, &mut intents).await;
                }
            },
        }
    };
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    let left_behind = store.health.redis().left_behind.unwrap_or(0);
    if ending == Ending::Stopped && left_behind > 0 {
        return Ok(Ending::LeftBehind(left_behind));
    }
    Ok(ending)
}

/// Says which Redis the daemon writes into, and under which prefix: the shipped config points at
/// a Redis on localhost, which on a shared host may be someone else's.
fn log_redis_in_use(config: &ValidConfig) {
    let _redis = component_span(Component::Redis).entered();
    let redis = &config.redis;
    if redis.url.is_empty() {
        tracing::info!("redis.url is empty: in memory only, nothing is written to Redis");
    } else {
        let url = crate::config::redact_url(&redis.url);
        tracing::info!(
            %url,
            key_prefix = %redis.key_prefix,
            "writing into this Redis under this key prefix (redis.url = \"\" keeps everything in memory)"
        );
    }
}

/// `WTF_` variables that set nothing and are not refused are still worth a line in the log.
fn warn_stray_variables() {
    for stray in crate::config::stray_variables().into_iter().filter(|stray| !stray.refused) {
        tracing::warn!(variable = %stray.name, "environment variable ignored: {}", stray.message);
    }
}

/// Only a stop request ends the supervisor cleanly, and that leaves through `shut_down`: a
/// supervisor that ended by itself gave up, or died.
fn gave_up(verdict: &Verdict) -> Ending {
    Ending::GaveUp(verdict.gave_up().unwrap_or_else(|| "the supervisor stopped unexpectedly".into()))
}

/// Waits for a stop request, letting further reload requests go (one is running).
async fn wait_for_stop(intents: &mut mpsc::UnboundedReceiver<Intent>) {
    loop {
        if let Some(Intent::Shutdown) | None = intents.recv().await {
            return;
        }
    }
}

async fn shut_down(
    supervisor: &ActorRef<SupervisorMsg>,
    supervisor_done: &mut ractor::concurrency::JoinHandle<()>,
    intents: &mut mpsc::UnboundedReceiver<Intent>,
) -> Ending {
    tracing::info!("shutting down");
    notify(&[sd_notify::NotifyState::Stopping]);
    let graceful = async {
        let _ = ractor::call!(supervisor, |reply| SupervisorMsg::Shutdown { reply });
        let _ = (&mut *supervisor_done).await;
    };
    let second_request = wait_for_stop(intents);
    tokio::select! {
        drained = tokio::time::timeout(SHUTDOWN_TIMEOUT, graceful) => match drained {
            Ok(()) => Ending::Stopped,
            Err(_) => Ending::TimedOut,
        },
        _ = second_request => Ending::Interrupted,
    }
}

/// Load → validate → diff → apply; on any failure the config in force stays.
async fn reload(
    supervisor: &ActorRef<SupervisorMsg>,
    store: &Store,
    source: &ConfigSource,
    logging: Option<&LogControl>,
    clock: &Clock,
) {
    notify(&[sd_notify::NotifyState::Reloading, monotonic_usec()]);
    warn_stray_variables();
    let outcome = match load_valid(source) {
        Err(error) => {
            for problem in &error.problems {
                tracing::error!(key = %problem.key, "reload refused: {}", problem.message);
            }
            tracing::error!(config = %source, "reload refused; the previous configuration stays in force");
            let details: Vec<String> = error.problems.iter().map(ToString::to_string).collect();
            audit_reload(store, clock, source, format!("refused: {}", details.join("; ")));
            ReloadOutcome { at: clock.now(), applied: false, details }
        }
        Ok(config) => {
            let level = config.log.level.clone();
            // The full diff is reported; only the live part goes into force.
            let changes = diff(store.config().as_ref(), &config);
            let described = describe(store.config().as_ref(), &config, 50);
            let live = live_part(store.config().as_ref(), config.into_inner()).validate();
            let config = match live {
                Ok(config) => config,
                Err(problems) => {
                    let details: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    tracing::error!(problems = ?details, "reload refused: the new settings do not fit those that need a restart");
                    store.health.set_config(|health| {
                        health.last_reload = Some(ReloadOutcome { at: clock.now(), applied: false, details });
                    });
                    notify(&[sd_notify::NotifyState::Ready]);
                    return;
                }
            };
            let applied = ractor::call!(supervisor, |reply| SupervisorMsg::Reload {
                config: Box::new(config),
                changes: changes.clone(),
                reply
            });
            match applied {
                Err(err) => {
                    tracing::error!(error = %err, "reload not applied");
                    ReloadOutcome { at: clock.now(), applied: false, details: vec![err.to_string()] }
                }
                Ok(()) => {
                    if changes.log
                        && let Some(logging) = logging
                        && let Err(err) = logging.set_level(&level)
                    {
                        tracing::warn!(error = %err, "log level not changed");
                    }
                    for key in &changes.needs_restart {
                        tracing::warn!(key = %key, "changed, but applies only after a restart");
                    }
                    tracing::info!(changed = ?changes.changed, "configuration reloaded");
                    let detail = if described.is_empty() { "no change".to_owned() } else { described.join("; ") };
                    audit_reload(store, clock, source, detail);
                    let mut details: Vec<String> =
                        changes.changed.iter().map(|key| format!("changed: {key}")).collect();
                    details.extend(changes.needs_restart.iter().map(|key| format!("needs a restart: {key}")));
                    ReloadOutcome { at: clock.now(), applied: true, details }
                }
            }
        }
    };
    store.health.set_config(|health| {
        if outcome.applied {
            health.loaded_at = outcome.at;
        }
        health.last_reload = Some(outcome);
    });
    notify(&[sd_notify::NotifyState::Ready]);
}

/// Records a reload in the audit trail, as the system's (a signal carries no name).
fn audit_reload(store: &Store, clock: &Clock, source: &ConfigSource, detail: String) {
    let entry = AuditEntry {
        at: clock.now(),
        actor: "system".into(),
        action: AuditAction::Reload,
        target: source.to_string(),
        detail: crate::ingress::bounded(&detail, 4000),
    };
    store.audit(entry);
}

/// Pings systemd's watchdog while the supervisor answers; a wedged supervisor stops the pings
/// and systemd restarts the service.
fn spawn_watchdog(supervisor: ActorRef<SupervisorMsg>) -> Option<tokio::task::JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()? / 2;
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            let answered = ractor::call_t!(supervisor, |reply| SupervisorMsg::Children { reply }, 1000);
            if answered.is_ok() {
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
    }))
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd there is no socket; that is not an error.
    let _ = sd_notify::notify(states);
}

fn monotonic_usec() -> sd_notify::NotifyState<'static> {
    sd_notify::NotifyState::monotonic_usec_now().unwrap_or(sd_notify::NotifyState::Status("reloading"))
}

/// A seed drawn from the process's own randomness, for runs that did not pin one.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// The innermost error, which says what actually went wrong (e.g. "address in use").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    message
}
