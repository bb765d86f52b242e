//! Logs to stdout, as text or JSON, with a level that a reload can change.
//!
//! Every event carries a `component` field ([`Component`]: supervisor, sensor, detector, llm,
//! redis, api, ingress, mqtt, notify), so `journalctl -u wtf-monitor | grep component=detector`
//! follows one part of the daemon. It comes
//! from a span, [`component_span`]: each actor runs in one (`actors::traced`), and code that runs
//! on another's task (the ingress, a detector's lane) enters its own around what it logs.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::{LogConfig, LogFormat};
use crate::health::Component;

/// The span that names a part of the daemon in every line logged inside it.
///
/// At ERROR, so that no level filter drops it: a WARN line names its component too. Without a
/// parent, so that an actor spawned from inside another's span names one component, its own.
pub fn component_span(component: Component) -> tracing::Span {
    tracing::error_span!(parent: None, "run", component = %component.as_str())
}

/// Added to every filter: the component spans are always on, whatever the level says, so that
/// every line logged names its component even after a reload that widened the filter.
const COMPONENT_SPANS: &str = "wtf_monitor::logging=error";

/// `level` with the component spans on.
fn filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(format!("{level},{COMPONENT_SPANS}")).map_err(|err| err.to_string())
}

/// Changes the log filter of the running daemon.
#[derive(Clone)]
pub struct LogControl {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl LogControl {
    /// A filter that validation accepted; `Err` carries the reason if it cannot be applied.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        self.filter.reload(filter(level)?).map_err(|err| err.to_string())
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the configured level.
pub fn init(config: &LogConfig) -> LogControl {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| config.level.clone());
    let filter = filter(&level).unwrap_or_else(|_| EnvFilter::new(format!("info,{COMPONENT_SPANS}")));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_target(false).with_ansi(std::io::stdout().is_terminal()))
            .try_init(),
        LogFormat::Json => {
            registry.with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_span_list(false)).try_init()
        }
    };
    // Already installed (a test that starts the daemon twice): keep the first.
    let _ = result;
    LogControl { filter: handle }
}
