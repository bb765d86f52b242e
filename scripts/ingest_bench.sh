#!/usr/bin/env bash
# Ingestion throughput: readings/s through POST /readings (batches of 1, 100 and 1,000) and the
# line protocol (/api/v2/write), each beside the ceiling measured in the same run: a bare axum
# handler that parses the same bodies and drops them (examples/bare_ingest.rs).
#
#   scripts/ingest_bench.sh [seconds per run, default 10]
#
# Needs wrk (Debian: apt-get install wrk). Two wrk threads with one connection each; each thread
# sends its own sensors, so every reading is in order and accepted (the script checks /status).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --bin wtf-monitor --example bare_ingest
daemon_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bare_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=bench-token-0123456789

python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
ids = [f"s-{thread}-{i:04d}" for thread in (1, 2) for i in range(1000)]
with open(f"{work}/wtf-monitor.toml", "w") as f:
    f.write("[sensors]\nids = %s\n[simulation]\nenabled = false\n[log]\nlevel = \"warn\"\n" % json.dumps(ids))
    f.write("[[auth.tokens]]\nname = \"bench\"\nrole = \"ingest\"\ntoken = \"bench-token-0123456789\"\n")
for thread in (1, 2):
    for size in (1, 100, 1000):
        readings = [{"sensor_id": f"s-{thread}-{i:04d}", "temperature": 21.5, "pressure": 2.1, "flow": 61.5} for i in range(size)]
        body = readings[0] if size == 1 else readings
        with open(f"{work}/json-{thread}-{size}", "w") as f:
            f.write(json.dumps(body))
        with open(f"{work}/lines-{thread}-{size}", "w") as f:
            f.write("".join(f"plant,sensor_id=s-{thread}-{i:04d} temperature=21.5,pressure=2.1,flow=61.5\n" for i in range(size)))
EOF

cat > "$work/post.lua" <<'EOF'
local threads = {}
local counter = 1
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local file = io.open(args[1] .. "-" .. id .. "-" .. args[2], "r")
  body = file:read("*a")
  file:close()
  path = args[3]
  content_type = args[4]
end
function request()
  return wrk.format("POST", path, {["Content-Type"] = content_type, ["Authorization"] = "Bearer bench-token-0123456789"}, body)
end
EOF

WTF_API__LISTEN="127.0.0.1:$daemon_port" WTF_REDIS__URL="" WTF_LLM__URL="" \
    target/release/wtf-monitor --config "$work/wtf-monitor.toml" >"$work/daemon.log" 2>&1 &
target/release/examples/bare_ingest "127.0.0.1:$bare_port" 2>"$work/bare.log" &
for port in "$daemon_port" "$bare_port"; do
    for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$port/health" -m 1 && break || sleep 0.1; done
done

accepted() { curl -s "127.0.0.1:$daemon_port/status" | python3 -c "import json,sys; s=json.load(sys.stdin)['ingest']; print(s['accepted']['$1'], sum(s['refused'].values()))"; }

run() { # target port, body kind, size, path, content type
    wrk -t2 -c2 -d"${seconds}s" -s "$work/post.lua" "http://127.0.0.1:$1" -- "$work/$2" "$3" "$4" "$5" 2>&1 |
        awk '/Requests\/sec/ {print $2}'
}

printf '%-34s %14s %14s %7s\n' "what" "daemon r/s" "bare r/s" "ratio"
for kind in json lines; do
    for size in 1 100 1000; do
        if [ "$kind" = json ]; then path=/readings; type=application/json; source=http
        else path=/api/v2/write; type=text/plain; source=line_protocol; fi
        before=$(accepted "$source" | cut -d' ' -f1)
        daemon=$(run "$daemon_port" "$kind" "$size" "$path" "$type")
        read -r after refused <<<"$(accepted "$source")"
        bare=$(run "$bare_port" "$kind" "$size" "$path" "$type")
        daemon_readings=$(python3 -c "print(round($daemon * $size))")
        bare_readings=$(python3 -c "print(round($bare * $size))")
        taken=$((after - before))
        printf '%-34s %14s %14s %7s   (accepted %s, refused so far %s)\n' "$path batch $size" "$daemon_readings" \
            "$bare_readings" "$(python3 -c "print(f'{$daemon_readings / max($bare_readings, 1):.2f}')")" "$taken" "$refused"
    done
done
echo "daemon RSS after: $(ps -o rss= -p "$(pgrep -f "wtf-monitor --config $work" | head -1)") kB"
