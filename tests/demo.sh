#!/usr/bin/env bash
# The demo: a throwaway local Prosody, xrelay built and checked against it, and a message
# delivered to a second account and shown from the server's store. Needs a Debian machine
# with Rust; installs the Debian packages it needs. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup-debian.sh
cargo build --release --locked --quiet
XRELAY=${CARGO_TARGET_DIR:-$PWD/target}/release/xrelay
. tests/bed.sh

echo "== Prosody on 127.0.0.1 with a test CA and the accounts bot and alice"
bed_start bot bot-password alice alice-password

echo "== xrelay check"
"$XRELAY" -c "$BED_DIR/xrelay.toml" check

echo "== xrelay send alice 'WAN is down <eth0> & rebooting'"
"$XRELAY" -c "$BED_DIR/xrelay.toml" send alice 'WAN is down <eth0> & rebooting'

echo "== xrelay run, an API key, and a curl post"
port=$(bed_free_port)
printf '[http]\nlisten = ["127.0.0.1:%s"]\n[keys]\nfile = "%s/keys"\n' "$port" "$BED_DIR" >> "$BED_DIR/xrelay.toml"
token=$("$XRELAY" -c "$BED_DIR/xrelay.toml" key create --scope msg demo)
"$XRELAY" -c "$BED_DIR/xrelay.toml" run 2>"$BED_DIR/xrelay.log" &
relay=$!
trap 'kill $relay 2>/dev/null; bed_stop' EXIT
until grep -qs "online as" "$BED_DIR/xrelay.log"; do sleep 0.1; done
curl -sS -u "${token%%/*}:${token#*/}" -H 'Content-Type: text/plain' \
    -d 'Disk /dev/sda1 is 95% full' "http://127.0.0.1:$port/msg/alice?wait=1"
echo
curl -sS "http://127.0.0.1:$port/health"
echo

echo "== what Prosody holds for alice (she is offline, so the messages wait in her store)"
grep -F -e 'WAN is down <eth0> & rebooting' -e 'Disk /dev/sda1 is 95% full' \
    "$BED_DIR"/data/localhost/offline/alice.list
echo "== demo ok"
