#!/usr/bin/env bash
# What takes the space in a release binary: builds TARGET exactly like cross/build.sh but
# keeps the symbols, then prints the ELF sections and the code and data symbols summed by
# crate (demangled symbol paths; `<A as B>::f` counts for A's crate; C symbols from ring
# and musl are grouped by name). Bytes without a symbol (string literals, tables merged by
# the linker, unwind and relocation data) are in the section figures only.
# usage: cross/bloat.sh [TARGET]     (default aarch64-unknown-linux-musl)
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-aarch64-unknown-linux-musl}
bash cross/build.sh --keep-symbols "$t" >&2
bin=$(realpath -m "${CARGO_TARGET_DIR:-target}")/symbols/xrelay-$t
case $t in
x86_64-*) pfx= ;;
aarch64-*) pfx=aarch64-linux-gnu- ;;
armv7-*) pfx=arm-linux-gnueabihf- ;;
mipsel-*) pfx=mipsel-linux-gnu- ;;
mips-*) pfx=mips-linux-gnu- ;;
esac
stripped=$(stat -c %s "dist/xrelay-$t" 2>/dev/null || echo "?")
out=$(realpath -m "${CARGO_TARGET_DIR:-target}")
case $t in
x86_64-* | aarch64-*) libc=$(rustc --print sysroot)/lib/rustlib/$t/lib/self-contained/libc.a ;;
armv7-*) libc=/usr/lib/arm-linux-musleabihf/libc.a ;;
mips*) libc=$out/cross-host/musl-${t%%-*}-sf/lib/libc.a ;;
esac
ring=$(ls -t "$out/$t"/min/build/ring-*/out/libring_core_*[0-9]_.a | head -1)

echo "## $t: sections (bytes; the stripped binary is $stripped B)"
"${pfx}size" -A "$bin" | awk '$1 ~ /^\./ && $2 > 0 {printf "%-20s %9d\n", $1, $2}'
echo
echo "## symbols by crate (bytes, share of all sized symbols)"
{
    # names defined by ring's C and assembly and by musl, to tell C symbols apart
    "${pfx}nm" "$ring" 2>/dev/null | awk 'NF == 3 {print "=ring", $3}'
    "${pfx}nm" "$libc" 2>/dev/null | awk 'NF == 3 {print "=musl", $3}'
    "${pfx}nm" -S -t d --size-sort -C "$bin"
} | awk '
    $1 == "=ring" {ring[$2] = 1; next}
    $1 == "=musl" {musl[$2] = 1; next}
    NF >= 4 {
        size = $2 + 0
        name = $4; for (i = 5; i <= NF; i++) name = name " " $i
        sub(/^</, "", name); sub(/^&(mut )?/, "", name)
        plain = name; sub(/\..*/, "", plain)    # local copies: name.123, name.localalias
        if (name in ring || plain in ring) crate = "ring (C and assembly)"
        else if (name in musl || plain in musl) crate = "musl libc"
        else if (name ~ /::/) {
            crate = name; sub(/::.*/, "", crate)
            sub(/.* as /, "", crate)    # <u16 as core::fmt::Debug>: the trait crate
            sub(/.* /, "", crate)       # C++ return types: "bool libunwind::..."
            gsub(/[<>&*\[\]]/, "", crate)
            if (crate ~ /^([iu](8|16|32|64|128|size)|f32|f64|bool|char|str|mut|const)$/) crate = "core"
        }
        else crate = "[other C: libgcc, compiler-builtins, libunwind]"
        by[crate] += size; total += size
    }
    END {
        for (c in by) printf "%9d  %5.1f%%  %s\n", by[c], 100 * by[c] / total, c | "sort -rn"
        close("sort -rn")
        printf "%9d  total\n", total
    }'
