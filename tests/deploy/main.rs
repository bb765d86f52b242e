//! Deployment, for real: the systemd unit under a booted systemd, the image built and the compose
//! stack brought up by a real Docker engine, with both Compose tools.
//!
//! - [`systemd`]: boots Debian 12 with `systemd-nspawn` (its own network: nothing in it reaches
//!   the host's Redis), installs the unit, binary and config as the README says, and drives the
//!   service with `systemctl`: start through READY=1, reload, the watchdog, a bad config, stop,
//!   `systemd-analyze security`.
//! - [`compose`]: starts a `dockerd` of its own (own socket, data directory and networks, no
//!   firewall rules), packages the binary cargo built for this run with the Dockerfile's
//!   `runtime-prebuilt` target, and runs docker-compose.yml with `docker compose` and with
//!   `docker-compose`, the images no registry here serves replaced by local stand-ins.
//! - [`healthcheck`]: `wtf-monitor healthcheck` asks where the daemon listens (needs nothing).
//!
//! The two scenarios need root and the tools `.ci/run` installs (systemd-container, debootstrap,
//! docker.io, docker-compose, and Compose v2 as a CLI plugin). Without them each says why and
//! passes, but under CI (`CI` set) a missing tool fails the run. `WTF_SKIP_DEPLOY_TESTS=1` skips
//! them. They run side by side with each other and with the rest of the suite: each has its own
//! machine or engine, on its own network, and they share only the cache, under locks.
//!
//! What is slow is cached outside the repository (see [`cache`]): a first run makes two Debian
//! roots with debootstrap and builds the stand-in images (a few minutes); later runs reuse them.
//! Each scenario prints the time of its steps to stderr, which the test harness does not capture.

#[path = "../common/mod.rs"]
mod common;

mod cache;
mod compose;
mod engine;
mod healthcheck;
mod host;
mod machine;
mod systemd;
