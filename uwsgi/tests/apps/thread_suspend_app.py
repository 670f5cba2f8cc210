"""uwsgi.suspend() called where no green thread can be suspended.

At import (in the worker's main thread, outside any request) and, for every
request, from a Python thread the request starts: both calls must raise an
exception in their caller, and leave the worker and its requests unharmed.

GET /?tag=T&n=N starts a thread that calls uwsgi.suspend(), joins it, then
suspends N times itself (from the request's own green thread) and answers
"T:<what the import-time call did>:<what the thread's call did>:<pid>".
"""
import os
import threading

import uwsgi

MARK = 'outside a request'


def _try_suspend():
    try:
        uwsgi.suspend()
    except Exception as e:  # noqa: BLE001 - reported to the client
        texts = [str(e), str(e.__cause__ or e.__context__ or '')]
        return 'raised' if any(MARK in t for t in texts) else 'raised-other(%s: %s)' % (type(e).__name__, e)
    return 'returned'


AT_IMPORT = _try_suspend()


def application(environ, start_response):
    q = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    tag, n = q.get('tag', '-'), int(q.get('n', '0'))
    box = []
    t = threading.Thread(target=lambda: box.append(_try_suspend()))
    t.start()
    t.join(10)
    in_thread = box[0] if box else 'thread-hung'
    start_response('200 OK', [('Content-Type', 'text/plain')])
    for _ in range(n):
        uwsgi.suspend()
        yield b''
    yield ('%s:%s:%s:%d' % (tag, AT_IMPORT, in_thread, os.getpid())).encode()
