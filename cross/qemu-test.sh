#!/usr/bin/env bash
# End-to-end test of the cross-built binaries in dist/ under qemu-user (x86_64 natively):
# against a throwaway Prosody with a test CA (tests/bed.sh), each binary makes an API key,
# starts, logs in over STARTTLS with the CA file, and delivers a message posted with curl
# (`?wait=1`: 200 once the server acknowledged it), which must then be in the recipient's
# offline store. Prints one PASS/FAIL line per target; exits 1 if any failed.
# usage: cross/qemu-test.sh [TARGET...]     (default: every dist/xrelay-* present)
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in dist/xrelay-*; do [ -e "$f" ] && targets+=("${f#dist/xrelay-}"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "no binaries in dist/: run cross/build.sh first" >&2; exit 2; }

bash tests/setup-debian.sh
bash tests/setup-debian.sh qemu-user-static
. tests/bed.sh
bed_start bot bot-password alice alice-password >/dev/null

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

relay=
stop_relay() { [ -z "$relay" ] || { kill -TERM "$relay" 2>/dev/null; wait "$relay" 2>/dev/null || true; relay=; }; }
trap 'stop_relay; bed_stop' EXIT

# $1 target. Prints the result line; returns 1 on failure.
run_one() {
    local t=$1 bin=$PWD/dist/xrelay-$1 runner=()
    case $t in
    x86_64-*) ;;
    aarch64-*) runner=(qemu-aarch64-static) ;;
    armv7-*) runner=(qemu-arm-static) ;;
    mipsel-*) runner=(qemu-mipsel-static) ;;
    mips-*) runner=(qemu-mips-static) ;;
    *) echo "FAIL $t: no qemu for this target"; return 1 ;;
    esac
    [ -x "$bin" ] || { echo "FAIL $t: $bin missing (cross/build.sh $t)"; return 1; }
    local dir=$BED_DIR/$t port
    mkdir -p "$dir"
    port=$(bed_free_port)
    cp "$BED_DIR/xrelay.toml" "$dir/xrelay.toml"
    printf '[http]\nlisten = ["127.0.0.1:%s"]\n[keys]\nfile = "%s/keys"\n' "$port" "$dir" >>"$dir/xrelay.toml"
    local xr=("${runner[@]}" "$bin" -c "$dir/xrelay.toml") token
    token=$("${xr[@]}" key create --scope msg qemu-test 2>"$dir/key.log") \
        || { echo "FAIL $t: key create: $(cat "$dir/key.log")"; return 1; }

    local start online posted code text="cross test $t $RANDOM"
    start=$(now_ms)
    "${xr[@]}" run 2>"$dir/xrelay.log" &
    relay=$!
    until grep -qs "online as" "$dir/xrelay.log"; do
        if ! kill -0 "$relay" 2>/dev/null || [ $(($(now_ms) - start)) -gt 30000 ]; then
            echo "FAIL $t: not online: $(tail -3 "$dir/xrelay.log" | tr '\n' ' ')"
            stop_relay
            return 1
        fi
        sleep 0.01
    done
    online=$(($(now_ms) - start))

    posted=$(now_ms)
    code=$(curl -sS -o "$dir/post.out" -w '%{http_code}' -u "${token%%/*}:${token#*/}" \
        -H 'Content-Type: text/plain' -d "$text" "http://127.0.0.1:$port/msg/alice?wait=1") || code=000
    local acked=$(($(now_ms) - posted))
    stop_relay
    if [ "$code" != 200 ]; then
        echo "FAIL $t: POST answered $code: $(cat "$dir/post.out")"
        return 1
    fi
    grep -qF "$text" "$BED_DIR/data/localhost/offline/alice.list" 2>/dev/null \
        || { echo "FAIL $t: acknowledged, but not in alice's offline store"; return 1; }
    echo "PASS $t: start to online $online ms, POST to acknowledged $acked ms"
}

failed=0
for t in "${targets[@]}"; do
    run_one "$t" || failed=1
done
exit $failed
