"""Generator WSGI app for the uGreen stress test.

GET /?n=N&d=D&tag=T: recurses D Python calls deep and performs N uwsgi.suspend()
calls spread over the levels (before and after the recursive call, inside
try/except blocks and inside nested generators), checking after every suspend that
the frame's locals and the exception being handled are still its own. The body is
"T:N:D:CHECKSUM:PID"; the client recomputes CHECKSUM (see checksum()).

With &end=raise the request raises an unhandled exception right after its last
suspend; with &end=return its response generator ends right after it (no body).
Both leave the interpreter state of a green thread that stopped mid-flight: the
requests that follow on the same core must not be affected.
"""
import os
import sys

import uwsgi


def checksum(tag, n, d):
    """What the app returns for (tag, n, d), computed without suspending."""
    acc = (d * 7 + len(tag)) % 1000003
    for depth in range(d - 1, -1, -1):
        acc = (acc * 31 + depth * 7 + len(tag)) % 1000003
    return (acc + n * 13) % 1000003


class Broken(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Broken(what)


def suspends(count, marker):
    """A generator that suspends `count` times, checking its locals."""
    for i in range(count):
        uwsgi.suspend()
        check(marker[0] == id(marker), "generator local changed")
        yield i


def level(tag, n, d, depth, budget):
    """Recursive step: spends part of the suspend budget here, recurses, spends the rest."""
    mine = (tag, depth)
    here = budget // (d - depth + 1) if depth < d else budget
    before = here // 2
    after = here - before
    marker = [0]
    marker[0] = id(marker)
    done = 0
    # some suspends while an exception is being handled
    try:
        raise KeyError((tag, depth))
    except KeyError as exc:
        for _ in range(before // 2):
            uwsgi.suspend()
            done += 1
            check(sys.exc_info()[1] is exc, "exc_info lost inside except")
        check(exc.args[0] == (tag, depth), "exception args changed")
    check(sys.exc_info()[1] is None, "exc_info leaked after except")
    # the others from a nested generator
    for _ in suspends(before - before // 2, marker):
        done += 1
    check(mine == (tag, depth), "locals changed before recursion")
    if depth < d:
        acc, sub = level(tag, n, d, depth + 1, budget - here)
    else:
        acc, sub = 0, 0
    for _ in range(after):
        uwsgi.suspend()
        done += 1
    check(mine == (tag, depth), "locals changed after recursion")
    acc = (acc * 31 + depth * 7 + len(tag)) % 1000003 if depth < d else (depth * 7 + len(tag)) % 1000003
    return acc, sub + done


def compute(tag, n, d):
    acc, done = level(tag, n, d, 0, n)
    check(done == n, "suspend count %d != %d" % (done, n))
    return (acc + n * 13) % 1000003


def application(environ, start_response):
    qs = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    n = int(qs.get('n', '0'))
    d = int(qs.get('d', '0'))
    tag = qs.get('tag', 'x')
    end = qs.get('end')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b''
    if end == 'raise':
        try:
            level(tag, n, d, 0, n)
        finally:
            uwsgi.suspend()
        raise RuntimeError('request %s ends with an exception after a suspend' % tag)
    if end == 'return':
        level(tag, n, d, 0, n)
        uwsgi.suspend()
        return
    try:
        value = compute(tag, n, d)
        body = '%s:%d:%d:%d:%d' % (tag, n, d, value, os.getpid())
    except Broken as e:
        body = 'BROKEN:%s:%s' % (tag, e)
    yield body.encode()
