# syntax=docker/dockerfile:1
#
# wtf-monitor container image: a Rust build stage and a small Debian runtime.
#
#   docker build -t wtf-monitor .
#   docker run --rm -p 8000:8000 -e WTF_REDIS__URL= -e WTF_LLM__URL= wtf-monitor
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts below.

# The toolchain the project is developed with; the builder's Debian release matches the runtime's,
# so the binary links against the same glibc it runs with.
ARG RUST_VERSION=1.95

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

# --- Runtime ----------------------------------------------------------------------------------
# The binary needs only glibc: no TLS stack is linked (Redis and Ollama are spoken to in plain
# TCP on a private network), so no ca-certificates, no OpenSSL, no curl (the healthcheck is the
# binary itself).
FROM debian:bookworm-slim AS runtime

# A fixed, unprivileged UID/GID (10001, clear of the distribution's system range), so host-side
# policies and volume permissions can name it.
RUN groupadd --system --gid 10001 wtf-monitor \
 && useradd --system --uid 10001 --gid wtf-monitor --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin wtf-monitor

COPY --from=builder /out/wtf-monitor /usr/local/bin/wtf-monitor
# The reference config; compose and `docker run -e WTF_SECTION__KEY=...` override single keys,
# or mount a whole file over it.
COPY --chmod=0644 config/wtf-monitor.toml /etc/wtf-monitor/wtf-monitor.toml

# The daemon writes nothing to disk: state lives in memory and Redis, logs go to stdout.
USER 10001:10001
WORKDIR /

EXPOSE 8000

# `wtf-monitor healthcheck` asks http://127.0.0.1:8000/health and exits 0 on 200. If the API is
# moved with WTF_API__LISTEN, override the healthcheck with `--url` to match.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["wtf-monitor", "healthcheck"]

# SIGTERM starts a graceful shutdown that ends well within Docker's 10 s grace period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["wtf-monitor"]
CMD ["--config", "/etc/wtf-monitor/wtf-monitor.toml"]
