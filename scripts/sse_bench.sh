#!/usr/bin/env bash
# Raise-to-delivery latency of GET /events and what its clients cost the daemon, with 1 and with
# 1,000 concurrent clients on loopback (examples/sse_bench.rs): p50/p99 from the reading sent to
# each client reading the anomaly, the daemon's CPU over the rounds, its RSS before the clients,
# with them idle, and per idle client.
#
#   scripts/sse_bench.sh [rounds, default 200] [client counts, default "1 1000"]
#
# Each count gets a fresh release daemon (simulation off, one sensor, no Redis, no model).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-200}
counts=${2:-"1 1000"}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# 1,000 streams from the bench and 1,000 sockets in the daemon.
ulimit -n 8192

[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --locked --bin wtf-monitor --example sse_bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cat >"$work/wtf-monitor.toml" <<'TOML'
[api]
max_connections = 4096
[sensors]
ids = ["bench-1"]
[simulation]
enabled = false
[log]
level = "warn"
[[auth.tokens]]
name = "bench"
role = "ingest"
token = "bench-ingest-token-0123456789"
TOML

echo "sse_bench: $(nproc) cores, $(uname -r), rounds=$rounds"
for clients in $counts; do
    port=$(free_port)
    WTF_REDIS__URL="" WTF_LLM__URL="" WTF_API__LISTEN="127.0.0.1:$port" \
        target/release/wtf-monitor --config "$work/wtf-monitor.toml" >"$work/daemon-$clients.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    target/release/examples/sse_bench "$port" "$pid" "$clients" "$rounds"
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
