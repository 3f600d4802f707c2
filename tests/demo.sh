#!/usr/bin/env bash
# The demo: a throwaway local Prosody, xrelay built and checked against it, and a message
# delivered to a second account and shown from the server's store. Needs a Debian machine
# with Rust; installs the Debian packages it needs. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup-debian.sh
cargo build --release --locked --quiet
XRELAY=$PWD/target/release/xrelay
. tests/bed.sh

echo "== Prosody on 127.0.0.1 with a test CA and the accounts bot and alice"
bed_start bot bot-password alice alice-password

echo "== xrelay check"
"$XRELAY" -c "$BED_DIR/xrelay.toml" check

echo "== xrelay send alice 'WAN is down <eth0> & rebooting'"
"$XRELAY" -c "$BED_DIR/xrelay.toml" send alice 'WAN is down <eth0> & rebooting'

echo "== what Prosody holds for alice (she is offline, so the message waits in her store)"
grep -F 'WAN is down <eth0> & rebooting' "$BED_DIR"/data/localhost/offline/alice.list
echo "== demo ok"
