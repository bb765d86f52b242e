#!/usr/bin/env bash
# MQTT ingestion through a real Mosquitto on loopback, each figure beside its ceiling measured in
# the same run on the same broker:
#
# 1. Throughput: N JSON readings published with QoS 1 by P mosquitto_pub processes (one topic,
#    one sensor each), timed from the first publish until the daemon has taken every reading and
#    its detectors have run them ("anomaly-ready": /status ingest.accepted.mqtt = N, queued = 0);
#    beside the broker's own mosquitto_pub → mosquitto_sub (QoS 1) time for the same payloads.
# 2. Latency at SENSORS sensors × 1 Hz (examples/mqtt_bench.rs): publish to the anomaly served
#    (/events, the journal /anomalies reads), beside publish to a bare subscriber.
#
# 3. With PAIR=1 (and redis-server installed): the same throughput through one daemon writing to
#    a Redis started here, then through a pair (--instance wtf-a and wtf-b, same broker and
#    Redis), timed until *both* have taken every reading: HA must not halve throughput.
#
#   scripts/mqtt_bench.sh [readings, default 200000] [publishers, default 4] [latency seconds, default 30]
#   PAIR=1 scripts/mqtt_bench.sh 50000 4 0      # the pair against a single daemon, no latency run
#
# Needs mosquitto and mosquitto-clients (Debian). Builds the release binary and the example.
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-200000}
publishers=${2:-4}
latency_seconds=${3:-30}
sensors=1000
work=$(mktemp -d)
chmod 777 "$work"   # mosquitto started as root drops to its own user
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --locked --bin wtf-monitor --example mqtt_bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
broker_port=$(free_port)
api_port=$(free_port)
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

cat >"$work/mosquitto.conf" <<EOF
listener $broker_port 127.0.0.1
allow_anonymous true
max_queued_messages 0
EOF
"$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &

python3 - "$work" "$total" "$publishers" "$sensors" <<'EOF'
import datetime, json, sys
work, total, publishers, sensors = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ids = [f"bench-{i}" for i in range(sensors)]
with open(f"{work}/wtf-monitor.toml", "w") as f:
    f.write("[sensors]\nids = %s\n[simulation]\nenabled = false\n[log]\nlevel = \"warn\"\n" % json.dumps(ids))
    f.write("[mqtt]\nclient_id = \"mqtt-bench\"\n")
# Each publisher's readings, per run: its own sensor, timestamps a microsecond apart from a
# minute ago, each run's after the last run's (the daemon refuses a reading that is not newer).
start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=60)
per = total // publishers
for run in (1, 2, 3):
    for p in range(publishers):
        with open(f"{work}/lines-{run}-{p}", "w") as f:
            for i in range((run - 1) * per, run * per):
                t = (start + datetime.timedelta(microseconds=i)).isoformat().replace("+00:00", "Z")
                f.write(f'{{"timestamp":"{t}","pressure":2.1,"flow":61.5,"temperature":21.5}}\n')
EOF
per=$((total / publishers))
total=$((per * publishers))
payload_bytes=$(head -1 "$work/lines-1-0" | wc -c)

publish_all() {  # $1: topic prefix, $2: run
    local pids=()
    for p in $(seq 0 $((publishers - 1))); do
        mosquitto_pub -h 127.0.0.1 -p "$broker_port" -q 1 -t "$1/bench-$p" -l <"$work/lines-$2-$p" &
        pids+=($!)
    done
    wait "${pids[@]}"
}

ceiling() {  # $1: run
    mosquitto_sub -h 127.0.0.1 -p "$broker_port" -q 1 -t 'ceiling/#' -C "$total" >/dev/null &
    local sub=$!
    sleep 1
    local t0 t1
    t0=$(date +%s.%N)
    publish_all ceiling "$1"
    wait "$sub"
    t1=$(date +%s.%N)
    python3 -c "print(f'{$total / ($t1 - $t0):,.0f}')"
}

WTF_API__LISTEN="127.0.0.1:$api_port" WTF_REDIS__URL="" WTF_LLM__URL="" WTF_MQTT__URL="mqtt://127.0.0.1:$broker_port" \
    target/release/wtf-monitor --config "$work/wtf-monitor.toml" >"$work/daemon.log" 2>&1 &
daemon=$!

# Polls /status over one keep-alive connection until `accepted` MQTT readings are taken and none
# waits for a detector; prints readings/s from $2 (the start). $3: the API port (default the
# daemon's).
wait_taken() {
    python3 - "${3:-$api_port}" "$1" "$2" <<'EOF'
import http.client, json, sys, time
port, wanted, start = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
deadline = time.time() + 300
while time.time() < deadline:
    conn.request("GET", "/status")
    status = json.loads(conn.getresponse().read())
    ingest = status["ingest"]
    if ingest["accepted"]["mqtt"] >= wanted and ingest["queued"] == 0:
        elapsed = time.time() - start
        refused = status["mqtt"]["refused"]
        print(f"{wanted / elapsed:,.0f}" + (f" (refused: {refused})" if refused else ""))
        sys.exit(0)
    time.sleep(0.002)
sys.exit("the daemon did not take every reading within 300 s")
EOF
}

wait_connected() {  # $1: the API port
python3 - "$1" <<'EOF'
import http.client, json, sys, time
port = int(sys.argv[1])
for _ in range(300):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/status")
        if json.loads(conn.getresponse().read())["mqtt"]["state"] == "connected":
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("the daemon did not connect to the broker")
EOF
}
wait_connected "$api_port"

echo "throughput: $total readings of $payload_bytes bytes, QoS 1, $publishers mosquitto_pub -l at once"
taken=0
for run in 1 2 3; do
    broker_rate=$(ceiling "$run")
    t0=$(date +%s.%N)
    publish_all wtf "$run"
    taken=$((taken + total))
    daemon_rate=$(wait_taken "$taken" "$t0")
    echo "  run $run: mosquitto_pub → mosquitto_sub $broker_rate/s; mosquitto_pub → daemon, anomaly-ready $daemon_rate/s"
done
echo "  daemon peak RSS: $(grep VmHWM /proc/$daemon/status | awk '{print $2/1024 " MiB"}')"

if [ "$latency_seconds" -gt 0 ]; then
    echo "latency: $sensors sensors × 1 Hz for $latency_seconds s"
    target/release/examples/mqtt_bench "$broker_port" "$api_port" "$sensors" 1 "$latency_seconds" | sed 's/^/  /'
    echo "  daemon CPU over the whole run: $(ps -o cputime= -p $daemon); peak RSS: $(grep VmHWM /proc/$daemon/status | awk '{print $2/1024 " MiB"}')"
fi

[ -n "${PAIR:-}" ] || exit 0
kill "$daemon"; wait "$daemon" 2>/dev/null || true
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
sleep 0.5
start_daemon() {  # $1: instance, $2: API port; sets $started to its pid
    WTF_API__LISTEN="127.0.0.1:$2" WTF_REDIS__URL="redis://127.0.0.1:$redis_port" WTF_LLM__URL="" \
        WTF_MQTT__URL="mqtt://127.0.0.1:$broker_port" WTF_MQTT__CLIENT_ID="" \
        target/release/wtf-monitor --config "$work/wtf-monitor.toml" --instance "$1" >"$work/daemon-$1.log" 2>&1 &
    started=$!
}
pair_runs() {  # $@: the API ports of the daemons running; each must take every reading
    local taken=0 t0 t1
    for run in 1 2 3; do
        t0=$(date +%s.%N)
        publish_all wtf "$run"
        taken=$((taken + total))
        for port in "$@"; do wait_taken "$taken" "$t0" "$port" >/dev/null; done
        t1=$(date +%s.%N)
        python3 -c "print(f'  run $run: {$total / ($t1 - $t0):,.0f}/s')"
    done
}
echo "pair: $total readings per run through Mosquitto, with Redis"
solo_port=$(free_port)
start_daemon solo "$solo_port"; solo=$started
wait_connected "$solo_port"
echo " one daemon (with Redis), anomaly-ready:"
pair_runs "$solo_port"
kill "$solo"; wait "$solo" 2>/dev/null || true
a_port=$(free_port); b_port=$(free_port)
start_daemon wtf-a "$a_port"; a=$started
start_daemon wtf-b "$b_port"; b=$started
wait_connected "$a_port"; wait_connected "$b_port"
echo " the pair, both anomaly-ready:"
pair_runs "$a_port" "$b_port"
kill "$a" "$b"
