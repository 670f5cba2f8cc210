"""Deep requests that hold their cores together (the memory_after_burst test).

GET /?hold=K&round=R&depth=D recurses D levels through map() (each level a C
call into the interpreter, so it uses the core's C stack and the data stack),
then, at the bottom, suspends until all K requests of round R got there: K cores
are busy at once with deep stacks. GET / answers "ok:PID".
"""
import os
import sys

import uwsgi

sys.setrecursionlimit(100000)
rounds = {}


def deep(n, rnd, hold):
    if n == 0:
        while rounds[rnd] < hold:
            uwsgi.suspend()
        return 0
    return list(map(lambda m: deep(m, rnd, hold), [n - 1]))[0]


def application(environ, start_response):
    args = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b''
    if 'hold' in args:
        rnd, hold = args.get('round', ''), int(args['hold'])
        rounds[rnd] = rounds.get(rnd, 0) + 1
        deep(int(args.get('depth', 0)), rnd, hold)
    yield ('ok:%d' % os.getpid()).encode()
