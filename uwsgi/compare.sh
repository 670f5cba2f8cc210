#!/usr/bin/env bash
# Compares uGreen on libugreen's assembly backend with its ucontext backend
# (swapcontext(), one signal-mask syscall per switch), in uWSGI under wrk:
#   uwsgi/compare.sh [SECONDS_PER_POINT [ROUNDS]]   (default 5 s, 1 round)
# Same uWSGI binary (target/uwsgi/bin/uwsgi-base), same app
# (uwsgi/tests/apps/bench_app.py: a generator doing N uwsgi.suspend() per request),
# one worker, --async 30 --ugreen, wrk -t1 -c30 on 127.0.0.1; only the external
# plugin differs: target/uwsgi/plugins/{asm,ucontext}/ugreen_plugin.so.
# Prints requests/s for 0, 10 and 1000 suspends per request and the ratio (the
# median of ROUNDS measurements per point, alternating between the backends),
# and the cost of one suspend round trip: what 1000 suspends add to a request
# (1/req/s at 1000 minus 1/req/s at 0), over 1000.
# UGREEN_COMPARE="A B" compares two other plugin builds instead: the directories
# target/uwsgi/plugins/A and .../B (e.g. a copy of an older build of the plugin).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${1:-5}"
ROUNDS="${2:-1}"
PYTHON="${PYTHON:-python3}"
export PYTHON
OUT="$REPO/target/uwsgi"
read -r A B <<< "${UGREEN_COMPARE:-asm ucontext}"
LOGDIR="$OUT/compare-logs"
mkdir -p "$LOGDIR"

command -v wrk >/dev/null || "$REPO/uwsgi/install-deps.sh"
if [ "${UGREEN_SKIP_BUILD:-0}" != 1 ]; then
	"$REPO/uwsgi/build.sh" --backend all
fi

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
stop_servers() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -INT -- "-$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
}
trap stop_servers EXIT

declare -A PORT
start_server() { # backend
	local port
	port=$(free_port)
	PORT[$1]=$port
	setsid "$OUT/bin/uwsgi-base" --plugin "$OUT/plugins/$1/ugreen_plugin.so" \
		--http-socket "127.0.0.1:$port" --master --processes 1 --async 30 --ugreen \
		--disable-logging --listen 1024 --wsgi-file "$REPO/uwsgi/tests/apps/bench_app.py" \
		> "$LOGDIR/$1.log" 2>&1 < /dev/null &
	PIDS+=($!)
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$port/?n=1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "compare.sh: uWSGI ($1) did not start, see $LOGDIR/$1.log" >&2
	exit 1
}

measure() { # backend n -> req/s
	wrk -t1 -c30 -d"${DURATION}s" --timeout 10s "http://127.0.0.1:${PORT[$1]}/?n=$2" 2>&1 | tee -a "$LOGDIR/wrk.log" \
		| awk '/Requests\/sec/ {print $2}'
}

: > "$LOGDIR/wrk.log"
for backend in "$A" "$B"; do
	start_server "$backend"
	grep -o 'uGreen threads.*' "$LOGDIR/$backend.log" | head -1
	# warm-up
	wrk -t1 -c30 -d1s "http://127.0.0.1:${PORT[$backend]}/?n=10" > /dev/null 2>&1
done

# the two servers run side by side; the measurements alternate between them so
# that load from elsewhere on the machine affects both alike
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A RPS SAMPLES
for n in 0 10 1000; do
	for round in $(seq "$ROUNDS"); do
		for backend in "$A" "$B"; do
			r=$(measure "$backend" "$n")
			[ -n "$r" ] || { echo "compare.sh: wrk gave no result, see $LOGDIR/wrk.log" >&2; exit 1; }
			SAMPLES[$backend,$n]="${SAMPLES[$backend,$n]:-} $r"
			echo "  $backend, $n suspends/request, round $round: $r req/s"
		done
	done
	for backend in "$A" "$B"; do
		RPS[$backend,$n]=$(echo "${SAMPLES[$backend,$n]}" | median)
		curl -fs "http://127.0.0.1:${PORT[$backend]}/?n=$n" | grep -q ok || { echo "compare.sh: bad response" >&2; exit 1; }
	done
done
for backend in "$A" "$B"; do
	if grep -qE 'DAMN|Segmentation|Respawned' "$LOGDIR/$backend.log"; then
		echo "compare.sh: the $backend worker died, see $LOGDIR/$backend.log" >&2
		exit 1
	fi
done
stop_servers

echo
printf '%-22s %14s %18s %10s\n' "suspends per request" "$A req/s" "$B req/s" "$A/$B"
for n in 0 10 1000; do
	a=${RPS[$A,$n]}
	u=${RPS[$B,$n]}
	printf '%-22s %14.0f %18.0f %10s\n' "$n" "$a" "$u" "$(awk -v a="$a" -v u="$u" 'BEGIN { printf "%.2fx", a / u }')"
done
# one suspend round trip (core -> main -> core): what 1000 suspends add to a
# request, over 1000
for backend in "$A" "$B"; do
	awk -v b="$backend" -v r0="${RPS[$backend,0]}" -v r1000="${RPS[$backend,1000]}" \
		'BEGIN { printf "%s: one suspend round trip = (1/%.0f - 1/%.0f req/s) / 1000 = %.2f us\n", b, r1000, r0, (1 / r1000 - 1 / r0) * 1e6 / 1000 }'
done
echo "(1 worker, --async 30 --ugreen, wrk -t1 -c30, ${DURATION} s per measurement, median of $ROUNDS round(s); logs in $LOGDIR)"
