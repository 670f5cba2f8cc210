#!/usr/bin/env bash
# Switch latency from C: builds libugreen.a for the target, compiles
# examples/c/latency.c against include/ugreen.h and runs it (under
# qemu-aarch64 for an aarch64 target on another host).
#
#   scripts/c-latency.sh [--target TRIPLE] [BATCHES]
#
# Environment: CARGO_TARGET_DIR (default: target), CC (default: cc, or
# aarch64-linux-gnu-gcc for aarch64-unknown-linux-gnu on another host),
# QEMU_LD_PREFIX (default: /usr/aarch64-linux-gnu).
set -euo pipefail

cd "$(dirname "$0")/.."
target=""
batches=""
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) batches="$1"; shift ;;
    esac
done

target_dir="${CARGO_TARGET_DIR:-target}"
host_arch="$(uname -m)"
runner=()
build=(--quiet --release)
if [ -n "$target" ]; then
    build+=(--target "$target")
    out="$target_dir/$target/release/latency_c"
    arch="${target%%-*}"
    if [ "$arch" != "$host_arch" ]; then
        case "$target" in
            aarch64-unknown-linux-gnu)
                cc="${CC:-aarch64-linux-gnu-gcc}"
                runner=(qemu-aarch64 -L "${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}")
                ;;
            *) echo "no cross compiler known for $target; set CC" >&2; exit 1 ;;
        esac
    fi
else
    out="$target_dir/release/latency_c"
fi
# The archive cargo built and its native libraries (scripts/staticlib).
{ read -r lib; read -r native_libs; } < <(scripts/staticlib "${build[@]}")
[ -f "${lib:-}" ] || { echo "c-latency.sh: no libugreen.a was built" >&2; exit 1; }
cc="${cc:-${CC:-cc}}"

# shellcheck disable=SC2086 # the native libraries are separate words
"$cc" -O2 -std=c11 -Wall -Wextra -Iinclude examples/c/latency.c "$lib" \
    $native_libs -o "$out"
echo "built $out with $cc -O2${runner:+; running under ${runner[*]}}"
"${runner[@]}" "$out" ${batches:+"$batches"}
