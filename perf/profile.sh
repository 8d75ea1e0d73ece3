#!/usr/bin/env bash
# Profiles Bayou under one bayou-bench scenario: `perf record` samples every Bayou thread
# while the bench runs, then `perf report` writes the hottest symbols and inferno draws a
# flamegraph.
#
# Usage: perf/profile.sh SCENARIO [bayou-bench arguments...]
#   e.g. perf/profile.sh fanout --clients 1000 --messages 300
#        SERVER=floor perf/profile.sh users --clients 2000 --messages 20000
# Environment:
#   DRIVER=uring|epoll   Bayou's driver (default uring)   WORKERS=2   FREQ=1999 (samples/s)
#   SERVER=bayou|floor   what to profile (default bayou)
#   OUT=perf/profiles    where NAME.svg (flamegraph), NAME.top.txt and NAME.folded go
# Installs what it needs: Debian's linux-perf (apt-get) and inferno (cargo install, from
# crates.io). Bayou is rebuilt into target/profiling with frame pointers and line tables so
# the call graphs are complete; the bench itself is the normal release build.
# NAME.top.txt has the self time per symbol and the inclusive time per frame.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# -ge 1 ]] || { sed -n '2,16p' "$0"; exit 2; }
scenario=$1; shift
DRIVER="${DRIVER:-uring}"; WORKERS="${WORKERS:-2}"; FREQ="${FREQ:-1999}"
SERVER="${SERVER:-bayou}"; OUT="${OUT:-perf/profiles}"
name="$SERVER-$DRIVER-$scenario"
mkdir -p "$OUT"
ulimit -n 20000 2>/dev/null || true

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! perf --version >/dev/null 2>&1; then
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y linux-perf
fi
if ! command -v inferno-flamegraph >/dev/null; then
  cargo install inferno --locked
  export PATH="$HOME/.cargo/bin:$PATH"
fi

cargo build --release --bin bayou-bench >&2
RUSTFLAGS="${RUSTFLAGS:-} -C force-frame-pointers=yes" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  cargo build --release --bins --target-dir target/profiling >&2
bin=target/profiling/release

log="$OUT/$name.server.log"
case "$SERVER" in
  bayou) "$bin/bayou" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --workers "$WORKERS" \
           --handshake-rate 0 --max-clients-per-ip 0 \
           --driver "$DRIVER" >"$log" 2>&1 & ;;
  floor) "$bin/bayou-floor" --listen 127.0.0.1:0 --workers "$WORKERS" --driver "$DRIVER" >"$log" 2>&1 & ;;
  *) echo "SERVER must be bayou or floor" >&2; exit 2 ;;
esac
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
url="$(sed -n 's,.*listening on \(http://[^ ]*\).*,\1,p' "$log" | head -1)/faye"

perf record -F "$FREQ" --call-graph fp -p "$server" -o "$OUT/$name.data" 2>"$OUT/$name.perf.log" &
recorder=$!
sleep 0.5
target/release/bayou-bench "$scenario" "$@" --url "$url" --pid "$server" --max-secs 180 \
  --label "$name (profiled)" | tee "$OUT/$name.bench.txt"
kill -INT "$recorder"; wait "$recorder" || true
kill "$server"; wait "$server" 2>/dev/null || true

perf script -i "$OUT/$name.data" 2>/dev/null | inferno-collapse-perf >"$OUT/$name.folded"
{
  echo "## self time (perf report --no-children)"
  perf report -i "$OUT/$name.data" --no-children -g none --percent-limit 0.7 --sort dso,symbol \
    --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' || true
  echo; echo "## inclusive time per frame (perf/folded-top.py)"
  python3 perf/folded-top.py "$OUT/$name.folded" 60
} >"$OUT/$name.top.txt"
inferno-flamegraph --title "$name: bayou-bench $scenario $*" <"$OUT/$name.folded" >"$OUT/$name.svg"
rm -f "$OUT/$name.data"
echo "flamegraph: $OUT/$name.svg; hottest symbols: $OUT/$name.top.txt" >&2
