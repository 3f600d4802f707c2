#!/usr/bin/env bash
# HTTP -> XMPP throughput and POST-to-arrival latency through a local Prosody, plus
# xrelay's RSS and CPU time per message. Not a test: it prints figures.
# usage: bench/throughput.sh [MESSAGES_AT_C1] [MESSAGES_AT_C16]
# XRELAY_BIN=PATH measures that binary (e.g. dist/xrelay-x86_64-unknown-linux-musl)
# instead of a fresh `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
n1=${1:-2000} n16=${2:-20000}
out=${CARGO_TARGET_DIR:-$PWD/target}/release
if [ -n "${XRELAY_BIN:-}" ]; then
    bin=$(realpath "$XRELAY_BIN")
    cargo build --release --locked --quiet --example loadgen
else
    bin=$out/xrelay
    cargo build --release --locked --quiet --bin xrelay --example loadgen
fi
gen=$out/examples/loadgen
. tests/bed.sh
bed_start bot bot-password rcpt rcpt-password
port=$(bed_free_port)
cfg=$BED_DIR/xrelay.toml
printf '[http]\nlisten = ["127.0.0.1:%s"]\n[keys]\nfile = "%s/keys"\n[outbox]\ncapacity = 1024\n' "$port" "$BED_DIR" >> "$cfg"
sed "s/bot@localhost/rcpt@localhost/; s/bot-password/rcpt-password/" "$BED_DIR/xrelay.toml" | sed '/^\[http\]/,$d' > "$BED_DIR/rcpt.toml"
chmod 600 "$BED_DIR/rcpt.toml"   # it holds a password
token=$("$bin" -c "$cfg" key create bench 2>/dev/null)
"$bin" -c "$cfg" run 2>"$BED_DIR/xrelay.log" &
pid=$!
trap 'kill $pid 2>/dev/null; bed_stop' EXIT
until grep -qs "online as" "$BED_DIR/xrelay.log"; do sleep 0.05; done
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
tck=$(getconf CLK_TCK)
for run in "1 $n1" "16 $n16"; do
    set -- $run
    before=$(cpu)
    "$gen" "$port" "$token" "$BED_DIR/rcpt.toml" "$2" "$1"
    after=$(cpu)
    awk -v t=$((after - before)) -v n="$2" -v hz="$tck" \
        'BEGIN {printf "  xrelay CPU: %.2f s for %d messages = %.1f us/message\n", t/hz, n, t/hz/n*1e6}'
done
echo "  xrelay RSS after the runs ($((n1 + n16)) messages): $(awk '/^VmRSS/ {print $2}' /proc/$pid/status) kB"
