#!/usr/bin/env bash
# The end-to-end suite (uwsgi/tests/e2e.py) on other CPython versions than the
# host's python3, one uWSGI 2.0.31 build per version:
#   uwsgi/run-tests-pythons.sh [VERSION...]     # default: 3.12 3.13 3.14 3.15
# 3.14 and 3.15 come from Debian unstable's packages, in the chroot of
# scripts/sid-chroot.sh (created once under target/, then reused; needs root);
# 3.12 and 3.13 from pyenv ($PYENV_ROOT, default ~/.pyenv) when installed there,
# otherwise they are reported as skipped. libugreen.a (both backends) is built on
# the host; uWSGI and the plugin are built with the version's own Python into
# target/uwsgi-pyX.Y. In the chroot, the version that Debian's packaged uWSGI
# (uwsgi-core, uwsgi-plugin-python3) is built on also runs the suite's packaged_*
# tests against it, with the plugin built by uwsgi/build-plugin.sh. Prints each
# version's PASS/FAIL lines, then one summary line per version; exits non-zero on
# any failure.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
versions=("$@")
# Debian's packaged uWSGI in the chroot, and what its --build-plugin needs
SID_UWSGI_PACKAGES=uwsgi-core,uwsgi-src,uwsgi-plugin-python3,uwsgi-plugin-greenlet-python3,uuid-dev,libcap-dev
[ ${#versions[@]} -gt 0 ] || versions=(3.12 3.13 3.14 3.15)

echo "==> libugreen.a (asm and ucontext backends)"
# (scripts/staticlib: the archives where build.sh looks for them, and their
# native libraries, which build.sh takes from UGREEN_NATIVE_LIBS with UGREEN_SKIP_CARGO)
{ read -r lib_asm; read -r native_libs; } < <(scripts/staticlib --release -q)
{ read -r lib_ucontext; read -r _; } < <(scripts/staticlib --release -q --features ucontext --target-dir target/ucontext)
[ -f "${lib_asm:-}" ] && [ -f "${lib_ucontext:-}" ] && [ -n "${native_libs:-}" ] \
	|| { echo "cargo build failed"; exit 1; }

summary=()
rc=0
for v in "${versions[@]}"; do
	out="$REPO/target/uwsgi-py$v"
	runner=()
	case "$v" in
	3.14|3.15)
		runner=("$REPO/scripts/sid-chroot.sh" --packages "$SID_UWSGI_PACKAGES" --)
		py="python$v"
		;;
	*)
		py="$(ls -d "$PYENV_ROOT"/versions/"$v".*/bin/python"$v" 2>/dev/null | sort -V | tail -1)"
		if [ -z "$py" ]; then
			summary+=("CPython $v: skipped (not installed in $PYENV_ROOT/versions)")
			continue
		fi
		mkdir -p "$out"
		if ! PYTHON="$py" "$REPO/uwsgi/install-deps.sh" > "$out/install-deps.log" 2>&1; then
			tail -20 "$out/install-deps.log"
			summary+=("CPython $v: uwsgi/install-deps.sh failed (see $out/install-deps.log)")
			rc=1
			continue
		fi
		;;
	esac
	echo "==> CPython $v: building uWSGI and the plugin into $out"
	mkdir -p "$out"
	if ! "${runner[@]}" env PYTHON="$py" UGREEN_UWSGI_OUT="$out" UGREEN_SKIP_CARGO=1 \
		UGREEN_LIB_ASM="$lib_asm" UGREEN_LIB_UCONTEXT="$lib_ucontext" UGREEN_NATIVE_LIBS="$native_libs" \
		"$REPO/uwsgi/build.sh" --backend all > "$out/build.log" 2>&1; then
		tail -30 "$out/build.log"
		summary+=("CPython $v: build failed (see $out/build.log)")
		rc=1
		continue
	fi
	echo "==> CPython $v: $("${runner[@]}" "$py" -c 'import sys; print(sys.version.split()[0])')"
	packaged=()
	if [ ${#runner[@]} -gt 0 ] && [ "$("${runner[@]}" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$v" ]; then
		echo "==> CPython $v: the plugin for Debian unstable's packaged uWSGI (uwsgi/build-plugin.sh /usr/bin/uwsgi)"
		if ! so="$("${runner[@]}" env UGREEN_SKIP_CARGO=1 UGREEN_LIB="$lib_asm" UGREEN_NATIVE_LIBS="$native_libs" \
			"$REPO/uwsgi/build-plugin.sh" /usr/bin/uwsgi 2> "$out/build-packaged.log" | tail -1)" \
			|| [ -z "$so" ]; then
			tail -30 "$out/build-packaged.log"
			summary+=("CPython $v: the plugin build for the packaged uWSGI failed (see $out/build-packaged.log)")
			rc=1
			continue
		fi
		packaged=(UGREEN_E2E_PACKAGED_PLUGIN="$so" UGREEN_E2E_PACKAGED_NAME=sid-packaged)
	fi
	"${runner[@]}" env UGREEN_UWSGI_OUT="$out" "${packaged[@]}" timeout -k 10 780 "$py" "$REPO/uwsgi/tests/e2e.py" | tee "$out/e2e.log"
	status=${PIPESTATUS[0]}
	last="$(tail -1 "$out/e2e.log")"
	[ -n "$last" ] || last="no result"
	summary+=("CPython $v: $last")
	[ "$status" -eq 0 ] || rc=1
done

echo
printf '%s\n' "${summary[@]}"
exit $rc
