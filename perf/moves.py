#!/usr/bin/env python3
"""Cost of a session move between two Bayou processes on one Redis, and Redis memory per
session and per retained message. Called by perf/cross-node.sh with the two processes'
addresses and the Redis port; prints one line per figure.

A long-polling client alternates its connects (advice.timeout 0, so nothing is held) between
A and B: every connect moves its session. The same client connecting to one process only is
the baseline. Redis commands are counted from INFO commandstats around each phase."""
import json
import socket
import subprocess
import sys
import time
import http.client

a, b, redis_port = sys.argv[1], sys.argv[2], sys.argv[3]
moves = int(sys.argv[4]) if len(sys.argv) > 4 else 500


def redis(*args):
    out = subprocess.run(["redis-cli", "-p", redis_port, *args], capture_output=True, text=True)
    return out.stdout.strip()


def calls():
    total = 0
    for line in redis("info", "commandstats").splitlines():
        if "calls=" in line:
            total += int(line.split("calls=")[1].split(",")[0])
    return total


class Conn:
    def __init__(self, addr):
        host, port = addr.split(":")
        self.c = http.client.HTTPConnection(host, int(port))

    def post(self, body):
        self.c.request("POST", "/faye", json.dumps(body), {"Content-Type": "application/json"})
        r = self.c.getresponse()
        return json.loads(r.read())


ca, cb = Conn(a), Conn(b)
cid = ca.post([{"channel": "/meta/handshake", "version": "1.0",
                "supportedConnectionTypes": ["long-polling"]}])[0]["clientId"]
ca.post([{"channel": "/meta/subscribe", "clientId": cid, "subscription": "/bench/moves"}])


def connect(conn):
    r = conn.post([{"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling",
                    "advice": {"timeout": 0}}])
    assert r[0]["successful"], r


def phase(conns, n):
    before = calls()
    start = time.perf_counter()
    samples = []
    for i in range(n):
        t = time.perf_counter()
        connect(conns[i % len(conns)])
        samples.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    samples.sort()
    cmds = calls() - before - 1
    return samples[len(samples) // 2] * 1e3, samples[int(len(samples) * 0.99)] * 1e3, cmds / n, wall


connect(ca)
p50, p99, cmds, _ = phase([ca], moves)
print(f"connect, same process (no move): p50={p50:.2f}ms p99={p99:.2f}ms redis_commands_per_connect={cmds:.2f}")
p50, p99, cmds, _ = phase([cb, ca], moves)
print(f"connect that moves the session: p50={p50:.2f}ms p99={p99:.2f}ms redis_commands_per_move={cmds:.2f}")
key = f"bayou:0:/faye:s:{cid}"
print(f"redis memory per idle session (MEMORY USAGE {key}, one subscription): {redis('memory', 'usage', key)} bytes")
log = "bayou:0:/faye:log"
n = int(redis("xlen", log) or 0)
used = int(redis("memory", "usage", log, "samples", "0") or 0)
if n:
    print(f"redis memory per retained message (MEMORY USAGE {log} / XLEN, {n} entries): {used / n:.0f} bytes")
