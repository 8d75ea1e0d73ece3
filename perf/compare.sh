#!/usr/bin/env bash
# Node Faye 1.4.3, Bayou (io_uring and epoll) and the bare floor (bayou-floor, both drivers),
# one after the other on this machine, under the same bayou-bench scenarios; writes the
# side-by-side tables into perf/RESULTS.md between the compare.sh markers (the rest of the
# file is kept).
#
# Usage: perf/compare.sh
# Environment:
#   PCT=100        scale every client and message count by PCT percent (PCT=20 for a quick run)
#   SERVERS="node bayou-uring bayou-epoll floor-uring floor-epoll"   the servers to run
#   ONLY="conns fanout-rate ..."   run only these scenarios (names below)
#   OUT=perf/RESULTS.md   the file to update (OUT=- prints the section instead)
#   KEEP=dir       keep the raw JSON lines and plots in dir (default: a temporary directory)
#   REPEAT=1       run the whole scenario list this many times, one pass after the other, and
#                  report each figure's median over the passes (losses and errors: the worst);
#                  on a shared machine single runs move by 10 to 20%
# Needs: cargo, node >= 20, python3; installs tests/node/node_modules (npm ci) when missing.
# A full run takes about 8 minutes on a 2-core VM. Every bench run is bounded by --max-secs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PCT="${PCT:-100}"
REPEAT="${REPEAT:-1}"
SERVERS="${SERVERS:-node bayou-uring bayou-epoll floor-uring floor-epoll}"
OUT="${OUT:-perf/RESULTS.md}"
ulimit -n 20000 2>/dev/null || true

command -v python3 >/dev/null || { echo "python3 is needed to write the tables" >&2; exit 1; }
cargo build --release --bins >&2
if [[ " $SERVERS " == *" node "* && ! -d tests/node/node_modules/faye ]]; then
  (cd tests/node && npm ci --no-audit --no-fund) >&2
fi
raw="${KEEP:-$(mktemp -d)}"
mkdir -p "$raw"
rm -f "$raw"/*.pass*.json "$raw"/*.pass*.err  # a kept directory's earlier passes are not this run's
bench=target/release/bayou-bench

n() { echo $(( $1 * PCT / 100 > 0 ? $1 * PCT / 100 : 1 )); }

# name | what it measures | bayou-bench arguments
# CPU per unit depends on the load (more work per wake-up at higher rates), so the CPU budgets
# compare servers at the same fixed rate, one Bayou sustains on this machine; users-max and
# fanout-max show the highest rates.
scenarios=(
  "conns|idle clients: set-up CPU and memory|conns --clients $(n 15000) --hold 2 --concurrency 200"
  "ramp|reconnect storm: every client at once|ramp --clients $(n 2000)"
  "fanout-rate|fan-out, 1 channel x 1,000 subscribers, 20 publishes/s (20k deliveries/s)|fanout --clients $(n 1000) --messages $(n 200) --rate 20 --plot @PLOT@"
  "fanout-max|fan-out at the highest rate: 64 publishes in flight, so deliveries queue per socket|fanout --clients $(n 1000) --messages $(n 500) --publishers 64"
  "users|notifications, one POST per message, 4,000/s|users --clients $(n 2000) --messages $(n 20000) --rate 4000 --publishers 8"
  "users-max|notifications, one POST per message, as fast as 4 connections go|users --clients $(n 2000) --messages $(n 20000) --publishers 4"
  "users-batch|notifications, 100 messages per POST, 10,000/s|users --clients $(n 2000) --messages $(n 50000) --batch 100 --rate 10000 --publishers 2"
  "users-steady|notifications steady, 2,000/s|users --clients $(n 2000) --messages $(n 10000) --rate 2000 --plot @PLOT@"
  "longpoll|long-polling, 500 clients, 2,000 messages/s|longpoll --clients $(n 500) --messages $(n 10000) --rate 2000 --publishers 8"
)

start_server() { # name -> sets SRV_PID, SRV_URL
  local name=$1 log="$raw/$1.server.log"
  case "$name" in
    node) node tests/node/faye-server.mjs --listen 127.0.0.1:0 --mount /faye --timeout 45 >"$log" 2>&1 & ;;
    bayou-uring|bayou-epoll)
      target/release/bayou --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --workers 2 \
        --handshake-rate 0 --max-clients-per-ip 0 \
        --driver "${name#bayou-}" >"$log" 2>&1 & ;;
    floor-uring|floor-epoll)
      target/release/bayou-floor --listen 127.0.0.1:0 --workers 2 --driver "${name#floor-}" >"$log" 2>&1 & ;;
    *) echo "unknown server $name" >&2; exit 2 ;;
  esac
  SRV_PID=$!
  for _ in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
  SRV_URL="$(sed -n 's,.*listening on \(http://[^ ]*\).*,\1,p' "$log" | head -1)/faye"
  [[ "$SRV_URL" == http://* ]] || { echo "$name did not start:" >&2; cat "$log" >&2; exit 1; }
}

stop_server() {
  kill "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" 2>/dev/null || true
}

trap 'stop_server 2>/dev/null || true' EXIT
commands="$raw/commands.txt"
: >"$commands"
started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for pass in $(seq "$REPEAT"); do
for entry in "${scenarios[@]}"; do
  IFS='|' read -r sc what args <<<"$entry"
  [[ -z "${ONLY:-}" || " $ONLY " == *" $sc "* ]] || continue
  for srv in $SERVERS; do
    start_server "$srv"
    a=${args//@PLOT@/$raw/$sc.$srv.svg}
    echo "$srv $sc (pass $pass of $REPEAT): $bench $a --url URL --pid PID --label $srv --max-secs 120 --json" >&2
    [[ $pass == 1 ]] && echo "$srv $sc: $bench $a --url URL --pid PID --label $srv --max-secs 120 --json" >>"$commands"
    # shellcheck disable=SC2086
    if ! $bench $a --url "$SRV_URL" --pid "$SRV_PID" --label "$srv" --max-secs 120 --json \
        >"$raw/$sc.$srv.pass$pass.json" 2>"$raw/$sc.$srv.pass$pass.err"; then
      echo "  (bench exited non-zero; see $raw/$sc.$srv.pass$pass.err)" >&2
    fi
    tail -n 1 "$raw/$sc.$srv.pass$pass.json" | cut -c1-160 >&2
    stop_server
    sleep 1
  done
done
done
# Each scenario and server's report: the median of its passes, the worst of its losses.
python3 - "$raw" <<'EOF'
import glob, json, os, re, statistics, sys
raw = sys.argv[1]
WORST = {"failed", "dropped", "lost", "duplicated", "publish_errors"}
groups = {}
for path in glob.glob(os.path.join(raw, "*.pass*.json")):
    key = re.sub(r"\.pass\d+\.json$", "", os.path.basename(path))
    lines = [l for l in open(path).read().splitlines() if l.startswith("{")]
    if lines:
        groups.setdefault(key, []).append(json.loads(lines[-1]))
for key, reports in groups.items():
    merged = dict(reports[0])
    for k in reports[0]:
        values = [r.get(k) for r in reports]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
            merged[k] = max(values) if k in WORST else statistics.median(values)
    merged["passes"] = len(reports)
    with open(os.path.join(raw, key + ".json"), "w") as f:
        f.write(json.dumps(merged) + "\n")
EOF
elapsed=$(( $(date +%s) - started ))

commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo ' (with uncommitted changes)')"
machine="$(nproc) vCPU $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), \
$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
section="$(python3 perf/summarize.py "$raw" "$commit" "$machine" "$load_before" "$elapsed" \
  "PCT=$PCT, REPEAT=$REPEAT$([[ $REPEAT -gt 1 ]] && echo " (each figure is the median of $REPEAT passes over the whole scenario list; lost, duplicated and failed: the worst pass)")")"
if [[ "$OUT" == - ]]; then
  printf '%s\n' "$section"
else
  python3 - "$OUT" "$section" <<'EOF'
import sys
path, section = sys.argv[1], sys.argv[2]
begin, end = "<!-- compare.sh:begin -->", "<!-- compare.sh:end -->"
text = open(path).read() if __import__("os").path.exists(path) else "# Performance results\n"
block = f"{begin}\n{section}\n{end}"
if begin in text and end in text:
    text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
EOF
  mkdir -p "$(dirname "$OUT")/plots"
  cp "$raw"/*.svg "$(dirname "$OUT")/plots/" 2>/dev/null || true
  echo "updated $OUT and its plots/ (raw results in $raw)" >&2
fi
