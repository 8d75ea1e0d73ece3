#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time each, one after another.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      SECONDS per target, default 60
#
# Installs cargo-fuzz when it is missing. Uses the nightly toolchain when rustup has one,
# otherwise the default toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs unstable flags).
# Seeds are read from fuzz/corpus/<target>/ and never written to; what libFuzzer finds goes
# to fuzz/work/corpus/<target>/, crashing inputs to fuzz/artifacts/<target>/.
# Prints one summary line per target and exits non-zero when any target crashed.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-60}"
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(http_request websocket_frame bayeux_batch)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked || exit 2
fi

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

# Debug assertions on, so that integer overflow in the project code is a crash too.
fuzz=(cargo "${toolchain[@]}" fuzz)
build_flags=(--fuzz-dir "$here" --debug-assertions)

if ! "${fuzz[@]}" build "${build_flags[@]}"; then
    echo "build failed" >&2
    exit 2
fi

failed=0
summary=()
for target in "${targets[@]}"; do
    work="$here/work/corpus/$target"
    log="$here/work/$target.log"
    mkdir -p "$work" "$here/artifacts/$target"
    start=$(date +%s)
    "${fuzz[@]}" run "${build_flags[@]}" "$target" "$work" "$here/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    elapsed=$(($(date +%s) - start))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    crashes=$(grep -c 'Test unit written to' "$log")
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1
    fi
    if [ "$crashes" -ne 0 ]; then
        failed=1
        echo "---- $target crashed; the end of $log:" >&2
        tail -n 40 "$log" >&2
    fi
    summary+=("$(printf '%-16s runs=%s seconds=%s crashes=%s' "$target" "${runs:-0}" "$elapsed" "$crashes")")
done

printf '%s\n' "${summary[@]}"
exit "$failed"
