#!/usr/bin/env bash
# Idle subscribed WebSocket clients: server memory per client, Bayou (both drivers) and Node
# Faye 1.4.3 in the same run. Usage: perf/idle-memory.sh [CLIENTS]   (default 15000)
# Needs: cargo build --release, and tests/node/node_modules (./test.sh installs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
clients="${1:-15000}"
ulimit -n 20000
bench=target/release/bayou-bench
out=$(mktemp -d)

run() { # name, command...
  local name=$1; shift
  "$@" >"$out/$name.out" 2>"$out/$name.err" &
  local pid=$!
  for _ in $(seq 100); do grep -q 'listening on' "$out/$name.out" && break; sleep 0.1; done
  local addr; addr=$(sed -n 's,listening on http://,,p' "$out/$name.out")
  printf '%-14s ' "$name"
  "$bench" conns --url "http://$addr/faye" --clients "$clients" --hold 3 --pid "$pid" --json |
    python3 -c 'import json,sys; r=json.loads(sys.stdin.readlines()[-1]); print("reached={reached}/{clients} failed={failed} rss_kib {server_rss_kib_before}->{server_rss_kib_after} bytes_per_client={server_bytes_per_client:.0f} setup_per_sec={setup_per_sec:.0f}".format(**r))'

  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run bayou-uring target/release/bayou --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --workers 2 --driver uring --handshake-rate 0 --max-clients-per-ip 0
run bayou-epoll target/release/bayou --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --workers 2 --driver epoll --handshake-rate 0 --max-clients-per-ip 0
run node-faye node tests/node/faye-server.mjs --listen 127.0.0.1:0 --mount /faye --timeout 45
rm -rf "$out"
