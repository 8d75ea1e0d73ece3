#!/usr/bin/env bash
# The one test command: installs what the tests need, builds Bayou, runs the Rust tests and the
# end-to-end suites (real Node faye.Client and the browser client in headless Chromium), then
# the cluster suite once (several Bayou processes on a real redis-server the tests start).
# Run it from anywhere on a Debian machine with Rust (cargo) and Node.js >= 20 installed; CI runs
# it through .ci/run. Any missing piece fails the run; nothing is skipped.
#
# Environment:
#   BAYOU_BIN            the server binary the e2e tests start (default: the release build)
#   BAYOU_TEST_MATRIX    workers:driver pairs to run the suites under (default "2:uring 4:epoll 2:epoll 4:uring")
#   BAYOU_TEST_SERVER    "faye" runs the e2e tests against real Node Faye 1.4.3 instead
#   BAYOU_TEST_VERBOSE   non-empty: echo the servers' output and the browser traffic
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

stage() { printf '\n==> [%4ss] %s\n' "$SECONDS" "$*"; }
fail() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else fail "need root or sudo to run: $*"
  fi
}

stage "Checking the toolchain"
command -v cargo >/dev/null || fail "cargo not found: install Rust (https://rustup.rs)"
command -v node >/dev/null || fail "node not found: install Node.js >= 20"
command -v npm >/dev/null || fail "npm not found: install npm (it ships with Node.js)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || fail "Node.js >= 20 is required (found $(node --version))"
echo "cargo: $(cargo --version)"
echo "node:  $(node --version), npm $(npm --version 2>/dev/null)"

# Installs Debian package $2 unless $1 is on the PATH (or is an executable path).
apt_install() {
  local probe="$1" package="$2"
  if ! command -v "$probe" >/dev/null; then
    command -v apt-get >/dev/null || fail "$probe is missing and apt-get is unavailable"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$package"
  fi
  command -v "$probe" >/dev/null || fail "$probe is still missing after installing $package"
}

stage "Chromium (for the browser tests)"
apt_install /usr/bin/chromium chromium
/usr/bin/chromium --version 2>/dev/null || fail "/usr/bin/chromium does not run"

stage "redis-server (for the cluster tests)"
apt_install redis-server redis-server
redis-server --version || fail "redis-server does not run"

stage "openssl (certificates for the rediss:// test)"
apt_install openssl openssl

stage "haproxy (the balancer in front of several processes, as an ALB is)"
apt_install /usr/sbin/haproxy haproxy
/usr/sbin/haproxy -v | sed -n 1p || fail "haproxy does not run"

stage "Node test dependencies (tests/node)"
if [ -f tests/node/package-lock.json ]; then
  (cd tests/node && npm ci --no-audit --no-fund)
else
  (cd tests/node && npm install --no-audit --no-fund)
fi

stage "cargo build --release --workspace --all-targets (server, codec crate, tools, tests, benches)"
# One cargo run builds every target at once, so both cores stay busy.
cargo build --release --workspace --all-targets

stage "cargo test --release --workspace --lib --bins (unit tests, the codec crate's included)"
cargo test --release --workspace --lib --bins

stage "cargo check of the fuzz targets (fuzz/run.sh runs them; here they only must compile)"
cargo check --manifest-path fuzz/Cargo.toml --bins

# Runs two commands at once (`side_by_side NAME CMD... -- NAME CMD...`), each into a log of its
# own, then prints both logs; fails when either failed. The suites mostly wait on the server's
# timers, so two of them share the two cores well; neither asserts any timing.
side_by_side() {
  local name_a="$1"; shift
  local a=() b=()
  while [ "$1" != "--" ]; do a+=("$1"); shift; done
  shift
  local name_b="$1"; shift
  b=("$@")
  local log_a log_b rc_a=0 rc_b=0
  log_a="$(mktemp)"; log_b="$(mktemp)"
  "${a[@]}" >"$log_a" 2>&1 &
  local pid_a=$!
  "${b[@]}" >"$log_b" 2>&1 &
  local pid_b=$!
  wait "$pid_a" || rc_a=$?
  wait "$pid_b" || rc_b=$?
  printf -- '--- %s (exit %s) ---\n' "$name_a" "$rc_a"; cat "$log_a"
  printf -- '--- %s (exit %s) ---\n' "$name_b" "$rc_b"; cat "$log_b"
  rm -f "$log_a" "$log_b"
  [ "$rc_a" = 0 ] || fail "$name_a failed (exit $rc_a)"
  [ "$rc_b" = 0 ] || fail "$name_b failed (exit $rc_b)"
}

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
export BAYOU_BIN="${BAYOU_BIN:-$target_dir/release/bayou}"
if [ "${BAYOU_TEST_SERVER:-}" = faye ]; then
  stage "Raw-wire and end-to-end tests against REAL NODE FAYE (BAYOU_TEST_SERVER=faye), not Bayou"
  cargo test --release --test '*'
  node --test --test-concurrency=1 tests/node/
else
  [ -x "$BAYOU_BIN" ] || fail "the Bayou binary is missing: $BAYOU_BIN"
  # Every cross-worker path runs with 2 workers and with 4 (more than the cores), on io_uring
  # and on epoll (the driver of ECS Fargate). A forced driver that cannot start fails loudly.
  matrix="${BAYOU_TEST_MATRIX:-2:uring 4:epoll 2:epoll 4:uring}"
  # These read files or judge settings before any worker starts: the worker count and the
  # driver change nothing in them, so they run under the first combination only.
  once="deploy_files bench config_ranges"
  # The cluster suite starts its own redis-server and processes: it runs once, after the loop.
  e2e=$(ls tests/node/*.test.mjs | grep -Ev '/(cluster|balanced)\.test\.mjs$')
  first=1
  for combo in $matrix; do
    export BAYOU_TEST_WORKERS="${combo%%:*}" BAYOU_DRIVER="${combo##*:}"
    raw=()
    for t in tests/*.rs; do
      name="$(basename "$t" .rs)"
      if [ "$first" = 1 ] || ! grep -qw "$name" <<<"$once"; then raw+=(--test "$name"); fi
    done
    first=0
    stage "Raw-wire and end-to-end suites, side by side: $BAYOU_TEST_WORKERS workers, $BAYOU_DRIVER driver"
    # shellcheck disable=SC2086
    side_by_side "raw-wire suite" cargo test --release "${raw[@]}" \
      -- "end-to-end suite (real Faye clients)" node --test --test-concurrency=1 $e2e
  done
  export BAYOU_TEST_WORKERS=2 BAYOU_DRIVER=epoll
  stage "Cluster suite (Redis backplane, real redis-server): 2 workers, epoll driver"
  cargo test --release --test cluster -- --ignored
  node --test --test-concurrency=1 tests/node/cluster.test.mjs
  stage "Behind HAProxy (round-robin, /readyz checks): steady state and a rolling deploy"
  node --test --test-concurrency=1 tests/node/balanced.test.mjs
fi

stage "All tests passed"
