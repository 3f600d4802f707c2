#!/usr/bin/env bash
# Packages the static binaries of cross/build.sh: .deb for Debian and Raspberry Pi OS (with
# dpkg-deb) and .ipk for OpenWrt 23.05/24.10 (with tar and gzip, laid out as OpenWrt's
# ipkg-build does). No Docker, no OpenWrt SDK.
#
# usage: packaging/build.sh [TARGET...]
#   TARGET: a Rust target as for cross/build.sh. Default: every dist/xrelay-TARGET present;
#   a named target whose binary is missing is an error. Packages go to dist/:
#
#   x86_64-unknown-linux-musl        xrelay_VERSION_amd64.deb, xrelay_VERSION_x86_64.ipk
#   aarch64-unknown-linux-musl       xrelay_VERSION_arm64.deb, xrelay_VERSION_aarch64_generic.ipk,
#                                    xrelay_VERSION_aarch64_cortex-a53.ipk
#   armv7-unknown-linux-musleabihf   xrelay_VERSION_armhf.deb, xrelay_VERSION_arm_cortex-a7_neon-vfpv4.ipk
#   mipsel-unknown-linux-musl        xrelay_VERSION_mipsel_24kc.ipk
#   mips-unknown-linux-musl          xrelay_VERSION_mips_24kc.ipk
#
# VERSION is Cargo.toml's. XRELAY_MAINTAINER and XRELAY_HOMEPAGE override the Maintainer and
# Homepage fields. The binaries go in as they are, after cross/check.sh (static, stripped);
# file dates come from SOURCE_DATE_EPOCH, else the last commit, so a rebuild gives the same
# bytes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKG=$ROOT/packaging
DIST=${DIST:-$ROOT/dist}
MAINTAINER=${XRELAY_MAINTAINER:-xrelay maintainers <maintainers@xrelay.invalid>}
HOMEPAGE=${XRELAY_HOMEPAGE:-https://xrelay.invalid/}
SUMMARY="HTTP to XMPP relay for routers and small boards"
LONG="A tiny statically linked daemon that keeps one XMPP client stream online as a
bot account and gives routers, Raspberry Pis and small boards an HTTP door into
XMPP: posting compatible with Prosody's mod_post_msg, REST stanzas as mod_rest,
webhooks and invites, with every buffer and queue bounded and verified TLS."

die() { echo "packaging/build.sh: $*" >&2; exit 2; }

# version = "..." of the [package] table
VERSION=$(awk -F'"' '/^\[/ { pkg = ($0 == "[package]") } pkg && /^version *=/ { print $2; exit }' \
    "$ROOT/Cargo.toml")
[ -n "$VERSION" ] || die "no version in Cargo.toml"
EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$DIST"/xrelay-*-linux-*; do [ -f "$f" ] && targets+=("${f##*/xrelay-}"); done
fi
[ ${#targets[@]} -gt 0 ] || die "no binaries in $DIST: run cross/build.sh first"

# $1 target: Debian architecture (empty: none), then OpenWrt architectures.
deb_arch() {
    case $1 in
    x86_64-unknown-linux-musl) echo amd64 ;;
    aarch64-unknown-linux-musl) echo arm64 ;;
    armv7-unknown-linux-musleabihf) echo armhf ;;
    mipsel-unknown-linux-musl | mips-unknown-linux-musl) ;;
    *) die "unsupported target $1" ;;
    esac
}
ipk_archs() {
    case $1 in
    x86_64-unknown-linux-musl) echo x86_64 ;;
    aarch64-unknown-linux-musl) echo aarch64_generic aarch64_cortex-a53 ;;
    armv7-unknown-linux-musleabihf) echo arm_cortex-a7_neon-vfpv4 ;;
    mipsel-unknown-linux-musl) echo mipsel_24kc ;;
    mips-unknown-linux-musl) echo mips_24kc ;;
    esac
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# bash 5.2 would put the match in place of & in ${var//pattern/replacement}
shopt -u patsub_replacement 2>/dev/null || true

# The example config for a platform: $1 state directory, $2 password hint, $3 check hint,
# $4 start hint, $5 runtime directory (the local socket's).
example_config() {
    local t
    t=$(cat "$PKG/xrelay.toml")
    t=${t//@STATE@/$1}
    t=${t//@RUN@/$5}
    t=${t//@PASSWORD_HINT@/$2}
    t=${t//@CHECK_HINT@/$3}
    t=${t//@START_HINT@/$4}
    printf '%s\n' "$t"
}
example_config /var/lib/xrelay \
    'sudo install -m 0640 -g xrelay /dev/null /etc/xrelay/password && sudoedit /etc/xrelay/password' \
    'sudo -u xrelay xrelay check' \
    'sudo systemctl enable --now xrelay' /run/xrelay >"$WORK/deb.toml"
example_config /etc/xrelay \
    'touch /etc/xrelay/password && chmod 0600 /etc/xrelay/password && vi /etc/xrelay/password' \
    'xrelay check' \
    '/etc/init.d/xrelay enable && /etc/init.d/xrelay start' /var/run/xrelay >"$WORK/ipk.toml"

# A maintainer script with the example config's md5 filled in: $1 source, $2 config, $3 dest.
script() {
    local md5
    md5=$(md5sum <"$2" | cut -d' ' -f1)
    sed "s/@EXAMPLE_MD5@/$md5/" "$1" >"$3"
    chmod 0755 "$3"
}

# Sets every file's date to EPOCH (tar's --mtime does the same for the archives).
stamp() { find "$1" -exec touch -h -d "@$EPOCH" {} +; }

# --- .deb ---------------------------------------------------------------------------------
build_deb() {
    local bin=$1 arch=$2 d=$WORK/deb-$2
    rm -rf "$d"
    install -D -m 0755 "$bin" "$d/usr/bin/xrelay"
    # the unit as in packaging/systemd, with the packaged binary's path
    install -d "$d/lib/systemd/system" "$d/usr/lib/sysusers.d"
    sed -e 's#/usr/local/bin/xrelay#/usr/bin/xrelay#g' \
        -e 's#^\(\# Install: \).*#\1the xrelay package; it ships the config as /etc/xrelay/xrelay.toml.#' \
        -e '/^# user from xrelay.sysusers/d' \
        -e "s#^Description=.*#&\\nDocumentation=$HOMEPAGE#" \
        "$ROOT/packaging/systemd/xrelay.service" >"$d/lib/systemd/system/xrelay.service"
    chmod 0644 "$d/lib/systemd/system/xrelay.service"
    install -m 0644 "$ROOT/packaging/systemd/xrelay.sysusers" "$d/usr/lib/sysusers.d/xrelay.conf"
    install -d -m 0750 "$d/etc/xrelay"
    install -m 0640 "$WORK/deb.toml" "$d/etc/xrelay/xrelay.toml"
    install -d "$d/usr/share/doc/xrelay" "$d/usr/share/lintian/overrides"
    sed "s#@HOMEPAGE@#$HOMEPAGE#" "$PKG/debian/copyright" >"$d/usr/share/doc/xrelay/copyright"
    {
        printf 'xrelay (%s) unstable; urgency=medium\n\n' "$VERSION"
        printf '  * Release %s.\n\n' "$VERSION"
        printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$EPOCH")"
    } | gzip -9n >"$d/usr/share/doc/xrelay/changelog.gz"
    install -m 0644 "$PKG/debian/lintian-overrides" "$d/usr/share/lintian/overrides/xrelay"
    chmod 0644 "$d"/usr/share/doc/xrelay/* "$d/usr/share/lintian/overrides/xrelay"

    install -d "$d/DEBIAN"
    script "$PKG/debian/postinst" "$WORK/deb.toml" "$d/DEBIAN/postinst"
    install -m 0755 "$PKG/debian/prerm" "$PKG/debian/postrm" "$d/DEBIAN/"
    echo /etc/xrelay/xrelay.toml >"$d/DEBIAN/conffiles"
    (cd "$d" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
        | xargs -0 md5sum) >"$d/DEBIAN/md5sums"
    local size
    size=$(du -sk --exclude=DEBIAN "$d" | cut -f1)
    {
        echo "Package: xrelay"
        echo "Version: $VERSION"
        echo "Architecture: $arch"
        echo "Maintainer: $MAINTAINER"
        echo "Installed-Size: $size"
        echo "Section: net"
        echo "Priority: optional"
        echo "Homepage: $HOMEPAGE"
        echo "Description: $SUMMARY"
        sed 's/^/ /' <<<"$LONG"
    } >"$d/DEBIAN/control"
    chmod 0644 "$d/DEBIAN/control" "$d/DEBIAN/conffiles" "$d/DEBIAN/md5sums"
    stamp "$d"
    local out=$DIST/xrelay_${VERSION}_$arch.deb
    SOURCE_DATE_EPOCH=$EPOCH dpkg-deb --root-owner-group -Zxz --build "$d" "$out" >/dev/null
    echo "$out"
}

# --- .ipk ---------------------------------------------------------------------------------
# tar as OpenWrt's ipkg-build calls it: GNU format, owner root, names sorted, fixed dates.
ipk_tar() { tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name --mtime="@$EPOCH" "$@"; }

build_ipk() {
    local bin=$1 arch=$2 d=$WORK/ipk-$2
    rm -rf "$d"
    install -D -m 0755 "$bin" "$d/data/usr/bin/xrelay"
    install -D -m 0755 "$ROOT/packaging/openwrt/xrelay.init" "$d/data/etc/init.d/xrelay"
    install -d -m 0700 "$d/data/etc/xrelay"
    install -m 0600 "$WORK/ipk.toml" "$d/data/etc/xrelay/xrelay.toml"
    # hotplug scripts, e.g. packaging/openwrt/hotplug.d/iface/90-xrelay -> /etc/hotplug.d/iface/
    if [ -d "$ROOT/packaging/openwrt/hotplug.d" ]; then
        (cd "$ROOT/packaging/openwrt/hotplug.d" && find . -type f -printf '%P\n') | while read -r f; do
            install -D -m 0644 "$ROOT/packaging/openwrt/hotplug.d/$f" "$d/data/etc/hotplug.d/$f"
        done
    fi
    # sysupgrade keeps the files listed in keep.d; opkg's conffiles only covers files the
    # package ships (ipkg-build drops the others from conffiles and lists them here)
    install -D -m 0644 "$PKG/openwrt/keep" "$d/data/lib/upgrade/keep.d/xrelay"

    install -d "$d/control"
    echo /etc/xrelay/xrelay.toml >"$d/control/conffiles"
    script "$PKG/openwrt/postinst" "$WORK/ipk.toml" "$d/control/postinst"
    install -m 0755 "$PKG/openwrt/prerm" "$d/control/"
    stamp "$d"
    (cd "$d/data" && ipk_tar -cf - .) | gzip -9n >"$d/data.tar.gz"
    {
        echo "Package: xrelay"
        echo "Version: $VERSION"
        echo "License: MIT OR Apache-2.0"
        echo "Section: net"
        echo "URL: $HOMEPAGE"
        echo "Maintainer: $MAINTAINER"
        echo "Architecture: $arch"
        # bytes of the unpacked data, as ipkg-build counts them
        echo "Installed-Size: $(gzip -dc "$d/data.tar.gz" | wc -c)"
        echo "Description: $SUMMARY"
        sed 's/^/ /' <<<"$LONG"
    } >"$d/control/control"
    chmod 0644 "$d/control/control" "$d/control/conffiles"
    touch -d "@$EPOCH" "$d/control/control"
    (cd "$d/control" && ipk_tar -cf - .) | gzip -9n >"$d/control.tar.gz"
    echo 2.0 >"$d/debian-binary"
    local out=$DIST/xrelay_${VERSION}_$arch.ipk
    (cd "$d" && ipk_tar -cf - ./debian-binary ./data.tar.gz ./control.tar.gz) | gzip -9n >"$out"
    echo "$out"
}

mkdir -p "$DIST"
for t in "${targets[@]}"; do
    bin=$DIST/xrelay-$t
    deb=$(deb_arch "$t")
    [ -f "$bin" ] || die "$bin missing: run cross/build.sh $t"
    # no Depends: only a static binary may go in
    bash "$ROOT/cross/check.sh" "$bin" >/dev/null || die "$(bash "$ROOT/cross/check.sh" "$bin")"
    [ -z "$deb" ] || build_deb "$bin" "$deb"
    for a in $(ipk_archs "$t"); do build_ipk "$bin" "$a"; done
done | while read -r out; do
    printf '%9s B  %s\n' "$(stat -c %s "$out")" "${out#"$ROOT"/}"
done
