#!/usr/bin/env bash
# Builds and runs the fuzz target over C ABI call sequences for a short
# while (CI), with AddressSanitizer and the crate's `asan` feature.
#
#   fuzz/run.sh [SECONDS]      (default 30)
#
# Needs: the nightly toolchain, and cargo-fuzz (`cargo install cargo-fuzz`).
# A crash leaves its input in fuzz/artifacts/c_abi_sequences/; replay it with
# `cargo +nightly fuzz run c_abi_sequences <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-fuzz/target}"
mkdir -p "$CARGO_TARGET_DIR"
cargo +nightly fuzz run c_abi_sequences -- -max_total_time="$seconds" -rss_limit_mb=4096 2>&1 \
    | tee "$CARGO_TARGET_DIR/fuzz-run.log" | grep -E '^#[0-9]+ +(DONE|NEW)|^Done|ERROR|WARNING' | tail -n 5
if grep -qi 'false positive' "$CARGO_TARGET_DIR/fuzz-run.log"; then
    echo "fuzz: ASan warned of false positives (an unannotated stack switch)" >&2
    exit 1
fi
echo "fuzz: no crash in ${seconds}s"
