#!/usr/bin/env python3
"""Spike-to-API latency: how long after a reading's timestamp its spike is served by /anomalies.

Usage: scripts/spike_latency.py [BINARY] [seconds]   (default target/release/wtf-monitor, 60 s)
Starts the daemon in memory only on a free port, with three sensors at 1 Hz and a spike
injected about every second across them, and polls /anomalies?limit=5 over one keep-alive
connection as fast as it answers. The poll interval bounds the resolution; it is printed too.
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/wtf-monitor"
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
env = {k: v for k, v in os.environ.items() if not k.startswith("WTF_")}
env.update(
    WTF_API__LISTEN=f"127.0.0.1:{port}", WTF_REDIS__URL="", WTF_LLM__URL="", WTF_LOG__LEVEL="warn",
    WTF_SIMULATION__SPIKES_PER_HOUR="3600", WTF_SIMULATION__DRIFTS_PER_HOUR="0", WTF_SIMULATION__DROPOUTS_PER_HOUR="0",
)
daemon = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    conn = None
    while conn is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            conn.getresponse().read()
        except OSError:
            conn = None
            time.sleep(0.01)
    seen, latencies, polls = set(), [], 0
    start = time.time()
    while time.time() - start < seconds:
        conn.request("GET", "/anomalies?limit=5&type=spike")
        body = conn.getresponse().read()
        now = time.time()
        polls += 1
        for anomaly in json.loads(body):
            if anomaly["id"] in seen:
                continue
            seen.add(anomaly["id"])
            if polls == 1:
                continue  # raised before we started watching
            stamp = datetime.fromisoformat(anomaly["timestamp"].replace("Z", "+00:00")).timestamp()
            latencies.append((now - stamp) * 1e6)
finally:
    daemon.terminate()
    daemon.wait()

latencies.sort()
pct = lambda p: latencies[min(len(latencies) - 1, int(round((len(latencies) - 1) * p)))]
print(f"spikes seen: {len(latencies)}, polls: {polls} ({seconds * 1e6 / polls:.0f} µs per poll)")
print(f"spike-to-API latency: p50 {pct(0.5):.0f} µs, p99 {pct(0.99):.0f} µs, max {latencies[-1]:.0f} µs")
