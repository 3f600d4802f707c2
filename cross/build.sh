#!/usr/bin/env bash
# Static, stripped xrelay binaries for routers and boards, built on a Debian bookworm x86_64
# host without Docker. Installs what it needs (rustup targets and rust-src, Debian's cross
# compilers, musl), builds each target, copies the result to dist/xrelay-TARGET and checks
# it with cross/check.sh (static, stripped, size budget).
#
# usage: cross/build.sh [--plain] [--keep-symbols] [TARGET...]   (default: all five targets)
#
# Default: std rebuilt from rust-src for size (-Zbuild-std, immediate-abort panics, std
# optimized for size, non-PIE, no unwind tables), on the stable toolchain through
# RUSTC_BOOTSTRAP=1, with the `min` profile. --plain: an ordinary stable `cargo build
# --release` (x86_64 and aarch64 only: their std comes from rustup). --keep-symbols: the
# same build unstripped, to $CARGO_TARGET_DIR/symbols/xrelay-TARGET (for cross/bloat.sh).
#
# Targets:
#   x86_64-unknown-linux-musl        PCs, servers, x86 routers; ring's C through musl-gcc
#   aarch64-unknown-linux-musl       Raspberry Pi 3/4/5 64-bit, newer routers; rust-lld links
#   armv7-unknown-linux-musleabihf   Raspberry Pi 2/3 32-bit, most ARM routers; Debian's musl
#   mipsel-unknown-linux-musl        OpenWrt MIPS little-endian (MT7621, ...); soft-float musl
#   mips-unknown-linux-musl          OpenWrt MIPS big-endian (ath79, ...); soft-float musl
#
# HTTPS serving (the cargo feature `https`, about 60 KB on aarch64) does not fit the size
# budgets of aarch64 (1.35 MiB) and MIPS (1.5 MiB): those builds leave it out, the x86_64
# and armv7 ones carry it. XRELAY_HTTPS=1 builds it into every target, XRELAY_HTTPS=0 into none.
#
# Everything generated (compiler wrappers, libunwind shims, the soft-float musl) lives in
# $CARGO_TARGET_DIR/cross-host (default target/cross-host); nothing outside the checkout
# changes except installed Debian packages, rustup components and dpkg's foreign
# architectures arm64 and armhf (for Debian's musl headers).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR
CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$ROOT/target}")
cd "$ROOT"
CACHE=$CARGO_TARGET_DIR/cross-host
DIST=$ROOT/dist
ALL=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
    mipsel-unknown-linux-musl mips-unknown-linux-musl)

plain=0 symbols=0
while [ $# -gt 0 ]; do
    case $1 in
    --plain) plain=1 ;;
    --keep-symbols) symbols=1 ;;
    *) break ;;
    esac
    shift
done
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ALL[@]}")

die() { echo "cross/build.sh: $*" >&2; exit 2; }
for t in "${targets[@]}"; do
    case $t in
    x86_64-unknown-linux-musl | aarch64-unknown-linux-musl) ;;
    armv7-unknown-linux-musleabihf | mipsel-unknown-linux-musl | mips-unknown-linux-musl)
        [ $plain -eq 0 ] || die "--plain covers x86_64 and aarch64 only; build $t without it" ;;
    *) die "unsupported target $t (supported: ${ALL[*]})" ;;
    esac
done

# --- what the chosen targets need -------------------------------------------------------
packages=(file)
rust_targets=()
for t in "${targets[@]}"; do
    case $t in
    x86_64-*) packages+=(musl-tools); rust_targets+=("$t") ;;
    aarch64-*) packages+=(gcc-aarch64-linux-gnu musl-dev:arm64); rust_targets+=("$t") ;;
    armv7-*) packages+=(gcc-arm-linux-gnueabihf musl-dev:armhf) ;;
    mipsel-*) packages+=(gcc-mipsel-linux-gnu make dpkg-dev) ;;
    mips-*) packages+=(gcc-mips-linux-gnu make dpkg-dev) ;;
    esac
done
bash tests/setup-debian.sh "${packages[@]}"
[ ${#rust_targets[@]} -eq 0 ] || rustup target add "${rust_targets[@]}" >/dev/null 2>&1 \
    || rustup target add "${rust_targets[@]}"
[ $plain -eq 1 ] || rustup component add rust-src >/dev/null 2>&1 || rustup component add rust-src

mkdir -p "$CACHE/bin" "$DIST"
export PATH=$CACHE/bin:$PATH

# A gcc that compiles and links against musl: Debian's cross gcc with musl's specs file.
# $1 wrapper name (also the name cc-rs would look for), $2 cross gcc, $3 specs, $4 flags.
wrap_gcc() {
    printf '#!/bin/sh\nexec %s %s -specs %s "$@"\n' "$2" "$4" "$3" >"$CACHE/bin/$1"
    chmod +x "$CACHE/bin/$1"
}

# The specs file of Debian's musl-dev for a foreign architecture ($1: arm64, armhf).
musl_specs() { dpkg -L "musl-dev:$1" | grep 'musl-gcc.specs$'; }

# std's unwind crate links -lunwind on musl, and rust-src builds no libunwind for build-std
# targets: give it gcc's libgcc_eh objects. Debian's libgcc_eh (built for glibc >= 2.35)
# calls _dl_find_object; the stub's -1 makes it fall back to dl_iterate_phdr, which musl has.
# $1 target, $2 cross gcc, $3 musl wrapper. Prints the directory holding libunwind.a.
unwind_shim() {
    local d=$CACHE/$1/unwind
    if [ ! -f "$d/libunwind.a" ]; then
        rm -rf "$d" && mkdir -p "$d/objs"
        (cd "$d/objs" && ar x "$("$2" -print-file-name=libgcc_eh.a)")
        echo 'int _dl_find_object(void *pc, void *res) { (void)pc; (void)res; return -1; }' >"$d/dlfo.c"
        "$3" -Os -c "$d/dlfo.c" -o "$d/dlfo.o"
        ar rcs "$d/libunwind.a" "$d"/objs/*.o "$d/dlfo.o"
    fi
    echo "$d"
}

# Debian's musl source, fetched with a private apt state (the machine's own Debian entries
# turned into deb-src), so the system's apt configuration is never touched.
musl_source() {
    local d=$CACHE/musl-src
    if [ ! -d "$d/musl" ]; then
        rm -rf "$d" && mkdir -p "$d/apt/lists/partial" "$d/apt/cache/archives/partial" "$d/apt/sources"
        local SP SL
        eval "$(apt-config shell SP Dir::Etc::sourceparts/d SL Dir::Etc::sourcelist/f)"
        # deb822 entries of the Debian archive only (third-party repositories have no sources)
        for f in "$SP"/*.sources; do
            [ -e "$f" ] || continue
            awk 'BEGIN {RS=""; ORS="\n\n"} /URIs:[^\n]*debian/ && /Types:[^\n]*deb/ {
                sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f"
        done >"$d/apt/sources/debian-src.sources"
        [ -f "$SL" ] && sed -n 's/^deb \(.*debian.*\)/deb-src \1/p' "$SL" >"$d/apt/sources/debian-src.list"
        local opts=(-q -o Dir::State::Lists="$d/apt/lists" -o Dir::Cache="$d/apt/cache"
            -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$d/apt/sources"
            -o APT::Sandbox::User=root)
        apt-get "${opts[@]}" update >"$d/apt.log" 2>&1 || { cat "$d/apt.log" >&2; return 1; }
        (cd "$d" && apt-get "${opts[@]}" source --download-only musl >>"$d/apt.log" 2>&1) \
            || { cat "$d/apt.log" >&2; return 1; }
        (cd "$d" && dpkg-source -x musl_*.dsc musl >>"$d/apt.log" 2>&1) \
            || { cat "$d/apt.log" >&2; return 1; }
    fi
    echo "$d/musl"
}

# OpenWrt's MIPS musl targets are soft-float; Debian only ships a hard-float musl for
# mipsel and none for mips, so build musl from Debian's source with -msoft-float.
# $1 mips|mipsel. Prints the install prefix (with lib/musl-gcc.specs).
musl_soft_float() {
    local a=$1 p=$CACHE/musl-$1-sf
    if [ ! -f "$p/lib/musl-gcc.specs" ]; then
        local src b=$CACHE/musl-build-$1
        src=$(musl_source)
        rm -rf "$b" "$p" && cp -r "$src" "$b"
        (cd "$b" && ./configure --target="$a-linux-gnu" CC="$a-linux-gnu-gcc -msoft-float" \
            CFLAGS=-Os --prefix="$p" --disable-shared --enable-wrapper=gcc \
            && make -j"$(nproc)" && make install) >"$CACHE/musl-$a-sf.log" 2>&1 \
            || { tail -30 "$CACHE/musl-$a-sf.log" >&2; return 1; }
        rm -rf "$b"
    fi
    echo "$p"
}

# --- build ----------------------------------------------------------------------------
summary=()
status=0
for t in "${targets[@]}"; do
    TU=$(echo "$t" | tr 'a-z-' 'A-Z_')
    TL=$(echo "$t" | tr '-' '_')
    flags=(-Crelocation-model=static)
    case $t in
    x86_64-*)
        # ring's C through musl-gcc; rust-lld links (smaller than GNU ld: no build ID)
        export "CARGO_TARGET_${TU}_LINKER=rust-lld" ;;
    aarch64-*)
        # rust-std brings crt objects and libc.a; gcc (with musl's headers) is only for ring's
        # C, and rust-lld links (35 KB smaller than GNU ld)
        wrap_gcc aarch64-linux-musl-gcc aarch64-linux-gnu-gcc "$(musl_specs arm64)" ""
        export "CC_$TL=aarch64-linux-musl-gcc" "AR_$TL=aarch64-linux-gnu-ar"
        export "CARGO_TARGET_${TU}_LINKER=rust-lld" ;;
    armv7-*)
        wrap_gcc arm-linux-musleabihf-gcc arm-linux-gnueabihf-gcc "$(musl_specs armhf)" ""
        lib=$(unwind_shim "$t" arm-linux-gnueabihf-gcc arm-linux-musleabihf-gcc)
        export "CC_$TL=arm-linux-musleabihf-gcc" "AR_$TL=arm-linux-gnueabihf-ar"
        export "CARGO_TARGET_${TU}_LINKER=arm-linux-musleabihf-gcc"
        flags+=(-Clink-self-contained=no -L "$lib") ;;
    mips*)
        a=${t%%-*}
        echo "== $t: soft-float musl (cached in $CACHE/musl-$a-sf)"
        prefix=$(musl_soft_float "$a")
        wrap_gcc "$a-linux-muslsf-gcc" "$a-linux-gnu-gcc" "$prefix/lib/musl-gcc.specs" -msoft-float
        lib=$(unwind_shim "$t" "$a-linux-gnu-gcc" "$a-linux-muslsf-gcc")
        export "CC_$TL=$a-linux-muslsf-gcc" "AR_$TL=$a-linux-gnu-ar"
        export "CARGO_TARGET_${TU}_LINKER=$a-linux-muslsf-gcc"
        # the mips musl targets are not static by default
        flags+=(-Ctarget-feature=+crt-static -Clink-self-contained=no -L "$lib") ;;
    esac
    if [ $plain -eq 1 ]; then
        profile=release
        cargo_args=(--release)
    else
        profile=min
        cargo_args=(--profile min -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size)
        flags+=(-Zunstable-options -Cpanic=immediate-abort -Cforce-unwind-tables=no)
    fi
    export "CARGO_TARGET_${TU}_RUSTFLAGS=${flags[*]}"
    if [ $symbols -eq 1 ]; then
        export "CARGO_PROFILE_$(echo $profile | tr a-z A-Z)_STRIP=false"
    fi
    case ${XRELAY_HTTPS:-auto}/$t in
    0/* | auto/aarch64-* | auto/mips*) cargo_args+=(--no-default-features) ;;
    esac
    echo "== $t: cargo build ${cargo_args[*]}"
    start=$(date +%s)
    if [ $plain -eq 1 ]; then
        cargo build --locked --bin xrelay --target "$t" "${cargo_args[@]}"
    else
        RUSTC_BOOTSTRAP=1 cargo build --locked --bin xrelay --target "$t" "${cargo_args[@]}"
    fi
    secs=$(($(date +%s) - start))
    if [ $symbols -eq 1 ]; then
        mkdir -p "$CARGO_TARGET_DIR/symbols"
        cp "$CARGO_TARGET_DIR/$t/$profile/xrelay" "$CARGO_TARGET_DIR/symbols/xrelay-$t"
        summary+=("$(printf '%-32s %5s s  unstripped: %s' "$t" "$secs" "$CARGO_TARGET_DIR/symbols/xrelay-$t")")
        continue
    fi
    cp "$CARGO_TARGET_DIR/$t/$profile/xrelay" "$DIST/xrelay-$t"
    if verdict=$(bash cross/check.sh "$DIST/xrelay-$t"); then :; else status=1; fi
    summary+=("$(printf '%-32s %5s s  %s' "$t" "$secs" "$verdict")")
done
echo "== summary (build time, then cross/check.sh)"
printf '%s\n' "${summary[@]}"
exit $status
