#!/usr/bin/env bash
# End-to-end tests of the ugreen uWSGI plugin, in one command:
#   uwsgi/run-tests.sh [-k NAME] [--requests N]
# Installs missing packages (uwsgi/install-deps.sh), builds libugreen (asm and
# ucontext backends) and uWSGI (uwsgi/build.sh --backend all), and the plugin for
# the packaged uWSGI /usr/bin/uwsgi (uwsgi/build-plugin.sh), then runs uwsgi/tests/e2e.py against real uWSGI servers on
# 127.0.0.1. Ends with "N passed, M failed"; exits non-zero on any failure.
# test_pip_install_venv runs uwsgi/pip-install.sh in a fresh virtualenv (UGREEN_E2E_PIP=1).
# UGREEN_SKIP_BUILD=1 reuses the binaries under target/uwsgi/.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
export PYTHON

need_deps=0
for tool in wrk gcc; do command -v "$tool" >/dev/null || need_deps=1; done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_deps=1
"$PYTHON" -c 'import sys, bottle, psycopg2, django; sys.exit(django.VERSION[:2] != (5, 2))' 2>/dev/null || need_deps=1
for p in libpcre2-dev uwsgi-src uwsgi-plugin-greenlet-python3 python3-psycopg2 python3-bottle; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_deps=1
done
if [ "$need_deps" = 1 ]; then
	"$REPO/uwsgi/install-deps.sh" || { echo "install-deps.sh failed"; echo "0 passed, 1 failed"; exit 1; }
fi

if [ "${UGREEN_SKIP_BUILD:-0}" != 1 ]; then
	"$REPO/uwsgi/build.sh" --backend all || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
	if [ -x /usr/bin/uwsgi ]; then
		so="$(UGREEN_SKIP_CARGO=1 "$REPO/uwsgi/build-plugin.sh" /usr/bin/uwsgi | tail -1)" \
			|| { echo "build of the plugin for /usr/bin/uwsgi failed"; echo "0 passed, 1 failed"; exit 1; }
		export UGREEN_E2E_PACKAGED_PLUGIN="$so"
	fi
fi

export UGREEN_E2E_PIP=1
if [ -z "${UGREEN_E2E_PACKAGED_PLUGIN:-}" ] && [ -x /usr/bin/uwsgi ]; then
	# UGREEN_SKIP_BUILD=1: the plugin build-plugin.sh made before
	export UGREEN_E2E_PACKAGED_PLUGIN="$REPO/target/uwsgi-plugin/$(/usr/bin/uwsgi --version)/ugreen_plugin.so"
fi

# bounded: the suite takes 6-12 minutes on 2 cores (pip-install.sh builds uWSGI for 1-4 of them)
timeout -k 10 1800 "$PYTHON" "$REPO/uwsgi/tests/e2e.py" "$@"
rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	echo "e2e tests timed out"
	echo "0 passed, 1 failed"
fi
exit $rc
