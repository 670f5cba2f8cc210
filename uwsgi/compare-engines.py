#!/usr/bin/env python3
"""Compares uWSGI's async engines on one app, as a user would run them.

    uwsgi/compare-engines.py [--seconds S] [--rounds R] [--skip-build]

Engines (one worker each, uwsgi/tests/apps/engines_app.py):
  ugreen embedded   target/uwsgi/bin/uwsgi-ugreen --ugreen
  ugreen .so        target/uwsgi/bin/uwsgi-base --plugin plugins/asm/ugreen_plugin.so --ugreen
                    (UGREEN_COMPARE_PLUGIN=PATH: another build of the plugin)
  greenlet          uwsgi-base --plugin plugins/greenlet/greenlet_plugin.so --greenlet
  gevent            uwsgi-base --plugin plugins/gevent/gevent_plugin.so --gevent N
The greenlet and gevent plugins are uWSGI's own, built from the same 2.0.31 sdist
with `uwsgi-base --build-plugin` (pip's greenlet and gevent are installed when
missing). uwsgi.suspend() switches under uGreen and greenlet; under gevent the
app calls gevent.sleep(0) instead (uwsgi.suspend() does not switch there).

1. Requests/s at 0, 10 and 1000 switches per request: --async 30 (--gevent 30),
   wrk -t1 -c30 for S seconds, all servers side by side, the measurements
   alternating between them; the median of R rounds.
2. Memory per worker at 100 and 1000 cores: RSS and PSS (/proc/PID/smaps_rollup)
   after start-up and one request ("idle"), then after every core served a
   request at the same time ("after load": K requests wait for each other, so
   all K cores are busy at once; measured 1 s after the last one ended).
"""
import argparse
import asyncio
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.environ.get('PYTHON', sys.executable)
OUT = os.environ.get('UGREEN_UWSGI_OUT', os.path.join(REPO, 'target', 'uwsgi'))
APP = os.path.join(REPO, 'uwsgi', 'tests', 'apps', 'engines_app.py')
LOGDIR = os.path.join(OUT, 'compare-logs')
ENGINES = ('ugreen embedded', 'ugreen .so', 'greenlet', 'gevent')


def plugin(name):
    return os.path.join(OUT, 'plugins', name, '%s_plugin.so' % name)


def engine_cmd(engine, cores):
    base = os.path.join(OUT, 'bin', 'uwsgi-base')
    if engine == 'ugreen embedded':
        return [os.path.join(OUT, 'bin', 'uwsgi-ugreen'), '--async', str(cores), '--ugreen']
    if engine == 'ugreen .so':
        so = os.environ.get('UGREEN_COMPARE_PLUGIN', os.path.join(OUT, 'plugins', 'asm', 'ugreen_plugin.so'))
        return [base, '--plugin', so, '--async', str(cores), '--ugreen']
    if engine == 'greenlet':
        return [base, '--plugin', plugin('greenlet'), '--async', str(cores), '--greenlet']
    return [base, '--plugin', plugin('gevent'), '--gevent', str(cores)]


def build():
    subprocess.run([os.path.join(REPO, 'uwsgi', 'build.sh')], check=True)
    missing = [m for m in ('greenlet', 'gevent')
               if subprocess.run([PYTHON, '-c', 'import ' + m], stderr=subprocess.DEVNULL).returncode]
    if missing:
        subprocess.run([PYTHON, '-m', 'pip', 'install', '--quiet'] + missing, check=True)
    src = os.path.join(OUT, 'src-base', 'uwsgi-2.0.31', 'plugins')
    for name in ('greenlet', 'gevent'):
        dest = os.path.dirname(plugin(name))
        os.makedirs(dest, exist_ok=True)
        with open(os.path.join(dest, 'build.log'), 'w') as log:
            subprocess.run([os.path.join(OUT, 'bin', 'uwsgi-base'), '--build-plugin', os.path.join(src, name)],
                           cwd=dest, stdout=log, stderr=subprocess.STDOUT, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def get(port, path, timeout=30):
    with urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path), timeout=timeout) as r:
        return r.read().decode()


class Server:
    def __init__(self, engine, cores):
        self.engine, self.port = engine, free_port()
        os.makedirs(LOGDIR, exist_ok=True)
        self.log = open(os.path.join(LOGDIR, '%s-%d.log' % (engine.replace(' ', '-').replace('.', ''), cores)), 'w')
        cmd = engine_cmd(engine, cores) + [
            '--http-socket', '127.0.0.1:%d' % self.port, '--master', '--processes', '1', '--disable-logging',
            '--listen', '4096', '--wsgi-file', APP]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.pid = int(get(self.port, '/?n=1', timeout=5).split(':')[1])
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit('compare-engines: %s did not start, see %s' % (engine, self.log.name))
                time.sleep(0.1)

    def memory(self):
        with open('/proc/%d/smaps_rollup' % self.pid) as f:
            kib = dict(re.findall(r'^(Rss|Pss):\s+(\d+) kB', f.read(), re.M))
        return int(kib['Rss']) / 1024, int(kib['Pss']) / 1024

    def check_alive(self):
        with open(self.log.name, errors='replace') as f:
            log = f.read()
        if re.search(r'DAMN|Segmentation|Respawned', log):
            raise SystemExit('compare-engines: the %s worker died, see %s' % (self.engine, self.log.name))

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


async def hold_all(port, cores, rnd):
    """`cores` requests that wait for each other: every core busy at once."""
    async def one():
        r, w = await asyncio.open_connection('127.0.0.1', port)
        w.write(('GET /?hold=%d&round=%d HTTP/1.0\r\nHost: x\r\n\r\n' % (cores, rnd)).encode())
        data = await asyncio.wait_for(r.read(), 60)
        w.close()
        return b'ok:' in data
    ok = await asyncio.gather(*[one() for _ in range(cores)])
    if not all(ok):
        raise SystemExit('compare-engines: %d of %d held requests failed' % (ok.count(False), cores))


def wrk(port, n, seconds):
    out = subprocess.run(['wrk', '-t1', '-c30', '-d%ds' % seconds, '--timeout', '10s',
                          'http://127.0.0.1:%d/?n=%d' % (port, n)], capture_output=True, text=True).stdout
    with open(os.path.join(LOGDIR, 'wrk.log'), 'a') as log:
        log.write(out)
    m = re.search(r'Requests/sec:\s+([\d.]+)', out)
    # uWSGI's http-socket closes the connection after each response: wrk counts
    # that as a read error and reconnects; non-2xx answers and timeouts are errors
    if not m or re.search(r'Non-2xx|Socket errors:.*timeout [1-9]', out):
        raise SystemExit('compare-engines: wrk failed or saw errors:\n' + out)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seconds', type=int, default=5, help='wrk seconds per measurement (default 5)')
    ap.add_argument('--rounds', type=int, default=1, help='measurements per point, median (default 1)')
    ap.add_argument('--skip-build', action='store_true', help='use the binaries already built')
    ap.add_argument('--only', choices=('speed', 'memory'), help='run one part only')
    ap.add_argument('--engines', help='comma-separated subset of: ' + ', '.join(ENGINES))
    opts = ap.parse_args()
    engines = ENGINES
    if opts.engines:
        engines = tuple(e.strip() for e in opts.engines.split(','))
        bad = [e for e in engines if e not in ENGINES]
        if bad:
            ap.error('unknown engine(s) %s' % bad)
    # 1000 cores: as many connections held open at once, on both sides
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 65536:
        hard_cap = 65536
    else:
        hard_cap = hard
    if soft != resource.RLIM_INFINITY and soft < hard_cap:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard_cap, hard))
    if not shutil.which('wrk'):
        subprocess.run([os.path.join(REPO, 'uwsgi', 'install-deps.sh')], check=True)
    if not opts.skip_build:
        build()
    os.makedirs(LOGDIR, exist_ok=True)
    open(os.path.join(LOGDIR, 'wrk.log'), 'w').close()

    if opts.only != 'memory':
        servers = {e: Server(e, 30) for e in engines}
        try:
            for e, s in servers.items():
                wrk(s.port, 10, 1)  # warm-up
            rps = {}
            for n in (0, 10, 1000):
                samples = {e: [] for e in engines}
                for rnd in range(opts.rounds):
                    for e, s in servers.items():
                        samples[e].append(wrk(s.port, n, opts.seconds))
                        print('  %s, %d switches/request, round %d: %.0f req/s' % (e, n, rnd + 1, samples[e][-1]), flush=True)
                for e in engines:
                    rps[e, n] = statistics.median(samples[e])
            for s in servers.values():
                s.check_alive()
        finally:
            for s in servers.values():
                s.stop()
        print('\n| switches per request | ' + ' | '.join(engines) + ' |')
        print('|---:|' + '---:|' * len(engines))
        for n in (0, 10, 1000):
            print('| %d | ' % n + ' | '.join('%.0f' % rps[e, n] for e in engines) + ' |')
        print('(req/s; 1 worker, --async 30 / --gevent 30, wrk -t1 -c30, %d s per measurement, median of %d)\n'
              % (opts.seconds, opts.rounds))

    if opts.only != 'speed':
        rows = []
        for cores in (100, 1000):
            for e in engines:
                s = Server(e, cores)
                try:
                    time.sleep(0.5)
                    idle = s.memory()
                    asyncio.run(hold_all(s.port, cores, 1))
                    time.sleep(1)
                    after = s.memory()
                    s.check_alive()
                finally:
                    s.stop()
                rows.append((cores, e, idle, after))
                print('  %s, %d cores: idle %.1f/%.1f MB, after load %.1f/%.1f MB (RSS/PSS)'
                      % (e, cores, idle[0], idle[1], after[0], after[1]), flush=True)
        print('\n| cores | engine | RSS idle | RSS after load | PSS idle | PSS after load |')
        print('|---:|---|---:|---:|---:|---:|')
        for cores, e, idle, after in rows:
            print('| %d | %s | %.1f MB | %.1f MB | %.1f MB | %.1f MB |' % (cores, e, idle[0], after[0], idle[1], after[1]))
        print('(one worker; "after load": every core served one request, all at the same time)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
