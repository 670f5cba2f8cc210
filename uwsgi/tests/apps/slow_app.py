"""Long-running green requests, for the reload tests.

GET /?tag=T&secs=S waits S seconds in steps of uwsgi.async_sleep(1) + suspend;
GET /?tag=T&n=N suspends N times. Both answer "T:S:N:PID" after the wait: a body
that only a request that ran to its end can give. The first item of the response
is sent before the wait (the client then knows the request is running).
"""
import os
import threading

import uwsgi

LOCAL = threading.local()


def application(environ, start_response):
    qs = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    tag = qs.get('tag', 'x')
    secs = int(qs.get('secs', '0'))
    n = int(qs.get('n', '0'))
    LOCAL.tag = tag
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b'started:'
    for _ in range(secs):
        uwsgi.async_sleep(1)
        uwsgi.suspend()
    for _ in range(n):
        uwsgi.suspend()
    yield ('%s:%d:%d:%d' % (LOCAL.tag, secs, n, os.getpid())).encode()
