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

stage() { printf '\n==> %s\n' "$*"; }
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

stage "Chromium (for the browser tests)"
if [ ! -x /usr/bin/chromium ]; then
  command -v apt-get >/dev/null || fail "/usr/bin/chromium is missing and apt-get is unavailable"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is still missing after installing chromium"
/usr/bin/chromium --version 2>/dev/null || fail "/usr/bin/chromium does not run"

stage "redis-server (for the cluster tests)"
if ! command -v redis-server >/dev/null; then
  command -v apt-get >/dev/null || fail "redis-server is missing and apt-get is unavailable"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
fi
command -v redis-server >/dev/null || fail "redis-server is still missing after installing it"
redis-server --version || fail "redis-server does not run"

stage "Node test dependencies (tests/node)"
if [ -f tests/node/package-lock.json ]; then
  (cd tests/node && npm ci --no-audit --no-fund)
else
  (cd tests/node && npm install --no-audit --no-fund)
fi

stage "cargo build --release"
cargo build --release

stage "cargo test --release --lib --bins (unit tests)"
cargo test --release --lib --bins

stage "cargo build --release --benches (the criterion benches still compile)"
cargo build --release --benches

stage "cargo check of the fuzz targets (fuzz/run.sh runs them; here they only must compile)"
cargo check --manifest-path fuzz/Cargo.toml --bins

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
  # The cluster suite starts its own redis-server and processes: it runs once, after the loop.
  e2e=$(ls tests/node/*.test.mjs | grep -v '/cluster\.test\.mjs$')
  for combo in $matrix; do
    export BAYOU_TEST_WORKERS="${combo%%:*}" BAYOU_DRIVER="${combo##*:}"
    stage "Raw-wire suite: $BAYOU_TEST_WORKERS workers, $BAYOU_DRIVER driver"
    cargo test --release --test '*'
    stage "End-to-end suite (real Faye clients): $BAYOU_TEST_WORKERS workers, $BAYOU_DRIVER driver"
    # shellcheck disable=SC2086
    node --test --test-concurrency=1 $e2e
  done
  export BAYOU_TEST_WORKERS=2 BAYOU_DRIVER=epoll
  stage "Cluster suite (Redis backplane, real redis-server): 2 workers, epoll driver"
  cargo test --release --test cluster -- --ignored
  node --test --test-concurrency=1 tests/node/cluster.test.mjs
fi

stage "All tests passed"
