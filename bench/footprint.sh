#!/usr/bin/env bash
# Footprint and speed in one table: binary size per target (dist/, from cross/build.sh),
# time from start to online, idle RSS online, RSS after 10,000 messages, RSS holding 500
# HTTP connections, and the throughput and latency of bench/throughput.sh.
# usage: bench/footprint.sh      XRELAY_BIN=PATH picks the measured binary
#        (default dist/xrelay-x86_64-unknown-linux-musl, built if missing)
# Runs against throwaway local Prosody instances (tests/bed.sh). RSS is VmRSS of the native
# x86_64 process; under qemu-user the emulator dominates RSS, so other targets show size only.
set -euo pipefail
cd "$(dirname "$0")/.."
native=x86_64-unknown-linux-musl
if [ -z "${XRELAY_BIN:-}" ]; then
    [ -x "dist/xrelay-$native" ] || bash cross/build.sh "$native" >&2
    XRELAY_BIN=dist/xrelay-$native
fi
bin=$(realpath "$XRELAY_BIN")
. tests/bed.sh

# Throughput first (its own Prosody and daemon): 2,000 messages at concurrency 1, then
# 8,000 at 16, so its closing RSS is the RSS after 10,000 messages.
echo "running bench/throughput.sh 2000 8000 ..." >&2
tp=$(XRELAY_BIN=$bin bash bench/throughput.sh 2000 8000)
echo "$tp" >&2

bed_start bot bot-password >/dev/null
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads/ {print $2}' "/proc/$1/status"; }

runs=5 total_ms=0
for i in $(seq $runs); do
    log=$BED_DIR/run-$i.log
    start=$(date +%s%N)
    "$bin" -c "$BED_DIR/xrelay.toml" run 2>"$log" &
    pid=$!
    until grep -qs "online as" "$log"; do
        kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.002
    done
    total_ms=$((total_ms + ($(date +%s%N) - start) / 1000000))
    kill -TERM "$pid"
    wait "$pid" || true
done

# One daemon with room for 500 connections: idle RSS, then 500 clients that each made one
# keep-alive request and stay connected (well within the 10 s idle read timeout).
port=$(bed_free_port)
printf '[http]\nlisten = ["127.0.0.1:%s"]\nmax_connections = 600\n[keys]\nfile = "%s/keys"\n' \
    "$port" "$BED_DIR" >>"$BED_DIR/xrelay.toml"
"$bin" -c "$BED_DIR/xrelay.toml" run 2>"$BED_DIR/xrelay.log" &
pid=$!
trap 'kill $pid 2>/dev/null; bed_stop' EXIT
until grep -qs "online as" "$BED_DIR/xrelay.log"; do sleep 0.01; done
sleep 3
idle_rss=$(rss $pid) idle_threads=$(threads $pid)

hold='
import socket, sys
port = int(sys.argv[1])
conns = []
for _ in range(500):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    conns.append(s)
for s in conns:
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
print("ready", flush=True)
sys.stdin.read()
'
coproc HOLD { python3 -u -c "$hold" "$port"; }
read -r ready <&"${HOLD[0]}"
[ "$ready" = ready ] || { echo "the 500 connections did not open" >&2; exit 1; }
sleep 0.5
conns_rss=$(rss $pid) conns_threads=$(threads $pid)
sockets=$(find "/proc/$pid/fd" -lname 'socket:*' | wc -l)
eval "exec ${HOLD[1]}>&-"
wait "$HOLD_PID" || true

# The table.
fmt_b() { awk -v s="$1" 'BEGIN {printf "%d B (%.2f MiB)", s, s / 1048576}'; }
line() { printf '| %s | %s |\n' "$1" "$2"; }
echo "| figure | value |"
echo "|---|---|"
for f in dist/xrelay-*; do
    [ -e "$f" ] || continue
    line "binary ${f#dist/xrelay-}" "$(fmt_b "$(stat -c %s "$f")")"
done
line "measured binary" "${bin#"$PWD"/}, $(fmt_b "$(stat -c %s "$bin")")"
line "start to online, STARTTLS + SCRAM-SHA-256 on loopback (mean of $runs)" "$((total_ms / runs)) ms"
line "idle RSS online (3 s after login)" "$idle_rss kB, $idle_threads threads"
line "RSS after 10,000 messages (bench/throughput.sh)" \
    "$(echo "$tp" | sed -n 's/.*RSS after the runs.*: \([0-9]*\) kB/\1/p') kB"
line "RSS holding 500 HTTP connections" "$conns_rss kB, $conns_threads threads, $sockets sockets"
echo "$tp" | awk '
    /^concurrency/ {c = $2; sub(":", "", c); n = $3; t = $0; sub(/.* arrived, /, "", t)
        split(t, a, ", "); tp = a[1]; p50 = a[2]; p99 = a[3]; next}
    /xrelay CPU/ {cpu = $0; sub(/.*= /, "", cpu)
        sub(/p50 /, "", p50); sub(/p99 /, "", p99)
        printf "| POST?wait=1 to arrival, concurrency %s, %s messages | %s, p50 %s / p99 %s, xrelay CPU %s |\n",
            c, n, tp, p50, p99, cpu}'
