#!/usr/bin/env bash
# The test command: installs what the tests need, runs every test, then builds the static
# x86_64 and aarch64 release binaries (cross/build.sh: static, stripped, size budget) and
# runs them end to end against Prosody, aarch64 under qemu-user (cross/qemu-test.sh).
# armv7, mips and mipsel take about 1.5 min more each: `cross/build.sh && cross/qemu-test.sh`.
# Last, the .deb and .ipk packages of those binaries are built, installed and checked.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup-debian.sh
cargo test --locked
bash cross/build.sh x86_64-unknown-linux-musl aarch64-unknown-linux-musl
bash cross/qemu-test.sh x86_64-unknown-linux-musl aarch64-unknown-linux-musl
bash tests/packages.sh
