#!/usr/bin/env bash
# Builds uWSGI 2.0.31 with the ugreen plugin (uGreen on libugreen).
#
#   uwsgi/build.sh [--backend asm|ucontext|all]
#
# Produces, under target/uwsgi/:
#   bin/uwsgi-ugreen     uWSGI with the python plugin (main plugin) and this ugreen
#                        plugin embedded in place of the stock one (asm backend)
#   bin/uwsgi-base       the same uWSGI without any ugreen plugin
#   plugins/BACKEND/ugreen_plugin.so
#                        this plugin as an external plugin, built with
#                        `uwsgi-base --build-plugin`, linked with libugreen.a of
#                        BACKEND (asm: target/release, ucontext: target/ucontext)
# The uWSGI sdist is fetched once with pip into target/uwsgi-cache/ and extracted
# into target/uwsgi/src-*/ (kept between builds: only what changed is rebuilt).
# uWSGI's own files are not modified: a build profile is added to buildconf/.
# --backend asm (default) builds the asm plugin; ucontext and all build both.
#
# Environment: PYTHON (default python3) is the Python that uWSGI embeds;
# UGREEN_UWSGI_OUT replaces target/uwsgi (e.g. one directory per Python version);
# UGREEN_SKIP_CARGO=1 uses existing libugreen.a archives (UGREEN_LIB_ASM,
# UGREEN_LIB_UCONTEXT) and needs their native libraries in UGREEN_NATIVE_LIBS
# (scripts/staticlib prints both); UGREEN_FORCE_EMBED_ALIAS=1 embeds the plugin
# under another key, as is done where uwsgiconfig.py would skip a plugin named
# "ugreen" (no usable ucontext).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UWSGI_VERSION=2.0.31
CACHE="$REPO/target/uwsgi-cache"
OUT="${UGREEN_UWSGI_OUT:-$REPO/target/uwsgi}"
PLUGIN_SRC="$REPO/uwsgi/ugreen"
export PYTHON="${PYTHON:-python3}"
BACKEND=asm

while [ $# -gt 0 ]; do
	case "$1" in
	--backend) BACKEND="$2"; shift 2 ;;
	--backend=*) BACKEND="${1#--backend=}"; shift ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
	*) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
case "$BACKEND" in asm|ucontext|all) ;; *) echo "build.sh: --backend asm|ucontext|all" >&2; exit 2 ;; esac

log() { echo "==> $*"; }

lib_of() {
	case "$1" in
	asm) echo "${UGREEN_LIB_ASM:-$REPO/target/release/libugreen.a}" ;;
	ucontext) echo "${UGREEN_LIB_UCONTEXT:-$REPO/target/ucontext/release/libugreen.a}" ;;
	esac
}
export UGREEN_INCLUDE="${UGREEN_INCLUDE:-$REPO/include}"

# 1. libugreen.a, and its native libraries (UGREEN_NATIVE_LIBS for uwsgiplugin.py),
# as cargo and rustc name them (scripts/staticlib)
staticlib() { # backend cargo-build-args...
	local b="$1" lib libs
	shift
	log "cargo build --release $*"
	{ read -r lib; read -r libs; } < <("$REPO/scripts/staticlib" --release "$@")
	[ -f "${lib:-}" ] && [ -n "${libs:-}" ] || { echo "build.sh: scripts/staticlib --release $* failed" >&2; exit 1; }
	case "$b" in
	asm) UGREEN_LIB_ASM="$lib" ;;
	ucontext) UGREEN_LIB_UCONTEXT="$lib" ;;
	esac
	UGREEN_NATIVE_LIBS="$libs"
}
if [ "${UGREEN_SKIP_CARGO:-0}" != 1 ]; then
	staticlib asm
	if [ "$BACKEND" != asm ]; then
		staticlib ucontext --features ucontext --target-dir "$REPO/target/ucontext"
	fi
elif [ -z "${UGREEN_NATIVE_LIBS:-}" ]; then
	echo "build.sh: UGREEN_SKIP_CARGO=1 needs UGREEN_NATIVE_LIBS (the second line of scripts/staticlib --release)" >&2
	exit 1
fi
export UGREEN_NATIVE_LIBS
need=asm
[ "$BACKEND" = asm ] || need="asm ucontext"
for b in $need; do
	[ -f "$(lib_of "$b")" ] || { echo "build.sh: $(lib_of "$b") missing" >&2; exit 1; }
done
[ -f "$UGREEN_INCLUDE/ugreen.h" ] || { echo "build.sh: $UGREEN_INCLUDE/ugreen.h missing" >&2; exit 1; }

# 2. the sdist
mkdir -p "$CACHE" "$OUT/bin"
TARBALL="$CACHE/uwsgi-$UWSGI_VERSION.tar.gz"
if [ ! -s "$TARBALL" ]; then
	log "pip download uwsgi==$UWSGI_VERSION"
	"$PYTHON" -m pip download --no-binary :all: --no-deps --dest "$CACHE" "uwsgi==$UWSGI_VERSION"
fi

mtime() { [ -e "$1" ] && stat -c %Y "$1" || echo 0; }
# true when TARGET is missing or older than one of DEPS
stale() { # target deps...
	local target="$1"
	shift
	[ -e "$target" ] || return 0
	[ -n "$(find "$@" -newer "$target" -print -quit 2>/dev/null)" ]
}

# writes buildconf/PROFILE.ini: base.ini's embedded plugins, with "ugreen" replaced by
# KEY=DIR (or dropped when KEY is empty), the python plugin as main plugin
write_profile() { # tree profile key dir
	"$PYTHON" - "$1" "$2" "$3" "$4" <<'PYEOF'
import configparser, sys
tree, profile, key, plugdir = sys.argv[1:5]
cp = configparser.RawConfigParser()
cp.read('%s/buildconf/base.ini' % tree)
out = []
for item in cp.get('uwsgi', 'embedded_plugins').split(','):
    item = item.strip()
    if not item:
        continue
    if item == 'ugreen':
        if key:
            out.append('%s=%s' % (key, plugdir))
        continue
    out.append(item)
text = '[uwsgi]\ninherit = base\nmain_plugin = python\nbin_name = uwsgi\nembedded_plugins = %s\n' % ', '.join(out)
path = '%s/buildconf/%s.ini' % (tree, profile)
try:
    old = open(path).read()
except OSError:
    old = None
if old != text:  # rewriting it would make uwsgiconfig.py rebuild every object
    with open(path, 'w') as f:
        f.write(text)
PYEOF
}

fresh_tree() { # dir
	rm -rf "$1"
	mkdir -p "$1"
	tar -xzf "$TARBALL" -C "$1"
	echo "$1/uwsgi-$UWSGI_VERSION"
}

# 3. uWSGI without any ugreen plugin (runs the external plugin)
BASE_BIN="$OUT/bin/uwsgi-base"
if stale "$BASE_BIN" "$TARBALL"; then
	log "building uWSGI $UWSGI_VERSION without ugreen -> $BASE_BIN"
	tree="$(fresh_tree "$OUT/src-base")"
	write_profile "$tree" ugreen-base "" ""
	(cd "$tree" && "$PYTHON" uwsgiconfig.py --build ugreen-base > "$OUT/build-base.log" 2>&1) \
		|| { tail -40 "$OUT/build-base.log"; echo "build.sh: uWSGI (base) build failed, see $OUT/build-base.log" >&2; exit 1; }
	cp "$tree/uwsgi" "$BASE_BIN"
fi

# 4. uWSGI with this plugin embedded (asm backend)
EMB_BIN="$OUT/bin/uwsgi-ugreen"
LIB_ASM="$(lib_of asm)"
if stale "$EMB_BIN" "$LIB_ASM" "$UGREEN_INCLUDE/ugreen.h" "$PLUGIN_SRC" "$TARBALL" "$0"; then
	log "building uWSGI $UWSGI_VERSION with the ugreen plugin embedded -> $EMB_BIN"
	tree="$OUT/src-embedded/uwsgi-$UWSGI_VERSION"
	# the extracted tree is reused (only changed objects are rebuilt) unless the sdist changed
	if [ ! -f "$OUT/src-embedded/.extracted" ] || [ "$(mtime "$TARBALL")" -gt "$(mtime "$OUT/src-embedded/.extracted")" ]; then
		tree="$(fresh_tree "$OUT/src-embedded")"
		touch "$OUT/src-embedded/.extracted"
	fi
	rm -rf "$tree/ugreen-libugreen"
	cp -r "$PLUGIN_SRC" "$tree/ugreen-libugreen"
	rm -f "$tree/uwsgi"
	key=ugreen
	write_profile "$tree" ugreen-embedded "$key" "$tree/ugreen-libugreen"
	# uwsgiconfig.py leaves a plugin keyed "ugreen" undeclared where ucontext is
	# unusable: embed under another key there (the plugin's name stays "ugreen")
	if [ "${UGREEN_FORCE_EMBED_ALIAS:-0}" = 1 ] || \
		! (cd "$tree" && "$PYTHON" uwsgiconfig.py --cflags ugreen-embedded 2>/dev/null) | grep -q 'UDEP(ugreen)'; then
		key=ugreen_libugreen
		log "embedding the plugin under the key $key"
		write_profile "$tree" ugreen-embedded "$key" "$tree/ugreen-libugreen"
		export UGREEN_EMBED_AS=$key
	fi
	(cd "$tree" && UGREEN_LIB="$LIB_ASM" "$PYTHON" uwsgiconfig.py --build ugreen-embedded > "$OUT/build-embedded.log" 2>&1) \
		|| { tail -40 "$OUT/build-embedded.log"; echo "build.sh: uWSGI (embedded ugreen) build failed, see $OUT/build-embedded.log" >&2; exit 1; }
	unset UGREEN_EMBED_AS
	cp "$tree/uwsgi" "$EMB_BIN"
fi

# 5. the external plugin, per backend
build_so() { # backend
	local b="$1" lib dir
	lib="$(lib_of "$b")"
	dir="$OUT/plugins/$b"
	if ! stale "$dir/ugreen_plugin.so" "$lib" "$UGREEN_INCLUDE/ugreen.h" "$PLUGIN_SRC" "$BASE_BIN" "$0"; then
		return 0
	fi
	log "building ugreen_plugin.so ($b backend) with uwsgi-base --build-plugin -> $dir"
	rm -rf "$dir"
	mkdir -p "$dir"
	cp -r "$PLUGIN_SRC" "$dir/src"
	(cd "$dir" && UGREEN_LIB="$lib" "$BASE_BIN" --build-plugin "$dir/src" > "$dir/build.log" 2>&1) \
		|| { tail -40 "$dir/build.log"; echo "build.sh: plugin build ($b) failed, see $dir/build.log" >&2; exit 1; }
	[ -f "$dir/ugreen_plugin.so" ] || { tail -40 "$dir/build.log"; echo "build.sh: $dir/ugreen_plugin.so not produced" >&2; exit 1; }
	if nm -D --defined-only "$dir/ugreen_plugin.so" | grep -v ' ugreen_plugin$' | grep -qE ' [TDBR] (ugreen_|_ZN|rust_)'; then
		echo "build.sh: libugreen symbols are exported from $dir/ugreen_plugin.so" >&2
		exit 1
	fi
}
case "$BACKEND" in
asm) build_so asm ;;
ucontext) build_so asm; build_so ucontext ;;
all) build_so asm; build_so ucontext ;;
esac

log "done: $EMB_BIN, $BASE_BIN, $OUT/plugins/*/ugreen_plugin.so"
