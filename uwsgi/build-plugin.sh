#!/usr/bin/env bash
# Builds ugreen_plugin.so for an installed uWSGI, e.g. Debian's or Ubuntu's
# packaged one (apt install uwsgi-core uwsgi-plugin-python3 uwsgi-src libpcre3-dev):
#
#   uwsgi/build-plugin.sh [UWSGI [OUTDIR]]
#
# UWSGI is the uwsgi binary that will load the plugin (default: uwsgi in PATH);
# the plugin is built by it (`UWSGI --build-plugin uwsgi/ugreen`), so it matches
# its version and build. OUTDIR defaults to target/uwsgi-plugin/<uwsgi version>.
# The last line printed is the plugin's path. Load it by path, before any other
# plugin named ugreen:
#
#   uwsgi --plugin python3 --plugin OUTDIR/ugreen_plugin.so --async 30 --ugreen ...
#
# Environment: PYTHON, the Python whose headers the plugin is compiled with: the
# one uWSGI's python plugin embeds (default /usr/bin/python3 when UWSGI is under
# /usr/bin, else python3). UGREEN_SKIP_CARGO=1 uses target/release/libugreen.a as
# it is (UGREEN_LIB and UGREEN_INCLUDE replace the archive and the header dir;
# UGREEN_NATIVE_LIBS gives its native libraries, else uwsgiplugin.py asks
# scripts/staticlib).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UWSGI="${1:-uwsgi}"
case "$UWSGI" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;; esac
UWSGI_PATH="$(command -v "$UWSGI")" || { echo "build-plugin.sh: $UWSGI not found" >&2; exit 1; }
VERSION="$("$UWSGI_PATH" --version)"
OUTDIR="${2:-$REPO/target/uwsgi-plugin/$VERSION}"
if [ -z "${PYTHON:-}" ]; then
	case "$UWSGI_PATH" in /usr/bin/*) [ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3 ;; esac
fi
export PYTHON="${PYTHON:-python3}"

if [ "${UGREEN_SKIP_CARGO:-0}" != 1 ]; then
	# the archive and its native libraries, named by cargo (scripts/staticlib)
	echo "==> cargo build --release" >&2
	{ read -r lib; read -r libs; } < <("$REPO/scripts/staticlib" --release)
	[ -f "${lib:-}" ] && [ -n "${libs:-}" ] || { echo "build-plugin.sh: cargo build --release failed" >&2; exit 1; }
	export UGREEN_LIB="${UGREEN_LIB:-$lib}" UGREEN_NATIVE_LIBS="${UGREEN_NATIVE_LIBS:-$libs}"
fi

mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
rm -f "$OUTDIR/ugreen_plugin.so"
echo "==> $UWSGI_PATH ($VERSION) --build-plugin uwsgi/ugreen -> $OUTDIR (Python headers of $PYTHON)" >&2
(cd "$OUTDIR" && "$UWSGI_PATH" --build-plugin "$REPO/uwsgi/ugreen" > build.log 2>&1) \
	|| { tail -30 "$OUTDIR/build.log" >&2; echo "build-plugin.sh: the build failed, see $OUTDIR/build.log (Debian: apt install uwsgi-src libpcre3-dev python3-dev)" >&2; exit 1; }
[ -f "$OUTDIR/ugreen_plugin.so" ] || { tail -30 "$OUTDIR/build.log" >&2; echo "build-plugin.sh: no ugreen_plugin.so produced" >&2; exit 1; }
grep -q -- '-DUGREEN_WITH_PYTHON' "$OUTDIR/build.log" \
	|| echo "build-plugin.sh: warning: no Python headers for $PYTHON, the plugin is built without Python support" >&2
echo "$OUTDIR/ugreen_plugin.so"
