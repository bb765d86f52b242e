# wtf-monitor container image: a small Debian runtime, with the binary either compiled in a Rust
# stage or built beforehand on a Debian 12 (bookworm) host.
#
#   docker build -t wtf-monitor .                                   # compile here (clean: ~8 min)
#   docker run --rm -p 8000:8000 -e WTF_REDIS__URL= -e WTF_LLM__URL= wtf-monitor
#
#   cargo build --release --locked                                  # or package a host build (seconds)
#   docker build --target runtime-prebuilt -t wtf-monitor .
#
# Needs BuildKit, the default builder since Docker 23 (set DOCKER_BUILDKIT=1 on 20.10), for the
# cache mounts and `COPY --chmod`. There is deliberately no `# syntax=` line: it makes BuildKit pull
# a frontend image from a registry before building, which fails on a host without one; the
# frontend built into Docker 20.10 and later reads everything below.

# The toolchain the project is developed with; the builder's Debian release matches the runtime's,
# so the binary links against the same glibc it runs with.
ARG RUST_VERSION=1.95

# --- Runtime base -----------------------------------------------------------------------------
# Everything but the binary, shared by both ways of getting one. The binary needs only glibc: no
# TLS stack is linked (Redis and Ollama are spoken to in plain TCP on a private network), so no
# ca-certificates, no OpenSSL, no curl (the healthcheck is the binary itself). bookworm-slim
# names a Debian release, not a snapshot: rebuilding picks up its security updates.
FROM debian:bookworm-slim AS runtime-base

# A fixed, unprivileged UID/GID (10001, clear of the distribution's system range), so host-side
# policies and volume permissions can name it.
RUN groupadd --system --gid 10001 wtf-monitor \
 && useradd --system --uid 10001 --gid wtf-monitor --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin wtf-monitor

# The reference config; compose and `docker run -e WTF_SECTION__KEY=...` override single keys,
# or mount a whole file over it.
COPY --chmod=0644 config/wtf-monitor.toml /etc/wtf-monitor/wtf-monitor.toml

# The daemon writes nothing to disk: state lives in memory and Redis, logs go to stdout.
USER 10001:10001
WORKDIR /

EXPOSE 8000

# `wtf-monitor healthcheck` reads the config the way the daemon does (the file, then WTF_*
# variables such as WTF_API__LISTEN), asks /health on the address from api.listen (loopback when
# it listens on all interfaces) and exits 0 on 200. A config mounted elsewhere than the path
# below needs the same `--config` here.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["wtf-monitor", "healthcheck"]

# SIGTERM starts a graceful shutdown that ends well within Docker's 10 s grace period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["wtf-monitor"]
CMD ["--config", "/etc/wtf-monitor/wtf-monitor.toml"]

# --- Runtime from a binary built on the host ----------------------------------------------------
# `docker build --target runtime-prebuilt` packages a binary that already exists, so no stage
# above or below runs cargo. BINARY is a path inside the build context; .dockerignore lets
# target/release/wtf-monitor through and nothing else from target/. The host must be Debian 12
# (or have glibc 2.36 or older) for the binary to run here.
FROM runtime-base AS runtime-prebuilt
ARG BINARY=target/release/wtf-monitor
COPY --chmod=0755 ${BINARY} /usr/local/bin/wtf-monitor

# --- Build ------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src

# Only what the build reads: a change to docs, tests or deployment files does not rebuild.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY config ./config

# Dependency caching: the registry and target/ live in BuildKit cache mounts, so a rebuild after a
# source change recompiles only this crate. The mounts vanish after the step, hence the copy out.
# --locked builds exactly the dependency versions in Cargo.lock, or fails.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin wtf-monitor \
 && install -D -m 0755 target/release/wtf-monitor /out/wtf-monitor

# --- Runtime (the default target: the last stage) ---------------------------------------------
FROM runtime-base AS runtime
COPY --from=builder /out/wtf-monitor /usr/local/bin/wtf-monitor
