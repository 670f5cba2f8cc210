#!/usr/bin/env bash
# Runs the Rust test binaries and the C programs of tests/c/ under valgrind
# memcheck. Fails on any memcheck error and on any "client switching
# stacks?" warning (every green stack is registered with
# VALGRIND_STACK_REGISTER, so valgrind must never take a switch for a stack
# overflow).
#
#   scripts/valgrind.sh [--debug]
#
# * Rust: every test binary of tests/*.rs, one test at a time
#   (--test-threads=1), except tests that only drive child processes or
#   other tools (SKIP below); tests/stress.rs runs at 1/100 of its size
#   (UGREEN_STRESS_SCALE).
# * C: tests/c_abi.rs runs natively and starts each C program under
#   valgrind (UGREEN_TEST_RUNNER), the crashing ones included (C_SKIP
#   below lists the exceptions).
#
# Every valgrind process writes its own log; all are checked at the end.
# Environment: CARGO_TARGET_DIR (default: target), VALGRIND (default:
# valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=(--release)
profile_dir=release
if [ "${1:-}" = "--debug" ]; then
    profile=()
    profile_dir=debug
fi

target_dir="${CARGO_TARGET_DIR:-target}"
valgrind="${VALGRIND:-valgrind}"
logs="$target_dir/valgrind-logs"
rm -rf "$logs"
mkdir -p "$logs"
logs="$(cd "$logs" && pwd)"

# Rust tests not run under valgrind: they only start child processes (whose
# crashes are the point) or run other programs.
SKIP=(
    scenarios_in_child_processes # tests/raw.rs: children that end the process on purpose
    gdb_backtrace                # tests/gdb.rs: runs gdb
    rounding_mode_is_per_context # tests/regs.rs: valgrind computes in round-to-nearest only
    coroutine_shares_fp_control  # tests/regs.rs: the same
)
# Binaries not run under valgrind at all: they switch no stacks (and
# asm_notes only runs the assembler and binutils).
SKIP_BINARIES=(header c_abi asm_notes)
# C tests not run under valgrind: the install test runs no program of its
# own. (The crash programs do run: memcheck reports no error for a
# guard-page hit, an abort or the overflow handler, only the signal.)
C_SKIP=(install_and_pkg_config)

memcheck=("$valgrind" --tool=memcheck --error-exitcode=1 --track-origins=yes
    --log-file="$logs/%p.log")

echo "building the test binaries (${profile_dir})"
mapfile -t binaries < <(cargo test "${profile[@]}" --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*"' | sed 's/"executable":"\(.*\)"/\1/' | grep '/deps/' | sort -u)
[ ${#binaries[@]} -gt 0 ] || { echo "no test binaries built" >&2; exit 1; }

skip_args=()
for s in "${SKIP[@]}"; do
    skip_args+=(--skip "$s")
done

status=0
for bin in "${binaries[@]}"; do
    name="$(basename "$bin")"
    name="${name%-*}"
    case " ${SKIP_BINARIES[*]} " in *" $name "*) continue ;; esac
    echo "=== $name (memcheck)"
    if ! UGREEN_STRESS_SCALE=0.01 "${memcheck[@]}" "$bin" --test-threads=1 "${skip_args[@]}" \
        >"$logs/$name.out" 2>&1; then
        echo "FAILED: $name (output in $logs/$name.out)" >&2
        tail -n 30 "$logs/$name.out" >&2
        status=1
    else
        grep -E '^test result' "$logs/$name.out" || true
    fi
done

c_abi="$(printf '%s\n' "${binaries[@]}" | grep '/c_abi-' | head -n 1 || true)"
if [ -n "$c_abi" ]; then
    echo "=== tests/c/ programs (memcheck through UGREEN_TEST_RUNNER)"
    c_skip_args=()
    for s in "${C_SKIP[@]}"; do
        c_skip_args+=(--skip "$s")
    done
    if ! UGREEN_TEST_RUNNER="${memcheck[*]}" "$c_abi" --test-threads=1 "${c_skip_args[@]}" \
        >"$logs/c_abi.out" 2>&1; then
        echo "FAILED: C programs (output in $logs/c_abi.out)" >&2
        tail -n 30 "$logs/c_abi.out" >&2
        status=1
    else
        grep -E '^test result' "$logs/c_abi.out" || true
    fi
fi

# Check every valgrind log, also those of processes that exited 0.
count=0
for log in "$logs"/*.log; do
    [ -e "$log" ] || continue
    count=$((count + 1))
    if grep -q 'client switching stacks' "$log"; then
        echo "FAILED: valgrind saw an unregistered stack switch: $log" >&2
        grep -B2 -A8 'client switching stacks' "$log" | head -n 30 >&2
        status=1
    fi
    if grep -Eq 'ERROR SUMMARY: [1-9]' "$log"; then
        echo "FAILED: memcheck errors: $log" >&2
        head -n 60 "$log" >&2
        status=1
    fi
    if ! grep -q 'ERROR SUMMARY: 0 errors' "$log"; then
        echo "FAILED: valgrind did not finish normally: $log" >&2
        tail -n 20 "$log" >&2
        status=1
    fi
done
echo "valgrind: $count processes checked, logs in $logs"
if [ "$count" -eq 0 ]; then
    echo "FAILED: no valgrind logs" >&2
    status=1
fi
[ $status -eq 0 ] && echo "valgrind: no errors, no unregistered stack switches"
exit $status
