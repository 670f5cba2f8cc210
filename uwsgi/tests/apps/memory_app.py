"""Deep requests that hold their cores together (the memory_after_burst test).

GET /?hold=K&round=R&depth=D&release=PATH recurses D levels through map()
(each level a C call into the interpreter, so it uses the core's C stack and the
data stack), then, at the bottom, suspends until all K requests of round R got
there and the file PATH exists: K cores are busy at once with deep stacks for as
long as the test measures them. The last request to arrive creates PATH.all.
GET / answers "ok:PID".
"""
import os
import sys

import uwsgi

sys.setrecursionlimit(100000)
rounds = {}


def deep(n, rnd, hold, release):
    if n == 0:
        # A request runs from its start to here without suspending, so the
        # one that counts the last arrival finds every other one here.
        if rounds[rnd] == hold and release:
            open(release + '.all', 'w').close()
        while rounds[rnd] < hold or (release and not os.access(release, os.F_OK)):
            uwsgi.suspend()
        return 0
    return list(map(lambda m: deep(m, rnd, hold, release), [n - 1]))[0]


def application(environ, start_response):
    args = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b''
    if 'hold' in args:
        rnd, hold = args.get('round', ''), int(args['hold'])
        rounds[rnd] = rounds.get(rnd, 0) + 1
        deep(int(args.get('depth', 0)), rnd, hold, args.get('release', ''))
    yield ('ok:%d' % os.getpid()).encode()
