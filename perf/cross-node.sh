#!/usr/bin/env bash
# Cross-node notification throughput and latency through the Redis backplane, with the
# same-process figures and Node Faye + faye-redis across two processes as baselines, in one
# run. Starts its own redis-server on a free port, Bayou processes (2 workers each) and two
# Node Faye processes (perf/faye-redis), runs bayou-cluster-bench, and stops everything.
# Last, the deploy and crash scenarios behind HAProxy, both servers (perf/balanced.mjs, about
# 8 minutes; it starts its own Redis, balancer and processes).
# Usage: perf/cross-node.sh [MESSAGES] [SUBSCRIBERS]     (defaults 50000, 200)
# Needs: cargo build --release, redis-server and haproxy (./test.sh installs both), node, npm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
messages="${1:-50000}"
subscribers="${2:-200}"
bench=target/release/bayou-cluster-bench
out=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$out"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$out/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

start_bayou() { # name, extra args... (not in a subshell: its pid must reach the cleanup)
  local name=$1; shift
  # Every bench client comes from 127.0.0.1: the per-address handshake limit (200, then
  # 20/s) would refuse the second phase's handshakes, so it is off here.
  target/release/bayou --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --workers 2 \
    --handshake-rate 0 "$@" \
    >"$out/$name.out" 2>"$out/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q 'admin on' "$out/$name.out" && break; sleep 0.1; done
}
start_faye() { # name
  node perf/faye-redis/server.mjs --engine "redis://127.0.0.1:$port" >"$out/$1.out" 2>"$out/$1.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q 'listening on' "$out/$1.out" && break; sleep 0.1; done
}
[ -d perf/faye-redis/node_modules ] || (cd perf/faye-redis && npm ci --no-audit --no-fund >/dev/null)
addr() { sed -n 's,listening on http://,,p' "$out/$1.out"; }

start_bayou solo
start_bayou a --engine "redis://127.0.0.1:$port"
start_bayou b --engine "redis://127.0.0.1:$port"
start_faye fa
start_faye fb
solo=$(addr solo) a=$(addr a) b=$(addr b) fa=$(addr fa) fb=$(addr fb)
sleep 1 # let both backplanes connect

redis_calls() { # every command Redis ran since the last reset, in total
  redis-cli -p "$port" info commandstats | sed -n 's/.*:calls=\([0-9]*\),.*/\1/p' | awk '{n+=$1} END {print n+0}'
}
run() { # label, publish, subscribe, bench args...; also prints Redis commands per message
  local label=$1 pub=$2 sub=$3; shift 3
  printf '%-34s ' "$label"
  redis-cli -p "$port" config resetstat >/dev/null
  "$bench" --publish "$pub" --subscribe "$sub" --subscribers "$subscribers" "$@" | tr '\n' ' '
  local sent; sent=$(printf '%s\n' "$@" | awk 'prev=="--messages" {print $1} {prev=$1}')
  echo "redis_commands_per_message=$(awk -v c="$(redis_calls)" -v m="$sent" 'BEGIN {printf "%.2f", (c-1)/m}')"
}

echo "== throughput: batches of 50, as fast as acknowledged, $messages messages, $subscribers subscribers"
run "one process, memory engine" "$solo" "$solo" --messages "$messages" --batch 50
run "one process, redis engine" "$a" "$a" --messages "$messages" --batch 50
run "cross-node (publish A, deliver B)" "$a" "$b" --messages "$messages" --batch 50
run "Node Faye + faye-redis, cross-node" "$fa" "$fb" --messages "$messages" --batch 50
echo "== latency: one message per POST, 1,000/s, 10000 messages"
run "one process, memory engine" "$solo" "$solo" --messages 10000 --batch 1 --rate 1000
run "cross-node (publish A, deliver B)" "$a" "$b" --messages 10000 --batch 1 --rate 1000
run "Node Faye + faye-redis, cross-node" "$fa" "$fb" --messages 10000 --batch 1 --rate 1000
echo "== one publisher waiting for each reply (one message per POST, as fast as acknowledged), 5000 messages"
run "cross-node (publish A, deliver B)" "$a" "$b" --messages 5000 --batch 1
run "Node Faye + faye-redis, cross-node" "$fa" "$fb" --messages 5000 --batch 1
echo "== the issue's rate: one message per POST, 200/s, 4000 messages"
run "cross-node (publish A, deliver B)" "$a" "$b" --messages 4000 --batch 1 --rate 200
run "Node Faye + faye-redis, cross-node" "$fa" "$fb" --messages 4000 --batch 1 --rate 200
echo "== A and B metrics (backplane)"
for n in a b; do
  admin=$(sed -n 's,admin on http://,,p' "$out/$n.out")
  printf '%s: ' "$n"
  curl -s "http://$admin/metrics" | grep -E '^bayou_backplane_(published|received|delivered|dropped)' | tr '\n' ' '
  echo
done
echo "== session moves (one long-polling client alternating its connects between A and B)"
python3 perf/moves.py "$a" "$b" "$port" 500
echo "== steady state, rolling deploy and task loss behind HAProxy, Bayou and faye-redis (perf/balanced.mjs)"
node perf/balanced.mjs
