# A throwaway Prosody for scripts (demo, benchmarks): source this file, then call
#   bed_start [ACCOUNT PASSWORD]...
# It sets BED_DIR (temp dir), BED_C2S (port) and BED_CA (the test CA), writes
# "$BED_DIR/xrelay.toml" for the first account, and stops Prosody on exit.
# bed_free_port prints a free TCP port on 127.0.0.1 (for xrelay's HTTP listener).
# The Rust integration tests have their own harness in tests/common.

BED_DIR= BED_PID=
bed_stop() {
    if [ -n "$BED_PID" ]; then kill "$BED_PID" 2>/dev/null; wait "$BED_PID" 2>/dev/null; fi
    [ -n "$BED_DIR" ] && rm -rf "$BED_DIR"
    BED_PID= BED_DIR=
}

bed_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bed_start() {
    BED_DIR=$(mktemp -d)
    trap bed_stop EXIT
    BED_C2S=$(bed_free_port)
    BED_CA=$BED_DIR/ca.pem
    local d=$BED_DIR
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=xrelay-test-ca -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
        -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$d/ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/ext" -out "$d/server.pem" 2>/dev/null
    mkdir -p "$d/data"
    cat > "$d/prosody.cfg.lua" <<LUA
run_as_root = true
prosody_user = "root"
daemonize = false
pidfile = "$d/prosody.pid"
data_path = "$d/data"
interfaces = { "127.0.0.1" }
c2s_ports = { $BED_C2S }
s2s_ports = { }
http_ports = { }
https_ports = { }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "offline", "smacks" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
password_hash = "SHA-256"
c2s_require_encryption = true
log = { info = "$d/prosody.log" }
ssl = { certificate = "$d/server.pem", key = "$d/server.key" }
VirtualHost "localhost"
LUA
    while [ $# -ge 2 ]; do
        prosodyctl --config "$d/prosody.cfg.lua" register "$1" localhost "$2" >/dev/null
        [ -e "$d/xrelay.toml" ] || printf '[xmpp]\njid = "%s@localhost"\npassword = "%s"\nserver = "127.0.0.1"\nport = %s\nca_file = "%s"\n' \
            "$1" "$2" "$BED_C2S" "$d/ca.pem" > "$d/xrelay.toml"
        # it holds a password: xrelay refuses it if others can read it (cp keeps the mode)
        chmod 600 "$d/xrelay.toml"
        shift 2
    done
    prosody --config "$d/prosody.cfg.lua" >/dev/null 2>&1 &
    BED_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$BED_C2S") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "Prosody did not start:" >&2
    cat "$d/prosody.log" >&2
    return 1
}
