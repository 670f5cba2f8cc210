#!/usr/bin/env bash
# aarch64 with pointer authentication (PAC-RET) and branch target
# identification (BTI): builds everything with branch protection and runs the
# Rust test suite under qemu-user on a CPU that implements both.
#
#   scripts/branch-protection.sh [--no-force-bti] [extra cargo test arguments]
#
# * assembly: CFLAGS -mbranch-protection=standard, so asm/common.h turns on
#   `paciasp`/`autiasp` around the saved return address, `bti c` landing
#   pads, and the GNU property note (BTI | PAC); the script checks the note
#   in the archive;
# * Rust, std included: nightly `-Zbranch-protection=bti,pac-ret` with
#   -Zbuild-std;
# * run: `qemu-aarch64 -cpu max,pauth-impdef=on` (max has PAC and BTI; the
#   impdef algorithm keeps emulation fast). The C programs of tests/c_abi.rs
#   run on the same CPU (UGREEN_TEST_RUNNER).
#
# BTI enforcement: qemu-user guards the pages of an executable only when
# its GNU property note claims BTI, which the linker sets only when every
# input object claims it; Debian bookworm's crt files do not. So the test
# binaries are linked with `-z force-bti` (the linker warns about the crt
# objects and claims BTI anyway; their code is never the target of an
# indirect branch), and every indirect branch, into ugreen's assembly
# included, must land on a `bti` landing pad or the process dies by SIGILL.
# `--no-force-bti` links normally: PAC enforced, BTI pads present but not
# enforced.

# Needs: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user (Debian),
# the nightly toolchain with rust-src, binutils-aarch64-linux-gnu (readelf).
# Environment: CARGO_TARGET_DIR (default: target/branch-protection),
# TOOLCHAIN (default: nightly).
set -euo pipefail
cd "$(dirname "$0")/.."

force_bti=1
if [ "${1:-}" = "--no-force-bti" ]; then
    force_bti=0
    shift
fi

toolchain="${TOOLCHAIN:-nightly}"
target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
runner="qemu-aarch64 -cpu max,pauth-impdef=on -L $sysroot"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/branch-protection}"
export CFLAGS_aarch64_unknown_linux_gnu="-mbranch-protection=standard"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$runner"
export UGREEN_TEST_RUNNER="$runner"
rustflags="-Zbranch-protection=bti,pac-ret"
if [ $force_bti -eq 1 ]; then
    rustflags="$rustflags -Clink-arg=-Wl,-z,force-bti"
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="$rustflags"
# Under emulation the stress test runs at a tenth of its size.
export UGREEN_STRESS_SCALE="${UGREEN_STRESS_SCALE:-0.1}"

cargo "+$toolchain" test -Zbuild-std --target "$target" --release --no-run

# The assembly claims exactly BTI and PAC (GNU_PROPERTY_AARCH64_FEATURE_1_AND = 0x3).
archive="$(ls -t "$CARGO_TARGET_DIR/$target/release/build"/ugreen-*/out/libugreen_asm.a | head -n 1)"
notes="$(aarch64-linux-gnu-readelf -n "$archive")"
if ! grep -q 'AArch64 feature: BTI, PAC' <<<"$notes"; then
    echo "branch-protection: $archive lacks the BTI, PAC property note:" >&2
    echo "$notes" >&2
    exit 1
fi
echo "branch-protection: assembly property note: BTI, PAC"
if aarch64-linux-gnu-objdump -d "$archive" | grep -q 'paciasp\|hint\s*#0x19'; then
    echo "branch-protection: assembly signs return addresses (paciasp)"
else
    echo "branch-protection: no paciasp in $archive" >&2
    exit 1
fi

if [ $force_bti -eq 1 ]; then
    bin="$(ls -t "$CARGO_TARGET_DIR/$target/release/deps"/raw-* | grep -v '\.d$' | head -n 1)"
    if ! aarch64-linux-gnu-readelf -n "$bin" | grep -q 'AArch64 feature: BTI'; then
        echo "branch-protection: $bin does not claim BTI" >&2
        exit 1
    fi
    echo "branch-protection: test binaries claim BTI (enforced by qemu)"
fi

# Doc tests are left out (rustdoc does not take the target's RUSTFLAGS, and
# a mix of branch-protected and unprotected crates is refused), and so is
# c_install_and_pkg_config, which runs scripts/install.sh, a second cargo
# build without -Zbuild-std.
cargo "+$toolchain" test -Zbuild-std --target "$target" --release --no-fail-fast --lib --tests "$@" \
    -- --skip c_install_and_pkg_config
echo "branch-protection: all tests passed under $runner"
