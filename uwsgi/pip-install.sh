#!/usr/bin/env bash
# Installs uWSGI with this ugreen plugin built in into a Python virtualenv, in
# place of the uWSGI that `pip install uwsgi` builds (which has uWSGI's own ugreen
# built in, so that `--plugin ugreen_plugin.so` would be ignored):
#
#   uwsgi/pip-install.sh VENV
#
# VENV is created (python3 -m venv) when it does not exist. Afterwards
# VENV/bin/uwsgi runs --ugreen on libugreen:
#
#   VENV/bin/uwsgi --http-socket :8080 --async 30 --ugreen --wsgi-file app.py
#
# What it does: builds libugreen.a (cargo build --release), fetches the uWSGI
# 2.0.31 sdist once into target/uwsgi-cache/, and runs pip install on it with
# pip's own build profile, in which UWSGI_PROFILE_OVERRIDE replaces the stock
# ugreen of the embedded plugins by a copy of uwsgi/ugreen (everything else is
# what `pip install uwsgi==2.0.31` builds). pip's wheel cache is bypassed, so a
# stock wheel built before is never reused; an installed uwsgi is replaced.
#
# Environment: PYTHON creates a missing VENV (default python3); UGREEN_SKIP_CARGO=1
# (which then needs UGREEN_NATIVE_LIBS, the second line of scripts/staticlib)
# uses target/release/libugreen.a as it is.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UWSGI_VERSION=2.0.31
CACHE="$REPO/target/uwsgi-cache"
[ $# -eq 1 ] && [ "$1" != -h ] && [ "$1" != --help ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2; }
VENV="$1"
log() { echo "==> $*"; }

if [ ! -x "$VENV/bin/python" ]; then
	log "creating the virtualenv $VENV"
	"${PYTHON:-python3}" -m venv "$VENV"
fi
VENV="$(cd "$VENV" && pwd)"
VPY="$VENV/bin/python"

LIB="$REPO/target/release/libugreen.a"
if [ "${UGREEN_SKIP_CARGO:-0}" != 1 ]; then
	# the archive and its native libraries, named by cargo (scripts/staticlib)
	log "cargo build --release"
	{ read -r LIB; read -r UGREEN_NATIVE_LIBS; } < <("$REPO/scripts/staticlib" --release)
	export UGREEN_NATIVE_LIBS
fi
[ -f "$LIB" ] || { echo "pip-install.sh: $LIB missing (cargo build --release)" >&2; exit 1; }
[ -n "${UGREEN_NATIVE_LIBS:-}" ] || { echo "pip-install.sh: UGREEN_NATIVE_LIBS unset (scripts/staticlib --release prints it)" >&2; exit 1; }

TARBALL="$CACHE/uwsgi-$UWSGI_VERSION.tar.gz"
if [ ! -s "$TARBALL" ]; then
	log "pip download uwsgi==$UWSGI_VERSION"
	mkdir -p "$CACHE"
	"$VPY" -m pip download --no-binary :all: --no-deps --dest "$CACHE" "uwsgi==$UWSGI_VERSION"
fi

# uwsgiconfig.py compiles an embedded plugin's objects into its directory: a copy
WORK="$REPO/target/pip-install"
rm -rf "$WORK/ugreen"
mkdir -p "$WORK"
cp -r "$REPO/uwsgi/ugreen" "$WORK/ugreen"

# pip's build profile (buildconf/default.ini, inherits base.ini), ugreen replaced
plugins="$("$VPY" - "$TARBALL" "$WORK/ugreen" <<'PYEOF'
import configparser, sys, tarfile
tarball, plugdir = sys.argv[1:3]
top = 'uwsgi-2.0.31/buildconf/'
with tarfile.open(tarball) as t:
    read = lambda name: t.extractfile(top + name).read().decode()
    cp = configparser.ConfigParser()
    cp.read_string(read('base.ini'))
    default = configparser.ConfigParser()
    default.read_string(read('default.ini'))
cp.set('uwsgi', 'main_plugin', default.get('uwsgi', 'main_plugin'))
out = []
for item in cp.get('uwsgi', 'embedded_plugins').split(','):
    item = item.strip()
    if item:
        out.append('ugreen=%s' % plugdir if item == 'ugreen' else item)
if 'ugreen=%s' % plugdir not in out:
    sys.exit('pip-install.sh: no ugreen in the embedded plugins of uWSGI\'s build profile')
print(', '.join(out))
PYEOF
)"

log "pip install uwsgi $UWSGI_VERSION with the ugreen plugin built in -> $VENV (a few minutes)"
UWSGI_PROFILE_OVERRIDE="embedded_plugins=$plugins" \
	UGREEN_LIB="$LIB" UGREEN_INCLUDE="$REPO/include" PYTHON="$VPY" \
	"$VPY" -m pip install --no-cache-dir --force-reinstall --no-deps "$TARBALL"

# the installed binary must carry this plugin, not the stock one
grep -q 'libugreen, %s backend' "$VENV/bin/uwsgi" \
	|| { echo "pip-install.sh: $VENV/bin/uwsgi was built without this ugreen plugin" >&2; exit 1; }
log "done: $VENV/bin/uwsgi ($("$VENV/bin/uwsgi" --version)) runs --ugreen on libugreen"
