//! The only place that names OS signals: SIGHUP, SIGTERM and SIGINT become [`Intent`]s.
//!
//! The daemon reacts to intents, not signals, so tests drive it with a channel of their own.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// What an operator asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// SIGHUP (`systemctl reload`): reload the configuration.
    Reload,
    /// SIGTERM or SIGINT: stop gracefully; a second one stops at once.
    Shutdown,
}

/// Starts listening; intents arrive on the returned channel for as long as the process runs.
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<Intent>> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (intents, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let intent = tokio::select! {
                Some(()) = hangup.recv() => Intent::Reload,
                Some(()) = terminate.recv() => Intent::Shutdown,
                Some(()) = interrupt.recv() => Intent::Shutdown,
                else => break,
            };
            if intents.send(intent).is_err() {
                break;
            }
        }
    });
    Ok(receiver)
}
