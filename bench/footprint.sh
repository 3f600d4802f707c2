#!/usr/bin/env bash
# Footprint of the release binary: size, time from start to online, idle RSS while online.
# usage: bench/footprint.sh [TARGET]   (default x86_64-unknown-linux-musl, the static build)
# Runs against a throwaway local Prosody (tests/bed.sh). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-x86_64-unknown-linux-musl}
cargo build --release --locked --quiet --target "$target"
bin=$PWD/target/$target/release/xrelay
. tests/bed.sh
bed_start bot bot-password >/dev/null

runs=5 total_ms=0 rss= threads=
for i in $(seq $runs); do
    log=$BED_DIR/run-$i.log
    start=$(date +%s%N)
    "$bin" -c "$BED_DIR/xrelay.toml" run 2>"$log" &
    pid=$!
    until grep -q "online as" "$log"; do
        kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.002
    done
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    total_ms=$((total_ms + ms))
    if [ "$i" -eq "$runs" ]; then
        sleep 3
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
        threads=$(awk '/^Threads/ {print $2}' "/proc/$pid/status")
    fi
    kill -TERM "$pid"; wait "$pid" || true
done
size=$(stat -c %s "$bin")
echo "| figure | value |"
echo "|---|---|"
echo "| binary ($target, stripped, static) | $size B ($(awk "BEGIN {printf \"%.2f\", $size/1048576}") MiB) |"
echo "| start to online, STARTTLS + SCRAM-SHA-256 on loopback (mean of $runs) | $((total_ms / runs)) ms |"
echo "| idle RSS online (VmRSS, 3 s after login) | $rss kB, $threads threads |"
