#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine: Prosody (without
# letting the distribution start its own service), openssl, curl. Idempotent and quiet.
set -euo pipefail
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
missing=()
command -v prosody >/dev/null || missing+=(prosody)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
# Keep the package's own Prosody service from starting: the tests run their own instances.
had_policy=0
[ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ "$had_policy" -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "$had_policy" -eq 0 ] && $sudo rm -f /usr/sbin/policy-rc.d
# If a service manager started it anyway, stop it: it would hold port 5222.
if command -v systemctl >/dev/null && systemctl is-active --quiet prosody 2>/dev/null; then
    $sudo systemctl stop prosody || true
fi
exit 0
