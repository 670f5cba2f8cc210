#!/usr/bin/env bash
# Instructions per operation of ugreen's switch against glibc swapcontext.
#
#   scripts/callgrind.sh [--target TRIPLE] [N]
#
# Runs examples/switch_count.rs once with N and once with 2N operations per
# case and prints (count(2N) - count(N)) / N, which cancels start-up and
# set-up costs and leaves the instructions of one operation, loop
# bookkeeping included:
#
# * native (x86_64): counts with `valgrind --tool=callgrind` (user-space
#   instructions; a system call counts as one instruction);
# * --target aarch64-unknown-linux-gnu: valgrind cannot run aarch64 code on
#   this host, so the count is the number of guest instructions qemu-aarch64
#   executes, from its single-step execution trace (`-singlestep -d
#   exec,nochain`: one trace line per executed instruction; on x86_64 this
#   gives the same counts as callgrind). The same difference method
#   applies; it counts user-space instructions only.
#
# Environment: CARGO_TARGET_DIR (default: target), QEMU_LD_PREFIX (default:
# /usr/aarch64-linux-gnu).
set -euo pipefail

cd "$(dirname "$0")/.."
target=""
n=""
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) n="$1"; shift ;;
    esac
done

target_dir="${CARGO_TARGET_DIR:-target}"
if [ -n "$target" ]; then
    cargo build --quiet --release --example switch_count --target "$target"
    bin="$target_dir/$target/release/examples/switch_count"
else
    cargo build --quiet --release --example switch_count
    bin="$target_dir/release/examples/switch_count"
fi

case "$target" in
    ""|x86_64-*)
        command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; }
        n="${n:-100000}"
        tool="callgrind (valgrind $(valgrind --version | sed 's/valgrind-//'))"
        count() { # case ops [source-file regex] -> "total in-routine"
            local out total routine=0
            out=$(mktemp)
            valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
            total=$(awk '/^(summary|totals):/ { print $2; exit }' "$out")
            if [ -n "${3:-}" ]; then
                # Self cost of every function whose source file matches.
                routine=$(callgrind_annotate --inclusive=no --threshold=100 "$out" 2>/dev/null |
                    awk -v re="$3" '$2 ~ /^\(/ && $3 ~ re { gsub(",", "", $1); s += $1 } END { print s + 0 }')
            fi
            rm -f "$out"
            echo "$total $routine"
        }
        ;;
    aarch64-*)
        command -v qemu-aarch64 >/dev/null || { echo "qemu-aarch64 not found" >&2; exit 1; }
        n="${n:-2000}"
        tool="qemu-aarch64 single-step trace ($(qemu-aarch64 --version | head -1))"
        qemu=(qemu-aarch64 -L "${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}")
        # In-routine counts only for ugreen's own routines: the PCs of the
        # trace fall inside [load base + symbol, + size), with the load base
        # of the (PIE) binary taken from qemu's page log.
        base=$("${qemu[@]}" -d page "$bin" asm 2 2>&1 >/dev/null |
            awk '$3 == "r-x" && b == "" { split($1, a, "-"); b = a[1] } END { print b }')
        nm_tool=$(command -v aarch64-linux-gnu-nm || command -v nm)
        range=$("$nm_tool" -S "$bin" | awk '$4 == "ugreen_context_swap" { print $1, $2 }')
        count() { # case ops [regex: any value enables the attribution] -> "total in-routine"
            "${qemu[@]}" -singlestep -d exec,nochain "$bin" "$1" "$2" 2>&1 >/dev/null |
                awk -v base="$base" -v range="$range" -v want="${3:-}" '
                    function hex(h,   i, c, v) { v = 0; h = tolower(h)
                        for (i = 1; i <= length(h); i++) { c = index("0123456789abcdef", substr(h, i, 1)); v = v * 16 + c - 1 }
                        return v }
                    BEGIN { split(range, r, " "); lo = hex(base) + hex(r[1]); hi = lo + hex(r[2]) }
                    /^Trace/ { n++
                        if (want != "" && range != "") {
                            split($NF, f, "/"); pc = hex(f[2]); if (pc >= lo && pc < hi) in_r++ } }
                    END { print n + 0, in_r + 0 }'
        }
        ;;
    *) echo "no instruction counter for target $target" >&2; exit 1 ;;
esac

printf 'instructions per operation, %s, N=%s (difference of N and 2N runs)\n' "$tool" "$n"
printf 'binary: %s\n\n' "$bin"
printf '%-18s %-58s %10s %12s\n' "case" "operation" "instr/op" "in routine"
row() { # case description [source-file regex of the switch routine]
    local a b
    a=$(count "$1" "$n" "${3:-}")
    b=$(count "$1" $((2 * n)) "${3:-}")
    awk -v a="$a" -v b="$b" -v n="$n" -v c="$1" -v d="$2" -v has="${3:+1}" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        r = (has && y[2] > 0) ? sprintf("%.1f", (y[2] - x[2]) / n) : "-"
        printf "%-18s %-58s %10.1f %12s\n", c, d, (y[1] - x[1]) / n, r
    }'
}
row asm "one-way switch, ugreen_context_swap (C symbol), depth 0" 'asm/switch_'
row coroutine "one-way switch, Coroutine::resume / Yielder::suspend (inline)"
if [ -z "$target" ] || [ "${target%%-*}" = x86_64 ]; then
    row swapcontext "one-way switch, glibc swapcontext" 'swapcontext[.]S'
else
    row swapcontext "one-way switch, glibc swapcontext"
fi
row create-raw "creation: RawContext::make + swap in + return via link"
row create-coroutine "creation: Coroutine::on_stack + resume to the end"
row create-ucontext "creation: getcontext + makecontext + swapcontext"
row corosensei "one-way switch, corosensei 0.3 resume / suspend"
row create-corosensei "creation: corosensei 0.3 with_stack + resume + into_stack"
row coroutine1 "one-way switch, Coroutine, depth 1"
row corosensei1 "one-way switch, corosensei 0.3, depth 1"
echo
echo "instr/op: every user-space instruction per operation, the calling loop"
echo "included (a system call counts as one). in routine: those executed in the"
echo "switch routine itself (callgrind: by source file; qemu: by the address range"
echo "of ugreen_context_swap; '-' where not attributed)."
