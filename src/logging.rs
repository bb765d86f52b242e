//! Logs to stdout, as text or JSON, with a level that a reload can change.
//!
//! Every event carries a `component` field (supervisor, sensor, detector, llm, redis, api), so
//! `journalctl -u wtf-monitor | grep component=detector` follows one part of the daemon.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::{LogConfig, LogFormat};

/// Changes the log filter of the running daemon.
#[derive(Clone)]
pub struct LogControl {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl LogControl {
    /// A filter that validation accepted; `Err` carries the reason if it cannot be applied.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(level).map_err(|err| err.to_string())?;
        self.filter.reload(filter).map_err(|err| err.to_string())
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the configured level.
pub fn init(config: &LogConfig) -> LogControl {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| config.level.clone());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_target(false).with_ansi(std::io::stdout().is_terminal()))
            .try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(false))
            .try_init(),
    };
    // Already installed (a test that starts the daemon twice): keep the first.
    let _ = result;
    LogControl { filter: handle }
}
