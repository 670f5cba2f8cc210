#!/usr/bin/env python3
"""End-to-end tests of the ugreen uWSGI plugin.

Runs real uWSGI servers (built by uwsgi/build.sh) on 127.0.0.1 and drives them with
concurrent HTTP clients. Prints one PASS/FAIL line per test and finally
"N passed, M failed"; exits non-zero when anything failed.

    python3 uwsgi/tests/e2e.py [-k NAME] [--requests N]
"""
import argparse
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
APPS = os.path.join(HERE, 'apps')
OUT = os.environ.get('UGREEN_UWSGI_OUT', os.path.join(REPO, 'target', 'uwsgi'))
UWSGI_EMBEDDED = os.path.join(OUT, 'bin', 'uwsgi-ugreen')
UWSGI_BASE = os.path.join(OUT, 'bin', 'uwsgi-base')
PLUGIN_SO = os.environ.get('UGREEN_E2E_PLUGIN', os.path.join(OUT, 'plugins', 'asm', 'ugreen_plugin.so'))
# a packaged uWSGI (Debian's uwsgi-core + uwsgi-plugin-python3; a command, e.g. with a
# chroot prefix) and the plugin built for it by uwsgi/build-plugin.sh (run-tests.sh builds it)
PACKAGED_UWSGI = os.environ.get('UGREEN_E2E_PACKAGED_UWSGI', '/usr/bin/uwsgi').split()
PACKAGED_PYTHON_PLUGIN = os.environ.get('UGREEN_E2E_PACKAGED_PYTHON', 'python3')
PACKAGED_PLUGIN_SO = os.environ.get('UGREEN_E2E_PACKAGED_PLUGIN', '')
PACKAGED_NAME = os.environ.get('UGREEN_E2E_PACKAGED_NAME', 'packaged')
# 1: test_pip_install_venv installs uWSGI with the plugin into a fresh virtualenv
# with uwsgi/pip-install.sh (run-tests.sh sets it; a few minutes)
PIP_TEST = os.environ.get('UGREEN_E2E_PIP', '0') == '1'
LOGDIR = os.path.join(OUT, 'test-logs')


class TestFailure(Exception):
    pass


class TestSkipped(Exception):
    pass


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def http_get(port, path, timeout=60, method='GET', body=None, headers=None):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode('utf-8', 'replace')
    finally:
        conn.close()


class Server:
    """One uWSGI instance in its own process group, logging to a file."""

    def __init__(self, name, binary, args, env=None, plugin=None):
        self.name = name
        self.port = free_port()
        os.makedirs(LOGDIR, exist_ok=True)
        self.logpath = os.path.join(LOGDIR, '%s.log' % name)
        cmd = list(binary) if isinstance(binary, (list, tuple)) else [binary]
        if plugin:
            cmd += ['--plugin', plugin]
        cmd += ['--http-socket', '127.0.0.1:%d' % self.port, '--disable-logging',
                '--socket-timeout', '30', '--listen', '100'] + args
        self.cmd = cmd
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def __enter__(self):
        self.logf = open(self.logpath, 'w')
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env, cwd=APPS,
                                     start_new_session=True)
        if not wait_port(self.port, 30, self.proc):
            self.stop()
            raise TestFailure('%s did not start; log tail:\n%s' % (self.name, self.log_tail()))
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            self.logf.close()
            return
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        self.logf.close()

    def wait_master_catches(self, sig, timeout=30):
        """Waits until the master has installed its handler for sig (it does so in
        its loop, after it spawned the workers; before, sig would kill it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open('/proc/%d/status' % self.proc.pid) as f:
                caught = int(re.search(r'^SigCgt:\s*([0-9a-f]+)', f.read(), re.M).group(1), 16)
            if caught & (1 << (sig - 1)):
                return
            time.sleep(0.02)
        raise TestFailure('the master did not install its %s handler within %d s\n%s' % (
            signal.Signals(sig).name, timeout, self.log_tail()))

    def log(self):
        with open(self.logpath, errors='replace') as f:
            return f.read()

    def log_tail(self, n=30):
        return '\n'.join(self.log().splitlines()[-n:])

    def assert_no_worker_death(self):
        log = self.log()
        for pat in ('Segmentation Fault', 'DAMN ! worker', 'Respawned uWSGI worker', 'stack overflow'):
            if pat in log:
                raise TestFailure('%s: log shows %r:\n%s' % (self.name, pat, self.log_tail()))


def run_clients(nclients, jobs, fn, timeout):
    """Runs fn(job) for every job with nclients threads; returns (results, errors)."""
    lock = threading.Lock()
    it = iter(jobs)
    results, errors = [], []
    deadline = time.monotonic() + timeout

    def worker():
        while time.monotonic() < deadline:
            with lock:
                job = next(it, None)
            if job is None:
                return
            try:
                r = fn(job)
                with lock:
                    results.append(r)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                with lock:
                    errors.append('%r: %s' % (job, e))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        errors.append('clients still running after %d s' % timeout)
    return results, errors


# ---------------------------------------------------------------------------
# tests

def suspend_checksum(tag, n, d):
    acc = (d * 7 + len(tag)) % 1000003
    for depth in range(d - 1, -1, -1):
        acc = (acc * 31 + depth * 7 + len(tag)) % 1000003
    return (acc + n * 13) % 1000003


def stress(name, binary, plugin, nreq, app='suspend_app.py', extra=()):
    rnd = random.Random(4242)
    # one request in ten ends abnormally right after a suspend (exception, or no body)
    jobs = [('r%d' % i, rnd.randint(0, 3000), rnd.randint(0, 40),
             rnd.choice(('raise', 'return')) if rnd.random() < 0.1 else None) for i in range(nreq)]
    args = ['--master', '--processes', '1', '--async', '30', '--ugreen',
            '--wsgi-file', os.path.join(APPS, app)] + list(extra)
    with Server(name, binary, args, plugin=plugin) as srv:
        def one(job):
            tag, n, d, end = job
            if end:
                try:
                    status, body = http_get(srv.port, '/?n=%d&d=%d&tag=%s&end=%s' % (n, d, tag, end))
                except (http.client.HTTPException, ConnectionError):
                    status, body = None, ''
                if body:
                    raise TestFailure('end=%s: status %s body %r, expected no body' % (end, status, body))
                return None, n
            status, body = http_get(srv.port, '/?n=%d&d=%d&tag=%s' % (n, d, tag))
            expect = '%s:%d:%d:%d:' % (tag, n, d, suspend_checksum(tag, n, d))
            if status != 200 or not body.startswith(expect):
                raise TestFailure('status %d body %r, expected %r...' % (status, body, expect))
            return int(body.rsplit(':', 1)[1]), n
        t0 = time.monotonic()
        results, errors = run_clients(30, jobs, one, timeout=240)
        elapsed = time.monotonic() - t0
        if errors:
            raise TestFailure('%d errors, first: %s\nlog:\n%s' % (len(errors), errors[:3], srv.log_tail()))
        if len(results) != nreq:
            raise TestFailure('%d/%d responses' % (len(results), nreq))
        pids = {pid for pid, _ in results if pid is not None}
        if len(pids) != 1:
            raise TestFailure('responses came from several workers %s: the worker died' % sorted(pids))
        srv.assert_no_worker_death()
        if srv.proc.poll() is not None:
            raise TestFailure('uWSGI exited')
        suspends = sum(n for _, n in results)
        abnormal = sum(1 for pid, _ in results if pid is None)
        raised = len(re.findall(r'^RuntimeError: request r\d+ ends with an exception after a suspend$', srv.log(), re.M))
        if raised != sum(1 for j in jobs if j[3] == 'raise'):
            raise TestFailure('not every end=raise request logged its exception:\n%s' % srv.log_tail())
        return ('%d requests (%d ending abnormally right after a suspend), %d suspends, 30 clients, 0 errors, '
                'every body checked, one worker (pid %d), %.1f s (%.0f req/s)') % (
            nreq, abnormal, suspends, pids.pop(), elapsed, nreq / elapsed)


def test_stress_embedded(opts):
    return stress('stress-embedded', UWSGI_EMBEDDED, None, opts.requests)


def test_stress_external_plugin(opts):
    return stress('stress-external', UWSGI_BASE, PLUGIN_SO, opts.requests)


def test_stress_ucontext_backend(opts):
    so = os.path.join(OUT, 'plugins', 'ucontext', 'ugreen_plugin.so')
    if not os.path.exists(so):
        raise TestSkipped('no %s (uwsgi/build.sh --backend all builds it)' % so)
    return stress('stress-ucontext', UWSGI_BASE, so, opts.requests)


def test_stress_gil_contention(opts):
    detail = stress('stress-threads', UWSGI_EMBEDDED, None, max(500, opts.requests // 2), app='threads_app.py')
    return detail + ', two app threads competing for the GIL'


def tagged_requests(srv, nreq):
    """nreq requests GET /?tag=N from 30 clients; each must answer 'ok:N'."""
    def one(tag):
        status, body = http_get(srv.port, '/?tag=%d' % tag)
        if status != 200 or body != 'ok:%d' % tag:
            raise TestFailure('status %d body %r' % (status, body))
    _, errors = run_clients(30, list(range(nreq)), one, timeout=120)
    if errors:
        raise TestFailure('%d errors, first: %s\nlog:\n%s' % (len(errors), errors[:3], srv.log_tail()))


def isolation(name, binary, plugin):
    args = ['--master', '--processes', '1', '--async', '30', '--ugreen',
            '--wsgi-file', os.path.join(APPS, 'isolation_app.py')]
    with Server(name, binary, args, plugin=plugin) as srv:
        nreq = 1500
        tagged_requests(srv, nreq)
        srv.assert_no_worker_death()
        return '%d requests from 30 clients: ContextVar, decimal.localcontext and exc_info isolated' % nreq


def test_isolation_embedded(opts):
    return isolation('isolation-embedded', UWSGI_EMBEDDED, None)


def test_isolation_external_plugin(opts):
    return isolation('isolation-external', UWSGI_BASE, PLUGIN_SO)


def threadlocal(name, binary, plugin):
    args = ['--master', '--processes', '1', '--async', '30', '--ugreen',
            '--wsgi-file', os.path.join(APPS, 'threadlocal_app.py')]
    with Server(name, binary, args, plugin=plugin) as srv:
        nreq = 1000
        tagged_requests(srv, nreq)
        status, body = http_get(srv.port, '/freed')
        if body != 'freed:%d:alive:0' % nreq:
            raise TestFailure('objects kept in thread-locals after their requests ended: %r (expected freed:%d:alive:0)'
                              % (body, nreq))
        srv.assert_no_worker_death()
        return ('%d requests from 30 clients: threading.local (module-level, subclass, short-lived) per request, '
                'fresh for each request, its data freed when the request ends' % nreq)


def test_threadlocal_embedded(opts):
    return threadlocal('threadlocal-embedded', UWSGI_EMBEDDED, None)


def test_threadlocal_external_plugin(opts):
    return threadlocal('threadlocal-external', UWSGI_BASE, PLUGIN_SO)


def chat(name, binary, plugin, env=None):
    users, per_user = 30, 5
    args = ['--master', '--processes', '1', '--async', '64', '--ugreen',
            '--wsgi-file', os.path.join(APPS, 'chat_app.py')]
    with Server(name, binary, args, env=env, plugin=plugin) as srv:
        expected = {'user%d-msg%d' % (u, m) for u in range(users) for m in range(per_user)}
        received = [[] for _ in range(users)]
        errors = []
        deadline = time.monotonic() + 60

        def poller(u):
            since = 0
            try:
                while len(received[u]) < len(expected) and time.monotonic() < deadline:
                    status, body = http_get(srv.port, '/poll?since=%d' % since, timeout=40)
                    if status != 200:
                        raise TestFailure('poll status %d: %r' % (status, body))
                    data = json.loads(body)
                    received[u].extend(data['messages'])
                    since = data['next']
            except Exception as e:  # noqa: BLE001
                errors.append('user %d poll: %s' % (u, e))

        def speaker(u):
            rnd = random.Random(u)
            try:
                for m in range(per_user):
                    time.sleep(rnd.uniform(0, 0.2))
                    status, body = http_get(srv.port, '/say', method='POST',
                                            body=urllib.parse.urlencode({'msg': 'user%d-msg%d' % (u, m)}),
                                            headers={'Content-Type': 'application/x-www-form-urlencoded'})
                    if status != 200:
                        raise TestFailure('say status %d: %r' % (status, body))
            except Exception as e:  # noqa: BLE001
                errors.append('user %d say: %s' % (u, e))

        pollers = [threading.Thread(target=poller, args=(u,), daemon=True) for u in range(users)]
        for t in pollers:
            t.start()
        time.sleep(0.5)
        speakers = [threading.Thread(target=speaker, args=(u,), daemon=True) for u in range(users)]
        t0 = time.monotonic()
        for t in speakers:
            t.start()
        for t in speakers + pollers:
            t.join(max(0.1, deadline - time.monotonic()))
        elapsed = time.monotonic() - t0
        if errors:
            raise TestFailure('%d errors, first: %s\nlog:\n%s' % (len(errors), errors[:3], srv.log_tail()))
        for u in range(users):
            if len(received[u]) != len(expected) or set(received[u]) != expected:
                raise TestFailure('user %d got %d/%d messages' % (u, len(set(received[u]) & expected), len(expected)))
            if received[u] != received[0]:
                raise TestFailure('user %d saw another order than user 0' % u)
        srv.assert_no_worker_death()
        return '%d users x %d messages: all %d messages reached every user, same order, %.1f s' % (
            users, per_user, len(expected), elapsed)


def test_chat_bottle(opts):
    return chat('chat', UWSGI_EMBEDDED, None, env={'CHAT_LOCALS': 'contextvars'}) + \
        ' (bottle request/response moved to contextvars)'


def test_chat_bottle_stock_embedded(opts):
    return chat('chat-stock-embedded', UWSGI_EMBEDDED, None) + ' (stock bottle: thread-local request/response)'


def test_chat_bottle_stock_external_plugin(opts):
    return chat('chat-stock-external', UWSGI_BASE, PLUGIN_SO) + ' (stock bottle: thread-local request/response)'


class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1, run as the postgres user."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix='ugreen-pg-')
        self.proc = None

    def _bindir(self):
        cands = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'))
        if cands:
            return os.path.dirname(cands[-1])
        initdb = shutil.which('initdb')
        if initdb:
            return os.path.dirname(os.path.realpath(initdb))
        raise TestFailure('PostgreSQL server binaries not found (apt-get install postgresql)')

    def _as_pg(self, cmd):
        if os.geteuid() == 0:
            return ['runuser', '-u', 'postgres', '--'] + cmd
        return cmd

    def __enter__(self):
        bindir = self._bindir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, 'postgres', 'postgres')
        data = os.path.join(self.dir, 'data')
        r = subprocess.run(self._as_pg([os.path.join(bindir, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres',
                                        '--no-sync', '-E', 'UTF8']),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd='/', timeout=120)
        if r.returncode:
            raise TestFailure('initdb failed:\n%s' % r.stdout.decode(errors='replace')[-2000:])
        self.logf = open(os.path.join(self.dir, 'postgres.log'), 'w')
        self.proc = subprocess.Popen(self._as_pg([os.path.join(bindir, 'postgres'), '-D', data, '-p', str(self.port),
                                                  '-k', self.dir, '-c', 'listen_addresses=127.0.0.1',
                                                  '-c', 'fsync=off', '-c', 'max_connections=100']),
                                     stdout=self.logf, stderr=subprocess.STDOUT, cwd='/', start_new_session=True)
        if not wait_port(self.port, 60, self.proc):
            self.__exit__()
            raise TestFailure('postgres did not start')
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if getattr(self, 'logf', None):
            self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def dsn(self):
        return 'host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=10' % self.port


def test_psycopg2_postgres(opts):
    return psycopg2_postgres('postgres', UWSGI_EMBEDDED, None)


def psycopg2_postgres(name, binary, plugin):
    n = 30
    with Postgres() as pg:
        args = ['--master', '--processes', '1', '--async', '30', '--ugreen',
                '--wsgi-file', os.path.join(APPS, 'pg_app.py')]
        with Server(name, binary, args, env={'PG_DSN': pg.dsn}, plugin=plugin) as srv:
            # one request first: connection set-up and module imports out of the timing
            status, body = http_get(srv.port, '/?tag=1000')
            if status != 200 or body != '1000:2000':
                raise TestFailure('warm-up: status %d body %r\n%s' % (status, body, srv.log_tail()))
            start = threading.Barrier(n)

            def one(tag):
                start.wait(10)
                t0 = time.monotonic()
                status, body = http_get(srv.port, '/?tag=%d' % tag)
                if status != 200 or body != '%d:%d' % (tag, tag * 2):
                    raise TestFailure('status %d body %r' % (status, body))
                return time.monotonic() - t0
            t0 = time.monotonic()
            results, errors = run_clients(n, list(range(n)), one, timeout=60)
            elapsed = time.monotonic() - t0
            if errors:
                raise TestFailure('%d errors, first: %s\nlog:\n%s' % (len(errors), errors[:3], srv.log_tail()))
            if len(results) != n:
                raise TestFailure('%d/%d responses' % (len(results), n))
            if elapsed > 5.0:
                raise TestFailure('%d concurrent pg_sleep(0.5) took %.1f s (serial: %.1f s)' % (n, elapsed, n * 0.5))
            srv.assert_no_worker_death()
            return '%d concurrent SELECT pg_sleep(0.5) in one worker: %.2f s in all (serial would be %.1f s), results correct' % (
                n, elapsed, n * 0.5)


def django_postgres(name, binary, plugin):
    try:
        import django  # noqa: F401 - only checks that uwsgi/install-deps.sh installed it
    except ImportError:
        raise TestFailure('Django is not installed (uwsgi/install-deps.sh installs it)')
    nreq, nclients = 1000, 30
    with Postgres() as pg:
        args = ['--master', '--processes', '1', '--async', '30', '--ugreen',
                '--wsgi-file', os.path.join(APPS, 'django_app.py')]
        env = {'PG_HOST': '127.0.0.1', 'PG_PORT': str(pg.port)}
        with Server(name, binary, args, env=env, plugin=plugin) as srv:
            def one(i):
                tag = 't%d' % i
                status, body = http_get(srv.port, '/item/?tag=%s' % tag)
                parts = body.split(':')
                if status != 200 or len(parts) != 5 or parts[0] != tag or parts[2] != tag or parts[3] != '1':
                    raise TestFailure('status %d body %r (expected %s:ID:%s:1:PID)' % (status, body[:300], tag, tag))
                return int(parts[1]), int(parts[4])
            t0 = time.monotonic()
            results, errors = run_clients(nclients, list(range(nreq)), one, timeout=240)
            elapsed = time.monotonic() - t0
            if errors:
                raise TestFailure('%d errors, first: %s\nlog:\n%s' % (len(errors), errors[:3], srv.log_tail()))
            if len(results) != nreq or len({rid for rid, _ in results}) != nreq:
                raise TestFailure('%d responses, %d distinct rows' % (len(results), len({rid for rid, _ in results})))
            status, body = http_get(srv.port, '/count/')
            if status != 200 or body != str(nreq):
                raise TestFailure('committed rows: %r, expected %d' % (body, nreq))
            if len({pid for _, pid in results}) != 1:
                raise TestFailure('responses from several workers: the worker died')
            srv.assert_no_worker_death()
            return ('%d requests from %d clients, each transaction.atomic(): INSERT, pg_sleep(0.05), SELECT of its own '
                    'row: every response saw its own row, 0 errors, %d rows committed, %.1f s (serial >= %.0f s)') % (
                nreq, nclients, nreq, elapsed, nreq * 0.05)


def test_django_postgres_embedded(opts):
    return django_postgres('django-embedded', UWSGI_EMBEDDED, None)


def test_django_postgres_external_plugin(opts):
    return django_postgres('django-external', UWSGI_BASE, PLUGIN_SO)


def test_stack_overflow_respawn(opts):
    return stack_overflow_respawn('overflow', UWSGI_EMBEDDED, None)


def stack_overflow_respawn(name, binary, plugin):
    pages = 32
    args = ['--master', '--processes', '1', '--async', '4', '--ugreen', '--ugreen-stacksize', str(pages),
            '--wsgi-file', os.path.join(APPS, 'overflow_app.py')]
    with Server(name, binary, args, plugin=plugin) as srv:
        status, body = http_get(srv.port, '/ok')
        if status != 200 or not body.startswith('ok:'):
            raise TestFailure('first request: %d %r' % (status, body))
        pid1 = int(body.split(':')[1])
        pyver = tuple(int(x) for x in body.split(':')[2].split('.'))
        try:
            status, body = http_get(srv.port, '/overflow', timeout=30)
        except (http.client.HTTPException, OSError):
            status, body = None, ''
        if body and not body.startswith('Internal Server Error'):
            raise TestFailure('the overflowing request got an answer: %s %r' % (status, body))
        if pyver >= (3, 14):
            # CPython checks the C stack depth against the core's stack: a RecursionError,
            # not an overflow, and the worker lives on
            status, body = http_get(srv.port, '/ok')
            if status != 200 or int(body.split(':')[1]) != pid1:
                raise TestFailure('after the RecursionError: %d %r (first pid %d)\n%s' % (status, body, pid1, srv.log_tail()))
            log = srv.log()
            m = re.search(r'^RecursionError: Stack overflow.*$', log, re.M)
            if not m:
                raise TestFailure('no RecursionError about the C stack in the log:\n%s' % srv.log_tail())
            srv.assert_no_worker_death()
            return 'CPython %d.%d: %r in the request, worker %d unharmed, next request served' % (
                pyver + (m.group(0).strip(), pid1))
        deadline = time.monotonic() + 20
        pid2 = None
        while time.monotonic() < deadline:
            try:
                status, body = http_get(srv.port, '/ok', timeout=5)
                if status == 200 and body.startswith('ok:'):
                    pid2 = int(body.split(':')[1])
                    break
            except (http.client.HTTPException, OSError):
                pass
            time.sleep(0.2)
        if pid2 is None:
            raise TestFailure('no request served after the overflow\n%s' % srv.log_tail())
        if pid2 == pid1:
            raise TestFailure('the worker did not die (pid %d)' % pid1)
        log = srv.log()
        lines = [l for l in log.splitlines() if re.search(r'overflow', l, re.I) and re.search(r'core \d+', l)]
        if not lines:
            raise TestFailure('no log line naming the overflowing core:\n%s' % srv.log_tail())
        line = lines[0]
        if not re.search(r'%d pages|%d KiB|%d bytes' % (pages, pages * 4, pages * 4096), line):
            raise TestFailure('the overflow line does not give the stack size: %r' % line)
        if 'ugreen-stacksize' not in line:
            raise TestFailure('the overflow line does not say how to raise the size: %r' % line)
        if 'Respawned uWSGI worker' not in log:
            raise TestFailure('no respawn in the log:\n%s' % srv.log_tail())
        return 'log: %r; worker %d respawned as %d, next request served' % (line.strip(), pid1, pid2)


class SlowClients:
    """Concurrent requests to apps/slow_app.py over raw sockets: each one records when
    its response has started (the request runs in a core) and its full body."""

    def __init__(self, port, paths, timeout=60):
        self.port = port
        self.started = threading.Semaphore(0)
        self.results = {}
        self.threads = [threading.Thread(target=self._one, args=(p, timeout), daemon=True) for p in paths]
        for t in self.threads:
            t.start()

    def _one(self, path, timeout):
        data = b''
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=timeout) as sock:
                sock.sendall(('GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' % path).encode())
                told = False
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if not told and b'started:' in data:
                        told = True
                        self.started.release()
        except OSError as e:
            self.results[path] = 'ERROR %s after %r' % (e, data)
            return
        head, _, body = data.partition(b'\r\n\r\n')
        status = head.split(b' ', 2)[1].decode() if head.startswith(b'HTTP/') else '?'
        self.results[path] = '%s %s' % (status, body.decode(errors='replace'))

    def wait_started(self, n, timeout):
        deadline = time.monotonic() + timeout
        for _ in range(n):
            if not self.started.acquire(timeout=max(0.01, deadline - time.monotonic())):
                return False
        return True

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))


def graceful(name, binary, plugin, trigger):
    """30 requests of about 3 s each are running when the reload is triggered: all of
    them complete with their own body, and requests sent meanwhile are served."""
    n, secs = 30, 3
    touch = os.path.join(LOGDIR, '%s.touch' % name)
    os.makedirs(LOGDIR, exist_ok=True)
    open(touch, 'w').close()
    args = ['--master', '--processes', '1', '--async', '64', '--ugreen', '--worker-reload-mercy', '60',
            '--wsgi-file', os.path.join(APPS, 'slow_app.py')]
    if trigger == 'touch':
        args += ['--touch-reload', touch]
    with Server(name, binary, args, plugin=plugin) as srv:
        srv.wait_master_catches(signal.SIGHUP)
        status, body = http_get(srv.port, '/?tag=first')
        old_pid = int(body.rsplit(':', 1)[1])
        paths = ['/?tag=r%d&secs=%d' % (i, secs) for i in range(n)]
        clients = SlowClients(srv.port, paths)
        if not clients.wait_started(n, 30):
            raise TestFailure('the %d requests did not all start\n%s' % (n, srv.log_tail()))
        t0 = time.monotonic()
        if trigger == 'sighup':
            os.kill(srv.proc.pid, signal.SIGHUP)
        else:
            time.sleep(1.1)  # a new mtime (seconds) for the master's check
            os.utime(touch)
        # new connections while the worker finishes its requests
        drain = re.compile(r'\[ugreen\] worker 1 \(pid: %d\): graceful reload: accepting no new connections, '
                           r'finishing %d running request' % (old_pid, n))
        deadline = time.monotonic() + 10
        while not drain.search(srv.log()) and time.monotonic() < deadline:
            time.sleep(0.05)
        late = SlowClients(srv.port, ['/?tag=late%d' % i for i in range(5)])
        clients.join(60)
        late.join(60)
        elapsed = time.monotonic() - t0
        bad = ['%s -> %r' % (p, r) for p, r in sorted(clients.results.items())
               if not re.fullmatch(r'200 started:%s:%d:0:%d' % (re.escape(p.split('=')[1].split('&')[0]), secs, old_pid), r)]
        if len(clients.results) != n or bad:
            raise TestFailure('%d/%d complete, wrong: %s\nlog:\n%s' % (n - len(bad), n, bad[:3], srv.log_tail()))
        late_bad = [r for r in late.results.values() if not re.fullmatch(r'200 started:late\d+:0:0:\d+', r)]
        if len(late.results) != 5 or late_bad:
            raise TestFailure('requests sent during the reload: %r\nlog:\n%s' % (late.results, srv.log_tail()))
        new_pids = {int(r.rsplit(':', 1)[1]) for r in late.results.values()}
        if old_pid in new_pids:
            raise TestFailure('a request sent during the reload was served by the old worker %d' % old_pid)
        if not drain.search(srv.log()):
            raise TestFailure('no drain line in the log:\n%s' % srv.log_tail())
        return ('%s with %d requests of %d s running: %d/%d complete with their own body (%.1f s after the trigger); '
                '5 requests sent meanwhile served by the new worker' % (
                    'SIGHUP to the master' if trigger == 'sighup' else '--touch-reload', n, secs, n, n, elapsed))


def test_reload_sighup_embedded(opts):
    return graceful('reload-sighup-embedded', UWSGI_EMBEDDED, None, 'sighup')


def test_reload_sighup_external_plugin(opts):
    return graceful('reload-sighup-external', UWSGI_BASE, PLUGIN_SO, 'sighup')


def test_reload_touch_embedded(opts):
    return graceful('reload-touch-embedded', UWSGI_EMBEDDED, None, 'touch')


def test_reload_touch_external_plugin(opts):
    return graceful('reload-touch-external', UWSGI_BASE, PLUGIN_SO, 'touch')


def test_reload_half_open_connection(opts):
    """The only connection of the worker is still sending its headers at SIGHUP and
    then goes away: it never ran in a core, and the worker exits right after."""
    args = ['--master', '--processes', '1', '--async', '8', '--ugreen', '--worker-reload-mercy', '60',
            '--socket-timeout', '60', '--wsgi-file', os.path.join(APPS, 'slow_app.py')]
    with Server('reload-half-open', UWSGI_EMBEDDED, args) as srv:
        srv.wait_master_catches(signal.SIGHUP)
        status, body = http_get(srv.port, '/?tag=first')
        old_pid = int(body.rsplit(':', 1)[1])
        half = socket.create_connection(('127.0.0.1', srv.port), timeout=10)
        half.sendall(b'GET /?tag=half HTTP/1.0\r\nHost: 127.0.0.1\r\n')  # no blank line: headers unfinished
        time.sleep(0.5)
        os.kill(srv.proc.pid, signal.SIGHUP)
        drain = re.compile(r'\[ugreen\] worker 1 \(pid: %d\): graceful reload: accepting no new connections, '
                           r'finishing 1 running request' % old_pid)
        deadline = time.monotonic() + 10
        while not drain.search(srv.log()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not drain.search(srv.log()):
            raise TestFailure('the worker did not wait for the half-open connection:\n%s' % srv.log_tail())
        time.sleep(0.5)
        if 'buried after' in srv.log():
            raise TestFailure('the worker exited before the connection went away:\n%s' % srv.log_tail())
        t0 = time.monotonic()
        half.close()
        deadline = time.monotonic() + 15
        while 'buried after' not in srv.log() and time.monotonic() < deadline:
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        if 'buried after' not in srv.log():
            raise TestFailure('the worker did not exit after the connection went away:\n%s' % srv.log_tail())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                status, body = http_get(srv.port, '/?tag=after', timeout=5)
                if status == 200 and body.startswith('started:after:'):
                    break
            except (http.client.HTTPException, OSError):
                pass
            time.sleep(0.2)
        else:
            raise TestFailure('no request served after the reload\n%s' % srv.log_tail())
        return ('a connection still sending its headers at SIGHUP kept the worker; it exited %.2f s after the '
                'connection closed, the new worker serves' % elapsed)


def max_requests(name, binary, plugin):
    nreq = 600
    args = ['--master', '--processes', '1', '--async', '30', '--ugreen', '--max-requests', '50',
            '--min-worker-lifetime', '1', '--wsgi-file', os.path.join(APPS, 'slow_app.py')]
    with Server(name, binary, args, plugin=plugin) as srv:
        # each request suspends 5000-15000 times (a few ms): the load lasts a few
        # seconds, several times the minimal worker lifetime
        def one(i):
            n = 5000 + (i * 7919) % 10000
            status, body = http_get(srv.port, '/?tag=m%d&n=%d' % (i, n))
            m = re.fullmatch(r'started:m%d:0:%d:(\d+)' % (i, n), body)
            if status != 200 or not m:
                raise TestFailure('status %d body %r' % (status, body))
            return int(m.group(1))
        time.sleep(1.1)  # past the first worker's --min-worker-lifetime
        t0 = time.monotonic()
        results, errors = run_clients(30, list(range(nreq)), one, timeout=240)
        elapsed = time.monotonic() - t0
        if errors:
            raise TestFailure('%d dropped or wrong, first: %s\nlog:\n%s' % (len(errors), errors[:3], srv.log_tail()))
        if len(results) != nreq:
            raise TestFailure('%d/%d responses' % (len(results), nreq))
        pids = set(results)
        recycled = srv.log().count('The work of process')
        if len(pids) < 2 or recycled < 1:
            raise TestFailure('no recycling happened (%d workers, %d recycles)\n%s' % (len(pids), recycled, srv.log_tail()))
        return '%d suspending requests from 30 clients with --max-requests 50: 0 dropped, %d recycles, %d workers, %.1f s' % (
            nreq, recycled, len(pids), elapsed)


def test_max_requests_embedded(opts):
    return max_requests('max-requests-embedded', UWSGI_EMBEDDED, None)


def test_max_requests_external_plugin(opts):
    return max_requests('max-requests-external', UWSGI_BASE, PLUGIN_SO)


def reload_mercy(name, binary, plugin):
    mercy = 2
    args = ['--master', '--processes', '1', '--async', '8', '--ugreen', '--worker-reload-mercy', str(mercy),
            '--wsgi-file', os.path.join(APPS, 'slow_app.py')]
    with Server(name, binary, args, plugin=plugin) as srv:
        srv.wait_master_catches(signal.SIGHUP)
        clients = SlowClients(srv.port, ['/?tag=long&secs=20'])
        if not clients.wait_started(1, 30):
            raise TestFailure('the request did not start\n%s' % srv.log_tail())
        t0 = time.monotonic()
        os.kill(srv.proc.pid, signal.SIGHUP)
        clients.join(30)
        elapsed = time.monotonic() - t0
        result = clients.results.get('/?tag=long&secs=20', '')
        if 'long:20' in result:
            raise TestFailure('the request completed: %r' % result)
        if elapsed > 15:
            raise TestFailure('the request was cut only after %.1f s' % elapsed)
        log = srv.log()
        m = re.search(r'\[ugreen\][^\n]*--worker-reload-mercy \(%d s\) expired with 1 request\(s\) still running[^\n]*' % mercy, log)
        if not m or 'NO MERCY' not in log:
            raise TestFailure('the log does not say the request was cut:\n%s' % srv.log_tail())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                status, body = http_get(srv.port, '/?tag=after', timeout=5)
                if status == 200 and body.startswith('started:after:'):
                    break
            except (http.client.HTTPException, OSError):
                pass
            time.sleep(0.2)
        else:
            raise TestFailure('no request served after the reload\n%s' % srv.log_tail())
        return 'a 20 s request cut %.1f s after SIGHUP with --worker-reload-mercy %d; log: %r; next request served' % (
            elapsed, mercy, m.group(0).strip())


def test_reload_mercy_embedded(opts):
    return reload_mercy('reload-mercy-embedded', UWSGI_EMBEDDED, None)


def test_reload_mercy_external_plugin(opts):
    return reload_mercy('reload-mercy-external', UWSGI_BASE, PLUGIN_SO)


def resident_stacks(pid, stack_bytes, per_stack=None):
    """(number, resident KiB) of the worker's mappings that are core stacks:
    anonymous read/write mappings of exactly stack_bytes; per_stack, a list,
    receives each stack's resident KiB."""
    count = rss = 0
    size = None
    with open('/proc/%d/smaps' % pid) as f:
        for line in f:
            m = re.match(r'^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(\S*)', line)
            if m:
                start, end, perm, inode, name = m.groups()
                size = int(end, 16) - int(start, 16) if perm == 'rw-p' and inode == '0' and not name else None
                if size == stack_bytes:
                    count += 1
            elif size == stack_bytes and line.startswith('Rss:'):
                rss += int(line.split()[1])
                if per_stack is not None:
                    per_stack.append(int(line.split()[1]))
    return count, rss


def stacks_after_request(pid, stack_bytes, settled, timeout=5):
    """The resident KiB of each stack (resident_stacks()) once the worker is done
    with the request the test just got its response to: uWSGI closes the
    connection on the core, before the core switches back and the plugin's
    end-of-request step (which gives memory back) runs. Nothing else runs in the
    worker meanwhile, so this polls until settled(per_stack) holds or timeout
    seconds pass, and returns the last look; the caller checks settled() again."""
    deadline = time.monotonic() + timeout
    while True:
        per_stack = []
        resident_stacks(pid, stack_bytes, per_stack)
        if settled(per_stack) or time.monotonic() > deadline:
            return per_stack
        time.sleep(0.02)


def worker_rss(pid):
    with open('/proc/%d/smaps_rollup' % pid) as f:
        return int(re.search(r'^Rss:\s+(\d+) kB', f.read(), re.M).group(1))


def test_memory_after_burst(opts):
    # every core serves a deep request, all of them at the same time; once the
    # burst is over the idle cores give their stack pages back
    cores, depth, pages = 200, 100, 61  # 61 pages: no other mapping has the stacks' size
    stack_bytes = pages * 4096
    args = ['--master', '--processes', '1', '--async', str(cores), '--ugreen', '--ugreen-stacksize', str(pages),
            '--listen', '1024', '--wsgi-file', os.path.join(APPS, 'memory_app.py')]
    with Server('memory', UWSGI_BASE, args, plugin=PLUGIN_SO) as srv:
        status, body = http_get(srv.port, '/')
        pid = int(body.split(':')[1])
        found = resident_stacks(pid, stack_bytes)[0]
        if found != cores:
            raise TestFailure('found %d stacks of %d bytes, expected %d' % (found, stack_bytes, cores))
        rss_idle = worker_rss(pid)
        during = []
        # the requests stay deep until the test has measured them and creates `release`
        release_dir = tempfile.mkdtemp(prefix='ugreen-burst-')
        release = os.path.join(release_dir, 'release')

        def one(i):
            status, body = http_get(srv.port, '/?hold=%d&round=1&depth=%d&release=%s' % (cores, depth, release))
            if status != 200 or body != 'ok:%d' % pid:
                raise TestFailure('status %d body %r' % (status, body))

        def watch():
            # once every core holds a deep stack (the last arrival creates release.all):
            # how much of the stacks is resident; then let the requests finish
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not os.path.exists(release + '.all'):
                time.sleep(0.02)
            all_deep.append(os.path.exists(release + '.all'))
            for _ in range(3):
                during.append(resident_stacks(pid, stack_bytes)[1])
                rss_burst.append(worker_rss(pid))
                time.sleep(0.02)
            open(release, 'w').close()
        all_deep, rss_burst = [], []
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            _, errors = run_clients(cores, list(range(cores)), one, timeout=120)
        finally:
            watcher.join()
            shutil.rmtree(release_dir, ignore_errors=True)
        if all_deep != [True]:
            raise TestFailure('the %d requests were not all at their deepest within 60 s\nlog:\n%s' % (
                cores, srv.log_tail()))
        if errors:
            raise TestFailure('%d errors, first: %s\nlog:\n%s' % (len(errors), errors[:3], srv.log_tail()))
        peak = max(during or [0])
        if peak < cores * 32:
            raise TestFailure('the deep requests did not use the stacks: at most %d KiB resident in all' % peak)
        # one more request, served after the worker finished with the burst: every
        # core is given back at the burst's end, except those already given back and
        # reused within the same second (here the core of the first request)
        http_get(srv.port, '/')

        def few_deep(per_stack):
            return sum(k > 8 for k in per_stack) <= 2
        per_stack = stacks_after_request(pid, stack_bytes, few_deep)
        if not few_deep(per_stack):
            deep_left = [k for k in per_stack if k > 8]
            raise TestFailure('%d stacks still hold more than 8 KiB right after the burst: %s\nlog:\n%s' % (
                len(deep_left), deep_left, srv.log_tail()))
        # a second later, the next request's end gives back every idle core
        time.sleep(1.2)
        http_get(srv.port, '/')

        # the core that served the last request keeps a few pages
        def little_left(per_stack):
            return sum(per_stack) <= 64
        per_stack = stacks_after_request(pid, stack_bytes, little_left)
        count, after = len(per_stack), sum(per_stack)
        rss_after = worker_rss(pid)
        srv.assert_no_worker_death()
        if not little_left(per_stack):
            raise TestFailure('%d KiB of the %d stacks still resident after the burst (%d KiB during it); '
                              'resident KiB per stack, where not 0: %s\nlog:\n%s' % (
                                  after, count, peak, [k for k in per_stack if k], srv.log_tail()))
        # what the stacks gave back shows in the worker's RSS (the heap only
        # shrinks after the burst)
        given_back, rss_drop = peak - after, max(rss_burst) - rss_after
        if rss_drop < given_back * 0.9:
            raise TestFailure('worker RSS %d KiB during the burst, %d KiB after it: fell by %d KiB, while the '
                              'stacks gave back %d KiB' % (max(rss_burst), rss_after, rss_drop, given_back))
        return ('%d cores, %d-level deep requests all at once: stacks held %d KiB resident during the burst, '
                '%d KiB after it; worker RSS %d KiB before, %d KiB during, %d KiB after') % (
            cores, depth, peak, after, rss_idle, max(rss_burst), rss_after)


def run_bounded(cmd, timeout=30):
    """Runs cmd in its own process group; kills the group if it outlives timeout."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=APPS, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out.decode(errors='replace')
    return proc.returncode, out.decode(errors='replace')


def test_config_errors(opts):
    out = []
    for extra, what in ((['--ugreen'], 'no --async'), (['--ugreen', '--async', '1'], '--async 1')):
        cmd = [UWSGI_EMBEDDED, '--http-socket', '127.0.0.1:%d' % free_port(),
               '--wsgi-file', os.path.join(APPS, 'suspend_app.py')] + extra
        rc, text = run_bounded(cmd)
        if rc is None or rc == 0 or '--ugreen needs async cores' not in text:
            raise TestFailure('%s: exit %s, output tail:\n%s' % (what, rc, text[-1500:]))
        out.append('%s -> exit %d' % (what, rc))
    cmd = [UWSGI_EMBEDDED, '--http-socket', '127.0.0.1:%d' % free_port(), '--async', '4', '--threads', '4',
           '--ugreen', '--wsgi-file', os.path.join(APPS, 'suspend_app.py')]
    rc, text = run_bounded(cmd)
    if rc is None or rc == 0 or 'cannot be combined with --threads' not in text:
        raise TestFailure('--threads: exit %s, output tail:\n%s' % (rc, text[-1500:]))
    out.append('--threads 4 -> exit %d' % rc)
    # a stack that cannot be allocated stops start-up with a message
    cmd = [UWSGI_EMBEDDED, '--http-socket', '127.0.0.1:%d' % free_port(), '--async', '4', '--ugreen',
           '--ugreen-stacksize', '2000000000', '--wsgi-file', os.path.join(APPS, 'suspend_app.py')]
    rc, text = run_bounded(cmd)
    m = re.search(r'\[ugreen\] unable to allocate[^\n]*', text)
    if rc is None or rc == 0 or not m:
        raise TestFailure('unallocatable stack: exit %s, output tail:\n%s' % (rc, text[-1500:]))
    out.append('--ugreen-stacksize 2000000000 -> exit %d (%r)' % (rc, m.group(0)))
    return ', '.join(out)


def test_suspend_outside_core(opts):
    """uwsgi.suspend() from an app thread and at import: an exception in the caller,
    the worker and the concurrent requests unharmed."""
    args = ['--master', '--processes', '1', '--async', '30', '--ugreen',
            '--wsgi-file', os.path.join(APPS, 'thread_suspend_app.py')]
    with Server('suspend-outside-core', UWSGI_EMBEDDED, args) as srv:
        nreq = 300

        def one(i):
            status, body = http_get(srv.port, '/?tag=t%d&n=%d' % (i, i % 50))
            parts = body.split(':')
            if status != 200 or len(parts) != 4 or parts[:3] != ['t%d' % i, 'raised', 'raised']:
                raise TestFailure('status %d body %r, expected t%d:raised:raised:PID' % (status, body, i))
            return int(parts[3])
        pids, errors = run_clients(30, list(range(nreq)), one, timeout=120)
        if errors:
            raise TestFailure('%d errors, first: %s\nlog:\n%s' % (len(errors), errors[:3], srv.log_tail()))
        if len(set(pids)) != 1:
            raise TestFailure('responses came from several workers %s: the worker died' % sorted(set(pids)))
        srv.assert_no_worker_death()
        if 'uwsgi.suspend() called outside' not in srv.log():
            raise TestFailure('no [ugreen] log line about the refused suspend:\n%s' % srv.log_tail())
        return ('%d concurrent requests, each with an app thread calling uwsgi.suspend(): every call raised in '
                'its thread (and at import), one worker (pid %d), no respawn') % (nreq, pids[0])


def test_build_refuses_free_threaded(opts):
    """A free-threaded CPython (Py_GIL_DISABLED) stops the plugin's build with a message."""
    import sysconfig
    inc = sysconfig.get_path('include')
    src = os.path.join(REPO, 'uwsgi', 'ugreen', 'ugreen_python.c')
    cc = os.environ.get('CC', 'gcc')
    r = subprocess.run([cc, '-fsyntax-only', '-DUGREEN_WITH_PYTHON', '-DPy_GIL_DISABLED=1', '-I' + inc, src],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode(errors='replace')
    m = re.search(r'#error "(ugreen plugin: free-threaded[^"]*)"', out)
    if r.returncode == 0 or not m:
        raise TestFailure('the build did not stop with the free-threaded message (exit %d):\n%s' % (r.returncode, out[-2000:]))
    ok = subprocess.run([cc, '-fsyntax-only', '-DUGREEN_WITH_PYTHON', '-I' + inc, src],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if ok.returncode != 0:
        raise TestFailure('the same build without Py_GIL_DISABLED fails:\n%s' % ok.stdout.decode(errors='replace')[-2000:])
    return 'CPython %d.%d headers: %r' % (sys.version_info[:2] + (m.group(1)[:60] + '...',))


def test_gc_while_suspended(opts):
    """gc.collect() in some requests while others are suspended holding objects
    (a class, a closure, a code object, a cycle) only through their frames."""
    args = ['--master', '--processes', '1', '--async', '30', '--ugreen',
            '--wsgi-file', os.path.join(APPS, 'gc_app.py')]
    with Server('gc-while-suspended', UWSGI_EMBEDDED, args) as srv:
        nreq = 600

        def one(i):
            status, body = http_get(srv.port, '/?tag=g%d&n=%d&gc=%d' % (i, 5 + i % 60, i % 4 == 0))
            parts = body.split(':')
            if status != 200 or len(parts) != 3 or parts[:2] != ['g%d' % i, 'ok']:
                raise TestFailure('status %d body %r' % (status, body))
            return int(parts[2])
        pids, errors = run_clients(30, list(range(nreq)), one, timeout=180)
        if errors:
            raise TestFailure('%d errors, first: %s\nlog:\n%s' % (len(errors), errors[:3], srv.log_tail()))
        if len(set(pids)) != 1:
            raise TestFailure('responses came from several workers %s: the worker died' % sorted(set(pids)))
        srv.assert_no_worker_death()
        return '%d requests from 30 clients, gc.collect() while others are suspended: every object intact, one worker' % nreq


def wrong_install(what, cmd, expect, extra=None):
    """Starts uWSGI with CMD + a server and an app; it must exit non-zero with EXPECT in its log."""
    cmd = list(cmd) + ['--http-socket', '127.0.0.1:%d' % free_port(), '--async', '4', '--ugreen',
                       '--wsgi-file', os.path.join(APPS, 'suspend_app.py')] + list(extra or [])
    rc, text = run_bounded(cmd)
    line = next((l for l in text.splitlines() if expect in l), None)
    if rc is None or rc == 0 or line is None or not line.startswith('[ugreen]'):
        raise TestFailure('%s: exit %s, expected a [ugreen] line with %r; output tail:\n%s' % (
            what, rc, expect, text[-1500:]))
    return '%s -> exit %d, %r' % (what, rc, line)


def test_wrong_install_errors(opts):
    # uWSGI drops a second plugin named ugreen silently: a binary with one built in
    # (as `pip install uwsgi` makes) must not pretend to load this one
    return wrong_install('this plugin into a uwsgi with a ugreen built in',
                         [UWSGI_EMBEDDED, '--plugin', PLUGIN_SO], 'has a ugreen plugin built in')


def packaged():
    """The packaged uWSGI command and the plugin built for it; skips when the runner
    built none (run-tests.sh builds it for /usr/bin/uwsgi, run-tests-pythons.sh for
    Debian unstable's in the chroot)."""
    so = PACKAGED_PLUGIN_SO
    if not so:
        raise TestSkipped('no plugin built for a packaged uWSGI in this run (UGREEN_E2E_PACKAGED_PLUGIN)')
    if not os.path.exists(so):
        raise TestFailure('%s missing: build it with uwsgi/build-plugin.sh %s' % (so, PACKAGED_UWSGI[-1]))
    return PACKAGED_UWSGI, so


def test_packaged_stress(opts):
    # no --enable-threads: before 2.0.27 the python plugin then never releases the GIL
    cmd, so = packaged()
    return stress('%s-stress' % PACKAGED_NAME, cmd, '%s,%s' % (PACKAGED_PYTHON_PLUGIN, so), opts.requests)


def test_packaged_stress_threads(opts):
    cmd, so = packaged()
    detail = stress('%s-stress-threads' % PACKAGED_NAME, cmd, '%s,%s' % (PACKAGED_PYTHON_PLUGIN, so),
                    max(500, opts.requests // 2), app='threads_app.py', extra=['--enable-threads'])
    return detail + ', --enable-threads, two app threads competing for the GIL'


def test_packaged_isolation(opts):
    cmd, so = packaged()
    return isolation('%s-isolation' % PACKAGED_NAME, cmd, '%s,%s' % (PACKAGED_PYTHON_PLUGIN, so))


def test_packaged_chat(opts):
    cmd, so = packaged()
    return chat('%s-chat' % PACKAGED_NAME, cmd, '%s,%s' % (PACKAGED_PYTHON_PLUGIN, so),
                env={'CHAT_LOCALS': 'contextvars'})


def test_packaged_psycopg2(opts):
    cmd, so = packaged()
    return psycopg2_postgres('%s-postgres' % PACKAGED_NAME, cmd, '%s,%s' % (PACKAGED_PYTHON_PLUGIN, so))


def test_packaged_overflow(opts):
    cmd, so = packaged()
    return stack_overflow_respawn('%s-overflow' % PACKAGED_NAME, cmd, '%s,%s' % (PACKAGED_PYTHON_PLUGIN, so))


def test_packaged_threadlocal(opts):
    cmd, so = packaged()
    return threadlocal('%s-threadlocal' % PACKAGED_NAME, cmd, '%s,%s' % (PACKAGED_PYTHON_PLUGIN, so))


def test_packaged_reload_sighup(opts):
    cmd, so = packaged()
    return graceful('%s-reload-sighup' % PACKAGED_NAME, cmd, '%s,%s' % (PACKAGED_PYTHON_PLUGIN, so), 'sighup')


def test_packaged_max_requests(opts):
    cmd, so = packaged()
    return max_requests('%s-max-requests' % PACKAGED_NAME, cmd, '%s,%s' % (PACKAGED_PYTHON_PLUGIN, so))


def test_packaged_wrong_install_errors(opts):
    cmd, so = packaged()
    py = PACKAGED_PYTHON_PLUGIN
    out = [
        # Debian ships uWSGI's own ugreen as a plugin of the same name
        wrong_install('--plugin ugreen before this plugin', cmd + ['--plugin', '%s,ugreen,%s' % (py, so)],
                      'another plugin named ugreen is already loaded'),
        # another engine's hooks in place of uGreen's
        wrong_install('--ugreen with --greenlet', cmd + ['--plugin', '%s,%s,greenlet_%s' % (py, so, py)],
                      'another async engine', extra=['--greenlet']),
    ]
    # a plugin built for another uWSGI, both ways (the second where uwsgi-base runs:
    # not in a chroot whose uwsgi-base was built on the host)
    rc, version = run_bounded(cmd + ['--version'])
    version = version.strip()
    if version != '2.0.31':
        out.append(wrong_install('the plugin built by uwsgi-base 2.0.31 in uWSGI %s' % version,
                                 cmd + ['--plugin', '%s,%s' % (py, PLUGIN_SO)],
                                 'built for uWSGI 2.0.31 but loaded into uWSGI %s' % version))
        rc, base_version = run_bounded([UWSGI_BASE, '--version'])
        if rc == 0 and base_version.strip() == '2.0.31':
            out.append(wrong_install('the plugin built for uWSGI %s in uwsgi-base 2.0.31' % version,
                                     [UWSGI_BASE, '--plugin', so], 'built for uWSGI %s but loaded into uWSGI 2.0.31' % version))
    return '; '.join(out)


def test_pip_install_venv(opts):
    """uwsgi/pip-install.sh into a fresh virtualenv, then that venv's uwsgi serves
    the stress and isolation apps with --ugreen."""
    if not PIP_TEST:
        raise TestSkipped('UGREEN_E2E_PIP=1 runs it (uwsgi/run-tests.sh does)')
    venv = os.path.join(OUT, 'pip-venv')
    shutil.rmtree(venv, ignore_errors=True)
    logpath = os.path.join(LOGDIR, 'pip-install.log')
    os.makedirs(LOGDIR, exist_ok=True)
    t0 = time.monotonic()
    with open(logpath, 'w') as logf:
        r = subprocess.run([os.path.join(REPO, 'uwsgi', 'pip-install.sh'), venv], stdout=logf, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHON=sys.executable), timeout=900)
    took = time.monotonic() - t0
    with open(logpath, errors='replace') as f:
        log = f.read()
    if r.returncode != 0:
        raise TestFailure('pip-install.sh failed (exit %d):\n%s' % (r.returncode, log[-3000:]))
    uwsgi = os.path.join(venv, 'bin', 'uwsgi')
    out = ['pip-install.sh %s: %.0f s' % (os.path.relpath(venv, REPO), took)]
    out.append(stress('pip-stress', uwsgi, None, opts.requests))
    out.append(isolation('pip-isolation', uwsgi, None))
    return '; '.join(out)


TESTS = [
    test_config_errors,
    test_stress_embedded,
    test_stress_external_plugin,
    test_stress_ucontext_backend,
    test_stress_gil_contention,
    test_isolation_embedded,
    test_isolation_external_plugin,
    test_chat_bottle,
    test_psycopg2_postgres,
    test_stack_overflow_respawn,
    test_suspend_outside_core,
    test_build_refuses_free_threaded,
    test_gc_while_suspended,
    test_wrong_install_errors,
    test_packaged_stress,
    test_packaged_stress_threads,
    test_packaged_isolation,
    test_packaged_chat,
    test_packaged_psycopg2,
    test_packaged_overflow,
    test_packaged_wrong_install_errors,
    test_memory_after_burst,
    test_threadlocal_embedded,
    test_threadlocal_external_plugin,
    test_django_postgres_embedded,
    test_django_postgres_external_plugin,
    test_chat_bottle_stock_embedded,
    test_chat_bottle_stock_external_plugin,
    test_reload_sighup_embedded,
    test_reload_sighup_external_plugin,
    test_reload_touch_embedded,
    test_reload_touch_external_plugin,
    test_max_requests_embedded,
    test_max_requests_external_plugin,
    test_reload_mercy_embedded,
    test_reload_mercy_external_plugin,
    test_reload_half_open_connection,
    test_packaged_threadlocal,
    test_packaged_reload_sighup,
    test_packaged_max_requests,
    test_pip_install_venv,
]


def _terminate(signum, frame):
    # unwinds through the Server/Postgres context managers, which stop their processes
    raise SystemExit(124)


def main():
    signal.signal(signal.SIGTERM, _terminate)
    ap = argparse.ArgumentParser()
    ap.add_argument('-k', dest='pattern', default=None, help='run tests whose name contains this')
    ap.add_argument('--requests', type=int, default=5000, help='requests per stress run (default 5000)')
    opts = ap.parse_args()
    for path in (UWSGI_EMBEDDED, UWSGI_BASE, PLUGIN_SO):
        if not os.path.exists(path):
            print('missing %s: run uwsgi/build.sh first' % path)
            print('0 passed, 1 failed')
            return 1
    passed = failed = skipped = 0
    for test in TESTS:
        name = test.__name__[5:]
        if opts.pattern and opts.pattern not in name:
            continue
        t0 = time.monotonic()
        try:
            detail = test(opts)
            passed += 1
            print('PASS %s (%.1f s): %s' % (name, time.monotonic() - t0, detail), flush=True)
        except TestSkipped as e:
            skipped += 1
            print('SKIP %s: %s' % (name, e), flush=True)
        except TestFailure as e:
            failed += 1
            print('FAIL %s (%.1f s): %s' % (name, time.monotonic() - t0, e), flush=True)
        except Exception:  # noqa: BLE001
            failed += 1
            print('FAIL %s (%.1f s): %s' % (name, time.monotonic() - t0, traceback.format_exc()), flush=True)
    if skipped:
        print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
    else:
        print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
