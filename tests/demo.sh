#!/usr/bin/env bash
# The demo: a throwaway local Prosody, xrelay built and checked against it, and a message
# delivered to a second account and shown from the server's store. Needs a Debian machine
# with Rust; installs the Debian packages it needs. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup-debian.sh
cargo build --release --locked --quiet
XRELAY=$PWD/target/release/xrelay

dir=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
C2S=$(port)

echo "== a test CA and a server certificate for localhost"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=xrelay-demo-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$dir/ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/ext" -out "$dir/server.pem" 2>/dev/null

echo "== Prosody on 127.0.0.1:$C2S with accounts bot and alice"
mkdir -p "$dir/data"
cat > "$dir/prosody.cfg.lua" <<EOF
daemonize = false
run_as_root = true
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
interfaces = { "127.0.0.1" }
c2s_ports = { $C2S }
http_ports = { }
https_ports = { }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "offline", "smacks" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
c2s_require_encryption = true
log = { info = "$dir/prosody.log" }
ssl = { certificate = "$dir/server.pem", key = "$dir/server.key" }
VirtualHost "localhost"
EOF
prosodyctl --config "$dir/prosody.cfg.lua" register bot localhost bot-password
prosodyctl --config "$dir/prosody.cfg.lua" register alice localhost alice-password
prosody --config "$dir/prosody.cfg.lua" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$C2S") 2>/dev/null && break
    sleep 0.1
done

cat > "$dir/xrelay.toml" <<EOF
[xmpp]
jid = "bot@localhost"
password = "bot-password"
server = "127.0.0.1"
port = $C2S
ca_file = "$dir/ca.pem"
EOF

echo "== xrelay check"
"$XRELAY" -c "$dir/xrelay.toml" check

echo "== xrelay send alice 'WAN is down <eth0> & rebooting'"
"$XRELAY" -c "$dir/xrelay.toml" send alice 'WAN is down <eth0> & rebooting'

echo "== what Prosody holds for alice (she is offline, so the message waits in her store)"
grep -F 'WAN is down <eth0> & rebooting' "$dir"/data/localhost/offline/alice.list \
    || { cat "$dir"/data/localhost/offline/alice.list; exit 1; }
echo "== demo ok"
