//! The actors of the daemon, one per file; the crate docs draw the tree.
//!
//! Each actor holds dependencies and state, and calls into the pure modules for every decision.

pub mod api;
pub mod detector;
pub mod mirror;
pub mod mqtt;
pub mod notifier;
pub mod peers;
pub mod simulator;
pub mod summarizer;
pub mod supervisor;
pub mod traced;

use ractor::ActorProcessingErr;

/// A failure made on purpose, to drill supervision (`[debug] fault_injection = true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// The handler panics.
    Panic,
    /// The handler returns an error.
    Error,
}

impl Fault {
    /// Fails the calling actor's handler the way asked.
    pub fn trigger(self, actor: &str) -> Result<(), ActorProcessingErr> {
        tracing::warn!(fault = ?self, "failing on purpose: fault injected");
        match self {
            Fault::Panic => panic!("fault injected into {actor}"),
            Fault::Error => Err(format!("fault injected into {actor}").into()),
        }
    }
}
