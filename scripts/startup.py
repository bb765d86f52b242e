#!/usr/bin/env python3
"""Time from exec to a healthy /health, and resident memory once idle.

Usage: scripts/startup.py [BINARY] [runs]   (default target/release/wtf-monitor, 10 runs)
Runs in memory only (no Redis, no Ollama) on a free port, from the repository's config.
"""
import http.client
import os
import socket
import statistics
import subprocess
import sys
import time

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/wtf-monitor"
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


times, idle = [], []
for run in range(runs):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WTF_")}
    env.update(WTF_API__LISTEN=f"127.0.0.1:{port}", WTF_REDIS__URL="", WTF_LLM__URL="", WTF_LOG__LEVEL="warn")
    start = time.perf_counter()
    daemon = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not healthy(port):
        time.sleep(0.0005)
    times.append((time.perf_counter() - start) * 1000)
    if run == 0:
        time.sleep(10)
        idle.append(rss_mb(daemon.pid))
    daemon.terminate()
    daemon.wait()

print(f"healthy after exec: median {statistics.median(times):.1f} ms, min {min(times):.1f} ms, max {max(times):.1f} ms over {runs} runs")
print(f"idle resident memory after 10 s (default config, 3 sensors): {idle[0]:.1f} MB")
