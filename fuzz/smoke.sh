#!/usr/bin/env bash
# Runs every fuzz target for a short while (default 10 s each; `fuzz/smoke.sh 600` for the
# long runs), one at a time on one core, starting from the committed seeds in fuzz/seeds/.
# New inputs go to fuzz/corpus/TARGET, crashes to fuzz/artifacts/TARGET (both ignored by git).
# Needs the nightly toolchain and cargo-fuzz; skips (exit 0) when either is missing.
# usage: fuzz/smoke.sh [SECONDS] [TARGET...]   (FUZZ_LOG_DIR=DIR keeps each run's full log)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
shift || true
if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz smoke: skipped (needs rustup's nightly toolchain and cargo install cargo-fuzz)"
    exit 0
fi
# No dependency may switch on unstable features by probing for nightly (rustix 0.37, once
# in the tree, did, then used attributes newer nightlies reject): the probes must fail.
export RUSTFLAGS="-Zallow-features="
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build >/dev/null 2>&1 || { cargo +nightly fuzz build 2>&1 | tail -30; exit 1; }
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ -n "${FUZZ_LOG_DIR:-}" ]; then
        mkdir -p "$FUZZ_LOG_DIR"
        log=$FUZZ_LOG_DIR/$t.log
    else
        log=$(mktemp)
    fi
    if cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=512 -timeout=10 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(awk -F'[ :]+' '/^stat::number_of_executed_units/ {print $3}' "$log")
        cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
        echo "fuzz $t: ok, ${runs:-?} executions in ${secs}s, coverage ${cov:-?}"
    else
        echo "fuzz $t: FAILED (log below)"
        grep -A6 -E 'panicked|ERROR: (libFuzzer|AddressSanitizer)' "$log" | head -20; grep -E '^(Base64|artifact_prefix)' "$log"
        failed=1
    fi
    [ -n "${FUZZ_LOG_DIR:-}" ] || rm -f "$log"
done
exit $failed
