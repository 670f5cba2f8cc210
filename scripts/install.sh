#!/usr/bin/env bash
# Builds libugreen.a in release mode and installs it with its header and a
# pkg-config file:
#
#   PREFIX/lib/libugreen.a
#   PREFIX/include/ugreen.h
#   PREFIX/lib/pkgconfig/ugreen.pc
#
# Usage: scripts/install.sh [--target TRIPLE] [--features LIST] PREFIX
#
# Then: PKG_CONFIG_PATH=PREFIX/lib/pkgconfig cc app.c $(pkg-config --cflags --libs ugreen)
# Honours CARGO (default: cargo) and CARGO_TARGET_DIR.
set -euo pipefail

usage() {
    echo "usage: $0 [--target TRIPLE] [--features LIST] PREFIX" >&2
    exit 2
}

target=""
features=""
prefix=""
while [ $# -gt 0 ]; do
    case "$1" in
        --target) [ $# -ge 2 ] || usage; target="$2"; shift 2 ;;
        --features) [ $# -ge 2 ] || usage; features="$2"; shift 2 ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) [ -z "$prefix" ] || usage; prefix="$1"; shift ;;
    esac
done
[ -n "$prefix" ] || usage

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo="${CARGO:-cargo}"
case "$prefix" in
    /*) ;;
    *) prefix="$(pwd)/$prefix" ;;
esac

args=(--release)
[ -z "$target" ] || args+=(--target "$target")
[ -z "$features" ] || args+=(--features "$features")

# Build the release staticlib (the same as `cargo build --release`); cargo
# names the archive and build.rs's answer from rustc about its native
# libraries (scripts/staticlib).
{ read -r lib; read -r native_libs; } < <(CARGO="$cargo" "$root/scripts/staticlib" "${args[@]}")
[ -f "${lib:-}" ] || { echo "install.sh: no libugreen.a was built" >&2; exit 1; }
[ -n "${native_libs:-}" ] || { echo "install.sh: no native libraries reported" >&2; exit 1; }

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"

install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0644 "$lib" "$prefix/lib/libugreen.a"
install -m 0644 "$root/include/ugreen.h" "$prefix/include/ugreen.h"
sed -e "s|@PREFIX@|$prefix|g" \
    -e "s|@VERSION@|$version|g" \
    -e "s|@NATIVE_LIBS@|$native_libs|g" \
    "$root/ugreen.pc.in" >"$prefix/lib/pkgconfig/ugreen.pc"

echo "installed ugreen $version into $prefix (native libs: $native_libs)"
