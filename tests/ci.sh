#!/usr/bin/env bash
# The test command: installs what the tests need, checks the layout (the protocol core
# stays pure), formatting and lints, runs every test, then builds the static
# x86_64 and aarch64 release binaries (cross/build.sh: static, stripped, size budget) and
# runs them end to end against Prosody, aarch64 under qemu-user (cross/qemu-test.sh).
# armv7, mips and mipsel take about 1.5 min more each: `cross/build.sh && cross/qemu-test.sh`.
# Last, the .deb and .ipk packages of those binaries are built, installed and checked.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup-debian.sh
# The protocol core stays sans-I/O: src/xmpp/ uses no runtime, no files, no sockets and
# nothing of the crate outside itself (tests/layout.rs checks the rest of the layer map).
if grep -rnP '^(?!\s*//).*(\bsmol\b|\bstd::(fs|net)\b|\bstd::\{[^}]*\b(fs|net)\b|\bcrate::(?!xmpp\b))' src/xmpp; then
    echo "src/xmpp/ must import nothing outside src/xmpp/, nor smol, std::fs or std::net" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || rustup component add rustfmt clippy
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# The fuzz targets are a crate of their own (run with nightly cargo-fuzz); they must still build.
cargo check --locked --manifest-path fuzz/Cargo.toml
cargo test --locked
bash cross/build.sh x86_64-unknown-linux-musl aarch64-unknown-linux-musl
bash cross/qemu-test.sh x86_64-unknown-linux-musl aarch64-unknown-linux-musl
bash tests/packages.sh
