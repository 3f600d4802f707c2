#!/usr/bin/env bash
# Installs what the tests need on a Debian machine: Prosody and ejabberd (the tests run
# their own instances, so the distributions' services must not start), openssl,
# ca-certificates, curl and wget (both are run against the listener), python3 (the
# webhook example examples/echo_bot.py runs as a test),
# python3-flask (the Flask bots of mod_rest's README run as webhooks) and musl-tools.
# Given package names, installs exactly those instead (cross/build.sh does
# that); a name like musl-dev:armhf adds the foreign architecture first.
# Idempotent: does nothing when all is installed. Runs as root or via sudo.
# usage: tests/setup-debian.sh [PACKAGE...]
set -euo pipefail

packages=(prosody ejabberd openssl ca-certificates curl wget python3 python3-flask musl-tools)
[ $# -gt 0 ] && packages=("$@")

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup-debian.sh: run as root or install sudo" >&2; exit 1; }
    sudo=(sudo)
fi

echo "installing: ${missing[*]}"
for pkg in "${missing[@]}"; do
    arch=${pkg#*:}
    [ "$arch" = "$pkg" ] && continue
    [ "$arch" = "$(dpkg --print-architecture)" ] && continue
    dpkg --print-foreign-architectures | grep -qx "$arch" || "${sudo[@]}" dpkg --add-architecture "$arch"
done
log=$(mktemp)
# A policy-rc.d that exits 101 keeps the packages' services from starting during the install.
policy=/usr/sbin/policy-rc.d
own_policy=0
cleanup() {
    [ "$own_policy" -eq 1 ] && "${sudo[@]}" rm -f "$policy"
    rm -f "$log"
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
fi

# Other jobs on the machine may hold the dpkg lock for a while: wait for it.
lock=(-o DPkg::Lock::Timeout=600)
if ! { "${sudo[@]}" apt-get "${lock[@]}" update -qq \
    && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi

# Should the service have started anyway (an existing policy that allows it), stop it.
if [[ " ${missing[*]} " == *" prosody "* ]]; then
    if command -v systemctl >/dev/null && systemctl is-active --quiet prosody 2>/dev/null; then
        "${sudo[@]}" systemctl stop prosody
    elif [ -s /run/prosody/prosody.pid ] \
        && "${sudo[@]}" kill -0 "$(cat /run/prosody/prosody.pid)" 2>/dev/null; then
        "${sudo[@]}" kill "$(cat /run/prosody/prosody.pid)"
    fi
fi
if [[ " ${missing[*]} " == *" ejabberd "* ]]; then
    if command -v systemctl >/dev/null && systemctl is-active --quiet ejabberd 2>/dev/null; then
        "${sudo[@]}" systemctl stop ejabberd
    fi
fi
