#!/usr/bin/env bash
# Hostile-client load: 1,000 slow HTTP connections (a third never finish their headers, a
# third trickle headers, a third trickle an authenticated body) plus a normal `?wait=1` post
# every 0.5 s, against a release xrelay with the default [http] settings (64 connections,
# 10 s read timeout, 64 KiB bodies) and a throwaway local Prosody. Prints peak RSS, how
# many connections xrelay held at once, what happened to the slow clients and the normal
# posts' success and latency. Not a test: it prints figures. Loopback only; ends by itself.
# usage: bench/slowloris.sh [SLOW=1000] [DURATION_S=100] [TARGET=x86_64-unknown-linux-musl]
#        BODY_AUTH=none bench/slowloris.sh   (the body tricklers have no API key)
set -euo pipefail
cd "$(dirname "$0")/.."
slow=${1:-1000} duration=${2:-100} target=${3:-x86_64-unknown-linux-musl}
cargo build --release --locked --quiet --target "$target" --bin xrelay
bin=${CARGO_TARGET_DIR:-$PWD/target}/$target/release/xrelay
ulimit -n 8192
. tests/bed.sh
bed_start bot bot-password rcpt rcpt-password >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cfg=$BED_DIR/xrelay.toml
printf '[http]\nlisten = ["127.0.0.1:%s"]\n[keys]\nfile = "%s/keys"\n' "$port" "$BED_DIR" >> "$cfg"
token=$("$bin" -c "$cfg" key create --scope msg bench 2>/dev/null)
"$bin" -c "$cfg" run 2>"$BED_DIR/xrelay.log" &
pid=$!
trap 'kill $pid 2>/dev/null; bed_stop' EXIT
until grep -q "online as" "$BED_DIR/xrelay.log"; do sleep 0.05; done
idle=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
base_fds=$(ls "/proc/$pid/fd" | wc -l)
(
    while kill -0 "$pid" 2>/dev/null; do
        echo "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null) $(ls "/proc/$pid/fd" 2>/dev/null | wc -l)"
        sleep 0.2
    done
) > "$BED_DIR/samples" &
sampler=$!
python3 bench/slowloris.py "$port" "$token" rcpt@localhost "$slow" "$duration" 0.5 "${BODY_AUTH:-key}"
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
threads=$(awk '/^Threads/ {print $2}' "/proc/$pid/status")
kill "$sampler" 2>/dev/null || true
peak_fds=$(awk '$2 > m {m = $2} END {print m}' "$BED_DIR/samples")
echo "xrelay ($target): idle RSS $idle kB; peak RSS (VmHWM) $hwm kB; $threads threads"
echo "  connections held at once: at most $((peak_fds - base_fds)) (open descriptors above idle)"
echo "  still running: $(kill -0 "$pid" 2>/dev/null && echo yes || echo NO)"
