"""A request that overflows its green thread's stack.

GET /overflow recurses through map() (every level is a new C-level call into the
interpreter, so it consumes the core's C stack) until the stack's guard page is
hit (before any response is sent). On CPython >= 3.14, which checks the depth of
the C stack against the core's stack, the recursion ends with a RecursionError
instead. GET /ok answers "ok:PID:MAJOR.MINOR".
"""
import os
import sys

import uwsgi

sys.setrecursionlimit(10 ** 7)


def deep(n):
    return list(map(deep, [n + 1]))


def application(environ, start_response):
    if environ.get('PATH_INFO') == '/overflow':
        deep(0)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b''
    uwsgi.suspend()
    yield ('ok:%d:%d.%d' % ((os.getpid(),) + sys.version_info[:2])).encode()
