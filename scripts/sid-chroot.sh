#!/usr/bin/env bash
# Runs a command inside a Debian unstable (sid) chroot, for newer Pythons and
# Debian's newest packages:
#
#   scripts/sid-chroot.sh [--packages PKG[,PKG...]] [--] COMMAND [ARG...]
#   scripts/sid-chroot.sh [--packages ...] --create     # create/update only
#
# The chroot is made once with mmdebstrap (about 40 s, about 600 MB) and cached
# in target/sid-chroot (SID_CHROOT replaces the path); later runs reuse it.
# Packages: BASE_PACKAGES below, plus --packages and $SID_PACKAGES (commas or
# spaces). Packages missing from an existing chroot are installed into it with
# apt-get; nothing is ever removed.
#
# For each run, in a private mount namespace (so nothing leaks to the host, and
# concurrent runs do not disturb each other): /proc, /dev and the checkout are
# bind-mounted into the chroot, the checkout at the same absolute path, and
# unmounted again on exit. COMMAND runs as root with the checkout as working
# directory and the caller's environment (PATH reset to the chroot's). The
# network is the host's: servers in the chroot and clients on the host meet on
# 127.0.0.1.
#
# Needs root and mmdebstrap (apt-get install mmdebstrap; scripts/install-deps
# installs it). SID_MIRROR replaces http://deb.debian.org/debian. The unstable
# suite's Release file may be past its Valid-Until on the mirror, so apt runs
# with Acquire::Check-Valid-Until "false" (kept in the chroot's apt.conf.d).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${SID_CHROOT:-$REPO/target/sid-chroot}"
MIRROR="${SID_MIRROR:-http://deb.debian.org/debian}"

# what uWSGI 2.0.31 and the ugreen plugin need to build for CPython 3.14 and 3.15,
# and what the end-to-end tests need (PostgreSQL server, psycopg2, bottle, Django)
BASE_PACKAGES="python3.14-dev python3.15-dev gcc make libpcre2-dev libssl-dev zlib1g-dev libcrypt-dev
 python3-psycopg2 python3-bottle python3-django postgresql"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

if [ "${1:-}" = --inside ]; then
	# second stage, in the private mount namespace: mount, chroot, run, unmount
	shift
	mounted=()
	cleanup() {
		local i
		for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
			umount -R "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
		done
	}
	trap cleanup EXIT
	bind() { # source
		mkdir -p "$ROOT$1"
		mount --rbind "$1" "$ROOT$1"
		mounted+=("$ROOT$1")
	}
	bind /proc
	bind /dev
	mkdir -p "$ROOT$REPO"
	mount --bind "$REPO" "$ROOT$REPO"
	mounted+=("$ROOT$REPO")
	# apt inside the chroot resolves the mirror with the host's resolver
	cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
	cd /
	set +e
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		chroot "$ROOT" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$REPO" "$@"
	rc=$?
	set -e
	exit $rc
fi

extra=""
create_only=0
while [ $# -gt 0 ]; do
	case "$1" in
	--packages) extra="$extra $2"; shift 2 ;;
	--packages=*) extra="$extra ${1#--packages=}"; shift ;;
	--create) create_only=1; shift ;;
	-h|--help) usage; exit 0 ;;
	--) shift; break ;;
	-*) echo "sid-chroot.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ "$create_only" = 0 ] && [ $# -eq 0 ]; then
	echo "sid-chroot.sh: no command given (see --help)" >&2
	exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "sid-chroot.sh: needs root (mmdebstrap, mount, chroot)" >&2; exit 1; }

# shellcheck disable=SC2086
packages=$(echo $BASE_PACKAGES $extra ${SID_PACKAGES:-} | tr ', ' '\n\n' | sed '/^$/d' | sort -u)

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
	command -v mmdebstrap >/dev/null || { echo "sid-chroot.sh: mmdebstrap missing: apt-get install mmdebstrap" >&2; exit 1; }
	echo "==> creating the Debian unstable chroot in $ROOT (mmdebstrap)" >&2
	rm -rf "$ROOT.tmp"
	start=$(date +%s)
	mmdebstrap --variant=apt --aptopt='Acquire::Check-Valid-Until "false"' \
		--include="$(echo "$packages" | paste -sd,)" sid "$ROOT.tmp" "$MIRROR" >&2
	rm -rf "$ROOT"
	mv "$ROOT.tmp" "$ROOT"
	echo "==> chroot created in $(($(date +%s) - start)) s" >&2
else
	# shellcheck disable=SC2086
	missing=$(chroot "$ROOT" dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $packages 2>/dev/null |
		awk '$1 == "ii" { print $2 }' | sort -u | comm -13 - <(echo "$packages") || true)
	if [ -n "$missing" ]; then
		echo "==> installing into the chroot: $(echo $missing)" >&2
		# shellcheck disable=SC2086
		unshare --mount --propagation private -- "$0" --inside sh -c \
			'apt-get -q -o DPkg::Lock::Timeout=600 update && DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@"' \
			sh $missing >&2
	fi
fi
flock -u 9

[ "$create_only" = 1 ] && exit 0
exec unshare --mount --propagation private -- "$0" --inside "$@"
