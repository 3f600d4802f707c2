#!/usr/bin/env bash
# Checks the packages that packaging/build.sh makes from the binaries in dist/ (x86_64 at
# least; every other target present is packaged and checked too):
#  - .deb (amd64 installed on this machine): files, modes, owners, the user, `xrelay
#    --version`, `xrelay check` with the package's own config against a throwaway Prosody,
#    the service enabled only once the config is edited, remove keeps the config, purge
#    removes it; the unit through systemd-analyze verify; lintian on every .deb.
#  - .ipk: unpacked with tar (ar for the older ar-wrapped format): control fields,
#    conffiles, file list and modes, the init script's start_service against a stub procd
#    library that records procd_set_param, and postinst's enable-only-with-a-config rule.
# Leaves nothing installed: the package is purged and a user it created deleted, even on
# failure. Needs root (dpkg -i). Prints one line per check and "packages: N passed, N failed".
# usage: tests/packages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

[ "$(id -u)" -eq 0 ] || { echo "tests/packages.sh: run as root (it installs the .deb)" >&2; exit 2; }
[ -f dist/xrelay-x86_64-unknown-linux-musl ] \
    || { echo "tests/packages.sh: dist/xrelay-x86_64-unknown-linux-musl missing: cross/build.sh x86_64-unknown-linux-musl" >&2; exit 2; }
if dpkg-query -W -f='${Status}' xrelay 2>/dev/null | grep -qv 'not-installed'; then
    echo "tests/packages.sh: an xrelay package is installed here; the test would remove it" >&2
    exit 2
fi

bash tests/setup-debian.sh
# only this test needs lintian: not in the default list, so the other tests set up faster
bash tests/setup-debian.sh lintian

VERSION=$(awk -F'"' '/^\[/ { pkg = ($0 == "[package]") } pkg && /^version *=/ { print $2; exit }' Cargo.toml)
passed=0 failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: one line for the outcome of COMMAND
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# has_mode PATH "MODE USER GROUP"
has_mode() {
    local got
    got=$(stat -c '%a %U %G' "$1" 2>/dev/null) || { echo "  $1 missing"; return 1; }
    [ "$got" = "$2" ] || { echo "  $1 is $got, expected $2"; return 1; }
}
# dpkg ARGS..., waiting while another package manager on the machine holds the lock
dpkg_wait() {
    local out rc
    for _ in $(seq 300); do
        out=$(dpkg "$@" 2>&1) && rc=0 || rc=$?
        case $out in *"locked by another process"*) sleep 2 ;; *) break ;; esac
    done
    printf '%s\n' "$out"
    return $rc
}
# field FILE NAME: a control field's value
field() { sed -n "s/^$2: //p" "$1"; }

echo "== packaging/build.sh"
built=$(bash packaging/build.sh)
echo "$built"
DEB=dist/xrelay_${VERSION}_amd64.deb
check "build.sh made $DEB" test -f "$DEB"

# --- .ipk -----------------------------------------------------------------------------------
TMP=$(mktemp -d)
user_existed=0
getent passwd xrelay >/dev/null && user_existed=1
cleanup() {
    dpkg_wait -P xrelay >/dev/null 2>&1 || true
    if [ $user_existed -eq 0 ] && getent passwd xrelay >/dev/null; then
        userdel xrelay 2>/dev/null || true
    fi
    if [ $user_existed -eq 0 ] && getent group xrelay >/dev/null; then
        groupdel xrelay 2>/dev/null || true
    fi
    [ -z "${BED_DIR:-}" ] || bed_stop
    rm -rf "$TMP"
}
trap cleanup EXIT

# A stub of OpenWrt's /etc/rc.common and procd's shell functions: sources the init script
# ($1), prints its settings, points CONF at $STUB_CONF and runs start_service, recording
# every procd call (and mkdir, which must not touch this machine) with its arguments in
# brackets.
cat >"$TMP/rc.common" <<'SH'
mkdir() { printf 'mkdir'; printf ' [%s]' "$@"; echo; }
procd_open_instance() { echo "procd_open_instance"; }
procd_set_param() { printf 'procd_set_param'; printf ' [%s]' "$@"; echo; }
procd_close_instance() { echo "procd_close_instance"; }
. "$1"
echo "USE_PROCD=$USE_PROCD START=$START STOP=$STOP PROG=$PROG CONF=$CONF"
CONF=$STUB_CONF
start_service 2>&1
echo "start_service returned $?"
SH

# the Rust target whose binary an OpenWrt architecture carries
ipk_target() {
    case $1 in
    x86_64) echo x86_64-unknown-linux-musl ;;
    aarch64_*) echo aarch64-unknown-linux-musl ;;
    arm_*) echo armv7-unknown-linux-musleabihf ;;
    mipsel_*) echo mipsel-unknown-linux-musl ;;
    mips_*) echo mips-unknown-linux-musl ;;
    esac
}

# hotplug scripts the package must carry (none until packaging/openwrt/hotplug.d/ has some)
hotplug=()
if [ -d packaging/openwrt/hotplug.d ]; then
    while read -r f; do hotplug+=("./etc/hotplug.d/$f"); done \
        < <(cd packaging/openwrt/hotplug.d && find . -type f -printf '%P\n')
fi

check_ipk() {
    local ipk=$1 arch name d
    name=${ipk##*/}
    arch=${name#xrelay_"${VERSION}"_}
    arch=${arch%.ipk}
    d=$TMP/ipk-$arch
    mkdir -p "$d/control" "$d/data"
    echo "== $ipk"
    # OpenWrt 23.05/24.10 build a gzipped tar; older opkg also reads an ar archive
    if [ "$(head -c 7 "$ipk" | tr -d '\0')" = '!<arch>' ]; then
        (cd "$d" && ar x "$ROOT/$ipk")
        members=$(ar t "$ipk" | tr '\n' ' ')
    else
        tar -xzf "$ipk" -C "$d"
        members=$(tar -tzf "$ipk" | tr '\n' ' ')
    fi
    check "$arch: members debian-binary, data.tar.gz, control.tar.gz in ipkg-build's order" \
        test "$members" = "./debian-binary ./data.tar.gz ./control.tar.gz "
    check "$arch: debian-binary is 2.0" test "$(cat "$d/debian-binary")" = 2.0
    tar -xzf "$d/control.tar.gz" -C "$d/control"
    tar -xzf "$d/data.tar.gz" -C "$d/data"
    local c=$d/control/control
    check "$arch: control Package" test "$(field "$c" Package)" = xrelay
    check "$arch: control Version from Cargo.toml" test "$(field "$c" Version)" = "$VERSION"
    check "$arch: control Architecture" test "$(field "$c" Architecture)" = "$arch"
    check "$arch: control Maintainer and Description" \
        test -n "$(field "$c" Maintainer)" -a -n "$(field "$c" Description)"
    check "$arch: control Installed-Size is the unpacked data's bytes" \
        test "$(field "$c" Installed-Size)" = "$(gzip -dc "$d/data.tar.gz" | wc -c)"
    check "$arch: no Depends (static binary)" test -z "$(field "$c" Depends)"
    check "$arch: conffiles is the config" test "$(cat "$d/control/conffiles")" = /etc/xrelay/xrelay.toml
    check "$arch: sysupgrade keeps password, keys and invites (keep.d)" test \
        "$(cat "$d/data/lib/upgrade/keep.d/xrelay")" = "$(printf '/etc/xrelay/password\n/etc/xrelay/keys\n/etc/xrelay/invites')"

    local files expected
    files=$(tar -tzvf "$d/data.tar.gz" | awk '$1 !~ /^d/ { print $1, $2, $6 }' | sort)
    expected=$(
        {
            echo "-rwxr-xr-x 0/0 ./usr/bin/xrelay"
            echo "-rwxr-xr-x 0/0 ./etc/init.d/xrelay"
            echo "-rw------- 0/0 ./etc/xrelay/xrelay.toml"
            echo "-rw-r--r-- 0/0 ./lib/upgrade/keep.d/xrelay"
            for h in "${hotplug[@]}"; do echo "-rw-r--r-- 0/0 $h"; done
        } | sort
    )
    if [ "$files" = "$expected" ]; then
        ok "$arch: file list, modes and owners"
    else
        bad "$arch: file list, modes and owners (- expected, + found)"
        diff <(echo "$expected") <(echo "$files") | grep '^[-+][^-+]' || true
    fi
    check "$arch: /etc/xrelay is 0700" test "$(stat -c %a "$d/data/etc/xrelay")" = 700
    local target
    target=$(ipk_target "$arch")
    check "$arch: the binary is dist/xrelay-$target" cmp -s "$d/data/usr/bin/xrelay" "dist/xrelay-$target"
    check "$arch: init script is packaging/openwrt/xrelay.init" cmp -s "$d/data/etc/init.d/xrelay" packaging/openwrt/xrelay.init

    # start_service through the stub procd library
    local out
    out=$(cd "$d/data" && STUB_CONF="$d/data/etc/xrelay/xrelay.toml" sh "$TMP/rc.common" ./etc/init.d/xrelay \
        | sed "s#$d/data##g")
    echo "$out" >"$d/procd.log"
    check "$arch: init script is procd (USE_PROCD=1), /usr/bin/xrelay, /etc/xrelay/xrelay.toml" \
        grep -qFx "USE_PROCD=1 START=95 STOP=10 PROG=/usr/bin/xrelay CONF=/etc/xrelay/xrelay.toml" "$d/procd.log"
    check "$arch: procd command is xrelay -c CONF run" \
        grep -qFx "procd_set_param [command] [/usr/bin/xrelay] [-c] [/etc/xrelay/xrelay.toml] [run]" "$d/procd.log"
    check "$arch: procd respawns forever, 5 s apart" \
        grep -qFx "procd_set_param [respawn] [3600] [5] [0]" "$d/procd.log"
    check "$arch: procd watches the config file" \
        grep -qFx "procd_set_param [file] [/etc/xrelay/xrelay.toml]" "$d/procd.log"
    check "$arch: start_service makes the local socket's directory" \
        grep -qFx "mkdir [-p] [-m] [0700] [/var/run/xrelay]" "$d/procd.log"
    check "$arch: the example config listens on that socket" \
        grep -qF '"unix:/var/run/xrelay/xrelay.sock"' "$d/data/etc/xrelay/xrelay.toml"
    check "$arch: one instance, opened and closed, start_service returns 0" test \
        "$(grep -c '^procd_open_instance$' "$d/procd.log")$(tail -2 "$d/procd.log" | tr '\n' ' ')" \
        = "1procd_close_instance start_service returned 0 "
    out=$(cd "$d/data" && STUB_CONF=/nonexistent/xrelay.toml sh "$TMP/rc.common" ./etc/init.d/xrelay)
    check "$arch: without a config start_service fails and starts nothing" \
        test "$(echo "$out" | grep -c procd_)$(echo "$out" | tail -1)" = "0start_service returned 1"

    # postinst into an image root (IPKG_INSTROOT): a stub rc.common records "enable"
    local r=$d/root
    mkdir -p "$r"
    cp -a "$d/data/." "$r/"
    printf '#!/bin/sh\necho "$@" >>"%s/enabled"\n' "$r" >"$r/etc/rc.common"
    chmod 0755 "$r/etc/rc.common"
    out=$(IPKG_INSTROOT=$r sh "$d/control/postinst" configure)
    check "$arch: postinst with the example config does not enable, says what to edit" \
        test ! -e "$r/enabled" -a "${out#xrelay: edit /etc/xrelay/xrelay.toml}" != "$out"
    sed -i 's/^jid = .*/jid = "router@example.net"/' "$r/etc/xrelay/xrelay.toml"
    IPKG_INSTROOT=$r sh "$d/control/postinst" configure >/dev/null
    check "$arch: postinst with a real config enables the service" \
        test "$(cat "$r/enabled" 2>/dev/null)" = "$r/etc/init.d/xrelay enable"
}

for ipk in dist/xrelay_"${VERSION}"_*.ipk; do
    [ -e "$ipk" ] && check_ipk "$ipk"
done

# --- .deb -----------------------------------------------------------------------------------
echo "== $DEB"
ctl=$TMP/deb-control
dpkg-deb -f "$DEB" >"$ctl"
check "deb: control Package, Version from Cargo.toml, Architecture amd64" test \
    "$(field "$ctl" Package) $(field "$ctl" Version) $(field "$ctl" Architecture)" = "xrelay $VERSION amd64"
check "deb: no Depends (static binary)" test -z "$(field "$ctl" Depends)"
check "deb: control Maintainer, Homepage, Description, Installed-Size" test -n \
    "$(field "$ctl" Maintainer)" -a -n "$(field "$ctl" Homepage)" -a -n "$(field "$ctl" Description)" \
    -a -n "$(field "$ctl" Installed-Size)"

. tests/bed.sh
bed_start bot bot-password alice alice-password >/dev/null
trap cleanup EXIT # bed_start sets its own

install_out=$(dpkg_wait -i "$DEB") && rc=0 || rc=$?
echo "$install_out" | sed 's/^/  /'
if [ $rc -ne 0 ]; then
    bad "deb: dpkg -i"
    echo "packages: $passed passed, $failed failed"
    exit 1
fi
check "deb: dpkg -i installs it" grep -q 'install ok installed' <<<"$(dpkg-query -W -f='${Status}' xrelay)"
check "deb: postinst prints what to edit" grep -qF "xrelay: edit /etc/xrelay/xrelay.toml" <<<"$install_out"
check "deb: /usr/bin/xrelay 0755 root" has_mode /usr/bin/xrelay "755 root root"
check "deb: systemd unit 0644 root" has_mode /lib/systemd/system/xrelay.service "644 root root"
check "deb: sysusers file 0644 root" has_mode /usr/lib/sysusers.d/xrelay.conf "644 root root"
check "deb: /etc/xrelay 0750 root:xrelay" has_mode /etc/xrelay "750 root xrelay"
check "deb: /etc/xrelay/xrelay.toml 0640 root:xrelay" has_mode /etc/xrelay/xrelay.toml "640 root xrelay"
check "deb: /var/lib/xrelay 0700 xrelay:xrelay" has_mode /var/lib/xrelay "700 xrelay xrelay"
check "deb: the config is a conffile" grep -q '/etc/xrelay/xrelay.toml' \
    <<<"$(dpkg-query -W -f='${Conffiles}' xrelay)"
IFS=: read -r _ _ uid _ _ home shell <<<"$(getent passwd xrelay)"
check "deb: system user xrelay, home /var/lib/xrelay, no login shell" \
    test "$uid" -lt 1000 -a "$home" = /var/lib/xrelay -a "${shell##*/}" = nologin
WANTS=/etc/systemd/system/multi-user.target.wants/xrelay.service
check "deb: not enabled while the config is the example" test ! -e "$WANTS" -a ! -L "$WANTS"
check "deb: xrelay is /usr/bin/xrelay on PATH" test "$(command -v xrelay)" = /usr/bin/xrelay
check "deb: xrelay --version names $VERSION" grep -qF "$VERSION" <<<"$(/usr/bin/xrelay --version 2>&1)"

unit=/lib/systemd/system/xrelay.service
if command -v systemd-analyze >/dev/null; then
    check "deb: systemd-analyze verify accepts the unit" systemd-analyze verify "$unit"
else
    # no systemd here: the lines the service depends on, and only known sections
    check "deb: the unit runs /usr/bin/xrelay as xrelay with its state directory" test "$(
        grep -E '^(ExecStart|User|Group|StateDirectory|WantedBy)=' "$unit" | tr '\n' ' '
    )" = "User=xrelay Group=xrelay ExecStart=/usr/bin/xrelay -c /etc/xrelay/xrelay.toml run StateDirectory=xrelay WantedBy=multi-user.target "
    check "deb: the unit has only [Unit], [Service], [Install]" test -z "$(grep '^\[' "$unit" | grep -vxE '\[(Unit|Service|Install)\]')"
fi

# The package's own config with the test server's settings written into it; the CA where
# the service user can read it.
conf=/etc/xrelay/xrelay.toml
install -d -m 0755 "$TMP/ca"
install -m 0644 "$BED_CA" "$TMP/ca/ca.pem"
chmod 0755 "$TMP"
sed -i -e 's/^jid = .*/jid = "bot@localhost"/' \
    -e 's/^# server = .*/server = "127.0.0.1"/' \
    -e "s/^# port = .*/port = $BED_C2S/" \
    -e "s#^\# ca_file = .*#ca_file = \"$TMP/ca/ca.pem\"#" "$conf"
check "deb: the test's settings are in the package's config" test \
    "$(grep -cE '^(jid = "bot@localhost"|server = "127.0.0.1"|port = |ca_file = )' "$conf")" = 4
install -m 0640 -g xrelay /dev/null /etc/xrelay/password
echo bot-password >/etc/xrelay/password
out=$(runuser -u xrelay -- xrelay -c "$conf" check 2>&1) && rc=0 || rc=$?
echo "$out" | sed 's/^/  /'
check "deb: xrelay check as user xrelay with the package's config logs in" test "$rc" = 0
out=$(runuser -u xrelay -- xrelay key create --scope msg packages-test 2>&1) && rc=0 || rc=$?
check "deb: xrelay key create as user xrelay writes /var/lib/xrelay/keys 0600" \
    has_mode /var/lib/xrelay/keys "600 xrelay xrelay"

# a config that is not the example: installing again enables the service
dpkg_wait -i "$DEB" >/dev/null || bad "deb: dpkg -i over an edited config"
check "deb: with an edited config postinst enables the service" test -L "$WANTS"
check "deb: installing again kept the edited config" grep -qx 'jid = "bot@localhost"' "$conf"

dpkg_wait -r xrelay >/dev/null || bad "deb: dpkg -r"
check "deb: dpkg -r removes the binary and the unit" test ! -e /usr/bin/xrelay -a ! -e "$unit"
check "deb: dpkg -r keeps the edited config and the password" \
    test -f /etc/xrelay/password -a "$(grep -c 'bot@localhost' "$conf" 2>/dev/null)" = 1
check "deb: dpkg -r keeps the keys in /var/lib/xrelay" test -f /var/lib/xrelay/keys
check "deb: dpkg -r leaves the package in config-files state" \
    grep -q config-files <<<"$(dpkg-query -W -f='${Status}' xrelay)"
dpkg_wait -P xrelay >/dev/null || bad "deb: dpkg -P"
check "deb: dpkg -P removes /etc/xrelay (config and password)" test ! -e /etc/xrelay
check "deb: dpkg -P removes /var/lib/xrelay" test ! -e /var/lib/xrelay
check "deb: dpkg -P removes the enable link" test ! -e "$WANTS" -a ! -L "$WANTS"
check "deb: dpkg -P leaves nothing in dpkg's database" \
    test -z "$(dpkg-query -W -f='${Status}' xrelay 2>/dev/null | grep -v not-installed)"

echo "== lintian"
debs=(dist/xrelay_"${VERSION}"_*.deb)
out=$(lintian --fail-on error,warning "${debs[@]}" 2>&1) && rc=0 || rc=$?
echo "$out" | grep -v 'running with root privileges' | sed 's/^/  /' || true
check "lintian: no errors or warnings in ${debs[*]##*/}" test "$rc" = 0

echo "packages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
