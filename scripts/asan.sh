#!/usr/bin/env bash
# Runs the Rust test suite under AddressSanitizer with the `asan` feature,
# which wraps every switch in __sanitizer_start_switch_fiber /
# __sanitizer_finish_switch_fiber. Fails on any ASan report and on ASan's
# "False positive error reports may follow" warning (what an unannotated
# stack switch produces).
#
#   scripts/asan.sh [extra cargo test arguments]
#
# Needs the nightly toolchain with rust-src:
#   rustup toolchain install nightly && rustup component add rust-src --toolchain nightly
#
# Not run under ASan: tests/c_abi.rs (its C programs would need the ASan
# runtime linked in; they are checked under valgrind instead) and
# tests/gdb.rs (skips itself with the feature). Child-process crash tests
# run with ASan's own SEGV/BUS/abort handlers off, so the crashes they
# provoke end the process exactly as without ASan.
#
# Environment: CARGO_TARGET_DIR (default: target/asan), TOOLCHAIN (default:
# nightly), TARGET (default: x86_64-unknown-linux-gnu).
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain="${TOOLCHAIN:-nightly}"
target="${TARGET:-x86_64-unknown-linux-gnu}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/asan}"
export RUSTFLAGS="-Zsanitizer=address ${RUSTFLAGS:-}"
export RUSTDOCFLAGS="-Zsanitizer=address ${RUSTDOCFLAGS:-}"
# detect_stack_use_after_return exercises the fake stacks that the fiber
# annotations hand over at every switch.
export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1:handle_segv=0:handle_sigbus=0:handle_abort=0:${ASAN_OPTIONS:-}"
export UGREEN_STRESS_SCALE="${UGREEN_STRESS_SCALE:-0.25}"

mkdir -p "$CARGO_TARGET_DIR"
log="$CARGO_TARGET_DIR/asan-test.log"

tests=()
for f in tests/*.rs; do
    name="$(basename "$f" .rs)"
    case "$name" in
        c_abi | gdb) ;;
        *) tests+=(--test "$name") ;;
    esac
done

set +e
cargo "+$toolchain" test -Zbuild-std --target "$target" --features asan \
    --lib "${tests[@]}" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

fail=0
if [ "$status" -ne 0 ]; then
    echo "asan: cargo test failed (status $status)" >&2
    fail=1
fi
if grep -q 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer' "$log"; then
    echo "asan: AddressSanitizer reported errors (see $log)" >&2
    fail=1
fi
if grep -qi 'false positive' "$log"; then
    echo "asan: ASan warned of false positives: a stack switch was not annotated (see $log)" >&2
    grep -i -B2 -A4 'false positive' "$log" | head -n 20 >&2
    fail=1
fi
if [ $fail -eq 0 ]; then
    echo "asan: all tests passed, no reports, no false-positive warnings"
fi
exit $fail
