//! Deployment checks that start the real binary.
//!
//! - [`healthcheck`]: `wtf-monitor healthcheck` asks where the daemon listens (needs nothing).

#[path = "../common/mod.rs"]
mod common;

mod healthcheck;
