#!/usr/bin/env bash
# Installs what uwsgi/build.sh, uwsgi/run-tests.sh and uwsgi/compare.sh need.
# Idempotent; root (or sudo) for apt-get, on Debian bookworm.
#   apt: build-essential, pkg-config, libpcre2-dev, libssl-dev, libxml2-dev,
#        libyaml-dev, zlib1g-dev, uuid-dev, libcap-dev (uWSGI's build), postgresql
#        (the server of the psycopg2 test), wrk and curl (compare.sh);
#        python3-dev only when $PYTHON has no headers (pyenv builds ship them);
#        Debian's packaged uWSGI, which the plugin is also tested with: uwsgi-core,
#        uwsgi-src, uwsgi-plugin-python3, uwsgi-plugin-greenlet-python3, libpcre3-dev
#        and python3-dev (to build the plugin for it), python3-bottle and
#        python3-psycopg2 (its apps' modules); uwsgi-core starts no service
#   pip (into $PYTHON, default python3): bottle, psycopg2-binary, Django 5.2 (the Django test)
set -euo pipefail
PYTHON="${PYTHON:-python3}"

APT_PKGS=(build-essential pkg-config libpcre2-dev libssl-dev libxml2-dev libyaml-dev zlib1g-dev uuid-dev
	libcap-dev postgresql wrk curl
	uwsgi-core uwsgi-src uwsgi-plugin-python3 uwsgi-plugin-greenlet-python3 libpcre3-dev python3-dev
	python3-bottle python3-psycopg2)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${APT_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	$SUDO apt-get -o DPkg::Lock::Timeout=600 update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
fi

# Python headers of the Python uWSGI embeds (pyenv builds ship them; Debian's needs python3-dev)
inc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("include"))')
if [ ! -f "$inc/Python.h" ]; then
	$SUDO apt-get -o DPkg::Lock::Timeout=600 update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends python3-dev
fi

pip_missing=()
"$PYTHON" -c 'import bottle' 2>/dev/null || pip_missing+=(bottle)
"$PYTHON" -c 'import psycopg2' 2>/dev/null || pip_missing+=(psycopg2-binary)
"$PYTHON" -c 'import sys, django; sys.exit(django.VERSION[:2] != (5, 2))' 2>/dev/null || pip_missing+=('django>=5.2,<5.3')
if [ ${#pip_missing[@]} -gt 0 ]; then
	"$PYTHON" -m pip install --quiet "${pip_missing[@]}"
fi
echo "install-deps: ok"
